//! Task worktrees and local feature branches, all through gix: a linked
//! worktree of the repo's bare clone on a new `feature/…` branch created
//! from the fetched base branch, and its removal at cleanup.
//!
//! Every operation is idempotent, because orch may be killed between any
//! two steps and replays them on restart (SPEC §7.6).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::progress::Discard;
use gix::refs::transaction::PreviousValue;
use gix::worktree::remove::Force;

use crate::domain::RepoName;

use super::error::{CommitId, GitError, GixContext};
use super::names::{self, FeatureBranch, Protected};
use super::{GitLayer, mirror, open_repo};

/// What `add_worktree` found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorktreeAdd {
    /// A new worktree was checked out at the branch's tip.
    Created { head: CommitId },
    /// The worktree already existed on the branch (a replayed step).
    Existing { head: CommitId },
}

/// What `remove_worktree` found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorktreeRemove {
    Removed,
    AlreadyGone,
}

/// What `delete_local_branch` found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalDelete {
    Deleted { tip: CommitId },
    AlreadyGone,
}

impl GitLayer {
    /// Adds the linked worktree `worktree_path` on the new local branch
    /// `branch`, created from the fetched tip of `base_branch` (call
    /// `ensure_mirror` first). If the branch already exists it is reused,
    /// and if the worktree already exists on that branch nothing changes,
    /// so a replay after a crash converges. A registration or directory
    /// left half-made by a crash is cleared and the worktree made anew.
    pub fn add_worktree(
        &self,
        repo: &RepoName,
        base_branch: &str,
        branch: &str,
        worktree_path: &Path,
    ) -> Result<WorktreeAdd, GitError> {
        let base = names::base_branch(base_branch)?;
        let branch = names::deletable_branch(
            branch,
            &Protected {
                base,
                remote_default: None,
            },
        )?;
        let path = self.task_worktree(repo, &branch, worktree_path)?;
        let lock = self.lock(repo);
        let _held = lock.hold();
        let git = open_repo(&self.existing_mirror(repo)?)?;
        let full_ref = branch.full_ref();

        if let Some(proxy) = registration(&git, &path)? {
            let linked = proxy
                .clone()
                .into_repo_with_possibly_inaccessible_worktree()
                .ctx("open worktree")?;
            let on_branch = linked.head_name().ctx("read worktree HEAD")?;
            if on_branch.as_ref().map(|n| n.as_bstr()) != Some(full_ref.as_bytes().into()) {
                return Err(GitError::WorktreeConflict {
                    path,
                    reason: format!("registered on {on_branch:?}, not {branch}"),
                });
            }
            let complete = !is_initializing(&proxy)
                && proxy.git_dir().join("index").is_file()
                && path.join(".git").is_file();
            if complete {
                let head = linked.head_id().ctx("read worktree HEAD")?.detach();
                return Ok(WorktreeAdd::Existing { head });
            }
            // Nothing was handed to an agent yet, so the half-made worktree
            // is discarded, its "initializing" lock included.
            proxy
                .remove(Force::OverrideLock, Discard)
                .ctx("remove half-made worktree")?;
        }
        if path.exists() {
            // Not registered, so a leftover of an interrupted add; the path
            // was checked to be a task directory of this repo.
            std::fs::remove_dir_all(&path)
                .map_err(|e| GitError::io("remove stale worktree", &path, e))?;
        }

        if git
            .try_find_reference(full_ref.as_str())
            .ctx("find branch")?
            .is_none()
        {
            let tip = mirror::tracking_tip(&git, base)?;
            git.reference(
                full_ref.as_str(),
                tip,
                PreviousValue::MustNotExist,
                format!("branch: Created from origin/{base}"),
            )
            .ctx("create branch")?;
        }

        let name = branch.full_name()?;
        let interrupt = AtomicBool::new(false);
        let (linked, _) = git
            .add_worktree(
                &path,
                gix::worktree::add::Head::Attached(name),
                Discard,
                &interrupt,
            )
            .ctx("add worktree")?;
        let head = linked.head_id().ctx("read worktree HEAD")?.detach();
        Ok(WorktreeAdd::Created { head })
    }

    /// Removes the worktree at `worktree_path` and its admin entry,
    /// discarding uncommitted changes (the cancel path archives the task's
    /// docs first). A worktree already gone counts as removed.
    pub fn remove_worktree(
        &self,
        repo: &RepoName,
        worktree_path: &Path,
    ) -> Result<WorktreeRemove, GitError> {
        let path = self.worktree_path(repo, worktree_path)?;
        self.check_real_parent(&path)?;
        let lock = self.lock(repo);
        let _held = lock.hold();
        let mut outcome = WorktreeRemove::AlreadyGone;
        let mirror = self.mirror_path(repo);
        if mirror.join("HEAD").is_file() {
            let git = open_repo(&mirror)?;
            if let Some(proxy) = registration(&git, &path)? {
                // A lock someone else set is respected; the one an
                // interrupted add leaves behind is not a reason to keep it.
                let force = if is_initializing(&proxy) {
                    Force::OverrideLock
                } else {
                    Force::DiscardChanges
                };
                proxy.remove(force, Discard).ctx("remove worktree")?;
                outcome = WorktreeRemove::Removed;
            }
        }
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .map_err(|e| GitError::io("remove worktree", &path, e))?;
            outcome = WorktreeRemove::Removed;
        }
        Ok(outcome)
    }

    /// Deletes the local branch `branch` if it still points where it did:
    /// at `expected_tip` when given, else at the tip read just before the
    /// deletion (compare-and-swap either way). A branch already gone counts
    /// as deleted; a branch that moved is refused.
    pub fn delete_local_branch(
        &self,
        repo: &RepoName,
        branch: &str,
        base_branch: &str,
        expected_tip: Option<CommitId>,
    ) -> Result<LocalDelete, GitError> {
        let base = names::base_branch(base_branch)?;
        let branch = names::deletable_branch(
            branch,
            &Protected {
                base,
                remote_default: None,
            },
        )?;
        let lock = self.lock(repo);
        let _held = lock.hold();
        let mirror = self.mirror_path(repo);
        if !mirror.join("HEAD").is_file() {
            return Ok(LocalDelete::AlreadyGone);
        }
        let mut git = open_repo(&mirror)?;
        let Some(tip) = local_tip(&git, &branch)? else {
            return Ok(LocalDelete::AlreadyGone);
        };
        if let Some(expected) = expected_tip.filter(|e| *e != tip) {
            return Err(GitError::BranchMoved {
                branch: branch.to_string(),
                expected,
                actual: tip,
            });
        }
        let name = branch.full_name()?;
        git.delete_local_branches_if_unchanged([(name, gix::refs::Target::Object(tip))])
            .ctx("delete branch")?;
        Ok(LocalDelete::Deleted { tip })
    }

    /// The tip of the local branch `branch` in the repo's bare clone.
    pub fn local_branch_tip(
        &self,
        repo: &RepoName,
        branch: &str,
    ) -> Result<Option<CommitId>, GitError> {
        let branch = FeatureBranch::parse(branch)?;
        let lock = self.lock(repo);
        let _held = lock.hold();
        local_tip(&open_repo(&self.existing_mirror(repo)?)?, &branch)
    }

    /// The commit checked out in `worktree`.
    pub fn head(&self, worktree: &Path) -> Result<CommitId, GitError> {
        let git = open_repo(worktree)?;
        Ok(git.head_id().ctx("read HEAD")?.detach())
    }

    /// How many commits `worktree`'s HEAD has that `base` does not: the
    /// commits made since a stage started at `base` (`branch_has_commits`).
    pub fn commits_since(&self, worktree: &Path, base: CommitId) -> Result<usize, GitError> {
        let git = open_repo(worktree)?;
        let head = git.head_id().ctx("read HEAD")?.detach();
        let walk = git
            .rev_walk([head])
            .with_hidden([base])
            .all()
            .ctx("walk history")?;
        let mut count = 0;
        for commit in walk {
            commit.ctx("walk history")?;
            count += 1;
        }
        Ok(count)
    }

    /// Validates a worktree path and that it belongs to `branch`: a task's
    /// worktree directory and branch always carry the same incarnation.
    fn task_worktree(
        &self,
        repo: &RepoName,
        branch: &FeatureBranch,
        worktree_path: &Path,
    ) -> Result<PathBuf, GitError> {
        let path = self.worktree_path(repo, worktree_path)?;
        let expected = names::task_names(repo, branch.work_item(), branch.incarnation())?;
        if path != self.data_dir.join(&expected.worktree_rel) {
            return Err(GitError::WorktreeConflict {
                path,
                reason: format!("does not belong to {branch}"),
            });
        }
        let parent = path.parent().unwrap_or(&self.data_dir);
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(parent)
            .map_err(|e| GitError::io("create", parent, e))?;
        self.check_real_parent(&path)?;
        Ok(path)
    }

    /// Refuses a path whose parent resolves elsewhere: a symlink planted at
    /// `worktrees/<repo>` must not turn a removal into one outside the data
    /// dir.
    fn check_real_parent(&self, path: &Path) -> Result<(), GitError> {
        let Some(parent) = path.parent() else {
            return Ok(());
        };
        match parent.canonicalize() {
            Ok(real) if real == parent => Ok(()),
            Ok(_) => Err(GitError::PathEscape {
                path: path.to_owned(),
                expected: format!("a real directory under {}", self.data_dir.display()),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(GitError::io("resolve", parent, e)),
        }
    }

    pub(crate) fn existing_mirror(&self, repo: &RepoName) -> Result<PathBuf, GitError> {
        let path = self.mirror_path(repo);
        if path.join("HEAD").is_file() {
            Ok(path)
        } else {
            Err(GitError::NotARepository { path })
        }
    }
}

/// The registered linked worktree whose checkout is at `path`, if any.
fn registration<'r>(
    git: &'r gix::Repository,
    path: &Path,
) -> Result<Option<gix::worktree::Proxy<'r>>, GitError> {
    for proxy in git.worktrees().ctx("list worktrees")? {
        let Ok(base) = proxy.base() else { continue };
        let base = base.canonicalize().unwrap_or(base);
        if base == path {
            return Ok(Some(proxy));
        }
    }
    Ok(None)
}

/// True while a worktree add has not finished: gix, like git, locks the
/// registration with the reason "initializing" until the checkout is done.
fn is_initializing(proxy: &gix::worktree::Proxy<'_>) -> bool {
    proxy.lock_reason().is_some_and(|r| r == "initializing")
}

pub(crate) fn local_tip(
    git: &gix::Repository,
    branch: &FeatureBranch,
) -> Result<Option<CommitId>, GitError> {
    let Some(reference) = git
        .try_find_reference(branch.full_ref().as_str())
        .ctx("find branch")?
    else {
        return Ok(None);
    };
    match reference.target().try_id() {
        Some(id) => Ok(Some(id.to_owned())),
        None => Err(GitError::BranchMissing {
            branch: branch.to_string(),
        }),
    }
}
