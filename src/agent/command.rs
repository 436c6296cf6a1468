//! Which program runs as the agent of a role (SPEC §10).
//!
//! Precedence: `ORCH_AGENT_CMD_<ROLE>` > `[role.<role>].command` >
//! `ORCH_AGENT_CMD`. Environment values are shell words (parsed, never run
//! through a shell); the config value is already an argv. An empty or blank
//! environment value counts as unset, so a `.env` line such as
//! `ORCH_AGENT_CMD_REVIEWER=` falls back to the next source instead of
//! becoming an empty command. A first word `builtin` means this very binary
//! with the `agent-demo` subcommand (the scripted agent of the demo and the
//! tests); any further words are passed after `agent-demo`.

use std::path::{Path, PathBuf};

use crate::domain::Role;

use super::AgentError;

/// The word that selects the built-in scripted agent.
pub const BUILTIN: &str = "builtin";

/// The subcommand the built-in agent runs as.
pub const DEMO_SUBCOMMAND: &str = "agent-demo";

/// The global fallback variable.
pub const GLOBAL_VAR: &str = "ORCH_AGENT_CMD";

/// The per-role variable, e.g. `ORCH_AGENT_CMD_DEVELOPER`.
pub fn role_var(role: Role) -> String {
    format!("{GLOBAL_VAR}_{}", role.as_str().to_ascii_uppercase())
}

/// A resolved agent command: the program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl AgentCommand {
    /// A command from an argv whose first element is the program. `builtin`
    /// is resolved to `builtin_exe agent-demo`.
    pub fn from_argv(
        argv: &[String],
        origin: &str,
        builtin_exe: &Path,
    ) -> Result<Self, AgentError> {
        let Some((first, rest)) = argv.split_first() else {
            return Err(AgentError::EmptyCommand {
                origin: origin.to_owned(),
            });
        };
        if first == BUILTIN {
            let mut args = vec![DEMO_SUBCOMMAND.to_owned()];
            args.extend(rest.iter().cloned());
            return Ok(Self {
                program: builtin_exe.to_path_buf(),
                args,
            });
        }
        Ok(Self {
            program: PathBuf::from(first),
            args: rest.to_vec(),
        })
    }
}

/// Resolves the command of `role` from the three candidate values, in
/// precedence order. `builtin_exe` is the binary that `builtin` names,
/// normally [`builtin_exe()`]; tests pass the binary under test.
pub fn resolve_command(
    role: Role,
    role_env: Option<&str>,
    role_config: Option<&[String]>,
    global_env: Option<&str>,
    builtin_exe: &Path,
) -> Result<AgentCommand, AgentError> {
    let from_env = |value: &str, origin: String| -> Result<AgentCommand, AgentError> {
        let words = shell_words::split(value).map_err(|e| AgentError::CommandParse {
            origin: origin.clone(),
            reason: e.to_string(),
        })?;
        AgentCommand::from_argv(&words, &origin, builtin_exe)
    };
    let set = |v: Option<&str>| v.filter(|s| !s.trim().is_empty()).map(str::to_owned);
    if let Some(value) = set(role_env) {
        return from_env(&value, role_var(role));
    }
    if let Some(argv) = role_config {
        return AgentCommand::from_argv(argv, &format!("[role.{role}].command"), builtin_exe);
    }
    if let Some(value) = set(global_env) {
        return from_env(&value, GLOBAL_VAR.to_owned());
    }
    Err(AgentError::NoCommand {
        role: role.as_str().to_owned(),
    })
}

/// [`resolve_command`] with the two variables read through `lookup`.
pub fn resolve_command_from_env(
    role: Role,
    role_config: Option<&[String]>,
    lookup: impl Fn(&str) -> Option<String>,
    builtin_exe: &Path,
) -> Result<AgentCommand, AgentError> {
    let role_env = lookup(&role_var(role));
    let global_env = lookup(GLOBAL_VAR);
    resolve_command(
        role,
        role_env.as_deref(),
        role_config,
        global_env.as_deref(),
        builtin_exe,
    )
}

/// The running orch binary, which `builtin` stands for.
pub fn builtin_exe() -> Result<PathBuf, AgentError> {
    std::env::current_exe().map_err(AgentError::BuiltinExe)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXE: &str = "/opt/orch/bin/orch";

    fn check(
        role_env: Option<&str>,
        config: Option<&[&str]>,
        global: Option<&str>,
        expected: &[&str],
    ) {
        let config: Option<Vec<String>> =
            config.map(|c| c.iter().map(|s| (*s).to_owned()).collect());
        let got = resolve_command(
            Role::Developer,
            role_env,
            config.as_deref(),
            global,
            Path::new(EXE),
        )
        .unwrap();
        let mut argv = vec![got.program.to_string_lossy().into_owned()];
        argv.extend(got.args);
        assert_eq!(argv, expected);
    }

    #[test]
    fn precedence_role_env_then_config_then_global() {
        check(Some("a -x"), Some(&["b"]), Some("c"), &["a", "-x"]);
        check(None, Some(&["b", "--flag"]), Some("c"), &["b", "--flag"]);
        check(Some("  "), Some(&["b"]), Some("c"), &["b"]);
        check(
            None,
            None,
            Some("c 'two words' \"q\""),
            &["c", "two words", "q"],
        );
        check(Some(""), None, Some("c"), &["c"]);
    }

    #[test]
    fn builtin_is_this_binary_with_agent_demo() {
        check(Some("builtin"), None, None, &[EXE, "agent-demo"]);
        check(None, Some(&["builtin"]), None, &[EXE, "agent-demo"]);
        check(None, None, Some("builtin --x"), &[EXE, "agent-demo", "--x"]);
    }

    #[test]
    fn errors_name_their_source() {
        let exe = Path::new(EXE);
        let none = resolve_command(Role::Reviewer, None, None, Some(" "), exe).unwrap_err();
        assert!(
            none.to_string().contains("ORCH_AGENT_CMD_REVIEWER"),
            "{none}"
        );
        let bad = resolve_command(Role::Tester, Some("a 'open"), None, None, exe).unwrap_err();
        assert!(
            bad.to_string().starts_with("ORCH_AGENT_CMD_TESTER"),
            "{bad}"
        );
        let empty = resolve_command(Role::Tester, None, Some(&[]), None, exe).unwrap_err();
        assert!(
            empty.to_string().contains("[role.tester].command"),
            "{empty}"
        );
    }

    #[test]
    fn from_env_reads_the_role_variable_first() {
        let lookup = |name: &str| match name {
            "ORCH_AGENT_CMD_ANALYST" => Some("analyst-agent".to_owned()),
            "ORCH_AGENT_CMD" => Some("global-agent".to_owned()),
            _ => None,
        };
        let exe = Path::new(EXE);
        let analyst = resolve_command_from_env(Role::Analyst, None, lookup, exe).unwrap();
        assert_eq!(analyst.program, Path::new("analyst-agent"));
        let architect = resolve_command_from_env(Role::Architect, None, lookup, exe).unwrap();
        assert_eq!(architect.program, Path::new("global-agent"));
    }
}
