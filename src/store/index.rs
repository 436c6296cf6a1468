//! Keeping the indexes in step with the records. Every task or job write
//! goes through `put_task` / `put_job`, and every operation that changes
//! what is claimable ends by re-evaluating the tasks it touched: so a claim
//! reads the first entry of two small ordered sets and never looks at a
//! gated job (SPEC §5.4).

use std::borrow::Borrow;

use redb::{Key, ReadableTable, Table};

use super::codec;
use super::error::StoreError;
use super::faults::Faults;
use super::records::{Job, Task};
use super::tx::{Tx, counter, jobs_of};
use crate::gates::{self, Placement, TaskFacts};

/// Adds or removes `key` in a set-like table; says whether it changed.
fn set_member<'k, K: Key + 'static>(
    table: &mut Table<'_, K, ()>,
    key: impl Borrow<K::SelfType<'k>>,
    on: bool,
) -> Result<bool, StoreError> {
    // Reading first keeps an unchanged entry from being rewritten, which
    // would dirty its page for nothing.
    let key = key.borrow();
    let present = table.get(key)?.is_some();
    if present == on {
        return Ok(false);
    }
    if on {
        table.insert(key, ())?;
    } else {
        table.remove(key)?;
    }
    Ok(true)
}

/// Like `set_member`, for the waiting set whose value names the job's task.
fn set_waiting(
    table: &mut Table<'_, (&'static str, u64), u64>,
    repo: &str,
    job: u64,
    task: Option<u64>,
) -> Result<bool, StoreError> {
    let present = table.get((repo, job))?.map(|v| v.value());
    if present == task {
        return Ok(false);
    }
    match task {
        Some(t) => table.insert((repo, job), t)?,
        None => table.remove((repo, job))?,
    };
    Ok(present.is_none() != task.is_none())
}

fn delta(changed: bool, on: bool) -> i64 {
    match (changed, on) {
        (false, _) => 0,
        (true, true) => 1,
        (true, false) => -1,
    }
}

pub(crate) fn facts(task: &Task) -> TaskFacts {
    TaskFacts {
        terminal: task.is_terminal(),
        cancel_requested: task.cancel.is_some(),
        admitted: task.admitted_at.is_some(),
        blocked: task.blocked.is_some(),
    }
}

impl Tx<'_> {
    /// Writes a task record and every index derived from it.
    pub(crate) fn put_task(&mut self, old: Option<&Task>, new: &Task) -> Result<(), StoreError> {
        self.tasks.insert(new.id, codec::encode(new)?.as_slice())?;
        let old_wi = old.map(|o| o.work_item_id.as_str());
        if old_wi != Some(new.work_item_id.as_str()) {
            if let Some(k) = old_wi {
                remove_key(&mut self.key_work_item, k, new.id)?;
            }
            self.key_work_item
                .insert(new.work_item_id.as_str(), new.id)?;
        }
        let old_pi = old.and_then(|o| o.plane_issue_id.as_deref());
        if old_pi != new.plane_issue_id.as_deref() {
            if let Some(k) = old_pi {
                remove_key(&mut self.key_plane, k, new.id)?;
            }
            if let Some(k) = new.plane_issue_id.as_deref() {
                self.key_plane.insert(k, new.id)?;
            }
        }
        for dep in &new.deps {
            self.deps_reverse.insert((*dep, new.id), ())?;
        }
        self.reindex_task(new)?;
        let became_terminal = new.is_terminal() && !old.is_some_and(Task::is_terminal);
        if became_terminal {
            self.reindex_dependents(new.id)?;
        }
        Ok(())
    }

    /// Writes a job record and its status, task and lease indexes. The
    /// caller re-evaluates the job's task afterwards.
    pub(crate) fn put_job(&mut self, old: Option<&Job>, new: &Job) -> Result<(), StoreError> {
        self.jobs.insert(new.id, codec::encode(new)?.as_slice())?;
        if old.is_none() {
            self.jobs_by_task.insert((new.task_id, new.id), ())?;
        }
        if old.map(|o| o.status) != Some(new.status) {
            set_member(
                &mut self.live_jobs,
                (new.task_id, new.id),
                new.status.is_live(),
            )?;
            if let Some(o) = old.filter(|o| o.status == crate::domain::JobStatus::Queued) {
                // A queued job leaving the queue by any path (claimed,
                // cancelled) leaves the claim indexes too; re-evaluating its
                // task only looks at live jobs.
                set_member(&mut self.ready, o.id, false)?;
                let repo = self.task(o.task_id)?.repo;
                let changed = set_waiting(&mut self.repo_waiting, &repo, o.id, None)?;
                self.bump(&counter::waiting(&repo), delta(changed, false))?;
            }
            if let Some(o) = old {
                self.jobs_by_status.remove((o.status.code(), o.id))?;
                self.bump(&counter::jobs(o.status), -1)?;
            }
            self.jobs_by_status
                .insert((new.status.code(), new.id), ())?;
            self.bump(&counter::jobs(new.status), 1)?;
        }
        if let Some(at) = old.and_then(lease_key) {
            self.leases.remove((at, new.id))?;
        }
        if let Some(at) = lease_key(new) {
            self.leases.insert((at, new.id), ())?;
        }
        Ok(())
    }

    /// Re-evaluates everything that depends on one task's state: its repo
    /// FIFO, the holder, blocked, cancelling and deps-waiting sets, where
    /// each of its jobs belongs, and its repo's claimable head.
    pub(crate) fn reindex_task(&mut self, task: &Task) -> Result<(), StoreError> {
        let f = facts(task);
        let repo = task.repo.as_str();
        let live = !f.terminal;
        set_member(&mut self.repo_tasks, (repo, task.id), live)?;
        set_member(
            &mut self.holders,
            (repo, task.id),
            self.gates.holds_repo(&f),
        )?;
        let on = live && f.blocked;
        let changed = set_member(&mut self.blocked, task.id, on)?;
        self.bump(counter::BLOCKED, delta(changed, on))?;
        let on = live && task.cancel_pending();
        let changed = set_member(&mut self.cancelling, task.id, on)?;
        self.bump(counter::CANCELLING, delta(changed, on))?;

        if let Some(at) = task
            .cancelled_at
            .filter(|_| task.stage == crate::domain::Stage::Cancelled)
        {
            set_member(&mut self.cancelled, (at, task.id), true)?;
        }

        let deps_open = if live { self.deps_open(task)? } else { true };
        let on = live && !deps_open;
        let changed = set_member(&mut self.deps_waiting, task.id, on)?;
        self.bump(counter::DEPS_WAITING, delta(changed, on))?;

        let waiting_counter = counter::waiting(repo);
        for job in jobs_of(&self.live_jobs, &self.jobs, task.id)? {
            let concerns = gates::serial_gate_concerns(self.gates, repo, job.role, &f);
            let gated = concerns
                && job.status.is_live()
                && live
                && self.serial_gate_evaluates(task.id, job.id)?;
            let placement = gates::place(job.status, &f, deps_open, gated);
            set_member(&mut self.ready, job.id, placement == Placement::Ready)?;
            let on = placement == Placement::Waiting;
            let changed = set_waiting(&mut self.repo_waiting, repo, job.id, on.then_some(task.id))?;
            self.bump(&waiting_counter, delta(changed, on))?;
        }
        self.refresh_repo_head(repo)
    }

    /// Whether every dependency of the task is terminal. An evaluation error
    /// (a missing record, or an injected fault) fails open.
    fn deps_open(&mut self, task: &Task) -> Result<bool, StoreError> {
        if !self.gates.deps_enabled || (task.deps.is_empty() && task.external_deps.is_empty()) {
            return Ok(true);
        }
        let evaluated: Result<bool, StoreError> = if Faults::on(&self.faults.deps_gate) {
            Err(StoreError::Injected("deps gate"))
        } else {
            let mut open = task.external_deps.is_empty();
            for dep in &task.deps {
                open &= self.task(*dep)?.is_terminal();
            }
            Ok(open)
        };
        match evaluated {
            Ok(open) => Ok(open),
            Err(StoreError::Injected(_) | StoreError::NotFound(_) | StoreError::Codec(_)) => {
                self.gate_error(task.id, None, "deps")?;
                Ok(true)
            }
            Err(other) => Err(other),
        }
    }

    /// The serial gate holds back an analyst job of an unadmitted task; an
    /// error while deciding that fails open (the job is not gated).
    fn serial_gate_evaluates(&mut self, task_id: u64, job_id: u64) -> Result<bool, StoreError> {
        if Faults::on(&self.faults.serial_gate) {
            self.gate_error(task_id, Some(job_id), "serial")?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Keeps the repo's entry in `HEADS`: its oldest waiting job while no
    /// task holds the repo, nothing otherwise.
    pub(crate) fn refresh_repo_head(&mut self, repo: &str) -> Result<(), StoreError> {
        let held = self
            .holders
            .range((repo, 0)..=(repo, u64::MAX))?
            .next()
            .transpose()?
            .is_some();
        let head = if held {
            None
        } else {
            self.repo_waiting
                .range((repo, 0)..=(repo, u64::MAX))?
                .next()
                .transpose()?
                .map(|(k, _)| k.value().1)
        };
        let old = self.repo_head.get(repo)?.map(|v| v.value());
        if old != head {
            if let Some(o) = old {
                self.heads.remove(o)?;
            }
            match head {
                Some(h) => {
                    self.heads.insert(h, ())?;
                    self.repo_head.insert(repo, h)?;
                }
                None => {
                    self.repo_head.remove(repo)?;
                }
            }
        }
        Ok(())
    }

    /// A task turned terminal: its dependents may be free now.
    fn reindex_dependents(&mut self, task_id: u64) -> Result<(), StoreError> {
        let mut dependents = Vec::new();
        for row in self
            .deps_reverse
            .range((task_id, 0)..=(task_id, u64::MAX))?
        {
            dependents.push(row?.0.value().1);
        }
        for id in dependents {
            let t = self.task(id)?;
            self.reindex_task(&t)?;
        }
        Ok(())
    }

    /// Re-evaluates the task of a job (after a job write).
    pub(crate) fn reindex_task_id(&mut self, task_id: u64) -> Result<(), StoreError> {
        let t = self.task(task_id)?;
        self.reindex_task(&t)
    }

    /// Drops and recomputes every claim index from the records. Used when
    /// the gate switches in force change, and by repair.
    pub(crate) fn rebuild_claim_indexes(&mut self) -> Result<(), StoreError> {
        self.repo_tasks.retain(|_, _| false)?;
        self.holders.retain(|_, _| false)?;
        self.blocked.retain(|_, _| false)?;
        self.cancelling.retain(|_, _| false)?;
        self.deps_waiting.retain(|_, _| false)?;
        self.ready.retain(|_, _| false)?;
        self.repo_waiting.retain(|_, _| false)?;
        self.live_jobs.retain(|_, _| false)?;
        let mut live = Vec::new();
        for row in self.jobs.iter()? {
            let job: Job = codec::decode(row?.1.value())?;
            if job.status.is_live() {
                live.push((job.task_id, job.id));
            }
        }
        for key in live {
            self.live_jobs.insert(key, ())?;
        }
        self.heads.retain(|_, _| false)?;
        self.repo_head.retain(|_, _| false)?;
        self.counts.retain(|k, _| k.starts_with("jobs/"))?;
        let mut ids = Vec::new();
        for row in self.tasks.iter()? {
            ids.push(row?.0.value());
        }
        for id in ids {
            self.reindex_task_id(id)?;
        }
        Ok(())
    }
}

fn lease_key(job: &Job) -> Option<i64> {
    if job.status == crate::domain::JobStatus::Running {
        job.lease_expires_at
    } else {
        None
    }
}

/// Removes a natural-key entry only if it still names this task, so a
/// successor's key is never touched.
fn remove_key(
    table: &mut Table<'_, &'static str, u64>,
    key: &str,
    id: u64,
) -> Result<(), StoreError> {
    if table.get(key)?.map(|v| v.value()) == Some(id) {
        table.remove(key)?;
    }
    Ok(())
}
