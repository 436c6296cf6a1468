//! From a verified, parsed state change to what orch should do: resolve
//! the state's name, decide start or stop, check for a replay, and find the
//! repo and work item id. The HTTP handler calls [`Intake::interpret`] and
//! hands the result to the start or stop entry point.

use uuid::Uuid;

use super::client::PlaneClient;
use super::error::PlaneError;
use super::types::Replay;
use super::webhook::{Decision, StateChange, decide};
use crate::config::RepoConfig;
use crate::domain::{PlaneIssueId, RepoName, WorkItemId};

/// What a state change asks of orch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start (or relaunch) the task of this issue (SPEC §7.7).
    Start(StartRequest),
    /// Stop the task of this issue (SPEC §7); looked up by `plane_issue_id`.
    Stop(StopRequest),
    /// Nothing to do; the reason is for the log and the response.
    Ignore(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRequest {
    pub work_item_id: WorkItemId,
    pub plane_issue_id: PlaneIssueId,
    pub project_id: Uuid,
    pub repo: RepoName,
    pub title: String,
    pub description: Option<String>,
    /// False when no Plane API is configured, so the delivery could not be
    /// checked against the issue's current state.
    pub replay_checked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRequest {
    pub plane_issue_id: PlaneIssueId,
    pub project_id: Uuid,
    pub replay_checked: bool,
}

/// What interpreting a delivery needs: the start and stop state names, the
/// repos (for the project → repo and identifier mapping), and the API
/// client when Plane's API is configured.
pub struct Intake<'a> {
    pub start_state: &'a str,
    pub stop_state: &'a str,
    pub repos: &'a [RepoConfig],
    pub client: Option<&'a PlaneClient>,
}

impl Intake<'_> {
    /// Interprets one state change. An `Err` means the Plane API could not
    /// be reached to resolve or check it: nothing was decided, and the
    /// handler should answer 503 so Plane delivers again.
    pub async fn interpret(&self, change: &StateChange) -> Result<Action, PlaneError> {
        let name = match (&change.state_name, self.client) {
            (Some(name), _) => name.clone(),
            (None, Some(client)) => match client.state(change.project_id, change.state_id).await? {
                Some(state) => state.name,
                None => {
                    return Ok(Action::Ignore(format!(
                        "state {} is not a state of project {}",
                        change.state_id, change.project_id
                    )));
                }
            },
            (None, None) => {
                return Ok(Action::Ignore(
                    "the delivery names the state only by id and the Plane API is not configured"
                        .into(),
                ));
            }
        };
        let decision = decide(self.start_state, self.stop_state, &name);
        if decision == Decision::Other {
            return Ok(Action::Ignore(format!(
                "state {name:?} starts or stops nothing"
            )));
        }
        let replay_checked = match self.client {
            Some(client) => match client.replay_check(change).await? {
                Replay::Current => true,
                Replay::Moved { current_state_id } => {
                    return Ok(Action::Ignore(format!(
                        "replayed or stale delivery: issue {} is now in state {current_state_id}, not {name:?}",
                        change.issue_id
                    )));
                }
                Replay::Gone => {
                    return Ok(Action::Ignore(format!(
                        "issue {} no longer exists",
                        change.issue_id
                    )));
                }
            },
            None => false,
        };
        if decision == Decision::Stop {
            return Ok(Action::Stop(StopRequest {
                plane_issue_id: change.issue_id.clone(),
                project_id: change.project_id,
                replay_checked,
            }));
        }
        let Some((repo, identifier)) = self.project(change.project_id).await? else {
            return Ok(Action::Ignore(format!(
                "project {} is not configured for any repo",
                change.project_id
            )));
        };
        let work_item_id = match WorkItemId::from_parts(&identifier, change.sequence_id) {
            Ok(id) => id,
            Err(e) => return Ok(Action::Ignore(e.to_string())),
        };
        Ok(Action::Start(StartRequest {
            work_item_id,
            plane_issue_id: change.issue_id.clone(),
            project_id: change.project_id,
            repo,
            title: change.title.clone(),
            description: change.description.clone(),
            replay_checked,
        }))
    }

    /// The repo a project's issues belong to and the project's identifier.
    /// A repo's `plane_project_id` matches first, and its `plane_project`
    /// is the identifier when set; otherwise the identifier comes from the
    /// API (cached) and matches a repo's `plane_project`.
    async fn project(&self, project: Uuid) -> Result<Option<(RepoName, String)>, PlaneError> {
        let by_id = self.repos.iter().find(|r| {
            r.plane_project_id
                .as_deref()
                .and_then(|p| Uuid::try_parse(p).ok())
                == Some(project)
        });
        if let Some(repo) = by_id
            && let Some(identifier) = &repo.plane_project
        {
            return Ok(Some((repo.name.clone(), identifier.clone())));
        }
        let Some(client) = self.client else {
            return Ok(None);
        };
        let identifier = client.project_identifier(project).await?;
        let repo = by_id.or_else(|| {
            self.repos
                .iter()
                .find(|r| r.plane_project.as_deref() == Some(identifier.as_str()))
        });
        Ok(repo.map(|r| (r.name.clone(), identifier)))
    }
}
