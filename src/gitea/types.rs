//! The values the Gitea client takes and returns.

use std::fmt;

use serde::Deserialize;

use super::error::GiteaError;

/// `owner/repo` on the forge, validated so both parts are plain path
/// segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoRef {
    pub owner: String,
    pub name: String,
}

impl RepoRef {
    pub fn parse(s: &str) -> Result<Self, GiteaError> {
        let invalid = || GiteaError::InvalidRepo(s.to_owned());
        let (owner, name) = s.split_once('/').ok_or_else(invalid)?;
        if !is_segment(owner) || !is_segment(name) {
            return Err(invalid());
        }
        Ok(Self {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for RepoRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

fn is_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s != "."
        && s != ".."
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// How Gitea merges a pull request (`Do` in the merge request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergeStyle {
    #[default]
    Merge,
    Rebase,
    RebaseMerge,
    Squash,
    FastForwardOnly,
}

impl MergeStyle {
    /// Parses the `merge_style` of a repo's config.
    pub fn parse(s: &str) -> Result<Self, GiteaError> {
        Ok(match s {
            "merge" => Self::Merge,
            "rebase" => Self::Rebase,
            "rebase-merge" => Self::RebaseMerge,
            "squash" => Self::Squash,
            "fast-forward-only" => Self::FastForwardOnly,
            other => return Err(GiteaError::Setup(format!("unknown merge style {other:?}"))),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Merge => "merge",
            Self::Rebase => "rebase",
            Self::RebaseMerge => "rebase-merge",
            Self::Squash => "squash",
            Self::FastForwardOnly => "fast-forward-only",
        }
    }
}

/// A pull request, as much of it as orch reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub url: Option<String>,
    /// `open` or `closed`.
    pub state: String,
    pub merged: bool,
    pub head_ref: String,
    pub head_sha: Option<String>,
    pub base_ref: String,
    pub merge_commit_sha: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct RawPull {
    number: u64,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    merged: bool,
    head: RawBranchRef,
    base: RawBranchRef,
    #[serde(default)]
    merge_commit_sha: Option<String>,
}

#[derive(Deserialize)]
struct RawBranchRef {
    #[serde(rename = "ref")]
    name: String,
    #[serde(default)]
    sha: Option<String>,
}

impl From<RawPull> for PullRequest {
    fn from(r: RawPull) -> Self {
        Self {
            number: r.number,
            url: r.html_url,
            state: r.state.unwrap_or_default(),
            merged: r.merged,
            head_ref: r.head.name,
            head_sha: r.head.sha,
            base_ref: r.base.name,
            merge_commit_sha: r.merge_commit_sha,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_repo(s: &str, ok: bool) {
        assert_eq!(RepoRef::parse(s).is_ok(), ok, "{s:?}");
    }

    #[test]
    fn repo_refs() {
        check_repo("acme/orchestrator", true);
        check_repo("acme/orch.rs", true);
        check_repo("acme", false);
        check_repo("acme/", false);
        check_repo("../x", false);
        check_repo("acme/..", false);
        check_repo("acme/a/b", false);
        check_repo("acme/a?b", false);
        check_repo("-x/y", false);
        assert_eq!(
            RepoRef::parse("acme/orchestrator").unwrap().to_string(),
            "acme/orchestrator"
        );
    }

    #[test]
    fn merge_styles_round_trip() {
        for s in [
            "merge",
            "rebase",
            "rebase-merge",
            "squash",
            "fast-forward-only",
        ] {
            assert_eq!(MergeStyle::parse(s).unwrap().as_str(), s);
        }
        assert!(MergeStyle::parse("octopus").is_err());
    }
}
