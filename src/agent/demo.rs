//! `orch agent-demo`: the built-in scripted agent (SPEC §9.1).
//!
//! It stands in for a real coding agent in `orch demo` and in tests, and runs
//! only when the agent command is the word `builtin`. It reads the prompt on
//! stdin, takes its task from the agent environment (`ORCH_ROLE`,
//! `ORCH_WORK_ITEM_ID`, `ORCH_DOCS_DIR` relative to the worktree it runs in,
//! `ORCH_ATTEMPT`), writes its role's artefacts and commits them with the
//! `git` command line:
//!
//! | role | writes |
//! |---|---|
//! | analyst | `<docs>/01-analysis.md` |
//! | architect | `<docs>/02-architecture.md`, `<docs>/04-test-plan.yaml` |
//! | developer | `CHANGES-<WORK_ITEM_ID>.md` at the worktree root (one line appended) |
//! | reviewer | `<docs>/05-review.json`, verdict `approved` |
//! | tester | `<docs>/06-test-report.json`, `passed: true` |
//! | deployer | nothing (the deployer role runs no agent; it exits 0) |
//!
//! Every write carries the attempt, a hash of the prompt and the time of the
//! run, so a repeated run always changes the file and "this job wrote it"
//! checks hold. The JSON artefacts carry these as extra `attempt` and `run`
//! fields next to the ones the exit checks read.
//!
//! Switches for tests, read from its environment (pass them explicitly: the
//! agent environment is an allowlist):
//!
//! - `ORCH_DEMO_FAIL=1`: exit 1 without writing anything;
//! - `ORCH_DEMO_FAIL_ROLE=<role>`: the same, only for that role;
//! - `ORCH_DEMO_SLEEP_MS=<n>`: sleep that long before working;
//! - `ORCH_DEMO_IGNORE_TERM=1`: ignore SIGTERM (a stubborn agent);
//! - `ORCH_DEMO_GRANDCHILD=1`: start a grandchild that calls `setsid` to
//!   leave the agent's session, ignores SIGTERM and sleeps for two minutes;
//!   both print its pid, the grandchild as
//!   `agent-demo grandchild: pid <n> ready` once it is set up;
//! - `ORCH_DEMO_REVIEW=changes_requested`: the reviewer's verdict;
//! - `ORCH_DEMO_TESTS_FAIL=1`: the tester reports `passed: false`.
//!
//! Exit codes: 0 done, 1 failed (as asked, or git failed), 2 a missing or
//! invalid task variable or switch.

use std::fmt::Write as _;
use std::io::{self, Read};
use std::path::{Component, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{SigHandler, Signal, signal};

use crate::domain::{Role, WorkItemId};

/// The author and committer of every demo commit.
pub const AUTHOR_NAME: &str = "orch agent-demo";
pub const AUTHOR_EMAIL: &str = "agent@orch.invalid";

/// The flag that runs the hidden grandchild mode.
pub const GRANDCHILD_FLAG: &str = "--grandchild";

/// How long the grandchild lives if nobody stops it: long enough for any
/// test, short enough that a leak ends by itself.
const GRANDCHILD_LIFETIME: Duration = Duration::from_secs(120);

/// Why the demo agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

impl DemoError {
    pub fn exit_code(&self) -> u8 {
        match self {
            DemoError::Usage(_) => 2,
            DemoError::Failed(_) | DemoError::Io { .. } => 1,
        }
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> DemoError {
    let context = context.into();
    move |source| DemoError::Io { context, source }
}

/// Runs the demo agent in the current directory with the process
/// environment and stdin; returns the exit code.
pub fn run(grandchild: bool) -> u8 {
    let result = if grandchild {
        run_grandchild()
    } else {
        run_agent(&|name| std::env::var(name).ok(), &mut io::stdin().lock())
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("agent-demo: {e}");
            e.exit_code()
        }
    }
}

/// The task the demo works on, taken from its environment.
struct Task {
    role: Role,
    work_item: WorkItemId,
    docs_dir: PathBuf,
    attempt: u32,
}

impl Task {
    fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, DemoError> {
        let role_name = env("ORCH_ROLE").ok_or(DemoError::Usage("ORCH_ROLE is not set".into()))?;
        let role = role_name.parse::<Role>().map_err(DemoError::Usage)?;
        let wi = env("ORCH_WORK_ITEM_ID")
            .ok_or(DemoError::Usage("ORCH_WORK_ITEM_ID is not set".into()))?;
        let work_item = WorkItemId::parse(&wi).map_err(|e| DemoError::Usage(e.to_string()))?;
        let docs_dir =
            PathBuf::from(env("ORCH_DOCS_DIR").unwrap_or_else(|| format!("docs/tasks/{wi}")));
        // The docs dir is inside the worktree: refuse anything that could
        // write elsewhere.
        if !docs_dir
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(DemoError::Usage(format!(
                "ORCH_DOCS_DIR {docs_dir:?} must be a relative path inside the worktree"
            )));
        }
        let attempt = match env("ORCH_ATTEMPT") {
            Some(a) => a
                .parse()
                .map_err(|_| DemoError::Usage(format!("ORCH_ATTEMPT {a:?} is not a number")))?,
            None => 1,
        };
        Ok(Self {
            role,
            work_item,
            docs_dir,
            attempt,
        })
    }
}

fn run_agent(env: &dyn Fn(&str) -> Option<String>, stdin: &mut dyn Read) -> Result<(), DemoError> {
    let flag = |name: &str| env(name).is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let task = Task::from_env(env)?;
    let mut prompt = Vec::new();
    stdin
        .read_to_end(&mut prompt)
        .map_err(io_err("reading the prompt"))?;

    if flag("ORCH_DEMO_IGNORE_TERM") {
        ignore_sigterm()?;
        println!("agent-demo: ignoring SIGTERM");
    }
    if flag("ORCH_DEMO_GRANDCHILD") {
        let pid = spawn_grandchild()?;
        println!("agent-demo: started grandchild pid {pid}");
    }
    if let Some(ms) = env("ORCH_DEMO_SLEEP_MS") {
        let ms: u64 = ms
            .parse()
            .map_err(|_| DemoError::Usage(format!("ORCH_DEMO_SLEEP_MS {ms:?} is not a number")))?;
        println!("agent-demo: sleeping {ms} ms");
        std::thread::sleep(Duration::from_millis(ms));
    }
    let fail_role = env("ORCH_DEMO_FAIL_ROLE");
    if flag("ORCH_DEMO_FAIL") || fail_role.as_deref() == Some(task.role.as_str()) {
        return Err(DemoError::Failed(format!("{} failing as asked", task.role)));
    }

    let stamp = Stamp::new(&task, &prompt);
    let files = write_artefacts(&task, &stamp, env)?;
    if files.is_empty() {
        println!("agent-demo: the {} role has nothing to write", task.role);
        return Ok(());
    }
    commit(
        &files,
        &format!("{}: {} ({})", task.role, task.work_item, stamp.line()),
    )?;
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    println!("agent-demo: {} committed {}", task.role, names.join(", "));
    Ok(())
}

/// What makes each write unique: the attempt, the prompt and the moment.
struct Stamp {
    attempt: u32,
    prompt_hash: u64,
    prompt_len: usize,
    run: u128,
}

impl Stamp {
    fn new(task: &Task, prompt: &[u8]) -> Self {
        let run = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self {
            attempt: task.attempt,
            prompt_hash: fnv1a(prompt),
            prompt_len: prompt.len(),
            run,
        }
    }

    fn line(&self) -> String {
        format!(
            "attempt {}, prompt {:016x}, run {}",
            self.attempt, self.prompt_hash, self.run
        )
    }
}

/// FNV-1a, 64 bit: a stable fingerprint of the prompt, not a security hash.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Writes the role's artefacts; returns their paths, relative to the
/// worktree.
fn write_artefacts(
    task: &Task,
    stamp: &Stamp,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<PathBuf>, DemoError> {
    let wi = task.work_item.as_str();
    let docs = &task.docs_dir;
    let by = format!("Written by {AUTHOR_NAME} ({}).", stamp.line());
    let files: Vec<(PathBuf, String)> = match task.role {
        Role::Analyst => vec![(
            docs.join("01-analysis.md"),
            format!(
                "# Analysis: {wi}\n\n{by}\n\n## Problem\n\nThe prompt ({} bytes) describes the \
                 change to make.\n\n## Approach\n\nA small, self-contained change with a test.\n",
                stamp.prompt_len
            ),
        )],
        Role::Architect => vec![
            (
                docs.join("02-architecture.md"),
                format!(
                    "# Architecture: {wi}\n\n{by}\n\n## Design\n\nOne new file, no new \
                     dependency.\n"
                ),
            ),
            (
                docs.join("04-test-plan.yaml"),
                format!(
                    "# {by}\nwork_item: {wi}\nattempt: {}\nrun: \"{}\"\ncases:\n  - id: T1\n    \
                     title: the change is present\n    expect: pass\n",
                    stamp.attempt, stamp.run
                ),
            ),
        ],
        Role::Developer => {
            let path = PathBuf::from(format!("CHANGES-{wi}.md"));
            let mut text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == io::ErrorKind::NotFound => format!("# Changes for {wi}\n\n"),
                Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
            };
            let _ = writeln!(text, "- {}", stamp.line());
            vec![(path, text)]
        }
        Role::Reviewer => {
            let verdict = env("ORCH_DEMO_REVIEW").unwrap_or_else(|| "approved".into());
            let comments: Vec<String> = match verdict.as_str() {
                "approved" => vec![],
                "changes_requested" => {
                    vec![format!(
                        "Please rework this change (review of attempt {}).",
                        stamp.attempt
                    )]
                }
                other => {
                    return Err(DemoError::Usage(format!(
                        "ORCH_DEMO_REVIEW {other:?}: expected approved or changes_requested"
                    )));
                }
            };
            let review = serde_json::json!({
                "verdict": verdict,
                "comments": comments,
                "attempt": stamp.attempt,
                "run": stamp.run.to_string(),
            });
            vec![(docs.join("05-review.json"), format!("{review}\n"))]
        }
        Role::Tester => {
            let fail = env("ORCH_DEMO_TESTS_FAIL").is_some_and(|v| v == "1" || v == "true");
            let report = serde_json::json!({
                "passed": !fail,
                "total": 3,
                "failed": u32::from(fail),
                "attempt": stamp.attempt,
                "run": stamp.run.to_string(),
            });
            vec![(docs.join("06-test-report.json"), format!("{report}\n"))]
        }
        Role::Deployer => vec![],
    };
    for (path, text) in &files {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        }
        std::fs::write(path, text).map_err(io_err(format!("writing {}", path.display())))?;
    }
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

/// Stages and commits `files` in the current directory, with hooks and
/// fsmonitor off and a fixed identity.
fn commit(files: &[PathBuf], message: &str) -> Result<(), DemoError> {
    let mut add = vec!["add".into(), "--".into()];
    add.extend(files.iter().map(|f| f.display().to_string()));
    git(&add)?;
    git(&["commit".into(), "-q".into(), "-m".into(), message.into()])
}

fn git(args: &[String]) -> Result<(), DemoError> {
    let output = Command::new("git")
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
        ])
        .args(["-c", "commit.gpgsign=false"])
        .args([
            "-c",
            &format!("user.name={AUTHOR_NAME}"),
            "-c",
            &format!("user.email={AUTHOR_EMAIL}"),
        ])
        .args(args)
        .env("GIT_AUTHOR_NAME", AUTHOR_NAME)
        .env("GIT_AUTHOR_EMAIL", AUTHOR_EMAIL)
        .env("GIT_COMMITTER_NAME", AUTHOR_NAME)
        .env("GIT_COMMITTER_EMAIL", AUTHOR_EMAIL)
        .stdin(Stdio::null())
        .output()
        .map_err(io_err("running git"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(DemoError::Failed(format!(
        "git {} failed ({}): {}",
        args.first().map_or("", String::as_str),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}

fn ignore_sigterm() -> Result<(), DemoError> {
    // SAFETY: installing SIG_IGN runs no handler code, so none of the
    // restrictions on signal handlers apply.
    unsafe { signal(Signal::SIGTERM, SigHandler::SigIgn) }
        .map(drop)
        .map_err(|e| io_err("ignoring SIGTERM")(e.into()))
}

/// Starts this binary again in grandchild mode; its stdout is ours, so its
/// "ready" line reaches the agent's log.
fn spawn_grandchild() -> Result<u32, DemoError> {
    let exe = std::env::current_exe().map_err(io_err("locating the orch binary"))?;
    let child = Command::new(exe)
        .args([super::command::DEMO_SUBCOMMAND, GRANDCHILD_FLAG])
        .stdin(Stdio::null())
        .spawn()
        .map_err(io_err("starting the grandchild"))?;
    // The grandchild is deliberately not waited for: it is the process that
    // outlives a stop unless orch finds it.
    Ok(child.id())
}

/// The grandchild: leaves the agent's session, ignores SIGTERM, announces
/// itself and sleeps.
fn run_grandchild() -> Result<(), DemoError> {
    nix::unistd::setsid().map_err(|e| io_err("setsid")(e.into()))?;
    ignore_sigterm()?;
    println!("agent-demo grandchild: pid {} ready", std::process::id());
    std::thread::sleep(GRANDCHILD_LIFETIME);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn task_variables_are_validated() {
        let ok = Task::from_env(&env_of(&[
            ("ORCH_ROLE", "tester"),
            ("ORCH_WORK_ITEM_ID", "AB-3"),
        ]))
        .unwrap();
        assert_eq!(ok.docs_dir, Path::new("docs/tasks/AB-3"));
        assert_eq!(ok.attempt, 1);
        for bad in [
            &[("ORCH_WORK_ITEM_ID", "AB-3")][..],
            &[("ORCH_ROLE", "poet"), ("ORCH_WORK_ITEM_ID", "AB-3")],
            &[("ORCH_ROLE", "tester"), ("ORCH_WORK_ITEM_ID", "ab-3")],
            &[
                ("ORCH_ROLE", "tester"),
                ("ORCH_WORK_ITEM_ID", "AB-3"),
                ("ORCH_DOCS_DIR", "../x"),
            ],
            &[
                ("ORCH_ROLE", "tester"),
                ("ORCH_WORK_ITEM_ID", "AB-3"),
                ("ORCH_DOCS_DIR", "/tmp"),
            ],
            &[
                ("ORCH_ROLE", "tester"),
                ("ORCH_WORK_ITEM_ID", "AB-3"),
                ("ORCH_ATTEMPT", "x"),
            ],
        ] {
            let pairs: &'static [(&str, &str)] = bad;
            assert!(matches!(
                Task::from_env(&env_of(pairs)),
                Err(DemoError::Usage(_))
            ));
        }
    }

    #[test]
    fn prompt_fingerprint_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
