//! End to end: real repos, real agent processes, the runtime's workers.

use orch::domain::{JobStatus, Role, Stage};

use crate::world::World;

/// A task travels every stage to `done`: the base branch is fast-forwarded
/// to the agent's work, the feature branch is gone locally and on the
/// remote, and so is the worktree (TC-34 end to end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_reaches_done_tc34() {
    let mut w = World::builder()
        .repo("r", "deploy = [\"sh\", \"-c\", \"echo deployed\"]")
        .build();
    w.serve();
    let id = w.start("ORCH-1", "r", &[]).await;
    let t = w
        .wait_task(id, 60, "done", |t| t.stage == Stage::Done)
        .await;
    let files = w.remote_main_files("r");
    for f in [
        "CHANGES-ORCH-1.md",
        "docs/tasks/ORCH-1/01-analysis.md",
        "docs/tasks/ORCH-1/06-test-report.json",
    ] {
        assert!(files.contains(f), "{f} not merged into main: {files}");
    }
    // Cleanup after done runs right after the last transaction.
    w.wait_task(id, 10, "cleanup", |_| {
        w.events(id).contains(&"branch_deleted".to_string())
    })
    .await;
    assert_eq!(w.remote_tip("r", "feature/ORCH-1"), None);
    assert!(!w.data_dir().join(&t.worktree).exists());
    let ev = w.events(id);
    for e in [
        "admitted",
        "pushed",
        "merged",
        "deployed",
        "deploy_skipped",
        "worktree_removed",
    ] {
        assert!(ev.contains(&e.to_string()), "missing {e}: {ev:?}");
    }
    w.shutdown().await;
    assert!(w.rt.store.check().unwrap().ok());
}

/// A failing tester is retried with the reason in its prompt, then the task
/// is blocked after max attempts; with the freeze layer on, the blocked task
/// keeps holding its repo (TC-22 end to end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_tester_retries_then_blocks_and_holds_repo() {
    let mut w = World::builder()
        .repo("r", "")
        .env("ORCH_DEMO_TESTS_FAIL", "1")
        .env("ORCH_AGENT_ENV_PASSTHROUGH", "ORCH_DEMO_TESTS_FAIL")
        .env("ORCH_MAX_ATTEMPTS", "2")
        .build();
    w.serve();
    let a = w.start("ORCH-1", "r", &[]).await;
    let b = w.start("ORCH-2", "r", &[]).await;
    let t = w.wait_task(a, 60, "blocked", |t| t.blocked.is_some()).await;
    assert_eq!(t.stage, Stage::Testing);
    assert!(
        t.blocked.unwrap().reason.contains("tests failed"),
        "reason names the failure"
    );
    let testers: Vec<_> = w
        .jobs(a)
        .into_iter()
        .filter(|j| j.role == Role::Tester)
        .collect();
    assert_eq!(testers.len(), 2);
    assert!(testers.iter().all(|j| j.status == JobStatus::Failed));
    assert!(
        testers[1]
            .note
            .as_deref()
            .unwrap_or("")
            .contains("tests failed"),
        "the retry carries the reason"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        w.task(b).admitted_at,
        None,
        "the blocked task holds the repo"
    );
    let snap = w.rt.store.serial_snapshot();
    assert_eq!(snap.per_repo["r"].active_task.as_ref().unwrap().task_id, a);
    w.shutdown().await;
}

/// Review `changes_requested` loops back to development at most
/// `max_review_rounds` times, then blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_loop_then_block() {
    let mut w = World::builder()
        .repo("r", "")
        .env("ORCH_DEMO_REVIEW", "changes_requested")
        .env("ORCH_AGENT_ENV_PASSTHROUGH", "ORCH_DEMO_REVIEW")
        .env("ORCH_MAX_REVIEW_ROUNDS", "2")
        .build();
    w.serve();
    let id = w.start("ORCH-1", "r", &[]).await;
    let t = w
        .wait_task(id, 60, "blocked", |t| t.blocked.is_some())
        .await;
    assert_eq!((t.stage, t.review_rounds), (Stage::Review, 2));
    let devs = w
        .jobs(id)
        .into_iter()
        .filter(|j| j.role == Role::Developer)
        .count();
    assert_eq!(devs, 3, "one development plus two rework rounds");
    w.shutdown().await;
}

/// Two tasks of one repo go strictly one after the other; a task of another
/// repo runs in parallel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repos_parallel_tasks_of_one_repo_serial() {
    let mut w = World::builder()
        .repo("a", "")
        .repo("b", "")
        .env("ORCH_DEMO_SLEEP_MS", "150")
        .env("ORCH_AGENT_ENV_PASSTHROUGH", "ORCH_DEMO_SLEEP_MS")
        .build();
    w.serve();
    let a1 = w.start("ORCH-1", "a", &[]).await;
    let a2 = w.start("ORCH-2", "a", &[]).await;
    let b1 = w.start("ORCH-3", "b", &[]).await;
    for id in [a1, a2, b1] {
        w.wait_task(id, 90, "done", |t| t.stage == Stage::Done)
            .await;
    }
    let at = |id: u64, kind: &str, detail: &str| {
        w.read(|rx| rx.events_of(id))
            .into_iter()
            .find(|e| e.kind.as_str() == kind && e.detail.contains(detail))
            .map(|e| e.at)
            .unwrap()
    };
    assert!(
        at(a2, "admitted", "") >= at(a1, "stage_advanced", "→done"),
        "ORCH-2 waited for ORCH-1"
    );
    assert!(
        at(b1, "admitted", "") < at(a1, "stage_advanced", "→done"),
        "ORCH-3 ran beside ORCH-1"
    );
    w.shutdown().await;
}

/// `orch demo` reaches every expected end state and exits 0.
#[test]
fn demo_exits_zero() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orch"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("stage_advanced analysis→architecture"));
    assert_eq!(stdout.matches("[ok]").count(), 5, "{stdout}");
    assert!(stdout.contains("ORCH-4 cancelled"), "{stdout}");
}
