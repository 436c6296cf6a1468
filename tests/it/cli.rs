//! The binary on a real file: `orch db check` and `orch queue`.

use std::process::Command;

use orch::domain::{Role, Stage};
use orch::store::{Options, Store};

use crate::support::{new_task, tempdir};

fn orch(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_orch"))
        .args(args)
        .env("ORCH_DATA_DIR", dir)
        .env_remove("ORCH_DB_PATH")
        .output()
        .unwrap()
}

#[test]
fn db_check_and_queue_on_a_file() {
    let dir = tempdir();
    let out = orch(dir.path(), &["db", "check"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: 0 tasks"));
    {
        let store = Store::open(dir.path().join("orch.redb"), Options::default(), 5).unwrap();
        store
            .write(6, |tx| {
                let a = tx.create_task(new_task("ORCH-1", "r", &[]))?;
                tx.set_stage(a.id, Stage::Development)?;
                let b = tx.create_task(new_task("ORCH-2", "r", &[]))?;
                tx.set_stage(b.id, Stage::Analysis)?;
                tx.enqueue(b.id, Role::Analyst, None)
            })
            .unwrap();
    }
    let out = orch(dir.path(), &["queue"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["jobs"]["queued"], 1);
    assert_eq!(
        v["serial_gate"]["per_repo"]["r"]["active_task"]["work_item_id"],
        "ORCH-1"
    );
    assert_eq!(v["serial_gate"]["per_repo"]["r"]["waiting_count"], 1);
    let out = orch(dir.path(), &["db", "check"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("ok: 2 tasks, 1 jobs"),
        "{out:?}"
    );
}

#[test]
fn bad_switch_is_a_usage_error() {
    let dir = tempdir();
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .args(["queue"])
        .env("ORCH_DATA_DIR", dir.path())
        .env("ORCH_SERIAL_GATE_ENABLED", "perhaps")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("ORCH_SERIAL_GATE_ENABLED"));
    assert!(
        !dir.path().join("orch.redb").exists(),
        "bad input changes nothing"
    );
}

#[test]
fn a_held_file_is_named() {
    let dir = tempdir();
    let _held = Store::open(dir.path().join("orch.redb"), Options::default(), 1).unwrap();
    let out = orch(dir.path(), &["db", "check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("held by another orch process"),
        "{out:?}"
    );
}
