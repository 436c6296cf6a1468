//! `orch serve`: recovery, then the workers, the reaper and (when given a
//! listener) the HTTP API until SIGINT or SIGTERM; then an orderly shutdown
//! (stop accepting requests and claiming, wait for critical windows, stop
//! agents with the grace, requeue their jobs).

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::{Runtime, now, recovery, worker};
use crate::http::{ClaimStats, Listener};
use crate::pipeline::apply;
use crate::store::StoreError;

/// How long requests still in flight at shutdown may take to finish once
/// the workers have stopped; a client that holds its connection longer is
/// cut off rather than keeping orch alive.
const HTTP_DRAIN: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Runtime(#[from] super::RuntimeError),
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
}

/// Runs until a shutdown is requested (signal or `Runtime::request_shutdown`),
/// without the HTTP API (the demo and tests that need no port).
pub async fn serve(rt: Arc<Runtime>) -> Result<(), ServeError> {
    run(rt, None).await
}

/// `orch serve`: as `serve`, plus the HTTP API on an already bound listener.
/// The API starts after recovery and stops accepting when shutdown starts.
pub async fn serve_with_http(rt: Arc<Runtime>, http: Listener) -> Result<(), ServeError> {
    run(rt, Some(http)).await
}

async fn run(rt: Arc<Runtime>, http: Option<Listener>) -> Result<(), ServeError> {
    rt.settings.require_agent_commands()?;
    recovery::run(&rt).await?;
    let claims = Arc::new(ClaimStats::default());
    // Cancels interrupted by an earlier stop resume from their recorded step.
    for id in rt
        .store
        .read(|rx| rx.cancelling(usize::MAX))
        .map_err(super::RuntimeError::from)?
    {
        rt.kick_cancel(id);
    }
    let mut tasks = JoinSet::new();
    for i in 0..rt.settings.workers {
        tasks.spawn(worker::run(
            rt.clone(),
            format!("worker-{i}"),
            claims.clone(),
        ));
    }
    tasks.spawn(reaper(rt.clone()));
    if rt.plane.is_some() {
        tasks.spawn(external_deps(rt.clone()));
    }
    let api = http.map(|l| tokio::spawn(crate::http::serve(l, rt.clone(), claims.clone())));
    let signals = tokio::spawn(wait_for_signal(rt.clone()));
    tracing::info!(workers = rt.settings.workers, db = %rt.settings.db_path.display(), "orch serve started");
    while tasks.join_next().await.is_some() {}
    if let Some(mut api) = api {
        match tokio::time::timeout(HTTP_DRAIN, &mut api).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "HTTP API stopped with an error"),
            Ok(Err(e)) => tracing::error!(error = %e, "HTTP API task failed"),
            Err(_) => {
                tracing::warn!("HTTP requests still open after the drain time; closing them");
                api.abort();
            }
        }
    }
    signals.abort();
    tracing::info!("orch serve stopped");
    Ok(())
}

async fn wait_for_signal(rt: Arc<Runtime>) -> Result<(), ServeError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutdown requested");
    rt.request_shutdown();
    Ok(())
}

/// Runs `pass` every `period` until shutdown.
async fn periodically<F, Fut>(rt: Arc<Runtime>, period: std::time::Duration, mut pass: F)
where
    F: FnMut(Arc<Runtime>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut shutdown = rt.shutdown.subscribe();
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => {}
        }
        if rt.is_shutting_down() {
            break;
        }
        pass(rt.clone()).await;
    }
}

/// Tasks waiting on tracker issues orch never saw ask again, at most once
/// a minute.
async fn external_deps(rt: Arc<Runtime>) {
    periodically(rt, super::tracker::EXTERNAL_DEPS_RECHECK, |rt| async move {
        rt.recheck_external_dependencies().await
    })
    .await;
}

/// Every `ORCH_REAPER_INTERVAL_SECS`: expired leases back to the queue (or
/// failed, or cancelled), in one transaction with the pipeline's decision
/// for every job it failed.
async fn reaper(rt: Arc<Runtime>) {
    let period = rt.settings.reaper_interval;
    periodically(rt, period, reaper_pass).await;
}

async fn reaper_pass(rt: Arc<Runtime>) {
    let (max, limits) = (rt.settings.max_attempts, rt.limits());
    // Nothing expired: no write transaction at all.
    let expired = rt
        .store
        .read(|rx| rx.has_expired_lease(now()))
        .unwrap_or(true);
    let res = if !expired {
        Ok(Vec::new())
    } else {
        rt.writer
            .call(now(), move |tx| {
                let out = tx.reap(max)?;
                for o in out
                    .iter()
                    .filter(|o| o.status == crate::domain::JobStatus::Failed)
                {
                    apply::after_reaped_failure(tx, o.job_id, limits)?;
                }
                Ok::<_, StoreError>(out)
            })
            .await
    };
    if let Err(e) = super::cancel::settle_debts(&rt).await {
        tracing::warn!(error = %e, "settling cleanup debt failed");
    }
    // A cancel whose driver failed on a store error is driven again.
    if let Ok(ids) = rt.store.read(|rx| rx.cancelling(usize::MAX)) {
        for id in ids {
            rt.kick_cancel(id);
        }
    }
    match res {
        Ok(out) if !out.is_empty() => {
            tracing::info!(reaped = out.len(), "reaper pass");
            for o in &out {
                rt.stop_job(o.job_id);
            }
            rt.wake.notify_waiters();
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "reaper pass failed"),
    }
}
