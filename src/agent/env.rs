//! The agent's environment, built from an allowlist (SPEC §3, §12a).
//!
//! An agent is code orch does not control, so it sees only what it needs:
//! the basic session variables, the task variables, and the names an
//! operator lists in `ORCH_AGENT_ENV_PASSTHROUGH` (for example the agent's own
//! model API key). Orch's environment is never copied wholesale; the spawn
//! clears the child's environment and sets exactly an [`AgentEnv`]. Orch's
//! own secrets are refused wherever a name could be added, so no
//! configuration mistake can hand them to an agent.

use std::collections::BTreeMap;

use crate::domain::{Role, Stage};

use super::AgentError;

/// Variables copied from orch's environment when they are set.
pub const BASE_VARS: [&str; 4] = ["PATH", "HOME", "LANG", "TERM"];

/// The task variables orch sets for every agent. A passthrough cannot name
/// them: their values come from the task, never from orch's environment.
pub const TASK_VARS: [&str; 7] = [
    "ORCH_TASK_ID",
    "ORCH_WORK_ITEM_ID",
    "ORCH_ROLE",
    "ORCH_STAGE",
    "ORCH_BRANCH",
    "ORCH_DOCS_DIR",
    "ORCH_ATTEMPT",
];

/// Orch's own credentials (SPEC §10). They authenticate orch to the tracker,
/// the forge and its API clients; an agent holding them could act as orch.
pub const ORCH_SECRETS: [&str; 5] = [
    "ORCH_API_TOKEN",
    "ORCH_PLANE_API_TOKEN",
    "ORCH_PLANE_WEBHOOK_SECRET",
    "ORCH_GITEA_TOKEN",
    "ORCH_GITEA_WEBHOOK_SECRET",
];

/// True for a name that is, or looks like, one of orch's own secrets. Beyond
/// the listed names, any `ORCH_` name containing `TOKEN` or `SECRET` is
/// refused too, so a secret added to orch later is protected by default.
pub fn is_orch_secret(name: &str) -> bool {
    ORCH_SECRETS.contains(&name)
        || (name.starts_with("ORCH_") && (name.contains("TOKEN") || name.contains("SECRET")))
}

/// A portable environment variable name: a letter or `_`, then letters,
/// digits or `_`.
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The validated list of names from `ORCH_AGENT_ENV_PASSTHROUGH`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Passthrough(Vec<String>);

impl Passthrough {
    /// Parses the CSV value. Blank entries are ignored. Orch's secrets, the
    /// task variables and malformed names are refused, so the configuration
    /// check at start-up can name the offending entry.
    pub fn parse(csv: &str) -> Result<Self, AgentError> {
        let mut names = Vec::new();
        for name in csv.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !is_env_name(name) {
                return Err(AgentError::InvalidEnvName {
                    name: name.to_owned(),
                });
            }
            if is_orch_secret(name) {
                return Err(AgentError::SecretRefused {
                    name: name.to_owned(),
                });
            }
            if TASK_VARS.contains(&name) {
                return Err(AgentError::InvalidEnvName {
                    name: name.to_owned(),
                });
            }
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
        Ok(Self(names))
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }
}

/// The task facts an agent receives as `ORCH_*` variables (SPEC §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskVars<'a> {
    pub task_id: u64,
    pub work_item_id: &'a str,
    pub role: Role,
    pub stage: Stage,
    pub branch: &'a str,
    /// The task's docs directory, relative to the worktree
    /// (`docs/tasks/<WORK_ITEM_ID>`).
    pub docs_dir: &'a str,
    pub attempt: u32,
}

/// The complete environment of one agent process, and nothing else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentEnv(BTreeMap<String, String>);

impl AgentEnv {
    /// Builds the allowlisted environment. `source` looks a name up in orch's
    /// environment; it is a parameter so tests (and callers that already read
    /// the environment once) control exactly what is visible.
    pub fn build(
        source: impl Fn(&str) -> Option<String>,
        task: &TaskVars<'_>,
        passthrough: &Passthrough,
    ) -> Self {
        let mut vars = BTreeMap::new();
        let copied = BASE_VARS
            .iter()
            .copied()
            .chain(passthrough.names().iter().map(String::as_str));
        for name in copied {
            // A Passthrough can only hold safe names; the check is repeated
            // because this is the last place before the agent sees them.
            if is_orch_secret(name) {
                continue;
            }
            if let Some(value) = source(name) {
                vars.insert(name.to_owned(), value);
            }
        }
        let task_values = [
            task.task_id.to_string(),
            task.work_item_id.to_owned(),
            task.role.as_str().to_owned(),
            task.stage.as_str().to_owned(),
            task.branch.to_owned(),
            task.docs_dir.to_owned(),
            task.attempt.to_string(),
        ];
        for (name, value) in TASK_VARS.iter().zip(task_values) {
            vars.insert((*name).to_owned(), value);
        }
        Self(vars)
    }

    /// Adds or replaces one variable with an explicit value, for callers that
    /// know exactly what an agent needs (tests pass the `ORCH_DEMO_*`
    /// switches this way). Orch's secrets are refused here as well.
    pub fn with_var(mut self, name: &str, value: &str) -> Result<Self, AgentError> {
        if !is_env_name(name) {
            return Err(AgentError::InvalidEnvName {
                name: name.to_owned(),
            });
        }
        if is_orch_secret(name) {
            return Err(AgentError::SecretRefused {
                name: name.to_owned(),
            });
        }
        self.0.insert(name.to_owned(), value.to_owned());
        Ok(self)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> TaskVars<'static> {
        TaskVars {
            task_id: 7,
            work_item_id: "ORCH-7",
            role: Role::Developer,
            stage: Stage::Development,
            branch: "orch/ORCH-7",
            docs_dir: "docs/tasks/ORCH-7",
            attempt: 2,
        }
    }

    fn source(name: &str) -> Option<String> {
        let pairs = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/orch"),
            ("TERM", "xterm"),
            ("ORCH_API_TOKEN", "api-secret"),
            ("ORCH_GITEA_TOKEN", "gitea-secret"),
            ("MODEL_API_KEY", "model-key"),
            ("UNLISTED", "nope"),
            ("ORCH_ROLE", "forged"),
        ];
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn builds_only_the_allowlist() {
        let pass = Passthrough::parse("MODEL_API_KEY, ,ABSENT").unwrap();
        let env = AgentEnv::build(source, &task(), &pass);
        let names: Vec<&str> = env.iter().map(|(k, _)| k).collect();
        let mut expected = vec!["PATH", "HOME", "TERM", "MODEL_API_KEY"];
        expected.extend(TASK_VARS);
        expected.sort_unstable();
        assert_eq!(names, expected);
        assert_eq!(env.get("ORCH_ROLE"), Some("developer"));
        assert_eq!(env.get("ORCH_STAGE"), Some("development"));
        assert_eq!(env.get("ORCH_ATTEMPT"), Some("2"));
        assert_eq!(env.get("ORCH_TASK_ID"), Some("7"));
    }

    #[test]
    fn passthrough_refuses_secrets_task_vars_and_bad_names() {
        for secret in ORCH_SECRETS {
            assert!(matches!(
                Passthrough::parse(&format!("A,{secret}")),
                Err(AgentError::SecretRefused { .. })
            ));
        }
        assert!(matches!(
            Passthrough::parse("ORCH_SLACK_TOKEN"),
            Err(AgentError::SecretRefused { .. })
        ));
        assert!(Passthrough::parse("ORCH_ROLE").is_err());
        assert!(Passthrough::parse("1BAD").is_err());
        assert!(Passthrough::parse("A=B").is_err());
        assert_eq!(Passthrough::parse("").unwrap().names(), &[] as &[String]);
        assert_eq!(Passthrough::parse("A,A,B").unwrap().names(), &["A", "B"]);
    }

    #[test]
    fn explicit_vars_refuse_secrets() {
        let env = AgentEnv::default();
        assert!(env.clone().with_var("ORCH_DEMO_FAIL", "1").is_ok());
        assert!(matches!(
            env.with_var("ORCH_PLANE_WEBHOOK_SECRET", "x"),
            Err(AgentError::SecretRefused { .. })
        ));
    }
}
