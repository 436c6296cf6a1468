//! The gated claim: serial gate, deps gate, switches, fail-open, snapshots.

use std::sync::atomic::Ordering;

use orch::domain::{Role, Stage};
use orch::gates::GateConfig;
use orch::store::Faults;

use crate::support::{Fx, new_task};

fn gates(f: impl FnOnce(&mut GateConfig)) -> GateConfig {
    let mut g = GateConfig::default();
    f(&mut g);
    g
}

/// TC-01: a new task's analyst job is not claimed while its repo has another
/// unfinished active task; the snapshot shows the active task and the waiting
/// job.
#[test]
fn analyst_waits_behind_active_task_tc01() {
    let mut fx = Fx::new();
    let a = fx.active("orchestrator", Stage::Development);
    let b = fx.start("orchestrator");
    assert_eq!(fx.claim(), None, "B's analyst job must wait behind A");
    let snap = fx.store.serial_snapshot();
    let repo = &snap.per_repo["orchestrator"];
    let active = repo.active_task.as_ref().unwrap();
    assert_eq!(
        (
            active.task_id,
            active.work_item_id.as_str(),
            active.stage.as_str()
        ),
        (a.id, "ORCH-1", "development")
    );
    assert_eq!(repo.waiting.len(), 1);
    assert_eq!((repo.waiting[0].task_id, repo.waiting_count), (b.id, 1));
    fx.assert_consistent();
}

/// TC-03: jobs of the active task (architect … deployer) are never gated,
/// even with older analyst jobs waiting in the same repo.
#[test]
fn active_task_jobs_pass_tc03() {
    let mut fx = Fx::new();
    let a = fx.active("orchestrator", Stage::Architecture);
    fx.start("orchestrator");
    for role in [
        Role::Architect,
        Role::Developer,
        Role::Reviewer,
        Role::Tester,
        Role::Deployer,
    ] {
        let job = fx.enqueue(a.id, role);
        assert_eq!(
            fx.claimed_job(),
            Some(job),
            "{role} of the active task must pass"
        );
    }
    assert_eq!(fx.claim(), None);
    fx.assert_consistent();
}

/// TC-08: the gate is per repo.
#[test]
fn gate_is_per_repo_tc08() {
    let mut fx = Fx::new();
    fx.active("orchestrator", Stage::Development);
    fx.start("orchestrator");
    let other = fx.start("enduro-trails");
    let lease = fx.claim().unwrap();
    assert_eq!(lease.task_id, other.id);
    assert_eq!(fx.claim(), None);
}

/// The first analyst claim admits the task, and the next task of the repo
/// waits until it is terminal; then it is claimable in the same transaction.
#[test]
fn admission_and_release() {
    let mut fx = Fx::new();
    let a = fx.start("r");
    let b = fx.start("r");
    let first = fx.claim().unwrap();
    assert_eq!(first.task_id, a.id);
    assert!(fx.task(a.id).admitted_at.is_some());
    assert_eq!(fx.claim(), None);
    fx.write(|tx| tx.complete(first.job_id, first.attempt, orch::store::Completion::Done))
        .unwrap();
    assert_eq!(fx.claim(), None, "A is still unfinished");
    fx.write(|tx| tx.set_stage(a.id, Stage::Done)).unwrap();
    assert_eq!(fx.claim().unwrap().task_id, b.id);
    fx.assert_consistent();
}

/// TC-15: with the serial gate switched off, claims are exactly FIFO.
#[test]
fn switch_off_is_plain_fifo_tc15() {
    let mut fx = Fx::with(gates(|g| g.serial_enabled = false));
    fx.active("orchestrator", Stage::Development);
    let b = fx.start("orchestrator");
    let c = fx.start("orchestrator");
    assert_eq!(fx.claim().unwrap().task_id, b.id);
    assert_eq!(fx.claim().unwrap().task_id, c.id);
    let snap = fx.store.serial_snapshot();
    assert!(!snap.enabled && snap.per_repo.is_empty());
}

/// TC-16: a repo outside a non-empty CSV is not gated; one inside is.
#[test]
fn repo_outside_csv_not_gated_tc16() {
    let mut fx = Fx::with(gates(|g| g.serial_repos = vec!["orchestrator".into()]));
    fx.active("enduro", Stage::Development);
    let free = fx.start("enduro");
    fx.active("orchestrator", Stage::Development);
    fx.start("orchestrator");
    assert_eq!(fx.claim().unwrap().task_id, free.id);
    assert_eq!(fx.claim(), None);
}

/// TC-17: an error inside gate evaluation fails open: the claim still
/// happens, and the error is counted and recorded as `gate_error`.
#[test]
fn gate_error_fails_open_tc17() {
    let mut fx = Fx::new();
    fx.active("orchestrator", Stage::Development);
    Faults::set(&fx.store.faults().serial_gate, true);
    let b = fx.start("orchestrator");
    assert_eq!(
        fx.claim().unwrap().task_id,
        b.id,
        "fail open: the claim proceeds"
    );
    assert!(fx.store.gate_errors() >= 1);
    assert!(fx.events(b.id).iter().any(|e| e == "gate_error"));
    Faults::set(&fx.store.faults().serial_gate, false);

    // The deps gate fails open the same way.
    let dep = fx.start("other");
    Faults::set(&fx.store.faults().deps_gate, true);
    let waiting = fx.start_with("third", &[&dep.id.to_string()]);
    let claimed: Vec<u64> = std::iter::from_fn(|| fx.claim().map(|l| l.task_id)).collect();
    assert!(claimed.contains(&waiting.id), "{claimed:?}");
    assert!(fx.events(waiting.id).iter().any(|e| e == "gate_error"));
    assert!(fx.store.faults().deps_gate.load(Ordering::SeqCst));
}

/// TC-19: the snapshot has the documented shape and never fails: on a store
/// error it returns the flags with an empty `per_repo`.
#[test]
fn snapshot_shape_and_never_fails_tc19() {
    let mut fx = Fx::with(gates(|g| g.serial_repos = vec!["orchestrator".into()]));
    fx.active("orchestrator", Stage::Review);
    fx.start("orchestrator");
    let json = serde_json::to_value(fx.store.serial_snapshot()).unwrap();
    assert_eq!(json["enabled"], true);
    assert_eq!(json["repos"], serde_json::json!(["orchestrator"]));
    assert_eq!(json["freeze_enabled"], true);
    let repo = &json["per_repo"]["orchestrator"];
    assert_eq!(repo["active_task"]["stage"], "review");
    assert_eq!(repo["active_task"]["work_item_id"], "ORCH-1");
    assert!(repo["active_task"]["task_id"].is_u64());
    assert_eq!(repo["waiting"][0]["work_item_id"], "ORCH-2");
    assert!(repo["waiting"][0]["job_id"].is_u64() && repo["waiting"][0]["task_id"].is_u64());
    assert_eq!(repo["waiting_count"], 1);

    Faults::set(&fx.store.faults().snapshot, true);
    let snap = fx.store.serial_snapshot();
    assert!(snap.enabled && snap.freeze_enabled && snap.per_repo.is_empty());
    assert_eq!(snap.repos, vec!["orchestrator".to_string()]);
    let deps = fx.store.deps_snapshot();
    assert!(deps.enabled && deps.blocked.is_empty());
}

/// The waiting list is capped at 50 with the full count beside it.
#[test]
fn snapshot_lists_are_capped() {
    let mut fx = Fx::new();
    fx.active("r", Stage::Development);
    for _ in 0..60 {
        fx.start("r");
    }
    let snap = fx.store.serial_snapshot();
    let repo = &snap.per_repo["r"];
    assert_eq!((repo.waiting.len(), repo.waiting_count), (50, 60));
    assert!(
        repo.waiting.windows(2).all(|w| w[0].job_id < w[1].job_id),
        "FIFO order"
    );
}

/// TC-20: a task waits for its dependencies; a cancelled dependency
/// releases it; unknown keys and cycles are rejected.
#[test]
fn deps_gate_tc20() {
    let mut fx = Fx::new();
    let a = fx.start("r1");
    let b = fx.start_with("r2", &["ORCH-1"]);
    let lease = fx.claim().unwrap();
    assert_eq!(lease.task_id, a.id);
    assert_eq!(fx.claim(), None, "B waits for A");
    let deps = fx.store.deps_snapshot();
    assert_eq!(deps.blocked_count, 1);
    assert_eq!(
        (deps.blocked[0].task_id, deps.blocked[0].waiting_on.clone()),
        (b.id, vec!["ORCH-1".to_string()])
    );

    fx.write(|tx| {
        tx.request_cancel(a.id)?;
        tx.finalize_cancel(a.id)
    })
    .unwrap();
    assert_eq!(
        fx.claim().unwrap().task_id,
        b.id,
        "a cancelled dependency counts as terminal"
    );
    assert_eq!(fx.store.deps_snapshot().blocked_count, 0);

    let unknown = fx.write(|tx| tx.create_task(new_task("ORCH-90", "r1", &["ORCH-404"])));
    assert!(
        unknown
            .unwrap_err()
            .to_string()
            .contains("unknown dependency")
    );
    let c = fx.create("r3", &[]);
    let d = fx.create("r3", &[&c.id.to_string()]);
    let cycle = fx.write(|tx| tx.add_dependency(c.id, d.id));
    assert!(cycle.unwrap_err().to_string().contains("cycle"));
    assert!(fx.write(|tx| tx.add_dependency(c.id, c.id)).is_err());
    fx.assert_consistent();
}

/// With the deps switch off, dependencies are ignored entirely.
#[test]
fn deps_switch_off() {
    let mut fx = Fx::with(gates(|g| g.deps_enabled = false));
    fx.start("r1");
    let b = fx.start_with("r2", &["ORCH-1"]);
    let got: Vec<u64> = std::iter::from_fn(|| fx.claim().map(|l| l.task_id)).collect();
    assert!(got.contains(&b.id));
    assert!(!fx.store.deps_snapshot().enabled);
}

/// TC-22: freeze layer on: a blocked task holds its repo; off: it releases
/// it.
#[test]
fn freeze_layer_tc22() {
    for (freeze, claimable) in [(true, false), (false, true)] {
        let mut fx = Fx::with(gates(|g| g.freeze_enabled = freeze));
        let a = fx.active("r", Stage::Testing);
        let b = fx.start("r");
        fx.write(|tx| tx.set_blocked(a.id, Some("tests failed 3 times".into())))
            .unwrap();
        assert_eq!(fx.claim().is_some(), claimable, "freeze={freeze}");
        if !claimable {
            fx.write(|tx| tx.set_blocked(a.id, None)).unwrap();
            assert_eq!(fx.claim(), None, "unblocked A still holds the repo");
        } else {
            assert!(fx.task(b.id).admitted_at.is_some());
        }
        fx.assert_consistent();
    }
}

/// A change of the gate switches between two starts rebuilds the claim
/// indexes, and the claim follows the new switches.
#[test]
fn switch_change_rebuilds_indexes() {
    let mut fx = Fx::new();
    fx.active("r", Stage::Development);
    let b = fx.start("r");
    assert_eq!(fx.claim(), None);
    fx.reopen(Some(gates(|g| g.serial_enabled = false)));
    fx.assert_consistent();
    assert_eq!(fx.claim().unwrap().task_id, b.id);
}

/// A task with a cancel requested has no claimable job and takes no new one.
#[test]
fn cancel_request_closes_claims() {
    let mut fx = Fx::new();
    let a = fx.start("r");
    fx.write(|tx| tx.request_cancel(a.id)).unwrap();
    assert_eq!(fx.claim(), None);
    assert!(
        fx.write(|tx| tx.enqueue(a.id, Role::Analyst, None))
            .is_err()
    );
    fx.assert_consistent();
}

/// A dependency on a tracker issue orch never saw holds the task until it is
/// cleared (the tracker reported it completed or cancelled).
#[test]
fn external_dependency_holds_until_cleared_tc20() {
    let mut fx = Fx::new();
    let t = fx.start("r");
    fx.write(|tx| tx.set_external_deps(t.id, vec!["OTHER-7".into()]))
        .unwrap();
    assert_eq!(fx.claim(), None);
    let deps = fx.store.deps_snapshot();
    assert_eq!(deps.blocked[0].waiting_on, vec!["OTHER-7".to_string()]);
    fx.assert_consistent();
    fx.write(|tx| tx.set_external_deps(t.id, vec![])).unwrap();
    assert_eq!(fx.claim().unwrap().task_id, t.id);
    fx.assert_consistent();
}
