//! The one place where errors become HTTP statuses. Every handler and the
//! guard return `ApiError`; its response is always JSON
//! `{"error": "one line"}` (`schema/error.json`).

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;

/// Error texts longer than this are cut, so a response stays one short line
/// whatever a lower layer put into its message.
const MAX_ERROR_CHARS: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("host {0:?} is not served here: use localhost or the address orch is bound to")]
    ForeignHost(String),
    #[error("mutating requests must have Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// A request line the server cannot read: query, path or cursor.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed JSON whose content is not acceptable.
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    RangeNotSatisfiable(String),
    /// The request conflicts with a switch or a state (a STOP while STOP is
    /// switched off).
    #[error("{0}")]
    Conflict(String),
    /// A webhook refused: its own status (401 bad signature, 413 oversize,
    /// 400 malformed, 503 no secret configured).
    #[error("{1}")]
    Webhook(u16, String),
    /// A dependency (the tracker's API) cannot be reached now; the sender
    /// should deliver again.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something on the server's side that the client cannot fix.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::ForeignHost(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MalformedJson(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Webhook(code, _) => {
                StatusCode::from_u16(*code).unwrap_or(StatusCode::BAD_REQUEST)
            }
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Store(e) => match e {
                StoreError::NotFound(_) => StatusCode::NOT_FOUND,
                StoreError::Conflict(_) | StoreError::Fenced { .. } => StatusCode::CONFLICT,
                StoreError::Invalid(_) | StoreError::Id(_) => StatusCode::UNPROCESSABLE_ENTITY,
                StoreError::Locked { .. } => StatusCode::SERVICE_UNAVAILABLE,
                StoreError::Db(_)
                | StoreError::Codec(_)
                | StoreError::NewerSchema { .. }
                | StoreError::Injected(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The text the client sees. Server-side failures are logged in full
    /// and answered with a short line: their detail (paths, database
    /// internals) helps an operator, not a client.
    fn client_message(&self) -> String {
        if self.status().is_server_error() {
            tracing::error!(error = %self, "request failed");
            return match self.status() {
                StatusCode::SERVICE_UNAVAILABLE => "the store is unavailable; try again".into(),
                _ => "internal error; the server log has the detail".into(),
            };
        }
        one_line(&self.to_string())
    }
}

/// Collapses control characters (newlines included) to spaces and caps the
/// length, so every error body is exactly one line.
pub fn one_line(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    match flat.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat.to_owned(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::json!({ "error": self.client_message() });
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(super::BODY_LIMIT)
        } else {
            ApiError::BadRequest(r.body_text())
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

/// A store read or write that could not run at all (the blocking task
/// panicked or was cancelled).
impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::Internal(format!("request task failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_short_line() {
        assert_eq!(one_line("a\nb\r\n c\t"), "a b   c");
        let long = "x".repeat(2 * MAX_ERROR_CHARS);
        assert_eq!(one_line(&long).chars().count(), MAX_ERROR_CHARS + 1);
    }

    #[test]
    fn store_errors_map_to_fitting_statuses() {
        let cases = [
            (StoreError::NotFound("task 9".into()), 404),
            (StoreError::Conflict("not blocked".into()), 409),
            (StoreError::Invalid("unknown dependency".into()), 422),
            (StoreError::Locked { path: "x".into() }, 503),
            (StoreError::Db("boom".into()), 500),
        ];
        for (e, code) in cases {
            assert_eq!(ApiError::from(e).status().as_u16(), code);
        }
    }
}
