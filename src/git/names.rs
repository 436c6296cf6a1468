//! Names and the rules that keep orch's git operations on its own ground:
//! which branch a task uses, where its worktree lives, which branches may be
//! deleted, and which remotes may be handed to git. Every check here is a
//! pure function, so it is tested without a repository.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::domain::{RepoName, WorkItemId};

use super::error::GitError;

/// Prefix of every branch orch creates.
pub const FEATURE_PREFIX: &str = "feature/";

/// Branches that are never deleted or overwritten, whatever the config says.
pub const ALWAYS_PROTECTED: [&str; 2] = ["main", "master"];

/// A branch orch creates for one incarnation of a task:
/// `feature/<WORK_ITEM_ID>` for the first, `feature/<WORK_ITEM_ID>-<n>` for
/// the n-th (n ≥ 2). Only values of this type are ever created, pushed or
/// deleted, so a name from outside can never select `main` or an option.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeatureBranch {
    work_item: WorkItemId,
    incarnation: u32,
    name: String,
}

impl FeatureBranch {
    pub fn new(work_item: &WorkItemId, incarnation: u32) -> Result<Self, GitError> {
        let name = format!("{FEATURE_PREFIX}{}", task_dir_name(work_item, incarnation)?);
        Ok(Self {
            work_item: work_item.clone(),
            incarnation,
            name,
        })
    }

    /// Parses a recorded branch name. Only the canonical form is accepted:
    /// `feature/ORCH-1-1` is refused because the first incarnation has no suffix.
    pub fn parse(branch: &str) -> Result<Self, GitError> {
        let refuse = || GitError::NotFeatureBranch {
            branch: branch.to_owned(),
        };
        let rest = branch.strip_prefix(FEATURE_PREFIX).ok_or_else(refuse)?;
        let (work_item, incarnation) = parse_task_dir_name(rest).ok_or_else(refuse)?;
        Self::new(&work_item, incarnation)
    }

    /// The short name, e.g. `feature/ORCH-7-2`.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The full ref name, e.g. `refs/heads/feature/ORCH-7-2`.
    pub fn full_ref(&self) -> String {
        format!("refs/heads/{}", self.name)
    }

    /// The full ref name as gix takes it.
    pub fn full_name(&self) -> Result<gix::refs::FullName, GitError> {
        gix::refs::FullName::try_from(self.full_ref()).map_err(|_| GitError::NotFeatureBranch {
            branch: self.name.clone(),
        })
    }

    pub fn work_item(&self) -> &WorkItemId {
        &self.work_item
    }

    pub fn incarnation(&self) -> u32 {
        self.incarnation
    }
}

impl fmt::Display for FeatureBranch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The names one incarnation of a task works under; both are recorded on
/// the task, and cleanup only ever uses the recorded ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskNames {
    pub branch: FeatureBranch,
    /// Relative to the data dir: `worktrees/<repo>/<WORK_ITEM_ID>[-<n>]`.
    pub worktree_rel: PathBuf,
}

/// Branch and worktree names for incarnation `incarnation` (1, 2, …) of a
/// work item in `repo`.
pub fn task_names(
    repo: &RepoName,
    work_item: &WorkItemId,
    incarnation: u32,
) -> Result<TaskNames, GitError> {
    // The naming rule itself lives in the domain, where the store records
    // the names on the task; this only types them for git.
    if incarnation == 0 {
        return Err(GitError::Incarnation(0));
    }
    let (branch, worktree) = crate::domain::task_names(repo, work_item, incarnation);
    Ok(TaskNames {
        branch: FeatureBranch::parse(&branch)?,
        worktree_rel: PathBuf::from(worktree),
    })
}

/// Directory under the data dir that holds every task's worktree.
pub const WORKTREES_DIR: &str = "worktrees";
/// Directory under the data dir that holds the bare clones.
pub const REPOS_DIR: &str = "repos";

fn task_dir_name(work_item: &WorkItemId, incarnation: u32) -> Result<String, GitError> {
    match incarnation {
        0 => Err(GitError::Incarnation(0)),
        1 => Ok(work_item.as_str().to_owned()),
        n => Ok(format!("{work_item}-{n}")),
    }
}

/// Inverse of `task_dir_name`, accepting only its canonical output.
fn parse_task_dir_name(s: &str) -> Option<(WorkItemId, u32)> {
    if let Ok(work_item) = WorkItemId::parse(s) {
        return Some((work_item, 1));
    }
    let (head, n) = s.rsplit_once('-')?;
    let canonical = !n.is_empty() && n.len() <= 9 && !n.starts_with('0');
    if !canonical || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = n.parse().ok()?;
    let work_item = WorkItemId::parse(head).ok()?;
    (n >= 2).then_some((work_item, n))
}

/// The branch names a deletion or overwrite must never touch: `main`,
/// `master`, the configured base branch and, where known, the remote's
/// default branch.
#[derive(Debug, Clone)]
pub struct Protected<'a> {
    pub base: &'a str,
    pub remote_default: Option<&'a str>,
}

impl Protected<'_> {
    pub fn contains(&self, branch: &str) -> bool {
        let branch = branch.strip_prefix("refs/heads/").unwrap_or(branch);
        ALWAYS_PROTECTED.contains(&branch)
            || branch == self.base
            || self.remote_default == Some(branch)
    }
}

/// The single gate for every branch orch deletes or pushes to: protected
/// names are refused first (the clearer error), then anything that is not a
/// canonical feature name.
pub fn deletable_branch(
    branch: &str,
    protected: &Protected<'_>,
) -> Result<FeatureBranch, GitError> {
    if protected.contains(branch) {
        return Err(GitError::ProtectedBranch {
            branch: branch.to_owned(),
        });
    }
    FeatureBranch::parse(branch)
}

/// Validates a configured base branch: a plain short branch name that git
/// cannot mistake for an option or a pattern.
pub fn base_branch(name: &str) -> Result<&str, GitError> {
    let refuse = |reason: &str| GitError::InvalidBranchName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.starts_with('-') {
        return Err(refuse("starts with '-'"));
    }
    if name.starts_with("refs/") {
        return Err(refuse("give the short branch name, not a ref"));
    }
    if !name.is_ascii() || name.contains(['*', ':', '+', '@']) {
        return Err(refuse("only plain ASCII branch names are supported"));
    }
    let full = format!("refs/heads/{name}");
    gix::validate::reference::branch_name(gix::bstr::BStr::new(&full))
        .map_err(|e| refuse(&e.to_string()))?;
    Ok(name)
}

/// Validates a configured remote: an absolute local path or a URL with one
/// of the schemes orch supports. Relative paths are refused because gix and
/// `git` would resolve them against different directories.
pub fn remote(remote: &str) -> Result<&str, GitError> {
    let refuse = |reason| GitError::InvalidRemote {
        remote: redact(remote),
        reason,
    };
    if remote.is_empty() {
        return Err(refuse("empty"));
    }
    if remote.starts_with('-') {
        return Err(refuse("starts with '-'"));
    }
    if remote.chars().any(char::is_control) {
        return Err(refuse("contains control characters"));
    }
    if remote.contains("::") {
        return Err(refuse("remote helpers are not supported"));
    }
    let url = gix::url::parse(gix::bstr::BStr::new(remote)).map_err(|_| refuse("not a git URL"))?;
    use gix::url::Scheme;
    match url.scheme {
        Scheme::File if !Path::new(remote).is_absolute() && !remote.starts_with("file://") => {
            Err(refuse("a local remote must be an absolute path"))
        }
        Scheme::File | Scheme::Http | Scheme::Https | Scheme::Ssh | Scheme::Git => Ok(remote),
        _ => Err(refuse("unsupported scheme")),
    }
}

/// A remote URL fit for messages: credentials in it are replaced, because
/// error text ends up in events and logs.
pub fn redact(remote: &str) -> String {
    let Some((scheme, rest)) = remote.split_once("://") else {
        return remote.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => remote.to_owned(),
    }
}

/// Checks that `path` names a task worktree of `repo` inside `data_dir`:
/// relative paths are taken from the data dir, and the result must be
/// exactly `<data_dir>/worktrees/<repo>/<WORK_ITEM_ID>[-<n>]` with no `..`,
/// so no recorded or forged path can make orch add or delete anything else.
pub fn worktree_path(data_dir: &Path, repo: &RepoName, path: &Path) -> Result<PathBuf, GitError> {
    let parent = data_dir.join(WORKTREES_DIR).join(repo.as_str());
    let refuse = || GitError::PathEscape {
        path: path.to_owned(),
        expected: format!("{}/<WORK_ITEM_ID>", parent.display()),
    };
    let full = if path.is_absolute() {
        path.to_owned()
    } else {
        data_dir.join(path)
    };
    if full
        .components()
        .any(|c| !matches!(c, Component::RootDir | Component::Normal(_)))
    {
        return Err(refuse());
    }
    let name = full
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(refuse)?;
    if full.parent() != Some(parent.as_path()) || parse_task_dir_name(name).is_none() {
        return Err(refuse());
    }
    // Rebuilt from the checked parts so a `.` component never survives.
    Ok(parent.join(name))
}

/// Where the bare clone of `repo` lives. `RepoName` admits no `/` and no
/// leading `.`, so the result is always a direct child of `repos/`.
pub fn mirror_path(data_dir: &Path, repo: &RepoName) -> PathBuf {
    data_dir.join(REPOS_DIR).join(format!("{repo}.git"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wi(s: &str) -> WorkItemId {
        WorkItemId::parse(s).expect("valid test id")
    }

    fn check_branch(s: &str, ok: bool) {
        assert_eq!(FeatureBranch::parse(s).is_ok(), ok, "{s:?}");
    }

    #[test]
    fn task_names_per_incarnation() {
        let repo = RepoName::parse("orchestrator").expect("valid");
        let first = task_names(&repo, &wi("ORCH-7"), 1).expect("names");
        assert_eq!(first.branch.as_str(), "feature/ORCH-7");
        assert_eq!(
            first.worktree_rel,
            Path::new("worktrees/orchestrator/ORCH-7")
        );
        let third = task_names(&repo, &wi("ORCH-7"), 3).expect("names");
        assert_eq!(third.branch.as_str(), "feature/ORCH-7-3");
        assert_eq!(third.branch.full_ref(), "refs/heads/feature/ORCH-7-3");
        assert_eq!(
            third.worktree_rel,
            Path::new("worktrees/orchestrator/ORCH-7-3")
        );
        assert!(matches!(
            task_names(&repo, &wi("ORCH-7"), 0),
            Err(GitError::Incarnation(0))
        ));
    }

    /// TC-40: only canonical feature names are branches orch will touch.
    #[test]
    fn feature_branch_grammar_tc40() {
        check_branch("feature/ORCH-1", true);
        check_branch("feature/ORCH-1-2", true);
        check_branch("feature/ORCH-1-999999999", true);
        check_branch("feature/ORCH-1-1", false);
        check_branch("feature/ORCH-1-0", false);
        check_branch("feature/ORCH-1-02", false);
        check_branch("feature/ORCH-1-9999999999", false);
        check_branch("feature/ORCH-1-", false);
        check_branch("feature/orch-1", false);
        check_branch("feature/../main", false);
        check_branch("feature/ORCH-1/../../main", false);
        check_branch("refs/heads/feature/ORCH-1", false);
        check_branch("main", false);
        check_branch("--force", false);
        check_branch("+feature/ORCH-1", false);
        check_branch("feature/ORCH-1:refs/heads/main", false);
        check_branch("", false);
        let parsed = FeatureBranch::parse("feature/ORCH-1-2").expect("valid");
        assert_eq!(parsed.incarnation(), 2);
        assert_eq!(parsed.work_item().as_str(), "ORCH-1");
    }

    fn check_deletable(branch: &str, base: &str, default: Option<&str>, protected: bool) {
        let guard = Protected {
            base,
            remote_default: default,
        };
        let result = deletable_branch(branch, &guard);
        assert_eq!(
            matches!(result, Err(GitError::ProtectedBranch { .. })),
            protected,
            "{branch:?} with base {base:?}: {result:?}"
        );
    }

    #[test]
    fn protected_branches_are_refused() {
        check_deletable("main", "develop", None, true);
        check_deletable("master", "develop", None, true);
        check_deletable("refs/heads/main", "develop", None, true);
        check_deletable("develop", "develop", None, true);
        check_deletable("trunk", "develop", Some("trunk"), true);
        check_deletable("feature/ORCH-1", "feature/ORCH-1", None, true);
        check_deletable("feature/ORCH-1", "main", Some("feature/ORCH-1"), true);
        check_deletable("feature/ORCH-1", "main", Some("main"), false);
        assert!(matches!(
            deletable_branch(
                "release",
                &Protected {
                    base: "main",
                    remote_default: None
                }
            ),
            Err(GitError::NotFeatureBranch { .. })
        ));
    }

    fn check_base(name: &str, ok: bool) {
        assert_eq!(base_branch(name).is_ok(), ok, "{name:?}");
    }

    #[test]
    fn base_branch_names() {
        check_base("main", true);
        check_base("release/2.x", true);
        check_base("-main", false);
        check_base("--upload-pack=x", false);
        check_base("refs/heads/main", false);
        check_base("main..x", false);
        check_base("a/../b", false);
        check_base("+main", false);
        check_base("main:other", false);
        check_base("ma*n", false);
        check_base("", false);
        check_base("main.lock", false);
    }

    fn check_remote(remote_url: &str, ok: bool) {
        assert_eq!(remote(remote_url).is_ok(), ok, "{remote_url:?}");
    }

    /// TC-40: a remote can never become an option or a remote helper.
    #[test]
    fn remotes_tc40() {
        check_remote("/srv/git/orch.git", true);
        check_remote("file:///srv/git/orch.git", true);
        check_remote("https://forge.example/acme/orch.git", true);
        check_remote("ssh://git@forge.example/acme/orch.git", true);
        check_remote("git@forge.example:acme/orch.git", true);
        check_remote("relative/orch.git", false);
        check_remote("-uevil", false);
        check_remote("--upload-pack=touch /tmp/x", false);
        check_remote("ext::sh -c touch% /tmp/pwned", false);
        check_remote("fd::17", false);
        check_remote("/srv/git/orch.git\n--force", false);
        check_remote("", false);
    }

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact("https://bot:s3cret@forge.example/a/b.git"),
            "https://***@forge.example/a/b.git"
        );
        assert_eq!(redact("/srv/git/orch.git"), "/srv/git/orch.git");
        assert_eq!(
            redact("https://forge.example/a@b.git"),
            "https://forge.example/a@b.git"
        );
    }

    fn check_path(path: &str, ok: bool) {
        let repo = RepoName::parse("orch").expect("valid");
        let result = worktree_path(Path::new("/data"), &repo, Path::new(path));
        assert_eq!(result.is_ok(), ok, "{path:?}: {result:?}");
    }

    /// TC-40: a worktree path can only ever be a task directory of its repo.
    #[test]
    fn worktree_paths_tc40() {
        check_path("worktrees/orch/ORCH-1", true);
        check_path("worktrees/orch/ORCH-1-2", true);
        check_path("/data/worktrees/orch/ORCH-1", true);
        check_path("worktrees/orch/ORCH-1/..", false);
        check_path("worktrees/orch/../../etc", false);
        check_path("./worktrees/orch/ORCH-1", true);
        check_path("/data/worktrees/orch/../other/ORCH-1", false);
        check_path("worktrees/other/ORCH-1", false);
        check_path("worktrees/orch/ORCH-1/sub", false);
        check_path("worktrees/orch", false);
        check_path("worktrees/orch/main", false);
        check_path("worktrees/orch/-rf", false);
        check_path("/etc/ORCH-1", false);
        check_path("/data2/worktrees/orch/ORCH-1", false);
        check_path("", false);
        let repo = RepoName::parse("orch").expect("valid");
        let dotted = worktree_path(
            Path::new("/data"),
            &repo,
            Path::new("worktrees/orch/./ORCH-1"),
        );
        assert_eq!(
            dotted.expect("a `.` stays inside").as_os_str(),
            "/data/worktrees/orch/ORCH-1"
        );
        assert_eq!(
            mirror_path(Path::new("/data"), &RepoName::parse("orch").expect("valid")),
            Path::new("/data/repos/orch.git")
        );
    }
}
