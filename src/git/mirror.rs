//! The bare clone of each repo under `<data dir>/repos/<repo>.git`.
//!
//! It is not a `--mirror` clone: orch's own `refs/heads/feature/*` branches
//! live in it, so the remote's branches are fetched into
//! `refs/remotes/origin/*` and nothing ever prunes `refs/heads/`. The remote
//! URL is passed in on every call rather than stored in the clone's config,
//! because agents can edit that config and must not be able to redirect
//! where orch fetches from or pushes to.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::progress::Discard;
use gix::remote::Direction;

use crate::domain::RepoName;

use super::error::{CommitId, GitError, GixContext};
use super::names::{self, FeatureBranch};
use super::{GitLayer, open_repo};

/// Where fetched remote branches land: `refs/remotes/origin/<branch>`.
pub(crate) const TRACKING_PREFIX: &str = "refs/remotes/origin/";
/// Fetches every remote branch into the tracking namespace. The `+` only
/// lets a remote-tracking ref follow the remote; pushes never use one.
const FETCH_REFSPEC: &str = "+refs/heads/*:refs/remotes/origin/*";

impl GitLayer {
    /// Makes sure the bare clone of `repo` exists and is up to date with
    /// `remote` (an absolute path or a URL): cloned the first time, fetched
    /// after that. Local `feature/*` branches are never touched.
    pub fn ensure_mirror(&self, repo: &RepoName, remote: &str) -> Result<PathBuf, GitError> {
        let remote = names::remote(remote)?;
        let lock = self.lock(repo);
        let _held = lock.hold();
        let path = self.init_mirror(repo)?;
        fetch(&open_repo(&path)?, remote)?;
        Ok(path)
    }

    /// The tip of `branch` on `remote` as the remote reports it now, or
    /// `None` if the remote has no such branch. This is what
    /// `branch_pushed` compares with the local head.
    pub fn remote_ref(
        &self,
        repo: &RepoName,
        remote: &str,
        branch: &str,
    ) -> Result<Option<CommitId>, GitError> {
        let remote = names::remote(remote)?;
        if branch.starts_with(names::FEATURE_PREFIX) {
            FeatureBranch::parse(branch)?;
        } else {
            names::base_branch(branch)?;
        }
        let lock = self.lock(repo);
        let _held = lock.hold();
        let listing = list_remote(&open_repo(&self.init_mirror(repo)?)?, remote, branch)?;
        Ok(listing.tip)
    }

    /// Returns the mirror's path, creating an empty bare repository there if
    /// none exists yet. It is created under a temporary name and renamed
    /// into place, so a crash never leaves a half-made mirror behind.
    pub(crate) fn init_mirror(&self, repo: &RepoName) -> Result<PathBuf, GitError> {
        let path = self.mirror_path(repo);
        if path.join("HEAD").is_file() {
            return Ok(path);
        }
        // A directory without HEAD at the mirror's path is not ours to
        // replace: it may hold something an operator put there.
        if path.exists() {
            return Err(GitError::NotARepository { path });
        }
        let parent = path.parent().unwrap_or(&self.data_dir);
        std::fs::create_dir_all(parent).map_err(|e| GitError::io("create", parent, e))?;
        // `RepoName` cannot start with '.', so this never names a real mirror.
        let staging = parent.join(format!(".{repo}.git.init"));
        remove_dir_if_exists(&staging)?;
        gix::init_bare(&staging).ctx("initialise bare clone")?;
        std::fs::rename(&staging, &path).map_err(|e| GitError::io("rename", &staging, e))?;
        Ok(path)
    }
}

/// Fetches all branches of `remote` into the tracking namespace.
pub(crate) fn fetch(repo: &gix::Repository, remote: &str) -> Result<(), GitError> {
    let interrupt = AtomicBool::new(false);
    anonymous_remote(repo, remote, &[FETCH_REFSPEC])?
        .connect(Direction::Fetch)
        .ctx("connect to remote")?
        .prepare_fetch(Discard, Default::default())
        .ctx("list remote refs")?
        .receive(Discard, &interrupt)
        .ctx("fetch")?;
    Ok(())
}

/// What the remote advertises about one branch and about its `HEAD`.
pub(crate) struct RemoteListing {
    pub tip: Option<CommitId>,
    /// The branch the remote's `HEAD` points to: its default branch.
    pub default_branch: Option<String>,
}

/// Asks `remote` for the tip of `branch` and for its default branch without
/// fetching anything.
pub(crate) fn list_remote(
    repo: &gix::Repository,
    remote: &str,
    branch: &str,
) -> Result<RemoteListing, GitError> {
    use gix::protocol::handshake::Ref;
    let wanted = format!("refs/heads/{branch}");
    let (ref_map, _) = anonymous_remote(repo, remote, &["HEAD", wanted.as_str()])?
        .connect(Direction::Fetch)
        .ctx("connect to remote")?
        .ref_map(Discard, Default::default())
        .ctx("list remote refs")?;
    let mut listing = RemoteListing {
        tip: None,
        default_branch: None,
    };
    for r in &ref_map.remote_refs {
        match r {
            Ref::Direct {
                full_ref_name,
                object,
            }
            | Ref::Peeled {
                full_ref_name,
                object,
                ..
            } if *full_ref_name == wanted => listing.tip = Some(*object),
            Ref::Symbolic {
                full_ref_name,
                target,
                ..
            }
            | Ref::Unborn {
                full_ref_name,
                target,
            } if *full_ref_name == "HEAD" => {
                listing.default_branch = target
                    .strip_prefix(b"refs/heads/")
                    .map(|b| String::from_utf8_lossy(b).into_owned());
            }
            _ => {}
        }
    }
    Ok(listing)
}

/// A remote that exists only for this call: its URL comes from orch's
/// config, never from the clone's config, and URL rewrites in that config
/// are ignored for the same reason.
fn anonymous_remote<'r>(
    repo: &'r gix::Repository,
    remote: &str,
    refspecs: &[&str],
) -> Result<gix::Remote<'r>, GitError> {
    repo.remote_at_without_url_rewrite(remote)
        .ctx("configure remote")?
        .with_fetch_tags(gix::remote::fetch::Tags::None)
        .with_refspecs(refspecs, Direction::Fetch)
        .ctx("configure refspecs")
}

/// The fetched tip of the remote's `base` branch in the mirror.
pub(crate) fn tracking_tip(repo: &gix::Repository, base: &str) -> Result<CommitId, GitError> {
    let name = format!("{TRACKING_PREFIX}{base}");
    let found = repo
        .try_find_reference(name.as_str())
        .ctx("find base branch")?;
    let mut reference = found.ok_or_else(|| GitError::BaseBranchMissing {
        base: base.to_owned(),
    })?;
    Ok(reference.peel_to_id().ctx("resolve base branch")?.detach())
}

fn remove_dir_if_exists(path: &Path) -> Result<(), GitError> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(GitError::io("remove", path, e)),
        _ => Ok(()),
    }
}
