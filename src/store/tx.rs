//! The transaction handles every operation runs on: all tables opened once,
//! plus the operation's clock and the gate switches in force. Readers that
//! both handles need are generic over redb's `ReadableTable`.

use std::sync::atomic::{AtomicU64, Ordering};

use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, Table, WriteTransaction};

use super::codec::{self, Record};
use super::error::StoreError;
use super::faults::Faults;
use super::records::{Event, EventKind, Job, Task};
use super::tables::*;
use crate::domain::Millis;
use crate::gates::GateConfig;

/// A write transaction with every table open.
pub struct Tx<'t> {
    pub(crate) now: Millis,
    pub(crate) gates: &'t GateConfig,
    pub(crate) faults: &'t Faults,
    gate_errors: &'t AtomicU64,
    pub(crate) meta: Table<'t, &'static str, &'static [u8]>,
    pub(crate) tasks: Table<'t, u64, &'static [u8]>,
    pub(crate) jobs: Table<'t, u64, &'static [u8]>,
    pub(crate) events: Table<'t, (u64, u64), &'static [u8]>,
    pub(crate) key_work_item: Table<'t, &'static str, u64>,
    pub(crate) key_plane: Table<'t, &'static str, u64>,
    pub(crate) jobs_by_task: Table<'t, (u64, u64), ()>,
    pub(crate) live_jobs: Table<'t, (u64, u64), ()>,
    pub(crate) jobs_by_status: Table<'t, (u8, u64), ()>,
    pub(crate) leases: Table<'t, (i64, u64), ()>,
    pub(crate) repo_tasks: Table<'t, (&'static str, u64), ()>,
    pub(crate) deps_reverse: Table<'t, (u64, u64), ()>,
    pub(crate) ready: Table<'t, u64, ()>,
    pub(crate) repo_waiting: Table<'t, (&'static str, u64), u64>,
    pub(crate) holders: Table<'t, (&'static str, u64), ()>,
    pub(crate) repo_head: Table<'t, &'static str, u64>,
    pub(crate) heads: Table<'t, u64, ()>,
    pub(crate) deps_waiting: Table<'t, u64, ()>,
    pub(crate) blocked: Table<'t, u64, ()>,
    pub(crate) cancelling: Table<'t, u64, ()>,
    pub(crate) cleanup_debt: Table<'t, (u64, &'static str), &'static [u8]>,
    pub(crate) cancelled: Table<'t, (i64, u64), ()>,
    pub(crate) counts: Table<'t, &'static str, u64>,
}

impl<'t> Tx<'t> {
    pub(crate) fn open(
        txn: &'t WriteTransaction,
        now: Millis,
        gates: &'t GateConfig,
        faults: &'t Faults,
        gate_errors: &'t AtomicU64,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            now,
            gates,
            faults,
            gate_errors,
            meta: txn.open_table(META)?,
            tasks: txn.open_table(TASKS)?,
            jobs: txn.open_table(JOBS)?,
            events: txn.open_table(EVENTS)?,
            key_work_item: txn.open_table(KEY_WORK_ITEM)?,
            key_plane: txn.open_table(KEY_PLANE)?,
            jobs_by_task: txn.open_table(JOBS_BY_TASK)?,
            live_jobs: txn.open_table(LIVE_JOBS)?,
            jobs_by_status: txn.open_table(JOBS_BY_STATUS)?,
            leases: txn.open_table(LEASES)?,
            repo_tasks: txn.open_table(REPO_TASKS)?,
            deps_reverse: txn.open_table(DEPS_REVERSE)?,
            ready: txn.open_table(READY)?,
            repo_waiting: txn.open_table(REPO_WAITING)?,
            holders: txn.open_table(HOLDERS)?,
            repo_head: txn.open_table(REPO_HEAD)?,
            heads: txn.open_table(HEADS)?,
            deps_waiting: txn.open_table(DEPS_WAITING)?,
            blocked: txn.open_table(BLOCKED)?,
            cancelling: txn.open_table(CANCELLING)?,
            cleanup_debt: txn.open_table(CLEANUP_DEBT)?,
            cancelled: txn.open_table(CANCELLED)?,
            counts: txn.open_table(COUNTS)?,
        })
    }

    /// The clock of this operation.
    pub fn now(&self) -> Millis {
        self.now
    }

    pub fn task(&self, id: u64) -> Result<Task, StoreError> {
        get_record(&self.tasks, id)?.ok_or_else(|| StoreError::NotFound(format!("task {id}")))
    }

    pub fn job(&self, id: u64) -> Result<Job, StoreError> {
        get_record(&self.jobs, id)?.ok_or_else(|| StoreError::NotFound(format!("job {id}")))
    }

    pub(crate) fn next_id(&mut self, name: &'static str) -> Result<u64, StoreError> {
        let next = super::meta::get_u64(&self.meta, name)?.unwrap_or(1);
        super::meta::put_u64(&mut self.meta, name, next + 1)?;
        Ok(next)
    }

    /// Appends one event to a task's audit log.
    pub fn event(
        &mut self,
        task_id: u64,
        kind: EventKind,
        job_id: Option<u64>,
        detail: impl Into<String>,
    ) -> Result<(), StoreError> {
        let seq = self.next_id("event_seq")?;
        let e = Event {
            seq,
            task_id,
            at: self.now,
            kind,
            job_id,
            detail: detail.into(),
        };
        self.events
            .insert((task_id, seq), codec::encode(&e)?.as_slice())?;
        Ok(())
    }

    pub(crate) fn bump(&mut self, counter: &str, delta: i64) -> Result<(), StoreError> {
        if delta == 0 {
            return Ok(());
        }
        let cur = self.counts.get(counter)?.map_or(0, |v| v.value());
        let new = cur
            .checked_add_signed(delta)
            .ok_or_else(|| StoreError::Db(format!("counter {counter} would go below zero")))?;
        if new == 0 {
            self.counts.remove(counter)?;
        } else {
            self.counts.insert(counter, new)?;
        }
        Ok(())
    }

    /// Records that a gate evaluation failed open.
    pub(crate) fn gate_error(
        &mut self,
        task_id: u64,
        job_id: Option<u64>,
        what: &str,
    ) -> Result<(), StoreError> {
        self.gate_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            task_id,
            ?job_id,
            "{what} gate evaluation failed; failing open"
        );
        self.event(
            task_id,
            EventKind::GateError,
            job_id,
            format!("{what} gate evaluation failed; claim proceeds as if the gate were off"),
        )
    }
}

/// A read transaction with the tables the readers need.
pub struct ReadTx {
    pub(crate) gates: GateConfig,
    pub(crate) meta: ReadOnlyTable<&'static str, &'static [u8]>,
    pub(crate) tasks: ReadOnlyTable<u64, &'static [u8]>,
    pub(crate) jobs: ReadOnlyTable<u64, &'static [u8]>,
    pub(crate) events: ReadOnlyTable<(u64, u64), &'static [u8]>,
    pub(crate) key_work_item: ReadOnlyTable<&'static str, u64>,
    pub(crate) key_plane: ReadOnlyTable<&'static str, u64>,
    pub(crate) jobs_by_task: ReadOnlyTable<(u64, u64), ()>,
    pub(crate) live_jobs: ReadOnlyTable<(u64, u64), ()>,
    pub(crate) jobs_by_status: ReadOnlyTable<(u8, u64), ()>,
    pub(crate) leases: ReadOnlyTable<(i64, u64), ()>,
    pub(crate) repo_tasks: ReadOnlyTable<(&'static str, u64), ()>,
    pub(crate) deps_reverse: ReadOnlyTable<(u64, u64), ()>,
    pub(crate) ready: ReadOnlyTable<u64, ()>,
    pub(crate) repo_waiting: ReadOnlyTable<(&'static str, u64), u64>,
    pub(crate) holders: ReadOnlyTable<(&'static str, u64), ()>,
    pub(crate) repo_head: ReadOnlyTable<&'static str, u64>,
    pub(crate) heads: ReadOnlyTable<u64, ()>,
    pub(crate) deps_waiting: ReadOnlyTable<u64, ()>,
    pub(crate) blocked: ReadOnlyTable<u64, ()>,
    pub(crate) cancelling: ReadOnlyTable<u64, ()>,
    pub(crate) cleanup_debt: ReadOnlyTable<(u64, &'static str), &'static [u8]>,
    pub(crate) cancelled: ReadOnlyTable<(i64, u64), ()>,
    pub(crate) counts: ReadOnlyTable<&'static str, u64>,
}

impl ReadTx {
    pub(crate) fn open(txn: &ReadTransaction, gates: &GateConfig) -> Result<Self, StoreError> {
        Ok(Self {
            gates: gates.clone(),
            meta: txn.open_table(META)?,
            tasks: txn.open_table(TASKS)?,
            jobs: txn.open_table(JOBS)?,
            events: txn.open_table(EVENTS)?,
            key_work_item: txn.open_table(KEY_WORK_ITEM)?,
            key_plane: txn.open_table(KEY_PLANE)?,
            jobs_by_task: txn.open_table(JOBS_BY_TASK)?,
            live_jobs: txn.open_table(LIVE_JOBS)?,
            jobs_by_status: txn.open_table(JOBS_BY_STATUS)?,
            leases: txn.open_table(LEASES)?,
            repo_tasks: txn.open_table(REPO_TASKS)?,
            deps_reverse: txn.open_table(DEPS_REVERSE)?,
            ready: txn.open_table(READY)?,
            repo_waiting: txn.open_table(REPO_WAITING)?,
            holders: txn.open_table(HOLDERS)?,
            repo_head: txn.open_table(REPO_HEAD)?,
            heads: txn.open_table(HEADS)?,
            deps_waiting: txn.open_table(DEPS_WAITING)?,
            blocked: txn.open_table(BLOCKED)?,
            cancelling: txn.open_table(CANCELLING)?,
            cleanup_debt: txn.open_table(CLEANUP_DEBT)?,
            cancelled: txn.open_table(CANCELLED)?,
            counts: txn.open_table(COUNTS)?,
        })
    }

    pub fn task(&self, id: u64) -> Result<Option<Task>, StoreError> {
        get_record(&self.tasks, id)
    }

    pub fn job(&self, id: u64) -> Result<Option<Job>, StoreError> {
        get_record(&self.jobs, id)
    }

    pub fn count(&self, counter: &str) -> Result<u64, StoreError> {
        Ok(self.counts.get(counter)?.map_or(0, |v| v.value()))
    }

    /// Every job of a task, oldest first.
    pub fn jobs_of(&self, task_id: u64) -> Result<Vec<Job>, StoreError> {
        jobs_of(&self.jobs_by_task, &self.jobs, task_id)
    }

    /// Whether a claim would find a job: lets an idle worker look without
    /// opening a write transaction.
    pub fn has_claimable(&self) -> Result<bool, StoreError> {
        Ok(self.ready.first()?.is_some() || self.heads.first()?.is_some())
    }

    /// Whether any running job's lease expired before `now`.
    pub fn has_expired_lease(&self, now: crate::domain::Millis) -> Result<bool, StoreError> {
        Ok(self.leases.first()?.is_some_and(|(k, _)| k.value().0 < now))
    }

    /// Every job with this status, oldest first (through the status index).
    pub fn jobs_with_status(
        &self,
        status: crate::domain::JobStatus,
    ) -> Result<Vec<Job>, StoreError> {
        let code = status.code();
        let mut out = Vec::new();
        for row in self.jobs_by_status.range((code, 0)..=(code, u64::MAX))? {
            let id = row?.0.value().1;
            if let Some(job) = get_record(&self.jobs, id)? {
                out.push(job);
            }
        }
        Ok(out)
    }

    /// Tasks newest first, from `before` (exclusive) downwards, that pass
    /// `keep`, at most `limit`; and whether more may follow.
    pub fn list_tasks(
        &self,
        before: Option<u64>,
        limit: usize,
        keep: impl Fn(&Task) -> bool,
    ) -> Result<(Vec<Task>, bool), StoreError> {
        let mut out = Vec::new();
        let upper = before.unwrap_or(u64::MAX);
        for row in self.tasks.range(..upper)?.rev() {
            let t: Task = codec::decode(row?.1.value())?;
            if keep(&t) {
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push(t);
            }
        }
        Ok((out, false))
    }

    /// A task's audit log, oldest first.
    pub fn events_of(&self, task_id: u64) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        for row in self.events.range((task_id, 0)..=(task_id, u64::MAX))? {
            let (_, v) = row?;
            out.push(codec::decode(v.value())?);
        }
        Ok(out)
    }
}

pub(crate) fn get_record<T: Record>(
    table: &impl ReadableTable<u64, &'static [u8]>,
    id: u64,
) -> Result<Option<T>, StoreError> {
    match table.get(id)? {
        Some(v) => Ok(Some(codec::decode(v.value())?)),
        None => Ok(None),
    }
}

pub(crate) fn jobs_of(
    by_task: &impl ReadableTable<(u64, u64), ()>,
    jobs: &impl ReadableTable<u64, &'static [u8]>,
    task_id: u64,
) -> Result<Vec<Job>, StoreError> {
    let mut out = Vec::new();
    for row in by_task.range((task_id, 0)..=(task_id, u64::MAX))? {
        let (k, _) = row?;
        let job_id = k.value().1;
        let job = get_record(jobs, job_id)?.ok_or_else(|| {
            StoreError::Db(format!("index jobs_by_task names missing job {job_id}"))
        })?;
        out.push(job);
    }
    Ok(out)
}

/// Counter names, in one place.
pub(crate) mod counter {
    use crate::domain::JobStatus;

    pub fn jobs(status: JobStatus) -> String {
        format!("jobs/{}", status.as_str())
    }

    pub fn waiting(repo: &str) -> String {
        format!("waiting/{repo}")
    }

    pub const DEPS_WAITING: &str = "deps_waiting";
    pub const BLOCKED: &str = "blocked";
    pub const CANCELLING: &str = "cancelling";
    pub const CLEANUP_DEBT: &str = "cleanup_debt";
}
