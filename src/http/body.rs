//! Request bodies: the size limit is enforced by the extractor before this
//! runs; here the bytes become a typed request, with syntax errors (400)
//! told apart from well-formed JSON of the wrong shape (422).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::ApiError;

/// Parses a JSON request body. An empty body stands for `{}` when the
/// request type has a default (every field optional), so `retry` needs no
/// body at all.
pub fn json<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body?;
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(text).map_err(|e| match e.classify() {
        Category::Syntax | Category::Eof => ApiError::MalformedJson(e.to_string()),
        Category::Data => ApiError::Unprocessable(format!("invalid request body: {e}")),
        Category::Io => ApiError::BadRequest(format!("unreadable request body: {e}")),
    })
}
