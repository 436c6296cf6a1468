//! The JSON shapes of tasks, jobs and events (SPEC §9.2), built from store
//! records. The CLI prints them and the HTTP API returns them; `schema/`
//! holds their JSON Schemas.

use serde::Serialize;

use crate::clock::rfc3339;
use crate::store::{Event, Job, Task};

#[derive(Debug, Clone, Serialize)]
pub struct BlockedView {
    pub reason: String,
    pub since: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CancelView {
    pub requested_at: String,
    pub step: &'static str,
    pub resolution: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    pub task_id: u64,
    pub work_item_id: String,
    pub plane_issue_id: Option<String>,
    pub repo: String,
    pub branch: String,
    pub worktree: String,
    pub stage: &'static str,
    pub title: String,
    pub description: String,
    pub blocked: Option<BlockedView>,
    pub cancel: Option<CancelView>,
    pub depends_on: Vec<String>,
    pub created_at: String,
    pub admitted_at: Option<String>,
    pub cancelled_at: Option<String>,
}

impl TaskView {
    /// `deps` are the work item ids of the task's dependencies.
    pub fn new(t: &Task, deps: Vec<String>) -> Self {
        Self {
            task_id: t.id,
            work_item_id: t.work_item_id.clone(),
            plane_issue_id: t.plane_issue_id.clone(),
            repo: t.repo.clone(),
            branch: t.branch.clone(),
            worktree: t.worktree.clone(),
            stage: t.stage.as_str(),
            title: t.title.clone(),
            description: t.description.clone(),
            blocked: t.blocked.as_ref().map(|b| BlockedView {
                reason: b.reason.clone(),
                since: rfc3339(b.since),
            }),
            cancel: t.cancel.as_ref().map(|c| CancelView {
                requested_at: rfc3339(c.requested_at),
                step: c.step.as_str(),
                resolution: c.resolution.map(|r| r.as_str()),
            }),
            depends_on: deps,
            created_at: rfc3339(t.created_at),
            admitted_at: t.admitted_at.map(rfc3339),
            cancelled_at: t.cancelled_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub job_id: u64,
    pub task_id: u64,
    pub role: &'static str,
    pub status: &'static str,
    pub attempt: u32,
    pub pid: Option<u32>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub critical_since: Option<String>,
    pub reason: Option<String>,
}

impl From<&Job> for JobView {
    fn from(j: &Job) -> Self {
        Self {
            job_id: j.id,
            task_id: j.task_id,
            role: j.role.as_str(),
            status: j.status.as_str(),
            attempt: j.attempt,
            pid: j.pid,
            started_at: j.started_at.map(rfc3339),
            finished_at: j.finished_at.map(rfc3339),
            critical_since: j.critical_since.map(rfc3339),
            reason: j.reason.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    pub seq: u64,
    pub at: String,
    pub kind: &'static str,
    pub job_id: Option<u64>,
    pub detail: String,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        Self {
            seq: e.seq,
            at: rfc3339(e.at),
            kind: e.kind.as_str(),
            job_id: e.job_id,
            detail: e.detail.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Predecessor {
    pub task_id: u64,
    pub work_item_id: String,
    pub cancelled_at: Option<String>,
}

/// `GET /api/tasks/{key}` and `orch task show`.
#[derive(Debug, Clone, Serialize)]
pub struct TaskDetail {
    pub task: TaskView,
    pub jobs: Vec<JobView>,
    pub events: Vec<EventView>,
    pub predecessors: Vec<Predecessor>,
}

impl TaskDetail {
    /// Reads a task with its jobs, events and tombstoned predecessors.
    pub fn read(
        rx: &crate::store::ReadTx,
        id: u64,
    ) -> Result<Option<Self>, crate::store::StoreError> {
        let Some(t) = rx.task(id)? else {
            return Ok(None);
        };
        let jobs = rx.jobs_of(id)?;
        let events = rx.events_of(id)?;
        let key = crate::domain::ids::untombstone(&t.work_item_id)
            .unwrap_or(&t.work_item_id)
            .to_owned();
        let mut predecessors = Vec::new();
        for pid in rx.predecessors(&key)? {
            if pid != id
                && let Some(p) = rx.task(pid)?
            {
                predecessors.push(Predecessor {
                    task_id: p.id,
                    work_item_id: p.work_item_id,
                    cancelled_at: p.cancelled_at.map(rfc3339),
                });
            }
        }
        Ok(Some(Self {
            task: TaskView::new(&t, deps_of(rx, &t)?),
            jobs: jobs.iter().map(JobView::from).collect(),
            events: events.iter().map(EventView::from).collect(),
            predecessors,
        }))
    }
}

/// The work item ids of a task's dependencies.
pub fn deps_of(
    rx: &crate::store::ReadTx,
    t: &Task,
) -> Result<Vec<String>, crate::store::StoreError> {
    let mut out = Vec::new();
    for d in &t.deps {
        if let Some(dep) = rx.task(*d)? {
            out.push(dep.work_item_id);
        }
    }
    out.extend(t.external_deps.iter().cloned());
    Ok(out)
}
