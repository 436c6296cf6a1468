//! Leases, timeouts, restart recovery and shutdown with real processes.

use std::process::{Child, Command};
use std::time::Duration;

use orch::domain::{JobStatus, Role, Stage};
use orch::runtime::now;
use orch::store::Completion;

use crate::world::World;

fn sleeper() -> Child {
    Command::new("sleep").arg("60").spawn().unwrap()
}

fn start_time(pid: u32) -> u64 {
    orch::agent::proc::read_stat(pid)
        .unwrap()
        .unwrap()
        .start_time
}

/// A role timeout fails the job with a reason and the tree is stopped; the
/// job is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_timeout_fails_the_job() {
    let mut w = World::builder()
        .repo("r", "")
        .toml("[role.analyst]\ntimeout_secs = 1\n")
        .env("ORCH_DEMO_SLEEP_MS", "20000")
        .env("ORCH_AGENT_ENV_PASSTHROUGH", "ORCH_DEMO_SLEEP_MS")
        .env("ORCH_MAX_ATTEMPTS", "1")
        .build();
    w.serve();
    let id = w.start("ORCH-1", "r", &[]).await;
    let t = w
        .wait_task(id, 30, "blocked", |t| t.blocked.is_some())
        .await;
    let reason = t.blocked.unwrap().reason;
    assert!(reason.contains("timed out"), "{reason}");
    let job = &w.jobs(id)[0];
    assert_eq!(job.status, JobStatus::Failed);
    assert!(!orch::agent::is_alive(
        job.pid.unwrap(),
        job.pid_start.unwrap()
    ));
    w.shutdown().await;
}

/// A heartbeat that finds its job no longer running stops the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_job_stops_the_agent() {
    let mut w = World::builder()
        .repo("r", "")
        .env("ORCH_DEMO_SLEEP_MS", "30000")
        .env("ORCH_AGENT_ENV_PASSTHROUGH", "ORCH_DEMO_SLEEP_MS")
        .build();
    w.serve();
    let id = w.start("ORCH-1", "r", &[]).await;
    let job = loop {
        let jobs = w.jobs(id);
        if let Some(j) = jobs.into_iter().find(|j| j.pid.is_some()) {
            break j;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (pid, start) = (job.pid.unwrap(), job.pid_start.unwrap());
    assert!(orch::agent::is_alive(pid, start));
    // Another actor takes the job away (as a reaper or a cancel would).
    w.rt.writer
        .call(now(), move |tx| tx.cancel_jobs(id))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while orch::agent::is_alive(pid, start) {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent outlived its job"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.shutdown().await;
}

/// Shutdown stops running agents with the grace and requeues their jobs as
/// interrupted, not failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_requeues_interrupted_jobs() {
    let mut w = World::builder()
        .repo("r", "")
        .env("ORCH_DEMO_SLEEP_MS", "30000")
        .env("ORCH_AGENT_ENV_PASSTHROUGH", "ORCH_DEMO_SLEEP_MS")
        .build();
    w.serve();
    let id = w.start("ORCH-1", "r", &[]).await;
    w.wait_task(id, 10, "agent running", |_| {
        w.jobs(id).iter().any(|j| j.pid.is_some())
    })
    .await;
    let job = w.jobs(id)[0].clone();
    w.shutdown().await;
    let after = &w.jobs(id)[0];
    assert_eq!(after.status, JobStatus::Queued);
    assert!(!orch::agent::is_alive(
        job.pid.unwrap(),
        job.pid_start.unwrap()
    ));
    assert!(w.events(id).contains(&"job_interrupted".to_string()));
    assert_eq!(w.task(id).failures_in(Stage::Analysis), 0);
}

/// TC-33: at start-up a surviving agent of an earlier boot (pid and start
/// time match) is signalled before its job is requeued; a job whose pid was
/// reused by another process leaves that process alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_signals_survivors_not_reused_pids_tc33() {
    let w = World::simple();
    let a = w.start("ORCH-1", "r", &[]).await;
    let b = w.start("ORCH-2", "other", &[]).await;
    let mut survivor = sleeper();
    let mut stranger = sleeper();
    let (sp, ss) = (survivor.id(), start_time(survivor.id()));
    let (xp, xs) = (stranger.id(), start_time(stranger.id()));
    w.rt.writer
        .call(now(), move |tx| {
            let l1 = tx.claim("old-boot", 60_000, Some("old"))?.unwrap();
            tx.set_process(l1.job_id, l1.attempt, sp, ss)?;
            let l2 = tx.claim("old-boot", 60_000, Some("old"))?.unwrap();
            // The recorded start time differs: the pid now belongs to someone else.
            tx.set_process(l2.job_id, l2.attempt, xp, xs + 1)?;
            Ok(())
        })
        .await
        .unwrap();
    let rec = orch::runtime::recover(&w.rt).await.unwrap();
    assert_eq!(rec.requeued.len(), 2);
    assert_eq!(rec.signalled.len(), 1);
    assert!(
        survivor.wait().unwrap().code().is_none(),
        "the survivor was killed by a signal"
    );
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "a reused pid is left alone"
    );
    stranger.kill().unwrap();
    let _ = stranger.wait();
    for id in [a, b] {
        assert!(w.jobs(id).iter().all(|j| j.status == JobStatus::Queued));
    }
    assert!(w.events(a).contains(&"agent_signalled".to_string()));
}

/// TC-36: a critical-window job found running at start-up is never
/// signalled nor requeued: it fails and its task is blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_job_at_startup_fails_and_blocks_tc36() {
    let w = World::simple();
    let id = w.start("ORCH-1", "r", &[]).await;
    let mut deploy = sleeper();
    let (pid, st) = (deploy.id(), start_time(deploy.id()));
    w.rt.writer
        .call(now(), move |tx| {
            for stage in [
                Stage::Architecture,
                Stage::Development,
                Stage::Review,
                Stage::Testing,
                Stage::DeployStaging,
                Stage::Deploy,
            ] {
                tx.set_stage(id, stage)?;
            }
            let jobs = tx.cancel_jobs(id)?;
            assert_eq!(jobs.len(), 1);
            let j = tx.enqueue(id, Role::Deployer, None)?;
            let l = tx.claim("old-boot", 60_000, Some("old"))?.unwrap();
            assert_eq!(l.job_id, j.id);
            tx.set_process(l.job_id, l.attempt, pid, st)?;
            tx.enter_critical(l.job_id, l.attempt)?;
            Ok(())
        })
        .await
        .unwrap();
    let rec = orch::runtime::recover(&w.rt).await.unwrap();
    assert_eq!(rec.critical_failed.len(), 1);
    assert!(deploy.try_wait().unwrap().is_none(), "never signalled");
    deploy.kill().unwrap();
    let _ = deploy.wait();
    let t = w.task(id);
    assert!(
        t.blocked
            .unwrap()
            .reason
            .contains("critical window interrupted")
    );
    let job = w.jobs(id).into_iter().last().unwrap();
    assert_eq!(
        (job.status, job.reason.as_deref()),
        (JobStatus::Failed, Some("critical window interrupted"))
    );
    // The fence holds: the old boot's late completion is refused.
    let late =
        w.rt.writer
            .call(now(), move |tx| {
                tx.complete(job.id, job.attempt, Completion::Done)
            })
            .await;
    assert!(late.is_err());
}

/// TC-36: shutdown waits for a job inside its critical window, and no role
/// timeout applies there; the deploy completes and the task is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_the_critical_window_tc36() {
    let mut w = World::builder()
        .repo("r", "deploy = [\"sh\", \"-c\", \"sleep 2; echo deployed\"]")
        .toml("[role.deployer]\ntimeout_secs = 1\n")
        .build();
    w.serve();
    let id = w.start("ORCH-1", "r", &[]).await;
    w.wait_task(id, 60, "critical window", |_| {
        w.jobs(id).iter().any(|j| j.critical_since.is_some())
    })
    .await;
    w.shutdown().await;
    let t = w.task(id);
    assert_eq!(t.stage, Stage::Done, "{:?}", w.events(id));
    assert!(w.events(id).contains(&"deployed".to_string()));
    assert!(!w.env.is_empty());
}
