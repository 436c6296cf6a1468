//! Pushes and remote branch deletions on plain git remotes, through the
//! `git` program because gix has no push (upstream issue #306). Every
//! refspec is a full `<src>:refs/heads/<dst>` after `--`, none has a `+`,
//! and no `--force` flag is ever passed: a push that is not a fast-forward
//! is refused by the remote and reported, never forced.

use std::ffi::OsStr;

use crate::domain::RepoName;

use super::cli;
use super::error::{CommitId, GitError, GixContext};
use super::names::{self, FeatureBranch, Protected};
use super::worktree::local_tip;
use super::{GitLayer, mirror, open_repo};

/// What `push_branch` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The remote branch was created or fast-forwarded to `head`.
    Pushed { head: CommitId },
    /// The remote branch was already at `head`.
    UpToDate { head: CommitId },
}

/// What `delete_remote_branch` found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteDelete {
    Deleted,
    AlreadyGone,
}

/// What `fast_forward_base` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FastForward {
    /// The remote base branch moved from `from` to the feature head `to`.
    Pushed { from: CommitId, to: CommitId },
    /// The base already contains the feature head; nothing was pushed, so a
    /// repeated merge is harmless.
    AlreadyContained { base: CommitId, head: CommitId },
}

impl GitLayer {
    /// Pushes the local feature branch to the same name on `remote`,
    /// without force. A remote branch that diverged is refused with
    /// [`GitError::NonFastForward`].
    pub fn push_branch(
        &self,
        repo: &RepoName,
        remote: &str,
        branch: &str,
    ) -> Result<PushOutcome, GitError> {
        let remote = names::remote(remote)?;
        let branch = FeatureBranch::parse(branch)?;
        let lock = self.lock(repo);
        let _held = lock.hold();
        let mirror = self.existing_mirror(repo)?;
        let git = open_repo(&mirror)?;
        let head = local_tip(&git, &branch)?.ok_or_else(|| GitError::BranchMissing {
            branch: branch.to_string(),
        })?;
        let dest = branch.full_ref();
        let line = push(&mirror, remote, &head.to_string(), &dest, branch.as_str())?;
        Ok(match line.flag {
            '=' => PushOutcome::UpToDate { head },
            _ => PushOutcome::Pushed { head },
        })
    }

    /// Deletes the feature branch `branch` on `remote`. The base branch,
    /// `main`, `master` and the remote's default branch (its `HEAD`) are
    /// refused; a branch already gone counts as deleted.
    pub fn delete_remote_branch(
        &self,
        repo: &RepoName,
        remote: &str,
        branch: &str,
        base_branch: &str,
    ) -> Result<RemoteDelete, GitError> {
        let remote = names::remote(remote)?;
        let base = names::base_branch(base_branch)?;
        let unchecked = Protected {
            base,
            remote_default: None,
        };
        let branch = names::deletable_branch(branch, &unchecked)?;
        let lock = self.lock(repo);
        let _held = lock.hold();
        // Only the remote's listing is needed, so an empty clone will do
        // when cleanup runs after the mirror was lost.
        let mirror = self.init_mirror(repo)?;
        let listing = mirror::list_remote(&open_repo(&mirror)?, remote, branch.as_str())?;
        names::deletable_branch(
            branch.as_str(),
            &Protected {
                base,
                remote_default: listing.default_branch.as_deref(),
            },
        )?;
        if listing.tip.is_none() {
            return Ok(RemoteDelete::AlreadyGone);
        }
        let dest = branch.full_ref();
        match push(&mirror, remote, "", &dest, branch.as_str()) {
            Ok(_) => Ok(RemoteDelete::Deleted),
            // Someone else deleted it between the listing and the push.
            Err(GitError::PushRejected { reason, .. })
                if reason.contains("remote ref does not exist") =>
            {
                Ok(RemoteDelete::AlreadyGone)
            }
            Err(e) => Err(e),
        }
    }

    /// The deploy merge on a plain remote: a non-force push of the feature
    /// head onto the remote `base` branch. Skipped when the base already
    /// contains the head; refused, never forced, when the base has commits
    /// the head lacks. With `expected_head`, a feature branch that moved
    /// since it was reviewed is refused too.
    pub fn fast_forward_base(
        &self,
        repo: &RepoName,
        remote: &str,
        branch: &str,
        base_branch: &str,
        expected_head: Option<CommitId>,
    ) -> Result<FastForward, GitError> {
        let remote = names::remote(remote)?;
        let base = names::base_branch(base_branch)?;
        let branch = FeatureBranch::parse(branch)?;
        let lock = self.lock(repo);
        let _held = lock.hold();
        let mirror = self.existing_mirror(repo)?;
        let git = open_repo(&mirror)?;
        mirror::fetch(&git, remote)?;
        let head = local_tip(&git, &branch)?.ok_or_else(|| GitError::BranchMissing {
            branch: branch.to_string(),
        })?;
        if let Some(expected) = expected_head.filter(|e| *e != head) {
            return Err(GitError::BranchMoved {
                branch: branch.to_string(),
                expected,
                actual: head,
            });
        }
        let base_tip = mirror::tracking_tip(&git, base)?;
        let merge_base = git
            .merge_base(head, base_tip)
            .ctx("find merge base")?
            .map(|id| id.detach());
        if head == base_tip || merge_base == Some(head) {
            return Ok(FastForward::AlreadyContained {
                base: base_tip,
                head,
            });
        }
        if merge_base != Some(base_tip) {
            return Err(GitError::NonFastForward {
                branch: base.to_owned(),
                detail: format!("{base} at {base_tip} is not an ancestor of {branch} at {head}"),
            });
        }
        let dest = format!("refs/heads/{base}");
        push(&mirror, remote, &head.to_string(), &dest, base)?;
        Ok(FastForward::Pushed {
            from: base_tip,
            to: head,
        })
    }
}

/// Pushes `src` (a commit id, or empty to delete) to the full ref `dest` on
/// `remote` and returns the remote's verdict on that ref.
fn push(
    git_dir: &std::path::Path,
    remote: &str,
    src: &str,
    dest: &str,
    label: &str,
) -> Result<cli::PushedRef, GitError> {
    let refspec = format!("{src}:{dest}");
    let args: [&OsStr; 5] = [
        "push".as_ref(),
        "--porcelain".as_ref(),
        "--".as_ref(),
        remote.as_ref(),
        refspec.as_ref(),
    ];
    let out = cli::run(git_dir, &args)?;
    let line = cli::pushed_ref(&out.stdout, dest);
    match line {
        Some(line) if out.success && line.flag != '!' => Ok(line),
        Some(line) if is_non_fast_forward(&line.summary) => Err(GitError::NonFastForward {
            branch: label.to_owned(),
            detail: line.summary,
        }),
        Some(line) => Err(GitError::PushRejected {
            target: dest.to_owned(),
            reason: format!("{} {}", line.summary, out.stderr).trim().to_owned(),
        }),
        None if out.stderr.contains("remote ref does not exist") => Err(GitError::PushRejected {
            target: dest.to_owned(),
            reason: out.stderr,
        }),
        None => Err(GitError::Command {
            command: format!("push -- {} {refspec}", names::redact(remote)),
            status: out.status,
            stderr: out.stderr,
        }),
    }
}

fn is_non_fast_forward(summary: &str) -> bool {
    ["non-fast-forward", "fetch first", "stale info"]
        .iter()
        .any(|s| summary.contains(s))
}
