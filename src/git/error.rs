//! The one error type of the git layer. Every refusal that protects a branch,
//! a path or a remote has its own variant, so callers (the cancel path, the
//! exit checks, the deploy merge) can tell a permanent refusal from a passing
//! failure without parsing messages.

use std::path::PathBuf;

use crate::domain::IdError;

/// A commit id as the git layer hands it out and takes it back.
pub type CommitId = gix::ObjectId;

/// Why a git operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// An identifier from outside did not match its grammar.
    #[error(transparent)]
    Id(#[from] IdError),

    /// The incarnation of a task starts at 1.
    #[error("invalid incarnation {0}: the first incarnation of a key is 1")]
    Incarnation(u32),

    /// Only branches named `feature/<WORK_ITEM_ID>` or `feature/<WORK_ITEM_ID>-<n>`
    /// are ever created, pushed or deleted by orch.
    #[error(
        "refusing to touch {branch:?}: not an orch feature branch (feature/<WORK_ITEM_ID>[-<n>])"
    )]
    NotFeatureBranch { branch: String },

    /// The base branch, `main`, `master` and the remote's default branch are
    /// never deleted or overwritten.
    #[error("refusing to delete or overwrite protected branch {branch:?}")]
    ProtectedBranch { branch: String },

    /// A configured branch name (the base branch) is not a plain branch name.
    #[error("invalid branch name {name:?}: {reason}")]
    InvalidBranchName { name: String, reason: String },

    /// A configured remote is not something orch will hand to git.
    #[error("invalid remote {remote:?}: {reason}")]
    InvalidRemote {
        remote: String,
        reason: &'static str,
    },

    /// A path would leave the directory orch keeps its worktrees in.
    #[error("path {path:?} is outside {expected}")]
    PathEscape { path: PathBuf, expected: String },

    /// The mirror has no remote-tracking ref for the base branch.
    #[error("base branch {base:?} does not exist on the remote")]
    BaseBranchMissing { base: String },

    /// A local feature branch that should exist does not.
    #[error("local branch {branch:?} does not exist")]
    BranchMissing { branch: String },

    /// The compare-and-swap of a branch deletion or merge found another tip.
    #[error("branch {branch:?} moved: expected {expected}, found {actual}")]
    BranchMoved {
        branch: String,
        expected: CommitId,
        actual: CommitId,
    },

    /// The mirror's path exists but is not a git repository.
    #[error("{path:?} exists but is not a git repository; orch will not replace it")]
    NotARepository { path: PathBuf },

    /// A path is registered or occupied in a way orch did not set up.
    #[error("worktree {path:?} conflicts: {reason}")]
    WorktreeConflict { path: PathBuf, reason: String },

    /// The remote refused a push because it is not a fast-forward; orch never
    /// forces, so this is final until someone reconciles the branches.
    #[error("push of {branch:?} refused: not a fast-forward of the remote branch ({detail})")]
    NonFastForward { branch: String, detail: String },

    /// The remote refused a push for another reason (a hook or a protection).
    #[error("push to {target:?} rejected by the remote: {reason}")]
    PushRejected { target: String, reason: String },

    /// A filesystem operation failed.
    #[error("{op} {path:?}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A gix operation failed; the message carries gix's whole error chain.
    #[error("{op}: {source:#}")]
    Gix {
        op: &'static str,
        #[source]
        source: gix::Error,
    },

    /// The `git` program could not be started.
    #[error("could not run git: {0}")]
    Spawn(#[source] std::io::Error),

    /// A `git` command exited unsuccessfully for a reason not mapped above.
    #[error("git {command} failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
}

impl GitError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True for refusals that will not change on retry: a protected or
    /// foreign branch, an invalid name, a path escape, a non-fast-forward.
    /// The cancel path closes such cleanup debt at once instead of retrying.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Id(_)
                | Self::Incarnation(_)
                | Self::NotFeatureBranch { .. }
                | Self::ProtectedBranch { .. }
                | Self::InvalidBranchName { .. }
                | Self::InvalidRemote { .. }
                | Self::PathEscape { .. }
                | Self::NonFastForward { .. }
        )
    }
}

/// Wraps a gix error with the operation that produced it.
pub(crate) trait GixContext<T> {
    fn ctx(self, op: &'static str) -> Result<T, GitError>;
}

impl<T, E: Into<gix::Error>> GixContext<T> for Result<T, E> {
    fn ctx(self, op: &'static str) -> Result<T, GitError> {
        self.map_err(|e| GitError::Gix {
            op,
            source: e.into(),
        })
    }
}
