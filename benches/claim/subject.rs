//! orch's side: loads the plan through the store's own operations (so every
//! index is built the way production builds it) and runs the claim.

use std::path::{Path, PathBuf};

use orch::domain::{RepoName, Role, Stage, WorkItemId};
use orch::gates::GateConfig;
use orch::store::{Completion, Durability, NewTask, Options, Store, StoreError, Tx};

use super::plan::{Outcome, Plan, Step};
use super::{Claimed, Engine, LEASE_MS, LOAD_NOW, LONG_LEASE_MS, PUT_BACK_REASON, WORKER};

/// Steps per load transaction: large enough that commits do not dominate,
/// small enough that one transaction's dirty pages stay modest.
const STEPS_PER_TX: usize = 2_000;

fn options(durability: Durability) -> Options {
    Options {
        gates: GateConfig::default(),
        durability,
        ..Options::default()
    }
}

/// Loads the plan at `Durability::None` in large transactions; closing the
/// store makes the last of them durable.
pub fn load(plan: &Plan, dir: &Path) -> PathBuf {
    let path = dir.join("orch.redb");
    let store = Store::open(&path, options(Durability::None), LOAD_NOW).expect("open store");
    for (i, chunk) in plan.steps.chunks(STEPS_PER_TX).enumerate() {
        store
            .write(LOAD_NOW + i as i64, |tx| {
                for step in chunk {
                    run(plan, tx, step)?;
                }
                Ok(())
            })
            .expect("load");
    }
    verify(plan, &store);
    path
}

fn run(plan: &Plan, tx: &mut Tx<'_>, step: &Step) -> Result<(), StoreError> {
    match step {
        Step::History { task, jobs } => {
            create(plan, tx, *task, None)?;
            let mut stage = Stage::Created;
            for &(role, st, outcome) in jobs {
                if stage != st {
                    tx.set_stage(*task, st)?;
                    stage = st;
                }
                let c = enqueue_and_claim(tx, *task, role, LEASE_MS)?;
                let how = match outcome {
                    Outcome::Done => Completion::Done,
                    Outcome::Failed => Completion::Failed("exit status 1".into()),
                };
                tx.complete(c.job_id, c.attempt, how)?;
            }
            tx.set_stage(*task, Stage::Done)?;
        }
        Step::Active { task, running } => {
            create(plan, tx, *task, None)?;
            for (role, stage) in [
                (Role::Analyst, Stage::Analysis),
                (Role::Architect, Stage::Architecture),
            ] {
                tx.set_stage(*task, stage)?;
                let c = enqueue_and_claim(tx, *task, role, LEASE_MS)?;
                tx.complete(c.job_id, c.attempt, Completion::Done)?;
            }
            tx.set_stage(*task, Stage::Development)?;
            if *running {
                enqueue_and_claim(tx, *task, Role::Developer, LONG_LEASE_MS)?;
            }
        }
        Step::Gated { task, dep } => {
            create(plan, tx, *task, *dep)?;
            tx.set_stage(*task, Stage::Analysis)?;
            tx.enqueue(*task, Role::Analyst, None)?;
        }
        Step::Claimable { task } => {
            tx.enqueue(*task, Role::Developer, None)?;
        }
    }
    Ok(())
}

fn create(plan: &Plan, tx: &mut Tx<'_>, task: u64, dep: Option<u64>) -> Result<(), StoreError> {
    let row = plan.task_row(task);
    let t = tx.create_task(NewTask {
        work_item_id: WorkItemId::parse(&row.work_item_id).expect("work item id"),
        plane_issue_id: None,
        repo: RepoName::parse(&row.repo).expect("repo"),
        title: format!("title of {}", row.work_item_id),
        description: String::new(),
        depends_on: dep
            .map(|d| plan.task_row(d).work_item_id.clone())
            .into_iter()
            .collect(),
    })?;
    assert_eq!(t.id, task, "orch handed out another task id than the plan");
    Ok(())
}

/// Queues a job and claims it at once. While loading, at most one job is
/// claimable at any time, so the claim must return the job just queued.
fn enqueue_and_claim(
    tx: &mut Tx<'_>,
    task: u64,
    role: Role,
    lease_ms: i64,
) -> Result<Claimed, StoreError> {
    let job = tx.enqueue(task, role, None)?;
    let lease = tx
        .claim("loader", lease_ms, None)?
        .expect("the job just queued is claimable");
    assert_eq!(lease.job_id, job.id, "loader claimed an unexpected job");
    Ok(Claimed {
        job_id: lease.job_id,
        task_id: lease.task_id,
        attempt: lease.attempt,
    })
}

/// The loaded store agrees with the plan: the ids it handed out and the
/// number of jobs in each status.
fn verify(plan: &Plan, store: &Store) {
    let counts = store.job_counts();
    for status in [
        orch::domain::JobStatus::Queued,
        orch::domain::JobStatus::Running,
        orch::domain::JobStatus::Done,
        orch::domain::JobStatus::Failed,
    ] {
        let planned = plan.jobs.iter().filter(|j| j.status == status).count() as u64;
        assert_eq!(
            counts.get(&status).copied().unwrap_or(0),
            planned,
            "{status:?} jobs"
        );
    }
    let last = plan.jobs.last().expect("jobs").id;
    let stored = store
        .read(|rx| rx.job(last))
        .expect("read")
        .expect("last job exists");
    assert_eq!(stored.task_id, plan.jobs[(last - 1) as usize].task_id);
}

pub struct Subject {
    store: Store,
}

impl Subject {
    pub fn open(path: &Path, durability: Durability, now: i64) -> Subject {
        Subject {
            store: Store::open(path, options(durability), now).expect("open store"),
        }
    }
}

impl Engine for Subject {
    fn claim(&mut self, now: i64) -> Option<Claimed> {
        self.store
            .write(now, |tx| tx.claim(WORKER, LEASE_MS, None))
            .expect("claim")
            .map(|l| Claimed {
                job_id: l.job_id,
                task_id: l.task_id,
                attempt: l.attempt,
            })
    }

    fn put_back(&mut self, now: i64, c: &Claimed) {
        self.store
            .write(now, |tx| {
                tx.complete(
                    c.job_id,
                    c.attempt,
                    Completion::Interrupted(PUT_BACK_REASON.into()),
                )
            })
            .expect("put back");
    }
}
