//! The pipeline applied to a real store: outcomes, retries, the review loop,
//! human retry and the relaunch gate.

use orch::domain::{JobStatus, Role, Stage};
use orch::pipeline::apply::{self, StartResult};
use orch::pipeline::{Decision, Limits, Outcome};

use crate::support::{Fx, new_task};

fn finish(fx: &mut Fx, outcome: Outcome) -> Option<Decision> {
    let l = fx.claim().expect("a claimable job");
    fx.write(|tx| apply::finish_job(tx, l.job_id, l.attempt, outcome.clone(), Limits::default()))
        .unwrap()
        .decision
}

fn start(fx: &mut Fx, wi: &str) -> (StartResult, u64) {
    let (r, t) = fx
        .write(|tx| apply::start(tx, new_task(wi, "r", &[])))
        .unwrap();
    (r, t.id)
}

fn queued_roles(fx: &Fx, task: u64) -> Vec<(Role, Option<String>)> {
    let jobs = fx.store.read(|rx| rx.jobs_of(task)).unwrap();
    jobs.into_iter()
        .filter(|j| j.status == JobStatus::Queued)
        .map(|j| (j.role, j.note))
        .collect()
}

/// TC-34: a pass advances and enqueues the next role, through every stage to
/// `done`; a failure retries with the reason; after max attempts the task is
/// blocked; `changes_requested` loops to development at most
/// `max_review_rounds` times.
#[test]
fn pipeline_outcomes_tc34() {
    let mut fx = Fx::new();
    let (_, id) = start(&mut fx, "ORCH-1");
    for stage in [
        Stage::Architecture,
        Stage::Development,
        Stage::Review,
        Stage::Testing,
    ] {
        finish(&mut fx, Outcome::Passed);
        assert_eq!(fx.task(id).stage, stage);
    }
    // Testing fails: retried with the reason, then blocked.
    finish(
        &mut fx,
        Outcome::Failed("tests failed: 1 of 3 failed".into()),
    );
    assert_eq!(
        queued_roles(&fx, id),
        vec![(Role::Tester, Some("tests failed: 1 of 3 failed".into()))]
    );
    finish(&mut fx, Outcome::Failed("again".into()));
    let d = finish(&mut fx, Outcome::Failed("third".into()));
    assert!(matches!(d, Some(Decision::Block { .. })));
    let t = fx.task(id);
    assert!(
        t.blocked
            .as_ref()
            .unwrap()
            .reason
            .contains("testing failed 3 times")
    );
    assert!(queued_roles(&fx, id).is_empty());

    // A human retries with a note: counts reset, the note reaches the job.
    fx.write(|tx| apply::retry(tx, id, Some("flaky runner fixed".into())))
        .unwrap();
    assert_eq!(fx.task(id).failures_in(Stage::Testing), 0);
    assert_eq!(
        queued_roles(&fx, id),
        vec![(Role::Tester, Some("flaky runner fixed".into()))]
    );
    finish(&mut fx, Outcome::Passed);
    finish(&mut fx, Outcome::Passed);
    finish(&mut fx, Outcome::Passed);
    assert_eq!(fx.task(id).stage, Stage::Done);
    assert_eq!(fx.claim(), None);
    fx.assert_consistent();
}

#[test]
fn review_loop_is_bounded_tc34() {
    let mut fx = Fx::new();
    let (_, id) = start(&mut fx, "ORCH-1");
    finish(&mut fx, Outcome::Passed);
    finish(&mut fx, Outcome::Passed);
    for round in 1..=3 {
        finish(&mut fx, Outcome::Passed); // development
        assert_eq!(fx.task(id).stage, Stage::Review);
        let d = finish(
            &mut fx,
            Outcome::ChangesRequested(format!("round {round}: rename x")),
        );
        assert!(matches!(d, Some(Decision::Rework { .. })), "{d:?}");
        assert_eq!(fx.task(id).stage, Stage::Development);
        assert_eq!(
            queued_roles(&fx, id),
            vec![(Role::Developer, Some(format!("round {round}: rename x")))]
        );
    }
    finish(&mut fx, Outcome::Passed);
    let d = finish(&mut fx, Outcome::ChangesRequested("still".into()));
    assert!(matches!(d, Some(Decision::Block { .. })), "{d:?}");
    assert_eq!(fx.task(id).review_rounds, 3);
}

/// TC-37: retry clears `blocked`, resets the stage's counts and the note
/// reaches the next job; a start of a blocked task in analysis does the same.
#[test]
fn retry_and_start_unblock_tc37() {
    let mut fx = Fx::new();
    let (_, id) = start(&mut fx, "ORCH-1");
    for _ in 0..3 {
        finish(&mut fx, Outcome::Failed("no analysis".into()));
    }
    assert!(fx.task(id).blocked.is_some());
    assert!(fx.write(|tx| apply::retry(tx, 999, None)).is_err());
    let (r, same) = start(&mut fx, "ORCH-1");
    assert_eq!((r, same), (StartResult::Relaunched, id));
    let t = fx.task(id);
    assert!(t.blocked.is_none());
    assert_eq!(t.failures_in(Stage::Analysis), 0);
    assert_eq!(queued_roles(&fx, id).len(), 1);
    assert!(
        fx.write(|tx| apply::retry(tx, id, None)).is_err(),
        "not blocked any more"
    );
}

/// TC-S14: start relaunches only a task in analysis without a live analyst
/// job; any later stage is unchanged and records `start_ignored`.
#[test]
fn relaunch_gate_tc_s14() {
    let mut fx = Fx::new();
    let (r, id) = start(&mut fx, "ORCH-1");
    assert_eq!(r, StartResult::Created);
    assert_eq!(
        start(&mut fx, "ORCH-1").0,
        StartResult::Ignored,
        "analyst job still queued"
    );
    finish(&mut fx, Outcome::Passed);
    let before = fx.task(id);
    assert_eq!(start(&mut fx, "ORCH-1").0, StartResult::Ignored);
    let after = fx.task(id);
    assert_eq!(
        (before.stage, queued_roles(&fx, id).len()),
        (after.stage, 1)
    );
    assert!(fx.events(id).contains(&"start_ignored".to_string()));
}

/// A job finishing after its task's cancel was requested changes nothing but
/// itself.
#[test]
fn late_finish_of_cancelled_task() {
    let mut fx = Fx::new();
    let (_, id) = start(&mut fx, "ORCH-1");
    let l = fx.claim().unwrap();
    fx.write(|tx| tx.request_cancel(id)).unwrap();
    let a = fx
        .write(|tx| apply::finish_job(tx, l.job_id, l.attempt, Outcome::Passed, Limits::default()))
        .unwrap();
    assert_eq!(a.decision, None);
    assert_eq!(a.task.stage, Stage::Analysis);
    assert!(queued_roles(&fx, id).is_empty());
}
