//! `GET /queue`: the claim snapshot (`crate::queue`).

use axum::Json;
use axum::extract::State;

use super::{ApiError, HttpState};
use crate::queue::{QueueSnapshot, snapshot};

pub async fn get(State(state): State<HttpState>) -> Result<Json<QueueSnapshot>, ApiError> {
    let store = state.rt.store.clone();
    let now = crate::runtime::now();
    // The snapshot reads several indexes synchronously: off the async threads.
    let snap = tokio::task::spawn_blocking(move || snapshot(&store, now)).await?;
    Ok(Json(snap))
}
