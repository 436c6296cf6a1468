//! `GET /healthz`: the process answers and the store can be read.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::HttpState;

#[derive(Serialize)]
pub struct Health {
    status: &'static str,
    version: &'static str,
    db: &'static str,
}

/// 200 `{"status":"ok",…}`, or 503 with `"db":"error"` when a read
/// transaction cannot be opened (the detail goes to the log).
pub async fn get(State(state): State<HttpState>) -> (StatusCode, Json<Health>) {
    let version = env!("CARGO_PKG_VERSION");
    match state.read(|_| Ok(())).await {
        Ok(()) => (
            StatusCode::OK,
            Json(Health {
                status: "ok",
                version,
                db: "ok",
            }),
        ),
        Err(e) => {
            tracing::error!(error = %e, "health check: the store cannot be read");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "unavailable",
                    version,
                    db: "error",
                }),
            )
        }
    }
}
