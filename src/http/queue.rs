//! `GET /queue`: the claim snapshot (`crate::queue`).

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, HttpState};
use crate::queue::snapshot;

pub async fn get(State(state): State<HttpState>) -> Result<Response, ApiError> {
    let store = state.rt.store.clone();
    let now = crate::runtime::now();
    // With hundreds of repos the snapshot lists thousands of entries: it is
    // read and serialised off the async threads, which serve other requests.
    let body = tokio::task::spawn_blocking(move || serde_json::to_vec(&snapshot(&store, now)))
        .await?
        .map_err(|e| ApiError::Internal(format!("serialising the snapshot: {e}")))?;
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
