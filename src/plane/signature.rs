//! Webhook signatures and the secrets behind them. Plane and Gitea sign a
//! delivery the same way (hex HMAC-SHA256 of the raw body in a header), so
//! both webhook modules verify through this one function, and both clients
//! hold their tokens in [`Secret`], which never prints its value.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The largest webhook body orch accepts. Bigger bodies are refused before
/// any hashing, so an unauthenticated sender cannot make orch hash
/// arbitrarily large inputs.
pub const MAX_BODY: usize = 1 << 20;

/// A token or webhook secret. Its `Debug` and `Display` never show the
/// value, so it can sit in settings and errors that get logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret from the environment; an empty value counts as unset.
    pub fn from_env(value: Option<String>) -> Option<Self> {
        value.filter(|v| !v.trim().is_empty()).map(Self)
    }

    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends or checks it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a delivery was refused, for Plane's and Gitea's webhooks alike.
/// Each kind has one HTTP status, and every message is one line that never
/// contains the secret or the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No webhook secret configured: 503, nothing is accepted unsigned.
    #[error("webhook secret is not configured")]
    NotConfigured,
    /// 413, checked before the body is hashed.
    #[error("body of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    /// 401.
    #[error("missing signature header")]
    MissingSignature,
    /// 401.
    #[error("signature does not match the body")]
    BadSignature,
    /// 400: the body is not JSON.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// 400: a field orch uses has the wrong type or value.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl WebhookError {
    /// The HTTP status this refusal is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotConfigured => 503,
            Self::TooLarge { .. } => 413,
            Self::MissingSignature | Self::BadSignature => 401,
            Self::Malformed(_) | Self::Invalid { .. } => 400,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: &str) -> Self {
        Self::Invalid {
            field,
            reason: reason.to_owned(),
        }
    }

    pub(crate) fn malformed(e: &serde_json::Error) -> Self {
        Self::Malformed(
            e.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        )
    }
}

/// Checks `header` against the hex HMAC-SHA256 of `body` under `secret`.
/// Order: no secret (503), oversize body (413), missing or wrong signature
/// (401). The size limit is enforced before the MAC is computed. A header that is
/// not 64 hex digits is a mismatch; the comparison of the decoded tag is
/// constant-time (`Mac::verify_slice`), so timing tells an attacker nothing
/// about how much of a forged signature was right.
pub fn verify_hex(
    secret: Option<&[u8]>,
    header: Option<&str>,
    body: &[u8],
) -> Result<(), WebhookError> {
    let secret = secret
        .filter(|s| !s.is_empty())
        .ok_or(WebhookError::NotConfigured)?;
    if body.len() > MAX_BODY {
        return Err(WebhookError::TooLarge {
            size: body.len(),
            limit: MAX_BODY,
        });
    }
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(WebhookError::MissingSignature)?;
    let tag = decode_hex(header).ok_or(WebhookError::BadSignature)?;
    mac(secret, body)
        .verify_slice(&tag)
        .map_err(|_| WebhookError::BadSignature)
}

/// The hex HMAC-SHA256 of `body` under `secret`, as a sender computes it.
/// Tests and local tools use it to sign deliveries.
pub fn sign_hex(secret: &[u8], body: &[u8]) -> String {
    let tag = mac(secret, body).finalize().into_bytes();
    tag.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac(secret: &[u8], body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length (long ones are hashed first), so this
    // constructor cannot fail for SHA-256.
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac
}

/// Decodes an even-length hex string of either case.
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2: key "Jefe".
    #[test]
    fn matches_the_rfc_4231_vector() {
        let body = b"what do ya want for nothing?";
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(sign_hex(b"Jefe", body), expected);
        assert_eq!(verify_hex(Some(b"Jefe"), Some(expected), body), Ok(()));
        let upper = expected.to_uppercase();
        assert_eq!(verify_hex(Some(b"Jefe"), Some(&upper), body), Ok(()));
    }

    fn check(secret: Option<&[u8]>, header: Option<&str>, body: &[u8], want: WebhookError) {
        assert_eq!(verify_hex(secret, header, body), Err(want));
    }

    #[test]
    fn refusals_in_order() {
        let good = sign_hex(b"s", b"{}");
        check(None, Some(&good), b"{}", WebhookError::NotConfigured);
        check(Some(b""), Some(&good), b"{}", WebhookError::NotConfigured);
        check(Some(b"s"), None, b"{}", WebhookError::MissingSignature);
        check(
            Some(b"s"),
            Some("  "),
            b"{}",
            WebhookError::MissingSignature,
        );
        check(Some(b"s"), Some("zz"), b"{}", WebhookError::BadSignature);
        check(Some(b"s"), Some("abc"), b"{}", WebhookError::BadSignature);
        check(
            Some(b"s"),
            Some(&good[..62]),
            b"{}",
            WebhookError::BadSignature,
        );
        check(Some(b"t"), Some(&good), b"{}", WebhookError::BadSignature);
        check(Some(b"s"), Some(&good), b"{ }", WebhookError::BadSignature);
    }

    #[test]
    fn statuses() {
        assert_eq!(WebhookError::NotConfigured.status(), 503);
        assert_eq!(WebhookError::BadSignature.status(), 401);
        assert_eq!(WebhookError::MissingSignature.status(), 401);
        assert_eq!(WebhookError::TooLarge { size: 2, limit: 1 }.status(), 413);
        assert_eq!(WebhookError::Malformed("x".into()).status(), 400);
        assert_eq!(WebhookError::invalid("data.id", "x").status(), 400);
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(Secret::from_env(Some("  ".into())), None);
    }
}
