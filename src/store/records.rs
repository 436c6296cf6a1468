//! The records the store keeps: tasks, jobs and events. Their byte form is
//! the codec's business; `schema/store.md` documents every field.

use serde::{Deserialize, Serialize};

use super::codec::Record;
use crate::domain::{CancelResolution, CancelStep, JobStatus, Millis, Role, Stage};

/// Why a task waits for a human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    pub reason: String,
    pub since: Millis,
}

/// Where a task's cancel stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    pub requested_at: Millis,
    pub step: CancelStep,
    pub resolution: Option<CancelResolution>,
}

/// One unit of work, born from a tracker issue or the local API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: u64,
    /// The live key, or its tombstone `K::cancelled::<id>` once cancelled.
    pub work_item_id: String,
    pub plane_issue_id: Option<String>,
    /// The tracker project of the issue, for comments and relations.
    pub plane_project_id: Option<String>,
    pub repo: String,
    /// 1 for the first task of a key, n for the n-th after cancels.
    pub incarnation: u32,
    pub branch: String,
    /// Relative to the data dir.
    pub worktree: String,
    pub stage: Stage,
    pub stage_started_at: Millis,
    /// The feature branch head when the stage's first job started: what
    /// `branch_has_commits` counts from.
    pub stage_base: Option<String>,
    pub title: String,
    pub description: String,
    pub blocked: Option<Blocked>,
    /// Failed jobs per stage, compared with `ORCH_MAX_ATTEMPTS`.
    pub failures: Vec<(Stage, u32)>,
    pub review_rounds: u32,
    pub created_at: Millis,
    pub admitted_at: Option<Millis>,
    pub cancel: Option<Cancel>,
    pub cancelled_at: Option<Millis>,
    /// Task ids this task waits for.
    pub deps: Vec<u64>,
    /// Work item ids of tracker issues orch has never seen, not yet reported
    /// completed or cancelled by the tracker.
    pub external_deps: Vec<String>,
}

impl Record for Task {
    const KIND: &'static str = "task";
    const VERSION: u8 = 1;
}

impl Task {
    pub fn is_terminal(&self) -> bool {
        self.stage.is_terminal()
    }

    pub fn failures_in(&self, stage: Stage) -> u32 {
        self.failures
            .iter()
            .find(|(s, _)| *s == stage)
            .map_or(0, |(_, n)| *n)
    }

    pub fn set_failures(&mut self, stage: Stage, n: u32) {
        self.failures.retain(|(s, _)| *s != stage);
        if n > 0 {
            self.failures.push((stage, n));
        }
    }

    /// A cancel was requested and has not been resolved either way.
    pub fn cancel_pending(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| c.resolution.is_none())
    }
}

/// One run of one role for one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: u64,
    pub task_id: u64,
    pub role: Role,
    /// The stage the job was enqueued for.
    pub stage: Stage,
    pub status: JobStatus,
    /// The fencing counter: raised by every claim.
    pub attempt: u32,
    pub lease_expires_at: Option<Millis>,
    pub worker: Option<String>,
    pub pid: Option<u32>,
    /// The agent's process start time (clock ticks since boot), so a reused
    /// pid is never mistaken for the agent.
    pub pid_start: Option<u64>,
    pub boot_id: Option<String>,
    pub critical_since: Option<Millis>,
    /// Why the job ended as it did.
    pub reason: Option<String>,
    /// Context for the prompt: the previous failure, review comments or a
    /// human's retry note.
    pub note: Option<String>,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    /// Consecutive lease expiries; at `ORCH_MAX_ATTEMPTS` the job fails.
    pub reaped_in_row: u32,
}

impl Record for Job {
    const KIND: &'static str = "job";
    const VERSION: u8 = 1;
}

/// The closed list of event kinds (documented in `schema/store.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    Created,
    Admitted,
    Claimed,
    JobQueued,
    JobDone,
    JobFailed,
    JobInterrupted,
    LeaseExpired,
    StageAdvanced,
    CheckFailed,
    Blocked,
    Unblocked,
    Pushed,
    PrOpened,
    PrClosed,
    Merged,
    Deployed,
    DeploySkipped,
    StartIgnored,
    Relaunched,
    DependencyAdded,
    StopRequested,
    StopIgnored,
    StopDeferred,
    Superseded,
    AgentSignalled,
    JobsCancelled,
    DocsArchived,
    WorktreeRemoved,
    BranchDeleted,
    CleanupFailed,
    Cancelled,
    Tombstoned,
    GateError,
}

impl EventKind {
    pub const ALL: [EventKind; 34] = [
        EventKind::Created,
        EventKind::Admitted,
        EventKind::Claimed,
        EventKind::JobQueued,
        EventKind::JobDone,
        EventKind::JobFailed,
        EventKind::JobInterrupted,
        EventKind::LeaseExpired,
        EventKind::StageAdvanced,
        EventKind::CheckFailed,
        EventKind::Blocked,
        EventKind::Unblocked,
        EventKind::Pushed,
        EventKind::PrOpened,
        EventKind::PrClosed,
        EventKind::Merged,
        EventKind::Deployed,
        EventKind::DeploySkipped,
        EventKind::StartIgnored,
        EventKind::Relaunched,
        EventKind::DependencyAdded,
        EventKind::StopRequested,
        EventKind::StopIgnored,
        EventKind::StopDeferred,
        EventKind::Superseded,
        EventKind::AgentSignalled,
        EventKind::JobsCancelled,
        EventKind::DocsArchived,
        EventKind::WorktreeRemoved,
        EventKind::BranchDeleted,
        EventKind::CleanupFailed,
        EventKind::Cancelled,
        EventKind::Tombstoned,
        EventKind::GateError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Admitted => "admitted",
            EventKind::Claimed => "claimed",
            EventKind::JobQueued => "job_queued",
            EventKind::JobDone => "job_done",
            EventKind::JobFailed => "job_failed",
            EventKind::JobInterrupted => "job_interrupted",
            EventKind::LeaseExpired => "lease_expired",
            EventKind::StageAdvanced => "stage_advanced",
            EventKind::CheckFailed => "check_failed",
            EventKind::Blocked => "blocked",
            EventKind::Unblocked => "unblocked",
            EventKind::Pushed => "pushed",
            EventKind::PrOpened => "pr_opened",
            EventKind::PrClosed => "pr_closed",
            EventKind::Merged => "merged",
            EventKind::Deployed => "deployed",
            EventKind::DeploySkipped => "deploy_skipped",
            EventKind::StartIgnored => "start_ignored",
            EventKind::Relaunched => "relaunched",
            EventKind::DependencyAdded => "dependency_added",
            EventKind::StopRequested => "stop_requested",
            EventKind::StopIgnored => "stop_ignored",
            EventKind::StopDeferred => "stop_deferred",
            EventKind::Superseded => "superseded",
            EventKind::AgentSignalled => "agent_signalled",
            EventKind::JobsCancelled => "jobs_cancelled",
            EventKind::DocsArchived => "docs_archived",
            EventKind::WorktreeRemoved => "worktree_removed",
            EventKind::BranchDeleted => "branch_deleted",
            EventKind::CleanupFailed => "cleanup_failed",
            EventKind::Cancelled => "cancelled",
            EventKind::Tombstoned => "tombstoned",
            EventKind::GateError => "gate_error",
        }
    }
}

/// One entry of a task's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub task_id: u64,
    pub at: Millis,
    pub kind: EventKind,
    pub job_id: Option<u64>,
    pub detail: String,
}

impl Record for Event {
    const KIND: &'static str = "event";
    const VERSION: u8 = 1;
}
