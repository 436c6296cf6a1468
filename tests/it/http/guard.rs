//! TC-43: the guard in front of the API (token, content type, Host) and
//! the refusal to bind off the loopback without a token.

use super::*;

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
