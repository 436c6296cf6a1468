//! Running one claimed job: prepare the worktree, run the agent (or the
//! deploy commands), keep the lease alive, gather the evidence the exit
//! checks read, and record the outcome through the pipeline in one fenced
//! transaction.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Notify;

use super::{RunningJob, Runtime, RuntimeError, now};
use crate::agent::{AgentCommand, AgentEnv, AgentOutcome, Passthrough, SpawnSpec, TaskVars};
use crate::config::RepoConfig;
use crate::domain::{RepoName, Role, Stage};
use crate::forge::MergeOutcome;
use crate::git::CommitId;
use crate::pipeline::checks::{self, ARTEFACTS, Evidence, Verdict};
use crate::pipeline::prompt::{PromptContext, default_template, render};
use crate::pipeline::{Decision, Outcome, apply};
use crate::store::{Completion, EventKind, Lease, StoreError, Task};

/// How a job's run ended, before it is recorded.
enum End {
    /// The job ran to its end; the pipeline decides what follows.
    Finished(Outcome),
    /// Not the job's fault (shutdown, cancel before the critical window):
    /// back to the queue, or cancelled if its task is cancelling.
    Interrupted(String),
    /// The job is no longer ours (fenced off, or stopped by a cancel): the
    /// store already says what happened to it.
    Lost,
}

/// Artefacts larger than this are read only up to it: the checks need to
/// know a file changed and parse small JSON and YAML, nothing more.
const ARTEFACT_CAP: u64 = 1 << 20;

pub async fn run(rt: &Arc<Runtime>, worker: &str, lease: Lease) {
    let end = match execute(rt, &lease).await {
        Ok(end) => end,
        Err(e) => {
            tracing::warn!(worker, job = lease.job_id, error = %e, "job could not run");
            End::Finished(Outcome::Failed(format!("orch could not run the job: {e}")))
        }
    };
    record(rt, &lease, end).await;
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, RuntimeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RuntimeError::Other(format!("blocking task failed: {e}")))?
}

/// What a job needs to know about where it runs.
struct Place {
    task: Task,
    repo: RepoName,
    cfg: RepoConfig,
    worktree: PathBuf,
    docs_rel: String,
    base: CommitId,
}

async fn prepare(rt: &Arc<Runtime>, lease: &Lease) -> Result<Place, RuntimeError> {
    let task = rt
        .store
        .read(|rx| rx.task(lease.task_id))?
        .ok_or_else(|| RuntimeError::Other(format!("task {} vanished", lease.task_id)))?;
    let cfg = rt.settings.repo(&task.repo).cloned().ok_or_else(|| {
        RuntimeError::Other(format!("repo {} is not configured in orch.toml", task.repo))
    })?;
    let repo = cfg.name.clone();
    let worktree = rt.git.worktree_path(&repo, Path::new(&task.worktree))?;
    let (git, r, c, b, w) = (
        rt.git.clone(),
        repo.clone(),
        cfg.clone(),
        task.branch.clone(),
        worktree.clone(),
    );
    let head = blocking(move || {
        if !w.exists() {
            git.ensure_mirror(&r, &c.remote)?;
        }
        git.add_worktree(&r, &c.base_branch, &b, &w)?;
        Ok(git.head(&w)?)
    })
    .await?;
    let base = match task
        .stage_base
        .as_deref()
        .and_then(|s| CommitId::from_hex(s.as_bytes()).ok())
    {
        Some(base) => base,
        None => {
            let hex = head.to_string();
            let id = task.id;
            rt.writer
                .call(now(), move |tx| {
                    tx.update_task(id, |t| t.stage_base = Some(hex.clone()))
                })
                .await?;
            head
        }
    };
    let docs_rel = format!("docs/tasks/{}", task.work_item_id);
    Ok(Place {
        task,
        repo,
        cfg,
        worktree,
        docs_rel,
        base,
    })
}

async fn execute(rt: &Arc<Runtime>, lease: &Lease) -> Result<End, RuntimeError> {
    let place = prepare(rt, lease).await?;
    if lease.role == Role::Deployer {
        return deploy(rt, lease, &place).await;
    }
    let before = read_artefacts(&place.worktree.join(&place.docs_rel));
    let job = rt
        .store
        .read(|rx| rx.job(lease.job_id))?
        .ok_or_else(|| RuntimeError::Other("job vanished".into()))?;
    let template = match rt
        .settings
        .roles
        .get(&lease.role)
        .and_then(|r| r.prompt.clone())
    {
        Some(path) => tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| RuntimeError::Other(format!("prompt template {}: {e}", path.display())))?,
        None => default_template(lease.role),
    };
    let t = &place.task;
    let prompt = render(
        &template,
        &PromptContext {
            task_id: t.id,
            work_item_id: t.work_item_id.clone(),
            title: t.title.clone(),
            description: t.description.clone(),
            repo: t.repo.clone(),
            branch: t.branch.clone(),
            stage: lease.stage.to_string(),
            docs_dir: place.docs_rel.clone(),
            note: job.note.clone().unwrap_or_default(),
        },
    );
    let argv = rt
        .settings
        .agent_command(lease.role)
        .ok_or_else(|| RuntimeError::Other(format!("no agent command for role {}", lease.role)))?;
    let command = AgentCommand::from_argv(argv, "agent command", &rt.builtin_exe)?;
    let env = agent_env(rt, lease, &place)?;
    let spec = SpawnSpec::new(
        command,
        &place.worktree,
        env,
        prompt,
        job_log(rt, lease.job_id),
    )
    .with_timeout(rt.settings.role_timeout(lease.role))
    .with_stop_grace(rt.settings.stop_grace);
    let outcome = match supervise(rt, lease, spec, false).await? {
        Ok(outcome) => outcome,
        Err(end) => return Ok(end),
    };
    if !outcome.is_success() {
        return Ok(End::Finished(Outcome::Failed(describe(outcome))));
    }
    let mut ev = Evidence {
        before,
        after: read_artefacts(&place.worktree.join(&place.docs_rel)),
        ..Evidence::default()
    };
    let (git, repo, cfg, branch, wt, base) = (
        rt.git.clone(),
        place.repo.clone(),
        place.cfg.clone(),
        t.branch.clone(),
        place.worktree.clone(),
        place.base,
    );
    let (commits, pushed) = blocking(move || {
        let commits = git.commits_since(&wt, base)?;
        let head = git.head(&wt)?;
        git.push_branch(&repo, &cfg.remote, &branch)?;
        let remote = git.remote_ref(&repo, &cfg.remote, &branch)?;
        Ok((commits, remote == Some(head)))
    })
    .await?;
    ev.commits_since_stage_start = commits;
    ev.pushed = pushed;
    if pushed {
        event(
            rt,
            t.id,
            EventKind::Pushed,
            Some(lease.job_id),
            format!("{} ({commits} commits in this stage)", t.branch),
        )
        .await;
    }
    let checks = lease.stage.transition().map_or(&[][..], |tr| tr.checks);
    let outcome = match checks::run_all(checks, &ev) {
        Ok(()) => Outcome::Passed,
        Err(reason) => match checks::review(&ev) {
            Ok(r) if lease.stage == Stage::Review && r.verdict == Verdict::ChangesRequested => {
                Outcome::ChangesRequested(r.comments_text())
            }
            _ => Outcome::Failed(reason),
        },
    };
    Ok(End::Finished(outcome))
}

/// The agent's allowlisted environment.
fn agent_env(rt: &Runtime, lease: &Lease, place: &Place) -> Result<AgentEnv, RuntimeError> {
    let passthrough = Passthrough::parse(&rt.settings.passthrough.join(","))?;
    let vars = TaskVars {
        task_id: place.task.id,
        work_item_id: &place.task.work_item_id,
        role: lease.role,
        stage: lease.stage,
        branch: &place.task.branch,
        docs_dir: &place.docs_rel,
        attempt: lease.attempt,
    };
    Ok(AgentEnv::build(|k| rt.env.get(k), &vars, &passthrough))
}

fn describe(o: AgentOutcome) -> String {
    match o {
        AgentOutcome::Exited(code) => format!("the agent exited with status {code}"),
        AgentOutcome::Signalled(sig) => format!("the agent was killed by signal {sig}"),
        AgentOutcome::TimedOut => "the agent timed out".into(),
    }
}

/// Runs a process for the job while keeping its lease alive. Returns its
/// outcome, or how the job ended without it (stopped, fenced, shutdown).
/// A critical process is never stopped by shutdown or STOP.
async fn supervise(
    rt: &Arc<Runtime>,
    lease: &Lease,
    spec: SpawnSpec,
    critical: bool,
) -> Result<Result<AgentOutcome, End>, RuntimeError> {
    let grace = rt.settings.stop_grace;
    let mut handle = crate::agent::spawn(spec).await?;
    let (job, attempt, pid, start) = (
        lease.job_id,
        lease.attempt,
        handle.pid(),
        handle.start_time(),
    );
    if let Err(e) = rt
        .writer
        .call(now(), move |tx| tx.set_process(job, attempt, pid, start))
        .await
    {
        tracing::warn!(job, error = %e, "job fenced off before its agent was recorded; stopping it");
        let _ = handle.stop(grace).await;
        return Ok(Err(End::Lost));
    }
    let stop = Arc::new(Notify::new());
    let _registration = Registration::new(rt, lease, stop.clone());
    let mut shutdown = rt.shutdown.subscribe();
    let mut beat = tokio::time::interval(rt.settings.heartbeat);
    beat.tick().await;
    let lease_ms = rt.lease_ms();
    let ended = loop {
        tokio::select! {
            outcome = handle.wait() => break Ok(outcome?),
            _ = beat.tick() => {
                if let Err(e) = rt.writer.call(now(), move |tx| tx.heartbeat(job, attempt, lease_ms)).await {
                    if matches!(e, StoreError::Fenced { .. }) && !critical {
                        tracing::warn!(job, "heartbeat fenced off: the job is no longer ours; stopping the agent");
                        break Err(End::Lost);
                    }
                    tracing::warn!(job, error = %e, "heartbeat failed");
                }
            }
            _ = stop.notified(), if !critical => break Err(End::Lost),
            // `wait_for` also sees a shutdown requested before this job
            // subscribed, which `changed` would miss.
            _ = shutting_down(&mut shutdown), if !critical => {
                break Err(End::Interrupted("orch is shutting down".into()));
            }
        }
    };
    // Stop the agent's tree when the job ends without it, and clean up
    // descendants a finished agent left behind.
    match handle.stop(grace).await {
        Ok((_, report)) if !report.terminated.is_empty() => {
            let detail = format!(
                "pid {pid}: {:?}, {} signalled",
                report.outcome,
                report.terminated.len()
            );
            event(
                rt,
                lease.task_id,
                EventKind::AgentSignalled,
                Some(job),
                detail,
            )
            .await;
        }
        Ok(_) => {}
        Err(e) => tracing::error!(job, error = %e, "stopping the agent failed"),
    }
    Ok(ended)
}

/// Resolves once shutdown is requested, also when it was requested before
/// the receiver was made.
async fn shutting_down(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|down| *down).await;
}

/// Keeps a job in the runtime's registry while its process runs.
struct Registration<'a> {
    rt: &'a Runtime,
    job: u64,
}

impl<'a> Registration<'a> {
    fn new(rt: &'a Runtime, lease: &Lease, stop: Arc<Notify>) -> Self {
        let mut running = rt.running.lock().unwrap_or_else(|p| p.into_inner());
        running.insert(
            lease.job_id,
            RunningJob {
                task_id: lease.task_id,
                stop,
            },
        );
        Self {
            rt,
            job: lease.job_id,
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut running = self.rt.running.lock().unwrap_or_else(|p| p.into_inner());
        running.remove(&self.job);
    }
}

/// The deployer: no agent, no prompt. Staging runs its command; production
/// merges the feature branch into the base and runs its command inside the
/// critical window.
async fn deploy(rt: &Arc<Runtime>, lease: &Lease, place: &Place) -> Result<End, RuntimeError> {
    let t = &place.task;
    let critical = lease.stage == Stage::Deploy;
    let mut ev = Evidence::default();
    if critical {
        let (job, attempt) = (lease.job_id, lease.attempt);
        match rt
            .writer
            .call(now(), move |tx| tx.enter_critical(job, attempt))
            .await
        {
            Ok(_) => {}
            Err(StoreError::Conflict(reason)) => return Ok(End::Interrupted(reason)),
            Err(StoreError::Fenced { .. }) => return Ok(End::Lost),
            Err(e) => return Err(e.into()),
        }
        let (git, repo, cfg, branch, wt) = (
            rt.git.clone(),
            place.repo.clone(),
            place.cfg.clone(),
            t.branch.clone(),
            place.worktree.clone(),
        );
        let head = blocking(move || {
            let head = git.head(&wt)?;
            git.push_branch(&repo, &cfg.remote, &branch)?;
            Ok(head)
        })
        .await?;
        let forge = rt.forge(&t.repo)?;
        let base = &place.cfg.base_branch;
        match forge.merge(&t.branch, None, head).await {
            Ok(MergeOutcome::Merged) => {
                ev.merged = true;
                event(
                    rt,
                    t.id,
                    EventKind::Merged,
                    Some(lease.job_id),
                    format!("{} into {base} at {head}", t.branch),
                )
                .await;
            }
            Ok(MergeOutcome::AlreadyMerged) => {
                ev.merged = true;
                event(
                    rt,
                    t.id,
                    EventKind::Merged,
                    Some(lease.job_id),
                    format!("{base} already contains {head}"),
                )
                .await;
            }
            Ok(MergeOutcome::Refused(reason)) => {
                return Ok(End::Finished(Outcome::Failed(format!(
                    "merge refused: {reason}"
                ))));
            }
            Err(e) => return Ok(End::Finished(Outcome::Failed(format!("merge failed: {e}")))),
        }
    }
    let argv = if critical {
        &place.cfg.deploy
    } else {
        &place.cfg.deploy_staging
    };
    let ok = match argv {
        None => {
            event(
                rt,
                t.id,
                EventKind::DeploySkipped,
                Some(lease.job_id),
                "no deploy command configured",
            )
            .await;
            true
        }
        Some(argv) => {
            let (program, args) = argv
                .split_first()
                .ok_or_else(|| RuntimeError::Other("empty deploy command".into()))?;
            let command = AgentCommand {
                program: PathBuf::from(program),
                args: args.to_vec(),
            };
            let mut env = agent_env(rt, lease, place)?;
            for (k, v) in &place.cfg.deploy_env {
                env = env.with_var(k, v)?;
            }
            // No timeout applies inside the critical window.
            let timeout = if critical {
                None
            } else {
                rt.settings.role_timeout(Role::Deployer)
            };
            let spec = SpawnSpec::new(
                command,
                &place.worktree,
                env,
                String::new(),
                job_log(rt, lease.job_id),
            )
            .with_timeout(timeout)
            .with_stop_grace(rt.settings.stop_grace);
            match supervise(rt, lease, spec, critical).await? {
                Ok(o) if o.is_success() => {
                    let kind = if critical { "production" } else { "staging" };
                    event(rt, t.id, EventKind::Deployed, Some(lease.job_id), kind).await;
                    true
                }
                Ok(o) => {
                    return Ok(End::Finished(Outcome::Failed(format!(
                        "deploy command: {}",
                        describe(o)
                    ))));
                }
                Err(end) => return Ok(end),
            }
        }
    };
    ev.staging_deployed = ok && !critical;
    ev.deployed = ok && critical;
    let checks = lease.stage.transition().map_or(&[][..], |tr| tr.checks);
    Ok(End::Finished(match checks::run_all(checks, &ev) {
        Ok(()) => Outcome::Passed,
        Err(reason) => Outcome::Failed(reason),
    }))
}

async fn record(rt: &Arc<Runtime>, lease: &Lease, end: End) {
    let (job, attempt) = (lease.job_id, lease.attempt);
    match end {
        End::Finished(outcome) => {
            let limits = rt.limits();
            let res = rt
                .writer
                .call(now(), move |tx| {
                    apply::finish_job(tx, job, attempt, outcome.clone(), limits)
                })
                .await;
            match res {
                Ok(applied) => {
                    tracing::info!(job, stage = %applied.task.stage, decision = ?applied.decision, "job recorded");
                    follow_up(rt, &applied).await;
                    if applied.task.stage == Stage::Done {
                        cleanup_done(rt, &applied.task).await;
                    }
                    if applied.task.cancel_pending() {
                        rt.kick_cancel(applied.task.id);
                    }
                }
                Err(e) => tracing::warn!(job, error = %e, "job outcome not recorded"),
            }
        }
        End::Interrupted(reason) => {
            if let Err(e) = rt
                .writer
                .call(now(), move |tx| {
                    tx.complete(job, attempt, Completion::Interrupted(reason.clone()))
                })
                .await
            {
                tracing::warn!(job, error = %e, "interrupted job not recorded");
            }
        }
        End::Lost => {}
    }
    rt.wake.notify_waiters();
}

/// What a recorded decision means outside the store: the pull request when
/// the task enters review, and a word to the tracker.
async fn follow_up(rt: &Arc<Runtime>, applied: &apply::Applied) {
    let t = &applied.task;
    let note = match &applied.decision {
        Some(Decision::Advance {
            to: Stage::Review, ..
        }) => {
            open_pull_request(rt, t).await;
            Some(format!("{} moved to review", t.work_item_id))
        }
        Some(Decision::Advance { to, .. }) => Some(format!("{} moved to {to}", t.work_item_id)),
        Some(Decision::Retry { note, .. }) => Some(format!(
            "{} {} failed and is retried: {note}",
            t.work_item_id, t.stage
        )),
        Some(Decision::Block { reason }) => Some(format!(
            "{} is blocked and waits for a human: {reason}",
            t.work_item_id
        )),
        Some(Decision::Rework { note }) => Some(format!(
            "{}: the review asked for changes: {note}",
            t.work_item_id
        )),
        None => None,
    };
    let superseded = t.cancel.as_ref().and_then(|c| c.resolution)
        == Some(crate::domain::CancelResolution::Superseded);
    let note = if superseded {
        Some(format!(
            "{} is done: the deploy had already begun when STOP came, so the STOP was superseded (the change is live)",
            t.work_item_id
        ))
    } else {
        note
    };
    if let Some(text) = note {
        rt.tell_tracker(t, text);
    }
}

/// "orch opens the pull request" when a task enters review: on Gitea a PR,
/// on a plain remote nothing.
async fn open_pull_request(rt: &Arc<Runtime>, t: &Task) {
    let opened = match rt.forge(&t.repo) {
        Ok(forge) => {
            let body = format!(
                "Opened by orch for {}.\n\n{}",
                t.work_item_id, t.description
            );
            forge
                .open_pull_request(
                    &t.branch,
                    &format!("{}: {}", t.work_item_id, t.title),
                    &body,
                )
                .await
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    match opened {
        Ok(Some(pr)) => {
            event(
                rt,
                t.id,
                EventKind::PrOpened,
                None,
                format!("#{} {}", pr.number, pr.url.unwrap_or_default()),
            )
            .await
        }
        Ok(None) => {}
        Err(e) => {
            event(
                rt,
                t.id,
                EventKind::CleanupFailed,
                None,
                format!("opening the pull request: {e}"),
            )
            .await
        }
    }
}

/// After `done`: the worktree goes, and so does the merged feature branch,
/// locally and on the remote, through the same steps a cancel uses.
/// Failures are recorded; the task stays done.
async fn cleanup_done(rt: &Arc<Runtime>, task: &Task) {
    if let Err(e) = super::cancel::remove_worktree(rt, task).await {
        event(rt, task.id, EventKind::CleanupFailed, None, e.to_string()).await;
    }
    if let Err((e, _)) = super::cancel::delete_remote_branch(rt, task).await {
        event(rt, task.id, EventKind::CleanupFailed, None, e).await;
    }
}

/// Appends an event; a failure to record it is logged, never fatal.
pub(super) async fn event(
    rt: &Runtime,
    task: u64,
    kind: EventKind,
    job: Option<u64>,
    detail: impl Into<String>,
) {
    let detail = detail.into();
    if let Err(e) = rt
        .writer
        .call(now(), move |tx| tx.event(task, kind, job, detail.clone()))
        .await
    {
        tracing::warn!(task, kind = kind.as_str(), error = %e, "event not recorded");
    }
}

fn job_log(rt: &Runtime, job: u64) -> PathBuf {
    rt.settings.data_dir.join("logs").join(format!("{job}.log"))
}

fn read_artefacts(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    use std::io::Read;
    let mut out = BTreeMap::new();
    for name in ARTEFACTS {
        if let Ok(f) = std::fs::File::open(dir.join(name)) {
            let mut buf = Vec::new();
            if f.take(ARTEFACT_CAP).read_to_end(&mut buf).is_ok() {
                out.insert(name.to_owned(), buf);
            }
        }
    }
    out
}
