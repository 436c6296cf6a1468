//! The agent runner against real child processes and real signals: spawn,
//! environment, log, timeout, tree stop (TC-S03, TC-S04), pid reuse, and the
//! built-in `orch agent-demo` in a real git repository. Bounds on "dead" are
//! generous on purpose; precise stop latencies are measured by
//! `benches/stop.rs`.

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use orch::agent::proc::{read_stat, snapshot};
use orch::agent::{
    self, AgentCommand, AgentEnv, AgentHandle, AgentOutcome, Passthrough, SpawnSpec, StopOutcome,
    TaskVars,
};
use orch::domain::{Role, Stage};
use tempfile::TempDir;
use tokio::time::{Instant, sleep};

const ORCH: &str = env!("CARGO_BIN_EXE_orch");
const SIGTERM: i32 = 15;
const SIGKILL: i32 = 9;
/// How long a process may take to be seen dead before a test fails. Far
/// above the real figures (milliseconds) so a loaded machine cannot flake.
const GENEROUS: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- helpers

fn stage_of(role: Role) -> Stage {
    match role {
        Role::Analyst => Stage::Analysis,
        Role::Architect => Stage::Architecture,
        Role::Developer => Stage::Development,
        Role::Reviewer => Stage::Review,
        Role::Tester => Stage::Testing,
        Role::Deployer => Stage::DeployStaging,
    }
}

fn task(role: Role) -> TaskVars<'static> {
    TaskVars {
        task_id: 42,
        work_item_id: "ORCH-42",
        role,
        stage: stage_of(role),
        branch: "orch/ORCH-42",
        docs_dir: "docs/tasks/ORCH-42",
        attempt: 1,
    }
}

/// An agent environment for `role` with PATH from the test process, HOME set
/// to `home`, and explicit extra variables (the `ORCH_DEMO_*` switches).
fn agent_env(role: Role, home: &Path, extra: &[(&str, &str)]) -> AgentEnv {
    let home = home.to_string_lossy().into_owned();
    let source = |name: &str| match name {
        "HOME" => Some(home.clone()),
        _ => std::env::var(name).ok(),
    };
    let mut env = AgentEnv::build(source, &task(role), &Passthrough::default());
    for (name, value) in extra {
        env = env.with_var(name, value).unwrap();
    }
    env
}

fn sh(script: &str) -> AgentCommand {
    AgentCommand {
        program: "sh".into(),
        args: vec!["-c".into(), script.into()],
    }
}

/// `builtin`, resolved to the orch binary under test.
fn builtin() -> AgentCommand {
    agent::resolve_command(Role::Analyst, Some("builtin"), None, None, Path::new(ORCH)).unwrap()
}

/// One agent run in its own temporary directory.
struct Run {
    dir: TempDir,
    handle: AgentHandle,
}

impl Run {
    async fn start(command: AgentCommand, extra: &[(&str, &str)]) -> Run {
        Run::start_with(command, extra, |s| s).await
    }

    async fn start_with(
        command: AgentCommand,
        extra: &[(&str, &str)],
        tweak: impl FnOnce(SpawnSpec) -> SpawnSpec,
    ) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let env = agent_env(Role::Analyst, dir.path(), extra);
        let log = dir.path().join("logs/job-1.log");
        let spec = tweak(SpawnSpec::new(
            command,
            dir.path(),
            env,
            "the prompt\n",
            log,
        ));
        let handle = agent::spawn(spec).await.unwrap();
        Run { dir, handle }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.handle.log_path()).unwrap_or_default()
    }

    /// Waits until the log contains `needle`, then returns the log.
    async fn log_with(&self, needle: &str) -> String {
        let end = Instant::now() + GENEROUS;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < end,
                "no {needle:?} in the agent log:\n{log}"
            );
            sleep(Duration::from_millis(10)).await;
        }
    }
}

/// True once `pid`/`start` is no longer running, polling up to [`GENEROUS`].
async fn dead(pid: u32, start: u64) -> bool {
    let end = Instant::now() + GENEROUS;
    while agent::is_alive(pid, start) {
        if Instant::now() >= end {
            return false;
        }
        sleep(Duration::from_millis(10)).await;
    }
    true
}

fn start_time(pid: u32) -> u64 {
    read_stat(pid).unwrap().unwrap().start_time
}

/// No running process is left in the session or group of the agent `pid`.
fn assert_tree_gone(pid: u32, start: u64) {
    let left: Vec<_> = snapshot()
        .unwrap()
        .into_iter()
        .filter(|p| (p.session == pid || p.pgrp == pid) && p.start_time >= start)
        .filter(|p| !p.is_finished())
        .collect();
    assert!(
        left.is_empty(),
        "processes of agent {pid} still running: {left:?}"
    );
}

/// The number after `prefix` in `log`.
fn pid_after(log: &str, prefix: &str) -> u32 {
    let at = log
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in {log}"))
        + prefix.len();
    log[at..]
        .split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap()
}

/// A process unrelated to any agent, in its own process group, that notes
/// any SIGTERM it receives in `term.txt` of its directory.
struct Bystander {
    child: std::process::Child,
    dir: TempDir,
    start: u64,
}

impl Bystander {
    fn start() -> Bystander {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("sh")
            .args([
                "-c",
                "trap 'echo got-term > term.txt; exit 0' TERM; sleep 60 & wait",
            ])
            .current_dir(dir.path())
            .process_group(0)
            .spawn()
            .unwrap();
        let start = start_time(child.id());
        Bystander { child, dir, start }
    }

    fn assert_untouched(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the bystander was ended"
        );
        assert!(agent::is_alive(self.child.id(), self.start));
        assert!(
            !self.dir.path().join("term.txt").exists(),
            "the bystander got SIGTERM"
        );
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        // Our own child's group: ends the shell and its sleep.
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------- stop (§7.1)

/// TC-S03: a cooperative agent (the scripted agent, sleeping) gets SIGTERM
/// on its process group and exits within the grace; nothing is SIGKILLed.
#[tokio::test]
async fn tc_s03_cooperative_agent_exits_on_sigterm() {
    let mut run = Run::start(builtin(), &[("ORCH_DEMO_SLEEP_MS", "60000")]).await;
    run.log_with("sleeping").await;
    let (pid, start) = (run.handle.pid(), run.handle.start_time());
    let (outcome, report) = run.handle.stop(GENEROUS).await.unwrap();
    assert_eq!(outcome, AgentOutcome::Signalled(SIGTERM));
    assert_eq!(report.outcome, StopOutcome::Terminated);
    assert_eq!(report.terminated, vec![pid]);
    assert!(report.killed.is_empty());
    assert!(!agent::is_alive(pid, start));
}

/// TC-S03: SIGTERM reaches every member of the group, not only the leader.
#[tokio::test]
async fn tc_s03_sigterm_reaches_the_whole_group() {
    let mut run = Run::start(sh("sleep 60 & echo child $!; wait"), &[]).await;
    let child = pid_after(&run.log_with("child ").await, "child ");
    let child_start = start_time(child);
    let (pid, start) = (run.handle.pid(), run.handle.start_time());
    let (outcome, report) = run.handle.stop(GENEROUS).await.unwrap();
    assert_eq!(outcome, AgentOutcome::Signalled(SIGTERM));
    assert_eq!(report.outcome, StopOutcome::Terminated);
    assert!(dead(child, child_start).await);
    assert_tree_gone(pid, start);
}

/// TC-S04: an agent that ignores SIGTERM is SIGKILLed after the grace; its
/// grandchild, which left the agent's session with setsid and ignores
/// SIGTERM too, dies as well; an unrelated process is never signalled.
#[tokio::test]
async fn tc_s04_stubborn_agent_and_its_setsid_grandchild_are_killed() {
    let mut bystander = Bystander::start();
    let switches = [
        ("ORCH_DEMO_IGNORE_TERM", "1"),
        ("ORCH_DEMO_GRANDCHILD", "1"),
        ("ORCH_DEMO_SLEEP_MS", "60000"),
    ];
    let mut run = Run::start(builtin(), &switches).await;
    run.log_with("sleeping").await;
    let log = run.log_with(" ready").await;
    let grandchild = pid_after(&log, "grandchild: pid ");
    let gc_start = start_time(grandchild);
    let gc = read_stat(grandchild).unwrap().unwrap();
    assert_eq!(
        gc.session, grandchild,
        "the grandchild left the agent's session"
    );

    let (pid, start) = (run.handle.pid(), run.handle.start_time());
    let (outcome, report) = run.handle.stop(Duration::from_millis(300)).await.unwrap();
    assert_eq!(outcome, AgentOutcome::Signalled(SIGKILL));
    assert_eq!(report.outcome, StopOutcome::Killed);
    assert!(
        report.killed.contains(&pid) && report.killed.contains(&grandchild),
        "{report:?}"
    );
    assert!(report.survivors.is_empty());
    assert!(!agent::is_alive(pid, start));
    assert!(dead(grandchild, gc_start).await, "the grandchild survived");
    assert!(!report.terminated.contains(&bystander.child.id()));
    bystander.assert_untouched();
}

/// A pid whose start time does not match (a reused pid) is never
/// signalled, and `is_alive` tells the two apart.
#[tokio::test]
async fn reused_pid_is_left_alone() {
    let mut bystander = Bystander::start();
    let (pid, start) = (bystander.child.id(), bystander.start);
    assert!(agent::is_alive(pid, start));
    assert!(!agent::is_alive(pid, start + 1));
    let report = agent::stop_tree(pid, start + 1, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(report.outcome, StopOutcome::PidReused);
    assert!(report.terminated.is_empty() && report.killed.is_empty());
    bystander.assert_untouched();
}

/// Descendants re-parented to init after the agent exited are still found
/// through the agent's session, and stopping an ended agent is harmless.
#[tokio::test]
async fn orphans_left_in_the_session_are_stopped_after_the_agent_exits() {
    let mut run = Run::start(sh("sleep 60 >/dev/null 2>&1 & echo orphan $!"), &[]).await;
    assert_eq!(run.handle.wait().await.unwrap(), AgentOutcome::Exited(0));
    let orphan = pid_after(&run.log(), "orphan ");
    let orphan_start = start_time(orphan);
    assert!(agent::is_alive(orphan, orphan_start));
    let (pid, start) = (run.handle.pid(), run.handle.start_time());
    let (outcome, report) = run.handle.stop(GENEROUS).await.unwrap();
    assert_eq!(outcome, AgentOutcome::Exited(0));
    assert_eq!(report.outcome, StopOutcome::Terminated);
    assert_eq!(report.terminated, vec![orphan]);
    assert!(dead(orphan, orphan_start).await);
    assert_tree_gone(pid, start);

    let again = agent::stop_tree(pid, start, GENEROUS).await.unwrap();
    assert_eq!(again.outcome, StopOutcome::NotRunning);
}

// ------------------------------------------------------------ wait, timeout

/// The role's timeout stops the whole tree and reports `TimedOut`.
#[tokio::test]
async fn timeout_stops_the_tree() {
    let script = "trap '' TERM; sleep 60 & wait";
    let mut run = Run::start_with(sh(script), &[], |s| {
        s.with_timeout(Some(Duration::from_millis(200)))
            .with_stop_grace(Duration::from_millis(200))
    })
    .await;
    let (pid, start) = (run.handle.pid(), run.handle.start_time());
    assert_eq!(run.handle.wait().await.unwrap(), AgentOutcome::TimedOut);
    assert_eq!(run.handle.wait().await.unwrap(), AgentOutcome::TimedOut);
    assert_tree_gone(pid, start);
}

#[tokio::test]
async fn exit_codes_and_signals_are_reported() {
    let check = async |script: &str, expected: AgentOutcome| {
        let mut run = Run::start(sh(script), &[]).await;
        assert_eq!(run.handle.wait().await.unwrap(), expected, "{script}");
    };
    check("exit 0", AgentOutcome::Exited(0)).await;
    check("exit 3", AgentOutcome::Exited(3)).await;
    check("kill -TERM $$", AgentOutcome::Signalled(SIGTERM)).await;
}

/// The agent is the leader of its own session and process group, runs in
/// the given directory, and does not share orch's group.
#[tokio::test]
async fn agent_is_a_session_leader_in_its_worktree() {
    let mut run = Run::start(sh("pwd"), &[]).await;
    let me = read_stat(std::process::id()).unwrap().unwrap();
    let stat = read_stat(run.handle.pid()).unwrap().unwrap();
    assert_eq!(
        (stat.session, stat.pgrp),
        (run.handle.pid(), run.handle.pid())
    );
    assert_ne!(stat.pgrp, me.pgrp);
    assert_eq!(run.handle.wait().await.unwrap(), AgentOutcome::Exited(0));
    let cwd = run.dir.path().canonicalize().unwrap();
    assert_eq!(run.log().trim(), cwd.to_string_lossy());
}

#[tokio::test]
async fn spawn_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let env = agent_env(Role::Analyst, dir.path(), &[]);
    let missing = AgentCommand {
        program: dir.path().join("no-such-agent"),
        args: vec![],
    };
    let spec = SpawnSpec::new(missing, dir.path(), env, "", dir.path().join("log"));
    assert!(matches!(
        agent::spawn(spec).await,
        Err(agent::AgentError::Spawn { .. })
    ));
}

// -------------------------------------------------------------------- log

/// stdout and stderr both reach the log, with the prompt read from stdin,
/// and the tail of a long output is not lost.
#[tokio::test]
async fn log_receives_stdout_stderr_and_the_tail() {
    let script = "cat; echo to-stderr >&2; echo to-stdout; i=0; while [ $i -lt 3000 ]; do \
                  echo line$i; i=$((i+1)); done";
    let mut run = Run::start(sh(script), &[]).await;
    assert_eq!(run.handle.wait().await.unwrap(), AgentOutcome::Exited(0));
    let log = run.log();
    assert!(
        log.starts_with("the prompt\n"),
        "{}",
        &log[..40.min(log.len())]
    );
    assert!(
        log.contains("the prompt\nto-stderr\nto-stdout\nline0\n"),
        "order kept"
    );
    assert!(log.ends_with("line2999\n"));
    assert_eq!(log.lines().filter(|l| l.starts_with("line")).count(), 3000);
}

/// The log stops growing at its cap while the pipe keeps being drained, so
/// a chatty agent still runs to its end.
#[tokio::test]
async fn log_respects_its_cap() {
    let cap = 100_000;
    let mut run = Run::start_with(sh("head -c 3000000 /dev/zero"), &[], |s| {
        s.with_log_cap(cap)
    })
    .await;
    assert_eq!(run.handle.wait().await.unwrap(), AgentOutcome::Exited(0));
    let len = std::fs::metadata(run.handle.log_path()).unwrap().len();
    assert!(
        len <= cap && len > cap - 200,
        "log of {len} bytes for a cap of {cap}"
    );
    assert!(run.log().ends_with("further output is discarded]\n"));
}

// ---------------------------------------------------------------- TC-38

/// TC-38: the agent's environment holds exactly the allowlist: none of
/// orch's tokens or secrets, nothing of orch's own environment, the task
/// variables and the passthrough names.
#[tokio::test]
async fn tc38_agent_env_holds_only_the_allowlist() {
    let secrets = [
        ("ORCH_API_TOKEN", "api-token"),
        ("ORCH_PLANE_API_TOKEN", "plane-token"),
        ("ORCH_PLANE_WEBHOOK_SECRET", "plane-secret"),
        ("ORCH_GITEA_TOKEN", "gitea-token"),
        ("ORCH_GITEA_WEBHOOK_SECRET", "gitea-secret"),
    ];
    let others = [
        ("PATH", "/usr/bin:/bin"),
        ("HOME", "/nonexistent"),
        ("LANG", "C.UTF-8"),
        ("MODEL_API_KEY", "model-key"),
        ("ORCH_DB_PATH", "/var/lib/orch/orch.redb"),
        ("UNRELATED", "x"),
    ];
    let source = |name: &str| {
        secrets
            .iter()
            .chain(&others)
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    };
    for (secret, _) in secrets {
        assert!(
            Passthrough::parse(&format!("MODEL_API_KEY,{secret}")).is_err(),
            "{secret}"
        );
    }
    let passthrough = Passthrough::parse("MODEL_API_KEY").unwrap();
    let env = AgentEnv::build(source, &task(Role::Developer), &passthrough);

    let dir = tempfile::tempdir().unwrap();
    let cmd = AgentCommand {
        program: "env".into(),
        args: vec![],
    };
    let spec = SpawnSpec::new(cmd, dir.path(), env, "", dir.path().join("env.log"));
    let mut handle = agent::spawn(spec).await.unwrap();
    assert_eq!(handle.wait().await.unwrap(), AgentOutcome::Exited(0));
    let printed = std::fs::read_to_string(handle.log_path()).unwrap();

    let names: BTreeSet<&str> = printed
        .lines()
        .filter_map(|l| l.split('=').next())
        .collect();
    let expected: BTreeSet<&str> = [
        "PATH",
        "HOME",
        "LANG",
        "MODEL_API_KEY",
        "ORCH_TASK_ID",
        "ORCH_WORK_ITEM_ID",
        "ORCH_ROLE",
        "ORCH_STAGE",
        "ORCH_BRANCH",
        "ORCH_DOCS_DIR",
        "ORCH_ATTEMPT",
    ]
    .into();
    assert_eq!(names, expected, "{printed}");
    for (_, value) in secrets {
        assert!(!printed.contains(value), "{value} leaked:\n{printed}");
    }
    for line in [
        "ORCH_ROLE=developer",
        "ORCH_STAGE=development",
        "ORCH_WORK_ITEM_ID=ORCH-42",
    ] {
        assert!(
            printed.lines().any(|l| l == line),
            "{line} missing:\n{printed}"
        );
    }
}

// ------------------------------------------------------------ agent-demo

/// A git repository with one commit, for the scripted agent to work in.
struct Repo {
    dir: TempDir,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        std::fs::write(repo.dir.path().join("README.md"), "demo\n").unwrap();
        repo.git(&["add", "README.md"]);
        repo.git(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t.invalid",
            "commit",
            "-q",
            "-m",
            "init",
        ]);
        repo
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "core.hooksPath=/dev/null"])
            .args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn commits(&self) -> usize {
        self.git(&["rev-list", "--count", "HEAD"])
            .trim()
            .parse()
            .unwrap()
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(path)).unwrap_or_default()
    }

    /// Runs `orch agent-demo` as `role` through the runner, with `switches`.
    async fn demo(&self, role: Role, switches: &[(&str, &str)]) -> AgentOutcome {
        let home = tempfile::tempdir().unwrap();
        let env = agent_env(role, home.path(), switches);
        let log = home.path().join("agent.log");
        let spec = SpawnSpec::new(
            builtin(),
            self.dir.path(),
            env,
            format!("work as {role}"),
            log,
        );
        let mut handle = agent::spawn(spec).await.unwrap();
        let outcome = handle.wait().await.unwrap();
        if !outcome.is_success() {
            eprintln!(
                "{}",
                std::fs::read_to_string(handle.log_path()).unwrap_or_default()
            );
        }
        outcome
    }

    /// The role succeeds, writes each of `files` (relative to the repo) with
    /// new content, and commits them in one commit by the demo's identity.
    async fn check_role(&self, role: Role, files: &[&str]) {
        let before: Vec<String> = files.iter().map(|f| self.read(f)).collect();
        let commits = self.commits();
        assert_eq!(
            self.demo(role, &[]).await,
            AgentOutcome::Exited(0),
            "{role}"
        );
        for (file, old) in files.iter().zip(&before) {
            let new = self.read(file);
            assert!(
                !new.is_empty() && &new != old,
                "{role} did not write {file}"
            );
        }
        let expected_commits = commits + usize::from(!files.is_empty());
        assert_eq!(self.commits(), expected_commits, "{role}");
        assert_eq!(
            self.git(&["status", "--porcelain"]),
            "",
            "{role} left changes"
        );
        if !files.is_empty() {
            let author = self.git(&["log", "-1", "--format=%an <%ae>|%cn"]);
            assert_eq!(
                author.trim(),
                "orch agent-demo <agent@orch.invalid>|orch agent-demo"
            );
            let changed = self.git(&["show", "--name-only", "--format=", "HEAD"]);
            let changed: BTreeSet<&str> = changed.lines().collect();
            assert_eq!(changed, files.iter().copied().collect(), "{role}");
        }
    }

    fn json(&self, path: &str) -> serde_json::Value {
        serde_json::from_str(&self.read(path)).unwrap()
    }
}

const DOCS: &str = "docs/tasks/ORCH-42";

/// Every role writes its artefacts and commits them; a repeated run changes
/// them again (so "this job wrote it" checks hold).
#[tokio::test]
async fn agent_demo_writes_and_commits_each_role() {
    let repo = Repo::new();
    let analysis = format!("{DOCS}/01-analysis.md");
    let (arch, plan) = (
        format!("{DOCS}/02-architecture.md"),
        format!("{DOCS}/04-test-plan.yaml"),
    );
    let (review, report) = (
        format!("{DOCS}/05-review.json"),
        format!("{DOCS}/06-test-report.json"),
    );
    repo.check_role(Role::Analyst, &[&analysis]).await;
    repo.check_role(Role::Analyst, &[&analysis]).await;
    repo.check_role(Role::Architect, &[&arch, &plan]).await;
    repo.check_role(Role::Developer, &["CHANGES-ORCH-42.md"])
        .await;
    repo.check_role(Role::Developer, &["CHANGES-ORCH-42.md"])
        .await;
    repo.check_role(Role::Reviewer, &[&review]).await;
    repo.check_role(Role::Tester, &[&report]).await;
    repo.check_role(Role::Deployer, &[]).await;

    assert!(repo.read(&plan).contains("cases:"));
    let review = repo.json(&review);
    assert_eq!(review["verdict"], "approved");
    assert_eq!(review["comments"], serde_json::json!([]));
    let report = repo.json(&report);
    assert_eq!(
        (&report["passed"], &report["failed"]),
        (&true.into(), &0.into())
    );
    assert!(report["total"].as_u64().unwrap() > 0);
}

/// The test switches: fail (all roles or one), review verdict, failing tests.
#[tokio::test]
async fn agent_demo_switches() {
    let repo = Repo::new();
    let commits = repo.commits();
    let failed = AgentOutcome::Exited(1);
    assert_eq!(
        repo.demo(Role::Analyst, &[("ORCH_DEMO_FAIL", "1")]).await,
        failed
    );
    assert_eq!(
        repo.demo(Role::Reviewer, &[("ORCH_DEMO_FAIL_ROLE", "reviewer")])
            .await,
        failed
    );
    assert_eq!(repo.commits(), commits, "a failing run commits nothing");
    assert!(
        !repo.dir.path().join("docs").exists(),
        "a failing run writes nothing"
    );

    let ok = AgentOutcome::Exited(0);
    assert_eq!(
        repo.demo(Role::Analyst, &[("ORCH_DEMO_FAIL_ROLE", "reviewer")])
            .await,
        ok
    );
    let rework = [("ORCH_DEMO_REVIEW", "changes_requested")];
    assert_eq!(repo.demo(Role::Reviewer, &rework).await, ok);
    let review = repo.json(&format!("{DOCS}/05-review.json"));
    assert_eq!(review["verdict"], "changes_requested");
    assert!(!review["comments"].as_array().unwrap().is_empty());
    assert_eq!(
        repo.demo(Role::Tester, &[("ORCH_DEMO_TESTS_FAIL", "1")])
            .await,
        ok
    );
    let report = repo.json(&format!("{DOCS}/06-test-report.json"));
    assert_eq!(
        (&report["passed"], &report["failed"]),
        (&false.into(), &1.into())
    );
    assert_eq!(repo.commits(), commits + 3);
}

/// Without its task variables the scripted agent refuses with a usage error.
#[test]
fn agent_demo_without_a_role_is_a_usage_error() {
    let out = Command::new(ORCH)
        .arg("agent-demo")
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ORCH_ROLE"));
}
