//! Errors of the Gitea client. The token travels only in a request header,
//! so no message here can contain it.

/// Why a Gitea call failed. Refusals that are part of the protocol (a
/// protected branch, a moved head) are outcomes, not errors; see
/// [`crate::forge::MergeOutcome`] and [`crate::forge::BranchDelete`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GiteaError {
    /// The client could not be built, or an argument can never be valid.
    #[error("Gitea client: {0}")]
    Setup(String),
    /// `owner/repo` from the config is not a repository name.
    #[error("invalid Gitea repository {0:?}: expected owner/repo")]
    InvalidRepo(String),
    /// Gitea answered with a status orch does not map to an outcome.
    #[error("Gitea {op}: HTTP {status}: {detail}")]
    Status {
        op: &'static str,
        status: u16,
        detail: String,
    },
    /// The request did not get an answer (connection, timeout).
    #[error("Gitea {op}: {detail}")]
    Transport { op: &'static str, detail: String },
    /// The answer was not what the documented API returns.
    #[error("Gitea {op}: unexpected response: {detail}")]
    Decode { op: &'static str, detail: String },
    /// Gitea is still computing whether the pull request can be merged.
    #[error("Gitea {op}: {detail}")]
    Busy { op: &'static str, detail: String },
    /// Gitea said the pull request exists (409) but no open one matched.
    #[error("Gitea {op}: a pull request for {head} → {base} exists but was not found")]
    PullRequestNotFound {
        op: &'static str,
        head: String,
        base: String,
    },
}

impl GiteaError {
    /// True when the same call may succeed later: server errors and
    /// network failures. The caller (cleanup debt, the deploy job) retries;
    /// this client does not, so a merge is never sent twice behind its back.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::Busy { .. } => true,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}
