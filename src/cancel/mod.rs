//! STOP: the single declarative task cancel (SPEC §7). This module is a
//! leaf: it knows the store below it and nothing above. It holds the one
//! function every trigger calls (`request`) and the pure order of the steps;
//! the runtime's cancel driver does the IO of each step and records where
//! the cancel stands, so a restarted orch resumes from there.

use crate::domain::{CancelStep, JobStatus};
use crate::store::{CancelRequest, EventKind, StoreError, Tx};

/// What a STOP did, for the trigger to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAnswer {
    /// The cancel was requested now; it stands at `step`.
    Accepted { task_id: u64, step: CancelStep },
    /// A cancel was already under way: nothing changed.
    AlreadyRequested { task_id: u64, step: CancelStep },
    /// The task is terminal: nothing changed.
    Noop { task_id: u64 },
    /// `ORCH_STOP_STATUS_ENABLED=false`: nothing changed but the event that
    /// says the STOP was ignored.
    Disabled { task_id: u64 },
}

/// Step 1 (and 2): records the request in one transaction. From then on no
/// job of the task is claimed or enqueued. If a job of the task is inside
/// its critical window, the cancel is deferred until that job ends.
pub fn request(tx: &mut Tx<'_>, task_id: u64, enabled: bool) -> Result<StopAnswer, StoreError> {
    if !enabled {
        tracing::info!(task_id, "STOP ignored: ORCH_STOP_STATUS_ENABLED is off");
        tx.event(
            task_id,
            EventKind::StopIgnored,
            None,
            "ORCH_STOP_STATUS_ENABLED is off",
        )?;
        return Ok(StopAnswer::Disabled { task_id });
    }
    match tx.request_cancel(task_id)? {
        CancelRequest::Terminal => Ok(StopAnswer::Noop { task_id }),
        CancelRequest::AlreadyRequested => {
            let step = tx
                .task(task_id)?
                .cancel
                .map_or(CancelStep::Requested, |c| c.step);
            Ok(StopAnswer::AlreadyRequested { task_id, step })
        }
        CancelRequest::Requested => {
            let critical = critical_job(tx, task_id)?;
            let step = match critical {
                Some(job) => {
                    tx.event(
                        task_id,
                        EventKind::StopDeferred,
                        Some(job),
                        "a job is inside its critical window (merge and deploy)",
                    )?;
                    CancelStep::Deferred
                }
                None => CancelStep::StopAgent,
            };
            tx.set_cancel_step(task_id, step)?;
            Ok(StopAnswer::Accepted { task_id, step })
        }
    }
}

/// The running job of the task that is inside its critical window, if any.
pub fn critical_job(tx: &Tx<'_>, task_id: u64) -> Result<Option<u64>, StoreError> {
    Ok(tx
        .jobs_of(task_id)?
        .into_iter()
        .find(|j| j.status == JobStatus::Running && j.critical_since.is_some())
        .map(|j| j.id))
}

/// The step after `step` completed. `Deferred` waits for the critical job
/// and then goes on as a fresh cancel.
pub fn after(step: CancelStep) -> CancelStep {
    match step {
        CancelStep::Requested | CancelStep::Deferred => CancelStep::StopAgent,
        CancelStep::StopAgent => CancelStep::CancelJobs,
        CancelStep::CancelJobs => CancelStep::PreserveDocs,
        CancelStep::PreserveDocs => CancelStep::RemoveWorktree,
        CancelStep::RemoveWorktree => CancelStep::DeleteRemoteBranch,
        CancelStep::DeleteRemoteBranch => CancelStep::Finalize,
        CancelStep::Finalize => CancelStep::TellTracker,
        CancelStep::TellTracker | CancelStep::Finished => CancelStep::Finished,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_run_in_the_documented_order() {
        let mut step = CancelStep::Requested;
        let mut seen = vec![step];
        while step != CancelStep::Finished {
            step = after(step);
            seen.push(step);
        }
        let names: Vec<&str> = seen.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "request",
                "stop_agent",
                "cancel_jobs",
                "preserve_docs",
                "remove_worktree",
                "delete_remote_branch",
                "finalize",
                "tell_tracker",
                "finished"
            ]
        );
        assert_eq!(after(CancelStep::Deferred), CancelStep::StopAgent);
    }
}
