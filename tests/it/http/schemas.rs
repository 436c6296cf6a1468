//! TC-42: every response validates against its JSON Schema, and the
//! schemas themselves are valid, strict and in step with the code.

use super::*;

/// TC-42: every JSON answer of a running server, success and error alike,
/// validates against its schema; the request bodies the tests send validate
/// against the request schemas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tc42_every_response_matches_its_schema() {
    let s = Schemas::load();
    let mut api = Api::simple().await;

    let r = api.get("/healthz").await;
    assert_eq!(r.status, 200);
    s.check("healthz.json", &r.json());
    assert_eq!(r.json()["status"], "ok");

    let start = json!({"work_item_id": "ORCH-1", "repo": "r", "title": "first", "description": "the first task"});
    s.check("start-request.json", &start);
    let r = api.post("/api/tasks", &start).await;
    assert_eq!(r.status, 201, "{}", r.text);
    s.check("start-response.json", &r.json());
    assert_eq!(r.json()["result"], "created");
    assert_eq!(r.json()["task"]["stage"], "analysis");
    let id1 = r.json()["task"]["task_id"].as_u64().unwrap();

    // A second start of a task whose analyst job is queued changes nothing.
    let r = api.post("/api/tasks", &start).await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.check("start-response.json", &r.json());
    assert_eq!(r.json()["result"], "ignored");

    let r = api.start_task("ORCH-2", &["ORCH-1"]).await;
    s.check("start-response.json", &r);
    assert_eq!(r["task"]["depends_on"], json!(["ORCH-1"]));
    let id3 = api.start_task("ORCH-3", &[]).await["task"]["task_id"]
        .as_u64()
        .unwrap();

    // ORCH-1's analyst job runs; ORCH-3 waits for a human.
    let lease = api
        .write(|tx| tx.claim("w-test", 60_000, None))
        .await
        .expect("a job is claimable");
    assert_eq!(lease.task_id, id1);
    api.write(move |tx| tx.set_blocked(id3, Some("needs a human".into())))
        .await;

    // ORCH-4 is cancelled (tombstoned), then started again.
    let id4 = api.start_task("ORCH-4", &[]).await["task"]["task_id"]
        .as_u64()
        .unwrap();
    api.write(move |tx| {
        tx.request_cancel(id4)?;
        tx.finalize_cancel(id4)
    })
    .await;
    let again = api.start_task("ORCH-4", &[]).await;
    assert_ne!(again["task"]["task_id"].as_u64().unwrap(), id4);

    let r = api.get("/queue").await;
    assert_eq!(r.status, 200);
    let q = r.json();
    s.check("queue.json", &q);
    assert_eq!(q["running_count"], 1);
    assert_eq!(q["running"][0]["task_id"], id1);
    assert_eq!(q["running"][0]["role"], "analyst");
    assert_eq!(q["running"][0]["critical"], false);
    assert_eq!(q["blocked"][0]["work_item_id"], "ORCH-3");
    assert_eq!(q["blocked"][0]["reason"], "needs a human");
    assert_eq!(
        q["serial_gate"]["per_repo"]["r"]["active_task"]["task_id"],
        id1
    );
    assert_eq!(
        q["task_deps"]["blocked"][0]["waiting_on"],
        json!(["ORCH-1"])
    );

    let r = api.get("/api/tasks").await;
    assert_eq!(r.status, 200);
    s.check("task-list.json", &r.json());
    assert_eq!(r.json()["tasks"].as_array().unwrap().len(), 5);
    assert_eq!(r.json()["next_cursor"], Value::Null);
    let r = api.get("/api/tasks?limit=2").await;
    s.check("task-list.json", &r.json());
    assert!(r.json()["next_cursor"].is_string());

    let r = api.get("/api/tasks/ORCH-4").await;
    assert_eq!(r.status, 200);
    let d = r.json();
    s.check("task-detail.json", &d);
    assert_eq!(d["predecessors"][0]["task_id"], id4);
    let r = api.get(&format!("/api/tasks/{id1}")).await;
    s.check("task-detail.json", &r.json());
    assert_eq!(r.json()["jobs"][0]["status"], "running");
    let r = api.get(&format!("/api/tasks/{id4}")).await;
    s.check("task-detail.json", &r.json());
    assert_eq!(r.json()["task"]["stage"], "cancelled");
    assert_eq!(r.json()["task"]["cancel"]["resolution"], "cancelled");

    let retry = json!({"note": "the flaky test is fixed"});
    s.check("retry-request.json", &retry);
    let r = api.post("/api/tasks/ORCH-3/retry", &retry).await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.check("retry-response.json", &r.json());
    assert_eq!(r.json()["task"]["blocked"], Value::Null);

    for (status, r) in [
        (404, api.get("/api/tasks/ORCH-999").await),
        (400, api.get("/api/tasks/not-a-key").await),
        (409, api.post("/api/tasks/ORCH-3/retry", &json!({})).await),
        (404, api.get("/nowhere").await),
    ] {
        assert_eq!(r.status, status, "{}", r.text);
        s.check("error.json", &r.json());
    }
    api.stop().await;
}

/// The schemas are valid 2020-12 schemas, strict enough to catch a drifted
/// shape, and their closed lists are exactly the code's.
#[test]
fn schemas_are_valid_strict_and_match_the_code() {
    let s = Schemas::load();
    for (name, doc) in &s.docs {
        assert_eq!(
            doc["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        if let Err(e) = jsonschema::meta::validate(doc) {
            panic!("schema/{name} is not a valid schema: {e}");
        }
    }
    let names = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        s.enum_of("event_kind"),
        names(EventKind::ALL.iter().map(|k| k.as_str()).collect())
    );
    assert_eq!(
        s.enum_of("stage"),
        names(Stage::ALL.iter().map(|k| k.as_str()).collect())
    );
    assert_eq!(
        s.enum_of("role"),
        names(Role::ALL.iter().map(|k| k.as_str()).collect())
    );
    assert_eq!(
        s.enum_of("job_status"),
        names(JobStatus::ALL.iter().map(|k| k.as_str()).collect())
    );
    let error = json!({"error": "one line"});
    s.check("error.json", &error);
    assert!(
        !s.errors("error.json", &json!({"error": "two\nlines"}))
            .is_empty()
    );
    assert!(
        !s.errors("error.json", &json!({"error": "x", "more": 1}))
            .is_empty()
    );
    let healthz = json!({"status": "ok", "version": "0.1.0", "db": "ok"});
    s.check("healthz.json", &healthz);
    assert!(
        !s.errors("healthz.json", &json!({"status": "ok", "version": "0.1.0"}))
            .is_empty()
    );
    assert!(
        !s.errors(
            "start-request.json",
            &json!({"work_item_id": "orch-1", "repo": "r", "title": "t"})
        )
        .is_empty()
    );
    assert!(
        !s.errors(
            "task-list.json",
            &json!({"tasks": [{"task_id": 1}], "next_cursor": null})
        )
        .is_empty()
    );
}
