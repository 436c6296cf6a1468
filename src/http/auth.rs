//! The guard every request passes before its handler, in this order:
//! 1. the Host check (DNS rebinding) → 421;
//! 2. the bearer token, when `ORCH_API_TOKEN` is set, compared in constant
//!    time → 401;
//! 3. `Content-Type: application/json` on every mutating request, which a
//!    cross-site HTML form cannot send → 415.
//!
//! What a path needs is decided by `surface`, by prefix, so a route added
//! later is guarded without anything to remember: everything is guarded by
//! default, `/healthz` skips the token, and `/webhooks/*` skips the whole
//! guard because a tracker or forge reaches it under its public name and
//! authenticates each delivery with an HMAC of the raw body instead.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::{ApiError, HttpState, host};

/// Which checks a path gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Host and content-type checks, no token: liveness probes.
    Open,
    /// Every check, the token included when one is set.
    Guarded,
    /// None of the guard's checks: the handler verifies a signature.
    Signed,
}

pub fn surface(path: &str) -> Surface {
    if path == "/webhooks" || path.starts_with("/webhooks/") {
        Surface::Signed
    } else if path == "/healthz" {
        Surface::Open
    } else {
        Surface::Guarded
    }
}

pub async fn guard(State(state): State<HttpState>, req: Request, next: Next) -> Response {
    match check(&state, &req) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn check(state: &HttpState, req: &Request) -> Result<(), ApiError> {
    let surface = surface(req.uri().path());
    if surface == Surface::Signed {
        return Ok(());
    }
    let headers = req.headers();
    let host_value = headers
        .get(header::HOST)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    if !host::allowed(&host_value, state.bound) {
        return Err(ApiError::ForeignHost(host_value));
    }
    if surface == Surface::Guarded
        && let Some(token) = state
            .rt
            .settings
            .api_token
            .as_ref()
            .map(crate::plane::Secret::expose)
        && !bearer_matches(headers, token)
    {
        return Err(ApiError::Unauthorized);
    }
    if !req.method().is_safe() && !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    Ok(())
}

/// `Authorization: Bearer <token>`, the scheme case-insensitive. The
/// comparison takes the same time wherever the first difference is; only
/// a difference in length shows earlier, which says nothing about the
/// token's bytes.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return false;
    };
    let Some((scheme, given)) = value.as_bytes().split_at_checked(6) else {
        return false;
    };
    let given = given.strip_prefix(b" ").unwrap_or(b"");
    scheme.eq_ignore_ascii_case(b"bearer") && bool::from(given.ct_eq(token.as_bytes()))
}

/// The media type is `application/json`, parameters (charset) allowed.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn surfaces_default_to_guarded() {
        assert_eq!(surface("/healthz"), Surface::Open);
        assert_eq!(surface("/webhooks/plane"), Surface::Signed);
        for p in [
            "/queue",
            "/metrics",
            "/api/tasks",
            "/api/nope",
            "/",
            "/healthz/x",
            "/webhooksx",
        ] {
            assert_eq!(surface(p), Surface::Guarded, "{p}");
        }
    }

    #[test]
    fn bearer_token_must_match_exactly() {
        let ok = with(header::AUTHORIZATION, "Bearer s3cret");
        assert!(bearer_matches(&ok, "s3cret"));
        assert!(bearer_matches(
            &with(header::AUTHORIZATION, "bearer s3cret"),
            "s3cret"
        ));
        for bad in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Basic s3cret",
            "Bearer",
            "Bearers3cret",
            "s3cret",
            "Bearer  s3cret",
        ] {
            assert!(
                !bearer_matches(&with(header::AUTHORIZATION, bad), "s3cret"),
                "{bad}"
            );
        }
        assert!(!bearer_matches(&HeaderMap::new(), "s3cret"));
    }

    #[test]
    fn only_json_counts_as_json() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
        ] {
            assert!(is_json(&with(header::CONTENT_TYPE, ok)), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "application/jsonx",
        ] {
            assert!(!is_json(&with(header::CONTENT_TYPE, bad)), "{bad}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}
