//! `orch task …`: start, show, list and retry tasks on the store file. A
//! started task waits in the file until `orch serve` runs.

use anyhow::{Context, anyhow};
use clap::Subcommand;

use super::Failure;
use crate::domain::{PlaneIssueId, RepoName, Stage, WorkItemId};
use crate::pipeline::apply;
use crate::store::{NewTask, Store, TaskKey};
use crate::views::{TaskDetail, TaskView, deps_of};

#[derive(Subcommand, Debug)]
pub enum TaskCommand {
    /// Start a task (the relaunch gate applies to an existing one).
    Start {
        /// The work item id, e.g. ORCH-12.
        work_item_id: String,
        #[arg(long)]
        repo: String,
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        description: String,
        /// A task this one waits for (repeatable).
        #[arg(long = "depends-on")]
        depends_on: Vec<String>,
        /// The tracker issue UUID, if any.
        #[arg(long)]
        plane_issue_id: Option<String>,
    },
    /// Show a task with its jobs, events and predecessors, as JSON.
    Show { key: String },
    /// List tasks, newest first, as JSON.
    List {
        #[arg(long)]
        stage: Option<String>,
        #[arg(long)]
        repo: Option<String>,
        #[arg(long)]
        blocked: Option<bool>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// STOP a task: its agent dies, its jobs are cancelled, its worktree and
    /// feature branches go, its keys are freed. Without a running server the
    /// request waits in the file until `orch serve` runs.
    Stop { key: String },
    /// Clear `blocked`: the stage's counts reset and its job is queued again.
    Retry {
        key: String,
        #[arg(long)]
        note: Option<String>,
    },
}

fn usage(e: impl std::fmt::Display) -> Failure {
    Failure::Usage(anyhow!("{e}"))
}

/// Runs the command on the store file, or, when a running `orch serve`
/// holds the file, through its HTTP API.
pub fn run(cmd: TaskCommand, settings: &crate::config::Settings) -> Result<(), Failure> {
    match crate::store::Store::open(
        &settings.db_path,
        settings.store.clone(),
        crate::clock::now_millis(),
    ) {
        Err(crate::store::StoreError::Locked { .. }) => remote(cmd, settings),
        Ok(store) => {
            drop(store);
            local(cmd, settings)
        }
        Err(crate::store::StoreError::Db(_)) if !settings.db_path.exists() => local(cmd, settings),
        Err(e) => Err(e.into()),
    }
}

fn remote(cmd: TaskCommand, settings: &crate::config::Settings) -> Result<(), Failure> {
    use super::client::{call, enc};
    let answer = match cmd {
        TaskCommand::Start {
            work_item_id,
            repo,
            title,
            description,
            depends_on,
            ..
        } => call(
            settings,
            "POST",
            "/api/tasks",
            Some(
                serde_json::json!({"work_item_id": work_item_id, "repo": repo, "title": title, "description": description, "depends_on": depends_on}),
            ),
        )?,
        TaskCommand::Show { key } => {
            call(settings, "GET", &format!("/api/tasks/{}", enc(&key)), None)?
        }
        TaskCommand::List {
            stage,
            repo,
            blocked,
            limit,
        } => {
            let mut q = format!("?limit={limit}");
            if let Some(s) = stage {
                q.push_str(&format!("&stage={}", enc(&s)));
            }
            if let Some(r) = repo {
                q.push_str(&format!("&repo={}", enc(&r)));
            }
            if let Some(b) = blocked {
                q.push_str(&format!("&blocked={b}"));
            }
            call(settings, "GET", &format!("/api/tasks{q}"), None)?
        }
        TaskCommand::Retry { key, note } => call(
            settings,
            "POST",
            &format!("/api/tasks/{}/retry", enc(&key)),
            Some(serde_json::json!({"note": note})),
        )?,
        TaskCommand::Stop { key } => call(
            settings,
            "POST",
            &format!("/api/tasks/{}/stop", enc(&key)),
            None,
        )?,
    };
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

fn local(cmd: TaskCommand, settings: &crate::config::Settings) -> Result<(), Failure> {
    let now = crate::clock::now_millis();
    let open = || -> Result<Store, Failure> {
        crate::fsutil::ensure_private_dir(&settings.data_dir)
            .with_context(|| format!("data dir {}", settings.data_dir.display()))?;
        Ok(Store::open(&settings.db_path, settings.store.clone(), now)?)
    };
    let resolve = |store: &Store, key: &str| -> Result<u64, Failure> {
        let key = TaskKey::parse(key).map_err(usage)?;
        store
            .read(|rx| rx.resolve(&key))?
            .ok_or_else(|| Failure::Runtime(anyhow!("no task for {key:?}")))
    };
    match cmd {
        TaskCommand::Start {
            work_item_id,
            repo,
            title,
            description,
            depends_on,
            plane_issue_id,
        } => {
            let new = NewTask {
                work_item_id: WorkItemId::parse(&work_item_id).map_err(usage)?,
                plane_issue_id: plane_issue_id
                    .as_deref()
                    .map(PlaneIssueId::parse)
                    .transpose()
                    .map_err(usage)?,
                repo: RepoName::parse(&repo).map_err(usage)?,
                title,
                description,
                depends_on,
            };
            if !settings.repos.is_empty() && settings.repo(new.repo.as_str()).is_none() {
                return Err(usage(format!(
                    "repo {} is not configured in {}",
                    new.repo,
                    settings.config_path.display()
                )));
            }
            let store = open()?;
            let (result, task) = store.write(now, |tx| apply::start(tx, new))?;
            let view = store.read(|rx| Ok(TaskView::new(&task, deps_of(rx, &task)?)))?;
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"result": result.as_str(), "task": view})
                )?
            );
        }
        TaskCommand::Show { key } => {
            let store = open()?;
            let id = resolve(&store, &key)?;
            let detail = store
                .read(|rx| TaskDetail::read(rx, id))?
                .ok_or_else(|| Failure::Runtime(anyhow!("task {id} vanished")))?;
            println!("{}", serde_json::to_string_pretty(&detail)?);
        }
        TaskCommand::List {
            stage,
            repo,
            blocked,
            limit,
        } => {
            let stage: Option<Stage> = stage
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(usage)?;
            let store = open()?;
            let (tasks, _) = store.read(|rx| {
                rx.list_tasks(None, limit.clamp(1, 500), |t| {
                    stage.is_none_or(|s| t.stage == s)
                        && repo.as_deref().is_none_or(|r| t.repo == r)
                        && blocked.is_none_or(|b| t.blocked.is_some() == b)
                })
            })?;
            let views = store.read(|rx| {
                tasks
                    .iter()
                    .map(|t| Ok(TaskView::new(t, deps_of(rx, t)?)))
                    .collect::<Result<Vec<_>, _>>()
            })?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({ "tasks": views }))?
            );
        }
        TaskCommand::Stop { key } => {
            let store = open()?;
            let id = resolve(&store, &key)?;
            let enabled = settings.gates().stop_enabled;
            match store.write(now, |tx| crate::cancel::request(tx, id, enabled))? {
                crate::cancel::StopAnswer::Disabled { .. } => {
                    return Err(Failure::Runtime(anyhow!(
                        "STOP is switched off (ORCH_STOP_STATUS_ENABLED=false); nothing changed"
                    )));
                }
                crate::cancel::StopAnswer::Noop { .. } => {
                    println!("task {id} is terminal; nothing to stop")
                }
                crate::cancel::StopAnswer::Accepted { step, .. }
                | crate::cancel::StopAnswer::AlreadyRequested { step, .. } => {
                    println!(
                        "task {id}: STOP requested, at step {}; orch serve carries it out",
                        step.as_str()
                    )
                }
            }
        }
        TaskCommand::Retry { key, note } => {
            let store = open()?;
            let id = resolve(&store, &key)?;
            let task = store.write(now, |tx| apply::retry(tx, id, note))?;
            println!("{} retried in {}", task.work_item_id, task.stage);
        }
    }
    Ok(())
}
