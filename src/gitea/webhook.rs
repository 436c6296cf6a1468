//! `POST /webhooks/gitea` without the HTTP (SPEC §8.2): the signature
//! check and the one event orch records, a pull request of one of its
//! branches closed by a human without merging.

use serde_json::{Map, Value};

use super::types::RepoRef;
use crate::git::FeatureBranch;
use crate::plane::signature;
pub use crate::plane::signature::WebhookError;

/// The header Gitea puts the signature in.
pub const SIGNATURE_HEADER: &str = "X-Gitea-Signature";
/// The header naming the event kind.
pub const EVENT_HEADER: &str = "X-Gitea-Event";

/// Checks `X-Gitea-Signature` (hex HMAC-SHA256 of the raw body). Order:
/// no secret (503), oversize body (413, before hashing), missing or wrong
/// signature (401).
pub fn verify(
    secret: Option<&[u8]>,
    signature_header: Option<&str>,
    body: &[u8],
) -> Result<(), WebhookError> {
    signature::verify_hex(secret, signature_header, body)
}

/// What a verified delivery tells orch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GiteaEvent {
    /// A pull request of an orch feature branch was closed without merge.
    ClosedWithoutMerge(ClosedPull),
    /// Anything else: answered 200 and ignored.
    Ignored(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedPull {
    pub repo: RepoRef,
    pub number: u64,
    /// The task is found by this recorded branch name.
    pub head: FeatureBranch,
    pub base: String,
}

/// Parses a verified delivery. `event` is the `X-Gitea-Event` header; only
/// `pull_request` deliveries (or, without the header, bodies that carry a
/// pull request) are read. Unknown fields are ignored.
pub fn parse(event: Option<&str>, body: &[u8]) -> Result<GiteaEvent, WebhookError> {
    if let Some(event) = event.map(str::trim)
        && event != "pull_request"
    {
        return Ok(GiteaEvent::Ignored(format!(
            "event {event:?} is not handled"
        )));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| WebhookError::malformed(&e))?;
    let root = value
        .as_object()
        .ok_or_else(|| WebhookError::invalid("body", "expected a JSON object"))?;
    let pull = match root.get("pull_request") {
        Some(Value::Object(p)) => p,
        None | Some(Value::Null) => {
            return Ok(GiteaEvent::Ignored("not a pull request event".into()));
        }
        Some(_) => return Err(WebhookError::invalid("pull_request", "expected an object")),
    };
    let action = text(root, "action", "action")?;
    if action != "closed" {
        return Ok(GiteaEvent::Ignored(format!(
            "action {action:?} is not handled"
        )));
    }
    match pull.get("merged") {
        Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            return Ok(GiteaEvent::Ignored("the pull request was merged".into()));
        }
        _ => {
            return Err(WebhookError::invalid(
                "pull_request.merged",
                "expected a boolean",
            ));
        }
    }
    let number = match pull.get("number").or_else(|| root.get("number")) {
        Some(Value::Number(n)) => n.as_u64().filter(|n| *n > 0),
        _ => None,
    }
    .ok_or_else(|| WebhookError::invalid("pull_request.number", "expected a positive integer"))?;
    let head = text(
        branch_ref(pull, "head", "pull_request.head")?,
        "ref",
        "pull_request.head.ref",
    )?;
    let base = text(
        branch_ref(pull, "base", "pull_request.base")?,
        "ref",
        "pull_request.base.ref",
    )?;
    let repository = match root.get("repository") {
        Some(Value::Object(r)) => r,
        _ => return Err(WebhookError::invalid("repository", "expected an object")),
    };
    let repo = RepoRef::parse(text(repository, "full_name", "repository.full_name")?)
        .map_err(|_| WebhookError::invalid("repository.full_name", "expected owner/repo"))?;
    let Ok(head) = FeatureBranch::parse(head) else {
        return Ok(GiteaEvent::Ignored(format!(
            "branch {head:?} is not an orch feature branch"
        )));
    };
    Ok(GiteaEvent::ClosedWithoutMerge(ClosedPull {
        repo,
        number,
        head,
        base: base.to_owned(),
    }))
}

fn branch_ref<'a>(
    pull: &'a Map<String, Value>,
    key: &str,
    name: &'static str,
) -> Result<&'a Map<String, Value>, WebhookError> {
    match pull.get(key) {
        Some(Value::Object(o)) => Ok(o),
        _ => Err(WebhookError::invalid(name, "expected an object")),
    }
}

fn text<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    name: &'static str,
) -> Result<&'a str, WebhookError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(WebhookError::invalid(name, "missing")),
        Some(_) => Err(WebhookError::invalid(name, "expected a string")),
    }
}
