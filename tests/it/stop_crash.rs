//! TC-S13: `orch serve` is killed between every pair of cancel steps; after
//! a restart the end state equals the one of an uninterrupted STOP. The
//! processes are real: `orch serve` children, SIGKILL, a fault-injection
//! abort after a named step.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orch::domain::{JobStatus, Stage};
use orch::store::{Options, Store};

use crate::support::{git, git_output, tempdir};
use crate::world::{bare_remote, demo_agent_with};

struct Site {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    remote: PathBuf,
}

impl Site {
    fn new() -> Self {
        let tmp = tempdir();
        let root = tmp.path().canonicalize().unwrap();
        let remote = bare_remote(&root, "r");
        std::fs::write(
            root.join("orch.toml"),
            format!(
                "[[repo]]\nname = \"r\"\nremote = \"{}\"\n",
                remote.display()
            ),
        )
        .unwrap();
        Self {
            _tmp: tmp,
            root,
            remote,
        }
    }

    fn cmd(&self, extra: &[(&str, &str)]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_orch"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("ORCH_DATA_DIR", self.root.join("data"))
            .env("ORCH_CONFIG", self.root.join("orch.toml"))
            .env("ORCH_AGENT_CMD", "builtin")
            .env("ORCH_HTTP_ADDR", "127.0.0.1:0")
            .env("ORCH_HEARTBEAT_SECS", "1")
            .env("ORCH_STOP_GRACE_SECS", "1")
            .env("ORCH_REAPER_INTERVAL_SECS", "1")
            .current_dir(&self.root)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in extra {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str]) {
        let out = self
            .cmd(&[])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "orch {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn serve(&self, extra: &[(&str, &str)]) -> Child {
        self.cmd(extra).arg("serve").spawn().unwrap()
    }

    fn log(&self, job: u64) -> PathBuf {
        self.root
            .join("data")
            .join("logs")
            .join(format!("{job}.log"))
    }

    fn remote_has(&self, rev: &str) -> bool {
        git_output(
            &self.root,
            &[
                "--git-dir",
                self.remote.to_str().unwrap(),
                "rev-parse",
                "--verify",
                "-q",
                rev,
            ],
        )
        .status
        .success()
    }

    fn remote_main_files(&self) -> String {
        git(
            &self.root,
            &[
                "--git-dir",
                self.remote.to_str().unwrap(),
                "log",
                "--name-only",
                "--format=",
                "main",
            ],
        )
    }
}

fn wait_for(what: &str, secs: u64, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn sigterm(mut child: Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "orch serve exits 0 on SIGTERM: {status:?}"
    );
}

/// Everything the end state is judged on, with ids and times left out.
#[derive(Debug, PartialEq, Eq)]
struct EndState {
    first: (Stage, String, Option<String>, Vec<JobStatus>, bool),
    second: (Stage, bool),
    archive: Vec<String>,
    worktree_exists: bool,
    remote_feature: bool,
    debts: usize,
    agent_alive: bool,
}

/// Starts two tasks of one repo, lets the first reach development with a
/// sleeping developer, SIGKILLs orch, records the STOP in the file, then
/// restarts (aborting after `crash_after`, if given) until both tasks are
/// settled. Returns the end state.
fn scenario(crash_after: Option<&str>) -> EndState {
    let site = Site::new();
    site.run(&["task", "start", "ORCH-1", "--repo", "r", "--title", "first"]);
    site.run(&[
        "task", "start", "ORCH-2", "--repo", "r", "--title", "second",
    ]);
    let sleepy = demo_agent_with("ORCH_DEMO_SLEEP_MS=60000");
    let serve = site.serve(&[("ORCH_AGENT_CMD_DEVELOPER", &sleepy)]);
    // Job 1 and 2 are the analysts of ORCH-1 and ORCH-2; 3 and 4 are
    // ORCH-1's architect and developer.
    wait_for("the developer agent", 60, || {
        std::fs::metadata(site.log(4)).is_ok()
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut serve = serve;
    serve.kill().unwrap();
    serve.wait().unwrap();
    let (pid, start) = {
        let store = Store::open(site.root.join("data/orch.redb"), Options::default(), 0).unwrap();
        let job = store.read(|rx| rx.job(4)).unwrap().unwrap();
        (job.pid.unwrap(), job.pid_start.unwrap())
    };
    assert!(
        orch::agent::is_alive(pid, start),
        "the agent outlives a SIGKILLed orch"
    );
    site.run(&["task", "stop", "ORCH-1"]);

    if let Some(step) = crash_after {
        let mut crashing = site.serve(&[(orch::runtime::CRASH_AFTER_STEP_VAR, step)]);
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = crashing.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "orch did not reach step {step}");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(!status.success(), "aborted after {step}: {status:?}");
    }
    let serve = site.serve(&[]);
    wait_for("the second task merged", 90, || {
        site.remote_main_files().contains("CHANGES-ORCH-2.md")
    });
    wait_for("cleanups", 30, || {
        !site.remote_has("refs/heads/feature/ORCH-1")
            && !site.remote_has("refs/heads/feature/ORCH-2")
    });
    std::thread::sleep(Duration::from_millis(300));
    sigterm(serve);

    let store = Store::open(site.root.join("data/orch.redb"), Options::default(), 0).unwrap();
    assert!(store.check().unwrap().ok());
    let (t1, t2, jobs1, debts) = store
        .read(|rx| {
            Ok((
                rx.task(1)?.unwrap(),
                rx.task(2)?.unwrap(),
                rx.jobs_of(1)?,
                rx.debts()?.len(),
            ))
        })
        .unwrap();
    let archive = orch::runtime::archive_dir(&site.root.join("data"), &t1);
    let mut files: Vec<String> = std::fs::read_dir(&archive)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    EndState {
        first: (
            t1.stage,
            t1.work_item_id.clone(),
            t1.cancel
                .and_then(|c| c.resolution)
                .map(|r| r.as_str().to_owned()),
            jobs1.iter().map(|j| j.status).collect(),
            t1.admitted_at.is_some(),
        ),
        second: (t2.stage, t2.admitted_at.is_some()),
        archive: files,
        worktree_exists: Path::new(&site.root.join("data").join(&t1.worktree)).exists(),
        remote_feature: site.remote_has("refs/heads/feature/ORCH-1"),
        debts,
        agent_alive: orch::agent::is_alive(pid, start),
    }
}

/// TC-S13: a crash after each cancel step ends in the same state as no
/// crash at all.
#[test]
fn crash_between_every_cancel_step_tc_s13() {
    let expected = scenario(None);
    assert_eq!(expected.first.0, Stage::Cancelled);
    assert_eq!(expected.first.1, "ORCH-1::cancelled::1");
    assert_eq!(expected.second, (Stage::Done, true));
    assert_eq!(
        expected.archive,
        vec!["01-analysis.md", "02-architecture.md", "04-test-plan.yaml"]
    );
    assert!(!expected.worktree_exists && !expected.remote_feature && !expected.agent_alive);
    assert_eq!(expected.debts, 0);
    for step in [
        "stop_agent",
        "cancel_jobs",
        "preserve_docs",
        "remove_worktree",
        "delete_remote_branch",
        "finalize",
    ] {
        assert_eq!(scenario(Some(step)), expected, "crash after {step}");
    }
}

/// TC-33 across a real crash: `orch serve` is SIGKILLed while an agent
/// runs; the agent survives it; the next `orch serve` stops that agent
/// (verified by pid and start time), requeues its job as interrupted, and
/// the task runs to `done` with no process left behind.
#[test]
fn sigkill_then_restart_recovers_the_running_job_tc33() {
    let site = Site::new();
    site.run(&["task", "start", "ORCH-1", "--repo", "r", "--title", "first"]);
    let sleepy = demo_agent_with("ORCH_DEMO_SLEEP_MS=60000");
    let mut serve = site.serve(&[("ORCH_AGENT_CMD_ANALYST", &sleepy)]);
    wait_for("the analyst agent", 60, || {
        std::fs::metadata(site.log(1)).is_ok()
    });
    std::thread::sleep(Duration::from_millis(300));
    serve.kill().unwrap();
    serve.wait().unwrap();
    let (pid, start) = {
        let store = Store::open(site.root.join("data/orch.redb"), Options::default(), 0).unwrap();
        let job = store.read(|rx| rx.job(1)).unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Running);
        (job.pid.unwrap(), job.pid_start.unwrap())
    };
    assert!(orch::agent::is_alive(pid, start), "the agent outlived orch");
    let serve = site.serve(&[]);
    wait_for("ORCH-1 merged", 90, || {
        site.remote_main_files().contains("CHANGES-ORCH-1.md")
    });
    assert!(!orch::agent::is_alive(pid, start), "no orphan agent");
    std::thread::sleep(Duration::from_millis(300));
    sigterm(serve);
    let store = Store::open(site.root.join("data/orch.redb"), Options::default(), 0).unwrap();
    let (task, job, events) = store
        .read(|rx| Ok((rx.task(1)?.unwrap(), rx.job(1)?.unwrap(), rx.events_of(1)?)))
        .unwrap();
    assert_eq!(task.stage, Stage::Done);
    assert_eq!(
        (job.status, job.attempt),
        (JobStatus::Done, 2),
        "the same job, claimed again"
    );
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert!(
        kinds.contains(&"agent_signalled") && kinds.contains(&"job_interrupted"),
        "{kinds:?}"
    );
    assert!(store.check().unwrap().ok());
}
