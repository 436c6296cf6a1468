//! The forge abstraction: what the runtime asks of wherever a repo is
//! hosted, without knowing whether that is Gitea or a plain git remote
//! (SPEC §6, §8.2, §8.3).
//!
//! | operation | Gitea | plain git |
//! |---|---|---|
//! | open a pull request | `POST …/pulls` (409 → the existing one) | nothing: `None` |
//! | merge | `POST …/pulls/{n}/merge` with `head_commit_id` | non-force fast-forward push of the base |
//! | delete the remote branch | `DELETE …/branches/{b}` | `git push` of a deletion |
//! | default branch | `GET /repos/{o}/{r}` | unknown here (`None`); the git layer reads the remote's `HEAD` before deleting |
//!
//! Both sides refuse to delete the base branch, `main`, `master` and the
//! remote's default branch, and only ever touch `feature/…` branches.
//! Git calls are blocking and run on the blocking pool.

use std::sync::Arc;

use crate::config::RepoConfig;
use crate::domain::RepoName;
use crate::git::{CommitId, FastForward, FeatureBranch, GitError, GitLayer, RemoteDelete};
use crate::gitea::{GiteaClient, GiteaError, MergeStyle, Opened, RepoRef};

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The feature head is now in the base branch.
    Merged,
    /// It already was (a repeated deploy merge is harmless).
    AlreadyMerged,
    /// The forge will not merge: the head moved since review, the base
    /// diverged, a conflict, a protection. Final until a human acts.
    Refused(String),
}

/// What deleting a remote branch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BranchDelete {
    Deleted,
    /// Nothing to delete: counts as deleted.
    AlreadyGone,
    /// A protected, default or foreign branch. Final: cleanup debt is
    /// closed as `refused` at once (SPEC §7.1).
    Refused(String),
}

/// A pull request the forge opened or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrRef {
    pub number: u64,
    pub url: Option<String>,
    /// False when it already existed.
    pub created: bool,
}

/// Why a forge operation failed for a reason that may pass; refusals are
/// outcomes, not errors.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Gitea(#[from] GiteaError),
    /// The blocking git call panicked or was cancelled.
    #[error("git operation did not finish: {0}")]
    Join(String),
    /// The repo's config names a forge orch cannot reach.
    #[error("repo {repo}: {reason}")]
    Config { repo: RepoName, reason: String },
}

impl ForgeError {
    /// True when retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Git(e) => !e.is_permanent(),
            Self::Gitea(e) => e.is_transient(),
            Self::Join(_) => true,
            Self::Config { .. } => false,
        }
    }
}

/// One repo's forge.
#[derive(Debug, Clone)]
pub struct Forge {
    repo: RepoName,
    remote: String,
    base: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Git(Arc<GitLayer>),
    Gitea {
        client: Arc<GiteaClient>,
        repo: RepoRef,
        style: MergeStyle,
    },
}

impl Forge {
    /// The forge of a configured repo: Gitea when the repo names an
    /// `owner/repo` (`gitea = …`), a plain git remote otherwise. A repo that
    /// names a Gitea repository while no Gitea API is configured is an
    /// error rather than a silent fallback to plain git, which would merge
    /// without the forge's checks.
    pub fn for_repo(
        config: &RepoConfig,
        git: Arc<GitLayer>,
        gitea: Option<Arc<GiteaClient>>,
    ) -> Result<Self, ForgeError> {
        let kind = match (&config.gitea, gitea) {
            (None, _) => Kind::Git(git),
            (Some(name), Some(client)) => Kind::Gitea {
                client,
                repo: RepoRef::parse(name)?,
                style: MergeStyle::parse(&config.merge_style)?,
            },
            (Some(name), None) => {
                return Err(ForgeError::Config {
                    repo: config.name.clone(),
                    reason: format!(
                        "gitea = {name:?} is set but ORCH_GITEA_URL and ORCH_GITEA_TOKEN are not"
                    ),
                });
            }
        };
        Ok(Self {
            repo: config.name.clone(),
            remote: config.remote.clone(),
            base: config.base_branch.clone(),
            kind,
        })
    }

    pub fn is_gitea(&self) -> bool {
        matches!(self.kind, Kind::Gitea { .. })
    }

    /// Opens (or finds) the pull request of `branch` into the base branch.
    /// A plain git remote has none: `None`.
    pub async fn open_pull_request(
        &self,
        branch: &str,
        title: &str,
        body: &str,
    ) -> Result<Option<PrRef>, ForgeError> {
        let Kind::Gitea { client, repo, .. } = &self.kind else {
            return Ok(None);
        };
        let branch = FeatureBranch::parse(branch)?;
        let opened = client
            .open_pull_request(repo, &branch, &self.base, title, body)
            .await?;
        let created = matches!(opened, Opened::Created(_));
        let pull = opened.pull();
        Ok(Some(PrRef {
            number: pull.number,
            url: pull.url.clone(),
            created,
        }))
    }

    /// The deploy merge of `branch` into the base branch, only while the
    /// branch is still at `expected_head` (the reviewed commit). On Gitea
    /// the pull request `pr` is merged (looked up by branch when `None`);
    /// on plain git the base is fast-forwarded by a non-force push.
    pub async fn merge(
        &self,
        branch: &str,
        pr: Option<u64>,
        expected_head: CommitId,
    ) -> Result<MergeOutcome, ForgeError> {
        let branch = FeatureBranch::parse(branch)?;
        match &self.kind {
            Kind::Git(git) => {
                let (git, repo, remote, base) = self.blocking_args(git);
                let result = spawn_git(move || {
                    git.fast_forward_base(
                        &repo,
                        &remote,
                        branch.as_str(),
                        &base,
                        Some(expected_head),
                    )
                })
                .await?;
                match result {
                    Ok(FastForward::Pushed { .. }) => Ok(MergeOutcome::Merged),
                    Ok(FastForward::AlreadyContained { .. }) => Ok(MergeOutcome::AlreadyMerged),
                    Err(e) if refuses(&e) => Ok(MergeOutcome::Refused(e.to_string())),
                    Err(e) => Err(e.into()),
                }
            }
            Kind::Gitea {
                client,
                repo,
                style,
            } => {
                let number = match pr {
                    Some(n) => n,
                    None => match client
                        .find_open_pull_request(repo, branch.as_str(), &self.base)
                        .await?
                    {
                        Some(p) => p.number,
                        None => {
                            return Ok(MergeOutcome::Refused(format!(
                                "no open pull request for {branch} into {}",
                                self.base
                            )));
                        }
                    },
                };
                Ok(client
                    .merge(repo, number, *style, &expected_head.to_string())
                    .await?)
            }
        }
    }

    /// Deletes the remote feature branch `branch` (cancel step 7). Never
    /// the base, default, `main` or `master` branch, never a branch that is
    /// not an orch feature branch.
    pub async fn delete_remote_branch(&self, branch: &str) -> Result<BranchDelete, ForgeError> {
        match &self.kind {
            Kind::Git(git) => {
                let (git, repo, remote, base) = self.blocking_args(git);
                let branch = branch.to_owned();
                let result =
                    spawn_git(move || git.delete_remote_branch(&repo, &remote, &branch, &base))
                        .await?;
                match result {
                    Ok(RemoteDelete::Deleted) => Ok(BranchDelete::Deleted),
                    Ok(RemoteDelete::AlreadyGone) => Ok(BranchDelete::AlreadyGone),
                    Err(e) if refuses(&e) => Ok(BranchDelete::Refused(e.to_string())),
                    Err(e) => Err(e.into()),
                }
            }
            Kind::Gitea { client, repo, .. } => {
                Ok(client.delete_branch(repo, branch, &self.base).await?)
            }
        }
    }

    /// The forge's default branch, when the forge can say; `None` for a
    /// plain git remote.
    pub async fn default_branch(&self) -> Result<Option<String>, ForgeError> {
        match &self.kind {
            Kind::Git(_) => Ok(None),
            Kind::Gitea { client, repo, .. } => Ok(Some(client.default_branch(repo).await?)),
        }
    }

    fn blocking_args(&self, git: &Arc<GitLayer>) -> (Arc<GitLayer>, RepoName, String, String) {
        (
            Arc::clone(git),
            self.repo.clone(),
            self.remote.clone(),
            self.base.clone(),
        )
    }
}

/// Git errors that are a refusal rather than a failure: protected or
/// foreign branches, invalid names, a base that diverged, a feature branch
/// that moved since it was reviewed.
fn refuses(e: &GitError) -> bool {
    e.is_permanent() || matches!(e, GitError::BranchMoved { .. })
}

async fn spawn_git<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, GitError> + Send + 'static,
) -> Result<Result<T, GitError>, ForgeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ForgeError::Join(e.to_string()))
}
