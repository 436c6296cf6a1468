//! Applying pipeline decisions to the store: each function runs inside one
//! write transaction (`Tx`), so a job's outcome, the stage change and the
//! next job are committed together or not at all.

use crate::domain::{JobStatus, Role, Stage};
use crate::store::{Completion, EventKind, NewTask, StoreError, Task, Tx};

use super::decide::{Counters, Decision, Limits, Outcome, decide};

/// What a start did (SPEC §7.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartResult {
    Created,
    Relaunched,
    Ignored,
}

impl StartResult {
    pub fn as_str(self) -> &'static str {
        match self {
            StartResult::Created => "created",
            StartResult::Relaunched => "relaunched",
            StartResult::Ignored => "ignored",
        }
    }
}

/// The only entry point that starts a pipeline. No live task for the key →
/// a new task in `analysis` with its analyst job; a live task in `created` →
/// a normal start; a live task in `analysis` without a live analyst job →
/// relaunch (unblocking it like a retry); anything else changes nothing but
/// the event `start_ignored`.
pub fn start(tx: &mut Tx<'_>, new: NewTask) -> Result<(StartResult, Task), StoreError> {
    let live = tx.find_live(
        Some(new.work_item_id.as_str()),
        new.plane_issue_id.as_ref().map(|p| p.as_str()),
    )?;
    let Some(id) = live else {
        let t = tx.create_task(new)?;
        tx.set_stage(t.id, Stage::Analysis)?;
        tx.enqueue(t.id, Role::Analyst, None)?;
        return Ok((StartResult::Created, tx.task(t.id)?));
    };
    let task = tx.task(id)?;
    let result = match task.stage {
        _ if task.cancel.is_some() => StartResult::Ignored,
        Stage::Created => {
            tx.set_stage(id, Stage::Analysis)?;
            tx.enqueue(id, Role::Analyst, None)?;
            StartResult::Created
        }
        Stage::Analysis if !tx.has_live_job(id, Role::Analyst)? => {
            reset_stage_counts(tx, id)?;
            if task.blocked.is_some() {
                tx.set_blocked(id, None)?;
            }
            tx.enqueue(id, Role::Analyst, None)?;
            tx.event(
                id,
                EventKind::Relaunched,
                None,
                "start of a task in analysis without a live analyst job",
            )?;
            StartResult::Relaunched
        }
        _ => {
            tx.event(
                id,
                EventKind::StartIgnored,
                None,
                format!("task is in {}", task.stage),
            )?;
            StartResult::Ignored
        }
    };
    Ok((result, tx.task(id)?))
}

fn reset_stage_counts(tx: &mut Tx<'_>, id: u64) -> Result<Task, StoreError> {
    tx.update_task(id, |t| {
        let stage = t.stage;
        t.set_failures(stage, 0);
        if stage == Stage::Review || stage == Stage::Development {
            t.review_rounds = 0;
        }
    })
}

/// A human clears `blocked`: the stage's counts reset and its role is queued
/// with the note in its prompt.
pub fn retry(tx: &mut Tx<'_>, id: u64, note: Option<String>) -> Result<Task, StoreError> {
    let task = tx.task(id)?;
    if task.is_terminal() || task.cancel.is_some() {
        return Err(StoreError::Conflict(format!(
            "task {id} is {} and cannot be retried",
            task.stage
        )));
    }
    if task.blocked.is_none() {
        return Err(StoreError::Conflict(format!("task {id} is not blocked")));
    }
    let role = task
        .stage
        .transition()
        .and_then(|t| t.role)
        .ok_or_else(|| StoreError::Conflict(format!("stage {} runs no job", task.stage)))?;
    reset_stage_counts(tx, id)?;
    tx.set_blocked(id, None)?;
    tx.enqueue(id, role, note)?;
    tx.task(id)
}

/// What applying an outcome led to, for the driver's follow-up IO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub decision: Option<Decision>,
    pub task: Task,
}

/// Ends a job with its outcome and applies the pipeline's decision, fenced
/// on (job, attempt). A job whose task has a cancel requested changes
/// nothing but itself: it ends cancelled and the cancel goes on.
pub fn finish_job(
    tx: &mut Tx<'_>,
    job_id: u64,
    attempt: u32,
    outcome: Outcome,
    limits: Limits,
) -> Result<Applied, StoreError> {
    let job = tx.fenced(job_id, attempt)?;
    let task = tx.task(job.task_id)?;
    if job.critical_since.is_some() && task.cancel_pending() {
        return end_deferred_cancel(tx, &job, &task, outcome);
    }
    if task.cancel.is_some() || task.is_terminal() {
        tx.complete(
            job_id,
            attempt,
            Completion::Interrupted("the task is being cancelled".into()),
        )?;
        return Ok(Applied {
            decision: None,
            task: tx.task(task.id)?,
        });
    }
    let completion = match &outcome {
        Outcome::Failed(reason) => Completion::Failed(reason.clone()),
        Outcome::Passed | Outcome::ChangesRequested(_) => Completion::Done,
    };
    tx.complete(job_id, attempt, completion)?;
    if let Outcome::Failed(reason) = &outcome {
        tx.event(
            task.id,
            EventKind::CheckFailed,
            Some(job_id),
            reason.clone(),
        )?;
    }
    let task = tx.task(task.id)?;
    let counters = Counters {
        stage: job.stage,
        failures: task.failures_in(job.stage),
        review_rounds: task.review_rounds,
    };
    let decision = decide(counters, &outcome, limits);
    apply(tx, &task, &decision)?;
    Ok(Applied {
        decision: Some(decision),
        task: tx.task(task.id)?,
    })
}

/// The two honest endings of a STOP deferred by the critical window (SPEC
/// §7.4): a deploy that succeeded makes the task `done` and the STOP
/// `superseded` (the change is live); one that failed lets the cancel go on
/// from stopping the agent, and what was merged stays merged.
fn end_deferred_cancel(
    tx: &mut Tx<'_>,
    job: &crate::store::Job,
    task: &Task,
    outcome: Outcome,
) -> Result<Applied, StoreError> {
    match outcome {
        Outcome::Passed => {
            tx.complete(job.id, job.attempt, Completion::Done)?;
            tx.set_stage(task.id, Stage::Done)?;
            tx.supersede_cancel(task.id)?;
            Ok(Applied {
                decision: Some(Decision::Advance {
                    to: Stage::Done,
                    role: None,
                }),
                task: tx.task(task.id)?,
            })
        }
        Outcome::Failed(reason) | Outcome::ChangesRequested(reason) => {
            tx.complete(job.id, job.attempt, Completion::Failed(reason.clone()))?;
            let merged = tx
                .events_of(task.id)?
                .into_iter()
                .rev()
                .find(|e| e.kind == EventKind::Merged && e.job_id == Some(job.id))
                .map_or_else(
                    || "nothing was merged".to_owned(),
                    |e| format!("merged and left as is: {}", e.detail),
                );
            tx.event(
                task.id,
                EventKind::StopRequested,
                Some(job.id),
                format!("deploy failed ({reason}); the deferred STOP continues; {merged}"),
            )?;
            tx.set_cancel_step(task.id, crate::domain::CancelStep::StopAgent)?;
            Ok(Applied {
                decision: None,
                task: tx.task(task.id)?,
            })
        }
    }
}

/// A job the reaper failed: the same retry-or-block decision as any failure.
pub fn after_reaped_failure(
    tx: &mut Tx<'_>,
    job_id: u64,
    limits: Limits,
) -> Result<(), StoreError> {
    let job = tx.job(job_id)?;
    let task = tx.task(job.task_id)?;
    if job.status != JobStatus::Failed
        || task.is_terminal()
        || task.cancel.is_some()
        || task.stage != job.stage
    {
        return Ok(());
    }
    let reason = job.reason.clone().unwrap_or_else(|| "lease expired".into());
    let counters = Counters {
        stage: job.stage,
        failures: task.failures_in(job.stage),
        review_rounds: task.review_rounds,
    };
    apply(
        tx,
        &task,
        &decide(counters, &Outcome::Failed(reason), limits),
    )
}

fn apply(tx: &mut Tx<'_>, task: &Task, decision: &Decision) -> Result<(), StoreError> {
    match decision {
        Decision::Advance { to, role } => {
            tx.set_stage(task.id, *to)?;
            if let Some(role) = role {
                tx.enqueue(task.id, *role, None)?;
            }
        }
        Decision::Retry { role, note } => {
            tx.enqueue(task.id, *role, Some(note.clone()))?;
        }
        Decision::Block { reason } => {
            tx.set_blocked(task.id, Some(reason.clone()))?;
        }
        Decision::Rework { note } => {
            tx.update_task(task.id, |t| t.review_rounds += 1)?;
            tx.set_stage(task.id, Stage::Development)?;
            tx.enqueue(task.id, Role::Developer, Some(note.clone()))?;
        }
    }
    Ok(())
}
