//! `POST /webhooks/plane` and `POST /webhooks/gitea`. They are outside the
//! API guard: each verifies its own HMAC signature over the raw body (the
//! body limit applies before the hash is computed).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ApiError, HttpState};
use crate::cancel::StopAnswer;
use crate::plane::{Action, Intake, PlaneEvent};

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn ignored(reason: impl Into<String>) -> Response {
    (
        StatusCode::OK,
        Json(json!({"result": "ignored", "reason": reason.into()})),
    )
        .into_response()
}

/// Verify → parse → resolve the state → replay check → start or STOP.
pub async fn plane(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let settings = &state.rt.settings;
    let plane = &settings.plane;
    crate::plane::webhook::verify(
        plane.webhook_secret(),
        header(&headers, "X-Plane-Signature"),
        &body,
    )
    .map_err(|e| ApiError::Webhook(e.status(), e.to_string()))?;
    let change = match crate::plane::webhook::parse(&body)
        .map_err(|e| ApiError::Webhook(e.status(), e.to_string()))?
    {
        PlaneEvent::StateChange(c) => c,
        PlaneEvent::Ignored(reason) => return Ok(ignored(reason)),
    };
    let intake = Intake {
        start_state: &plane.start_state,
        stop_state: &plane.stop_state,
        repos: &settings.repos,
        client: state.rt.plane.as_deref(),
    };
    let action = intake
        .interpret(&change)
        .await
        .map_err(|e| ApiError::Unavailable(format!("the tracker could not be asked: {e}")))?;
    match action {
        Action::Ignore(reason) => Ok(ignored(reason)),
        Action::Start(req) => {
            let (result, task) = state
                .rt
                .start_from_tracker(req)
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok((StatusCode::OK, Json(json!({"result": result.as_str(), "task_id": task.id, "work_item_id": task.work_item_id}))).into_response())
        }
        Action::Stop(req) => {
            if !settings.gates().stop_enabled {
                // The switch is off: exactly as if STOP did not exist, but
                // the task's log says the state was seen.
                if let Ok(Some(id)) = state
                    .rt
                    .store
                    .read(|rx| rx.find_live_plane(req.plane_issue_id.as_str()))
                {
                    let _ = state.rt.stop(id).await;
                }
                return Ok(ignored("STOP is switched off"));
            }
            Ok(match state.rt.stop_from_tracker(req).await {
                Some(StopAnswer::Accepted { task_id, step })
                | Some(StopAnswer::AlreadyRequested { task_id, step }) => (
                    StatusCode::ACCEPTED,
                    Json(json!({"task_id": task_id, "step": step.as_str()})),
                )
                    .into_response(),
                Some(StopAnswer::Noop { .. }) => {
                    (StatusCode::OK, Json(json!({"result": "noop"}))).into_response()
                }
                Some(StopAnswer::Disabled { .. }) => ignored("STOP is switched off"),
                None => ignored("no live task for this issue"),
            })
        }
    }
}

/// A pull request a human closed without merging is recorded on its task.
pub async fn gitea(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let gitea = &state.rt.settings.gitea;
    crate::gitea::webhook::verify(
        gitea.webhook_secret(),
        header(&headers, "X-Gitea-Signature"),
        &body,
    )
    .map_err(|e| ApiError::Webhook(e.status(), e.to_string()))?;
    let event = crate::gitea::webhook::parse(header(&headers, "X-Gitea-Event"), &body)
        .map_err(|e| ApiError::Webhook(e.status(), e.to_string()))?;
    match event {
        crate::gitea::GiteaEvent::Ignored(reason) => Ok(ignored(reason)),
        crate::gitea::GiteaEvent::ClosedWithoutMerge(pull) => {
            let repo = state
                .rt
                .settings
                .repos
                .iter()
                .find(|r| r.gitea.as_deref() == Some(pull.repo.to_string().as_str()))
                .map(|r| r.name.to_string());
            let Some(repo) = repo else {
                return Ok(ignored("repository not configured"));
            };
            let found = state
                .rt
                .pull_request_closed(&repo, pull.head.as_str(), pull.number)
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(if found {
                (StatusCode::OK, Json(json!({"result": "recorded"}))).into_response()
            } else {
                ignored("no live task for this branch")
            })
        }
    }
}
