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
    pub stop: StopSnapshot,
}

/// The STOP block: cancels under way, those deferred by a critical window,
/// cleanup debt, and the most recent cancels.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StopSnapshot {
    pub enabled: bool,
    pub in_progress: Vec<CancelEntry>,
    pub in_progress_count: u64,
    pub deferred: Vec<DeferredEntry>,
    pub deferred_count: u64,
    pub cleanup_debt: Vec<DebtEntry>,
    pub cleanup_debt_count: u64,
    pub recent: Vec<RecentEntry>,
    pub recent_count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CancelEntry {
    pub task_id: u64,
    pub work_item_id: String,
    pub requested_at: String,
    pub step: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeferredEntry {
    pub task_id: u64,
    pub work_item_id: String,
    pub requested_at: String,
    pub job_id: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DebtEntry {
    pub task_id: u64,
    pub what: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecentEntry {
    pub task_id: u64,
    pub work_item_id: String,
    pub cancelled_at: String,
}

fn stop_snapshot(store: &Store) -> Result<StopSnapshot, StoreError> {
    store.read(|rx| {
        let mut snap = StopSnapshot {
            enabled: store.gates().stop_enabled,
            ..StopSnapshot::default()
        };
        for id in rx.cancelling(usize::MAX)? {
            let t = task_of(rx, id)?;
            let Some(c) = &t.cancel else { continue };
            let requested_at = rfc3339(c.requested_at);
            if c.step == crate::domain::CancelStep::Deferred {
                snap.deferred_count += 1;
                let critical = rx
                    .jobs_of(id)?
                    .into_iter()
                    .find(|j| j.status == JobStatus::Running && j.critical_since.is_some());
                if let (Some(job), true) = (critical, snap.deferred.len() < LIST_CAP) {
                    snap.deferred.push(DeferredEntry {
                        task_id: id,
                        work_item_id: t.work_item_id.clone(),
                        requested_at: requested_at.clone(),
                        job_id: job.id,
                    });
                }
            }
            snap.in_progress_count += 1;
            if snap.in_progress.len() < LIST_CAP {
                snap.in_progress.push(CancelEntry {
                    task_id: id,
                    work_item_id: t.work_item_id,
                    requested_at,
                    step: c.step.as_str(),
                });
            }
        }
        let debts = rx.debts()?;
        snap.cleanup_debt_count = debts.len() as u64;
        snap.cleanup_debt = debts
            .into_iter()
            .take(LIST_CAP)
            .map(|d| DebtEntry {
                task_id: d.task_id,
                what: d.what,
                attempts: d.attempts,
                last_error: Some(d.last_error).filter(|e| !e.is_empty()),
            })
            .collect();
        for id in rx.recently_cancelled(LIST_CAP)? {
            let t = task_of(rx, id)?;
            snap.recent.push(RecentEntry {
                task_id: id,
                work_item_id: t.work_item_id,
                cancelled_at: t.cancelled_at.map(rfc3339).unwrap_or_default(),
            });
        }
        snap.recent_count = rx.cancelled_count()?;
        Ok(snap)
    })
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
        stop: stop_snapshot(store).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "stop snapshot failed; listing none");
            StopSnapshot {
                enabled: store.gates().stop_enabled,
                ..StopSnapshot::default()
            }
        }),
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
