//! Errors of the Plane client. Messages are one line and carry the
//! operation, the status and a short excerpt of Plane's answer; the API
//! token is only ever in a request header, so it cannot appear here.

/// Why a Plane API call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaneError {
    /// The client could not be built.
    #[error("Plane client: {0}")]
    Setup(String),
    /// Plane answered with a status that retrying would not change.
    #[error("Plane {op}: HTTP {status}: {detail}")]
    Status {
        op: &'static str,
        status: u16,
        detail: String,
    },
    /// Every attempt hit a rate limit, a server error or a network failure.
    #[error("Plane {op}: gave up after {attempts} attempts in {elapsed_ms} ms: {last}")]
    Exhausted {
        op: &'static str,
        attempts: u32,
        elapsed_ms: u128,
        last: String,
    },
    /// Plane asked for a longer pause than the retry budget allows.
    #[error("Plane {op}: rate limited for {retry_after_secs} s, beyond the retry budget")]
    RateLimited {
        op: &'static str,
        retry_after_secs: u64,
    },
    /// The answer was not what the documented API returns.
    #[error("Plane {op}: unexpected response: {detail}")]
    Decode { op: &'static str, detail: String },
}

impl PlaneError {
    /// True when the same call may succeed later (rate limit, outage,
    /// network); false for answers that will not change by themselves.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Exhausted { .. } | Self::RateLimited { .. } => true,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Setup(_) | Self::Decode { .. } => false,
        }
    }
}

/// A short, single-line excerpt of a response body for error messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 200 {
        format!("{}…", line.chars().take(200).collect::<String>())
    } else if line.is_empty() {
        "(empty body)".into()
    } else {
        line
    }
}
