//! The data both engines are loaded with, decided once per store size so
//! orch and the SQLite peer see the same tasks and jobs with the same ids.
//!
//! Ids are handed out in load order, exactly as orch's sequences do (tasks
//! and jobs each from 1), so the SQLite rows can carry orch's ids and the
//! orch loader can check that it got the ids the plan promised.
//!
//! Shape of a store of `n` jobs (SPEC §11 P1):
//! - `queued` = min(100,000, n/10) queued jobs; 1% of them are claimable
//!   and have the highest ids, the other 99% are gated and older, so the
//!   head of the FIFO is gated: the worst case for a scan.
//! - one repo per claimable job (at least 10). Every repo has an active
//!   task (admitted, in `development`, its analyst and architect jobs done)
//!   holding the serial gate. The first `claimable` of them have a queued
//!   developer job — the claimable jobs; the others have their developer
//!   job running, as an agent would.
//! - gated jobs are analyst jobs of tasks in `analysis`, spread round-robin
//!   over the repos: four in five wait only behind their repo's active task
//!   (serial gate); one in five also depends on the active task of another
//!   repo (deps gate).
//! - everything else is history: tasks that went through the whole
//!   pipeline and are `done`, six jobs each (plus a failed developer run in
//!   one task of four), all `done` or `failed`.

use orch::domain::{JobStatus, Role, Stage};

/// The pipeline a history task went through, in order.
const PIPELINE: [(Role, Stage); 6] = [
    (Role::Analyst, Stage::Analysis),
    (Role::Architect, Stage::Architecture),
    (Role::Developer, Stage::Development),
    (Role::Reviewer, Stage::Review),
    (Role::Tester, Stage::Testing),
    (Role::Deployer, Stage::Deploy),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Failed,
}

/// One step of the load, in id order.
#[derive(Debug, Clone)]
pub enum Step {
    /// A task that ran its jobs one after the other and ended `done`.
    History {
        task: u64,
        jobs: Vec<(Role, Stage, Outcome)>,
    },
    /// A repo's active task: admitted through its analyst job, architect
    /// done, now in `development`, with its developer job running or none
    /// yet (a `Claimable` step adds it later).
    Active { task: u64, running: bool },
    /// A task in `analysis` with one queued analyst job that its repo's
    /// active task holds back, and optionally an unfinished dependency.
    Gated { task: u64, dep: Option<u64> },
    /// A queued developer job for an active task.
    Claimable { task: u64 },
}

#[derive(Debug, Clone)]
pub struct TaskRow {
    pub id: u64,
    pub work_item_id: String,
    pub repo: String,
    pub stage: Stage,
    pub admitted: bool,
    pub deps: Vec<u64>,
}

#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: u64,
    pub task_id: u64,
    pub role: Role,
    pub stage: Stage,
    pub status: JobStatus,
    pub attempt: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub queued: u64,
    pub claimable: u64,
    pub serial_gated: u64,
    pub deps_gated: u64,
    pub repos: u64,
    pub history_tasks: u64,
}

/// The final state (rows) and the way to get there (steps).
pub struct Plan {
    pub shape: Shape,
    pub steps: Vec<Step>,
    /// `tasks[i].id == i + 1`.
    pub tasks: Vec<TaskRow>,
    /// `jobs[i].id == i + 1`.
    pub jobs: Vec<JobRow>,
}

impl Plan {
    pub fn new(n: u64) -> Plan {
        let queued = (n / 10).min(100_000);
        let claimable = (queued / 100).max(1);
        let gated = queued - claimable;
        let deps_gated = gated / 5;
        let repos = claimable.max(10);
        let running = repos - claimable;
        // Each active task has two finished jobs of its own.
        let history_jobs = n
            .checked_sub(queued + running + 2 * repos)
            .expect("store too small for its shape");

        let mut p = Plan {
            shape: Shape {
                queued,
                claimable,
                serial_gated: gated - deps_gated,
                deps_gated,
                repos,
                history_tasks: 0,
            },
            steps: Vec::new(),
            tasks: Vec::new(),
            jobs: Vec::new(),
        };
        let repo = |i: u64| format!("repo-{:04}", i % repos);

        let mut left = history_jobs;
        let mut t = 0u64;
        while left > 0 {
            let mut jobs = Vec::new();
            for (role, stage) in PIPELINE {
                if role == Role::Developer && t % 4 == 3 {
                    jobs.push((role, stage, Outcome::Failed));
                }
                jobs.push((role, stage, Outcome::Done));
            }
            jobs.truncate(left as usize);
            left -= jobs.len() as u64;
            let task = p.task(repo(t), Stage::Done, true, Vec::new());
            for &(role, stage, outcome) in &jobs {
                let status = match outcome {
                    Outcome::Done => JobStatus::Done,
                    Outcome::Failed => JobStatus::Failed,
                };
                p.job(task, role, stage, status, 1);
            }
            p.steps.push(Step::History { task, jobs });
            t += 1;
        }
        p.shape.history_tasks = t;

        let mut active = Vec::new();
        for r in 0..repos {
            let task = p.task(repo(r), Stage::Development, true, Vec::new());
            p.job(task, Role::Analyst, Stage::Analysis, JobStatus::Done, 1);
            p.job(
                task,
                Role::Architect,
                Stage::Architecture,
                JobStatus::Done,
                1,
            );
            let running = r >= claimable;
            if running {
                p.job(
                    task,
                    Role::Developer,
                    Stage::Development,
                    JobStatus::Running,
                    1,
                );
            }
            p.steps.push(Step::Active { task, running });
            active.push(task);
        }

        for g in 0..gated {
            // The dependency is another repo's active task, so the deps gate
            // is a reason of its own and not the serial gate again.
            let dep = (g % 5 == 4).then(|| active[((g + 1) % repos) as usize]);
            let task = p.task(repo(g), Stage::Analysis, false, dep.into_iter().collect());
            p.job(task, Role::Analyst, Stage::Analysis, JobStatus::Queued, 0);
            p.steps.push(Step::Gated { task, dep });
        }

        for &task in active.iter().take(claimable as usize) {
            p.job(
                task,
                Role::Developer,
                Stage::Development,
                JobStatus::Queued,
                0,
            );
            p.steps.push(Step::Claimable { task });
        }

        assert_eq!(p.jobs.len() as u64, n);
        p
    }

    fn task(&mut self, repo: String, stage: Stage, admitted: bool, deps: Vec<u64>) -> u64 {
        let id = self.tasks.len() as u64 + 1;
        self.tasks.push(TaskRow {
            id,
            work_item_id: format!("ORCH-{id}"),
            repo,
            stage,
            admitted,
            deps,
        });
        id
    }

    fn job(&mut self, task_id: u64, role: Role, stage: Stage, status: JobStatus, attempt: u32) {
        let id = self.jobs.len() as u64 + 1;
        self.jobs.push(JobRow {
            id,
            task_id,
            role,
            stage,
            status,
            attempt,
        });
    }

    pub fn task_row(&self, id: u64) -> &TaskRow {
        &self.tasks[(id - 1) as usize]
    }

    /// The job every measured claim must return: the oldest claimable one.
    pub fn first_claimable(&self) -> u64 {
        self.jobs
            .iter()
            .find(|j| j.status == JobStatus::Queued && j.role == Role::Developer)
            .map(|j| j.id)
            .expect("a plan always has a claimable job")
    }

    /// The oldest queued job: gated, and older than every claimable one.
    pub fn fifo_head(&self) -> u64 {
        self.jobs
            .iter()
            .find(|j| j.status == JobStatus::Queued)
            .map(|j| j.id)
            .expect("a plan always has queued jobs")
    }
}
