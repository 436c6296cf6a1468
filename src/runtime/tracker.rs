//! What the tracker and the forge ask of a running orch: a start or a STOP
//! from a Plane state change, the "blocked by" relations turned into
//! dependencies, and a pull request a human closed without merging.

use std::sync::Arc;

use super::{Runtime, RuntimeError, now};
use crate::cancel::StopAnswer;
use crate::domain::PlaneIssueId;
use crate::pipeline::apply::{self, StartResult};
use crate::plane::{StartRequest, StopRequest};
use crate::store::{EventKind, NewTask, StoreError, Task, TaskKey};

/// How often a task waiting on issues orch never saw asks the tracker again.
pub const EXTERNAL_DEPS_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

impl Runtime {
    /// A start from the tracker: the relaunch gate applies; a new task's
    /// "blocked by" relations are read in the background.
    pub async fn start_from_tracker(
        self: &Arc<Self>,
        req: StartRequest,
    ) -> Result<(StartResult, Task), RuntimeError> {
        let new = NewTask {
            work_item_id: req.work_item_id.clone(),
            plane_issue_id: Some(req.plane_issue_id.clone()),
            repo: req.repo.clone(),
            title: req.title.clone(),
            description: req.description.clone().unwrap_or_default(),
            depends_on: Vec::new(),
        };
        let project = req.project_id.to_string();
        let (result, task) = self
            .writer
            .call(now(), move |tx| {
                let (result, task) = apply::start(tx, new.clone())?;
                if result != StartResult::Ignored
                    && task.plane_project_id.as_deref() != Some(project.as_str())
                {
                    tx.set_plane_project(task.id, &project)?;
                }
                Ok((result, tx.task(task.id)?))
            })
            .await?;
        if result == StartResult::Created && self.plane.is_some() {
            let rt = self.clone();
            let id = task.id;
            tokio::spawn(async move {
                if let Err(e) = rt.refresh_dependencies(id).await {
                    tracing::warn!(task = id, error = %e, "reading the tracker's relations failed");
                }
            });
        }
        self.wake.notify_waiters();
        Ok((result, task))
    }

    /// A STOP from the tracker, for the live task of the issue. Never fails
    /// the delivery: errors are logged and the answer says what happened.
    pub async fn stop_from_tracker(self: &Arc<Self>, req: StopRequest) -> Option<StopAnswer> {
        let issue = req.plane_issue_id.to_string();
        let live = self.store.read(|rx| rx.find_live_plane(&issue));
        match live {
            Ok(Some(id)) => match self.stop(id).await {
                Ok(answer) => Some(answer),
                Err(e) => {
                    tracing::error!(task = id, error = %e, "STOP from the tracker failed; the reaper retries it");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "STOP from the tracker: lookup failed");
                None
            }
        }
    }

    /// Reads the issue's "blocked by" relations: blockers that are orch
    /// tasks become dependencies; others are external dependencies until
    /// the tracker reports them completed or cancelled.
    pub async fn refresh_dependencies(self: &Arc<Self>, task_id: u64) -> Result<(), RuntimeError> {
        let Some(client) = self.plane.clone() else {
            return Ok(());
        };
        let Some(task) = self.store.read(|rx| rx.task(task_id))? else {
            return Ok(());
        };
        let (Some(issue), Some(project)) =
            (task.plane_issue_id.clone(), task.plane_project_id.clone())
        else {
            return Ok(());
        };
        if task.is_terminal() {
            return Ok(());
        }
        let issue = PlaneIssueId::parse(&issue)?;
        let project =
            uuid::Uuid::parse_str(&project).map_err(|e| RuntimeError::Other(e.to_string()))?;
        let store = self.store.clone();
        let known = move |id: &PlaneIssueId| -> Option<u64> {
            store
                .read(|rx| rx.resolve(&TaskKey::Plane(id.clone())))
                .ok()
                .flatten()
        };
        let blockers = client
            .blocked_by(project, &issue, |id| known(id).is_some())
            .await
            .map_err(|e| RuntimeError::Other(e.to_string()))?;
        let mut deps = Vec::new();
        let mut external = Vec::new();
        for b in blockers {
            match known(&b.issue_id) {
                Some(dep) => deps.push(dep),
                None if !b.is_finished() => external.push(b.issue_id.to_string()),
                None => {}
            }
        }
        self.writer
            .call(now(), move |tx| {
                for dep in &deps {
                    match tx.add_dependency(task_id, *dep) {
                        Ok(_) => {}
                        Err(StoreError::Invalid(reason)) => {
                            tx.event(task_id, EventKind::GateError, None, reason)?
                        }
                        Err(e) => return Err(e),
                    }
                }
                tx.set_external_deps(task_id, external.clone())
            })
            .await?;
        self.wake.notify_waiters();
        Ok(())
    }

    /// Re-asks the tracker for every task waiting on an external dependency.
    pub async fn recheck_external_dependencies(self: &Arc<Self>) {
        let waiting = self.store.read(|rx| rx.deps_waiting_tasks());
        for id in waiting.unwrap_or_default() {
            let has_external = self
                .store
                .read(|rx| rx.task(id))
                .ok()
                .flatten()
                .is_some_and(|t| !t.external_deps.is_empty());
            if has_external && let Err(e) = self.refresh_dependencies(id).await {
                tracing::warn!(task = id, error = %e, "re-checking external dependencies failed");
            }
        }
    }

    /// A pull request a human closed without merging: recorded on the task
    /// of its branch.
    pub async fn pull_request_closed(
        self: &Arc<Self>,
        repo: &str,
        branch: &str,
        number: u64,
    ) -> Result<bool, RuntimeError> {
        let (repo, branch) = (repo.to_owned(), branch.to_owned());
        let found = self
            .store
            .read(|rx| rx.find_live_by_branch(&repo, &branch))?;
        let Some(id) = found else { return Ok(false) };
        self.writer
            .call(now(), move |tx| {
                tx.event(
                    id,
                    EventKind::PrClosed,
                    None,
                    format!("pull request #{number} closed without merge by a human"),
                )
            })
            .await?;
        Ok(true)
    }
}
