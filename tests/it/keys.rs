//! Natural keys, lookups and tombstones (SPEC §4, §7.5).

use orch::domain::Stage;
use orch::store::{CancelRequest, TaskKey};

use crate::support::{Fx, new_task, with_plane};

const UUID: &str = "3b2f9a4c-8d1e-4f6a-9c2b-7e5d1a0b3c4d";

fn resolve(fx: &Fx, key: &str) -> Option<u64> {
    fx.store
        .read(|rx| rx.resolve(&TaskKey::parse(key)?))
        .unwrap()
}

/// A lookup by either natural key finds the task; finalize tombstones both
/// keys in one transaction; a new task for the same key starts from scratch
/// with fresh names (TC-39 names; D7: the tracker id is tombstoned too).
#[test]
fn tombstone_and_recreate() {
    let mut fx = Fx::new();
    let t = fx
        .write(|tx| tx.create_task(with_plane(new_task("ORCH-7", "r", &[]), UUID)))
        .unwrap();
    assert_eq!(resolve(&fx, "ORCH-7"), Some(t.id));
    assert_eq!(resolve(&fx, &UUID.to_uppercase()), Some(t.id));
    assert_eq!(resolve(&fx, &t.id.to_string()), Some(t.id));
    assert_eq!(
        fx.write(|tx| tx.find_live(None, Some(UUID))).unwrap(),
        Some(t.id)
    );
    let dup = fx.write(|tx| tx.create_task(new_task("ORCH-7", "r", &[])));
    assert!(dup.is_err(), "a live key is unique");

    assert_eq!(
        fx.write(|tx| tx.request_cancel(t.id)).unwrap(),
        CancelRequest::Requested
    );
    assert_eq!(
        fx.write(|tx| tx.request_cancel(t.id)).unwrap(),
        CancelRequest::AlreadyRequested
    );
    let gone = fx.write(|tx| tx.finalize_cancel(t.id)).unwrap();
    assert_eq!(gone.stage, Stage::Cancelled);
    assert_eq!(gone.work_item_id, format!("ORCH-7::cancelled::{}", t.id));
    assert_eq!(
        gone.plane_issue_id.as_deref(),
        Some(format!("{UUID}::cancelled::{}", t.id).as_str())
    );
    assert_eq!(
        orch::domain::ids::untombstone(&gone.work_item_id),
        Some("ORCH-7")
    );
    assert_eq!(
        fx.write(|tx| tx.find_live(Some("ORCH-7"), Some(UUID)))
            .unwrap(),
        None
    );
    assert_eq!(
        resolve(&fx, "ORCH-7"),
        Some(t.id),
        "the newest predecessor answers for a dead key"
    );
    assert_eq!(
        fx.write(|tx| tx.request_cancel(t.id)).unwrap(),
        CancelRequest::Terminal
    );

    let again = fx
        .write(|tx| tx.create_task(with_plane(new_task("ORCH-7", "r", &[]), UUID)))
        .unwrap();
    assert_ne!(again.id, t.id);
    assert_eq!(
        (again.branch.as_str(), again.incarnation),
        ("feature/ORCH-7-2", 2)
    );
    assert_eq!(again.worktree, "worktrees/r/ORCH-7-2");
    assert_eq!(resolve(&fx, "ORCH-7"), Some(again.id), "the live task wins");
    assert_eq!(resolve(&fx, UUID), Some(again.id));
    let preds = fx.store.read(|rx| rx.predecessors("ORCH-7")).unwrap();
    assert_eq!(preds, vec![t.id]);
    assert!(fx.events(t.id).contains(&"tombstoned".to_string()));
    fx.assert_consistent();
}

/// Bad keys are refused with a clear error and change nothing (TC-40).
#[test]
fn bad_keys_refused_tc40() {
    for bad in ["", "orch-1", "ORCH-1/../../x", "--force", "ORCH-0"] {
        assert!(TaskKey::parse(bad).is_err(), "{bad:?}");
    }
    assert!(matches!(TaskKey::parse("42"), Ok(TaskKey::Id(42))));
    assert!(TaskKey::parse("ORCH-3::cancelled::9").is_ok());
}

/// A file written by a newer orch is refused with a clear error.
#[test]
fn newer_schema_refused() {
    let fx = Fx::new();
    let path = fx.path();
    drop(fx.store);
    let db = redb::Database::create(&path).unwrap();
    let w = db.begin_write().unwrap();
    {
        let mut meta = w.open_table(orch::store::tables::META).unwrap();
        meta.insert("schema_version", 99u64.to_be_bytes().as_slice())
            .unwrap();
    }
    w.commit().unwrap();
    drop(db);
    let err = orch::store::Store::open(&path, Default::default(), 0).unwrap_err();
    assert!(err.to_string().contains("schema version 99"), "{err}");
}
