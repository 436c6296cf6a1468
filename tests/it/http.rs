//! The HTTP API over real HTTP on loopback (SPEC §9.2): every response is
//! validated against its JSON Schema in `schema/` (TC-42), and the guard's
//! token, Host and content-type rules are exercised from outside (TC-43).
//! The server runs either alone on a world's runtime (so the store holds
//! exactly what a test put there) or inside `orch serve` with its workers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orch::domain::{JobStatus, PlaneIssueId, Role, Stage, WorkItemId};
use orch::http::{ClaimStats, HttpError, Listener};
use orch::runtime::now;
use orch::store::{EventKind, StoreError};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::world::World;

const TOKEN: &str = "t0ken-for-tests";
const SCHEMA_BASE: &str = "https://orch.invalid/schema/";

/// A world with its API on a loopback port.
struct Api {
    w: World,
    addr: SocketAddr,
    client: reqwest::Client,
    token: Option<String>,
    server: Option<tokio::task::JoinHandle<()>>,
}

struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

enum Mode {
    /// Only the HTTP server: no worker claims or runs anything.
    ApiOnly,
    /// `orch serve` with the API: workers, reaper and recovery too.
    Serve,
}

impl Api {
    async fn start(builder: crate::world::Builder, mode: Mode) -> Api {
        let w = builder.env("ORCH_HTTP_ADDR", "127.0.0.1:0").build();
        let listener = Listener::bind(&w.rt.settings).await.expect("binds");
        let addr = listener.local_addr();
        let rt = w.rt.clone();
        let server = match mode {
            Mode::ApiOnly => tokio::spawn(async move {
                orch::http::serve(listener, rt, Arc::new(ClaimStats::default()))
                    .await
                    .expect("the API serves");
            }),
            Mode::Serve => tokio::spawn(async move {
                orch::runtime::serve_with_http(rt, listener)
                    .await
                    .expect("orch serve runs");
            }),
        };
        let token =
            w.rt.settings
                .api_token
                .as_ref()
                .map(|s| s.expose().to_owned());
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Api {
            w,
            addr,
            client,
            token,
            server: Some(server),
        }
    }

    async fn simple() -> Api {
        Api::start(World::builder().repo("r", ""), Mode::ApiOnly).await
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A request with the token (when one is set) and, for a body, the JSON
    /// content type: what a well-behaved client sends.
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Resp {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        send(req).await
    }

    async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: &Value) -> Resp {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn start_task(&self, wi: &str, deps: &[&str]) -> Value {
        let r = self
            .post(
                "/api/tasks",
                &json!({"work_item_id": wi, "repo": "r", "title": format!("title of {wi}"), "depends_on": deps}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.json()
    }

    /// Runs one store operation through the writer, as the server would.
    async fn write<R: Send + 'static>(
        &self,
        op: impl FnMut(&mut orch::store::Tx<'_>) -> Result<R, StoreError> + Send + 'static,
    ) -> R {
        self.w.rt.writer.call(now(), op).await.unwrap()
    }

    async fn stop(&mut self) {
        self.w.rt.request_shutdown();
        if let Some(s) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(30), s)
                .await
                .expect("the server stops")
                .unwrap();
        }
    }
}

async fn send(req: reqwest::RequestBuilder) -> Resp {
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Resp {
        status,
        headers,
        text,
    }
}

/// Sends raw bytes and returns the status code and the body: for requests
/// a client library would not send (a foreign or missing `Host`).
async fn raw(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The schemas of `schema/`, registered under their `$id`s so their
/// references to each other resolve without any network.
struct Schemas {
    registry: jsonschema::Registry<'static>,
    docs: Vec<(String, Value)>,
}

impl Schemas {
    fn load() -> Schemas {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
        let mut docs = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                assert_eq!(
                    v["$id"],
                    json!(format!("{SCHEMA_BASE}{name}")),
                    "$id of {name}"
                );
                docs.push((name, v));
            }
        }
        docs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut builder = jsonschema::Registry::new();
        for (name, v) in &docs {
            builder = builder
                .add(format!("{SCHEMA_BASE}{name}"), v.clone())
                .unwrap();
        }
        Schemas {
            registry: builder.prepare().unwrap(),
            docs,
        }
    }

    fn doc(&self, name: &str) -> &Value {
        &self
            .docs
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no schema/{name}"))
            .1
    }

    fn errors(&self, name: &str, instance: &Value) -> Vec<String> {
        let validator = jsonschema::options()
            .with_registry(&self.registry)
            .should_validate_formats(true)
            .build(&json!({ "$ref": format!("{SCHEMA_BASE}{name}") }))
            .unwrap_or_else(|e| panic!("schema/{name} does not compile: {e}"));
        validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    /// Asserts that `instance` validates against `schema/<name>`.
    fn check(&self, name: &str, instance: &Value) {
        let errors = self.errors(name, instance);
        assert!(
            errors.is_empty(),
            "{name} rejects {instance:#}:\n{}",
            errors.join("\n")
        );
    }

    fn enum_of(&self, def: &str) -> Vec<String> {
        self.doc("common.json")["$defs"][def]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("common.json has no enum {def}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }
}

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

/// TC-43: with a token set, every API, `/queue` and `/metrics` request
/// without it (or with a wrong one) is 401 and changes nothing; with it the
/// request goes through; `/healthz` needs none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tc43_token_guards_api_queue_and_metrics() {
    let s = Schemas::load();
    let mut api = Api::start(
        World::builder().repo("r", "").env("ORCH_API_TOKEN", TOKEN),
        Mode::ApiOnly,
    )
    .await;
    let t = api.start_task("ORCH-1", &[]).await;
    let id = t["task"]["task_id"].as_u64().unwrap();
    let job = api.w.jobs(id)[0].id;
    let start = json!({"work_item_id": "ORCH-2", "repo": "r", "title": "second"});
    let requests: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/queue".into(), None),
        (Method::GET, "/metrics".into(), None),
        (Method::GET, "/api/tasks".into(), None),
        (Method::GET, "/api/tasks/ORCH-1".into(), None),
        (
            Method::GET,
            format!("/api/tasks/ORCH-1/jobs/{job}/log"),
            None,
        ),
        (Method::POST, "/api/tasks".into(), Some(start.clone())),
        (
            Method::POST,
            "/api/tasks/ORCH-1/retry".into(),
            Some(json!({})),
        ),
        (Method::GET, "/api/not-a-route".into(), None),
    ];
    let wrong = [
        None,
        Some("Bearer wrong-token".to_owned()),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_owned()),
    ];
    for (method, path, body) in &requests {
        for auth in &wrong {
            let mut req = api.client.request(method.clone(), api.url(path));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            if let Some(b) = body {
                req = req
                    .header("content-type", "application/json")
                    .body(b.to_string());
            }
            let r = send(req).await;
            assert_eq!(r.status, 401, "{method} {path} with {auth:?}: {}", r.text);
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
            s.check("error.json", &r.json());
        }
    }
    assert_eq!(
        api.w.read(|rx| rx.list_tasks(None, 10, |_| true)).0.len(),
        1,
        "a refused request changed nothing"
    );
    let r = send(api.client.get(api.url("/healthz"))).await;
    assert_eq!(r.status, 200, "healthz needs no token");
    for (path, expected) in [
        ("/queue", 200),
        ("/metrics", 200),
        ("/api/tasks", 200),
        ("/api/tasks/ORCH-1", 200),
        ("/api/not-a-route", 404),
    ] {
        assert_eq!(
            api.get(path).await.status,
            expected,
            "{path} with the token"
        );
    }
    assert_eq!(api.post("/api/tasks", &start).await.status, 201);
    api.stop().await;
}

/// TC-43: a mutation without `Content-Type: application/json` is refused
/// with 415 and changes nothing, whatever its body says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tc43_mutations_need_a_json_content_type() {
    let s = Schemas::load();
    let mut api = Api::simple().await;
    let body = json!({"work_item_id": "ORCH-1", "repo": "r", "title": "t"}).to_string();
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ] {
        for path in ["/api/tasks", "/api/tasks/ORCH-1/retry"] {
            let mut req = api.client.post(api.url(path)).body(body.clone());
            if let Some(ct) = ct {
                req = req.header("content-type", ct);
            }
            let r = send(req).await;
            assert_eq!(r.status, 415, "{path} with {ct:?}: {}", r.text);
            s.check("error.json", &r.json());
        }
    }
    assert!(
        api.w
            .read(|rx| rx.list_tasks(None, 10, |_| true))
            .0
            .is_empty()
    );
    let r = send(
        api.client
            .post(api.url("/api/tasks"))
            .header("content-type", "application/json; charset=utf-8")
            .body(body),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    api.stop().await;
}

/// TC-43: a request whose `Host` is neither localhost nor the bound address
/// is refused (DNS rebinding), even with the right token, and changes
/// nothing; a missing `Host` is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tc43_foreign_host_is_refused() {
    let s = Schemas::load();
    let mut api = Api::start(
        World::builder().repo("r", "").env("ORCH_API_TOKEN", TOKEN),
        Mode::ApiOnly,
    )
    .await;
    let port = api.addr.port();
    let body = json!({"work_item_id": "ORCH-1", "repo": "r", "title": "t"}).to_string();
    let request = |method: &str, path: &str, host: Option<&str>| {
        let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
        let (ct, payload) = if method == "POST" {
            (
                format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n",
                    body.len()
                ),
                body.as_str(),
            )
        } else {
            (String::new(), "")
        };
        format!(
            "{method} {path} HTTP/1.1\r\n{host}Authorization: Bearer {TOKEN}\r\n{ct}Connection: close\r\n\r\n{payload}"
        )
    };
    for host in [
        Some(format!("evil.example:{port}")),
        Some("evil.example".to_owned()),
        Some(format!("localhost.evil.example:{port}")),
        Some(format!("127.0.0.1:{}", port.wrapping_add(1))),
        Some("localhost:1".to_owned()),
        None,
    ] {
        for (method, path) in [
            ("GET", "/queue"),
            ("POST", "/api/tasks"),
            ("GET", "/healthz"),
        ] {
            let (status, body) = raw(api.addr, &request(method, path, host.as_deref())).await;
            assert_eq!(status, 421, "{method} {path} with Host {host:?}: {body}");
            s.check("error.json", &serde_json::from_str(&body).unwrap());
        }
    }
    assert!(
        api.w
            .read(|rx| rx.list_tasks(None, 10, |_| true))
            .0
            .is_empty()
    );
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "localhost".into(),
    ] {
        let (status, body) = raw(api.addr, &request("GET", "/queue", Some(&host))).await;
        assert_eq!(status, 200, "Host {host}: {body}");
    }
    let (status, body) = raw(
        api.addr,
        &request("POST", "/api/tasks", Some(&format!("localhost:{port}"))),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    api.stop().await;
}

/// TC-43: binding an address off the loopback without a token is refused,
/// by the library and by `orch serve` (exit 2, before the store is opened).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tc43_off_loopback_bind_without_token_refuses_to_start() {
    use orch::config::{Env, Settings};
    let load = |pairs: &[(&str, &str)]| {
        let mut env = vec![("ORCH_CONFIG", "/nonexistent/orch.toml")];
        env.extend_from_slice(pairs);
        Settings::load(&Env::from_pairs(env.iter().copied())).unwrap()
    };
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.10:8787"] {
        let settings = load(&[("ORCH_HTTP_ADDR", addr)]);
        match Listener::bind(&settings).await {
            Err(HttpError::OffLoopbackWithoutToken { .. }) => {}
            other => panic!("{addr}: expected a refusal, got {other:?}"),
        }
    }
    let with_token = load(&[("ORCH_HTTP_ADDR", "0.0.0.0:0"), ("ORCH_API_TOKEN", TOKEN)]);
    orch::http::check_bind(&with_token).expect("a token allows any address");
    let loopback = load(&[("ORCH_HTTP_ADDR", "[::1]:0")]);
    orch::http::check_bind(&loopback).expect("loopback needs no token");

    let dir = crate::support::tempdir();
    let data = dir.path().join("data");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orch"))
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ORCH_DATA_DIR", &data)
        .env("ORCH_CONFIG", dir.path().join("orch.toml"))
        .env("ORCH_AGENT_CMD", "builtin")
        .env("ORCH_HTTP_ADDR", "0.0.0.0:0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("ORCH_API_TOKEN"), "{stderr}");
    assert!(!data.join("orch.redb").exists(), "the store was not opened");
}

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
