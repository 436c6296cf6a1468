//! The gate snapshots of SPEC §5.2 and §5.3. They read the maintained
//! indexes and counters only, so their cost does not grow with the number of
//! gated jobs, and they never fail: on a store error they return the flags
//! with nothing listed.

use std::collections::BTreeMap;

use redb::ReadableTable;
use serde::Serialize;

use super::Store;
use super::error::StoreError;
use super::faults::Faults;
use super::tx::{ReadTx, counter};

/// At most this many entries are listed in any snapshot list.
pub const LIST_CAP: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SerialSnapshot {
    pub enabled: bool,
    pub repos: Vec<String>,
    pub freeze_enabled: bool,
    pub per_repo: BTreeMap<String, RepoGate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepoGate {
    pub active_task: Option<ActiveTask>,
    pub waiting: Vec<WaitingJob>,
    pub waiting_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveTask {
    pub task_id: u64,
    pub work_item_id: String,
    pub stage: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaitingJob {
    pub job_id: u64,
    pub task_id: u64,
    pub work_item_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DepsSnapshot {
    pub enabled: bool,
    pub blocked: Vec<DepsBlocked>,
    pub blocked_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DepsBlocked {
    pub task_id: u64,
    pub work_item_id: String,
    pub waiting_on: Vec<String>,
}

impl Store {
    /// The serial-gate snapshot. Never fails.
    pub fn serial_snapshot(&self) -> SerialSnapshot {
        let g = self.gates();
        let empty = SerialSnapshot {
            enabled: g.serial_enabled,
            repos: g.serial_repos.clone(),
            freeze_enabled: g.freeze_enabled,
            per_repo: BTreeMap::new(),
        };
        if !g.serial_enabled {
            return empty;
        }
        let read = || -> Result<BTreeMap<String, RepoGate>, StoreError> {
            if Faults::on(&self.faults().snapshot) {
                return Err(StoreError::Injected("snapshot"));
            }
            self.read(|rx| rx.serial_per_repo())
        };
        match read() {
            Ok(per_repo) => SerialSnapshot { per_repo, ..empty },
            Err(e) => {
                tracing::warn!(error = %e, "serial gate snapshot failed; returning the flags only");
                empty
            }
        }
    }

    /// The deps-gate snapshot. Never fails.
    pub fn deps_snapshot(&self) -> DepsSnapshot {
        let empty = DepsSnapshot {
            enabled: self.gates().deps_enabled,
            blocked: Vec::new(),
            blocked_count: 0,
        };
        if !empty.enabled {
            return empty;
        }
        let read = || -> Result<DepsSnapshot, StoreError> {
            if Faults::on(&self.faults().snapshot) {
                return Err(StoreError::Injected("snapshot"));
            }
            self.read(|rx| rx.deps_blocked())
        };
        read().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "deps snapshot failed; returning the flag only");
            empty
        })
    }
}

impl Store {
    /// Jobs by status, from the maintained counters; zeros on a store error.
    pub fn job_counts(&self) -> std::collections::HashMap<crate::domain::JobStatus, u64> {
        let read = self.read(|rx| {
            crate::domain::JobStatus::ALL
                .iter()
                .map(|s| Ok((*s, rx.count(&counter::jobs(*s))?)))
                .collect::<Result<std::collections::HashMap<_, _>, StoreError>>()
        });
        read.unwrap_or_default()
    }
}

impl Store {
    /// Per gated repo: how many jobs wait and whether a task holds it, from
    /// the counters and one seek per repo (for `/metrics`). Empty on error.
    pub fn serial_gauges(&self) -> BTreeMap<String, (u64, bool)> {
        if !self.gates().serial_enabled {
            return BTreeMap::new();
        }
        let read = self.read(|rx| {
            let mut repos = distinct_repos(&rx.holders)?;
            repos.extend(distinct_repos(&rx.repo_waiting)?);
            repos.sort();
            repos.dedup();
            let mut out = BTreeMap::new();
            for repo in repos
                .into_iter()
                .filter(|r| rx.gates.serial_gate_applies(r))
            {
                let r = repo.as_str();
                let active = rx.holders.range((r, 0)..=(r, u64::MAX))?.next().is_some();
                let waiting = rx.count(&counter::waiting(r))?;
                out.insert(repo, (waiting, active));
            }
            Ok(out)
        });
        read.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "serial gauges failed");
            BTreeMap::new()
        })
    }
}

impl ReadTx {
    /// The oldest `limit` jobs with this status (through the status index)
    /// and how many there are (from the maintained counter), so a caller
    /// can list a few without counting by scanning.
    pub fn jobs_with_status_capped(
        &self,
        status: crate::domain::JobStatus,
        limit: usize,
    ) -> Result<(Vec<super::Job>, u64), StoreError> {
        let code = status.code();
        let mut out = Vec::new();
        for row in self
            .jobs_by_status
            .range((code, 0)..=(code, u64::MAX))?
            .take(limit)
        {
            let id = row?.0.value().1;
            let job = self
                .job(id)?
                .ok_or_else(|| StoreError::NotFound(format!("job {id}")))?;
            out.push(job);
        }
        Ok((out, self.count(&counter::jobs(status))?))
    }

    /// The oldest `limit` unfinished blocked tasks and how many there are.
    pub fn blocked_tasks(&self, limit: usize) -> Result<(Vec<super::Task>, u64), StoreError> {
        let mut out = Vec::new();
        for row in self.blocked.iter()?.take(limit) {
            let id = row?.0.value();
            let t = self
                .task(id)?
                .ok_or_else(|| StoreError::NotFound(format!("task {id}")))?;
            out.push(t);
        }
        Ok((out, self.count(counter::BLOCKED)?))
    }

    /// Per repo the gate applies to: the task holding it and the jobs
    /// waiting behind it. Repos are found by skipping from one repo's
    /// entries to the next, never by walking every entry.
    fn serial_per_repo(&self) -> Result<BTreeMap<String, RepoGate>, StoreError> {
        let mut repos = distinct_repos(&self.holders)?;
        repos.extend(distinct_repos(&self.repo_waiting)?);
        repos.sort();
        repos.dedup();
        let mut out = BTreeMap::new();
        for repo in repos
            .into_iter()
            .filter(|r| self.gates.serial_gate_applies(r))
        {
            let r = repo.as_str();
            let active_task = match self
                .holders
                .range((r, 0)..=(r, u64::MAX))?
                .next()
                .transpose()?
            {
                Some((k, _)) => {
                    let id = k.value().1;
                    let t = self
                        .task(id)?
                        .ok_or_else(|| StoreError::NotFound(format!("task {id}")))?;
                    Some(ActiveTask {
                        task_id: id,
                        work_item_id: t.work_item_id,
                        stage: t.stage.to_string(),
                    })
                }
                None => None,
            };
            let mut waiting = Vec::new();
            for row in self
                .repo_waiting
                .range((r, 0)..=(r, u64::MAX))?
                .take(LIST_CAP)
            {
                let (k, v) = row?;
                let (job_id, task_id) = (k.value().1, v.value());
                let t = self
                    .task(task_id)?
                    .ok_or_else(|| StoreError::NotFound(format!("task {task_id}")))?;
                waiting.push(WaitingJob {
                    job_id,
                    task_id: t.id,
                    work_item_id: t.work_item_id,
                });
            }
            let waiting_count = self.count(&counter::waiting(r))?;
            out.insert(
                repo,
                RepoGate {
                    active_task,
                    waiting,
                    waiting_count,
                },
            );
        }
        Ok(out)
    }

    fn deps_blocked(&self) -> Result<DepsSnapshot, StoreError> {
        let mut blocked = Vec::new();
        for row in self.deps_waiting.iter()?.take(LIST_CAP) {
            let id = row?.0.value();
            let t = self
                .task(id)?
                .ok_or_else(|| StoreError::NotFound(format!("task {id}")))?;
            let mut waiting_on = Vec::new();
            for dep in &t.deps {
                let d = self
                    .task(*dep)?
                    .ok_or_else(|| StoreError::NotFound(format!("task {dep}")))?;
                if !d.is_terminal() {
                    waiting_on.push(d.work_item_id);
                }
            }
            waiting_on.extend(t.external_deps.iter().cloned());
            blocked.push(DepsBlocked {
                task_id: id,
                work_item_id: t.work_item_id,
                waiting_on,
            });
        }
        Ok(DepsSnapshot {
            enabled: true,
            blocked,
            blocked_count: self.count(counter::DEPS_WAITING)?,
        })
    }
}

/// The distinct repos of a `(repo, id)` table, one seek per repo.
fn distinct_repos<V: redb::Value + 'static>(
    table: &impl ReadableTable<(&'static str, u64), V>,
) -> Result<Vec<String>, StoreError> {
    let mut out: Vec<String> = Vec::new();
    let mut next = table.first()?.map(|(k, _)| k.value().0.to_owned());
    while let Some(repo) = next {
        // "\0" sorts right after the repo name itself: the next repo starts there.
        let after = format!("{repo}\0");
        next = table
            .range((after.as_str(), 0)..)?
            .next()
            .transpose()?
            .map(|(k, _)| k.value().0.to_owned());
        out.push(repo);
    }
    Ok(out)
}
