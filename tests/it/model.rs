//! TC-30: the indexed claim equals a naive claim over random operation
//! sequences. The naive model keeps tasks and jobs in vectors and decides
//! every claim by scanning all queued jobs against the gate definitions of
//! SPEC §5; the store decides through its maintained indexes. After every
//! step the claim results, the snapshots and the job counts must agree, and
//! `db check` must pass.

use std::collections::BTreeMap;

use orch::domain::{JobStatus, Role, Stage};
use orch::gates::GateConfig;
use orch::store::{Completion, Options, Store, StoreError};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

use crate::support::{new_task, tempdir};

const REPOS: [&str; 3] = ["alpha", "beta", "gamma"];
const LEASE: i64 = 100;
const MAX_REAPED: u32 = 2;

#[derive(Debug, Clone)]
enum Op {
    Create {
        repo: u8,
        deps: Vec<u8>,
        start: bool,
    },
    AddDep {
        task: u8,
        dep: u8,
    },
    Enqueue {
        task: u8,
        role: u8,
    },
    Claim,
    Heartbeat {
        job: u8,
        stale: bool,
    },
    Complete {
        job: u8,
        how: u8,
        stale: bool,
    },
    Block {
        task: u8,
        on: bool,
    },
    Advance {
        task: u8,
    },
    CancelJobs {
        task: u8,
    },
    RequestCancel {
        task: u8,
    },
    Finalize {
        task: u8,
    },
    Reap {
        advance: u8,
    },
    Reopen {
        switch: Option<u8>,
    },
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        let n = |g: &mut Gen| u8::arbitrary(g);
        match u8::arbitrary(g) % 20 {
            0..=3 => Op::Create {
                repo: n(g) % 3,
                deps: Vec::<u8>::arbitrary(g).into_iter().take(2).collect(),
                start: bool::arbitrary(g),
            },
            4 => Op::AddDep {
                task: n(g),
                dep: n(g),
            },
            5..=6 => Op::Enqueue {
                task: n(g),
                role: n(g),
            },
            7..=9 => Op::Claim,
            10 => Op::Heartbeat {
                job: n(g),
                stale: bool::arbitrary(g),
            },
            11..=12 => Op::Complete {
                job: n(g),
                how: n(g) % 3,
                stale: u8::arbitrary(g) % 5 == 0,
            },
            13 => Op::Block {
                task: n(g),
                on: bool::arbitrary(g),
            },
            14 => Op::Advance { task: n(g) },
            15 => Op::CancelJobs { task: n(g) },
            16 => Op::RequestCancel { task: n(g) },
            17 => Op::Finalize { task: n(g) },
            18 => Op::Reap { advance: n(g) },
            _ => Op::Reopen {
                switch: if bool::arbitrary(g) { Some(n(g)) } else { None },
            },
        }
    }
}

#[derive(Debug, Clone)]
struct Scenario {
    gates: GateConfig,
    ops: Vec<Op>,
}

fn gates_from(bits: u8) -> GateConfig {
    GateConfig {
        serial_enabled: bits & 1 == 0,
        serial_repos: if bits & 2 == 0 {
            vec![]
        } else {
            vec!["alpha".into(), "gamma".into()]
        },
        freeze_enabled: bits & 4 == 0,
        deps_enabled: bits & 8 == 0,
        stop_enabled: true,
    }
}

impl Arbitrary for Scenario {
    fn arbitrary(g: &mut Gen) -> Self {
        let len = usize::arbitrary(g) % 60 + 10;
        Scenario {
            gates: gates_from(u8::arbitrary(g)),
            ops: (0..len).map(|_| Op::arbitrary(g)).collect(),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let gates = self.gates.clone();
        Box::new(self.ops.shrink().map(move |ops| Scenario {
            gates: gates.clone(),
            ops,
        }))
    }
}

#[derive(Debug, Clone)]
struct MTask {
    id: u64,
    repo: &'static str,
    stage: Stage,
    admitted: bool,
    blocked: bool,
    cancel: bool,
    deps: Vec<u64>,
}

#[derive(Debug, Clone)]
struct MJob {
    id: u64,
    task: u64,
    role: Role,
    status: JobStatus,
    attempt: u32,
    lease: i64,
    reaped: u32,
}

/// The naive model: plain vectors, and gate definitions read straight off
/// the spec.
struct Model {
    gates: GateConfig,
    tasks: Vec<MTask>,
    jobs: Vec<MJob>,
}

impl Model {
    fn task(&self, id: u64) -> &MTask {
        self.tasks.iter().find(|t| t.id == id).unwrap()
    }

    fn task_mut(&mut self, id: u64) -> &mut MTask {
        self.tasks.iter_mut().find(|t| t.id == id).unwrap()
    }

    fn terminal(&self, id: u64) -> bool {
        self.task(id).stage.is_terminal()
    }

    fn deps_open(&self, t: &MTask) -> bool {
        !self.gates.deps_enabled || t.deps.iter().all(|d| self.terminal(*d))
    }

    fn holds(&self, t: &MTask) -> bool {
        t.admitted && !t.stage.is_terminal() && (self.gates.freeze_enabled || !t.blocked)
    }

    fn held(&self, repo: &str) -> bool {
        self.tasks.iter().any(|t| t.repo == repo && self.holds(t))
    }

    fn gated(&self, j: &MJob, t: &MTask) -> bool {
        self.gates.serial_gate_applies(t.repo) && j.role == Role::Analyst && !t.admitted
    }

    fn waiting(&self, j: &MJob) -> bool {
        let t = self.task(j.task);
        j.status == JobStatus::Queued
            && !t.stage.is_terminal()
            && !t.cancel
            && self.deps_open(t)
            && self.gated(j, t)
    }

    fn eligible(&self, j: &MJob) -> bool {
        let t = self.task(j.task);
        j.status == JobStatus::Queued
            && !t.stage.is_terminal()
            && !t.cancel
            && self.deps_open(t)
            && !(self.gated(j, t) && self.held(t.repo))
    }

    fn claim(&mut self, now: i64) -> Option<u64> {
        let id = self
            .jobs
            .iter()
            .filter(|j| self.eligible(j))
            .map(|j| j.id)
            .min()?;
        let j = self.jobs.iter_mut().find(|j| j.id == id).unwrap();
        j.status = JobStatus::Running;
        j.attempt += 1;
        j.lease = now + LEASE;
        let (task, role) = (j.task, j.role);
        if role == Role::Analyst {
            self.task_mut(task).admitted = true;
        }
        Some(id)
    }

    fn reaches(&self, from: u64, to: u64) -> bool {
        let mut stack = vec![from];
        let mut seen = vec![];
        while let Some(id) = stack.pop() {
            if id == to {
                return true;
            }
            if !seen.contains(&id) {
                seen.push(id);
                stack.extend(self.task(id).deps.iter().copied());
            }
        }
        false
    }

    fn cancel_jobs(&mut self, task: u64) {
        for j in self
            .jobs
            .iter_mut()
            .filter(|j| j.task == task && !j.status.is_final())
        {
            j.status = JobStatus::Cancelled;
        }
    }

    /// (active task, waiting job ids, waiting count) per repo the gate
    /// applies to.
    fn serial(&self) -> BTreeMap<String, (Option<u64>, Vec<u64>, u64)> {
        let mut out = BTreeMap::new();
        if !self.gates.serial_enabled {
            return out;
        }
        for repo in REPOS {
            if !self.gates.serial_gate_applies(repo) {
                continue;
            }
            let active = self
                .tasks
                .iter()
                .filter(|t| t.repo == repo && self.holds(t))
                .map(|t| t.id)
                .min();
            let waiting: Vec<u64> = self
                .jobs
                .iter()
                .filter(|j| self.task(j.task).repo == repo && self.waiting(j))
                .map(|j| j.id)
                .collect();
            if active.is_some() || !waiting.is_empty() {
                let n = waiting.len() as u64;
                out.insert(
                    repo.to_string(),
                    (active, waiting.into_iter().take(50).collect(), n),
                );
            }
        }
        out
    }

    fn deps_blocked(&self) -> Vec<u64> {
        if !self.gates.deps_enabled {
            return vec![];
        }
        self.tasks
            .iter()
            .filter(|t| !t.stage.is_terminal() && !self.deps_open(t))
            .map(|t| t.id)
            .collect()
    }
}

fn next_stage(s: Stage) -> Stage {
    let all = Stage::ALL;
    let i = all.iter().position(|x| *x == s).unwrap();
    if all[i + 1] == Stage::Cancelled {
        Stage::Done
    } else {
        all[i + 1]
    }
}

fn pick<T: Copy>(v: &[T], i: u8) -> Option<T> {
    if v.is_empty() {
        None
    } else {
        Some(v[i as usize % v.len()])
    }
}

/// Runs one scenario on a real store and on the model; returns the first
/// disagreement.
fn run(s: &Scenario) -> Result<(), String> {
    let dir = tempdir();
    let path = dir.path().join("orch.redb");
    let mut opts = Options {
        gates: s.gates.clone(),
        ..Options::default()
    };
    let mut now = 1_000i64;
    let mut store = Some(Store::open(&path, opts.clone(), now).map_err(|e| e.to_string())?);
    let mut m = Model {
        gates: s.gates.clone(),
        tasks: vec![],
        jobs: vec![],
    };
    let mut seq = 0;

    for (step, op) in s.ops.iter().enumerate() {
        now += 1;
        let st = store.as_ref().unwrap();
        let task_ids: Vec<u64> = m.tasks.iter().map(|t| t.id).collect();
        let job_ids: Vec<u64> = m.jobs.iter().map(|j| j.id).collect();
        let ctx = |what: &str| format!("step {step} {op:?}: {what}");
        match op {
            Op::Create { repo, deps, start } => {
                seq += 1;
                let repo = REPOS[*repo as usize % 3];
                let dep_ids: Vec<u64> = deps.iter().filter_map(|d| pick(&task_ids, *d)).collect();
                let keys: Vec<String> = dep_ids.iter().map(u64::to_string).collect();
                let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                let start = *start;
                let (t, job) = st
                    .write(now, |tx| {
                        let t =
                            tx.create_task(new_task(&format!("ORCH-{seq}"), repo, &key_refs))?;
                        if !start {
                            return Ok((t, None));
                        }
                        tx.set_stage(t.id, Stage::Analysis)?;
                        let j = tx.enqueue(t.id, Role::Analyst, None)?;
                        Ok((t, Some(j.id)))
                    })
                    .map_err(|e| ctx(&e.to_string()))?;
                let mut deps = dep_ids.clone();
                deps.dedup();
                let mut uniq = vec![];
                for d in deps {
                    if !uniq.contains(&d) {
                        uniq.push(d);
                    }
                }
                m.tasks.push(MTask {
                    id: t.id,
                    repo,
                    stage: if start {
                        Stage::Analysis
                    } else {
                        Stage::Created
                    },
                    admitted: false,
                    blocked: false,
                    cancel: false,
                    deps: uniq,
                });
                if let Some(id) = job {
                    m.jobs.push(MJob {
                        id,
                        task: t.id,
                        role: Role::Analyst,
                        status: JobStatus::Queued,
                        attempt: 0,
                        lease: 0,
                        reaped: 0,
                    });
                }
            }
            Op::AddDep { task, dep } => {
                let (Some(a), Some(b)) = (pick(&task_ids, *task), pick(&task_ids, *dep)) else {
                    continue;
                };
                let got = st.write(now, |tx| tx.add_dependency(a, b));
                let expect_ok = !m.terminal(a) && a != b && !m.reaches(b, a);
                if got.is_ok() != expect_ok {
                    return Err(ctx(&format!("store {got:?}, model ok={expect_ok}")));
                }
                if expect_ok && !m.task(a).deps.contains(&b) {
                    m.task_mut(a).deps.push(b);
                }
            }
            Op::Enqueue { task, role } => {
                let Some(a) = pick(&task_ids, *task) else {
                    continue;
                };
                let role = Role::ALL[*role as usize % 6];
                let got = st.write(now, |tx| tx.enqueue(a, role, None));
                let expect_ok = !m.terminal(a) && !m.task(a).cancel;
                if got.is_ok() != expect_ok {
                    return Err(ctx(&format!("store {got:?}, model ok={expect_ok}")));
                }
                if let Ok(j) = got {
                    m.jobs.push(MJob {
                        id: j.id,
                        task: a,
                        role,
                        status: JobStatus::Queued,
                        attempt: 0,
                        lease: 0,
                        reaped: 0,
                    });
                }
            }
            Op::Claim => {
                let got = st
                    .write(now, |tx| tx.claim("w", LEASE, None))
                    .map_err(|e| ctx(&e.to_string()))?;
                let expect = m.claim(now);
                if got.as_ref().map(|l| l.job_id) != expect {
                    return Err(ctx(&format!("store claimed {got:?}, model {expect:?}")));
                }
            }
            Op::Heartbeat { job, stale } => {
                let Some(id) = pick(&job_ids, *job) else {
                    continue;
                };
                let j = m.jobs.iter_mut().find(|j| j.id == id).unwrap();
                let attempt = if *stale {
                    j.attempt.wrapping_sub(1)
                } else {
                    j.attempt
                };
                let got = st.write(now, |tx| tx.heartbeat(id, attempt, LEASE));
                let expect_ok = j.status == JobStatus::Running && attempt == j.attempt;
                if got.is_ok() != expect_ok {
                    return Err(ctx(&format!("store {got:?}, model ok={expect_ok}")));
                }
                if expect_ok {
                    j.lease = now + LEASE;
                }
            }
            Op::Complete { job, how, stale } => {
                let Some(id) = pick(&job_ids, *job) else {
                    continue;
                };
                let j = m.jobs.iter().find(|j| j.id == id).unwrap().clone();
                let attempt = if *stale {
                    j.attempt.wrapping_add(1)
                } else {
                    j.attempt
                };
                let completion = match how {
                    0 => Completion::Done,
                    1 => Completion::Failed("exit 1".into()),
                    _ => Completion::Interrupted("shutdown".into()),
                };
                let got = st.write(now, |tx| tx.complete(id, attempt, completion.clone()));
                let expect_ok = j.status == JobStatus::Running && attempt == j.attempt;
                if got.is_ok() != expect_ok {
                    return Err(ctx(&format!("store {got:?}, model ok={expect_ok}")));
                }
                if expect_ok {
                    let t = m.task(j.task).clone();
                    let status = match completion {
                        Completion::Done => JobStatus::Done,
                        Completion::Failed(_) => JobStatus::Failed,
                        Completion::Interrupted(_) if t.stage.is_terminal() || t.cancel => {
                            JobStatus::Cancelled
                        }
                        Completion::Interrupted(_) => JobStatus::Queued,
                    };
                    m.jobs.iter_mut().find(|x| x.id == id).unwrap().status = status;
                }
            }
            Op::Block { task, on } => {
                let Some(a) = pick(&task_ids, *task) else {
                    continue;
                };
                let reason = on.then(|| "blocked by the model".to_string());
                let got = st.write(now, |tx| tx.set_blocked(a, reason.clone()));
                let expect_ok = !m.terminal(a);
                if got.is_ok() != expect_ok {
                    return Err(ctx(&format!("store {got:?}, model ok={expect_ok}")));
                }
                if expect_ok {
                    m.task_mut(a).blocked = *on;
                }
            }
            Op::Advance { task } => {
                let Some(a) = pick(&task_ids, *task) else {
                    continue;
                };
                let t = m.task(a).clone();
                let target = if t.stage.is_terminal() {
                    Stage::Done
                } else {
                    next_stage(t.stage)
                };
                let got = st.write(now, |tx| tx.set_stage(a, target));
                let expect_ok = !t.stage.is_terminal();
                if got.is_ok() != expect_ok {
                    return Err(ctx(&format!("store {got:?}, model ok={expect_ok}")));
                }
                if expect_ok {
                    let mt = m.task_mut(a);
                    mt.stage = target;
                    if target > Stage::Analysis {
                        mt.admitted = true;
                    }
                }
            }
            Op::CancelJobs { task } => {
                let Some(a) = pick(&task_ids, *task) else {
                    continue;
                };
                st.write(now, |tx| tx.cancel_jobs(a))
                    .map_err(|e| ctx(&e.to_string()))?;
                m.cancel_jobs(a);
            }
            Op::RequestCancel { task } => {
                let Some(a) = pick(&task_ids, *task) else {
                    continue;
                };
                st.write(now, |tx| tx.request_cancel(a))
                    .map_err(|e| ctx(&e.to_string()))?;
                if !m.terminal(a) {
                    m.task_mut(a).cancel = true;
                }
            }
            Op::Finalize { task } => {
                let Some(a) = pick(&task_ids, *task) else {
                    continue;
                };
                let got = st.write(now, |tx| tx.finalize_cancel(a));
                let stage = m.task(a).stage;
                let expect_ok = stage != Stage::Done;
                if got.is_ok() != expect_ok {
                    return Err(ctx(&format!("store {got:?}, model ok={expect_ok}")));
                }
                if expect_ok && stage != Stage::Cancelled {
                    m.cancel_jobs(a);
                    let t = m.task_mut(a);
                    t.stage = Stage::Cancelled;
                    t.cancel = true;
                }
            }
            Op::Reap { advance } => {
                now += *advance as i64;
                st.write(now, |tx| tx.reap(MAX_REAPED))
                    .map_err(|e| ctx(&e.to_string()))?;
                let mut updates = vec![];
                for j in m
                    .jobs
                    .iter()
                    .filter(|j| j.status == JobStatus::Running && j.lease < now)
                {
                    let t = m.task(j.task);
                    let status = if t.stage.is_terminal() || t.cancel {
                        JobStatus::Cancelled
                    } else if j.reaped + 1 >= MAX_REAPED {
                        JobStatus::Failed
                    } else {
                        JobStatus::Queued
                    };
                    updates.push((j.id, status));
                }
                for (id, status) in updates {
                    let j = m.jobs.iter_mut().find(|j| j.id == id).unwrap();
                    j.status = status;
                    j.reaped += 1;
                }
            }
            Op::Reopen { switch } => {
                drop(store.take());
                if let Some(bits) = switch {
                    opts.gates = gates_from(*bits);
                    m.gates = opts.gates.clone();
                }
                store =
                    Some(Store::open(&path, opts.clone(), now).map_err(|e| ctx(&e.to_string()))?);
            }
        }
        compare(store.as_ref().unwrap(), &m)
            .map_err(|e| format!("after step {step} {op:?}: {e}"))?;
    }
    Ok(())
}

fn compare(st: &Store, m: &Model) -> Result<(), String> {
    let report = st.check().map_err(|e: StoreError| e.to_string())?;
    if !report.ok() {
        return Err(format!("db check: {:?}", report.problems));
    }
    let snap = st.serial_snapshot();
    let got: BTreeMap<String, (Option<u64>, Vec<u64>, u64)> = snap
        .per_repo
        .iter()
        .map(|(r, g)| {
            (
                r.clone(),
                (
                    g.active_task.as_ref().map(|a| a.task_id),
                    g.waiting.iter().map(|w| w.job_id).collect(),
                    g.waiting_count,
                ),
            )
        })
        .collect();
    let expect = m.serial();
    if got != expect {
        return Err(format!("serial snapshot: store {got:?}, model {expect:?}"));
    }
    let deps: Vec<u64> = st
        .deps_snapshot()
        .blocked
        .iter()
        .map(|b| b.task_id)
        .collect();
    if deps != m.deps_blocked() {
        return Err(format!(
            "deps snapshot: store {deps:?}, model {:?}",
            m.deps_blocked()
        ));
    }
    let counts = st.job_counts();
    for s in JobStatus::ALL {
        let n = m.jobs.iter().filter(|j| j.status == s).count() as u64;
        if counts.get(&s).copied().unwrap_or(0) != n {
            return Err(format!(
                "count of {s}: store {:?}, model {n}",
                counts.get(&s)
            ));
        }
    }
    Ok(())
}

/// TC-30: indexed claim == naive claim, snapshots agree, `db check` passes,
/// over random sequences including close/reopen and switch changes.
#[test]
fn indexed_claim_equals_naive_claim_tc30() {
    fn prop(s: Scenario) -> TestResult {
        match run(&s) {
            Ok(()) => TestResult::passed(),
            Err(e) => TestResult::error(e),
        }
    }
    let tests = std::env::var("ORCH_QC_TESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    QuickCheck::new()
        .tests(tests)
        .rng(Gen::new(64))
        .quickcheck(prop as fn(Scenario) -> TestResult);
}
