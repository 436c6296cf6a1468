//! Every setting orch runs with, read once at start from the environment
//! (plus a `.env` file in the working dir) and `orch.toml`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::{self, RepoConfig, RoleConfig};
use super::{ConfigError, number};
use crate::domain::{RepoName, Role};
use crate::gates::GateConfig;
use crate::gitea::GiteaConfig;
use crate::plane::PlaneConfig;
use crate::store::Options;

/// The environment orch reads: the process environment first, then the
/// `.env` file. A lookup function, so tests pass their own.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
    dotenv: HashMap<String, String>,
}

impl Env {
    /// The process environment plus `.env` in the working dir, if any.
    pub fn from_process() -> Result<Self, ConfigError> {
        let mut dotenv = HashMap::new();
        match dotenvy::from_path_iter(".env") {
            Ok(iter) => {
                for item in iter {
                    let (k, v) = item.map_err(|e| ConfigError::File {
                        path: ".env".into(),
                        reason: e.to_string(),
                    })?;
                    dotenv.insert(k, v);
                }
            }
            Err(e) if e.not_found() => {}
            Err(e) => {
                return Err(ConfigError::File {
                    path: ".env".into(),
                    reason: e.to_string(),
                });
            }
        }
        Ok(Self {
            vars: std::env::vars().collect(),
            dotenv,
        })
    }

    /// An environment made of exactly these pairs.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            dotenv: HashMap::new(),
        }
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.vars.get(key).or_else(|| self.dotenv.get(key)).cloned()
    }

    /// As a lookup function.
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |k| self.get(k)
    }
}

/// The settings of one orch process.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub db_path: PathBuf,
    pub config_path: PathBuf,
    pub http_addr: SocketAddr,
    /// Never printed: its `Debug` is redacted.
    pub api_token: Option<crate::plane::Secret>,
    pub workers: usize,
    pub lease: Duration,
    pub heartbeat: Duration,
    pub reaper_interval: Duration,
    pub max_attempts: u32,
    pub max_review_rounds: u32,
    pub stop_grace: Duration,
    pub store: Options,
    /// `ORCH_AGENT_CMD`, shell words.
    pub agent_cmd: Option<Vec<String>>,
    /// `ORCH_AGENT_CMD_<ROLE>`, shell words.
    pub agent_cmd_role: BTreeMap<Role, Vec<String>>,
    /// `ORCH_AGENT_ENV_PASSTHROUGH`.
    pub passthrough: Vec<String>,
    pub repos: Vec<RepoConfig>,
    pub roles: BTreeMap<Role, RoleConfig>,
    /// `ORCH_PLANE_*`; its `Debug` redacts the token and the secret.
    pub plane: PlaneConfig,
    /// `ORCH_GITEA_*`; its `Debug` redacts the token and the secret.
    pub gitea: GiteaConfig,
}

fn words(env: &Env, key: &'static str) -> Result<Option<Vec<String>>, ConfigError> {
    match env.get(key).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(v) => {
            let w = shell_words::split(&v).map_err(|e| ConfigError::Invalid {
                key,
                reason: e.to_string(),
            })?;
            Ok(Some(w))
        }
    }
}

fn secs(env: &Env, key: &'static str, default: u64) -> Result<Duration, ConfigError> {
    let n = number(&env.lookup(), key, default)?;
    if n == 0 {
        return Err(ConfigError::Invalid {
            key,
            reason: "must be positive".into(),
        });
    }
    Ok(Duration::from_secs(n))
}

fn small(env: &Env, key: &'static str, default: u64, max: u64) -> Result<u64, ConfigError> {
    let n = number(&env.lookup(), key, default)?;
    if n == 0 || n > max {
        return Err(ConfigError::Invalid {
            key,
            reason: format!("must be between 1 and {max}"),
        });
    }
    Ok(n)
}

impl Settings {
    pub fn load(env: &Env) -> Result<Self, ConfigError> {
        let lookup = env.lookup();
        let (data_dir, db_path) = super::paths(&lookup);
        let config_path = PathBuf::from(
            env.get("ORCH_CONFIG")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "orch.toml".into()),
        );
        let files = file::load(&config_path)?;
        let http_addr = env
            .get("ORCH_HTTP_ADDR")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "127.0.0.1:8787".into())
            .parse()
            .map_err(|e: std::net::AddrParseError| ConfigError::Invalid {
                key: "ORCH_HTTP_ADDR",
                reason: e.to_string(),
            })?;
        let mut agent_cmd_role = BTreeMap::new();
        for role in Role::ALL {
            let key: &'static str = match role {
                Role::Analyst => "ORCH_AGENT_CMD_ANALYST",
                Role::Architect => "ORCH_AGENT_CMD_ARCHITECT",
                Role::Developer => "ORCH_AGENT_CMD_DEVELOPER",
                Role::Reviewer => "ORCH_AGENT_CMD_REVIEWER",
                Role::Tester => "ORCH_AGENT_CMD_TESTER",
                Role::Deployer => "ORCH_AGENT_CMD_DEPLOYER",
            };
            if let Some(w) = words(env, key)? {
                agent_cmd_role.insert(role, w);
            }
        }
        let passthrough: Vec<String> = env
            .get("ORCH_AGENT_ENV_PASSTHROUGH")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        for name in &passthrough {
            if crate::agent::env::is_orch_secret(name) {
                return Err(ConfigError::Invalid {
                    key: "ORCH_AGENT_ENV_PASSTHROUGH",
                    reason: format!("{name}: orch's own variables never reach an agent"),
                });
            }
        }
        let lease = secs(env, "ORCH_LEASE_SECS", 60)?;
        let heartbeat = secs(env, "ORCH_HEARTBEAT_SECS", 10)?;
        if heartbeat >= lease {
            return Err(ConfigError::Invalid {
                key: "ORCH_HEARTBEAT_SECS",
                reason: "must be shorter than ORCH_LEASE_SECS".into(),
            });
        }
        Ok(Settings {
            data_dir,
            db_path,
            config_path,
            http_addr,
            api_token: crate::plane::Secret::from_env(env.get("ORCH_API_TOKEN")),
            workers: small(env, "ORCH_WORKERS", 2, 64)? as usize,
            lease,
            heartbeat,
            reaper_interval: secs(env, "ORCH_REAPER_INTERVAL_SECS", 15)?,
            max_attempts: small(env, "ORCH_MAX_ATTEMPTS", 3, 100)? as u32,
            max_review_rounds: small(env, "ORCH_MAX_REVIEW_ROUNDS", 3, 100)? as u32,
            stop_grace: Duration::from_secs(number(&lookup, "ORCH_STOP_GRACE_SECS", 10)?),
            store: super::store_options(&lookup)?,
            agent_cmd: words(env, "ORCH_AGENT_CMD")?,
            agent_cmd_role,
            passthrough,
            repos: files.repos,
            roles: files.roles,
            plane: PlaneConfig::from_env(&lookup)?,
            gitea: GiteaConfig::from_env(&lookup)?,
        })
    }

    pub fn repo(&self, name: &str) -> Option<&RepoConfig> {
        self.repos.iter().find(|r| r.name.as_str() == name)
    }

    /// The agent command of a role: `ORCH_AGENT_CMD_<ROLE>` > `[role.<role>]
    /// .command` > `ORCH_AGENT_CMD`.
    pub fn agent_command(&self, role: Role) -> Option<&[String]> {
        self.agent_cmd_role
            .get(&role)
            .or_else(|| self.roles.get(&role).and_then(|r| r.command.as_ref()))
            .or(self.agent_cmd.as_ref())
            .map(Vec::as_slice)
    }

    /// Refuses to serve when an agent role has no command (the deployer runs
    /// no agent).
    pub fn require_agent_commands(&self) -> Result<(), ConfigError> {
        for role in Role::ALL.into_iter().filter(|r| *r != Role::Deployer) {
            if self.agent_command(role).is_none() {
                return Err(ConfigError::Invalid {
                    key: "ORCH_AGENT_CMD",
                    reason: format!(
                        "no agent command for role {role} (set ORCH_AGENT_CMD, ORCH_AGENT_CMD_{}, or [role.{role}].command)",
                        role.as_str().to_uppercase()
                    ),
                });
            }
        }
        Ok(())
    }

    pub fn role_timeout(&self, role: Role) -> Option<Duration> {
        self.roles
            .get(&role)
            .and_then(|r| r.timeout_secs)
            .map(Duration::from_secs)
    }

    /// The gate switches in force.
    pub fn gates(&self) -> &GateConfig {
        &self.store.gates
    }

    /// Path of the bare clone of a repo.
    pub fn repo_names(&self) -> Vec<RepoName> {
        self.repos.iter().map(|r| r.name.clone()).collect()
    }

    pub fn config_dir(&self) -> &Path {
        self.config_path.parent().unwrap_or(Path::new("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_precedence() {
        let env = Env::from_pairs([
            ("ORCH_CONFIG", "/nonexistent/orch.toml"),
            ("ORCH_AGENT_CMD", "agent --all"),
            ("ORCH_AGENT_CMD_TESTER", "'test agent' -x"),
        ]);
        let s = Settings::load(&env).unwrap();
        assert_eq!(s.workers, 2);
        assert_eq!(s.lease, Duration::from_secs(60));
        assert_eq!(s.http_addr.to_string(), "127.0.0.1:8787");
        assert_eq!(
            s.agent_command(Role::Developer).unwrap(),
            ["agent", "--all"]
        );
        assert_eq!(s.agent_command(Role::Tester).unwrap(), ["test agent", "-x"]);
        s.require_agent_commands().unwrap();
    }

    #[test]
    fn secrets_never_print() {
        let env = Env::from_pairs([
            ("ORCH_CONFIG", "/nonexistent/orch.toml"),
            ("ORCH_API_TOKEN", "api-s3cret-value"),
            ("ORCH_GITEA_TOKEN", "gitea-s3cret-value"),
            ("ORCH_GITEA_URL", "http://127.0.0.1:3000"),
        ]);
        let printed = format!("{:?}", Settings::load(&env).unwrap());
        assert!(!printed.contains("s3cret"), "{printed}");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (k, v) in [
            ("ORCH_WORKERS", "0"),
            ("ORCH_LEASE_SECS", "ten"),
            ("ORCH_HTTP_ADDR", "nowhere"),
            ("ORCH_AGENT_ENV_PASSTHROUGH", "X,ORCH_API_TOKEN"),
            ("ORCH_AGENT_CMD", "'unclosed"),
        ] {
            let env = Env::from_pairs([("ORCH_CONFIG", "/nonexistent/orch.toml"), (k, v)]);
            let e = Settings::load(&env).unwrap_err().to_string();
            assert!(e.contains(k), "{e}");
        }
        let env = Env::from_pairs([("ORCH_CONFIG", "/nonexistent/orch.toml")]);
        let e = Settings::load(&env)
            .unwrap()
            .require_agent_commands()
            .unwrap_err()
            .to_string();
        assert!(e.contains("analyst"), "{e}");
    }
}
