//! STOP end to end (SPEC §7): real agents, worktrees and bare remotes.

use std::process::Command;
use std::time::{Duration, Instant};

use orch::cancel::StopAnswer;
use orch::domain::{CancelResolution, JobStatus, Role, Stage};
use orch::runtime::now;
use orch::store::{Completion, Job, TaskKey};

use crate::world::{World, demo_agent_with};

/// Waits for the first job of the task that has a recorded agent process.
async fn running_agent(w: &World, task: u64, role: Role) -> Job {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(j) = w
            .jobs(task)
            .into_iter()
            .find(|j| j.role == role && j.status == JobStatus::Running && j.pid.is_some())
        {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "no running {role} for task {task}: {:?}",
            w.events(task)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until a job of the task is running inside its critical window.
async fn in_critical_window(w: &World, task: u64) {
    w.wait_task(task, 60, "critical window", |_| {
        w.jobs(task)
            .iter()
            .any(|j| j.critical_since.is_some() && j.status == JobStatus::Running)
    })
    .await;
}

fn alive(j: &Job) -> bool {
    orch::agent::is_alive(j.pid.unwrap(), j.pid_start.unwrap())
}

fn local_branch_exists(w: &World, branch: &str) -> bool {
    let mirror = w.data_dir().join("repos").join("r.git");
    let out = crate::support::git_output(
        &mirror,
        &[
            "rev-parse",
            "--verify",
            "-q",
            &format!("refs/heads/{branch}"),
        ],
    );
    out.status.success()
}

/// The main STOP scenario: during development, the agent dies (TC-S03),
/// its jobs are cancelled (TC-S06), the docs are archived (TC-S07), the
/// worktree and both feature branches go while main stays (TC-S08), the task
/// is cancelled with tombstoned keys and the repo's next task runs (TC-S09).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_during_development_tc_s03_s06_s07_s08_s09() {
    let mut w = World::builder()
        .repo("r", "")
        .env(
            "ORCH_AGENT_CMD_DEVELOPER",
            &demo_agent_with("ORCH_DEMO_SLEEP_MS=30000"),
        )
        .build();
    w.serve();
    let a = w.start("ORCH-1", "r", &[]).await;
    let b = w.start("ORCH-2", "r", &[]).await;
    let dev = running_agent(&w, a, Role::Developer).await;
    assert!(alive(&dev));
    let main_before = w.remote_tip("r", "main").unwrap();
    assert!(
        w.remote_tip("r", "feature/ORCH-1").is_some(),
        "earlier stages pushed the branch"
    );

    let started = Instant::now();
    let answer = w.rt.stop(a).await.unwrap();
    assert!(matches!(answer, StopAnswer::Accepted { .. }), "{answer:?}");
    let t = w
        .wait_task(a, 30, "cancelled", |t| t.stage == Stage::Cancelled)
        .await;
    assert!(!alive(&dev), "the agent is dead");
    assert!(started.elapsed() < Duration::from_secs(5));

    // TC-S06: every job of the task is cancelled or finished, none queued.
    assert!(
        w.jobs(a).iter().all(|j| j.status.is_final()),
        "{:?}",
        w.jobs(a)
    );
    assert_eq!(
        w.jobs(a)
            .iter()
            .filter(|j| j.status == JobStatus::Cancelled)
            .count(),
        1
    );
    // TC-S07: the docs of the earlier stages are in the archive.
    let archive = orch::runtime::archive_dir(&w.data_dir(), &t);
    assert!(archive.join("01-analysis.md").is_file(), "{archive:?}");
    assert!(archive.join("02-architecture.md").is_file());
    // TC-S08: worktree, local and remote feature branches gone; main intact.
    assert!(!w.data_dir().join(&t.worktree).exists());
    assert!(!local_branch_exists(&w, "feature/ORCH-1"));
    assert_eq!(w.remote_tip("r", "feature/ORCH-1"), None);
    assert_eq!(w.remote_tip("r", "main").unwrap(), main_before);
    // TC-S09: keys tombstoned, the gate released to the next task.
    assert_eq!(t.work_item_id, format!("ORCH-1::cancelled::{a}"));
    assert_eq!(
        t.cancel.as_ref().unwrap().resolution,
        Some(CancelResolution::Cancelled)
    );
    let ev = w.events(a);
    for e in [
        "stop_requested",
        "agent_signalled",
        "jobs_cancelled",
        "docs_archived",
        "worktree_removed",
        "branch_deleted",
        "cancelled",
        "tombstoned",
    ] {
        assert!(ev.contains(&e.to_string()), "missing {e}: {ev:?}");
    }
    w.wait_task(b, 30, "next task admitted", |t| t.admitted_at.is_some())
        .await;
    let dev_b = running_agent(&w, b, Role::Developer).await;
    w.rt.stop(b).await.unwrap();
    w.wait_task(b, 30, "cancelled", |t| t.stage == Stage::Cancelled)
        .await;
    assert!(!alive(&dev_b));
    w.shutdown().await;
    assert!(w.rt.store.check().unwrap().ok());
}

/// TC-S04: an agent that ignores SIGTERM is SIGKILLed after the grace, with
/// the grandchild that left its session; an unrelated process survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stubborn_agent_and_grandchild_die_tc_s04() {
    let mut w = World::builder()
        .repo("r", "")
        .env(
            "ORCH_AGENT_CMD_ANALYST",
            &demo_agent_with(
                "ORCH_DEMO_SLEEP_MS=30000 ORCH_DEMO_IGNORE_TERM=1 ORCH_DEMO_GRANDCHILD=1",
            ),
        )
        .build();
    w.serve();
    let mut bystander = Command::new("sleep").arg("60").spawn().unwrap();
    let a = w.start("ORCH-1", "r", &[]).await;
    let job = running_agent(&w, a, Role::Analyst).await;
    // The grandchild prints its pid to the job's log.
    let log = w.data_dir().join("logs").join(format!("{}.log", job.id));
    let deadline = Instant::now() + Duration::from_secs(10);
    let grandchild: u32 = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(pid) = text
            .lines()
            .find_map(|l| l.split("grandchild pid ").nth(1))
            .and_then(|p| p.trim().parse().ok())
        {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "no grandchild pid in {log:?}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let g_start = orch::agent::proc::read_stat(grandchild)
        .unwrap()
        .unwrap()
        .start_time;
    let t0 = Instant::now();
    w.rt.stop(a).await.unwrap();
    w.wait_task(a, 30, "cancelled", |t| t.stage == Stage::Cancelled)
        .await;
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "SIGKILL only after the 1 s grace"
    );
    assert!(!alive(&job));
    assert!(
        !orch::agent::is_alive(grandchild, g_start),
        "the grandchild died too"
    );
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "an unrelated process is never signalled"
    );
    bystander.kill().unwrap();
    let _ = bystander.wait();
    w.shutdown().await;
}

/// TC-S01: with the switch off, STOP is ignored (only `stop_ignored` is
/// recorded) and the agent keeps running. TC-S02: a second STOP and a STOP
/// of a terminal task are no-ops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_off_and_repeated_stops_tc_s01_s02() {
    let mut w = World::builder()
        .repo("r", "")
        .env("ORCH_STOP_STATUS_ENABLED", "false")
        .env(
            "ORCH_AGENT_CMD_ANALYST",
            &demo_agent_with("ORCH_DEMO_SLEEP_MS=30000"),
        )
        .build();
    w.serve();
    let a = w.start("ORCH-1", "r", &[]).await;
    let job = running_agent(&w, a, Role::Analyst).await;
    let before = w.task(a);
    assert!(matches!(
        w.rt.stop(a).await.unwrap(),
        StopAnswer::Disabled { .. }
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = w.task(a);
    let key = |t: &orch::store::Task| {
        (
            t.stage,
            t.cancel.clone(),
            t.work_item_id.clone(),
            t.blocked.clone(),
            t.cancelled_at,
        )
    };
    assert_eq!(key(&after), key(&before), "the task is unchanged");
    assert_eq!(w.jobs(a)[0].status, JobStatus::Running);
    assert!(alive(&job));
    assert!(w.events(a).contains(&"stop_ignored".to_string()));
    w.shutdown().await;

    let mut w = World::builder()
        .repo("r", "")
        .env(
            "ORCH_AGENT_CMD_ANALYST",
            &demo_agent_with("ORCH_DEMO_SLEEP_MS=30000"),
        )
        .build();
    w.serve();
    let a = w.start("ORCH-1", "r", &[]).await;
    running_agent(&w, a, Role::Analyst).await;
    assert!(matches!(
        w.rt.stop(a).await.unwrap(),
        StopAnswer::Accepted { .. }
    ));
    let second = w.rt.stop(a).await.unwrap();
    assert!(
        matches!(
            second,
            StopAnswer::AlreadyRequested { .. } | StopAnswer::Noop { .. }
        ),
        "{second:?}"
    );
    w.wait_task(a, 30, "cancelled", |t| t.stage == Stage::Cancelled)
        .await;
    assert!(matches!(
        w.rt.stop(a).await.unwrap(),
        StopAnswer::Noop { .. }
    ));
    let stops = w
        .events(a)
        .iter()
        .filter(|e| *e == "stop_requested")
        .count();
    assert_eq!(stops, 1);
    w.shutdown().await;
}

/// TC-S05: a late heartbeat or completion from the cancelled attempt is
/// rejected by the fence and nothing is requeued; TC-S06: the cancelled
/// jobs are never claimed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_writes_are_fenced_tc_s05() {
    let mut w = World::builder()
        .repo("r", "")
        .env(
            "ORCH_AGENT_CMD_ANALYST",
            &demo_agent_with("ORCH_DEMO_SLEEP_MS=30000"),
        )
        .build();
    w.serve();
    let a = w.start("ORCH-1", "r", &[]).await;
    let job = running_agent(&w, a, Role::Analyst).await;
    w.rt.stop(a).await.unwrap();
    w.wait_task(a, 30, "cancelled", |t| t.stage == Stage::Cancelled)
        .await;
    let (id, attempt) = (job.id, job.attempt);
    let hb =
        w.rt.writer
            .call(now(), move |tx| tx.heartbeat(id, attempt, 60_000))
            .await;
    let done =
        w.rt.writer
            .call(now(), move |tx| tx.complete(id, attempt, Completion::Done))
            .await;
    assert!(hb.is_err() && done.is_err());
    let after = w.jobs(a);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].status, JobStatus::Cancelled);
    assert_eq!(
        w.rt.writer
            .call(now(), |tx| tx.claim("w", 1000, None))
            .await
            .unwrap(),
        None
    );
    w.shutdown().await;
}

/// TC-S10: a STOP during the critical window is deferred; the deploy
/// succeeds; the task ends `done` and the STOP is `superseded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_in_critical_window_superseded_tc_s10() {
    let mut w = World::builder()
        .repo("r", "deploy = [\"sh\", \"-c\", \"sleep 1; echo deployed\"]")
        .build();
    w.serve();
    let a = w.start("ORCH-1", "r", &[]).await;
    in_critical_window(&w, a).await;
    let answer = w.rt.stop(a).await.unwrap();
    assert!(
        matches!(
            answer,
            StopAnswer::Accepted {
                step: orch::domain::CancelStep::Deferred,
                ..
            }
        ),
        "{answer:?}"
    );
    let t = w.wait_task(a, 30, "done", |t| t.stage.is_terminal()).await;
    assert_eq!(t.stage, Stage::Done);
    assert_eq!(
        t.cancel.unwrap().resolution,
        Some(CancelResolution::Superseded)
    );
    let ev = w.events(a);
    assert!(
        ev.contains(&"stop_deferred".to_string()) && ev.contains(&"superseded".to_string()),
        "{ev:?}"
    );
    assert!(
        w.remote_main_files("r").contains("CHANGES-ORCH-1.md"),
        "the change is live"
    );
    w.shutdown().await;
}

/// TC-S11: a STOP during the critical window whose deploy fails: the cancel
/// completes afterwards and what was merged stays merged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_in_critical_window_deploy_fails_tc_s11() {
    let mut w = World::builder()
        .repo("r", "deploy = [\"sh\", \"-c\", \"sleep 1; exit 3\"]")
        .build();
    w.serve();
    let a = w.start("ORCH-1", "r", &[]).await;
    in_critical_window(&w, a).await;
    w.rt.stop(a).await.unwrap();
    let t = w
        .wait_task(a, 30, "cancelled", |t| t.stage.is_terminal())
        .await;
    assert_eq!(t.stage, Stage::Cancelled);
    assert!(
        w.remote_main_files("r").contains("CHANGES-ORCH-1.md"),
        "merged stays merged, never force-pushed back"
    );
    assert_eq!(w.remote_tip("r", "feature/ORCH-1"), None);
    let detail = w
        .read(|rx| rx.events_of(a))
        .into_iter()
        .map(|e| e.detail)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(detail.contains("merged and left as is"), "{detail}");
    w.shutdown().await;
}

/// TC-S12: after a STOP, a new start of the same issue creates a new task
/// from scratch with fresh names; the old task and its archived docs stay
/// readable, and its tracker id is tombstoned too (D7).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_stop_starts_from_scratch_tc_s12() {
    let mut w = World::builder()
        .repo("r", "")
        .env(
            "ORCH_AGENT_CMD_ARCHITECT",
            &demo_agent_with("ORCH_DEMO_SLEEP_MS=30000"),
        )
        .build();
    w.serve();
    let uuid = "3b2f9a4c-8d1e-4f6a-9c2b-7e5d1a0b3c4d";
    let new = |wi: &str| orch::store::NewTask {
        work_item_id: orch::domain::WorkItemId::parse(wi).unwrap(),
        plane_issue_id: Some(orch::domain::PlaneIssueId::parse(uuid).unwrap()),
        repo: orch::domain::RepoName::parse("r").unwrap(),
        title: "t".into(),
        description: String::new(),
        depends_on: vec![],
    };
    let n1 = new("ORCH-90");
    let (_, old) =
        w.rt.writer
            .call(now(), move |tx| {
                orch::pipeline::apply::start(tx, n1.clone())
            })
            .await
            .unwrap();
    w.rt.wake.notify_waiters();
    running_agent(&w, old.id, Role::Architect).await;
    w.rt.stop(old.id).await.unwrap();
    let old = w
        .wait_task(old.id, 30, "cancelled", |t| t.stage == Stage::Cancelled)
        .await;
    assert_eq!(
        old.plane_issue_id,
        Some(format!("{uuid}::cancelled::{}", old.id))
    );
    let n2 = new("ORCH-90");
    let (result, fresh) =
        w.rt.writer
            .call(now(), move |tx| {
                orch::pipeline::apply::start(tx, n2.clone())
            })
            .await
            .unwrap();
    assert_eq!(result, orch::pipeline::apply::StartResult::Created);
    assert_ne!(fresh.id, old.id);
    assert_eq!(
        (fresh.branch.as_str(), fresh.stage),
        ("feature/ORCH-90-2", Stage::Analysis)
    );
    let key = TaskKey::parse(uuid).unwrap();
    assert_eq!(w.read(|rx| rx.resolve(&key)), Some(fresh.id));
    let detail = w
        .read(|rx| orch::views::TaskDetail::read(rx, fresh.id))
        .unwrap();
    assert_eq!(detail.predecessors.len(), 1);
    assert!(
        orch::runtime::archive_dir(&w.data_dir(), &old)
            .join("01-analysis.md")
            .is_file(),
        "old docs stay readable"
    );
    assert!(!w.events(old.id).is_empty());
    w.shutdown().await;
}
