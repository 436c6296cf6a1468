//! Crash safety: the store is driven through a storage backend that stops
//! accepting writes after a budget (what a crash at that moment leaves on
//! disk), then the file is reopened normally. Every committed operation must
//! be there, the in-flight one entirely or not at all, and every index must
//! match the records.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use orch::domain::{Role, Stage};
use orch::store::{Completion, Options, Store, StoreError};

use crate::support::{LEASE_MS, new_task, tempdir};

/// One step of a fixed workload: i-th task created and started, then its
/// job claimed and completed, every third task cancelled.
fn step(store: &Store, i: u64) -> Result<(), StoreError> {
    let now = 10_000 + i as i64;
    store.write(now, |tx| {
        let t = tx.create_task(new_task(
            &format!("ORCH-{}", i + 1),
            ["a", "b"][i as usize % 2],
            &[],
        ))?;
        tx.set_stage(t.id, Stage::Analysis)?;
        tx.enqueue(t.id, Role::Analyst, None)?;
        Ok(())
    })?;
    if let Some(l) = store.write(now, |tx| tx.claim("w", LEASE_MS, None))? {
        store.write(now, |tx| tx.complete(l.job_id, l.attempt, Completion::Done))?;
        store.write(now, |tx| tx.set_stage(l.task_id, Stage::Done).map(|_| ()))?;
    }
    if i % 3 == 2 {
        store.write(now, |tx| {
            let id = tx.find_live(Some(&format!("ORCH-{}", i + 1)), None)?;
            if let Some(id) = id {
                tx.request_cancel(id)?;
                tx.finalize_cancel(id)?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn crash_at_any_write_leaves_a_consistent_file() {
    // Budgets spread over the whole workload, including the first writes of
    // a brand-new file.
    for budget in (1..400).step_by(23) {
        let dir = tempdir();
        let path = dir.path().join("orch.redb");
        let counter = Arc::new(AtomicI64::new(budget));
        let mut done = 0;
        if let Ok(store) = Store::open_crashing(&path, Options::default(), 1, counter) {
            while done < 40 && step(&store, done).is_ok() {
                done += 1;
            }
            drop(store);
        }
        let store = Store::open(&path, Options::default(), 2).expect("reopen after the crash");
        let report = store.check().unwrap();
        assert!(report.ok(), "budget {budget}: {:?}", report.problems);
        assert!(
            report.tasks >= done && report.tasks <= done + 1,
            "budget {budget}: {} tasks after {done} committed steps",
            report.tasks
        );
        // The store still works after recovery.
        step(&store, 1000).unwrap();
        assert!(store.check().unwrap().ok());
    }
}
