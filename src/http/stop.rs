//! `POST /api/tasks/{key}/stop`: the API's STOP trigger. It never fails
//! because a step failed: the cancel proceeds or is retried (SPEC §7.2).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::tasks::resolve;
use super::{ApiError, HttpState};
use crate::cancel::StopAnswer;

pub async fn post(
    State(state): State<HttpState>,
    key: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path(key) = key?;
    // The body carries nothing, but a mutation must still be JSON (the
    // guard checked the content type); a body that is not JSON is refused.
    let _: serde_json::Value = super::body::json(body)?;
    let id = state.read(move |rx| resolve(rx, &key)).await?;
    let answer = state
        .rt
        .stop(id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(match answer {
        StopAnswer::Accepted { task_id, step } | StopAnswer::AlreadyRequested { task_id, step } => {
            (
                StatusCode::ACCEPTED,
                Json(json!({"task_id": task_id, "step": step.as_str()})),
            )
                .into_response()
        }
        StopAnswer::Noop { .. } => {
            (StatusCode::OK, Json(json!({"result": "noop"}))).into_response()
        }
        StopAnswer::Disabled { .. } => {
            return Err(ApiError::Conflict(
                "STOP is switched off (ORCH_STOP_STATUS_ENABLED=false); nothing changed".into(),
            ));
        }
    })
}
