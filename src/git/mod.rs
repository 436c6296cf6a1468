//! The git layer: a bare clone per repo, one linked worktree and feature
//! branch per task, and the few remote operations the pipeline needs.
//!
//! Local work (clone, fetch, listing remote refs, worktree add/remove,
//! branch create/delete, history queries) uses gix. gix has no push, so
//! pushes and remote branch deletions use the `git` program through
//! [`cli`], always with hooks and fsmonitor disabled and a minimal
//! environment (`docs/adr/0002-git-cli-for-push.md`).
//!
//! The API is blocking; async callers run it on a blocking thread. One
//! [`GitLayer`] is shared by all workers: it serialises operations on the
//! same repository, because gix and git both take ref and config locks that
//! a concurrent operation would fail on.

pub mod cli;
mod error;
mod mirror;
pub mod names;
mod remote;
mod worktree;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::domain::RepoName;

pub use error::{CommitId, GitError};
pub use names::{FeatureBranch, Protected, TaskNames, task_names};
pub use remote::{FastForward, PushOutcome, RemoteDelete};
pub use worktree::{LocalDelete, WorktreeAdd, WorktreeRemove};

/// Entry point of the git layer, rooted at orch's data dir.
#[derive(Debug)]
pub struct GitLayer {
    data_dir: PathBuf,
    locks: Mutex<HashMap<RepoName, Arc<Mutex<()>>>>,
}

impl GitLayer {
    /// Opens the layer at `data_dir`, creating the directory if needed. The
    /// data dir holds worktrees with agents' work and the store, so it is
    /// kept at mode 0700 whether it was just created or already existed.
    pub fn new(data_dir: impl AsRef<Path>) -> Result<Self, GitError> {
        let data_dir = ensure_private_dir(data_dir.as_ref())?;
        Ok(Self {
            data_dir,
            locks: Mutex::new(HashMap::new()),
        })
    }

    /// The canonical data dir every path of this layer lives under.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where the bare clone of `repo` lives.
    pub fn mirror_path(&self, repo: &RepoName) -> PathBuf {
        names::mirror_path(&self.data_dir, repo)
    }

    /// The absolute worktree path for a recorded relative (or absolute)
    /// one, refused unless it is a task directory of `repo` (TC-40).
    pub fn worktree_path(&self, repo: &RepoName, path: &Path) -> Result<PathBuf, GitError> {
        names::worktree_path(&self.data_dir, repo, path)
    }

    /// Serialises operations on one repository's mirror and worktrees. A
    /// poisoned lock only means another operation panicked; the repository
    /// itself is guarded by git's own lock files, so the lock is reused.
    fn lock(&self, repo: &RepoName) -> RepoLock {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        let lock = locks.entry(repo.clone()).or_default().clone();
        RepoLock(lock)
    }
}

struct RepoLock(Arc<Mutex<()>>);

impl RepoLock {
    fn hold(&self) -> MutexGuard<'_, ()> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Creates `dir` (and its parents) with mode 0700, tightens it if it already
/// existed, and returns its canonical form so later containment checks
/// compare real paths.
fn ensure_private_dir(dir: &Path) -> Result<PathBuf, GitError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| GitError::io("create data dir", dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| GitError::io("set mode 0700 on data dir", dir, e))?;
    dir.canonicalize()
        .map_err(|e| GitError::io("resolve data dir", dir, e))
}

/// Opens a repository with gix, trusting the installation's git config so
/// credential helpers configured for `git` also serve gix's fetches.
fn open_repo(path: &Path) -> Result<gix::Repository, GitError> {
    use error::GixContext;
    use gix::sec::trust::DefaultForLevel;
    let mut opts = gix::open::Options::default_for_level(gix::sec::Trust::Full);
    opts.permissions.config.git_binary = true;
    gix::open_opts(path, opts).ctx("open repository")
}
