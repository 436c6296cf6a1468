//! What the Plane client hands back: states, issues, blockers and the
//! verdict of the replay check.

use std::fmt;

use uuid::Uuid;

use crate::domain::PlaneIssueId;

/// A state's group. Plane fixes the groups; the names inside them are the
/// workspace's own, which is why orch reads the group to tell whether an
/// issue is finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateGroup {
    Backlog,
    Unstarted,
    Started,
    Completed,
    Cancelled,
    Triage,
    /// A group this version of orch does not know.
    Other(String),
}

impl StateGroup {
    pub fn parse(s: &str) -> Self {
        match s {
            "backlog" => Self::Backlog,
            "unstarted" => Self::Unstarted,
            "started" => Self::Started,
            "completed" => Self::Completed,
            "cancelled" => Self::Cancelled,
            "triage" => Self::Triage,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Done or cancelled: an external dependency in this group no longer
    /// blocks (SPEC §5.3).
    pub fn is_finished(&self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled)
    }
}

impl fmt::Display for StateGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Backlog => "backlog",
            Self::Unstarted => "unstarted",
            Self::Started => "started",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Triage => "triage",
            Self::Other(s) => s,
        })
    }
}

/// One state of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub id: Uuid,
    pub name: String,
    pub group: StateGroup,
}

/// An issue as the API reports it now; only what orch reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub id: PlaneIssueId,
    pub project_id: Option<Uuid>,
    pub sequence_id: Option<u64>,
    pub state_id: Uuid,
    pub name: Option<String>,
}

/// An issue the asked-about issue is blocked by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub issue_id: PlaneIssueId,
    /// The blocker's current state group, read only for issues the caller
    /// does not know as tasks (external dependencies); `None` for known
    /// ones, and for unknown ones Plane would not show (another project,
    /// deleted), which therefore keep blocking.
    pub state_group: Option<StateGroup>,
}

impl Blocker {
    /// True when this external blocker no longer holds the task back.
    pub fn is_finished(&self) -> bool {
        self.state_group
            .as_ref()
            .is_some_and(StateGroup::is_finished)
    }
}

/// The verdict of the replay check (SPEC §8.1, TC-44).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// The issue is still in the state the delivery names: act.
    Current,
    /// The issue has moved on since: the delivery is stale or replayed.
    Moved { current_state_id: Uuid },
    /// The issue no longer exists (or is no longer visible to orch).
    Gone,
}

impl Replay {
    pub fn should_act(&self) -> bool {
        matches!(self, Self::Current)
    }
}
