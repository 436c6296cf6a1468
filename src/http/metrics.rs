//! `GET /metrics` in the Prometheus text format (0.0.4): jobs by status,
//! blocked tasks, gate waits, gate errors, stops, cleanup debt, and the claims of this process's
//! workers with their latency. Counts come from the store's maintained
//! counters and snapshots, so a scrape never scans the jobs.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, HttpState};
use crate::domain::JobStatus;
use crate::store::Store;

/// Upper bounds of the claim latency buckets, in seconds: a claim is a
/// durable commit, from well under a millisecond to a slow disk's fsync.
const BUCKETS: [f64; 11] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// What the workers of this process record about their claims. Shared by
/// the workers (writers) and `/metrics` (reader); all counters only grow.
#[derive(Debug, Default)]
pub struct ClaimStats {
    claims: AtomicU64,
    errors: AtomicU64,
    /// Claims per bucket (not cumulative); the last slot is above every bound.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    micros: AtomicU64,
}

impl ClaimStats {
    /// A claim that handed a job to a worker, and how long the claim took
    /// from the worker's call to the writer's answer.
    pub fn record_claim(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.claims.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// A claim that failed with a store error.
    pub fn record_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn claims(&self) -> u64 {
        self.claims.load(Ordering::Relaxed)
    }
}

pub async fn get(State(state): State<HttpState>) -> Result<Response, ApiError> {
    let store = state.rt.store.clone();
    let claims = state.claims.clone();
    let text = tokio::task::spawn_blocking(move || render(&store, &claims)).await?;
    let mut resp = text.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(resp)
}

/// The whole exposition. Writing into a `String` cannot fail, so the
/// results of `writeln!` are ignored.
pub fn render(store: &Store, claims: &ClaimStats) -> String {
    let mut out = String::new();
    let counts = store.job_counts();
    family(
        &mut out,
        "orch_jobs",
        "gauge",
        "Jobs in the store by status.",
    );
    for s in JobStatus::ALL {
        let n = counts.get(&s).copied().unwrap_or(0);
        let _ = writeln!(out, "orch_jobs{{status=\"{}\"}} {n}", s.as_str());
    }

    let blocked = store
        .read(|rx| rx.blocked_tasks(0).map(|(_, n)| n))
        .unwrap_or(0);
    family(
        &mut out,
        "orch_blocked_tasks",
        "gauge",
        "Unfinished tasks that wait for a human (retry or STOP).",
    );
    let _ = writeln!(out, "orch_blocked_tasks {blocked}");

    let serial = store.serial_gauges();
    family(
        &mut out,
        "orch_serial_gate_waiting",
        "gauge",
        "Analyst jobs waiting at a repo's serial gate.",
    );
    for (repo, (waiting, _)) in &serial {
        let _ = writeln!(
            out,
            "orch_serial_gate_waiting{{repo=\"{}\"}} {waiting}",
            label(repo)
        );
    }
    family(
        &mut out,
        "orch_serial_gate_active",
        "gauge",
        "Whether a task holds the repo's serial gate (1) or not (0).",
    );
    for (repo, (_, active)) in &serial {
        let _ = writeln!(
            out,
            "orch_serial_gate_active{{repo=\"{}\"}} {}",
            label(repo),
            u8::from(*active)
        );
    }

    let (cancelling, debt, cancelled) = store
        .read(|rx| {
            Ok((
                rx.count("cancelling")?,
                rx.count("cleanup_debt")?,
                rx.cancelled_count()?,
            ))
        })
        .unwrap_or_default();
    family(
        &mut out,
        "orch_stops_in_progress",
        "gauge",
        "Tasks whose STOP is under way (including deferred ones).",
    );
    let _ = writeln!(out, "orch_stops_in_progress {cancelling}");
    family(
        &mut out,
        "orch_tasks_cancelled_total",
        "counter",
        "Tasks that reached the stage cancelled.",
    );
    let _ = writeln!(out, "orch_tasks_cancelled_total {cancelled}");
    family(
        &mut out,
        "orch_cleanup_debt",
        "gauge",
        "Cancel cleanup steps that failed and wait for a retry.",
    );
    let _ = writeln!(out, "orch_cleanup_debt {debt}");

    let deps = store.deps_snapshot();
    family(
        &mut out,
        "orch_deps_waiting",
        "gauge",
        "Unfinished tasks waiting for their dependencies.",
    );
    let _ = writeln!(out, "orch_deps_waiting {}", deps.blocked_count);

    family(
        &mut out,
        "orch_gate_errors_total",
        "counter",
        "Gate evaluations that failed open since the store was opened.",
    );
    let _ = writeln!(out, "orch_gate_errors_total {}", store.gate_errors());

    family(
        &mut out,
        "orch_claims_total",
        "counter",
        "Jobs claimed by this process's workers.",
    );
    let _ = writeln!(out, "orch_claims_total {}", claims.claims());
    family(
        &mut out,
        "orch_claim_errors_total",
        "counter",
        "Claims that failed with a store error.",
    );
    let _ = writeln!(
        out,
        "orch_claim_errors_total {}",
        claims.errors.load(Ordering::Relaxed)
    );

    family(
        &mut out,
        "orch_claim_duration_seconds",
        "histogram",
        "Time from a worker's claim call to the committed claim.",
    );
    let mut cumulative = 0;
    for (i, bound) in BUCKETS.iter().enumerate() {
        cumulative += claims.buckets[i].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "orch_claim_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    cumulative += claims.buckets[BUCKETS.len()].load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "orch_claim_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let sum = claims.micros.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(out, "orch_claim_duration_seconds_sum {sum}");
    let _ = writeln!(out, "orch_claim_duration_seconds_count {cumulative}");
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value with the three characters the format escapes.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_land_in_cumulative_buckets() {
        let s = ClaimStats::default();
        s.record_claim(Duration::from_micros(300));
        s.record_claim(Duration::from_millis(3));
        s.record_claim(Duration::from_secs(5));
        assert_eq!(s.claims(), 3);
        assert_eq!(s.buckets[0].load(Ordering::Relaxed), 1);
        assert_eq!(s.buckets[3].load(Ordering::Relaxed), 1);
        assert_eq!(s.buckets[BUCKETS.len()].load(Ordering::Relaxed), 1);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
