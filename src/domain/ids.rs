//! Validated identifiers. Every name that comes from outside (the tracker,
//! the API, the CLI) passes through one of these constructors before it is
//! used as a key, a path component or a git ref, so no input can escape the
//! data dir or be read as a command-line option.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("invalid work item id {0:?}: expected PROJECT-N, e.g. ORCH-123")]
    WorkItem(String),
    #[error("invalid plane issue id {0:?}: expected a UUID")]
    PlaneIssue(String),
    #[error(
        "invalid repo name {0:?}: expected letters, digits, '.', '_' or '-', not starting with '.' or '-'"
    )]
    Repo(String),
}

/// A tracker work item id: project identifier + `-` + sequence number,
/// `^[A-Z][A-Z0-9]{0,11}-[1-9][0-9]{0,8}$`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkItemId(String);

impl WorkItemId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if is_work_item_id(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::WorkItem(s.to_owned()))
        }
    }

    /// Builds the id from a project identifier and a tracker sequence number.
    pub fn from_parts(project: &str, sequence: u64) -> Result<Self, IdError> {
        Self::parse(&format!("{project}-{sequence}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_work_item_id(s: &str) -> bool {
    let Some((project, seq)) = s.split_once('-') else {
        return false;
    };
    let mut p = project.bytes();
    let first_ok = matches!(p.next(), Some(b'A'..=b'Z'));
    let project_ok =
        first_ok && project.len() <= 12 && p.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    let seq_ok = (1..=9).contains(&seq.len())
        && !seq.starts_with('0')
        && seq.bytes().all(|b| b.is_ascii_digit());
    project_ok && seq_ok
}

impl TryFrom<String> for WorkItemId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<WorkItemId> for String {
    fn from(id: WorkItemId) -> String {
        id.0
    }
}

impl fmt::Display for WorkItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tracker issue UUID, kept in its canonical hyphenated lower-case form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PlaneIssueId(String);

impl PlaneIssueId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        uuid::Uuid::try_parse(s)
            .map(|u| Self(u.hyphenated().to_string()))
            .map_err(|_| IdError::PlaneIssue(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PlaneIssueId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<PlaneIssueId> for String {
    fn from(id: PlaneIssueId) -> String {
        id.0
    }
}

impl fmt::Display for PlaneIssueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A configured repository name. It becomes a directory name under the data
/// dir, so it is restricted to a safe character set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoName(String);

impl RepoName {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = !s.is_empty()
            && s.len() <= 100
            && !s.starts_with(['.', '-'])
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::Repo(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RepoName {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<RepoName> for String {
    fn from(id: RepoName) -> String {
        id.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The suffix that marks a tombstoned natural key (SPEC §7.5).
pub const TOMBSTONE_MARK: &str = "::cancelled::";

/// `<original>::cancelled::<task id>`: frees the key for a successor while
/// keeping the original recoverable.
pub fn tombstone(original: &str, task_id: u64) -> String {
    format!("{original}{TOMBSTONE_MARK}{task_id}")
}

/// The original key of a tombstoned one, or `None` if `key` is live.
pub fn untombstone(key: &str) -> Option<&str> {
    key.split_once(TOMBSTONE_MARK).map(|(orig, _)| orig)
}

/// The branch and worktree names of a task (SPEC §6): the first incarnation
/// of a key uses `feature/<WI>`, a task re-created after a cancel uses
/// `feature/<WI>-<n>`, so a predecessor's late cleanup never touches its
/// successor. The worktree path is relative to the data dir.
pub fn task_names(
    repo: &RepoName,
    work_item_id: &WorkItemId,
    incarnation: u32,
) -> (String, String) {
    let leaf = if incarnation <= 1 {
        work_item_id.to_string()
    } else {
        format!("{work_item_id}-{incarnation}")
    };
    (
        format!("feature/{leaf}"),
        format!("worktrees/{repo}/{leaf}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_wi(s: &str, ok: bool) {
        assert_eq!(WorkItemId::parse(s).is_ok(), ok, "{s:?}");
    }

    /// TC-40: ids from tracker data are validated by the grammar.
    #[test]
    fn work_item_grammar_tc40() {
        check_wi("ORCH-1", true);
        check_wi("A-999999999", true);
        check_wi("AB12CD34EF56-7", true);
        check_wi("AB12CD34EF567-7", false);
        check_wi("ORCH-0", false);
        check_wi("ORCH-01", false);
        check_wi("ORCH-1234567890", false);
        check_wi("orch-1", false);
        check_wi("1ORCH-1", false);
        check_wi("ORCH-1/../../etc", false);
        check_wi("--upload-pack=x-1", false);
        check_wi("ORCH-1-2", false);
        check_wi("", false);
    }

    #[test]
    fn repo_and_uuid() {
        assert!(RepoName::parse("orchestrator").is_ok());
        assert!(RepoName::parse("enduro.trails_2").is_ok());
        for bad in ["", "..", "-x", ".git", "a/b", "a b", "a\0"] {
            assert!(RepoName::parse(bad).is_err(), "{bad:?}");
        }
        let u = PlaneIssueId::parse("3B2F9A4C-8D1E-4F6A-9C2B-7E5D1A0B3C4D").unwrap();
        assert_eq!(u.as_str(), "3b2f9a4c-8d1e-4f6a-9c2b-7e5d1a0b3c4d");
        assert!(PlaneIssueId::parse("../../x").is_err());
    }

    #[test]
    fn names_by_incarnation_tc39() {
        let repo = RepoName::parse("orchestrator").unwrap();
        let wi = WorkItemId::parse("ORCH-7").unwrap();
        assert_eq!(
            task_names(&repo, &wi, 1),
            (
                "feature/ORCH-7".into(),
                "worktrees/orchestrator/ORCH-7".into()
            )
        );
        assert_eq!(
            task_names(&repo, &wi, 3),
            (
                "feature/ORCH-7-3".into(),
                "worktrees/orchestrator/ORCH-7-3".into()
            )
        );
    }

    #[test]
    fn tombstones_round_trip() {
        let t = tombstone("ORCH-7", 42);
        assert_eq!(t, "ORCH-7::cancelled::42");
        assert_eq!(untombstone(&t), Some("ORCH-7"));
        assert_eq!(untombstone("ORCH-7"), None);
    }
}
