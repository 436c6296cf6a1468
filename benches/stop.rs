//! P3 (SPEC §11): STOP → agent dead. Each run starts a real agent, waits
//! until it is working, then times `AgentHandle::stop` from the call to the
//! moment the whole tree has been seen gone (the stop returns only then, so
//! each figure is an upper bound of the true latency, by at most one poll).
//!
//! Scenarios: the scripted agent honouring SIGTERM; a shell with two
//! children honouring it; the scripted agent ignoring SIGTERM (grace
//! 500 ms); the same with a grandchild that left the session with setsid
//! and ignores SIGTERM too. Targets: < 200 ms for an agent that honours
//! SIGTERM, ≤ grace + 200 ms for one that ignores it.
//!
//! Run with `cargo bench --bench stop`; it prints one line per scenario.

use std::path::Path;
use std::time::{Duration, Instant};

use orch::agent::{self, AgentCommand, AgentEnv, Passthrough, SpawnSpec, StopOutcome, TaskVars};
use orch::domain::{Role, Stage};

const ORCH: &str = env!("CARGO_BIN_EXE_orch");
const RUNS: usize = 30;
const STUBBORN_GRACE: Duration = Duration::from_millis(500);
const COOPERATIVE_GRACE: Duration = Duration::from_secs(10);

struct Scenario {
    name: &'static str,
    command: AgentCommand,
    switches: &'static [(&'static str, &'static str)],
    /// The log line that says the agent is set up and working.
    ready: &'static str,
    grace: Duration,
    expected: StopOutcome,
    target: Duration,
}

fn builtin() -> AgentCommand {
    agent::resolve_command(
        Role::Developer,
        Some("builtin"),
        None,
        None,
        Path::new(ORCH),
    )
    .expect("builtin resolves")
}

fn env(home: &Path, switches: &[(&str, &str)]) -> AgentEnv {
    let task = TaskVars {
        task_id: 1,
        work_item_id: "BENCH-1",
        role: Role::Developer,
        stage: Stage::Development,
        branch: "orch/BENCH-1",
        docs_dir: "docs/tasks/BENCH-1",
        attempt: 1,
    };
    let home = home.to_string_lossy().into_owned();
    let source = |name: &str| match name {
        "HOME" => Some(home.clone()),
        _ => std::env::var(name).ok(),
    };
    let mut env = AgentEnv::build(source, &task, &Passthrough::default());
    for (name, value) in switches {
        env = env.with_var(name, value).expect("switch names are valid");
    }
    env
}

/// Starts the agent, waits until it is ready, stops it; returns the latency.
async fn one_run(s: &Scenario) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("agent.log");
    let spec = SpawnSpec::new(
        s.command.clone(),
        dir.path(),
        env(dir.path(), s.switches),
        "",
        &log,
    );
    let mut handle = agent::spawn(spec).await.expect("spawn");
    let give_up = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(s.ready)
    {
        assert!(
            Instant::now() < give_up,
            "{}: agent never became ready",
            s.name
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let began = Instant::now();
    let (_, report) = handle.stop(s.grace).await.expect("stop");
    let latency = began.elapsed();
    assert_eq!(report.outcome, s.expected, "{}: {report:?}", s.name);
    assert!(report.survivors.is_empty(), "{}: {report:?}", s.name);
    latency
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let stubborn_target = STUBBORN_GRACE + Duration::from_millis(200);
    let scenarios = [
        Scenario {
            name: "cooperative agent-demo",
            command: builtin(),
            switches: &[("ORCH_DEMO_SLEEP_MS", "60000")],
            ready: "sleeping",
            grace: COOPERATIVE_GRACE,
            expected: StopOutcome::Terminated,
            target: Duration::from_millis(200),
        },
        Scenario {
            name: "cooperative sh + 2 children",
            command: AgentCommand {
                program: "sh".into(),
                args: vec!["-c".into(), "sleep 60 & sleep 60 & echo ready; wait".into()],
            },
            switches: &[],
            ready: "ready",
            grace: COOPERATIVE_GRACE,
            expected: StopOutcome::Terminated,
            target: Duration::from_millis(200),
        },
        Scenario {
            name: "stubborn agent-demo, grace 500 ms",
            command: builtin(),
            switches: &[
                ("ORCH_DEMO_IGNORE_TERM", "1"),
                ("ORCH_DEMO_SLEEP_MS", "60000"),
            ],
            ready: "sleeping",
            grace: STUBBORN_GRACE,
            expected: StopOutcome::Killed,
            target: stubborn_target,
        },
        Scenario {
            name: "stubborn + setsid grandchild, grace 500 ms",
            command: builtin(),
            switches: &[
                ("ORCH_DEMO_IGNORE_TERM", "1"),
                ("ORCH_DEMO_GRANDCHILD", "1"),
                ("ORCH_DEMO_SLEEP_MS", "60000"),
            ],
            ready: " ready",
            grace: STUBBORN_GRACE,
            expected: StopOutcome::Killed,
            target: stubborn_target,
        },
    ];
    println!("P3 STOP -> agent dead, {RUNS} runs per scenario");
    for s in &scenarios {
        let mut times: Vec<Duration> = (0..RUNS).map(|_| runtime.block_on(one_run(s))).collect();
        times.sort();
        let p99 = percentile(&times, 99.0);
        println!(
            "{:<44} p50 {:>9}  p99 {:>9}  min {:>9}  target {:>9}  {}",
            s.name,
            ms(percentile(&times, 50.0)),
            ms(p99),
            ms(times[0]),
            ms(s.target),
            if p99 <= s.target { "ok" } else { "MISSED" }
        );
    }
}
