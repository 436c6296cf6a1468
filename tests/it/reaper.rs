//! Leases, fencing and the reaper.

use orch::domain::{JobStatus, Role, Stage};
use orch::store::{Completion, StoreError};

use crate::support::{Fx, LEASE_MS};

fn status(fx: &Fx, job: u64) -> JobStatus {
    fx.store.read(|rx| rx.job(job)).unwrap().unwrap().status
}

/// TC-31: the reaper requeues an expired lease (not a failure) and never a
/// cancelled job, a cancel-requested task's job, or a terminal task's job.
#[test]
fn reaper_guards_tc31() {
    let mut fx = Fx::with(orch::gates::GateConfig {
        serial_enabled: false,
        ..Default::default()
    });
    let plain = fx.start("a");
    let cancelling = fx.start("b");
    let terminal = fx.start("c");
    let cancelled = fx.start("d");
    let leases: Vec<_> = (0..4).map(|_| fx.claim().unwrap()).collect();
    fx.write(|tx| tx.request_cancel(cancelling.id)).unwrap();
    fx.write(|tx| tx.set_stage(terminal.id, Stage::Done))
        .unwrap();
    fx.write(|tx| tx.cancel_jobs(cancelled.id)).unwrap();

    fx.now += LEASE_MS + 1;
    let out = fx.write(|tx| tx.reap(3)).unwrap();
    let by_task = |id: u64| out.iter().find(|o| o.task_id == id).map(|o| o.status);
    assert_eq!(by_task(plain.id), Some(JobStatus::Queued));
    assert_eq!(by_task(cancelling.id), Some(JobStatus::Cancelled));
    assert_eq!(by_task(terminal.id), Some(JobStatus::Cancelled));
    assert_eq!(
        by_task(cancelled.id),
        None,
        "a cancelled job has no lease to reap"
    );
    assert_eq!(status(&fx, leases[3].job_id), JobStatus::Cancelled);
    assert_eq!(
        fx.task(plain.id).failures_in(Stage::Analysis),
        0,
        "a lost lease is not a failure"
    );
    assert!(fx.events(plain.id).contains(&"lease_expired".to_string()));
    // The requeued job is claimable again, on a new attempt.
    let again = fx.claim().unwrap();
    assert_eq!((again.task_id, again.attempt), (plain.id, 2));
    fx.assert_consistent();
}

/// A job reaped `max_attempts` times in a row fails and counts as one
/// failure; a live lease is never reaped.
#[test]
fn reaped_too_often_fails() {
    let mut fx = Fx::new();
    let t = fx.start("r");
    for round in 1..=3 {
        let l = fx.claim().unwrap();
        fx.now += LEASE_MS - 10;
        assert!(
            fx.write(|tx| tx.reap(3)).unwrap().is_empty(),
            "lease still live"
        );
        fx.now += 20;
        let out = fx.write(|tx| tx.reap(3)).unwrap();
        let expect = if round < 3 {
            JobStatus::Queued
        } else {
            JobStatus::Failed
        };
        assert_eq!(out[0].status, expect, "round {round}");
        assert_eq!(l.task_id, t.id);
    }
    assert_eq!(fx.task(t.id).failures_in(Stage::Analysis), 1);
    fx.assert_consistent();
}

/// TC-32: heartbeat and completion of a stale attempt are rejected by the
/// fence; the current attempt's go through.
#[test]
fn fenced_writes_tc32() {
    let mut fx = Fx::new();
    let t = fx.start("r");
    let first = fx.claim().unwrap();
    fx.now += LEASE_MS + 1;
    fx.write(|tx| tx.reap(3)).unwrap();
    let second = fx.claim().unwrap();
    assert_eq!(second.attempt, first.attempt + 1);

    let stale_hb = fx.write(|tx| tx.heartbeat(first.job_id, first.attempt, LEASE_MS));
    assert!(
        matches!(stale_hb, Err(StoreError::Fenced { .. })),
        "{stale_hb:?}"
    );
    let stale_done = fx.write(|tx| tx.complete(first.job_id, first.attempt, Completion::Done));
    assert!(matches!(stale_done, Err(StoreError::Fenced { .. })));
    assert_eq!(status(&fx, second.job_id), JobStatus::Running);

    let until = fx
        .write(|tx| tx.heartbeat(second.job_id, second.attempt, LEASE_MS))
        .unwrap();
    assert_eq!(until, fx.now + LEASE_MS);
    fx.write(|tx| tx.complete(second.job_id, second.attempt, Completion::Done))
        .unwrap();
    assert!(
        fx.write(|tx| tx.complete(second.job_id, second.attempt, Completion::Done))
            .is_err(),
        "done is final"
    );
    assert_eq!(t.id, second.task_id);
    fx.assert_consistent();
}

/// Interrupted jobs go back to the queue without counting as failures;
/// failures count per stage.
#[test]
fn interrupted_and_failed() {
    let mut fx = Fx::new();
    let t = fx.start("r");
    let l = fx.claim().unwrap();
    fx.write(|tx| {
        tx.complete(
            l.job_id,
            l.attempt,
            Completion::Interrupted("shutdown".into()),
        )
    })
    .unwrap();
    assert_eq!(status(&fx, l.job_id), JobStatus::Queued);
    let l = fx.claim().unwrap();
    fx.write(|tx| tx.complete(l.job_id, l.attempt, Completion::Failed("exit 1".into())))
        .unwrap();
    assert_eq!(fx.task(t.id).failures_in(Stage::Analysis), 1);
    let job = fx.enqueue(t.id, Role::Analyst);
    assert_eq!(fx.claimed_job(), Some(job));
    fx.assert_consistent();
}
