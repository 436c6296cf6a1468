//! `orch db check`: recomputes every index from the records and compares it
//! with what the file holds. The claim decisions are recomputed with the same
//! pure gate functions the store uses, so this proves the indexes are in step
//! with the records; whether the decisions themselves are right is what the
//! property test against the naive model proves.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use redb::{Key, ReadableTable};

use super::codec;
use super::error::StoreError;
use super::index::facts;
use super::records::{Job, Task};
use super::tx::{ReadTx, counter};
use super::{SCHEMA_VERSION, Store, meta};
use crate::domain::JobStatus;
use crate::gates::{self, Placement};

/// What `db check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub tasks: u64,
    pub jobs: u64,
    pub events: u64,
    pub problems: Vec<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The one-line verdict.
    pub fn verdict(&self) -> String {
        if self.ok() {
            format!(
                "ok: {} tasks, {} jobs, {} events; every index matches the records",
                self.tasks, self.jobs, self.events
            )
        } else {
            format!(
                "FAILED: {} problem(s); first: {}",
                self.problems.len(),
                self.problems[0]
            )
        }
    }
}

impl Store {
    /// Verifies every index against the records.
    pub fn check(&self) -> Result<CheckReport, StoreError> {
        self.read(|rx| rx.check())
    }
}

fn keys<K: Key + 'static, V: redb::Value + 'static, T: Ord>(
    table: &impl ReadableTable<K, V>,
    f: impl Fn(K::SelfType<'_>) -> T,
) -> Result<BTreeSet<T>, StoreError> {
    let mut out = BTreeSet::new();
    for row in table.iter()? {
        out.insert(f(row?.0.value()));
    }
    Ok(out)
}

fn compare<T: Ord + std::fmt::Debug>(
    problems: &mut Vec<String>,
    name: &str,
    expected: &BTreeSet<T>,
    actual: &BTreeSet<T>,
) {
    if let Some(missing) = expected.difference(actual).next() {
        problems.push(format!(
            "{name}: missing entry {missing:?} ({} missing in all)",
            expected.difference(actual).count()
        ));
    }
    if let Some(extra) = actual.difference(expected).next() {
        problems.push(format!(
            "{name}: stray entry {extra:?} ({} stray in all)",
            actual.difference(expected).count()
        ));
    }
}

impl ReadTx {
    fn check(&self) -> Result<CheckReport, StoreError> {
        let mut problems = Vec::new();
        let version = meta::schema_version(&self.meta)?;
        if version != SCHEMA_VERSION {
            problems.push(format!(
                "schema version {version}, expected {SCHEMA_VERSION}"
            ));
        }
        let mut tasks: HashMap<u64, Task> = HashMap::new();
        for row in self.tasks.iter()? {
            let (k, v) = row?;
            let t: Task = codec::decode(v.value())?;
            if t.id != k.value() {
                problems.push(format!(
                    "task record {} is stored under id {}",
                    t.id,
                    k.value()
                ));
            }
            tasks.insert(k.value(), t);
        }
        let mut jobs: BTreeMap<u64, Job> = BTreeMap::new();
        for row in self.jobs.iter()? {
            let (k, v) = row?;
            let j: Job = codec::decode(v.value())?;
            if !tasks.contains_key(&j.task_id) {
                problems.push(format!(
                    "job {} belongs to missing task {}",
                    j.id, j.task_id
                ));
            }
            jobs.insert(k.value(), j);
        }
        let mut events = 0;
        for row in self.events.iter()? {
            let (_, v) = row?;
            codec::decode::<super::records::Event>(v.value())?;
            events += 1;
        }

        let wi: BTreeSet<(String, u64)> = tasks
            .values()
            .map(|t| (t.work_item_id.clone(), t.id))
            .collect();
        compare(
            &mut problems,
            "key_work_item",
            &wi,
            &self.pairs(&self.key_work_item)?,
        );
        let pi: BTreeSet<(String, u64)> = tasks
            .values()
            .filter_map(|t| t.plane_issue_id.clone().map(|p| (p, t.id)))
            .collect();
        compare(
            &mut problems,
            "key_plane_issue",
            &pi,
            &self.pairs(&self.key_plane)?,
        );

        let by_task: BTreeSet<(u64, u64)> = jobs.values().map(|j| (j.task_id, j.id)).collect();
        compare(
            &mut problems,
            "jobs_by_task",
            &by_task,
            &keys(&self.jobs_by_task, |k| k)?,
        );
        let live: BTreeSet<(u64, u64)> = jobs
            .values()
            .filter(|j| j.status.is_live())
            .map(|j| (j.task_id, j.id))
            .collect();
        compare(
            &mut problems,
            "live_jobs_by_task",
            &live,
            &keys(&self.live_jobs, |k| k)?,
        );
        let by_status: BTreeSet<(u8, u64)> =
            jobs.values().map(|j| (j.status.code(), j.id)).collect();
        compare(
            &mut problems,
            "jobs_by_status",
            &by_status,
            &keys(&self.jobs_by_status, |k| k)?,
        );
        let leases: BTreeSet<(i64, u64)> = jobs
            .values()
            .filter(|j| j.status == JobStatus::Running)
            .filter_map(|j| j.lease_expires_at.map(|t| (t, j.id)))
            .collect();
        compare(
            &mut problems,
            "leases",
            &leases,
            &keys(&self.leases, |k| k)?,
        );
        let reverse: BTreeSet<(u64, u64)> = tasks
            .values()
            .flat_map(|t| t.deps.iter().map(|d| (*d, t.id)))
            .collect();
        compare(
            &mut problems,
            "deps_reverse",
            &reverse,
            &keys(&self.deps_reverse, |k| k)?,
        );

        let exp = Expected::compute(self, &tasks, &jobs);
        compare(
            &mut problems,
            "repo_tasks",
            &exp.repo_tasks,
            &keys(&self.repo_tasks, |(r, id)| (r.to_owned(), id))?,
        );
        compare(
            &mut problems,
            "holders",
            &exp.holders,
            &keys(&self.holders, |(r, id)| (r.to_owned(), id))?,
        );
        compare(
            &mut problems,
            "blocked_tasks",
            &exp.blocked,
            &keys(&self.blocked, |k| k)?,
        );
        compare(
            &mut problems,
            "cancelling_tasks",
            &exp.cancelling,
            &keys(&self.cancelling, |k| k)?,
        );
        compare(
            &mut problems,
            "deps_waiting",
            &exp.deps_waiting,
            &keys(&self.deps_waiting, |k| k)?,
        );
        compare(
            &mut problems,
            "claim_ready",
            &exp.ready,
            &keys(&self.ready, |k| k)?,
        );
        compare(
            &mut problems,
            "claim_repo_waiting",
            &exp.waiting,
            &keys(&self.repo_waiting, |(r, id)| (r.to_owned(), id))?,
        );
        compare(
            &mut problems,
            "claim_repo_head",
            &exp.heads,
            &self.pairs(&self.repo_head)?,
        );
        let cancelled: BTreeSet<(i64, u64)> = tasks
            .values()
            .filter(|t| t.stage == crate::domain::Stage::Cancelled)
            .filter_map(|t| t.cancelled_at.map(|at| (at, t.id)))
            .collect();
        compare(
            &mut problems,
            "cancelled_tasks",
            &cancelled,
            &keys(&self.cancelled, |k| k)?,
        );
        for row in self.repo_waiting.iter()? {
            let (k, v) = row?;
            let (repo, job) = k.value();
            if jobs.get(&job).map(|j| j.task_id) != Some(v.value()) {
                problems.push(format!(
                    "claim_repo_waiting: ({repo}, {job}) names task {}, not the job's task",
                    v.value()
                ));
            }
        }
        let mut debts = 0u64;
        for row in self.cleanup_debt.iter()? {
            let (k, v) = row?;
            let d: super::debt::Debt = codec::decode(v.value())?;
            let (task, what) = k.value();
            if d.task_id != task || d.what != what || !tasks.contains_key(&task) {
                problems.push(format!(
                    "cleanup_debt: entry ({task}, {what}) does not match its record or task"
                ));
            }
            debts += 1;
        }
        let heads: BTreeSet<u64> = exp.heads.iter().map(|(_, id)| *id).collect();
        compare(
            &mut problems,
            "claim_heads",
            &heads,
            &keys(&self.heads, |k| k)?,
        );

        let mut counts: BTreeSet<(String, u64)> = BTreeSet::new();
        let mut by: BTreeMap<String, u64> = BTreeMap::new();
        for j in jobs.values() {
            *by.entry(counter::jobs(j.status)).or_default() += 1;
        }
        for (r, _) in &exp.waiting {
            *by.entry(counter::waiting(r)).or_default() += 1;
        }
        for (name, n) in [
            (counter::DEPS_WAITING, exp.deps_waiting.len()),
            (counter::BLOCKED, exp.blocked.len()),
            (counter::CANCELLING, exp.cancelling.len()),
            (counter::CLEANUP_DEBT, debts as usize),
        ] {
            if n > 0 {
                by.insert(name.to_owned(), n as u64);
            }
        }
        counts.extend(by);
        compare(&mut problems, "counts", &counts, &self.pairs(&self.counts)?);

        Ok(CheckReport {
            tasks: tasks.len() as u64,
            jobs: jobs.len() as u64,
            events,
            problems,
        })
    }

    fn pairs(
        &self,
        table: &impl ReadableTable<&'static str, u64>,
    ) -> Result<BTreeSet<(String, u64)>, StoreError> {
        let mut out = BTreeSet::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.insert((k.value().to_owned(), v.value()));
        }
        Ok(out)
    }
}

/// The claim indexes as the records say they must be.
#[derive(Default)]
struct Expected {
    repo_tasks: BTreeSet<(String, u64)>,
    holders: BTreeSet<(String, u64)>,
    blocked: BTreeSet<u64>,
    cancelling: BTreeSet<u64>,
    deps_waiting: BTreeSet<u64>,
    ready: BTreeSet<u64>,
    waiting: BTreeSet<(String, u64)>,
    heads: BTreeSet<(String, u64)>,
}

impl Expected {
    fn compute(rx: &ReadTx, tasks: &HashMap<u64, Task>, jobs: &BTreeMap<u64, Job>) -> Self {
        let g = &rx.gates;
        let mut e = Expected::default();
        let mut deps_open: HashMap<u64, bool> = HashMap::new();
        for t in tasks.values() {
            let f = facts(t);
            let live = !f.terminal;
            let open = !g.deps_enabled
                || (t.external_deps.is_empty()
                    && t.deps
                        .iter()
                        .all(|d| tasks.get(d).is_none_or(Task::is_terminal)));
            deps_open.insert(t.id, open);
            if live {
                e.repo_tasks.insert((t.repo.clone(), t.id));
                if f.blocked {
                    e.blocked.insert(t.id);
                }
                if t.cancel_pending() {
                    e.cancelling.insert(t.id);
                }
                if !open {
                    e.deps_waiting.insert(t.id);
                }
            }
            if g.holds_repo(&f) {
                e.holders.insert((t.repo.clone(), t.id));
            }
        }
        for j in jobs.values() {
            let Some(t) = tasks.get(&j.task_id) else {
                continue;
            };
            let f = facts(t);
            let gated = gates::serial_gate_concerns(g, &t.repo, j.role, &f);
            match gates::place(j.status, &f, deps_open[&t.id], gated) {
                Placement::Ready => {
                    e.ready.insert(j.id);
                }
                Placement::Waiting => {
                    e.waiting.insert((t.repo.clone(), j.id));
                }
                Placement::Out => {}
            }
        }
        let held: BTreeSet<&str> = e.holders.iter().map(|(r, _)| r.as_str()).collect();
        let mut first: BTreeMap<&str, u64> = BTreeMap::new();
        for (r, id) in &e.waiting {
            first.entry(r.as_str()).or_insert(*id);
        }
        e.heads = first
            .into_iter()
            .filter(|(r, _)| !held.contains(r))
            .map(|(r, id)| (r.to_owned(), id))
            .collect();
        e
    }
}
