//! The Gitea API client (SPEC §8.2): default branch, pull requests, the
//! deploy merge and remote branch deletion.
//!
//! It does not retry by itself: a merge or a deletion that failed for a
//! passing reason is retried by its caller (the deploy job, the cleanup
//! debt of a cancel), which records each attempt. Answers that are part of
//! the protocol — a protected branch, a moved head, an already merged pull
//! request — come back as outcomes, never as errors to be retried.

use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, USER_AGENT};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::GiteaError;
use super::types::{MergeStyle, PullRequest, RawPull, RepoRef};
use crate::forge::{BranchDelete, MergeOutcome};
use crate::git::names::{self, FeatureBranch, Protected};
use crate::plane::Secret;
use crate::plane::error::excerpt;

/// Page size and page count when looking up an existing pull request.
const PAGE: usize = 50;
const MAX_PAGES: usize = 20;

/// A Gitea API client. Cheap to share behind an `Arc`.
pub struct GiteaClient {
    http: reqwest::Client,
    base: Url,
    token: Secret,
    /// `token <…>` as a header value marked sensitive.
    auth: HeaderValue,
}

impl std::fmt::Debug for GiteaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GiteaClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token)
            .finish()
    }
}

/// What opening a pull request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    Created(PullRequest),
    /// Gitea answered 409: an open pull request for the same head and
    /// base already existed, so a repeated open is harmless.
    Existing(PullRequest),
}

impl Opened {
    pub fn pull(&self) -> &PullRequest {
        match self {
            Self::Created(p) | Self::Existing(p) => p,
        }
    }
}

impl GiteaClient {
    /// A client for the instance at `url` (its root; `/api/v1` is added).
    pub fn new(url: &str, token: Secret) -> Result<Self, GiteaError> {
        let base = Url::parse(url).map_err(|e| GiteaError::Setup(e.to_string()))?;
        if base.cannot_be_a_base() {
            return Err(GiteaError::Setup("the Gitea URL cannot be a base".into()));
        }
        let mut auth = HeaderValue::from_str(&format!("token {}", token.expose()))
            .map_err(|_| GiteaError::Setup("the token is not a valid header value".into()))?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| GiteaError::Setup(e.without_url().to_string()))?;
        Ok(Self {
            http,
            base,
            token,
            auth,
        })
    }

    /// The repository's default branch.
    pub async fn default_branch(&self, repo: &RepoRef) -> Result<String, GiteaError> {
        const OP: &str = "get repository";
        #[derive(Deserialize)]
        struct RawRepo {
            default_branch: String,
        }
        let (status, body) = self
            .send(OP, Method::GET, self.url(repo, &[]), None)
            .await?;
        let raw: RawRepo = decode(OP, expect(OP, status, &body, StatusCode::OK)?)?;
        Ok(raw.default_branch)
    }

    /// Opens a pull request from `head` into `base`; an existing open one
    /// for the same pair (409) is looked up and returned instead.
    pub async fn open_pull_request(
        &self,
        repo: &RepoRef,
        head: &FeatureBranch,
        base: &str,
        title: &str,
        body: &str,
    ) -> Result<Opened, GiteaError> {
        const OP: &str = "open pull request";
        let base = names::base_branch(base).map_err(|e| GiteaError::Setup(e.to_string()))?;
        let payload = serde_json::json!({
            "head": head.as_str(),
            "base": base,
            "title": title,
            "body": body,
        });
        let url = self.url(repo, &["pulls"]);
        let (status, resp) = self.send(OP, Method::POST, url, Some(&payload)).await?;
        match status {
            StatusCode::CREATED => {
                let raw: RawPull = decode(OP, &resp)?;
                Ok(Opened::Created(raw.into()))
            }
            StatusCode::CONFLICT => self
                .find_open_pull_request(repo, head.as_str(), base)
                .await?
                .map(Opened::Existing)
                .ok_or_else(|| GiteaError::PullRequestNotFound {
                    op: OP,
                    head: head.to_string(),
                    base: base.to_owned(),
                }),
            _ => Err(status_error(OP, status, &resp)),
        }
    }

    /// The open pull request from `head` into `base`, if there is one.
    pub async fn find_open_pull_request(
        &self,
        repo: &RepoRef,
        head: &str,
        base: &str,
    ) -> Result<Option<PullRequest>, GiteaError> {
        const OP: &str = "list pull requests";
        for page in 1..=MAX_PAGES {
            let mut url = self.url(repo, &["pulls"]);
            url.query_pairs_mut()
                .append_pair("state", "open")
                .append_pair("base_branch", base)
                .append_pair("limit", &PAGE.to_string())
                .append_pair("page", &page.to_string());
            let (status, body) = self.send(OP, Method::GET, url, None).await?;
            let pulls: Vec<RawPull> = decode(OP, expect(OP, status, &body, StatusCode::OK)?)?;
            let count = pulls.len();
            // Older Gitea ignores `base_branch`, so both ends are compared here.
            let found = pulls
                .into_iter()
                .map(PullRequest::from)
                .find(|p| p.head_ref == head && p.base_ref == base);
            if found.is_some() {
                return Ok(found);
            }
            if count < PAGE {
                break;
            }
        }
        Ok(None)
    }

    /// One pull request by number, or `None` if Gitea does not know it.
    pub async fn pull_request(
        &self,
        repo: &RepoRef,
        number: u64,
    ) -> Result<Option<PullRequest>, GiteaError> {
        const OP: &str = "get pull request";
        let url = self.url(repo, &["pulls", &number.to_string()]);
        let (status, body) = self.send(OP, Method::GET, url, None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let raw: RawPull = decode(OP, expect(OP, status, &body, StatusCode::OK)?)?;
        Ok(Some(raw.into()))
    }

    /// Merges pull request `number` with `style`, only if its head is still
    /// `head_commit_id` (the reviewed commit): Gitea refuses a moved head
    /// with 409. 405 means merged already or not mergeable; which one is
    /// read back from the pull request.
    pub async fn merge(
        &self,
        repo: &RepoRef,
        number: u64,
        style: MergeStyle,
        head_commit_id: &str,
    ) -> Result<MergeOutcome, GiteaError> {
        const OP: &str = "merge pull request";
        if !is_commit_id(head_commit_id) {
            return Err(GiteaError::Setup(format!(
                "{head_commit_id:?} is not a full commit id"
            )));
        }
        let payload = serde_json::json!({
            "Do": style.as_str(),
            "head_commit_id": head_commit_id,
            "delete_branch_after_merge": false,
        });
        let url = self.url(repo, &["pulls", &number.to_string(), "merge"]);
        let (status, body) = self.send(OP, Method::POST, url, Some(&payload)).await?;
        match status {
            StatusCode::OK => Ok(MergeOutcome::Merged),
            StatusCode::METHOD_NOT_ALLOWED => {
                if let Some(pr) = self.pull_request(repo, number).await?
                    && pr.merged
                {
                    return Ok(MergeOutcome::AlreadyMerged);
                }
                let detail = excerpt(&body);
                if detail.contains("try again later") {
                    return Err(GiteaError::Busy {
                        op: OP,
                        detail: format!("pull request #{number} is still being checked: {detail}"),
                    });
                }
                Ok(MergeOutcome::Refused(format!(
                    "pull request #{number} cannot be merged: {detail}"
                )))
            }
            StatusCode::CONFLICT => Ok(MergeOutcome::Refused(format!(
                "pull request #{number} refused: head moved from {head_commit_id} or conflicts: {}",
                excerpt(&body)
            ))),
            StatusCode::NOT_FOUND => Ok(MergeOutcome::Refused(format!(
                "pull request #{number} not found or closed"
            ))),
            _ => Err(status_error(OP, status, &body)),
        }
    }

    /// Deletes the feature branch `branch` on the forge. The base branch,
    /// `main`, `master` and the repository's default branch are refused
    /// before any request, whatever the caller passes; Gitea's own 403
    /// (default or protected branch) is a refusal too, final and never
    /// retried as something else. 404 means already gone.
    pub async fn delete_branch(
        &self,
        repo: &RepoRef,
        branch: &str,
        base: &str,
    ) -> Result<BranchDelete, GiteaError> {
        const OP: &str = "delete branch";
        let guard = Protected {
            base,
            remote_default: None,
        };
        let branch = match names::deletable_branch(branch, &guard) {
            Ok(b) => b,
            Err(e) => return Ok(BranchDelete::Refused(e.to_string())),
        };
        let default = self.default_branch(repo).await?;
        let guard = Protected {
            base,
            remote_default: Some(&default),
        };
        if let Err(e) = names::deletable_branch(branch.as_str(), &guard) {
            return Ok(BranchDelete::Refused(e.to_string()));
        }
        let mut segments = vec!["branches"];
        segments.extend(branch.as_str().split('/'));
        let url = self.url(repo, &segments);
        let (status, body) = self.send(OP, Method::DELETE, url, None).await?;
        match status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(BranchDelete::Deleted),
            StatusCode::NOT_FOUND => Ok(BranchDelete::AlreadyGone),
            StatusCode::FORBIDDEN => Ok(BranchDelete::Refused(format!(
                "Gitea refused to delete {branch}: {}",
                excerpt(&body)
            ))),
            _ => Err(status_error(OP, status, &body)),
        }
    }

    /// `<base>/api/v1/repos/<owner>/<name>/<segments…>`, each segment
    /// percent-encoded on its own.
    fn url(&self, repo: &RepoRef, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new: the base URL can be a base")
            .pop_if_empty()
            .extend([
                "api",
                "v1",
                "repos",
                repo.owner.as_str(),
                repo.name.as_str(),
            ])
            .extend(segments);
        url
    }

    async fn send(
        &self,
        op: &'static str,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, Vec<u8>), GiteaError> {
        let mut req = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, concat!("orch/", env!("CARGO_PKG_VERSION")));
        if let Some(body) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let transport = |e: reqwest::Error| GiteaError::Transport {
            op,
            detail: e.without_url().to_string(),
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?;
        Ok((status, bytes.to_vec()))
    }
}

fn expect<'a>(
    op: &'static str,
    status: StatusCode,
    body: &'a [u8],
    want: StatusCode,
) -> Result<&'a [u8], GiteaError> {
    if status == want {
        Ok(body)
    } else {
        Err(status_error(op, status, body))
    }
}

fn status_error(op: &'static str, status: StatusCode, body: &[u8]) -> GiteaError {
    GiteaError::Status {
        op,
        status: status.as_u16(),
        detail: excerpt(body),
    }
}

fn decode<T: DeserializeOwned>(op: &'static str, body: &[u8]) -> Result<T, GiteaError> {
    serde_json::from_slice(body).map_err(|e| GiteaError::Decode {
        op,
        detail: e.to_string(),
    })
}

/// A full SHA-1 or SHA-256 commit id in hex.
fn is_commit_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}
