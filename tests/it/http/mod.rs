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

mod api;
mod guard;
mod schemas;

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
