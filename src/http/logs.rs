//! `GET /api/tasks/{key}/jobs/{job_id}/log?offset=`: an agent's log as
//! plain text, from a byte offset so a client can follow it. The response
//! says where to resume in `X-Next-Offset`.

use std::io::SeekFrom;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::tasks::resolve;
use super::{ApiError, HttpState};

/// The runner caps a log at 10 MiB; one response carries at most this much,
/// so a log that is somehow larger is still served in bounded pieces.
const MAX_CHUNK: u64 = 16 << 20;

const NEXT_OFFSET: HeaderName = HeaderName::from_static("x-next-offset");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    offset: Option<u64>,
}

pub async fn get(
    State(state): State<HttpState>,
    path: Result<Path<(String, u64)>, PathRejection>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path((key, job_id)) = path?;
    let Query(q) = query?;
    let offset = q.offset.unwrap_or(0);
    state
        .read(move |rx| {
            let task_id = resolve(rx, &key)?;
            match rx.job(job_id)? {
                Some(job) if job.task_id == task_id => Ok(()),
                _ => Err(ApiError::NotFound(format!(
                    "task {key:?} has no job {job_id}"
                ))),
            }
        })
        .await?;
    // The job id is a number, so the path cannot leave the logs directory.
    let path = state
        .rt
        .settings
        .data_dir
        .join("logs")
        .join(format!("{job_id}.log"));
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::NotFound(format!("job {job_id} has no log yet")));
        }
        Err(e) => return Err(ApiError::Internal(format!("{}: {e}", path.display()))),
    };
    let io = |e: std::io::Error| ApiError::Internal(format!("{}: {e}", path.display()));
    let len = file.metadata().await.map_err(io)?.len();
    if offset > len {
        return Err(ApiError::RangeNotSatisfiable(format!(
            "offset {offset} is past the end of the log ({len} bytes)"
        )));
    }
    file.seek(SeekFrom::Start(offset)).await.map_err(io)?;
    let mut buf = Vec::new();
    file.take(MAX_CHUNK)
        .read_to_end(&mut buf)
        .await
        .map_err(io)?;
    let next = offset + buf.len() as u64;
    let mut resp = (StatusCode::OK, buf).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(NEXT_OFFSET, HeaderValue::from(next));
    Ok(resp)
}
