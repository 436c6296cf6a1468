//! The tracker and the forge end to end: signed Plane webhooks over real
//! HTTP start and stop tasks, the pipeline runs with the Gitea forge, and
//! fake Plane and Gitea servers (following their documented APIs) record
//! what orch asked of them. The fake Gitea stands in front of the real bare
//! remote, so merges and branch deletions are checked with git.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use orch::domain::{JobStatus, Role, Stage};
use orch::http::Listener;
use serde_json::Value;

use crate::fakes::gitea::{self as fg, FakeGitea};
use crate::fakes::plane::{self as fp, FakePlane};
use crate::world::{World, demo_agent_with};

const SECRET: &str = "webhook-s3cret";

struct Site {
    w: World,
    plane: FakePlane,
    gitea: FakeGitea,
    addr: SocketAddr,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Site {
    async fn start(extra_env: &[(&str, &str)]) -> Site {
        let plane = FakePlane::start().await;
        let gitea = FakeGitea::start().await;
        let repo = format!(
            "plane_project = \"ORCH\"\nplane_project_id = \"{}\"\ngitea = \"{}\"\ndeploy = [\"sh\", \"-c\", \"echo deployed\"]",
            fp::PROJECT,
            fg::REPO
        );
        let mut b = World::builder()
            .repo("orchestrator", &repo)
            .env("ORCH_HTTP_ADDR", "127.0.0.1:0")
            .env("ORCH_PLANE_URL", &plane.url)
            .env("ORCH_PLANE_API_TOKEN", fp::TOKEN)
            .env("ORCH_PLANE_WORKSPACE", fp::WORKSPACE)
            .env("ORCH_PLANE_WEBHOOK_SECRET", SECRET)
            .env("ORCH_GITEA_URL", &gitea.url)
            .env("ORCH_GITEA_TOKEN", fg::TOKEN);
        for (k, v) in extra_env {
            b = b.env(k, v);
        }
        let w = b.build();
        gitea.back_with(&w.remotes["orchestrator"]);
        let listener = Listener::bind(&w.rt.settings).await.unwrap();
        let addr = listener.local_addr();
        let rt = w.rt.clone();
        let server =
            tokio::spawn(
                async move { orch::runtime::serve_with_http(rt, listener).await.unwrap() },
            );
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Site {
            w,
            plane,
            gitea,
            addr,
            http,
            server,
        }
    }

    /// A signed delivery of the issue moving to `state`.
    async fn deliver(
        &self,
        issue: &str,
        seq: u64,
        state_id: &str,
        state_name: &str,
    ) -> (u16, Value) {
        let mut body: Value = serde_json::from_str(fp::STATE_UPDATED).unwrap();
        body["data"]["id"] = issue.into();
        body["data"]["sequence_id"] = seq.into();
        body["data"]["state"]["id"] = state_id.into();
        body["data"]["state"]["name"] = state_name.into();
        body["activity"]["new_value"] = state_id.into();
        let raw = serde_json::to_vec(&body).unwrap();
        let sig = orch::plane::signature::sign_hex(SECRET.as_bytes(), &raw);
        let resp = self
            .http
            .post(format!("http://{}/webhooks/plane", self.addr))
            .header("X-Plane-Signature", sig)
            .header("X-Plane-Event", "issue")
            .header("Content-Type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn shutdown(self) {
        self.w.rt.request_shutdown();
        tokio::time::timeout(Duration::from_secs(30), self.server)
            .await
            .unwrap()
            .unwrap();
    }

    fn seen_paths(&self, method: &str) -> Vec<String> {
        self.gitea
            .seen()
            .iter()
            .filter(|s| s.method.as_str() == method)
            .map(|s| s.segments().join("/"))
            .collect()
    }
}

const ISSUE_B: &str = "4c3e0b5d-9e2f-4a7b-8d3c-8f6e2b1c4d5e";

/// A signed "To Analyse" webhook starts a task that runs to `done` through
/// the pipeline with the Gitea forge: the pull request is opened and merged
/// with `head_commit_id`, the branch is deleted through the API. A repeated
/// delivery is a no-op.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_start_runs_to_done_with_gitea() {
    let s = Site::start(&[]).await;
    s.plane.add_issue(fp::ISSUE, fp::TO_ANALYSE, 90);
    let (status, body) = s.deliver(fp::ISSUE, 90, fp::TO_ANALYSE, "To Analyse").await;
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("created")),
        "{body}"
    );
    let id = body["task_id"].as_u64().unwrap();
    let (status, again) = s.deliver(fp::ISSUE, 90, fp::TO_ANALYSE, "To Analyse").await;
    assert_eq!(
        (status, again["result"].as_str()),
        (200, Some("ignored")),
        "a repeated delivery changes nothing: {again}"
    );

    let t =
        s.w.wait_task(id, 90, "done", |t| t.stage == Stage::Done)
            .await;
    assert_eq!(t.work_item_id, "ORCH-90");
    s.w.wait_task(id, 10, "cleanup", |_| {
        s.w.events(id).contains(&"branch_deleted".to_string())
    })
    .await;
    assert!(
        s.w.remote_main_files("orchestrator")
            .contains("CHANGES-ORCH-90.md"),
        "merged into main"
    );
    assert_eq!(
        s.w.remote_tip("orchestrator", "feature/ORCH-90"),
        None,
        "deleted through the API"
    );
    let posts = s.seen_paths("POST");
    assert!(posts.iter().any(|p| p.ends_with("/pulls")), "{posts:?}");
    let merge = s
        .gitea
        .seen()
        .into_iter()
        .find(|x| x.segments().last() == Some(&"merge"))
        .expect("a merge call");
    assert_eq!(
        merge.json()["head_commit_id"].as_str(),
        s.w.read(|rx| rx.events_of(id))
            .iter()
            .find(|e| e.kind.as_str() == "merged")
            .map(|e| e.detail.rsplit(' ').next().unwrap().to_owned())
            .as_deref()
    );
    assert!(
        s.seen_paths("DELETE")
            .iter()
            .any(|p| p.ends_with("branches/feature/ORCH-90"))
    );
    let ev = s.w.events(id);
    assert!(
        ev.contains(&"pr_opened".to_string()) && ev.contains(&"merged".to_string()),
        "{ev:?}"
    );
    assert!(
        s.plane
            .lock()
            .comments
            .iter()
            .any(|(_, html)| html.contains("moved to review"))
    );
    s.shutdown().await;
}

/// A STOP webhook during development leaves no process, no worktree, no
/// local or remote feature branch, a cancelled task with both keys
/// tombstoned, the archived docs, a comment on the issue, and the repo's
/// next task running. A replayed STOP for an issue no longer in STOP changes
/// nothing (TC-44).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_stop_during_development() {
    let sleepy = demo_agent_with("ORCH_DEMO_SLEEP_MS=60000");
    let s = Site::start(&[("ORCH_AGENT_CMD_DEVELOPER", &sleepy)]).await;
    s.plane.add_issue(fp::ISSUE, fp::TO_ANALYSE, 90);
    s.plane.add_issue(ISSUE_B, fp::TO_ANALYSE, 91);
    let (_, a) = s.deliver(fp::ISSUE, 90, fp::TO_ANALYSE, "To Analyse").await;
    let (_, b) = s.deliver(ISSUE_B, 91, fp::TO_ANALYSE, "To Analyse").await;
    let (a, b) = (
        a["task_id"].as_u64().unwrap(),
        b["task_id"].as_u64().unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let dev = loop {
        if let Some(j) = s.w.jobs(a).into_iter().find(|j| {
            j.role == Role::Developer && j.pid.is_some() && j.status == JobStatus::Running
        }) {
            break j;
        }
        assert!(Instant::now() < deadline, "{:?}", s.w.events(a));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // A replay: the issue is not in STOP any more (or not yet).
    s.plane.set_state(fp::ISSUE, fp::IN_PROGRESS);
    let (status, body) = s.deliver(fp::ISSUE, 90, fp::STOP, "STOP").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        s.w.task(a).cancel.is_none(),
        "a replayed STOP changes nothing"
    );

    s.plane.set_state(fp::ISSUE, fp::STOP);
    let (status, body) = s.deliver(fp::ISSUE, 90, fp::STOP, "STOP").await;
    assert_eq!(status, 202, "{body}");
    let t =
        s.w.wait_task(a, 30, "cancelled", |t| t.stage == Stage::Cancelled)
            .await;
    assert!(!orch::agent::is_alive(
        dev.pid.unwrap(),
        dev.pid_start.unwrap()
    ));
    assert!(!s.w.data_dir().join(&t.worktree).exists());
    assert_eq!(s.w.remote_tip("orchestrator", "feature/ORCH-90"), None);
    assert_eq!(t.work_item_id, format!("ORCH-90::cancelled::{a}"));
    assert_eq!(
        t.plane_issue_id,
        Some(format!("{}::cancelled::{a}", fp::ISSUE))
    );
    assert!(
        orch::runtime::archive_dir(&s.w.data_dir(), &t)
            .join("01-analysis.md")
            .is_file()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s
        .plane
        .lock()
        .comments
        .iter()
        .any(|(i, html)| i == fp::ISSUE && html.contains("stopped ORCH-90"))
    {
        assert!(
            Instant::now() < deadline,
            "no STOP comment: {:?}",
            s.plane.lock().comments
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.w.wait_task(b, 30, "the next task runs", |t| t.admitted_at.is_some())
        .await;
    s.shutdown().await;
}

/// TC-41: bad webhook input (bad or missing signature, malformed JSON, wrong
/// types, oversize, an irrelevant event, no secret configured) gets its 4xx
/// or 503 (200 for an irrelevant event), and the store file is byte for byte
/// unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webhook_input_changes_nothing_tc41() {
    let s = Site::start(&[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let db = s.w.data_dir().join("orch.redb");
    let before = std::fs::read(&db).unwrap();
    let post = |path: &'static str, sig: Option<String>, body: Vec<u8>| {
        let mut req = s
            .http
            .post(format!("http://{}{path}", s.addr))
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(sig) = sig {
            req = req.header(
                if path.contains("plane") {
                    "X-Plane-Signature"
                } else {
                    "X-Gitea-Signature"
                },
                sig,
            );
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let sign = |b: &[u8]| Some(orch::plane::signature::sign_hex(SECRET.as_bytes(), b));
    let good: Vec<u8> = fp::STATE_UPDATED.as_bytes().to_vec();
    let mut wrong_types: Value = serde_json::from_str(fp::STATE_UPDATED).unwrap();
    wrong_types["data"]["sequence_id"] = "ninety".into();
    let wrong_types = serde_json::to_vec(&wrong_types).unwrap();
    let malformed = b"{\"event\": \"issue\", ".to_vec();
    let oversize = vec![b' '; 2 << 20];
    let irrelevant = fp::PRIORITY_UPDATED.as_bytes().to_vec();
    // (what, path, signature, body, expected status)
    type Case = (&'static str, &'static str, Option<String>, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        (
            "bad signature",
            "/webhooks/plane",
            Some("00".repeat(32)),
            good.clone(),
            401,
        ),
        ("no signature", "/webhooks/plane", None, good.clone(), 401),
        (
            "malformed JSON",
            "/webhooks/plane",
            sign(&malformed),
            malformed.clone(),
            400,
        ),
        (
            "wrong types",
            "/webhooks/plane",
            sign(&wrong_types),
            wrong_types.clone(),
            400,
        ),
        (
            "oversize",
            "/webhooks/plane",
            sign(&oversize),
            oversize.clone(),
            413,
        ),
        (
            "irrelevant event",
            "/webhooks/plane",
            sign(&irrelevant),
            irrelevant.clone(),
            200,
        ),
        (
            "no secret configured",
            "/webhooks/gitea",
            Some("00".repeat(32)),
            b"{}".to_vec(),
            503,
        ),
    ];
    for (what, path, sig, body, expected) in cases {
        assert_eq!(post(path, sig, body).await, expected, "{what}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        std::fs::read(&db).unwrap() == before,
        "the store file changed"
    );
    assert_eq!(s.w.read(|rx| rx.list_tasks(None, 10, |_| true)).0.len(), 0);
    s.shutdown().await;
}
