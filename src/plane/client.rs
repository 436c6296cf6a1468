//! The Plane API client (SPEC §8.1): project identifiers, state names and
//! groups, the replay check, comments and "blocked by" relations.
//!
//! Every call is async and bounded by [`RetryPolicy`]; callers that must
//! not wait (workers, the cancel path) spawn it. Issue endpoints use the
//! current `work-items` paths and fall back once to the older `issues`
//! paths when an instance does not know them, remembering the answer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue, USER_AGENT};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::config::PlaneApiConfig;
use super::error::{PlaneError, excerpt};
use super::html;
use super::retry::{RetryPolicy, is_retryable, retry_after};
use super::types::{Blocker, Issue, Replay, State, StateGroup};
use super::webhook::StateChange;
use crate::domain::{PlaneIssueId, WorkItemId};

/// The header Plane reads the API key from.
pub const API_KEY_HEADER: &str = "X-Api-Key";

/// Pages of states read at most; a project has a handful of states, so
/// this only guards against a server that keeps handing out cursors.
const MAX_PAGES: usize = 20;

/// A Plane API client for one workspace. Cheap to share behind an `Arc`;
/// it caches project identifiers and state lists.
pub struct PlaneClient {
    http: reqwest::Client,
    base: Url,
    api: PlaneApiConfig,
    /// The API key as a header value marked sensitive, so HTTP-level
    /// debugging never prints it.
    key: HeaderValue,
    retry: RetryPolicy,
    legacy_paths: AtomicBool,
    identifiers: Mutex<HashMap<Uuid, String>>,
    states: Mutex<HashMap<Uuid, Vec<State>>>,
}

impl std::fmt::Debug for PlaneClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaneClient")
            .field("api", &self.api)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

struct Response {
    status: StatusCode,
    body: Vec<u8>,
}

impl PlaneClient {
    pub fn new(api: PlaneApiConfig, retry: RetryPolicy) -> Result<Self, PlaneError> {
        let base = Url::parse(&api.url).map_err(|e| PlaneError::Setup(e.to_string()))?;
        if base.cannot_be_a_base() {
            return Err(PlaneError::Setup("the Plane URL cannot be a base".into()));
        }
        let mut key = HeaderValue::from_str(api.token.expose())
            .map_err(|_| PlaneError::Setup("the API token is not a valid header value".into()))?;
        key.set_sensitive(true);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| PlaneError::Setup(e.without_url().to_string()))?;
        Ok(Self {
            http,
            base,
            api,
            key,
            retry,
            legacy_paths: AtomicBool::new(false),
            identifiers: Mutex::new(HashMap::new()),
            states: Mutex::new(HashMap::new()),
        })
    }

    /// The project's identifier (`ORCH` in `ORCH-90`), read once per
    /// project and cached.
    pub async fn project_identifier(&self, project: Uuid) -> Result<String, PlaneError> {
        if let Some(id) = lock(&self.identifiers).get(&project) {
            return Ok(id.clone());
        }
        const OP: &str = "get project";
        let url = self.url(&["projects", &project.to_string()]);
        let raw: RawProject = decode(OP, ok(OP, self.send(OP, Method::GET, url, None).await?)?)?;
        if WorkItemId::from_parts(&raw.identifier, 1).is_err() {
            return Err(PlaneError::Decode {
                op: OP,
                detail: format!("project identifier {:?} is not usable", raw.identifier),
            });
        }
        lock(&self.identifiers).insert(project, raw.identifier.clone());
        Ok(raw.identifier)
    }

    /// All states of a project, read fresh (following pagination) and
    /// cached for [`Self::state`].
    pub async fn states(&self, project: Uuid) -> Result<Vec<State>, PlaneError> {
        const OP: &str = "list states";
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = self.url(&["projects", &project.to_string(), "states"]);
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("per_page", "100");
                if let Some(c) = &cursor {
                    q.append_pair("cursor", c);
                }
            }
            let body = ok(OP, self.send(OP, Method::GET, url, None).await?)?;
            let page: StatePage = decode(OP, body)?;
            let (results, next) = match page {
                StatePage::Paginated {
                    results,
                    next_page_results,
                    next_cursor,
                } => (results, next_cursor.filter(|_| next_page_results)),
                StatePage::Plain(results) => (results, None),
            };
            all.extend(results.into_iter().map(|s| State {
                id: s.id,
                name: s.name,
                group: StateGroup::parse(&s.group),
            }));
            match next {
                Some(c) if cursor.as_deref() != Some(c.as_str()) => cursor = Some(c),
                _ => break,
            }
        }
        lock(&self.states).insert(project, all.clone());
        Ok(all)
    }

    /// One state by id, from the cache when it is there; a miss re-reads
    /// the project's states once, since states can be added at any time.
    pub async fn state(&self, project: Uuid, state: Uuid) -> Result<Option<State>, PlaneError> {
        let cached = lock(&self.states)
            .get(&project)
            .and_then(|all| all.iter().find(|s| s.id == state).cloned());
        if cached.is_some() {
            return Ok(cached);
        }
        Ok(self
            .states(project)
            .await?
            .into_iter()
            .find(|s| s.id == state))
    }

    /// The issue as it is now, or `None` when Plane does not know it.
    pub async fn issue(
        &self,
        project: Uuid,
        issue: &PlaneIssueId,
    ) -> Result<Option<Issue>, PlaneError> {
        const OP: &str = "get issue";
        let resp = self
            .issue_call(OP, Method::GET, project, issue, &[], None)
            .await?;
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let raw: RawIssue = decode(OP, ok(OP, resp)?)?;
        let state_id = match (raw.state, raw.state_id) {
            (Some(StateRef::Id(id)), _) | (Some(StateRef::Object { id }), _) => id,
            (None, Some(id)) => id,
            (None, None) => {
                return Err(PlaneError::Decode {
                    op: OP,
                    detail: "the issue has no state".into(),
                });
            }
        };
        Ok(Some(Issue {
            id: PlaneIssueId::parse(&raw.id.to_string()).expect("a UUID is a valid issue id"),
            project_id: raw.project.or(raw.project_id),
            sequence_id: raw.sequence_id,
            state_id,
            name: raw.name,
        }))
    }

    /// The replay check (SPEC §8.1, TC-44): a webhook signature carries no
    /// timestamp, so a captured delivery could be sent again later. orch
    /// acts only if the issue is still in the state the delivery names.
    pub async fn replay_check(&self, change: &StateChange) -> Result<Replay, PlaneError> {
        Ok(
            match self.issue(change.project_id, &change.issue_id).await? {
                None => Replay::Gone,
                Some(now) if now.state_id == change.state_id => Replay::Current,
                Some(now) => Replay::Moved {
                    current_state_id: now.state_id,
                },
            },
        )
    }

    /// Adds a comment. `text` is plain text: it is HTML-escaped here, since
    /// it may quote agent output.
    pub async fn add_comment(
        &self,
        project: Uuid,
        issue: &PlaneIssueId,
        text: &str,
    ) -> Result<(), PlaneError> {
        const OP: &str = "add comment";
        let body = serde_json::json!({ "comment_html": html::comment_html(text) });
        let resp = self
            .issue_call(OP, Method::POST, project, issue, &["comments"], Some(&body))
            .await?;
        ok(OP, resp).map(drop)
    }

    /// The issues `issue` is blocked by. For those `is_known` says orch
    /// does not track as tasks (external dependencies, SPEC §5.3), their
    /// current state group is read as well, so the caller can tell whether
    /// they are completed or cancelled.
    pub async fn blocked_by(
        &self,
        project: Uuid,
        issue: &PlaneIssueId,
        is_known: impl Fn(&PlaneIssueId) -> bool,
    ) -> Result<Vec<Blocker>, PlaneError> {
        const OP: &str = "list relations";
        let resp = self
            .issue_call(OP, Method::GET, project, issue, &["relations"], None)
            .await?;
        let raw: RawRelations = decode(OP, ok(OP, resp)?)?;
        let mut blockers = Vec::with_capacity(raw.blocked_by.len());
        for id in raw.blocked_by {
            let issue_id =
                PlaneIssueId::parse(&id.to_string()).expect("a UUID is a valid issue id");
            let state_group = if is_known(&issue_id) {
                None
            } else {
                self.state_group_of(project, &issue_id).await?
            };
            blockers.push(Blocker {
                issue_id,
                state_group,
            });
        }
        Ok(blockers)
    }

    async fn state_group_of(
        &self,
        project: Uuid,
        issue: &PlaneIssueId,
    ) -> Result<Option<StateGroup>, PlaneError> {
        let Some(found) = self.issue(project, issue).await? else {
            return Ok(None);
        };
        let project = found.project_id.unwrap_or(project);
        Ok(self.state(project, found.state_id).await?.map(|s| s.group))
    }

    /// An issue endpoint under the current path, falling back once to the
    /// older one on 404 and remembering when only the older one exists.
    async fn issue_call(
        &self,
        op: &'static str,
        method: Method,
        project: Uuid,
        issue: &PlaneIssueId,
        tail: &[&str],
        body: Option<&serde_json::Value>,
    ) -> Result<Response, PlaneError> {
        let legacy = self.legacy_paths.load(Ordering::Relaxed);
        let url = self.issue_url(project, issue, tail, legacy);
        let resp = self.send(op, method.clone(), url, body).await?;
        if resp.status != StatusCode::NOT_FOUND || legacy {
            return Ok(resp);
        }
        let url = self.issue_url(project, issue, tail, true);
        let old = self.send(op, method, url, body).await?;
        if old.status != StatusCode::NOT_FOUND {
            self.legacy_paths.store(true, Ordering::Relaxed);
        }
        Ok(old)
    }

    fn issue_url(&self, project: Uuid, issue: &PlaneIssueId, tail: &[&str], legacy: bool) -> Url {
        let project = project.to_string();
        let kind = if legacy { "issues" } else { "work-items" };
        let mut segments = vec!["projects", project.as_str(), kind, issue.as_str()];
        segments.extend_from_slice(tail);
        self.url(&segments)
    }

    /// `<base>/api/v1/workspaces/<slug>/<segments…>/`. Segments are pushed
    /// one by one, so each is percent-encoded and none can add a path level.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .expect("checked in new: the base URL can be a base");
            path.pop_if_empty()
                .extend(["api", "v1", "workspaces", self.api.workspace.as_str()])
                .extend(segments)
                .push("");
        }
        url
    }

    /// Sends one request, retrying rate limits, server errors and network
    /// failures within the retry policy. Any other answer is returned as it
    /// is, for the caller to interpret.
    async fn send(
        &self,
        op: &'static str,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, PlaneError> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (wait, last) = match self.attempt(method.clone(), url.clone(), body).await {
                Ok(resp) => return Ok(resp),
                Err(failure) => failure,
            };
            let elapsed = started.elapsed();
            let delay = wait.unwrap_or_else(|| self.retry.backoff(attempt));
            if let Some(asked) = wait
                && elapsed + asked > self.retry.max_total
            {
                return Err(PlaneError::RateLimited {
                    op,
                    retry_after_secs: asked.as_secs(),
                });
            }
            if attempt >= self.retry.max_attempts || elapsed + delay > self.retry.max_total {
                tracing::warn!(op, attempt, %last, "Plane API call gave up");
                return Err(PlaneError::Exhausted {
                    op,
                    attempts: attempt,
                    elapsed_ms: elapsed.as_millis(),
                    last,
                });
            }
            tracing::debug!(op, attempt, ?delay, %last, "Plane API call will be retried");
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt. `Err` carries the server's requested wait, if any, and
    /// a description of a failure worth retrying.
    async fn attempt(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, (Option<Duration>, String)> {
        let mut req = self
            .http
            .request(method, url)
            .header(API_KEY_HEADER, self.key.clone())
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, concat!("orch/", env!("CARGO_PKG_VERSION")));
        if let Some(body) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| (None, e.without_url().to_string()))?;
        let status = resp.status();
        let wait = retry_after(resp.headers());
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| (None, e.without_url().to_string()))?;
        if is_retryable(status) {
            return Err((
                wait,
                format!("HTTP {}: {}", status.as_u16(), excerpt(&bytes)),
            ));
        }
        Ok(Response {
            status,
            body: bytes.to_vec(),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The caches hold plain data that a panic cannot leave half-written.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The body of a 2xx answer, or the status as an error.
fn ok(op: &'static str, resp: Response) -> Result<Vec<u8>, PlaneError> {
    if resp.status.is_success() {
        Ok(resp.body)
    } else {
        Err(PlaneError::Status {
            op,
            status: resp.status.as_u16(),
            detail: excerpt(&resp.body),
        })
    }
}

fn decode<T: DeserializeOwned>(op: &'static str, body: Vec<u8>) -> Result<T, PlaneError> {
    serde_json::from_slice(&body).map_err(|e| PlaneError::Decode {
        op,
        detail: e.to_string(),
    })
}

#[derive(Deserialize)]
struct RawProject {
    identifier: String,
}

#[derive(Deserialize)]
struct RawState {
    id: Uuid,
    name: String,
    group: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StatePage {
    Paginated {
        results: Vec<RawState>,
        #[serde(default)]
        next_page_results: bool,
        #[serde(default)]
        next_cursor: Option<String>,
    },
    Plain(Vec<RawState>),
}

#[derive(Deserialize)]
struct RawIssue {
    id: Uuid,
    #[serde(default)]
    project: Option<Uuid>,
    #[serde(default)]
    project_id: Option<Uuid>,
    #[serde(default)]
    sequence_id: Option<u64>,
    /// An id, or the state object when the request expanded it.
    #[serde(default)]
    state: Option<StateRef>,
    #[serde(default)]
    state_id: Option<Uuid>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StateRef {
    Id(Uuid),
    Object { id: Uuid },
}

#[derive(Deserialize)]
struct RawRelations {
    #[serde(default)]
    blocked_by: Vec<Uuid>,
}
