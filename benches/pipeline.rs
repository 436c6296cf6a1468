//! P2 and P3 (SPEC §11), measured on a real runtime in this process with the
//! built-in agent, a local bare remote and a warm bare clone:
//!
//! - P2: task started (the start transaction committed) → agent process
//!   running, p50/p99; and end to end, a signed Plane webhook sent over
//!   HTTP → agent process running;
//! - P3: STOP → agent dead, for a cooperative agent and for one ignoring
//!   SIGTERM (grace 1 s), and STOP → task `cancelled`.
//!
//! `ORCH_BENCH_RUNS` sets the number of tasks per scenario (default 30).
//! Run with `cargo bench --bench pipeline`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orch::config::{Env, Settings};
use orch::domain::{JobStatus, RepoName, Stage, WorkItemId};
use orch::pipeline::apply;
use orch::runtime::{Runtime, now};
use orch::store::NewTask;

fn remote(root: &Path) -> PathBuf {
    orch::runtime::make_remote(root, "r").unwrap()
}

fn orch_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_orch"))
}

/// A runtime on `root` whose agents run the built-in agent with `vars`.
fn open_runtime(root: &Path, vars: &str, extra: &[(&str, String)]) -> Arc<Runtime> {
    let exe = orch_exe();
    let cmd = format!("sh -c \"{vars} exec '{}' agent-demo\"", exe.display());
    let mut pairs: Vec<(String, String)> = ["PATH", "HOME"]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v)))
        .collect();
    for (k, v) in [
        ("ORCH_DATA_DIR", root.join("data").display().to_string()),
        ("ORCH_CONFIG", root.join("orch.toml").display().to_string()),
        ("ORCH_AGENT_CMD", cmd),
        ("ORCH_STOP_GRACE_SECS", "1".into()),
    ] {
        pairs.push((k.to_owned(), v));
    }
    pairs.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let env = Env::from_pairs(pairs);
    Runtime::open(Settings::load(&env).unwrap(), env)
        .unwrap()
        .with_builtin_exe(exe)
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, mut v: Vec<Duration>) {
    let (p50, p99, max) = (pct(&mut v, 0.5), pct(&mut v, 0.99), *v.last().unwrap());
    println!(
        "{name:<40} n={:<4} p50={:>8.2?} p99={:>8.2?} max={:>8.2?}",
        v.len(),
        p50,
        p99,
        max
    );
}

async fn scenario(
    root: &Path,
    stubborn: bool,
    runs: usize,
) -> (Vec<Duration>, Vec<Duration>, Vec<Duration>) {
    let bare = remote(root);
    std::fs::write(
        root.join("orch.toml"),
        format!("[[repo]]\nname = \"r\"\nremote = \"{}\"\n", bare.display()),
    )
    .unwrap();
    let vars = if stubborn {
        "ORCH_DEMO_SLEEP_MS=60000 ORCH_DEMO_IGNORE_TERM=1"
    } else {
        "ORCH_DEMO_SLEEP_MS=60000"
    };
    let rt = open_runtime(root, vars, &[("ORCH_HEARTBEAT_SECS", "5".into())]);
    let server = rt.spawn_serve();
    let (mut spawn, mut dead, mut cancelled) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..=runs {
        let new = NewTask {
            work_item_id: WorkItemId::parse(&format!("BENCH-{}", i + 1)).unwrap(),
            plane_issue_id: None,
            repo: RepoName::parse("r").unwrap(),
            title: "bench".into(),
            description: String::new(),
            depends_on: vec![],
        };
        let t0 = Instant::now();
        let (_, task) = rt
            .writer
            .call(now(), move |tx| apply::start(tx, new.clone()))
            .await
            .unwrap();
        rt.wake.notify_waiters();
        let (pid, start) = loop {
            let jobs = rt.store.read(|rx| rx.jobs_of(task.id)).unwrap();
            if let Some(j) = jobs
                .iter()
                .find(|j| j.status == JobStatus::Running && j.pid.is_some())
            {
                break (j.pid.unwrap(), j.pid_start.unwrap());
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        let spawned = t0.elapsed();
        let t1 = Instant::now();
        rt.stop(task.id).await.unwrap();
        while orch::agent::is_alive(pid, start) {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let agent_dead = t1.elapsed();
        loop {
            let t = rt.store.read(|rx| rx.task(task.id)).unwrap().unwrap();
            if t.stage == Stage::Cancelled {
                break;
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        let done = t1.elapsed();
        // The first run warms the bare clone; it is not counted.
        if i > 0 {
            spawn.push(spawned);
            dead.push(agent_dead);
            cancelled.push(done);
        }
    }
    rt.request_shutdown();
    let _ = server.await;
    (spawn, dead, cancelled)
}

const PROJECT: &str = "a1c2e3f4-5b6d-4e7f-8a9b-0c1d2e3f4a5b";
const SECRET: &str = "bench-webhook-secret";

/// A Plane "state changed" delivery moving issue `seq` to "To Analyse".
fn delivery(seq: u64) -> Vec<u8> {
    let issue = format!("00000000-0000-4000-8000-{seq:012}");
    serde_json::to_vec(&serde_json::json!({
        "event": "issue", "action": "updated",
        "webhook_id": "6d0c3a6e-2b1f-4c55-9f2e-0e7a1c9d4b10",
        "workspace_id": "0f5b8c0e-7a55-4d0b-8b1e-3c3f1d2a9e77",
        "data": {"id": issue, "name": "bench", "description_stripped": "", "sequence_id": seq, "project": PROJECT,
                 "state": {"id": "b6c7d8e9-0f1a-4b2c-9d3e-4f5a6b7c8d9e", "name": "To Analyse", "group": "unstarted"}},
        "activity": {"field": "state_id", "new_value": "b6c7d8e9-0f1a-4b2c-9d3e-4f5a6b7c8d9e", "old_value": null}
    }))
    .unwrap()
}

/// P2 end to end: signed webhook over loopback HTTP → agent running. Each
/// task is stopped before the next so the repo's gate is open.
async fn webhook_scenario(root: &Path, runs: usize) -> Vec<Duration> {
    let bare = remote(root);
    std::fs::write(
        root.join("orch.toml"),
        format!("[[repo]]\nname = \"r\"\nremote = \"{}\"\nplane_project = \"BENCH\"\nplane_project_id = \"{PROJECT}\"\n", bare.display()),
    )
    .unwrap();
    let rt = open_runtime(
        root,
        "ORCH_DEMO_SLEEP_MS=60000",
        &[
            ("ORCH_HTTP_ADDR", "127.0.0.1:0".into()),
            ("ORCH_PLANE_WEBHOOK_SECRET", SECRET.into()),
        ],
    );
    let listener = orch::http::Listener::bind(&rt.settings).await.unwrap();
    let url = format!("http://{}/webhooks/plane", listener.local_addr());
    let server = tokio::spawn(orch::runtime::serve_with_http(rt.clone(), listener));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut out = Vec::new();
    for i in 0..=runs {
        let body = delivery(i as u64 + 1);
        let sig = orch::plane::signature::sign_hex(SECRET.as_bytes(), &body);
        let t0 = Instant::now();
        let resp = http
            .post(&url)
            .header("X-Plane-Signature", sig)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let id = loop {
            let found = rt
                .store
                .read(|rx| rx.resolve(&orch::store::TaskKey::WorkItem(format!("BENCH-{}", i + 1))))
                .unwrap();
            if let Some(id) = found {
                break id;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        while !rt
            .store
            .read(|rx| rx.jobs_of(id))
            .unwrap()
            .iter()
            .any(|j| j.status == JobStatus::Running && j.pid.is_some())
        {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        if i > 0 {
            out.push(t0.elapsed());
        }
        rt.stop(id).await.unwrap();
        while rt.store.read(|rx| rx.task(id)).unwrap().unwrap().stage != Stage::Cancelled {
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    }
    rt.request_shutdown();
    let _ = server.await;
    out
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("pipeline: bench");
        return;
    }
    let runs: usize = std::env::var("ORCH_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tmp = tempfile::tempdir().unwrap();
        report(
            "P2 signed webhook → agent running",
            webhook_scenario(tmp.path(), runs).await,
        );
        for stubborn in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let (spawn, dead, cancelled) = scenario(tmp.path(), stubborn, runs).await;
            let kind = if stubborn {
                "stubborn agent, grace 1 s"
            } else {
                "cooperative agent"
            };
            if !stubborn {
                report("P2 start → agent running", spawn);
            }
            report(&format!("P3 STOP → agent dead ({kind})"), dead);
            report(&format!("P3 STOP → task cancelled ({kind})"), cancelled);
        }
    });
}
