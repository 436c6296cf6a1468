//! The agent process runner: everything orch does to run one agent as a
//! child process and to end it again.
//!
//! - [`env`] builds the agent's environment from an allowlist (SPEC §3, §12a):
//!   orch's own tokens and secrets never reach an agent.
//! - [`command`] resolves the agent command line (SPEC §10): the role's
//!   variable, then the role's config, then the global variable; the word
//!   `builtin` selects this binary's `agent-demo` subcommand.
//! - [`spawn`] starts the agent in its own session, feeds the prompt on stdin,
//!   appends its output to a capped per-job log and waits for it, with an
//!   optional timeout.
//! - [`stop`] ends an agent's whole process tree (SPEC §7.1 step 3): SIGTERM,
//!   a grace period, then SIGKILL, and never a process outside the tree.
//! - [`proc`] reads `/proc` (process start times, parents, sessions, groups);
//!   [`signal`] sends a signal only to the process that was verified.
//! - [`demo`] is `orch agent-demo`, the built-in scripted agent (SPEC §9.1).
//!
//! A process is identified by its pid *and* its start time (field 22 of
//! `/proc/<pid>/stat`), because a pid alone may have been reused by an
//! unrelated process since orch recorded it.

pub mod command;
pub mod demo;
pub mod env;
mod log;
pub mod proc;
mod signal;
pub mod spawn;
pub mod stop;

use std::io;
use std::path::PathBuf;

pub use command::{AgentCommand, builtin_exe, resolve_command, resolve_command_from_env};
pub use env::{AgentEnv, Passthrough, TaskVars};
pub use proc::is_alive;
pub use spawn::{AgentHandle, AgentOutcome, LOG_CAP, SpawnSpec, spawn};
pub use stop::{StopOutcome, StopReport, stop_tree, stop_tree_blocking};

/// Why the runner could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(
        "{name} is one of orch's own secrets and is never passed to an agent; remove it from ORCH_AGENT_ENV_PASSTHROUGH"
    )]
    SecretRefused { name: String },
    #[error("{name:?} is not a valid environment variable name")]
    InvalidEnvName { name: String },
    #[error(
        "no agent command for role {role}: set ORCH_AGENT_CMD_{upper}, [role.{role}].command or ORCH_AGENT_CMD",
        upper = role.to_ascii_uppercase()
    )]
    NoCommand { role: String },
    #[error("{origin}: cannot parse the agent command line: {reason}")]
    CommandParse { origin: String, reason: String },
    #[error("{origin}: the agent command is empty")]
    EmptyCommand { origin: String },
    #[error("cannot locate the orch binary for the builtin agent: {0}")]
    BuiltinExe(#[source] io::Error),
    #[error("cannot start the agent {program:?}: {source}")]
    Spawn { program: PathBuf, source: io::Error },
    #[error("cannot open the agent log {path:?}: {source}")]
    Log { path: PathBuf, source: io::Error },
    #[error("cannot read /proc: {0}")]
    Proc(#[source] io::Error),
    #[error("waiting for the agent failed: {0}")]
    Wait(#[source] io::Error),
    #[error("the stop task did not finish: {0}")]
    StopTask(String),
}
