//! The driver: everything `orch serve` runs in one process. Workers claim
//! jobs and do their IO (git, agent processes, deploy commands), the reaper
//! requeues lost jobs, recovery cleans up after an earlier boot. Every
//! decision is taken by the pure modules (`gates`, `pipeline`) and every
//! state change goes through the store's one writer.

mod cancel;
mod demo;
mod job;
mod recovery;
mod serve;
mod tracker;
mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};

pub use cancel::{CRASH_AFTER_STEP_VAR, archive_dir, drive as drive_cancel};
pub use demo::{Server, make_remote, run as demo};
pub use recovery::{Recovered, run as recover};
pub use serve::{ServeError, serve, serve_with_http};

use crate::config::{Env, Settings};
use crate::domain::Millis;
use crate::forge::Forge;
use crate::git::{GitError, GitLayer};
use crate::gitea::GiteaClient;
use crate::pipeline::Limits;
use crate::plane::PlaneClient;
use crate::store::{Store, StoreError, Writer};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Agent(#[from] crate::agent::AgentError),
    #[error(transparent)]
    Id(#[from] crate::domain::IdError),
    #[error("{0}")]
    Other(String),
}

/// A job that has a live agent or deploy command in this process.
#[derive(Debug, Clone)]
pub struct RunningJob {
    pub task_id: u64,
    /// Notified to make the worker stop the agent (STOP, lost lease).
    pub stop: Arc<Notify>,
}

/// Everything the tasks of `orch serve` share.
pub struct Runtime {
    pub settings: Arc<Settings>,
    /// The environment orch was started with: where agents' allowlisted
    /// variables come from.
    pub env: Arc<Env>,
    pub store: Arc<Store>,
    pub writer: Writer,
    pub git: Arc<GitLayer>,
    /// Woken whenever new work may be claimable.
    pub wake: Arc<Notify>,
    pub shutdown: watch::Sender<bool>,
    pub boot_id: String,
    /// The binary that `builtin` names.
    pub builtin_exe: PathBuf,
    pub running: Mutex<HashMap<u64, RunningJob>>,
    /// Tasks whose cancel driver runs now; `true` asks it to run once more.
    pub cancels: Mutex<HashMap<u64, bool>>,
    /// The tracker's API, when configured.
    pub plane: Option<Arc<PlaneClient>>,
    /// The forge's API, when configured.
    pub gitea: Option<Arc<GiteaClient>>,
}

impl Runtime {
    /// Opens the store and the git layer under the data dir.
    pub fn open(settings: Settings, env: Env) -> Result<Arc<Self>, RuntimeError> {
        crate::fsutil::ensure_private_dir(&settings.data_dir).map_err(|e| {
            RuntimeError::Other(format!("data dir {}: {e}", settings.data_dir.display()))
        })?;
        let store = Arc::new(Store::open(
            &settings.db_path,
            settings.store.clone(),
            now(),
        )?);
        let git = Arc::new(GitLayer::new(&settings.data_dir)?);
        let builtin_exe = crate::agent::builtin_exe()?;
        let plane = match settings.plane.api() {
            Some(api) => Some(Arc::new(
                PlaneClient::new(api, crate::plane::RetryPolicy::default())
                    .map_err(|e| RuntimeError::Other(e.to_string()))?,
            )),
            None => None,
        };
        let gitea = match settings.gitea.api() {
            Some((url, token)) => Some(Arc::new(
                GiteaClient::new(url, token.clone())
                    .map_err(|e| RuntimeError::Other(e.to_string()))?,
            )),
            None => None,
        };
        let (shutdown, _) = watch::channel(false);
        Ok(Arc::new(Self {
            writer: Writer::start(store.clone()),
            store,
            git,
            settings: Arc::new(settings),
            env: Arc::new(env),
            wake: Arc::new(Notify::new()),
            shutdown,
            boot_id: uuid::Uuid::new_v4().to_string(),
            builtin_exe,
            running: Mutex::new(HashMap::new()),
            cancels: Mutex::new(HashMap::new()),
            plane,
            gitea,
        }))
    }

    /// Uses another binary for `builtin` (tests run the binary under test).
    pub fn with_builtin_exe(self: Arc<Self>, exe: PathBuf) -> Arc<Self> {
        match Arc::try_unwrap(self) {
            Ok(mut rt) => {
                rt.builtin_exe = exe;
                Arc::new(rt)
            }
            Err(shared) => shared,
        }
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_attempts: self.settings.max_attempts,
            max_review_rounds: self.settings.max_review_rounds,
        }
    }

    pub fn lease_ms(&self) -> i64 {
        i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// Asks every task of this process to stop claiming and wind down.
    pub fn request_shutdown(&self) {
        let _ = self.shutdown.send(true);
        self.wake.notify_waiters();
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// The forge of a configured repo (Gitea or the plain remote).
    pub fn forge(&self, repo: &str) -> Result<Forge, RuntimeError> {
        let cfg = self
            .settings
            .repo(repo)
            .ok_or_else(|| RuntimeError::Other(format!("repo {repo} is not configured")))?;
        Forge::for_repo(cfg, self.git.clone(), self.gitea.clone())
            .map_err(|e| RuntimeError::Other(e.to_string()))
    }

    /// Posts a comment on the task's tracker issue, in the background and
    /// best effort: a tracker that is down never holds up a worker.
    pub fn tell_tracker(&self, task: &crate::store::Task, text: String) {
        let (Some(client), Some(issue), Some(project)) = (
            self.plane.clone(),
            task.plane_issue_id.clone(),
            task.plane_project_id.clone(),
        ) else {
            return;
        };
        let issue = crate::domain::ids::untombstone(&issue)
            .unwrap_or(&issue)
            .to_owned();
        let (Ok(issue), Ok(project)) = (
            crate::domain::PlaneIssueId::parse(&issue),
            uuid::Uuid::parse_str(&project),
        ) else {
            return;
        };
        tokio::spawn(async move {
            if let Err(e) = client.add_comment(project, &issue, &text).await {
                tracing::warn!(issue = %issue, error = %e, "tracker comment failed");
            }
        });
    }

    /// Whether a worker of this process still runs `job_id`'s process.
    pub fn is_running(&self, job_id: u64) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&job_id)
    }

    /// Tells the worker running `job_id` (if any) to stop its agent.
    pub fn stop_job(&self, job_id: u64) -> bool {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        match running.get(&job_id) {
            Some(j) => {
                j.stop.notify_one();
                true
            }
            None => false,
        }
    }
}

/// The wall clock, read by the driver only.
pub fn now() -> Millis {
    crate::clock::now_millis()
}
