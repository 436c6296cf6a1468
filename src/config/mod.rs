//! Configuration from the environment (SPEC §10). Values are read once at
//! start through a lookup function, so tests pass their own environment and
//! nothing reads the process environment behind the caller's back.

pub mod file;
mod settings;

use std::path::PathBuf;

pub use file::{RepoConfig, RoleConfig};
pub use settings::{Env, Settings};

use crate::gates::GateConfig;
use crate::store::{Durability, Options};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{key}: expected true or false, got {value:?}")]
    Bool { key: &'static str, value: String },
    #[error("{key}: expected a whole number, got {value:?}")]
    Number { key: &'static str, value: String },
    #[error("{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
}

fn flag(
    env: &impl Fn(&str) -> Option<String>,
    key: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match env(key).as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::Bool {
                key,
                value: v.to_owned(),
            }),
        },
    }
}

/// A whole number from the environment, or its default.
pub fn number(
    env: &impl Fn(&str) -> Option<String>,
    key: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match env(key).as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) => v.parse().map_err(|_| ConfigError::Number {
            key,
            value: v.to_owned(),
        }),
    }
}

/// The gate switches and scope (SPEC §5.1).
pub fn gates(env: &impl Fn(&str) -> Option<String>) -> Result<GateConfig, ConfigError> {
    let repos = env("ORCH_SERIAL_GATE_REPOS").unwrap_or_default();
    let mut serial_repos = Vec::new();
    for r in repos.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        crate::domain::RepoName::parse(r).map_err(|e| ConfigError::Invalid {
            key: "ORCH_SERIAL_GATE_REPOS",
            reason: e.to_string(),
        })?;
        serial_repos.push(r.to_owned());
    }
    Ok(GateConfig {
        serial_enabled: flag(env, "ORCH_SERIAL_GATE_ENABLED", true)?,
        serial_repos,
        freeze_enabled: flag(env, "ORCH_SERIAL_GATE_FREEZE_ENABLED", true)?,
        deps_enabled: flag(env, "ORCH_TASK_DEPS_ENABLED", true)?,
        stop_enabled: flag(env, "ORCH_STOP_STATUS_ENABLED", true)?,
    })
}

/// Where the data lives: `ORCH_DATA_DIR` (default `./.orch`) and
/// `ORCH_DB_PATH` (default `<data dir>/orch.redb`).
pub fn paths(env: &impl Fn(&str) -> Option<String>) -> (PathBuf, PathBuf) {
    let data = env("ORCH_DATA_DIR")
        .filter(|s| !s.is_empty())
        .map_or_else(|| PathBuf::from("./.orch"), PathBuf::from);
    let db = env("ORCH_DB_PATH")
        .filter(|s| !s.is_empty())
        .map_or_else(|| data.join("orch.redb"), PathBuf::from);
    (data, db)
}

/// Store options from the environment.
pub fn store_options(env: &impl Fn(&str) -> Option<String>) -> Result<Options, ConfigError> {
    let cache_mb = number(env, "ORCH_DB_CACHE_MB", 64)?;
    if cache_mb == 0 || cache_mb > 1 << 20 {
        return Err(ConfigError::Invalid {
            key: "ORCH_DB_CACHE_MB",
            reason: "must be between 1 and 1048576".into(),
        });
    }
    Ok(Options {
        gates: gates(env)?,
        durability: Durability::Immediate,
        cache_bytes: (cache_mb as usize) << 20,
        ..Options::default()
    })
}

/// The process environment as a lookup function, for the binary's edge.
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn gate_switches_parse_and_refuse_garbage() {
        let g = gates(&env_of(&[])).unwrap();
        assert_eq!(g, GateConfig::default());
        let g = gates(&env_of(&[
            ("ORCH_SERIAL_GATE_ENABLED", "false"),
            ("ORCH_SERIAL_GATE_REPOS", "a, b"),
        ]))
        .unwrap();
        assert!(!g.serial_enabled);
        assert_eq!(g.serial_repos, vec!["a", "b"]);
        let e = gates(&env_of(&[("ORCH_TASK_DEPS_ENABLED", "maybe")])).unwrap_err();
        assert!(e.to_string().contains("ORCH_TASK_DEPS_ENABLED"));
        assert!(gates(&env_of(&[("ORCH_SERIAL_GATE_REPOS", "../x")])).is_err());
    }
}
