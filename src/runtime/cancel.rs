//! The cancel driver: does the IO of each STOP step (SPEC §7.1) and records
//! the next step in the store after each one, so a crash between any two
//! steps resumes where it stopped. Steps 5–7 and 9 never prevent finalize:
//! their failures become cleanup debt, retried by the reaper.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::job::event;
use super::{Runtime, RuntimeError, now};
use crate::cancel::{self, StopAnswer};
use crate::domain::ids::tombstone;
use crate::domain::{CancelStep, JobStatus};
use crate::forge::BranchDelete;
use crate::store::{EventKind, Task};

/// Test-only fault injection (TC-S13): when this variable names a cancel
/// step, the process aborts right after that step is recorded.
pub const CRASH_AFTER_STEP_VAR: &str = "ORCH_TEST_CRASH_AFTER_CANCEL_STEP";

impl Runtime {
    /// The one entry point of every STOP trigger in a running orch: records
    /// the request and starts the driver.
    pub async fn stop(self: &Arc<Self>, task_id: u64) -> Result<StopAnswer, RuntimeError> {
        let enabled = self.settings.gates().stop_enabled;
        let answer = self
            .writer
            .call(now(), move |tx| cancel::request(tx, task_id, enabled))
            .await?;
        if matches!(
            answer,
            StopAnswer::Accepted { .. } | StopAnswer::AlreadyRequested { .. }
        ) {
            self.kick_cancel(task_id);
        }
        Ok(answer)
    }

    /// Runs the cancel driver of a task unless one is running; if one is, it
    /// runs once more when it ends.
    pub fn kick_cancel(self: &Arc<Self>, task_id: u64) {
        {
            let mut active = self.cancels.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(again) = active.get_mut(&task_id) {
                *again = true;
                return;
            }
            active.insert(task_id, false);
        }
        let rt = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = drive(&rt, task_id).await {
                    tracing::warn!(task_id, error = %e, "cancel step failed; it is retried by the reaper");
                }
                let mut active = rt.cancels.lock().unwrap_or_else(|p| p.into_inner());
                if active.get(&task_id) == Some(&true) {
                    active.insert(task_id, false);
                    continue;
                }
                active.remove(&task_id);
                break;
            }
        });
    }
}

/// Drives one task's cancel from its recorded step to its end, or to the
/// point where it must wait (a critical job).
pub async fn drive(rt: &Arc<Runtime>, task_id: u64) -> Result<(), RuntimeError> {
    loop {
        let Some(task) = rt.store.read(|rx| rx.task(task_id))? else {
            return Ok(());
        };
        let Some(c) = task.cancel.clone() else {
            return Ok(());
        };
        if c.resolution.is_some() {
            return Ok(());
        }
        let step = c.step;
        let next = match step {
            CancelStep::Requested | CancelStep::Deferred => {
                if critical_running(rt, task_id)? {
                    if step == CancelStep::Requested {
                        rt.writer
                            .call(now(), move |tx| {
                                tx.event(
                                    task_id,
                                    EventKind::StopDeferred,
                                    None,
                                    "a job is inside its critical window",
                                )?;
                                tx.set_cancel_step(task_id, CancelStep::Deferred)
                            })
                            .await?;
                    }
                    return Ok(());
                }
                cancel::after(step)
            }
            CancelStep::StopAgent => {
                stop_agents(rt, &task).await?;
                cancel::after(step)
            }
            CancelStep::CancelJobs => {
                rt.writer
                    .call(now(), move |tx| {
                        tx.cancel_jobs(task_id)?;
                        tx.set_cancel_step(task_id, CancelStep::PreserveDocs)
                    })
                    .await?;
                crash_hook(rt, step);
                continue;
            }
            CancelStep::PreserveDocs => match preserve_docs(rt, &task).await {
                Ok(()) => cancel::after(step),
                Err(e) => {
                    // Without the archive the worktree must stay: both wait
                    // as debt, and the cancel goes on.
                    let msg = e.to_string();
                    rt.writer
                        .call(now(), move |tx| {
                            tx.debt_failed(task_id, "preserve_docs", &msg, false)?;
                            tx.debt_failed(
                                task_id,
                                "remove_worktree",
                                "waits for the docs archive",
                                false,
                            )
                        })
                        .await?;
                    CancelStep::DeleteRemoteBranch
                }
            },
            CancelStep::RemoveWorktree => {
                if let Err(e) = remove_worktree(rt, &task).await {
                    let msg = e.to_string();
                    rt.writer
                        .call(now(), move |tx| {
                            tx.debt_failed(task_id, "remove_worktree", &msg, false)
                        })
                        .await?;
                }
                cancel::after(step)
            }
            CancelStep::DeleteRemoteBranch => {
                if let Err((e, permanent)) = delete_remote_branch(rt, &task).await {
                    rt.writer
                        .call(now(), move |tx| {
                            tx.debt_failed(task_id, "delete_remote_branch", &e, permanent)
                        })
                        .await?;
                }
                cancel::after(step)
            }
            CancelStep::Finalize => {
                // Step 9 is queued as debt in the finalize transaction, so a
                // crash right after finalize still tells the tracker.
                let tell = rt.plane.is_some()
                    && task.plane_issue_id.is_some()
                    && task.plane_project_id.is_some();
                rt.writer
                    .call(now(), move |tx| {
                        tx.finalize_cancel(task_id)?;
                        if tell {
                            tx.debt_due(task_id, "tell_tracker")?;
                        }
                        Ok(())
                    })
                    .await?;
                // The repo's next task may be claimable now.
                rt.wake.notify_waiters();
                crash_hook(rt, step);
                if tell {
                    let debts = rt.store.read(|rx| rx.debts_of(task_id))?;
                    for d in debts.into_iter().filter(|d| d.what == "tell_tracker") {
                        settle(rt, d).await?;
                    }
                }
                return Ok(());
            }
            CancelStep::TellTracker | CancelStep::Finished => return Ok(()),
        };
        rt.writer
            .call(now(), move |tx| tx.set_cancel_step(task_id, next))
            .await?;
        crash_hook(rt, step);
    }
}

fn crash_hook(rt: &Runtime, done: CancelStep) {
    if rt.env.get(CRASH_AFTER_STEP_VAR).as_deref() == Some(done.as_str()) {
        tracing::error!(
            step = done.as_str(),
            "test fault injection: aborting after this cancel step"
        );
        std::process::abort();
    }
}

fn critical_running(rt: &Runtime, task_id: u64) -> Result<bool, RuntimeError> {
    let jobs = rt.store.read(|rx| rx.jobs_of(task_id))?;
    Ok(jobs
        .iter()
        .any(|j| j.status == JobStatus::Running && j.critical_since.is_some()))
}

/// Step 3: every running agent of the task dies, its whole tree with it. An
/// agent of this process is stopped by its worker; one of an earlier boot
/// is stopped here, verified by pid and start time.
async fn stop_agents(rt: &Arc<Runtime>, task: &Task) -> Result<(), RuntimeError> {
    let jobs = rt.store.read(|rx| rx.jobs_of(task.id))?;
    let grace = rt.settings.stop_grace;
    for job in jobs.into_iter().filter(|j| j.status == JobStatus::Running) {
        if rt.stop_job(job.id) {
            // The worker stops the tree with the grace and then lets go of
            // the job; wait for that, with a margin for the SIGKILL.
            let deadline = Instant::now() + grace + Duration::from_secs(5);
            while rt.is_running(job.id) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        } else if let (Some(pid), Some(start)) = (job.pid, job.pid_start) {
            let report = crate::agent::stop_tree(pid, start, grace).await?;
            if !report.terminated.is_empty() {
                event(
                    rt,
                    task.id,
                    EventKind::AgentSignalled,
                    Some(job.id),
                    format!("pid {pid}: {:?}", report.outcome),
                )
                .await;
            }
        }
    }
    Ok(())
}

/// The archive of a task's docs: `<data dir>/archive/<tombstoned key>/docs/`.
pub fn archive_dir(data_dir: &Path, task: &Task) -> PathBuf {
    let key = crate::domain::ids::untombstone(&task.work_item_id).unwrap_or(&task.work_item_id);
    data_dir
        .join("archive")
        .join(tombstone(key, task.id))
        .join("docs")
}

/// Step 5: copies `docs/tasks/<WI>/` out of the worktree. Only regular files
/// are copied: a symlink an agent planted there is never followed.
async fn preserve_docs(rt: &Arc<Runtime>, task: &Task) -> Result<(), RuntimeError> {
    let key = crate::domain::ids::untombstone(&task.work_item_id)
        .unwrap_or(&task.work_item_id)
        .to_owned();
    let repo = crate::domain::RepoName::parse(&task.repo)?;
    let worktree = rt.git.worktree_path(&repo, Path::new(&task.worktree))?;
    let src = worktree.join("docs").join("tasks").join(&key);
    let dst = archive_dir(&rt.settings.data_dir, task);
    let copied = tokio::task::spawn_blocking(move || copy_regular_files(&src, &dst))
        .await
        .map_err(|e| RuntimeError::Other(e.to_string()))?
        .map_err(|e| RuntimeError::Other(format!("archiving the docs: {e}")))?;
    event(
        rt,
        task.id,
        EventKind::DocsArchived,
        None,
        format!("{copied} files"),
    )
    .await;
    Ok(())
}

fn copy_regular_files(src: &Path, dst: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dst)?;
    let entries = match std::fs::read_dir(src) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut n = 0;
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        let to = dst.join(entry.file_name());
        if kind.is_dir() {
            n += copy_regular_files(&entry.path(), &to)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &to)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Step 6: the worktree (changes discarded, the docs being archived) and
/// the local feature branch recorded on this task, and nothing else.
pub(super) async fn remove_worktree(rt: &Arc<Runtime>, task: &Task) -> Result<(), RuntimeError> {
    let cfg = rt
        .settings
        .repo(&task.repo)
        .cloned()
        .ok_or_else(|| RuntimeError::Other(format!("repo {} is not configured", task.repo)))?;
    let (git, repo, branch, rel) = (
        rt.git.clone(),
        cfg.name.clone(),
        task.branch.clone(),
        PathBuf::from(&task.worktree),
    );
    tokio::task::spawn_blocking(move || -> Result<(), RuntimeError> {
        let wt = git.worktree_path(&repo, &rel)?;
        git.remove_worktree(&repo, &wt)?;
        git.delete_local_branch(&repo, &branch, &cfg.base_branch, None)?;
        Ok(())
    })
    .await
    .map_err(|e| RuntimeError::Other(e.to_string()))??;
    event(
        rt,
        task.id,
        EventKind::WorktreeRemoved,
        None,
        task.worktree.clone(),
    )
    .await;
    Ok(())
}

/// Step 7: the remote feature branch recorded on this task. A branch
/// already gone counts as deleted; a refusal that will not change is
/// reported as permanent.
pub(super) async fn delete_remote_branch(
    rt: &Arc<Runtime>,
    task: &Task,
) -> Result<(), (String, bool)> {
    let forge = rt.forge(&task.repo).map_err(|e| (e.to_string(), false))?;
    match forge.delete_remote_branch(&task.branch).await {
        Ok(BranchDelete::Deleted) => {
            event(
                rt,
                task.id,
                EventKind::BranchDeleted,
                None,
                format!("remote {}", task.branch),
            )
            .await;
            Ok(())
        }
        Ok(BranchDelete::AlreadyGone) => {
            event(
                rt,
                task.id,
                EventKind::BranchDeleted,
                None,
                format!("remote {} (already gone)", task.branch),
            )
            .await;
            Ok(())
        }
        Ok(BranchDelete::Refused(reason)) => Err((format!("refused: {reason}"), true)),
        Err(e) => Err((e.to_string(), !e.is_transient())),
    }
}

/// Retries the cleanup debts that are due (called by the reaper).
pub async fn settle_debts(rt: &Arc<Runtime>) -> Result<(), RuntimeError> {
    let at = now();
    let due: Vec<_> = rt
        .store
        .read(|rx| rx.debts())?
        .into_iter()
        .filter(|d| d.next_at <= at)
        .collect();
    for d in due {
        // The worktree waits for its docs to be archived.
        let waits = d.what == "remove_worktree"
            && rt
                .store
                .read(|rx| rx.debts_of(d.task_id))?
                .iter()
                .any(|x| x.what == "preserve_docs");
        if !waits {
            settle(rt, d).await?;
        }
    }
    Ok(())
}

/// One try at one debt; the outcome is recorded.
async fn settle(rt: &Arc<Runtime>, d: crate::store::Debt) -> Result<(), RuntimeError> {
    let Some(task) = rt.store.read(|rx| rx.task(d.task_id))? else {
        return Ok(());
    };
    let result: Result<(), (String, bool)> = match d.what.as_str() {
        "preserve_docs" => preserve_docs(rt, &task)
            .await
            .map_err(|e| (e.to_string(), false)),
        "remove_worktree" => remove_worktree(rt, &task)
            .await
            .map_err(|e| (e.to_string(), false)),
        "delete_remote_branch" => delete_remote_branch(rt, &task).await,
        "tell_tracker" => tell_tracker(rt, &task).await,
        _ => Err((format!("no way to settle {}", d.what), true)),
    };
    let (id, what) = (d.task_id, d.what.clone());
    match result {
        Ok(()) => {
            rt.writer
                .call(now(), move |tx| tx.debt_settled(id, &what))
                .await?
        }
        Err((e, permanent)) => {
            rt.writer
                .call(now(), move |tx| tx.debt_failed(id, &what, &e, permanent))
                .await?
        }
    }
    Ok(())
}

/// Step 9: a comment on the tracker issue saying what happened.
async fn tell_tracker(rt: &Arc<Runtime>, task: &Task) -> Result<(), (String, bool)> {
    let (Some(client), Some(issue), Some(project)) = (
        rt.plane.clone(),
        task.plane_issue_id.clone(),
        task.plane_project_id.clone(),
    ) else {
        return Ok(());
    };
    let issue = crate::domain::ids::untombstone(&issue)
        .unwrap_or(&issue)
        .to_owned();
    let issue = crate::domain::PlaneIssueId::parse(&issue).map_err(|e| (e.to_string(), true))?;
    let project = uuid::Uuid::parse_str(&project).map_err(|e| (e.to_string(), true))?;
    let key = crate::domain::ids::untombstone(&task.work_item_id).unwrap_or(&task.work_item_id);
    let text = format!(
        "orch stopped {key}: its agent was stopped, its jobs cancelled, its worktree and feature branch {} removed; the docs are archived. Moving the issue to the start state again starts a new task from scratch.",
        task.branch
    );
    client
        .add_comment(project, &issue, &text)
        .await
        .map_err(|e| (e.to_string(), !e.is_transient()))
}
