//! The Plane integration: webhook verification and parsing (TC-41), the
//! intake from a delivery to a start or a stop, the replay check (TC-44),
//! and the API client's paths, headers, retries and escaping, all against
//! the local fake Plane.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

use orch::config::RepoConfig;
use orch::domain::PlaneIssueId;
use orch::plane::signature::{MAX_BODY, sign_hex};
use orch::plane::webhook::{self, Decision};
use orch::plane::{
    Action, Intake, PlaneClient, PlaneError, PlaneEvent, Replay, RetryPolicy, StateChange,
    StateGroup, WebhookError,
};

use crate::fakes::Scripted;
use crate::fakes::plane::{
    self as fake, DONE, FakePlane, IN_PROGRESS, ISSUE, PRIORITY_UPDATED, PROJECT, STATE_UPDATED,
    STOP, TO_ANALYSE,
};

const SECRET: &[u8] = b"plane-webhook-secret";

fn issue_id(s: &str) -> PlaneIssueId {
    PlaneIssueId::parse(s).expect("a UUID")
}

fn uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).expect("a UUID")
}

/// The state-change fixture with `edit` applied.
fn delivery(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_str(STATE_UPDATED).expect("fixture");
    edit(&mut v);
    serde_json::to_vec(&v).expect("json")
}

fn state_change(body: &[u8]) -> StateChange {
    match webhook::parse(body) {
        Ok(PlaneEvent::StateChange(c)) => c,
        other => panic!("expected a state change, got {other:?}"),
    }
}

fn repos(toml: &str) -> Vec<RepoConfig> {
    orch::config::file::parse(toml, Path::new("/etc/orch"))
        .expect("valid config")
        .repos
}

/// The fixture's project mapped by id and identifier to repo `orchestrator`.
fn mapped_repos() -> Vec<RepoConfig> {
    repos(&format!(
        "[[repo]]\nname='orchestrator'\nremote='/srv/orch.git'\nplane_project='ORCH'\nplane_project_id='{PROJECT}'\n"
    ))
}

// ---------------------------------------------------------------- verify

/// One line per signature case: what `verify` answers, as an HTTP status.
fn check_verify(secret: Option<&[u8]>, signature: Option<&str>, body: &[u8], status: u16) {
    let got = webhook::verify(secret, signature, body);
    match got {
        Ok(()) => assert_eq!(status, 200, "accepted, expected {status}"),
        Err(e) => {
            assert_eq!(e.status(), status, "{e}");
            assert!(!e.to_string().contains('\n'));
        }
    }
}

/// TC-41: a bad or missing signature is 401; no secret configured is 503;
/// a correct one passes.
#[test]
fn tc41_signature_checks() {
    let body = STATE_UPDATED.as_bytes();
    let good = sign_hex(SECRET, body);
    check_verify(Some(SECRET), Some(&good), body, 200);
    check_verify(Some(SECRET), None, body, 401);
    check_verify(Some(SECRET), Some(""), body, 401);
    check_verify(Some(SECRET), Some(&sign_hex(b"other", body)), body, 401);
    check_verify(Some(SECRET), Some("not-hex"), body, 401);
    check_verify(
        Some(SECRET),
        Some(&good),
        &delivery(|v| v["data"]["name"] = json!("x")),
        401,
    );
    check_verify(None, Some(&good), body, 503);
    check_verify(None, None, body, 503);
}

/// TC-41: the size limit is enforced before any hashing: a 2 MiB body is
/// refused with the size error even when its signature is correct, and
/// equally without one, so the signature was never looked at.
#[test]
fn tc41_oversize_refused_before_hashing() {
    let mut big = STATE_UPDATED.as_bytes().to_vec();
    big.resize(2 * MAX_BODY, b' ');
    let good = sign_hex(SECRET, &big);
    for signature in [Some(good.as_str()), None, Some("bad")] {
        assert_eq!(
            webhook::verify(Some(SECRET), signature, &big),
            Err(WebhookError::TooLarge {
                size: 2 * MAX_BODY,
                limit: MAX_BODY
            })
        );
    }
    check_verify(Some(SECRET), Some(&good), &big, 413);
    let mut at_limit = STATE_UPDATED.as_bytes().to_vec();
    at_limit.resize(MAX_BODY, b' ');
    check_verify(
        Some(SECRET),
        Some(&sign_hex(SECRET, &at_limit)),
        &at_limit,
        200,
    );
}

// ----------------------------------------------------------------- parse

/// One line per malformed delivery: `parse` refuses it with 400 naming
/// `field`.
fn check_invalid(edit: impl FnOnce(&mut Value), field: &str) {
    let err = webhook::parse(&delivery(edit)).expect_err("refused");
    assert_eq!(err.status(), 400, "{err}");
    let text = err.to_string();
    assert!(text.starts_with(field), "{text:?} should name {field}");
    assert!(!text.contains('\n'));
}

/// TC-41: malformed JSON and wrong types on the fields orch uses are 400
/// with a one-line reason.
#[test]
fn tc41_malformed_and_wrong_types() {
    for body in [&b"{"[..], b"", b"not json", b"{\"event\": \"issue\",}"] {
        let err = webhook::parse(body).expect_err("refused");
        assert!(matches!(err, WebhookError::Malformed(_)), "{err:?}");
        assert_eq!(err.status(), 400);
        assert!(!err.to_string().contains('\n'));
    }
    assert_eq!(webhook::parse(b"[1]").expect_err("refused").status(), 400);
    check_invalid(|v| v["event"] = json!(7), "event");
    check_invalid(|v| v["action"] = json!(["updated"]), "action");
    check_invalid(|v| v["activity"] = json!("state"), "activity");
    check_invalid(|v| v["activity"]["field"] = json!(1), "activity.field");
    check_invalid(|v| v["data"] = json!([]), "data");
    check_invalid(|v| v["data"]["id"] = json!(42), "data.id");
    check_invalid(|v| v["data"]["id"] = json!("ORCH-90"), "data.id");
    check_invalid(|v| v["data"]["project"] = json!("p1"), "data.project");
    check_invalid(|v| v["workspace_id"] = json!("w"), "workspace_id");
    check_invalid(|v| v["data"]["sequence_id"] = json!(0), "data.sequence_id");
    check_invalid(
        |v| v["data"]["sequence_id"] = json!(-90),
        "data.sequence_id",
    );
    check_invalid(
        |v| v["data"]["sequence_id"] = json!(9.5),
        "data.sequence_id",
    );
    check_invalid(
        |v| v["data"]["sequence_id"] = json!("90"),
        "data.sequence_id",
    );
    check_invalid(|v| v["data"]["state"] = json!(3), "data.state");
    check_invalid(|v| v["data"]["state"]["id"] = json!("x"), "data.state.id");
    check_invalid(|v| v["data"]["state"]["name"] = json!(5), "data.state.name");
    check_invalid(|v| v["data"]["name"] = json!(5), "data.name");
    check_invalid(
        |v| v["data"]["description_stripped"] = json!({}),
        "data.description_stripped",
    );
    check_invalid(
        |v| {
            v["data"]["state"] = Value::Null;
            v["activity"]["new_value"] = Value::Null;
        },
        "data.state",
    );
}

/// One line per delivery orch must answer 200 and otherwise ignore.
fn check_ignored(body: &[u8]) {
    match webhook::parse(body) {
        Ok(PlaneEvent::Ignored(reason)) => assert!(!reason.is_empty()),
        other => panic!("expected Ignored, got {other:?}"),
    }
}

/// TC-41 (irrelevant events): anything but an issue's state change is
/// ignored, and fields orch does not use are never validated.
#[test]
fn tc41_irrelevant_deliveries_are_ignored() {
    check_ignored(PRIORITY_UPDATED.as_bytes());
    check_ignored(&delivery(|v| v["event"] = json!("project")));
    check_ignored(&delivery(|v| v["event"] = json!("issue_comment")));
    check_ignored(&delivery(|v| v["action"] = json!("created")));
    check_ignored(&delivery(|v| v["action"] = json!("deleted")));
    check_ignored(&delivery(|v| v["activity"]["field"] = Value::Null));
    check_ignored(&delivery(|v| v["activity"]["field"] = json!("labels")));
    check_ignored(&delivery(|v| {
        v["activity"]["field"] = json!("priority");
        v["data"]["id"] = json!(42);
    }));
    let lenient = state_change(&delivery(|v| {
        v["data"]["priority"] = json!({"unexpected": true});
        v["data"]["brand_new_field"] = json!([1, 2, 3]);
        v["data"]["description_stripped"] = Value::Null;
    }));
    assert_eq!(lenient.description, None);
}

/// The fixture: a move to STOP of ORCH-90.
#[test]
fn fixture_parses_to_a_stop_of_orch_90() {
    let change = state_change(STATE_UPDATED.as_bytes());
    assert_eq!(change.issue_id, issue_id(ISSUE));
    assert_eq!(change.project_id, uuid(PROJECT));
    assert_eq!(
        change.workspace_id,
        Some(uuid("0f5b8c0e-7a55-4d0b-8b1e-3c3f1d2a9e77"))
    );
    assert_eq!(change.sequence_id, 90);
    assert_eq!(change.state_id, uuid(STOP));
    assert_eq!(change.state_name.as_deref(), Some("STOP"));
    assert_eq!(change.title, "Cancel tasks from the tracker");
    assert_eq!(
        change.description.as_deref(),
        Some("Moving an issue to STOP must stop its agent.")
    );
    assert_eq!(
        webhook::decide("To Analyse", "STOP", change.state_name.as_deref().unwrap()),
        Decision::Stop
    );
}

/// The API flavour of the delivery (`activity.field` = `state`) and a state
/// given only by id are both state changes; the name is then unknown.
#[test]
fn state_by_id_only() {
    let change = state_change(&delivery(|v| {
        v["activity"]["field"] = json!("state");
        v["data"]["state"] = json!(STOP);
    }));
    assert_eq!((change.state_id, change.state_name), (uuid(STOP), None));
    let change = state_change(&delivery(|v| v["data"]["state"] = Value::Null));
    assert_eq!((change.state_id, change.state_name), (uuid(STOP), None));
}

// ---------------------------------------------------------------- intake

/// Interprets `body` with the fake Plane's client (when `api`) and `repos`.
async fn interpret(plane: Option<&PlaneClient>, repos: &[RepoConfig], body: &[u8]) -> Action {
    let intake = Intake {
        start_state: "To Analyse",
        stop_state: "STOP",
        repos,
        client: plane,
    };
    intake
        .interpret(&state_change(body))
        .await
        .expect("interpreted")
}

fn to_analyse(v: &mut Value) {
    v["data"]["state"] = json!({"id": TO_ANALYSE, "name": "To Analyse", "group": "unstarted"});
    v["activity"]["new_value"] = json!(TO_ANALYSE);
}

/// The work item id is the project identifier from the API (cached) plus
/// the sequence id: `ORCH-90`; the repo is the one whose `plane_project`
/// is that identifier.
#[tokio::test]
async fn start_resolves_identifier_and_repo_through_the_api() {
    let plane = FakePlane::start().await;
    plane.set_state(ISSUE, TO_ANALYSE);
    let client = plane.client();
    let repos =
        repos("[[repo]]\nname='orchestrator'\nremote='/srv/orch.git'\nplane_project='ORCH'\n");
    let Action::Start(start) = interpret(Some(&client), &repos, &delivery(to_analyse)).await else {
        panic!("expected a start");
    };
    assert_eq!(start.work_item_id.as_str(), "ORCH-90");
    assert_eq!(start.repo.as_str(), "orchestrator");
    assert_eq!(start.plane_issue_id, issue_id(ISSUE));
    assert_eq!(start.title, "Cancel tasks from the tracker");
    assert!(start.replay_checked);
    assert_eq!(
        client.project_identifier(uuid(PROJECT)).await.unwrap(),
        "ORCH"
    );
    let project_reads = plane
        .seen()
        .iter()
        .filter(|s| s.path.ends_with(&format!("/projects/{PROJECT}/")))
        .count();
    assert_eq!(project_reads, 1, "the identifier is cached");
}

/// Without the API, the repo config alone maps the project; the delivery
/// cannot be checked for replay, and says so.
#[tokio::test]
async fn start_and_stop_from_config_alone() {
    let repos = mapped_repos();
    let Action::Start(start) = interpret(None, &repos, &delivery(to_analyse)).await else {
        panic!("expected a start");
    };
    assert_eq!(start.work_item_id.as_str(), "ORCH-90");
    assert!(!start.replay_checked);
    let Action::Stop(stop) = interpret(None, &repos, STATE_UPDATED.as_bytes()).await else {
        panic!("expected a stop");
    };
    assert_eq!(stop.plane_issue_id, issue_id(ISSUE));
    assert!(!stop.replay_checked);
}

/// One line per delivery the intake must not act on.
async fn check_intake_ignores(plane: Option<&PlaneClient>, repos: &[RepoConfig], body: &[u8]) {
    match interpret(plane, repos, body).await {
        Action::Ignore(reason) => assert!(!reason.is_empty()),
        other => panic!("expected Ignore, got {other:?}"),
    }
}

#[tokio::test]
async fn other_states_and_unmapped_projects_are_ignored() {
    let plane = FakePlane::start().await;
    let client = plane.client();
    let in_progress = delivery(|v| {
        v["data"]["state"] = json!({"id": IN_PROGRESS, "name": "In Progress"});
    });
    check_intake_ignores(Some(&client), &mapped_repos(), &in_progress).await;
    assert!(
        plane.seen().is_empty(),
        "no API call for a state that does nothing"
    );
    let by_id = delivery(|v| v["data"]["state"] = json!(STOP));
    check_intake_ignores(None, &mapped_repos(), &by_id).await;
    plane.set_state(ISSUE, TO_ANALYSE);
    let unmapped = repos("[[repo]]\nname='other'\nremote='/srv/o.git'\nplane_project='OTHER'\n");
    check_intake_ignores(Some(&client), &unmapped, &delivery(to_analyse)).await;
    check_intake_ignores(None, &unmapped, &delivery(to_analyse)).await;
}

/// A delivery naming the state only by id gets its name from the states
/// API, then decides as usual.
#[tokio::test]
async fn state_name_from_the_states_api() {
    let plane = FakePlane::start().await;
    let client = plane.client();
    let body = delivery(|v| v["data"]["state"] = json!(STOP));
    let Action::Stop(stop) = interpret(Some(&client), &mapped_repos(), &body).await else {
        panic!("expected a stop");
    };
    assert!(stop.replay_checked);
    let unknown = delivery(|v| v["data"]["state"] = json!(Uuid::new_v4().to_string()));
    check_intake_ignores(Some(&client), &mapped_repos(), &unknown).await;
}

/// TC-44: a correctly signed delivery whose issue is no longer in the
/// state it names (a replay, or a stale retry) is not acted on; neither is
/// one whose issue is gone.
#[tokio::test]
async fn tc44_replayed_delivery_changes_nothing() {
    let plane = FakePlane::start().await;
    let client = plane.client();
    let body = STATE_UPDATED.as_bytes();
    webhook::verify(Some(SECRET), Some(&sign_hex(SECRET, body)), body).expect("signed");
    let change = state_change(body);

    assert_eq!(client.replay_check(&change).await.unwrap(), Replay::Current);
    plane.set_state(ISSUE, TO_ANALYSE);
    let verdict = client.replay_check(&change).await.unwrap();
    assert_eq!(
        verdict,
        Replay::Moved {
            current_state_id: uuid(TO_ANALYSE)
        }
    );
    assert!(!verdict.should_act());
    check_intake_ignores(Some(&client), &mapped_repos(), body).await;

    plane.lock().issues.clear();
    assert_eq!(client.replay_check(&change).await.unwrap(), Replay::Gone);
    check_intake_ignores(Some(&client), &mapped_repos(), body).await;
}

/// When Plane cannot be reached, the intake decides nothing and says why
/// (the handler answers 503 so Plane delivers again).
#[tokio::test]
async fn intake_reports_an_unreachable_api() {
    let plane = FakePlane::start().await;
    for _ in 0..fake::fast_retry().max_attempts {
        plane.script(Scripted::status(503));
    }
    let client = plane.client();
    let intake = Intake {
        start_state: "To Analyse",
        stop_state: "STOP",
        repos: &mapped_repos(),
        client: Some(&client),
    };
    let err = intake
        .interpret(&state_change(STATE_UPDATED.as_bytes()))
        .await
        .expect_err("no decision without the replay check");
    assert!(err.is_transient(), "{err}");
}

// ---------------------------------------------------------------- client

/// Every request carries the API key and asks for JSON.
fn check_authenticated(plane: &FakePlane) {
    for seen in plane.seen() {
        assert_eq!(seen.header("x-api-key"), Some(fake::TOKEN), "{}", seen.path);
        assert_eq!(seen.header("accept"), Some("application/json"));
    }
}

#[tokio::test]
async fn states_are_paginated_cached_and_grouped() {
    let plane = FakePlane::start().await;
    plane.lock().page_size = 2;
    let client = plane.client();
    let states = client.states(uuid(PROJECT)).await.unwrap();
    assert_eq!(states.len(), 5);
    assert_eq!(plane.seen().len(), 3, "three pages of two");
    let done = client
        .state(uuid(PROJECT), uuid(DONE))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (done.name.as_str(), &done.group),
        ("Done", &StateGroup::Completed)
    );
    assert!(done.group.is_finished());
    assert_eq!(plane.seen().len(), 3, "served from the cache");
    assert_eq!(
        client.state(uuid(PROJECT), Uuid::new_v4()).await.unwrap(),
        None
    );
    assert_eq!(plane.seen().len(), 6, "a miss re-reads the states once");
    check_authenticated(&plane);
}

/// Comments are HTML-escaped: they may quote agent output.
#[tokio::test]
async fn comments_are_escaped() {
    let plane = FakePlane::start().await;
    let client = plane.client();
    client
        .add_comment(
            uuid(PROJECT),
            &issue_id(ISSUE),
            "Cancelled by orch.\nAgent said: <script>alert('x')</script> & \"done\"",
        )
        .await
        .unwrap();
    let comments = plane.lock().comments.clone();
    assert_eq!(
        comments,
        [(
            ISSUE.to_owned(),
            "<p>Cancelled by orch.<br>Agent said: &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;done&quot;</p>"
                .to_owned()
        )]
    );
    let seen = plane.seen();
    assert_eq!(
        seen[0].path,
        format!("/api/v1/workspaces/acme/projects/{PROJECT}/work-items/{ISSUE}/comments/")
    );
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    check_authenticated(&plane);
}

/// Instances from before the work-items rename only have `issues/` paths;
/// the client falls back once and then remembers.
#[tokio::test]
async fn older_issue_paths_are_used_when_needed() {
    let plane = FakePlane::start().await;
    plane.lock().legacy_only = true;
    let client = plane.client();
    let issue = client.issue(uuid(PROJECT), &issue_id(ISSUE)).await.unwrap();
    assert_eq!(issue.unwrap().state_id, uuid(STOP));
    client
        .add_comment(uuid(PROJECT), &issue_id(ISSUE), "hi")
        .await
        .unwrap();
    let paths: Vec<String> = plane.seen().iter().map(|s| s.path.clone()).collect();
    assert_eq!(paths.len(), 3, "{paths:?}");
    assert!(paths[0].contains("/work-items/"));
    assert!(paths[1].contains("/issues/") && paths[2].contains("/issues/"));
}

/// "Blocked by" relations: known blockers are listed as they are, unknown
/// ones (external dependencies) come with their state group.
#[tokio::test]
async fn blockers_and_their_state_groups() {
    let plane = FakePlane::start().await;
    let known = "11111111-1111-4111-8111-111111111111";
    let finished = "22222222-2222-4222-8222-222222222222";
    let open = "33333333-3333-4333-8333-333333333333";
    let missing = "44444444-4444-4444-8444-444444444444";
    plane.add_issue(known, IN_PROGRESS, 91);
    plane.add_issue(finished, DONE, 92);
    plane.add_issue(open, IN_PROGRESS, 93);
    plane.lock().blocked_by.insert(
        ISSUE.into(),
        vec![known.into(), finished.into(), open.into(), missing.into()],
    );
    let client = plane.client();
    let blockers = client
        .blocked_by(uuid(PROJECT), &issue_id(ISSUE), |id| id.as_str() == known)
        .await
        .unwrap();
    let got: Vec<(&str, Option<StateGroup>, bool)> = blockers
        .iter()
        .map(|b| (b.issue_id.as_str(), b.state_group.clone(), b.is_finished()))
        .collect();
    assert_eq!(
        got,
        [
            (known, None, false),
            (finished, Some(StateGroup::Completed), true),
            (open, Some(StateGroup::Started), false),
            (missing, None, false),
        ]
    );
    assert!(
        plane.seen()[0]
            .path
            .ends_with(&format!("/work-items/{ISSUE}/relations/"))
    );
}

/// 429 is retried after the server's `Retry-After`, then succeeds.
#[tokio::test]
async fn rate_limit_is_retried_then_succeeds() {
    let plane = FakePlane::start().await;
    plane.script(Scripted::rate_limited(0));
    plane.script(Scripted::rate_limited(1));
    let client = plane.client();
    let started = Instant::now();
    let id = client.project_identifier(uuid(PROJECT)).await.unwrap();
    assert_eq!(id, "ORCH");
    assert_eq!(plane.seen().len(), 3);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
}

/// A `Retry-After` beyond the retry budget ends the call at once, so the
/// caller can schedule it later instead of hanging.
#[tokio::test]
async fn rate_limit_beyond_the_budget_gives_up_at_once() {
    let plane = FakePlane::start().await;
    plane.script(Scripted::rate_limited(3600));
    let err = plane.client().states(uuid(PROJECT)).await.unwrap_err();
    assert!(
        matches!(
            err,
            PlaneError::RateLimited {
                retry_after_secs: 3600,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_transient());
    assert_eq!(plane.seen().len(), 1);
}

/// 5xx on every attempt: bounded attempts, then a transient error.
#[tokio::test]
async fn server_errors_exhaust_the_retries() {
    let plane = FakePlane::start().await;
    for status in [500, 502, 503, 504, 500] {
        plane.script(Scripted::status(status));
    }
    let policy = fake::fast_retry();
    let err = plane
        .client()
        .issue(uuid(PROJECT), &issue_id(ISSUE))
        .await
        .unwrap_err();
    let PlaneError::Exhausted { attempts, last, .. } = &err else {
        panic!("expected Exhausted, got {err}");
    };
    assert_eq!(*attempts, policy.max_attempts);
    assert!(last.starts_with("HTTP 504"), "{last}");
    assert_eq!(plane.seen().len(), policy.max_attempts as usize);
    assert!(err.is_transient());
}

/// The total-time bound holds even with many attempts allowed.
#[tokio::test]
async fn retries_stop_at_the_total_time_bound() {
    let plane = FakePlane::start().await;
    for _ in 0..50 {
        plane.script(Scripted::status(503));
    }
    let policy = RetryPolicy {
        max_attempts: 50,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(100),
        max_total: Duration::from_millis(350),
    };
    let client = PlaneClient::new(plane.api(), policy).unwrap();
    let started = Instant::now();
    assert!(client.project_identifier(uuid(PROJECT)).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(plane.seen().len() <= 5, "{}", plane.seen().len());
}

/// Refusals that retrying will not fix are not retried, and no error or
/// debug output ever shows the token.
#[tokio::test]
async fn wrong_token_is_not_retried_nor_shown() {
    let plane = FakePlane::start().await;
    let mut api = plane.api();
    api.token = orch::plane::Secret::new("wrong_token_abcdef");
    let client = PlaneClient::new(api, fake::fast_retry()).unwrap();
    let err = client.states(uuid(PROJECT)).await.unwrap_err();
    assert!(
        matches!(err, PlaneError::Status { status: 401, .. }),
        "{err}"
    );
    assert!(!err.is_transient());
    assert_eq!(plane.seen().len(), 1);
    let shown = format!("{err} {err:?} {client:?} {:?}", plane.client());
    assert!(
        !shown.contains("wrong_token_abcdef") && !shown.contains(fake::TOKEN),
        "{shown}"
    );
}
