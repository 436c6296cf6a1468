//! `POST /webhooks/plane` without the HTTP: signature check, lenient
//! parsing of the one delivery orch acts on (an issue's state changed), and
//! the start/stop decision (SPEC §8.1). Everything here is a pure function,
//! so the HTTP layer only maps [`WebhookError::status`] to a response.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::signature;
pub use super::signature::WebhookError;
use crate::domain::PlaneIssueId;

/// The header Plane puts the signature in.
pub const SIGNATURE_HEADER: &str = "X-Plane-Signature";

/// Checks a delivery's `X-Plane-Signature` against the raw body. Order: no
/// secret (503), oversize body (413, before any hashing), missing or wrong
/// signature (401).
pub fn verify(
    secret: Option<&[u8]>,
    signature_header: Option<&str>,
    body: &[u8],
) -> Result<(), WebhookError> {
    signature::verify_hex(secret, signature_header, body)
}

/// What a verified delivery asks of orch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaneEvent {
    /// An issue moved to another state.
    StateChange(StateChange),
    /// Any other delivery: answered 200 and otherwise ignored.
    Ignored(String),
}

/// An issue's state changed. Only the fields orch uses are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub issue_id: PlaneIssueId,
    pub project_id: Uuid,
    pub workspace_id: Option<Uuid>,
    pub sequence_id: u64,
    /// The state the issue moved to.
    pub state_id: Uuid,
    /// `data.state.name`; `None` when the delivery carries only the id, and
    /// the name must come from the states API.
    pub state_name: Option<String>,
    pub title: String,
    pub description: Option<String>,
}

/// Parses a verified body. Unknown fields are ignored and only the fields
/// used are validated, because Plane adds fields between releases; a
/// delivery about anything but an issue's state is `Ignored`.
pub fn parse(body: &[u8]) -> Result<PlaneEvent, WebhookError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| WebhookError::malformed(&e))?;
    let root = value
        .as_object()
        .ok_or_else(|| invalid("body", "expected a JSON object"))?;
    let event = str_field(root, "event", "event")?;
    if event != "issue" {
        return Ok(PlaneEvent::Ignored(format!(
            "event {event:?} is not handled"
        )));
    }
    let action = str_field(root, "action", "action")?;
    if !matches!(action, "updated" | "update") {
        return Ok(PlaneEvent::Ignored(format!(
            "action {action:?} is not handled"
        )));
    }
    let activity = match root.get("activity") {
        Some(Value::Object(a)) => a,
        None | Some(Value::Null) => {
            return Ok(PlaneEvent::Ignored("no activity in the delivery".into()));
        }
        Some(_) => return Err(invalid("activity", "expected an object")),
    };
    let field = match activity.get("field") {
        Some(Value::String(f)) => f.as_str(),
        None | Some(Value::Null) => {
            return Ok(PlaneEvent::Ignored(
                "no changed field in the delivery".into(),
            ));
        }
        Some(_) => return Err(invalid("activity.field", "expected a string")),
    };
    if !matches!(field, "state_id" | "state") {
        return Ok(PlaneEvent::Ignored(format!(
            "change of {field:?} is not handled"
        )));
    }
    let data = match root.get("data") {
        Some(Value::Object(d)) => d,
        _ => return Err(invalid("data", "expected an object")),
    };
    let issue_id = PlaneIssueId::parse(str_field(data, "id", "data.id")?)
        .map_err(|_| invalid("data.id", "expected a UUID"))?;
    let project_id = uuid(str_field(data, "project", "data.project")?, "data.project")?;
    let workspace_id = match root.get("workspace_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(uuid(s, "workspace_id")?),
        Some(_) => return Err(invalid("workspace_id", "expected a UUID")),
    };
    let sequence_id = match data.get("sequence_id") {
        Some(Value::Number(n)) => n.as_u64().filter(|n| *n > 0),
        _ => None,
    }
    .ok_or_else(|| invalid("data.sequence_id", "expected a positive integer"))?;
    let (state_id, state_name) = state(data, activity)?;
    let title = str_field(data, "name", "data.name")?.to_owned();
    let description = match data.get("description_stripped") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid("data.description_stripped", "expected a string")),
    };
    Ok(PlaneEvent::StateChange(StateChange {
        issue_id,
        project_id,
        workspace_id,
        sequence_id,
        state_id,
        state_name,
        title,
        description,
    }))
}

/// The new state: `data.state` as an object (`id`, `name`) or a bare id,
/// else `data.state_id`, else the activity's `new_value`. The issue data is
/// preferred because it is the issue as it is after the change.
fn state(
    data: &Map<String, Value>,
    activity: &Map<String, Value>,
) -> Result<(Uuid, Option<String>), WebhookError> {
    match data.get("state") {
        Some(Value::Object(s)) => {
            let id = uuid(str_field(s, "id", "data.state.id")?, "data.state.id")?;
            let name = match s.get("name") {
                None | Some(Value::Null) => None,
                Some(Value::String(n)) if !n.trim().is_empty() => Some(n.clone()),
                Some(Value::String(_)) => None,
                Some(_) => return Err(invalid("data.state.name", "expected a string")),
            };
            return Ok((id, name));
        }
        Some(Value::String(s)) => return Ok((uuid(s, "data.state")?, None)),
        None | Some(Value::Null) => {}
        Some(_) => return Err(invalid("data.state", "expected an object or a UUID")),
    }
    let fallbacks: [(&Map<String, Value>, &str, &'static str); 2] = [
        (data, "state_id", "data.state_id"),
        (activity, "new_value", "activity.new_value"),
    ];
    for (source, key, name) in fallbacks {
        match source.get(key) {
            Some(Value::String(s)) => return Ok((uuid(s, name)?, None)),
            None | Some(Value::Null) => {}
            Some(_) => return Err(invalid(name, "expected a UUID")),
        }
    }
    Err(invalid(
        "data.state",
        "missing: no state id in the delivery",
    ))
}

/// What a state change means for orch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The start state: start or relaunch the task (SPEC §7.7).
    Start,
    /// The STOP state: cancel the task (SPEC §7).
    Stop,
    /// Any other state: nothing to do.
    Other,
}

/// Maps a state name to a decision. Names are compared exactly, apart
/// from surrounding whitespace, so a project with both "Stop" and "STOP"
/// behaves as configured.
pub fn decide(start_state: &str, stop_state: &str, state_name: &str) -> Decision {
    let name = state_name.trim();
    if name == stop_state.trim() {
        Decision::Stop
    } else if name == start_state.trim() {
        Decision::Start
    } else {
        Decision::Other
    }
}

fn invalid(field: &'static str, reason: &str) -> WebhookError {
    WebhookError::invalid(field, reason)
}

fn str_field<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    name: &'static str,
) -> Result<&'a str, WebhookError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(invalid(name, "missing")),
        Some(_) => Err(invalid(name, "expected a string")),
    }
}

fn uuid(s: &str, name: &'static str) -> Result<Uuid, WebhookError> {
    Uuid::try_parse(s).map_err(|_| invalid(name, "expected a UUID"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        assert_eq!(decide("To Analyse", "STOP", "STOP"), Decision::Stop);
        assert_eq!(
            decide("To Analyse", "STOP", " To Analyse "),
            Decision::Start
        );
        assert_eq!(decide("To Analyse", "STOP", "Stop"), Decision::Other);
        assert_eq!(decide("To Analyse", "STOP", "Done"), Decision::Other);
    }
}
