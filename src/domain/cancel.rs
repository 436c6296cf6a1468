//! The vocabulary of a task's cancel, stored on the task record. The cancel
//! state machine that moves through these steps lives in its own module; the
//! store only records where a cancel stands.

use serde::{Deserialize, Serialize};

/// The recorded step of a cancel (SPEC §7.1). A restarted orch resumes a
/// cancel from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CancelStep {
    Requested,
    Deferred,
    StopAgent,
    CancelJobs,
    PreserveDocs,
    RemoveWorktree,
    DeleteRemoteBranch,
    Finalize,
    TellTracker,
    Finished,
}

impl CancelStep {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelStep::Requested => "request",
            CancelStep::Deferred => "deferred",
            CancelStep::StopAgent => "stop_agent",
            CancelStep::CancelJobs => "cancel_jobs",
            CancelStep::PreserveDocs => "preserve_docs",
            CancelStep::RemoveWorktree => "remove_worktree",
            CancelStep::DeleteRemoteBranch => "delete_remote_branch",
            CancelStep::Finalize => "finalize",
            CancelStep::TellTracker => "tell_tracker",
            CancelStep::Finished => "finished",
        }
    }
}

/// How a cancel ended: the task was cancelled, or a deploy that was already
/// in its critical window succeeded and the STOP was superseded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CancelResolution {
    Cancelled,
    Superseded,
}

impl CancelResolution {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelResolution::Cancelled => "cancelled",
            CancelResolution::Superseded => "superseded",
        }
    }
}
