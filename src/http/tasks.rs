//! `/api/tasks`: start (the relaunch gate), list, show and retry. Writes go
//! through the store's one writer; reads run on the blocking pool.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{ApiError, HttpState, body};
use crate::domain::{RepoName, Stage, WorkItemId};
use crate::pipeline::apply::{self, StartResult};
use crate::runtime::now;
use crate::store::{NewTask, ReadTx, Task, TaskKey};
use crate::views::{TaskDetail, TaskView, deps_of};

/// Tasks per page when the client does not say.
const DEFAULT_LIMIT: usize = 50;
/// The most tasks one page holds.
const MAX_LIMIT: usize = 500;

/// `POST /api/tasks` (`schema/start-request.json`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    work_item_id: String,
    repo: String,
    title: String,
    description: Option<String>,
    depends_on: Option<Vec<String>>,
}

/// `POST /api/tasks/{key}/retry` (`schema/retry-request.json`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    note: Option<String>,
}

/// `GET /api/tasks` query. Every value is optional, and an empty value
/// (`?stage=`) means the same as an absent one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    stage: Option<String>,
    repo: Option<String>,
    blocked: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StartResponse {
    result: &'static str,
    task: TaskView,
}

#[derive(Debug, Serialize)]
pub struct TaskResponse {
    task: TaskView,
}

#[derive(Debug, Serialize)]
pub struct TaskList {
    tasks: Vec<TaskView>,
    next_cursor: Option<String>,
}

pub async fn start(
    State(state): State<HttpState>,
    req: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<StartResponse>), ApiError> {
    let req: StartRequest = body::json(req)?;
    let new = validate_start(&state, req)?;
    let (result, task) = state
        .rt
        .writer
        .call(now(), move |tx| apply::start(tx, new.clone()))
        .await?;
    if result != StartResult::Ignored {
        state.rt.wake.notify_waiters();
    }
    let task = state.read(move |rx| view(rx, &task)).await?;
    let status = match result {
        StartResult::Created => StatusCode::CREATED,
        StartResult::Relaunched | StartResult::Ignored => StatusCode::OK,
    };
    Ok((
        status,
        Json(StartResponse {
            result: result.as_str(),
            task,
        }),
    ))
}

/// Every name is checked before it reaches the store; the repo must be one
/// the configuration names, since a task elsewhere could never run.
fn validate_start(state: &HttpState, req: StartRequest) -> Result<NewTask, ApiError> {
    let invalid = |e: crate::domain::IdError| ApiError::Unprocessable(e.to_string());
    let work_item_id = WorkItemId::parse(&req.work_item_id).map_err(invalid)?;
    let repo = RepoName::parse(&req.repo).map_err(invalid)?;
    if state.rt.settings.repo(repo.as_str()).is_none() {
        return Err(ApiError::NotFound(format!("repo {repo} is not configured")));
    }
    if req.title.trim().is_empty() {
        return Err(ApiError::Unprocessable("title must not be empty".into()));
    }
    Ok(NewTask {
        work_item_id,
        plane_issue_id: None,
        repo,
        title: req.title,
        description: req.description.unwrap_or_default(),
        depends_on: req.depends_on.unwrap_or_default(),
    })
}

pub async fn list(
    State(state): State<HttpState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<TaskList>, ApiError> {
    let Query(q) = query?;
    let given = |v: Option<String>| v.filter(|s| !s.is_empty());
    let stage: Option<Stage> = given(q.stage)
        .map(|s| s.parse().map_err(ApiError::BadRequest))
        .transpose()?;
    let repo = given(q.repo);
    let blocked = given(q.blocked)
        .map(|b| match b.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(ApiError::BadRequest(format!(
                "blocked must be true or false, not {other:?}"
            ))),
        })
        .transpose()?;
    let limit = match given(q.limit) {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if n >= 1 => n.min(MAX_LIMIT),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "limit must be a number from 1 to {MAX_LIMIT}, not {l:?}"
                )));
            }
        },
    };
    let before = given(q.cursor).map(|c| cursor::decode(&c)).transpose()?;
    let list = state
        .read(move |rx| {
            let (tasks, more) = rx.list_tasks(before, limit, |t| {
                stage.is_none_or(|s| t.stage == s)
                    && repo.as_deref().is_none_or(|r| t.repo == r)
                    && blocked.is_none_or(|b| t.blocked.is_some() == b)
            })?;
            let next_cursor = if more {
                tasks.last().map(|t| cursor::encode(t.id))
            } else {
                None
            };
            let tasks = tasks
                .iter()
                .map(|t| view(rx, t))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(TaskList { tasks, next_cursor })
        })
        .await?;
    Ok(Json(list))
}

pub async fn show(
    State(state): State<HttpState>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<TaskDetail>, ApiError> {
    let Path(key) = key?;
    let detail = state
        .read(move |rx| {
            let id = resolve(rx, &key)?;
            TaskDetail::read(rx, id)?
                .ok_or_else(|| ApiError::NotFound(format!("no task for {key:?}")))
        })
        .await?;
    Ok(Json(detail))
}

pub async fn retry(
    State(state): State<HttpState>,
    key: Result<Path<String>, PathRejection>,
    req: Result<Bytes, BytesRejection>,
) -> Result<Json<TaskResponse>, ApiError> {
    let Path(key) = key?;
    let req: RetryRequest = body::json(req)?;
    let id = state.read(move |rx| resolve(rx, &key)).await?;
    let note = req.note;
    let task = state
        .rt
        .writer
        .call(now(), move |tx| apply::retry(tx, id, note.clone()))
        .await?;
    state.rt.wake.notify_waiters();
    let task = state.read(move |rx| view(rx, &task)).await?;
    Ok(Json(TaskResponse { task }))
}

/// Key resolution of SPEC §9.2: digits → task id, UUID → tracker issue id,
/// otherwise a work item id; the live task wins, else the newest tombstoned
/// predecessor; neither → 404. A key that is none of these is a 400.
pub(super) fn resolve(rx: &ReadTx, key: &str) -> Result<u64, ApiError> {
    let parsed = TaskKey::parse(key).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    rx.resolve(&parsed)?
        .ok_or_else(|| ApiError::NotFound(format!("no task for {key:?}")))
}

fn view(rx: &ReadTx, t: &Task) -> Result<TaskView, ApiError> {
    Ok(TaskView::new(t, deps_of(rx, t)?))
}

/// The list cursor: opaque to clients, it carries the id of the last task
/// of the previous page (the next page starts below it).
mod cursor {
    use super::ApiError;

    const PREFIX: &str = "t";

    pub fn encode(last_id: u64) -> String {
        format!("{PREFIX}{last_id:x}")
    }

    pub fn decode(s: &str) -> Result<u64, ApiError> {
        s.strip_prefix(PREFIX)
            .filter(|hex| !hex.is_empty() && hex.len() <= 16)
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .ok_or_else(|| ApiError::BadRequest(format!("invalid cursor {s:?}")))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn round_trip_and_garbage() {
            for id in [1, 255, u64::MAX] {
                assert_eq!(super::decode(&super::encode(id)).unwrap(), id);
            }
            for bad in ["", "t", "x1", "t-1", "tzz", "t1ffffffffffffffff"] {
                assert!(super::decode(bad).is_err(), "{bad}");
            }
        }
    }
}
