//! `orch demo`: a newcomer's first run. A throw-away data dir, two local
//! bare remotes, the built-in scripted agent, a deploy command that
//! succeeds. Two tasks of one repo go strictly one after the other through
//! the serial gate; a task of the second repo waits for a dependency, then
//! runs in parallel; a task of a third repo is stopped while its developer
//! works. Every event is printed as it happens.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Runtime, RuntimeError, now, serve};
use crate::config::{Env, Settings};
use crate::domain::{RepoName, Stage, WorkItemId};
use crate::pipeline::apply;
use crate::store::{Event, NewTask, Task};

/// How long the demo may take before it gives up.
const DEADLINE: Duration = Duration::from_secs(60);

/// A temp dir removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<(), RuntimeError> {
    let out = Command::new("git")
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "user.name=orch demo",
            "-c",
            "user.email=demo@orch.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| RuntimeError::Other(format!("git: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(RuntimeError::Other(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A bare remote with one commit on `main` (the demo's repos; tests and
/// benchmarks make theirs the same way).
pub fn make_remote(root: &Path, name: &str) -> Result<PathBuf, RuntimeError> {
    let work = root.join(format!("{name}-seed"));
    std::fs::create_dir_all(&work).map_err(|e| RuntimeError::Other(e.to_string()))?;
    git(&work, &["init", "-q", "-b", "main"])?;
    std::fs::write(work.join("README.md"), format!("# {name}\n"))
        .map_err(|e| RuntimeError::Other(e.to_string()))?;
    git(&work, &["add", "README.md"])?;
    git(&work, &["commit", "-q", "-m", "initial commit"])?;
    let bare = root.join(format!("{name}.git"));
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            &work.display().to_string(),
            &bare.display().to_string(),
        ],
    )?;
    Ok(bare)
}

/// Runs the demo, printing to `out`. Returns whether every expected end
/// state was reached.
pub async fn run(out: &mut (impl Write + Send)) -> Result<bool, RuntimeError> {
    let started = Instant::now();
    let epoch = now();
    let root = std::env::temp_dir().join(format!("orch-demo-{}-{}", std::process::id(), now()));
    std::fs::create_dir_all(&root)
        .map_err(|e| RuntimeError::Other(format!("{}: {e}", root.display())))?;
    let _scratch = Scratch(root.clone());
    let alpha = make_remote(&root, "alpha")?;
    let beta = make_remote(&root, "beta")?;
    let gamma = make_remote(&root, "gamma")?;
    let config = root.join("orch.toml");
    let toml = format!(
        "[[repo]]\nname = \"alpha\"\nremote = \"{}\"\ndeploy_staging = [\"sh\", \"-c\", \"echo staging deployed\"]\ndeploy = [\"sh\", \"-c\", \"echo deployed\"]\n\n\
         [[repo]]\nname = \"beta\"\nremote = \"{}\"\ndeploy = [\"sh\", \"-c\", \"echo deployed\"]\n\n\
         [[repo]]\nname = \"gamma\"\nremote = \"{}\"\n",
        alpha.display(),
        beta.display(),
        gamma.display()
    );
    // Developers take a moment, so the STOP of ORCH-4 finds one at work.
    let exe = crate::agent::builtin_exe()?;
    let slow_developer = format!(
        "sh -c \"ORCH_DEMO_SLEEP_MS=800 exec '{}' agent-demo\"",
        exe.display()
    );
    std::fs::write(&config, toml).map_err(|e| RuntimeError::Other(e.to_string()))?;
    let mut pairs: Vec<(String, String)> = ["PATH", "HOME", "LANG", "TERM"]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v)))
        .collect();
    pairs.extend(
        [
            ("ORCH_DATA_DIR", root.join("data").display().to_string()),
            ("ORCH_CONFIG", config.display().to_string()),
            ("ORCH_AGENT_CMD", "builtin".into()),
            ("ORCH_AGENT_CMD_DEVELOPER", slow_developer),
            ("ORCH_WORKERS", "3".into()),
            ("ORCH_STOP_GRACE_SECS", "2".into()),
            ("ORCH_HEARTBEAT_SECS", "1".into()),
            ("ORCH_LEASE_SECS", "30".into()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let env = Env::from_pairs(pairs);
    let settings = Settings::load(&env).map_err(|e| RuntimeError::Other(e.to_string()))?;
    let rt = Runtime::open(settings, env)?;
    let server = tokio::spawn(serve(rt.clone()));

    let say = |out: &mut (dyn Write + Send), line: String| {
        let _ = writeln!(out, "+{:>7.3}s {line}", started.elapsed().as_secs_f64());
    };
    say(
        out,
        "orch demo: repos alpha, beta and gamma (local bare remotes), the built-in scripted agent"
            .into(),
    );
    let starts = [
        ("ORCH-1", "alpha", vec![]),
        ("ORCH-2", "alpha", vec![]),
        ("ORCH-3", "beta", vec!["ORCH-1".to_string()]),
        ("ORCH-4", "gamma", vec![]),
    ];
    let mut ids = Vec::new();
    for (wi, repo, deps) in starts {
        let new = NewTask {
            work_item_id: WorkItemId::parse(wi)?,
            plane_issue_id: None,
            repo: RepoName::parse(repo)?,
            title: format!("demo task {wi}"),
            description: "A change the scripted agent makes.".into(),
            depends_on: deps,
        };
        let (_, task) = rt
            .writer
            .call(now(), move |tx| apply::start(tx, new.clone()))
            .await?;
        ids.push(task.id);
    }
    rt.wake.notify_waiters();

    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    let mut timeline: Vec<(u64, Event)> = Vec::new();
    let mut stopped = false;
    let finished = loop {
        let (tasks, events) = read_state(&rt, &ids)?;
        // ORCH-4 is stopped while its developer works.
        if !stopped && developer_running(&rt, ids[3])? {
            say(
                out,
                "orch demo: STOP ORCH-4 (its developer is at work)".into(),
            );
            rt.stop(ids[3]).await?;
            stopped = true;
        }
        for t in &tasks {
            let key = crate::domain::ids::untombstone(&t.work_item_id).unwrap_or(&t.work_item_id);
            names.insert(t.id, key.to_owned());
        }
        print_fresh(out, events, epoch, &names, &mut seen, &mut timeline);
        if tasks.iter().all(|t| t.is_terminal() || t.blocked.is_some()) {
            break tasks;
        }
        if started.elapsed() > DEADLINE {
            say(out, "deadline reached".into());
            break tasks;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    rt.request_shutdown();
    let _ = server.await;
    // What the workers did while winding down (cleanups after done).
    let (_, events) = read_state(&rt, &ids)?;
    print_fresh(out, events, epoch, &names, &mut seen, &mut timeline);

    let ok = summary(out, &finished, &timeline, &ids);
    say(
        out,
        format!("demo {}", if ok { "succeeded" } else { "FAILED" }),
    );
    Ok(ok)
}

/// Prints the events not printed yet, in commit order, and keeps them for
/// the summary.
fn print_fresh(
    out: &mut (impl Write + Send),
    events: Vec<Event>,
    epoch: crate::domain::Millis,
    names: &BTreeMap<u64, String>,
    seen: &mut BTreeMap<u64, u64>,
    timeline: &mut Vec<(u64, Event)>,
) {
    let mut fresh: Vec<Event> = events
        .into_iter()
        .filter(|e| e.seq > *seen.get(&e.task_id).unwrap_or(&0))
        .collect();
    fresh.sort_by_key(|e| e.seq);
    for e in fresh {
        seen.insert(e.task_id, e.seq);
        let wi = names.get(&e.task_id).cloned().unwrap_or_default();
        let secs = (e.at - epoch) as f64 / 1000.0;
        let _ = writeln!(
            out,
            "+{secs:>7.3}s {}",
            format!("{wi} {} {}", e.kind.as_str(), e.detail).trim_end()
        );
        timeline.push((e.task_id, e));
    }
}

fn developer_running(rt: &Runtime, id: u64) -> Result<bool, RuntimeError> {
    let jobs = rt.store.read(|rx| rx.jobs_of(id))?;
    Ok(jobs.iter().any(|j| {
        j.role == crate::domain::Role::Developer
            && j.status == crate::domain::JobStatus::Running
            && j.pid.is_some()
    }))
}

fn read_state(rt: &Runtime, ids: &[u64]) -> Result<(Vec<Task>, Vec<Event>), RuntimeError> {
    Ok(rt.store.read(|rx| {
        let mut tasks = Vec::new();
        let mut events = Vec::new();
        for id in ids {
            if let Some(t) = rx.task(*id)? {
                tasks.push(t);
            }
            events.extend(rx.events_of(*id)?);
        }
        Ok((tasks, events))
    })?)
}

/// Prints the summary and checks the expected end states: all three done,
/// ORCH-2 admitted only after ORCH-1 was done (serial gate), ORCH-3 admitted
/// only after ORCH-1 was done (dependency) and running while ORCH-2 ran.
fn summary(
    out: &mut (impl Write + Send),
    tasks: &[Task],
    timeline: &[(u64, Event)],
    ids: &[u64],
) -> bool {
    let at = |task: u64, kind: &str, detail: Option<&str>| {
        timeline
            .iter()
            .find(|(t, e)| {
                *t == task && e.kind.as_str() == kind && detail.is_none_or(|d| e.detail.contains(d))
            })
            .map(|(_, e)| e.at)
    };
    let _ = writeln!(out, "\nsummary:");
    for t in tasks {
        let _ = writeln!(out, "  {:<7} {:<6} {}", t.work_item_id, t.repo, t.stage);
    }
    let [a, b, c, d] = [ids[0], ids[1], ids[2], ids[3]];
    let all_done = tasks
        .iter()
        .filter(|t| t.id != d)
        .all(|t| t.stage == Stage::Done)
        && tasks.len() == 4;
    let stopped = tasks.iter().any(|t| {
        t.id == d && t.stage == Stage::Cancelled && t.work_item_id.contains("::cancelled::")
    }) && at(d, "branch_deleted", None).is_some()
        && at(d, "docs_archived", None).is_some();
    let a_done = at(a, "stage_advanced", Some("→done"));
    let serial = matches!((a_done, at(b, "admitted", None)), (Some(d), Some(s)) if s >= d);
    let dep = matches!((a_done, at(c, "admitted", None)), (Some(d), Some(s)) if s >= d);
    let parallel = match (
        at(b, "admitted", None),
        at(b, "stage_advanced", Some("→done")),
        at(c, "admitted", None),
    ) {
        (Some(b_start), Some(b_end), Some(c_start)) => {
            c_start < b_end && b_start < at(c, "stage_advanced", Some("→done")).unwrap_or(0)
        }
        _ => false,
    };
    for (ok, what) in [
        (all_done, "ORCH-1, ORCH-2 and ORCH-3 reached done"),
        (
            serial,
            "ORCH-2 waited at alpha's serial gate until ORCH-1 was done",
        ),
        (dep, "ORCH-3 waited for its dependency ORCH-1"),
        (parallel, "ORCH-3 (beta) ran while ORCH-2 (alpha) ran"),
        (
            stopped,
            "ORCH-4 (gamma) was stopped during development: agent dead, branch and worktree gone, docs archived, keys freed",
        ),
    ] {
        let _ = writeln!(out, "  [{}] {what}", if ok { "ok" } else { "MISSED" });
    }
    all_done && serial && dep && parallel && stopped
}

/// Keeps the server task's type readable.
pub type Server = tokio::task::JoinHandle<Result<(), super::ServeError>>;

impl Runtime {
    /// Runs `serve` in the background (tests and the demo).
    pub fn spawn_serve(self: &Arc<Self>) -> Server {
        tokio::spawn(serve(self.clone()))
    }
}
