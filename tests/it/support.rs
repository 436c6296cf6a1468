//! Shared fixtures: a real redb file in a temp dir, and one-line helpers to
//! build the situations the tests talk about.

use std::path::{Path, PathBuf};
use std::process::Command;

use orch::domain::{PlaneIssueId, RepoName, Role, Stage, WorkItemId};
use orch::gates::GateConfig;
use orch::store::{Durability, Lease, NewTask, Options, Store, StoreError, Task};
use tempfile::TempDir;

pub const LEASE_MS: i64 = 60_000;

/// A temp dir on a memory-backed filesystem when there is one, so fsyncs in
/// tests are cheap; the store code paths are the same.
pub fn tempdir() -> TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

pub struct Fx {
    pub dir: TempDir,
    pub store: Store,
    pub now: i64,
    pub opts: Options,
    seq: u32,
}

impl Fx {
    pub fn new() -> Self {
        Self::with(GateConfig::default())
    }

    pub fn with(gates: GateConfig) -> Self {
        let dir = tempdir();
        let opts = Options {
            gates,
            durability: Durability::Immediate,
            ..Options::default()
        };
        let store = Store::open(dir.path().join("orch.redb"), opts.clone(), 1_000).unwrap();
        Self {
            dir,
            store,
            now: 1_000,
            opts,
            seq: 0,
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("orch.redb")
    }

    /// Closes and reopens the file, optionally with other gate switches.
    pub fn reopen(&mut self, gates: Option<GateConfig>) {
        if let Some(g) = gates {
            self.opts.gates = g;
        }
        let path = self.path();
        let placeholder = Store::open(
            self.dir.path().join("placeholder.redb"),
            Options::default(),
            self.now,
        )
        .unwrap();
        drop(std::mem::replace(&mut self.store, placeholder));
        self.store = Store::open(path, self.opts.clone(), self.now).unwrap();
    }

    pub fn tick(&mut self) -> i64 {
        self.now += 1;
        self.now
    }

    pub fn write<R>(
        &mut self,
        f: impl FnOnce(&mut orch::store::Tx<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let now = self.tick();
        self.store.write(now, f)
    }

    /// A started task (stage analysis, analyst job queued) in `repo`.
    pub fn start(&mut self, repo: &str) -> Task {
        self.start_with(repo, &[])
    }

    pub fn start_with(&mut self, repo: &str, deps: &[&str]) -> Task {
        let t = self.create(repo, deps);
        self.write(|tx| {
            tx.set_stage(t.id, Stage::Analysis)?;
            tx.enqueue(t.id, Role::Analyst, None)?;
            tx.task(t.id)
        })
        .unwrap()
    }

    pub fn create(&mut self, repo: &str, deps: &[&str]) -> Task {
        self.seq += 1;
        let wi = format!("ORCH-{}", self.seq);
        self.write(|tx| tx.create_task(new_task(&wi, repo, deps)))
            .unwrap()
    }

    /// A task already past analysis (admitted) in `stage`, with no job.
    pub fn active(&mut self, repo: &str, stage: Stage) -> Task {
        let t = self.create(repo, &[]);
        self.write(|tx| tx.set_stage(t.id, stage)).unwrap()
    }

    pub fn enqueue(&mut self, task: u64, role: Role) -> u64 {
        self.write(|tx| tx.enqueue(task, role, None)).unwrap().id
    }

    pub fn claim(&mut self) -> Option<Lease> {
        self.write(|tx| tx.claim("w1", LEASE_MS, None)).unwrap()
    }

    pub fn claimed_job(&mut self) -> Option<u64> {
        self.claim().map(|l| l.job_id)
    }

    pub fn task(&self, id: u64) -> Task {
        self.store.read(|rx| rx.task(id)).unwrap().unwrap()
    }

    pub fn events(&self, id: u64) -> Vec<String> {
        self.store
            .read(|rx| rx.events_of(id))
            .unwrap()
            .into_iter()
            .map(|e| e.kind.as_str().to_owned())
            .collect()
    }

    pub fn assert_consistent(&self) {
        let report = self.store.check().unwrap();
        assert!(report.ok(), "{:?}", report.problems);
    }
}

pub fn new_task(wi: &str, repo: &str, deps: &[&str]) -> NewTask {
    NewTask {
        work_item_id: WorkItemId::parse(wi).unwrap(),
        plane_issue_id: None,
        repo: RepoName::parse(repo).unwrap(),
        title: format!("title of {wi}"),
        description: String::new(),
        depends_on: deps.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn with_plane(mut t: NewTask, uuid: &str) -> NewTask {
    t.plane_issue_id = Some(PlaneIssueId::parse(uuid).unwrap());
    t
}

/// Runs the real `git` in `dir` for the test's own setup and inspection,
/// isolated from the machine's config, and returns its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_output(dir, args);
    assert!(
        out.status.success(),
        "git {args:?} in {dir:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn git_output(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .args(args)
        .output()
        .expect("git runs")
}
