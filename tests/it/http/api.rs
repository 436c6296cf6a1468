//! The API's behaviour: bad input, listing, key resolution, logs, metrics,
//! the pipeline behind it, and STOP.

use super::*;

/// Bad input gets the fitting 4xx with a one-line JSON error and changes
/// nothing; nothing the client sends makes the server fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_one_line_errors_and_changes_nothing() {
    let s = Schemas::load();
    let mut api = Api::simple().await;
    api.start_task("ORCH-1", &[]).await;
    let ok = |wi: &str| json!({"work_item_id": wi, "repo": "r", "title": "t"});
    let raw_post = |path: &str, body: String| {
        api.client
            .post(api.url(path))
            .header("content-type", "application/json")
            .body(body)
    };
    let cases: Vec<(u16, Resp)> = vec![
        (400, send(raw_post("/api/tasks", "{\"work_item_id\": ".into())).await),
        (400, send(raw_post("/api/tasks", "not json".into())).await),
        (422, send(raw_post("/api/tasks", "[]".into())).await),
        (422, send(raw_post("/api/tasks", String::new())).await),
        (422, api.post("/api/tasks", &json!({"work_item_id": 7, "repo": "r", "title": "t"})).await),
        (422, api.post("/api/tasks", &json!({"repo": "r", "title": "t"})).await),
        (422, api.post("/api/tasks", &json!({"work_item_id": "ORCH-2", "repo": "r", "title": "t", "extra": 1})).await),
        (422, api.post("/api/tasks", &ok("orch-2")).await),
        (422, api.post("/api/tasks", &ok("ORCH-0")).await),
        (422, api.post("/api/tasks", &ok("../ORCH-2")).await),
        (422, api.post("/api/tasks", &json!({"work_item_id": "ORCH-2", "repo": "../r", "title": "t"})).await),
        (404, api.post("/api/tasks", &json!({"work_item_id": "ORCH-2", "repo": "elsewhere", "title": "t"})).await),
        (422, api.post("/api/tasks", &json!({"work_item_id": "ORCH-2", "repo": "r", "title": "  "})).await),
        (422, api.post("/api/tasks", &json!({"work_item_id": "ORCH-2", "repo": "r", "title": "t", "depends_on": ["ORCH-77"]})).await),
        (422, api.post("/api/tasks", &json!({"work_item_id": "ORCH-2", "repo": "r", "title": "t", "depends_on": ["--all"]})).await),
        (413, send(raw_post("/api/tasks", format!("{{\"title\": \"{}\"}}", "x".repeat(orch::http::BODY_LIMIT)))).await),
        (400, api.get("/api/tasks?limit=abc").await),
        (400, api.get("/api/tasks?limit=0").await),
        (400, api.get("/api/tasks?stage=nowhere").await),
        (400, api.get("/api/tasks?blocked=maybe").await),
        (400, api.get("/api/tasks?cursor=garbage").await),
        (400, api.get("/api/tasks?color=red").await),
        (400, api.get("/api/tasks/..%2F..%2Fetc").await),
        (400, api.get("/api/tasks/ORCH-1/jobs/abc/log").await),
        (404, api.get("/api/tasks/123456").await),
        (404, api.get("/api/tasks/4b1d6a3e-1f0c-4a4e-9a37-2b8e0c7f9d11").await),
        (409, api.post("/api/tasks/ORCH-1/retry", &json!({"note": "not blocked"})).await),
        (422, api.post("/api/tasks/ORCH-1/retry", &json!({"note": 5})).await),
        (404, api.post("/api/tasks/ORCH-9/retry", &json!({})).await),
        (405, api.call(Method::DELETE, "/api/tasks", Some(&json!({}))).await),
        (404, api.get("/api/nothing-here").await),
    ];
    for (i, (status, r)) in cases.iter().enumerate() {
        assert_eq!(r.status, *status, "case {i}: {}", r.text);
        let body = r.json();
        s.check("error.json", &body);
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
    }
    let tasks = api.w.read(|rx| rx.list_tasks(None, 10, |_| true)).0;
    assert_eq!(tasks.len(), 1, "only ORCH-1 exists: {tasks:?}");
    assert_eq!(
        api.get("/healthz").await.status,
        200,
        "the server still serves"
    );
    api.stop().await;
}

/// The list is newest first, includes terminal tasks, pages with an opaque
/// cursor, and filters by stage, repo and blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_newest_first_and_filters() {
    let mut api = Api::start(World::builder().repo("r", "").repo("s", ""), Mode::ApiOnly).await;
    let mut ids = Vec::new();
    for (wi, repo) in [
        ("ORCH-1", "r"),
        ("ORCH-2", "s"),
        ("ORCH-3", "r"),
        ("ORCH-4", "s"),
        ("ORCH-5", "r"),
    ] {
        let r = api
            .post(
                "/api/tasks",
                &json!({"work_item_id": wi, "repo": repo, "title": wi}),
            )
            .await;
        assert_eq!(r.status, 201);
        ids.push(r.json()["task"]["task_id"].as_u64().unwrap());
    }
    let (done, blocked) = (ids[0], ids[1]);
    api.write(move |tx| tx.set_stage(done, Stage::Done)).await;
    api.write(move |tx| tx.set_blocked(blocked, Some("stuck".into())))
        .await;
    let ids_of = |v: &Value| -> Vec<u64> {
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["task_id"].as_u64().unwrap())
            .collect()
    };
    let mut seen = Vec::new();
    let mut path = "/api/tasks?limit=2&stage=&repo=".to_owned();
    loop {
        let r = api.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let page = r.json();
        assert!(ids_of(&page).len() <= 2);
        seen.extend(ids_of(&page));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/tasks?limit=2&cursor={c}"),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(
        seen, newest_first,
        "every task once, newest first, done included"
    );
    assert_eq!(
        ids_of(&api.get("/api/tasks?stage=done").await.json()),
        vec![done]
    );
    assert_eq!(
        ids_of(&api.get("/api/tasks?repo=s").await.json()),
        vec![ids[3], ids[1]]
    );
    assert_eq!(
        ids_of(&api.get("/api/tasks?blocked=true").await.json()),
        vec![blocked]
    );
    assert_eq!(
        ids_of(&api.get("/api/tasks?blocked=false&repo=s").await.json()),
        vec![ids[3]]
    );
    assert_eq!(
        ids_of(&api.get("/api/tasks?limit=100000").await.json()).len(),
        5,
        "a large limit is capped, not refused"
    );
    api.stop().await;
}

/// Keys resolve by task id, tracker UUID (any case) and work item id; a
/// cancelled key shows its newest tombstoned task until a successor
/// exists, which then lists it as a predecessor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_resolve_by_id_uuid_work_item_and_tombstone() {
    let mut api = Api::simple().await;
    let uuid = "4b1d6a3e-1f0c-4a4e-9a37-2b8e0c7f9d11";
    let (_, task) = api
        .write(move |tx| {
            orch::pipeline::apply::start(
                tx,
                orch::store::NewTask {
                    work_item_id: WorkItemId::parse("ORCH-7").unwrap(),
                    plane_issue_id: Some(PlaneIssueId::parse(uuid).unwrap()),
                    repo: orch::domain::RepoName::parse("r").unwrap(),
                    title: "from the tracker".into(),
                    description: String::new(),
                    depends_on: Vec::new(),
                },
            )
        })
        .await;
    let id = task.id;
    for key in [
        id.to_string(),
        uuid.to_owned(),
        uuid.to_uppercase(),
        "ORCH-7".into(),
    ] {
        let r = api.get(&format!("/api/tasks/{key}")).await;
        assert_eq!(r.status, 200, "{key}: {}", r.text);
        assert_eq!(r.json()["task"]["task_id"], id, "{key}");
        assert_eq!(r.json()["task"]["plane_issue_id"], uuid);
    }
    api.write(move |tx| {
        tx.request_cancel(id)?;
        tx.finalize_cancel(id)
    })
    .await;
    for key in ["ORCH-7", uuid] {
        let r = api.get(&format!("/api/tasks/{key}")).await;
        assert_eq!(r.status, 200, "{key}");
        assert_eq!(
            r.json()["task"]["task_id"],
            id,
            "the tombstoned task for {key}"
        );
        assert_eq!(
            r.json()["task"]["work_item_id"],
            format!("ORCH-7::cancelled::{id}")
        );
    }
    let r = api
        .get(&format!("/api/tasks/ORCH-7::cancelled::{id}"))
        .await;
    assert_eq!(r.json()["task"]["task_id"], id, "a tombstone is a key too");
    let new = api.start_task("ORCH-7", &[]).await["task"]["task_id"]
        .as_u64()
        .unwrap();
    let r = api.get("/api/tasks/ORCH-7").await;
    assert_eq!(r.json()["task"]["task_id"], new, "the live task wins");
    assert_eq!(r.json()["predecessors"][0]["task_id"], id);
    assert!(r.json()["predecessors"][0]["cancelled_at"].is_string());
    api.stop().await;
}

/// An agent's log is plain text from any offset; the next offset is in a
/// header; offsets past the end, other tasks' jobs and missing logs are
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_log_is_served_from_an_offset() {
    let s = Schemas::load();
    let mut api = Api::simple().await;
    let a = api.start_task("ORCH-1", &[]).await["task"]["task_id"]
        .as_u64()
        .unwrap();
    let b = api.start_task("ORCH-2", &[]).await["task"]["task_id"]
        .as_u64()
        .unwrap();
    let job_a = api.w.jobs(a)[0].id;
    let job_b = api.w.jobs(b)[0].id;
    let logs = api.w.data_dir().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join(format!("{job_a}.log")), "hello\nworld\n").unwrap();
    let log = |offset: Option<u64>| {
        let q = offset.map(|o| format!("?offset={o}")).unwrap_or_default();
        format!("/api/tasks/ORCH-1/jobs/{job_a}/log{q}")
    };
    let r = api.get(&log(None)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text, "hello\nworld\n");
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert_eq!(r.header("x-next-offset"), Some("12"));
    let r = api.get(&log(Some(6))).await;
    assert_eq!((r.status, r.text.as_str()), (200, "world\n"));
    let r = api.get(&log(Some(12))).await;
    assert_eq!((r.status, r.text.as_str()), (200, ""));
    assert_eq!(r.header("x-next-offset"), Some("12"));
    let r = api.get(&log(Some(13))).await;
    assert_eq!(r.status, 416);
    s.check("error.json", &r.json());
    let r = api
        .get(&format!("/api/tasks/ORCH-2/jobs/{job_a}/log"))
        .await;
    assert_eq!(r.status, 404, "a job of another task");
    s.check("error.json", &r.json());
    let r = api
        .get(&format!("/api/tasks/ORCH-2/jobs/{job_b}/log"))
        .await;
    assert_eq!(r.status, 404, "no log yet");
    s.check("error.json", &r.json());
    let r = api
        .get(&format!("/api/tasks/ORCH-1/jobs/{job_a}/log?offset=-1"))
        .await;
    assert_eq!(r.status, 400);
    api.stop().await;
}

/// `/metrics` is valid Prometheus text with every family, counted from the
/// store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_from_the_store() {
    let mut api = Api::simple().await;
    api.start_task("ORCH-1", &[]).await;
    api.start_task("ORCH-2", &[]).await;
    api.write(|tx| tx.claim("w-test", 60_000, None)).await;
    let r = api.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let samples = parse_metrics(&r.text);
    for (name, value) in [
        ("orch_jobs{status=\"queued\"}", 1.0),
        ("orch_jobs{status=\"running\"}", 1.0),
        ("orch_jobs{status=\"done\"}", 0.0),
        ("orch_serial_gate_waiting{repo=\"r\"}", 1.0),
        ("orch_serial_gate_active{repo=\"r\"}", 1.0),
        ("orch_deps_waiting", 0.0),
        ("orch_blocked_tasks", 0.0),
        ("orch_gate_errors_total", 0.0),
        ("orch_claims_total", 0.0),
        ("orch_claim_errors_total", 0.0),
        ("orch_claim_duration_seconds_bucket{le=\"+Inf\"}", 0.0),
        ("orch_claim_duration_seconds_count", 0.0),
    ] {
        assert_eq!(samples.get(name), Some(&value), "{name} in\n{}", r.text);
    }
    api.stop().await;
}

/// Every sample line of an exposition, checked for the text format's
/// grammar: `name{labels} value`, each family announced by HELP and TYPE.
fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    let mut typed = std::collections::BTreeSet::new();
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["gauge", "counter", "histogram"].contains(&kind), "{line}");
            typed.insert(name.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value in {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{line:?}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(typed.contains(family), "{name} has no TYPE line");
        out.insert(series.to_owned(), value);
    }
    out
}

/// `orch serve` with the API: a task started over HTTP wakes a worker and
/// runs to `done`; its agent's log is served; `/metrics` counts the claims
/// with their latency; shutdown stops the API with the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_the_pipeline_behind_the_api() {
    let s = Schemas::load();
    let mut api = Api::start(World::builder().repo("r", ""), Mode::Serve).await;
    let id = api.start_task("ORCH-1", &[]).await["task"]["task_id"]
        .as_u64()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let detail = loop {
        let r = api.get("/api/tasks/ORCH-1").await;
        assert_eq!(r.status, 200);
        let d = r.json();
        if d["task"]["stage"] == "done" {
            break d;
        }
        assert!(Instant::now() < deadline, "ORCH-1 did not finish: {d:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    s.check("task-detail.json", &detail);
    let analyst = detail["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["role"] == "analyst")
        .expect("an analyst job");
    let r = api
        .get(&format!("/api/tasks/{id}/jobs/{}/log", analyst["job_id"]))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.text.is_empty(), "the analyst wrote to its log");

    let samples = parse_metrics(&api.get("/metrics").await.text);
    let claims = samples["orch_claims_total"];
    let jobs_run = detail["jobs"].as_array().unwrap().len() as f64;
    assert!(claims >= jobs_run, "{claims} claims for {jobs_run} jobs");
    assert_eq!(samples["orch_claim_duration_seconds_count"], claims);
    assert_eq!(
        samples["orch_claim_duration_seconds_bucket{le=\"+Inf\"}"],
        claims
    );
    assert!(samples["orch_claim_duration_seconds_sum"] > 0.0);
    assert_eq!(samples["orch_jobs{status=\"done\"}"], jobs_run);
    s.check("queue.json", &api.get("/queue").await.json());

    api.stop().await;
    let refused = api.client.get(api.url("/healthz")).send().await;
    assert!(refused.is_err(), "the API stopped with serve: {refused:?}");
}

/// STOP over the API: 202 with the step while the cancel runs, 200 `noop`
/// once the task is terminal, 404 for an unknown key; `/queue` shows the
/// cancel in its `stop` block (TC-42). With the switch off the API answers
/// 409 and nothing changes (TC-S01).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_over_the_api_tc_s01() {
    let s = Schemas::load();
    let sleepy = crate::world::demo_agent_with("ORCH_DEMO_SLEEP_MS=60000");
    let mut api = Api::start(
        World::builder()
            .repo("r", "")
            .env("ORCH_AGENT_CMD_ANALYST", &sleepy),
        Mode::Serve,
    )
    .await;
    api.start_task("ORCH-1", &[]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.w.jobs(1).iter().all(|j| j.pid.is_none()) {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = api.post("/api/tasks/ORCH-1/stop", &json!({})).await;
    assert_eq!(r.status, 202, "{}", r.text);
    s.check("stop-response.json", &r.json());
    let queue = api.get("/queue").await.json();
    s.check("queue.json", &queue);
    let r = api.post("/api/tasks/ORCH-1/stop", &json!({})).await;
    assert_eq!(r.status, 202, "a second STOP is a no-op: {}", r.text);
    api.w
        .wait_task(1, 30, "cancelled", |t| t.stage == Stage::Cancelled)
        .await;
    let r = api.post("/api/tasks/ORCH-1/stop", &json!({})).await;
    assert_eq!((r.status, r.json()["result"].as_str()), (200, Some("noop")));
    s.check("stop-response.json", &r.json());
    let queue = api.get("/queue").await.json();
    s.check("queue.json", &queue);
    assert_eq!(
        queue["stop"]["recent"][0]["work_item_id"],
        "ORCH-1::cancelled::1"
    );
    assert_eq!(
        api.post("/api/tasks/ORCH-404/stop", &json!({}))
            .await
            .status,
        404
    );
    api.stop().await;

    let mut api = Api::start(
        World::builder()
            .repo("r", "")
            .env("ORCH_STOP_STATUS_ENABLED", "false")
            .env("ORCH_AGENT_CMD_ANALYST", &sleepy),
        Mode::Serve,
    )
    .await;
    api.start_task("ORCH-1", &[]).await;
    let r = api.post("/api/tasks/ORCH-1/stop", &json!({})).await;
    assert_eq!(r.status, 409, "{}", r.text);
    s.check("error.json", &r.json());
    assert!(api.w.task(1).cancel.is_none());
    api.stop().await;
}
