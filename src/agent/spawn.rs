//! Starting an agent and waiting for it (SPEC §2, §3).
//!
//! The agent runs as the leader of a new session (and so of a new process
//! group), in the task's worktree, with exactly the environment it is given.
//! The prompt is written to its stdin, which is then closed; its stdout and
//! stderr share one pipe that is copied to the per-job log. Orch keeps the agent's pid and start time,
//! which together identify it even after orch restarts (§5.5). Dropping a
//! handle never kills the agent: stopping it is always an explicit decision
//! ([`AgentHandle::stop`] or [`super::stop_tree`]).

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe::Receiver;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::AgentError;
use super::command::AgentCommand;
use super::env::AgentEnv;
use super::log::{CappedLog, LogSummary, drain};
use super::proc::read_stat;
use super::stop::{StopReport, stop_tree};

/// The default cap of one job's log file.
pub const LOG_CAP: u64 = 10 * 1024 * 1024;

/// The default grace between SIGTERM and SIGKILL (`ORCH_STOP_GRACE_SECS`).
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// How long [`AgentHandle::wait`] waits, after the agent exited, for its
/// output to reach the log. The pipes stay open while a descendant that
/// outlived the agent holds them; the drain then continues in the
/// background instead of holding up the job.
const LOG_DRAIN_WAIT: Duration = Duration::from_secs(2);

/// Everything needed to start one agent.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    pub command: AgentCommand,
    /// The task's worktree.
    pub cwd: PathBuf,
    /// The complete environment of the agent; nothing else is inherited.
    pub env: AgentEnv,
    pub prompt: String,
    /// The per-job log; parent directories are created, existing content is
    /// kept and appended to.
    pub log_path: PathBuf,
    /// The log file never grows beyond this many bytes.
    pub log_cap: u64,
    /// The role's timeout; `None` waits for as long as the agent runs.
    pub timeout: Option<Duration>,
    /// The grace used when the timeout stops the agent.
    pub stop_grace: Duration,
}

impl SpawnSpec {
    /// A spec with the default log cap and stop grace and no timeout.
    pub fn new(
        command: AgentCommand,
        cwd: impl Into<PathBuf>,
        env: AgentEnv,
        prompt: impl Into<String>,
        log_path: impl Into<PathBuf>,
    ) -> Self {
        Self {
            command,
            cwd: cwd.into(),
            env,
            prompt: prompt.into(),
            log_path: log_path.into(),
            log_cap: LOG_CAP,
            timeout: None,
            stop_grace: DEFAULT_STOP_GRACE,
        }
    }

    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    pub fn with_log_cap(mut self, cap: u64) -> Self {
        self.log_cap = cap;
        self
    }
}

/// How an agent run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentOutcome {
    /// The agent exited with this status code.
    Exited(i32),
    /// The agent was ended by this signal (including orch's own stop).
    Signalled(i32),
    /// The role's timeout elapsed; orch stopped the agent's tree.
    TimedOut,
}

impl AgentOutcome {
    pub fn is_success(self) -> bool {
        self == AgentOutcome::Exited(0)
    }

    fn of(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => AgentOutcome::Exited(code),
            (None, Some(sig)) => AgentOutcome::Signalled(sig),
            // wait(2) reports only exits and deaths by signal, so this arm
            // is unreachable in practice; -1 is no real exit code.
            (None, None) => AgentOutcome::Exited(-1),
        }
    }
}

/// A running (or finished) agent.
#[derive(Debug)]
pub struct AgentHandle {
    child: Child,
    pid: u32,
    start_time: u64,
    deadline: Option<Instant>,
    stop_grace: Duration,
    log_path: PathBuf,
    log_task: Option<JoinHandle<LogSummary>>,
    outcome: Option<AgentOutcome>,
}

/// Starts the agent described by `spec`. Must run inside a tokio runtime.
pub async fn spawn(spec: SpawnSpec) -> Result<AgentHandle, AgentError> {
    let log = CappedLog::open(&spec.log_path, spec.log_cap)
        .await
        .map_err(|source| AgentError::Log {
            path: spec.log_path.clone(),
            source,
        })?;

    let spawn_error = |source| AgentError::Spawn {
        program: spec.command.program.clone(),
        source,
    };
    let (reader, writer) = std::io::pipe().map_err(spawn_error)?;
    let stderr_writer = writer.try_clone().map_err(spawn_error)?;
    let output = Receiver::from_owned_fd(OwnedFd::from(reader)).map_err(spawn_error)?;

    let mut cmd = Command::new(&spec.command.program);
    cmd.args(&spec.command.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter())
        .stdin(Stdio::piped())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(stderr_writer))
        .kill_on_drop(false);
    // SAFETY: the closure runs in the forked child before exec. It only calls
    // setsid(2), which is async-signal-safe; it allocates nothing and takes
    // no lock. A new session makes the agent a session and process-group
    // leader, so its whole tree can be signalled apart from orch's.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(io::Error::from));
    }
    let spawned = cmd.spawn();
    // The command holds orch's copies of the pipe's write end; they must be
    // closed, or the log would never see the end of the agent's output.
    drop(cmd);
    let mut child = spawned.map_err(spawn_error)?;

    // The child is not reaped before `wait`, so its /proc entry exists even
    // if it has already exited, and its pid cannot be reused meanwhile.
    let identity = child.id().map(|pid| (pid, read_stat(pid)));
    let (pid, start_time) = match identity {
        Some((pid, Ok(Some(stat)))) => (pid, stat.start_time),
        other => {
            let error = match other {
                Some((_, Err(e))) => e,
                _ => io::Error::other("the agent's process vanished before it was recorded"),
            };
            // An agent orch cannot identify could never be stopped safely.
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(AgentError::Proc(error));
        }
    };
    tracing::debug!(pid, start_time, program = ?spec.command.program, "agent started");

    if let Some(mut stdin) = child.stdin.take() {
        let prompt = spec.prompt;
        tokio::spawn(async move {
            // An agent that exits without reading its prompt closes the pipe;
            // that is its business, not an error of orch's.
            if let Err(e) = stdin.write_all(prompt.as_bytes()).await {
                tracing::debug!(pid, error = %e, "the agent did not read its whole prompt");
            }
            drop(stdin);
        });
    }
    let log_task = tokio::spawn(drain(output, log));

    Ok(AgentHandle {
        child,
        pid,
        start_time,
        deadline: spec.timeout.map(|t| Instant::now() + t),
        stop_grace: spec.stop_grace,
        log_path: spec.log_path,
        log_task: Some(log_task),
        outcome: None,
    })
}

impl AgentHandle {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The agent's start time in clock ticks since boot (field 22 of
    /// `/proc/<pid>/stat`); recorded with the pid so a later boot of orch
    /// can tell this agent from a process that reused its pid.
    pub fn start_time(&self) -> u64 {
        self.start_time
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Waits for the agent to end and reaps it. When the timeout elapses
    /// first, the agent's tree is stopped with the spec's grace and the
    /// outcome is [`AgentOutcome::TimedOut`]. Cancel-safe: dropping the
    /// future leaves the agent running and a later call resumes; once the
    /// agent has ended, every call returns the same outcome.
    pub async fn wait(&mut self) -> Result<AgentOutcome, AgentError> {
        if let Some(outcome) = self.outcome {
            return Ok(outcome);
        }
        // Once the deadline has passed the run counts as timed out, even if
        // this future is dropped while the tree is being stopped and a later
        // call only sees the agent die of the stop's signal.
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            let report = stop_tree(self.pid, self.start_time, self.stop_grace).await?;
            tracing::debug!(pid = self.pid, ?report, "timed-out agent stopped");
            self.child.wait().await.map_err(AgentError::Wait)?;
            return Ok(self.settle(AgentOutcome::TimedOut).await);
        }
        let status = match self.deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, self.child.wait()).await {
                Ok(status) => status,
                Err(_elapsed) => {
                    tracing::warn!(pid = self.pid, "agent timed out; stopping its process tree");
                    let report = stop_tree(self.pid, self.start_time, self.stop_grace).await?;
                    tracing::debug!(pid = self.pid, ?report, "timed-out agent stopped");
                    self.child.wait().await.map_err(AgentError::Wait)?;
                    return Ok(self.settle(AgentOutcome::TimedOut).await);
                }
            },
            None => self.child.wait().await,
        };
        let status = status.map_err(AgentError::Wait)?;
        Ok(self.settle(AgentOutcome::of(status)).await)
    }

    /// Stops the agent's tree (SIGTERM, `grace`, SIGKILL; see
    /// [`super::stop`]), reaps the agent and returns how it ended with what
    /// the stop did. Safe to call after the agent has ended: it then only
    /// ends descendants that outlived it in its session.
    pub async fn stop(
        &mut self,
        grace: Duration,
    ) -> Result<(AgentOutcome, StopReport), AgentError> {
        let report = stop_tree(self.pid, self.start_time, grace).await?;
        let outcome = match self.outcome {
            Some(outcome) => outcome,
            None => {
                let status = self.child.wait().await.map_err(AgentError::Wait)?;
                self.settle(AgentOutcome::of(status)).await
            }
        };
        Ok((outcome, report))
    }

    /// Records the outcome, then gives the log drain a bounded time to write
    /// the agent's last output.
    async fn settle(&mut self, outcome: AgentOutcome) -> AgentOutcome {
        self.outcome = Some(outcome);
        if let Some(task) = self.log_task.take() {
            match tokio::time::timeout(LOG_DRAIN_WAIT, task).await {
                Ok(Ok(summary)) if summary.discarded > 0 => tracing::warn!(
                    pid = self.pid,
                    written = summary.written,
                    discarded = summary.discarded,
                    "agent output beyond the log cap was discarded"
                ),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(pid = self.pid, error = %e, "the agent log drain failed")
                }
                Err(_) => tracing::debug!(
                    pid = self.pid,
                    "a descendant still holds the agent's output; the log keeps draining"
                ),
            }
        }
        outcome
    }
}
