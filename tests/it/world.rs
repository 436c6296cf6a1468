//! An end-to-end world: bare remotes on disk, an `orch.toml`, and a runtime
//! running `serve` in this process with the real `orch` binary as the
//! built-in agent. Tests start tasks and wait for states; nothing is mocked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orch::config::{Env, Settings};
use orch::domain::{RepoName, WorkItemId};
use orch::pipeline::apply;
use orch::runtime::{Runtime, now};
use orch::store::{Job, NewTask, ReadTx, StoreError, Task};

use crate::support::{git, tempdir};

pub struct World {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub remotes: BTreeMap<String, PathBuf>,
    pub env: Vec<(String, String)>,
    pub rt: Arc<Runtime>,
    server: Option<orch::runtime::Server>,
}

/// An agent command line that runs the built-in agent with extra
/// environment (for one role only): `sh` execs the binary, so the agent's
/// pid is the shell's.
pub fn demo_agent_with(vars: &str) -> String {
    format!(
        "sh -c \"{vars} exec '{}' agent-demo\"",
        env!("CARGO_BIN_EXE_orch")
    )
}

/// A bare remote with one commit on `main`.
pub fn bare_remote(root: &Path, name: &str) -> PathBuf {
    orch::runtime::make_remote(root, name).unwrap()
}

pub struct Builder {
    repos: Vec<(String, String)>,
    env: Vec<(String, String)>,
    toml: String,
}

impl Builder {
    /// A repo with extra lines for its `[[repo]]` table.
    pub fn repo(mut self, name: &str, extra: &str) -> Self {
        self.repos.push((name.into(), extra.into()));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Extra `orch.toml` text (e.g. role tables).
    pub fn toml(mut self, text: &str) -> Self {
        self.toml.push_str(text);
        self
    }

    pub fn build(self) -> World {
        let tmp = tempdir();
        let root = tmp.path().canonicalize().unwrap();
        let mut toml = String::new();
        let mut remotes = BTreeMap::new();
        for (name, extra) in &self.repos {
            let remote = bare_remote(&root, name);
            toml.push_str(&format!(
                "[[repo]]\nname = \"{name}\"\nremote = \"{}\"\n{extra}\n\n",
                remote.display()
            ));
            remotes.insert(name.clone(), remote);
        }
        toml.push_str(&self.toml);
        std::fs::write(root.join("orch.toml"), toml).unwrap();
        let mut env: Vec<(String, String)> = ["PATH", "HOME", "LANG"]
            .into_iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v)))
            .collect();
        env.extend(
            [
                ("ORCH_DATA_DIR", root.join("data").display().to_string()),
                ("ORCH_CONFIG", root.join("orch.toml").display().to_string()),
                ("ORCH_AGENT_CMD", "builtin".into()),
                ("ORCH_HEARTBEAT_SECS", "1".into()),
                ("ORCH_LEASE_SECS", "30".into()),
                ("ORCH_STOP_GRACE_SECS", "1".into()),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        for (k, v) in self.env {
            env.retain(|(n, _)| *n != k);
            env.push((k, v));
        }
        let rt = open(&env);
        World {
            _tmp: tmp,
            root,
            remotes,
            env,
            rt,
            server: None,
        }
    }
}

fn open(env: &[(String, String)]) -> Arc<Runtime> {
    let env = Env::from_pairs(env.iter().cloned());
    let settings = Settings::load(&env).unwrap();
    Runtime::open(settings, env)
        .unwrap()
        .with_builtin_exe(PathBuf::from(env!("CARGO_BIN_EXE_orch")))
}

impl World {
    pub fn builder() -> Builder {
        Builder {
            repos: Vec::new(),
            env: Vec::new(),
            toml: String::new(),
        }
    }

    /// One repo `r` and default settings.
    pub fn simple() -> World {
        Self::builder().repo("r", "").build()
    }

    pub fn serve(&mut self) {
        self.server = Some(self.rt.spawn_serve());
    }

    /// Orderly shutdown; returns once `serve` has returned.
    pub async fn shutdown(&mut self) {
        self.rt.request_shutdown();
        if let Some(s) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(30), s)
                .await
                .expect("serve stops")
                .unwrap()
                .unwrap();
        }
    }

    pub async fn start(&self, wi: &str, repo: &str, deps: &[&str]) -> u64 {
        let new = NewTask {
            work_item_id: WorkItemId::parse(wi).unwrap(),
            plane_issue_id: None,
            repo: RepoName::parse(repo).unwrap(),
            title: format!("title of {wi}"),
            description: "end-to-end".into(),
            depends_on: deps.iter().map(|s| s.to_string()).collect(),
        };
        let (_, t) = self
            .rt
            .writer
            .call(now(), move |tx| apply::start(tx, new.clone()))
            .await
            .unwrap();
        self.rt.wake.notify_waiters();
        t.id
    }

    pub fn read<R>(&self, f: impl FnOnce(&ReadTx) -> Result<R, StoreError>) -> R {
        self.rt.store.read(f).unwrap()
    }

    pub fn task(&self, id: u64) -> Task {
        self.read(|rx| rx.task(id)).unwrap()
    }

    pub fn jobs(&self, id: u64) -> Vec<Job> {
        self.read(|rx| rx.jobs_of(id))
    }

    pub fn events(&self, id: u64) -> Vec<String> {
        self.read(|rx| rx.events_of(id))
            .into_iter()
            .map(|e| e.kind.as_str().to_owned())
            .collect()
    }

    /// Waits until `cond` holds on the task, or fails after `secs`.
    pub async fn wait_task(
        &self,
        id: u64,
        secs: u64,
        what: &str,
        cond: impl Fn(&Task) -> bool,
    ) -> Task {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let t = self.task(id);
            if cond(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {t:?}\nevents: {:?}",
                self.events(id)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The remote's tip of `branch`, if the branch exists.
    pub fn remote_tip(&self, repo: &str, branch: &str) -> Option<String> {
        let out = crate::support::git_output(
            &self.root,
            &[
                "--git-dir",
                self.remotes[repo].to_str().unwrap(),
                "rev-parse",
                "--verify",
                "-q",
                branch,
            ],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Files changed on the remote's `main` (paths), newest commit first.
    pub fn remote_main_files(&self, repo: &str) -> String {
        git(
            &self.root,
            &[
                "--git-dir",
                self.remotes[repo].to_str().unwrap(),
                "log",
                "--name-only",
                "--format=",
                "main",
            ],
        )
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }
}
