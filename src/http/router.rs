//! Every route of the API, in one list.
//!
//! A new route is one `.route(…)` line here. The guard in `auth` applies to
//! every path by prefix, so a route under `/api/` gets the Host check, the
//! token and the JSON-only rule with nothing else to do, and a route under
//! `/webhooks/` gets none of them and must verify its own signature. The
//! body limit applies to every route; a handler that takes `Bytes` gets the
//! raw body, already capped.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

use super::{
    ApiError, BODY_LIMIT, HttpState, auth, health, logs, metrics, queue, stop, tasks, webhooks,
};

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(health::get))
        .route("/queue", get(queue::get))
        .route("/metrics", get(metrics::get))
        .route("/api/tasks", get(tasks::list).post(tasks::start))
        .route("/api/tasks/{key}", get(tasks::show))
        .route("/api/tasks/{key}/retry", post(tasks::retry))
        .route("/api/tasks/{key}/stop", post(stop::post))
        .route("/webhooks/plane", post(webhooks::plane))
        .route("/webhooks/gitea", post(webhooks::gitea))
        .route("/api/tasks/{key}/jobs/{job_id}/log", get(logs::get))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(from_fn_with_state(state.clone(), auth::guard))
        .with_state(state)
}
