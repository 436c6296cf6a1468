//! The claim snapshot as one value: job counts, the running jobs, the
//! blocked tasks and both gate snapshots. The HTTP `/queue` and `orch queue`
//! print it; `schema/queue.json` is its JSON Schema.

use serde::Serialize;

use crate::clock::rfc3339;
use crate::domain::{JobStatus, Millis};
use crate::store::{DepsSnapshot, Job, SerialSnapshot, Store, StoreError, Task};

/// At most this many entries are listed in each list of the snapshot; a
/// `…_count` beside each list says how many there are in all.
pub const LIST_CAP: usize = 50;

/// The `/queue` answer (SPEC §9.2). Its fields follow the order of the
/// specification's example; the STOP section (`stop`) belongs after
/// `task_deps` and is filled by the cancel module.
#[derive(Debug, Clone, Serialize)]
pub struct QueueSnapshot {
    pub generated_at: String,
    pub jobs: std::collections::BTreeMap<&'static str, u64>,
    pub running: Vec<RunningEntry>,
    pub running_count: u64,
    pub blocked: Vec<BlockedEntry>,
    pub blocked_count: u64,
    pub serial_gate: SerialSnapshot,
    pub task_deps: DepsSnapshot,
}

/// A job that a worker holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunningEntry {
    pub job_id: u64,
    pub task_id: u64,
    pub work_item_id: String,
    pub repo: String,
    pub role: &'static str,
    pub attempt: u32,
    pub pid: Option<u32>,
    pub started_at: Option<String>,
    /// Whether the job is inside the deploy's critical window.
    pub critical: bool,
}

/// A task that waits for a human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockedEntry {
    pub task_id: u64,
    pub work_item_id: String,
    pub stage: &'static str,
    pub reason: String,
}

/// Builds the snapshot from the maintained indexes and counters only, so
/// its cost does not grow with the number of jobs. It never fails: a store
/// error empties the part it hit (and is logged), like the gate snapshots.
pub fn snapshot(store: &Store, now: Millis) -> QueueSnapshot {
    let counts = store.job_counts();
    let (running, running_count) = store
        .read(|rx| {
            let (jobs, count) = rx.jobs_with_status_capped(JobStatus::Running, LIST_CAP)?;
            let entries = jobs
                .iter()
                .map(|j| Ok(running_entry(j, &task_of(rx, j.task_id)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok((entries, count))
        })
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "running jobs snapshot failed; listing none");
            (Vec::new(), 0)
        });
    let (blocked, blocked_count) = store
        .read(|rx| {
            let (tasks, count) = rx.blocked_tasks(LIST_CAP)?;
            Ok((tasks.iter().map(blocked_entry).collect(), count))
        })
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "blocked tasks snapshot failed; listing none");
            (Vec::new(), 0)
        });
    QueueSnapshot {
        generated_at: rfc3339(now),
        jobs: JobStatus::ALL
            .iter()
            .map(|s| (s.as_str(), counts.get(s).copied().unwrap_or(0)))
            .collect(),
        running,
        running_count,
        blocked,
        blocked_count,
        serial_gate: store.serial_snapshot(),
        task_deps: store.deps_snapshot(),
    }
}

fn task_of(rx: &crate::store::ReadTx, id: u64) -> Result<Task, StoreError> {
    rx.task(id)?
        .ok_or_else(|| StoreError::NotFound(format!("task {id}")))
}

fn running_entry(j: &Job, t: &Task) -> RunningEntry {
    RunningEntry {
        job_id: j.id,
        task_id: t.id,
        work_item_id: t.work_item_id.clone(),
        repo: t.repo.clone(),
        role: j.role.as_str(),
        attempt: j.attempt,
        pid: j.pid,
        started_at: j.started_at.map(rfc3339),
        critical: j.critical_since.is_some(),
    }
}

fn blocked_entry(t: &Task) -> BlockedEntry {
    BlockedEntry {
        task_id: t.id,
        work_item_id: t.work_item_id.clone(),
        stage: t.stage.as_str(),
        reason: t
            .blocked
            .as_ref()
            .map(|b| b.reason.clone())
            .unwrap_or_default(),
    }
}
