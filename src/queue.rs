//! The claim snapshot as one value: job counts and both gate snapshots. The
//! HTTP `/queue` and `orch queue` print it.

use serde::Serialize;

use crate::domain::{JobStatus, Millis};
use crate::store::{DepsSnapshot, SerialSnapshot, Store};

#[derive(Debug, Clone, Serialize)]
pub struct QueueSnapshot {
    pub generated_at: String,
    pub jobs: std::collections::BTreeMap<&'static str, u64>,
    pub serial_gate: SerialSnapshot,
    pub task_deps: DepsSnapshot,
}

pub fn snapshot(store: &Store, now: Millis) -> QueueSnapshot {
    let counts = store.job_counts();
    QueueSnapshot {
        generated_at: crate::clock::rfc3339(now),
        jobs: JobStatus::ALL
            .iter()
            .map(|s| (s.as_str(), counts.get(s).copied().unwrap_or(0)))
            .collect(),
        serial_gate: store.serial_snapshot(),
        task_deps: store.deps_snapshot(),
    }
}
