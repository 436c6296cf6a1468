//! Start-up recovery (SPEC §5.5, §3): jobs an earlier boot left `running`.
//! A surviving agent (pid and start time both match) is stopped before its
//! job goes back to the queue; a reused pid is left alone. A job found inside
//! its critical window is never signalled nor requeued: it fails and its task
//! waits for a human, who alone can tell whether the deploy half-happened.

use std::sync::Arc;

use super::job::event;
use super::{Runtime, RuntimeError, now};
use crate::domain::JobStatus;
use crate::store::{Completion, EventKind};

/// What recovery did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub requeued: Vec<u64>,
    pub signalled: Vec<u64>,
    pub critical_failed: Vec<u64>,
}

pub async fn run(rt: &Arc<Runtime>) -> Result<Recovered, RuntimeError> {
    let running = rt
        .store
        .read(|rx| rx.jobs_with_status(JobStatus::Running))?;
    let mut out = Recovered::default();
    for job in running
        .into_iter()
        .filter(|j| j.boot_id.as_deref() != Some(rt.boot_id.as_str()))
    {
        let (id, attempt, task) = (job.id, job.attempt, job.task_id);
        if job.critical_since.is_some() {
            let reason = "critical window interrupted: orch stopped during the merge or the production deploy; \
                          check whether the deploy happened, then retry or STOP"
                .to_string();
            rt.writer
                .call(now(), move |tx| {
                    tx.complete(
                        id,
                        attempt,
                        Completion::Failed("critical window interrupted".into()),
                    )?;
                    if !tx.task(task)?.is_terminal() {
                        tx.set_blocked(task, Some(reason.clone()))?;
                    }
                    Ok(())
                })
                .await?;
            out.critical_failed.push(id);
            continue;
        }
        if let (Some(pid), Some(start)) = (job.pid, job.pid_start)
            && crate::agent::is_alive(pid, start)
        {
            let report = crate::agent::stop_tree(pid, start, rt.settings.stop_grace).await?;
            let detail = format!("pid {pid} of an earlier boot: {:?}", report.outcome);
            event(rt, task, EventKind::AgentSignalled, Some(id), detail).await;
            out.signalled.push(id);
        }
        rt.writer
            .call(now(), move |tx| {
                tx.complete(
                    id,
                    attempt,
                    Completion::Interrupted("orch restarted".into()),
                )
            })
            .await?;
        out.requeued.push(id);
    }
    if !out.requeued.is_empty() || !out.critical_failed.is_empty() {
        tracing::info!(?out, "recovered jobs of an earlier boot");
    }
    Ok(out)
}
