//! Task operations: creation with natural keys and dependencies, stage and
//! blocked changes, the cancel request, and the finalize that tombstones the
//! keys (SPEC §4, §5.3, §7.5).

use redb::ReadableTable;

use super::error::StoreError;
use super::records::{Blocked, Cancel, EventKind, Task};
use super::tx::{ReadTx, Tx};
use crate::domain::ids::{TOMBSTONE_MARK, tombstone};
use crate::domain::{
    CancelResolution, CancelStep, JobStatus, PlaneIssueId, RepoName, Stage, WorkItemId, task_names,
};

/// What a new task is made of.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub work_item_id: WorkItemId,
    pub plane_issue_id: Option<PlaneIssueId>,
    pub repo: RepoName,
    pub title: String,
    pub description: String,
    /// Keys of tasks this one waits for (resolved like API keys).
    pub depends_on: Vec<String>,
}

/// How a key given by a human or the tracker names a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskKey {
    Id(u64),
    Plane(PlaneIssueId),
    WorkItem(String),
}

impl TaskKey {
    /// All digits → task id; UUID syntax → tracker issue id; otherwise a
    /// work item id (validated by the grammar unless it is a tombstone).
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse()
                .map(TaskKey::Id)
                .map_err(|_| StoreError::Invalid(format!("task id {s:?} is out of range")));
        }
        if let Ok(p) = PlaneIssueId::parse(s) {
            return Ok(TaskKey::Plane(p));
        }
        let base = crate::domain::ids::untombstone(s).unwrap_or(s);
        WorkItemId::parse(base)?;
        Ok(TaskKey::WorkItem(s.to_owned()))
    }
}

/// The answer to a cancel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelRequest {
    /// The request was recorded now.
    Requested,
    /// A cancel was already requested: nothing changed.
    AlreadyRequested,
    /// The task is terminal: nothing changed.
    Terminal,
}

impl Tx<'_> {
    /// Creates a task in `created`. Fails if a live task holds either key,
    /// if a dependency is unknown, or on invalid names.
    pub fn create_task(&mut self, new: NewTask) -> Result<Task, StoreError> {
        let wi = new.work_item_id.as_str();
        if let Some(id) = self.key_work_item.get(wi)?.map(|v| v.value()) {
            return Err(StoreError::Conflict(format!(
                "{wi} already names live task {id}"
            )));
        }
        if let Some(p) = &new.plane_issue_id
            && let Some(id) = self.key_plane.get(p.as_str())?.map(|v| v.value())
        {
            return Err(StoreError::Conflict(format!(
                "plane issue {p} already names live task {id}"
            )));
        }
        let mut deps = Vec::new();
        for key in &new.depends_on {
            let id = resolve(
                &self.key_work_item,
                &self.key_plane,
                &self.tasks,
                &TaskKey::parse(key)?,
            )?
            .ok_or_else(|| StoreError::Invalid(format!("unknown dependency {key:?}")))?;
            if !deps.contains(&id) {
                deps.push(id);
            }
        }
        let incarnation = 1 + predecessors(&self.key_work_item, wi)?.len() as u32;
        let (branch, worktree) = task_names(&new.repo, &new.work_item_id, incarnation);
        let id = self.next_id("task_seq")?;
        let task = Task {
            id,
            work_item_id: wi.to_owned(),
            plane_issue_id: new.plane_issue_id.map(String::from),
            plane_project_id: None,
            repo: new.repo.to_string(),
            incarnation,
            branch,
            worktree,
            stage: Stage::Created,
            stage_started_at: self.now,
            stage_base: None,
            title: new.title,
            description: new.description,
            blocked: None,
            failures: Vec::new(),
            review_rounds: 0,
            created_at: self.now,
            admitted_at: None,
            cancel: None,
            cancelled_at: None,
            deps,
            external_deps: Vec::new(),
        };
        self.put_task(None, &task)?;
        self.event(
            id,
            EventKind::Created,
            None,
            format!("{} in {} ({})", task.work_item_id, task.repo, task.branch),
        )?;
        Ok(task)
    }

    /// Makes `task_id` wait for `dep_id`. Refuses self-dependencies, cycles
    /// and terminal tasks.
    pub fn add_dependency(&mut self, task_id: u64, dep_id: u64) -> Result<Task, StoreError> {
        let old = self.task(task_id)?;
        let dep = self.task(dep_id)?;
        if old.is_terminal() {
            return Err(StoreError::Conflict(format!(
                "task {task_id} is {}",
                old.stage
            )));
        }
        if task_id == dep_id || self.reaches(dep_id, task_id)? {
            return Err(StoreError::Invalid(format!(
                "a dependency of {} on {} would make a cycle",
                old.work_item_id, dep.work_item_id
            )));
        }
        if old.deps.contains(&dep_id) {
            return Ok(old);
        }
        let mut new = old.clone();
        new.deps.push(dep_id);
        self.put_task(Some(&old), &new)?;
        self.event(
            task_id,
            EventKind::DependencyAdded,
            None,
            format!("waits for {}", dep.work_item_id),
        )?;
        Ok(new)
    }

    /// Records the tracker project the task's issue belongs to.
    pub fn set_plane_project(
        &mut self,
        task_id: u64,
        project_id: &str,
    ) -> Result<Task, StoreError> {
        crate::domain::PlaneIssueId::parse(project_id)?;
        self.update_task(task_id, |t| {
            t.plane_project_id = Some(project_id.to_owned())
        })
    }

    /// Replaces the task's external dependencies: tracker issues orch has
    /// never seen, not yet reported completed or cancelled.
    pub fn set_external_deps(
        &mut self,
        task_id: u64,
        deps: Vec<String>,
    ) -> Result<Task, StoreError> {
        let old = self.task(task_id)?;
        if old.external_deps == deps {
            return Ok(old);
        }
        let mut new = old.clone();
        new.external_deps = deps;
        self.put_task(Some(&old), &new)?;
        self.event(
            task_id,
            EventKind::DependencyAdded,
            None,
            format!("external: {}", new.external_deps.join(", ")),
        )?;
        Ok(new)
    }

    /// Whether `to` is reachable from `from` along dependency edges.
    fn reaches(&self, from: u64, to: u64) -> Result<bool, StoreError> {
        let mut stack = vec![from];
        let mut seen = std::collections::HashSet::new();
        while let Some(id) = stack.pop() {
            if id == to {
                return Ok(true);
            }
            if seen.insert(id) {
                stack.extend(self.task(id)?.deps);
            }
        }
        Ok(false)
    }

    /// Moves a live task to another pipeline stage. A task past `analysis`
    /// counts as admitted. `cancelled` is reached only through finalize.
    pub fn set_stage(&mut self, task_id: u64, stage: Stage) -> Result<Task, StoreError> {
        let old = self.task(task_id)?;
        if old.is_terminal() {
            return Err(StoreError::Conflict(format!(
                "task {task_id} is {}",
                old.stage
            )));
        }
        if stage == Stage::Cancelled {
            return Err(StoreError::Invalid(
                "only a cancel can set the stage cancelled".into(),
            ));
        }
        let mut new = old.clone();
        new.stage = stage;
        new.stage_started_at = self.now;
        new.stage_base = None;
        if stage > Stage::Analysis && new.admitted_at.is_none() {
            new.admitted_at = Some(self.now);
            self.event(task_id, EventKind::Admitted, None, "past analysis")?;
        }
        self.put_task(Some(&old), &new)?;
        self.event(
            task_id,
            EventKind::StageAdvanced,
            None,
            format!("{}→{}", old.stage, stage),
        )?;
        Ok(new)
    }

    /// Sets or clears `blocked`.
    pub fn set_blocked(
        &mut self,
        task_id: u64,
        reason: Option<String>,
    ) -> Result<Task, StoreError> {
        let old = self.task(task_id)?;
        if old.is_terminal() {
            return Err(StoreError::Conflict(format!(
                "task {task_id} is {}",
                old.stage
            )));
        }
        let mut new = old.clone();
        match reason {
            Some(r) => {
                self.event(task_id, EventKind::Blocked, None, r.clone())?;
                new.blocked = Some(Blocked {
                    reason: r,
                    since: self.now,
                });
            }
            None if old.blocked.is_some() => {
                self.event(task_id, EventKind::Unblocked, None, "")?;
                new.blocked = None;
            }
            None => return Ok(old),
        }
        self.put_task(Some(&old), &new)?;
        Ok(new)
    }

    /// Replaces a task record wholesale through the indexes. For the
    /// pipeline's counters (failures, review rounds), which no index reads.
    pub fn update_task(
        &mut self,
        task_id: u64,
        f: impl FnOnce(&mut Task),
    ) -> Result<Task, StoreError> {
        let old = self.task(task_id)?;
        let mut new = old.clone();
        f(&mut new);
        if new.id != old.id
            || new.work_item_id != old.work_item_id
            || new.plane_issue_id != old.plane_issue_id
        {
            return Err(StoreError::Invalid(
                "a task's id and keys change only through finalize".into(),
            ));
        }
        if new.stage != old.stage || new.cancel != old.cancel || new.deps != old.deps {
            return Err(StoreError::Invalid(
                "stage, cancel and deps change only through their operations".into(),
            ));
        }
        self.put_task(Some(&old), &new)?;
        Ok(new)
    }

    /// Step 1 of a cancel: records the request. From now on no job of the
    /// task is claimable and none is enqueued.
    pub fn request_cancel(&mut self, task_id: u64) -> Result<CancelRequest, StoreError> {
        let old = self.task(task_id)?;
        if old.is_terminal() {
            return Ok(CancelRequest::Terminal);
        }
        if old.cancel.is_some() {
            return Ok(CancelRequest::AlreadyRequested);
        }
        let mut new = old.clone();
        new.cancel = Some(Cancel {
            requested_at: self.now,
            step: CancelStep::Requested,
            resolution: None,
        });
        self.put_task(Some(&old), &new)?;
        self.event(task_id, EventKind::StopRequested, None, "")?;
        Ok(CancelRequest::Requested)
    }

    /// Records the step a cancel has reached, so a restart resumes there.
    pub fn set_cancel_step(&mut self, task_id: u64, step: CancelStep) -> Result<Task, StoreError> {
        let old = self.task(task_id)?;
        let Some(cancel) = &old.cancel else {
            return Err(StoreError::Conflict(format!(
                "task {task_id} has no cancel requested"
            )));
        };
        let mut new = old.clone();
        new.cancel = Some(Cancel {
            step,
            ..cancel.clone()
        });
        self.put_task(Some(&old), &new)?;
        Ok(new)
    }

    /// Finalize: in one transaction, every live job cancelled, stage
    /// `cancelled`, both natural keys tombstoned, and the repo's serial gate
    /// released to the next waiting task.
    pub fn finalize_cancel(&mut self, task_id: u64) -> Result<Task, StoreError> {
        let old = self.task(task_id)?;
        if old.stage == Stage::Cancelled {
            return Ok(old);
        }
        if old.is_terminal() {
            return Err(StoreError::Conflict(format!(
                "task {task_id} is {}",
                old.stage
            )));
        }
        self.cancel_jobs(task_id)?;
        let old = self.task(task_id)?;
        let mut new = old.clone();
        new.stage = Stage::Cancelled;
        new.cancelled_at = Some(self.now);
        let requested_at = old.cancel.as_ref().map_or(self.now, |c| c.requested_at);
        new.cancel = Some(Cancel {
            requested_at,
            step: CancelStep::Finalize,
            resolution: Some(CancelResolution::Cancelled),
        });
        new.work_item_id = tombstone(&old.work_item_id, task_id);
        new.plane_issue_id = old.plane_issue_id.as_deref().map(|p| tombstone(p, task_id));
        self.put_task(Some(&old), &new)?;
        self.event(
            task_id,
            EventKind::Cancelled,
            None,
            format!("{}→cancelled", old.stage),
        )?;
        self.event(
            task_id,
            EventKind::Tombstoned,
            None,
            new.work_item_id.clone(),
        )?;
        Ok(new)
    }

    /// Ends a deferred cancel whose deploy succeeded: the task is done and the
    /// STOP is recorded as superseded.
    pub fn supersede_cancel(&mut self, task_id: u64) -> Result<Task, StoreError> {
        let old = self.task(task_id)?;
        let mut new = old.clone();
        let Some(cancel) = &old.cancel else {
            return Err(StoreError::Conflict(format!(
                "task {task_id} has no cancel requested"
            )));
        };
        new.cancel = Some(Cancel {
            resolution: Some(CancelResolution::Superseded),
            step: CancelStep::Finished,
            ..cancel.clone()
        });
        if !old.is_terminal() {
            new.stage = Stage::Done;
        }
        self.put_task(Some(&old), &new)?;
        self.event(
            task_id,
            EventKind::Superseded,
            None,
            "the deploy succeeded inside its critical window",
        )?;
        Ok(new)
    }

    /// The task a key names: the live one, else its newest predecessor.
    pub fn resolve(&self, key: &TaskKey) -> Result<Option<u64>, StoreError> {
        resolve(&self.key_work_item, &self.key_plane, &self.tasks, key)
    }

    /// The live task of either natural key (the lookup ORs on both).
    pub fn find_live(
        &self,
        work_item_id: Option<&str>,
        plane_issue_id: Option<&str>,
    ) -> Result<Option<u64>, StoreError> {
        if let Some(k) = work_item_id
            && let Some(v) = self.key_work_item.get(k)?
        {
            return Ok(Some(v.value()));
        }
        if let Some(k) = plane_issue_id
            && let Some(v) = self.key_plane.get(k)?
        {
            return Ok(Some(v.value()));
        }
        Ok(None)
    }

    /// A task's audit log, oldest first.
    pub fn events_of(&self, task_id: u64) -> Result<Vec<crate::store::Event>, StoreError> {
        let mut out = Vec::new();
        for row in self.events.range((task_id, 0)..=(task_id, u64::MAX))? {
            out.push(super::codec::decode(row?.1.value())?);
        }
        Ok(out)
    }

    /// Every job of a task, oldest first.
    pub fn jobs_of(&self, task_id: u64) -> Result<Vec<crate::store::Job>, StoreError> {
        super::tx::jobs_of(&self.jobs_by_task, &self.jobs, task_id)
    }

    /// Whether any job of the task is queued or running for this role.
    pub fn has_live_job(
        &self,
        task_id: u64,
        role: crate::domain::Role,
    ) -> Result<bool, StoreError> {
        Ok(super::tx::jobs_of(&self.jobs_by_task, &self.jobs, task_id)?
            .iter()
            .any(|j| j.role == role && matches!(j.status, JobStatus::Queued | JobStatus::Running)))
    }
}

impl ReadTx {
    pub fn resolve(&self, key: &TaskKey) -> Result<Option<u64>, StoreError> {
        resolve(&self.key_work_item, &self.key_plane, &self.tasks, key)
    }

    /// The live task of a tracker issue.
    pub fn find_live_plane(&self, plane_issue_id: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.key_plane.get(plane_issue_id)?.map(|v| v.value()))
    }

    /// The unfinished task of `repo` whose recorded branch is `branch`.
    pub fn find_live_by_branch(&self, repo: &str, branch: &str) -> Result<Option<u64>, StoreError> {
        for row in self.repo_tasks.range((repo, 0)..=(repo, u64::MAX))? {
            let id = row?.0.value().1;
            if self.task(id)?.is_some_and(|t| t.branch == branch) {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Unfinished tasks waiting on a dependency.
    pub fn deps_waiting_tasks(&self) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        for row in self.deps_waiting.iter()? {
            out.push(row?.0.value());
        }
        Ok(out)
    }

    /// Every tombstoned predecessor of a work item id, oldest first.
    pub fn predecessors(&self, work_item_id: &str) -> Result<Vec<u64>, StoreError> {
        predecessors(&self.key_work_item, work_item_id)
    }
}

/// Key resolution (SPEC §9.2): the live task wins; with none, the newest
/// tombstoned predecessor.
fn resolve(
    by_wi: &impl ReadableTable<&'static str, u64>,
    by_plane: &impl ReadableTable<&'static str, u64>,
    tasks: &impl ReadableTable<u64, &'static [u8]>,
    key: &TaskKey,
) -> Result<Option<u64>, StoreError> {
    match key {
        TaskKey::Id(id) => Ok(tasks.get(*id)?.map(|_| *id)),
        TaskKey::Plane(p) => match by_plane.get(p.as_str())? {
            Some(v) => Ok(Some(v.value())),
            None => Ok(predecessors(by_plane, p.as_str())?.last().copied()),
        },
        TaskKey::WorkItem(k) => match by_wi.get(k.as_str())? {
            Some(v) => Ok(Some(v.value())),
            None => Ok(predecessors(by_wi, k)?.last().copied()),
        },
    }
}

/// Task ids whose tombstoned key starts with `key::cancelled::`, by id.
fn predecessors(
    table: &impl ReadableTable<&'static str, u64>,
    key: &str,
) -> Result<Vec<u64>, StoreError> {
    let lo = format!("{key}{TOMBSTONE_MARK}");
    // ';' follows ':' in ASCII, so this bounds exactly the keys with the prefix.
    let hi = format!("{key}::cancelled:;");
    let mut ids = Vec::new();
    for row in table.range(lo.as_str()..hi.as_str())? {
        ids.push(row?.1.value());
    }
    ids.sort_unstable();
    Ok(ids)
}
