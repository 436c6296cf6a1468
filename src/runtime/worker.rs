//! A worker: claim, run, record, repeat. Woken by a notification when work
//! may have become claimable, with a slow poll as a safety net.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Runtime, job, now};
use crate::http::ClaimStats;

/// How long an idle worker sleeps when no notification comes.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// Claims and runs jobs until shutdown; every claim is recorded in `claims`
/// for `/metrics`.
pub async fn run(rt: Arc<Runtime>, name: String, claims: Arc<ClaimStats>) {
    let mut shutdown = rt.shutdown.subscribe();
    loop {
        if rt.is_shutting_down() {
            break;
        }
        // Register for a wake-up before looking, so a notification sent
        // between the empty claim and the wait is not lost.
        let wake = rt.wake.clone();
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // Looking first keeps an idle worker from committing empty write
        // transactions (each one an fsync) every time it wakes.
        let claimable = rt.store.read(|rx| rx.has_claimable()).unwrap_or(true);
        let lease_ms = rt.lease_ms();
        let boot = rt.boot_id.clone();
        let worker = name.clone();
        let asked = Instant::now();
        let claimed = if claimable {
            rt.writer
                .call(now(), move |tx| tx.claim(&worker, lease_ms, Some(&boot)))
                .await
        } else {
            Ok(None)
        };
        match claimed {
            Ok(Some(lease)) => {
                claims.record_claim(asked.elapsed());
                tracing::info!(worker = %name, job = lease.job_id, task = lease.task_id, role = %lease.role, "claimed");
                job::run(&rt, &name, lease).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                claims.record_error();
                tracing::error!(worker = %name, error = %e, "claim failed");
            }
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = shutdown.changed() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
        }
    }
    tracing::debug!(worker = %name, "worker stopped");
}
