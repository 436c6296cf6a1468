//! A fake Plane: the v1 API paths orch uses under
//! `/api/v1/workspaces/{slug}/projects/{project_id}/…`, with `X-Api-Key`
//! checked, Django's trailing slashes required, `work-items` and the older
//! `issues` paths, paginated states, comments and relations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use orch::plane::{PlaneApiConfig, PlaneClient, RetryPolicy, Secret};

use super::{Script, Scripted, Seen, empty, serve};

pub const TOKEN: &str = "plane_api_test_token_1234";
pub const WORKSPACE: &str = "acme";
pub const PROJECT: &str = "a1c2e3f4-5b6d-4e7f-8a9b-0c1d2e3f4a5b";
pub const ISSUE: &str = "3b2f9a4c-8d1e-4f6a-9c2b-7e5d1a0b3c4d";
pub const TO_ANALYSE: &str = "b6c7d8e9-0f1a-4b2c-9d3e-4f5a6b7c8d9e";
pub const IN_PROGRESS: &str = "2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d";
pub const DONE: &str = "3b4c5d6e-7f8a-4b9c-8d1e-2f3a4b5c6d7e";
pub const STOP: &str = "c7d8e9f0-1a2b-4c3d-8e4f-5a6b7c8d9e0f";

pub const PROJECT_JSON: &str = include_str!("fixtures/project.json");
pub const STATES_JSON: &str = include_str!("fixtures/states.json");
pub const STATE_UPDATED: &str = include_str!("fixtures/issue-state-updated.json");
pub const PRIORITY_UPDATED: &str = include_str!("fixtures/issue-priority-updated.json");

#[derive(Debug, Clone)]
pub struct Issue {
    pub project: String,
    pub state: String,
    pub sequence_id: u64,
    pub name: String,
}

#[derive(Debug, Default)]
pub struct PlaneState {
    /// Project id → the project JSON.
    pub projects: HashMap<String, Value>,
    /// The states of every project.
    pub states: Vec<Value>,
    /// States per page; 0 answers them all at once.
    pub page_size: usize,
    pub issues: HashMap<String, Issue>,
    /// Issue id → the ids it is blocked by.
    pub blocked_by: HashMap<String, Vec<String>>,
    /// (issue id, `comment_html`) in arrival order.
    pub comments: Vec<(String, String)>,
    /// Only the older `issues/` paths exist, as on instances before the
    /// work-items rename.
    pub legacy_only: bool,
    pub script: Script,
    pub seen: Vec<Seen>,
}

#[derive(Clone)]
pub struct FakePlane {
    pub url: String,
    state: Arc<Mutex<PlaneState>>,
}

impl FakePlane {
    /// The fixtures' world: project ORCH with its five states, and issue
    /// ORCH-90 currently in STOP.
    pub async fn start() -> Self {
        let project: Value = serde_json::from_str(PROJECT_JSON).expect("project fixture");
        let states: Value = serde_json::from_str(STATES_JSON).expect("states fixture");
        let mut st = PlaneState {
            states: states["results"].as_array().expect("results").clone(),
            ..PlaneState::default()
        };
        st.projects.insert(PROJECT.into(), project);
        st.issues.insert(
            ISSUE.into(),
            Issue {
                project: PROJECT.into(),
                state: STOP.into(),
                sequence_id: 90,
                name: "Cancel tasks from the tracker".into(),
            },
        );
        let state = Arc::new(Mutex::new(st));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let addr = serve(app).await;
        Self {
            url: format!("http://{addr}"),
            state,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, PlaneState> {
        self.state.lock().expect("fake state")
    }

    pub fn script(&self, s: Scripted) {
        self.lock().script.push(s);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    pub fn api(&self) -> PlaneApiConfig {
        PlaneApiConfig {
            url: self.url.clone(),
            token: Secret::new(TOKEN),
            workspace: WORKSPACE.into(),
        }
    }

    /// A client with short waits, so retry tests stay fast.
    pub fn client(&self) -> PlaneClient {
        PlaneClient::new(self.api(), fast_retry()).expect("client")
    }

    pub fn set_state(&self, issue: &str, state: &str) {
        self.lock()
            .issues
            .get_mut(issue)
            .expect("known issue")
            .state = state.into();
    }

    pub fn add_issue(&self, id: &str, state: &str, sequence_id: u64) {
        self.lock().issues.insert(
            id.into(),
            Issue {
                project: PROJECT.into(),
                state: state.into(),
                sequence_id,
                name: format!("issue {sequence_id}"),
            },
        );
    }
}

pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        max_total: Duration::from_secs(5),
    }
}

async fn handle(
    State(state): State<Arc<Mutex<PlaneState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = Seen::new(method, &uri, &headers, &body);
    let mut st = state.lock().expect("fake state");
    st.seen.push(seen.clone());
    if let Some(answer) = st.script.next() {
        return answer.respond();
    }
    if seen.header("x-api-key") != Some(TOKEN) {
        return super::json(401, json!({"error": "Invalid API key"}));
    }
    // Django routes only the paths with a trailing slash.
    if !seen.path.ends_with('/') {
        return empty(404);
    }
    let segments = seen.segments();
    match segments.as_slice() {
        ["api", "v1", "workspaces", ws, "projects", rest @ ..] if *ws == WORKSPACE => {
            route(&mut st, &seen, rest)
        }
        _ => not_found(),
    }
}

fn route(st: &mut PlaneState, seen: &Seen, rest: &[&str]) -> Response {
    let get = seen.method == Method::GET;
    let post = seen.method == Method::POST;
    match rest {
        [project] if get => match st.projects.get(*project) {
            Some(p) => super::json(200, p.clone()),
            None => not_found(),
        },
        [project, "states"] if get && st.projects.contains_key(*project) => states_page(st, seen),
        [_, kind, issue, tail @ ..] if matches!(*kind, "work-items" | "issues") => {
            if st.legacy_only && *kind == "work-items" {
                return not_found();
            }
            let Some(found) = st.issues.get(*issue).cloned() else {
                return not_found();
            };
            match tail {
                [] if get => super::json(
                    200,
                    json!({
                        "id": issue,
                        "project": found.project,
                        "sequence_id": found.sequence_id,
                        "state": found.state,
                        "name": found.name,
                        "priority": "high",
                    }),
                ),
                ["comments"] if post => {
                    let html = seen.json()["comment_html"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    st.comments.push((issue.to_string(), html.clone()));
                    super::json(
                        201,
                        json!({"id": "c0ffee00-0000-4000-8000-000000000001", "comment_html": html}),
                    )
                }
                ["relations"] if get => super::json(
                    200,
                    json!({
                        "blocking": [],
                        "blocked_by": st.blocked_by.get(*issue).cloned().unwrap_or_default(),
                        "duplicate": [],
                        "relates_to": [],
                        "start_after": [],
                        "start_before": [],
                        "finish_after": [],
                        "finish_before": [],
                    }),
                ),
                _ => not_found(),
            }
        }
        _ => not_found(),
    }
}

/// Plane's cursor pagination: `cursor=<per_page>:<page>:<is_prev>`.
fn states_page(st: &PlaneState, seen: &Seen) -> Response {
    let size = if st.page_size == 0 {
        st.states.len().max(1)
    } else {
        st.page_size
    };
    let page: usize = seen
        .query
        .get("cursor")
        .and_then(|c| c.split(':').nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let results: Vec<Value> = st
        .states
        .iter()
        .skip(page * size)
        .take(size)
        .cloned()
        .collect();
    let more = (page + 1) * size < st.states.len();
    super::json(
        200,
        json!({
            "results": results,
            "next_cursor": format!("{size}:{}:0", page + 1),
            "prev_cursor": format!("{size}:{}:1", page.saturating_sub(1)),
            "next_page_results": more,
            "prev_page_results": page > 0,
            "count": st.states.len(),
        }),
    )
}

fn not_found() -> Response {
    super::json(
        404,
        json!({"error": "The requested resource does not exist."}),
    )
}
