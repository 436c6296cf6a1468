//! Job operations: enqueue, the gated claim, fenced heartbeat and
//! completion, cancelling a task's jobs, and the reaper (SPEC §5).

use redb::ReadableTable;

use super::error::StoreError;
use super::records::{EventKind, Job};
use super::tx::{Tx, jobs_of};
use crate::domain::{JobStatus, Millis, Role, Stage};

/// What a worker holds after a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job_id: u64,
    pub task_id: u64,
    pub attempt: u32,
    pub role: Role,
    pub stage: Stage,
    pub lease_expires_at: Millis,
}

/// How a worker ends a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    Done,
    /// Agent exit ≠ 0, timeout or a failed exit check: counts as a failure.
    Failed(String),
    /// Shutdown or a lost agent: back to the queue, not a failure.
    Interrupted(String),
}

/// What the reaper did with one expired lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReapOutcome {
    pub job_id: u64,
    pub task_id: u64,
    pub status: JobStatus,
}

impl Tx<'_> {
    /// Queues a job of `role` for the task's current stage. Refused for a
    /// terminal task and for one with a cancel requested.
    pub fn enqueue(
        &mut self,
        task_id: u64,
        role: Role,
        note: Option<String>,
    ) -> Result<Job, StoreError> {
        let task = self.task(task_id)?;
        if task.is_terminal() {
            return Err(StoreError::Conflict(format!(
                "task {task_id} is {}",
                task.stage
            )));
        }
        if task.cancel.is_some() {
            return Err(StoreError::Conflict(format!(
                "task {task_id} has a cancel requested"
            )));
        }
        let job = Job {
            id: self.next_id("job_seq")?,
            task_id,
            role,
            stage: task.stage,
            status: JobStatus::Queued,
            attempt: 0,
            lease_expires_at: None,
            worker: None,
            pid: None,
            pid_start: None,
            boot_id: None,
            critical_since: None,
            reason: None,
            note,
            created_at: self.now,
            started_at: None,
            finished_at: None,
            reaped_in_row: 0,
        };
        self.put_job(None, &job)?;
        self.event(task_id, EventKind::JobQueued, Some(job.id), role.as_str())?;
        self.reindex_task(&task)?;
        Ok(job)
    }

    /// Claims the oldest eligible queued job: the smaller of the first ready
    /// job and the first repo head. Sets it running with a new attempt and a
    /// lease, and admits its task if this is its first analyst claim.
    pub fn claim(
        &mut self,
        worker: &str,
        lease_ms: i64,
        boot_id: Option<&str>,
    ) -> Result<Option<Lease>, StoreError> {
        let ready = self.ready.first()?.map(|(k, _)| k.value());
        let head = self.heads.first()?.map(|(k, _)| k.value());
        let Some(job_id) = ready.into_iter().chain(head).min() else {
            return Ok(None);
        };
        let old = self.job(job_id)?;
        let task = self.task(old.task_id)?;
        // The index says claimable; the terminal and cancel checks are
        // repeated here because they fail closed.
        if old.status != JobStatus::Queued || task.is_terminal() || task.cancel.is_some() {
            return Err(StoreError::Db(format!(
                "claim index names job {job_id}, which is not claimable; run `orch db check`"
            )));
        }
        let mut job = old.clone();
        job.status = JobStatus::Running;
        job.attempt += 1;
        job.lease_expires_at = Some(self.now + lease_ms);
        job.worker = Some(worker.to_owned());
        job.boot_id = boot_id.map(str::to_owned);
        job.started_at = Some(self.now);
        job.pid = None;
        job.pid_start = None;
        self.put_job(Some(&old), &job)?;
        self.event(
            task.id,
            EventKind::Claimed,
            Some(job_id),
            format!("{} attempt {} by {worker}", job.role, job.attempt),
        )?;
        if job.role == Role::Analyst && task.admitted_at.is_none() {
            let mut admitted = task.clone();
            admitted.admitted_at = Some(self.now);
            self.event(
                task.id,
                EventKind::Admitted,
                Some(job_id),
                "first analyst claim",
            )?;
            self.put_task(Some(&task), &admitted)?;
        } else {
            self.reindex_task(&task)?;
        }
        Ok(Some(Lease {
            job_id,
            task_id: task.id,
            attempt: job.attempt,
            role: job.role,
            stage: job.stage,
            lease_expires_at: self.now + lease_ms,
        }))
    }

    /// The job if (job, attempt) still holds it running; the fence error
    /// otherwise.
    pub fn fenced(&self, job_id: u64, attempt: u32) -> Result<Job, StoreError> {
        let job = self.job(job_id)?;
        if job.status != JobStatus::Running || job.attempt != attempt {
            return Err(StoreError::Fenced {
                job: job_id,
                attempt,
                status: job.status,
                current: job.attempt,
            });
        }
        Ok(job)
    }

    /// Extends a running job's lease; returns the new expiry. A fenced-off
    /// heartbeat tells the worker to stop its agent.
    pub fn heartbeat(
        &mut self,
        job_id: u64,
        attempt: u32,
        lease_ms: i64,
    ) -> Result<Millis, StoreError> {
        let old = self.fenced(job_id, attempt)?;
        let mut job = old.clone();
        job.lease_expires_at = Some(self.now + lease_ms);
        self.put_job(Some(&old), &job)?;
        Ok(self.now + lease_ms)
    }

    /// Records the agent process of a running job (pid and start time).
    pub fn set_process(
        &mut self,
        job_id: u64,
        attempt: u32,
        pid: u32,
        start_time: u64,
    ) -> Result<(), StoreError> {
        let old = self.fenced(job_id, attempt)?;
        let mut job = old.clone();
        job.pid = Some(pid);
        job.pid_start = Some(start_time);
        self.put_job(Some(&old), &job)
    }

    /// Enters the critical window. Refused if a cancel is already requested,
    /// so a STOP and the merge never both win.
    pub fn enter_critical(&mut self, job_id: u64, attempt: u32) -> Result<Job, StoreError> {
        let old = self.fenced(job_id, attempt)?;
        if self.task(old.task_id)?.cancel.is_some() {
            return Err(StoreError::Conflict(format!(
                "task {} has a cancel requested; not entering the critical window",
                old.task_id
            )));
        }
        let mut job = old.clone();
        job.critical_since = Some(self.now);
        self.put_job(Some(&old), &job)?;
        Ok(job)
    }

    /// Ends a running job, fenced on (job, attempt). An interrupted job goes
    /// back to the queue unless its task is terminal or cancelling, in which
    /// case it ends cancelled.
    pub fn complete(
        &mut self,
        job_id: u64,
        attempt: u32,
        how: Completion,
    ) -> Result<Job, StoreError> {
        let old = self.fenced(job_id, attempt)?;
        let task = self.task(old.task_id)?;
        let mut job = old.clone();
        job.lease_expires_at = None;
        job.finished_at = Some(self.now);
        let (kind, detail) = match how {
            Completion::Done => {
                job.status = JobStatus::Done;
                job.reason = None;
                (EventKind::JobDone, String::new())
            }
            Completion::Failed(reason) => {
                job.status = JobStatus::Failed;
                job.reason = Some(reason.clone());
                (EventKind::JobFailed, reason)
            }
            Completion::Interrupted(reason) => {
                job.reason = Some(reason.clone());
                if task.is_terminal() || task.cancel.is_some() {
                    job.status = JobStatus::Cancelled;
                } else {
                    job.status = JobStatus::Queued;
                    job.finished_at = None;
                    job.critical_since = None;
                }
                (EventKind::JobInterrupted, reason)
            }
        };
        self.put_job(Some(&old), &job)?;
        self.event(task.id, kind, Some(job_id), detail)?;
        if job.status == JobStatus::Failed {
            let stage = job.stage;
            self.update_task(task.id, |t| t.set_failures(stage, t.failures_in(stage) + 1))?;
        } else {
            self.reindex_task(&task)?;
        }
        Ok(job)
    }

    /// Every queued or running job of the task becomes `cancelled`. Returns
    /// the jobs that changed.
    pub fn cancel_jobs(&mut self, task_id: u64) -> Result<Vec<u64>, StoreError> {
        let task = self.task(task_id)?;
        let mut changed = Vec::new();
        for old in jobs_of(&self.jobs_by_task, &self.jobs, task_id)? {
            if old.status.is_live() {
                let mut job = old.clone();
                job.status = JobStatus::Cancelled;
                job.lease_expires_at = None;
                job.finished_at = Some(self.now);
                self.put_job(Some(&old), &job)?;
                changed.push(job.id);
            }
        }
        if !changed.is_empty() {
            let list: Vec<String> = changed.iter().map(u64::to_string).collect();
            self.event(task_id, EventKind::JobsCancelled, None, list.join(","))?;
            self.reindex_task(&task)?;
        }
        Ok(changed)
    }

    /// One reaper pass: every running job whose lease expired before now.
    /// Each is re-checked here, inside this transaction: a job of a terminal
    /// or cancelling task ends `cancelled`; one reaped `max_attempts` times in
    /// a row fails (and counts as one failure); any other goes back to the
    /// queue. Critical-window jobs are never touched here.
    pub fn reap(&mut self, max_attempts: u32) -> Result<Vec<ReapOutcome>, StoreError> {
        let mut expired = Vec::new();
        for row in self.leases.range((i64::MIN, 0)..(self.now, 0))? {
            expired.push(row?.0.value().1);
        }
        let mut out = Vec::new();
        for job_id in expired {
            let old = self.job(job_id)?;
            let still_expired = old.status == JobStatus::Running
                && old.lease_expires_at.is_some_and(|t| t < self.now);
            if !still_expired || old.critical_since.is_some() {
                continue;
            }
            let task = self.task(old.task_id)?;
            let mut job = old.clone();
            job.lease_expires_at = None;
            job.pid = None;
            job.pid_start = None;
            job.reaped_in_row += 1;
            let (status, kind, detail) = if task.is_terminal() || task.cancel.is_some() {
                (
                    JobStatus::Cancelled,
                    EventKind::JobsCancelled,
                    format!("{job_id} (lease expired)"),
                )
            } else if job.reaped_in_row >= max_attempts {
                (
                    JobStatus::Failed,
                    EventKind::JobFailed,
                    format!("lease expired {} times in a row", job.reaped_in_row),
                )
            } else {
                (
                    JobStatus::Queued,
                    EventKind::LeaseExpired,
                    format!("attempt {} lost its lease", job.attempt),
                )
            };
            job.status = status;
            if status.is_final() {
                job.finished_at = Some(self.now);
                job.reason = Some(detail.clone());
            }
            self.put_job(Some(&old), &job)?;
            self.event(task.id, kind, Some(job_id), detail)?;
            if status == JobStatus::Failed {
                let stage = job.stage;
                self.update_task(task.id, |t| t.set_failures(stage, t.failures_in(stage) + 1))?;
            } else {
                self.reindex_task(&task)?;
            }
            out.push(ReapOutcome {
                job_id,
                task_id: task.id,
                status,
            });
        }
        Ok(out)
    }
}
