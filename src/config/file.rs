//! `orch.toml`: repos, roles and prompts (SPEC §10). Secrets are never read
//! from here: unknown keys (a `token`, say) are refused by name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use crate::domain::{RepoName, Role};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    repo: Vec<RawRepo>,
    #[serde(default)]
    role: BTreeMap<String, RawRole>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepo {
    name: String,
    remote: String,
    #[serde(default = "default_base")]
    base_branch: String,
    plane_project: Option<String>,
    plane_project_id: Option<String>,
    gitea: Option<String>,
    deploy_staging: Option<Vec<String>>,
    deploy: Option<Vec<String>>,
    #[serde(default)]
    deploy_env: BTreeMap<String, String>,
    merge_style: Option<String>,
}

fn default_base() -> String {
    "main".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    command: Option<Vec<String>>,
    timeout_secs: Option<u64>,
    prompt: Option<String>,
}

/// A configured repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoConfig {
    pub name: RepoName,
    /// A local path (resolved against the config file's directory) or a URL.
    pub remote: String,
    pub base_branch: String,
    pub plane_project: Option<String>,
    pub plane_project_id: Option<String>,
    /// `owner/repo` on the forge.
    pub gitea: Option<String>,
    /// Deploy commands as argv; `argv[0]` is already resolved.
    pub deploy_staging: Option<Vec<String>>,
    pub deploy: Option<Vec<String>>,
    pub deploy_env: BTreeMap<String, String>,
    pub merge_style: String,
}

/// A role's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleConfig {
    pub command: Option<Vec<String>>,
    pub timeout_secs: Option<u64>,
    /// The prompt template file, resolved against the config file's directory.
    pub prompt: Option<PathBuf>,
}

/// What `orch.toml` says, validated.
#[derive(Debug, Clone, Default)]
pub struct Files {
    pub repos: Vec<RepoConfig>,
    pub roles: BTreeMap<Role, RoleConfig>,
}

/// Reads and validates the file; a missing file is an empty config.
pub fn load(path: &Path) -> Result<Files, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Files::default()),
        Err(e) => {
            return Err(ConfigError::Invalid {
                key: "ORCH_CONFIG",
                reason: format!("{}: {e}", path.display()),
            });
        }
    };
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse(&text, &dir).map_err(|reason| ConfigError::File {
        path: path.display().to_string(),
        reason,
    })
}

/// Parses the text of an `orch.toml` whose directory is `dir`.
pub fn parse(text: &str, dir: &Path) -> Result<Files, String> {
    let raw: FileConfig = toml::from_str(text).map_err(|e| one_line(&e.to_string()))?;
    let mut repos: Vec<RepoConfig> = Vec::new();
    for (i, r) in raw.repo.into_iter().enumerate() {
        let at = |field: &str| format!("repo[{i}].{field}");
        let name = RepoName::parse(&r.name).map_err(|e| format!("{}: {e}", at("name")))?;
        if repos.iter().any(|x| x.name == name) {
            return Err(format!("{}: repo {name} is configured twice", at("name")));
        }
        crate::git::names::base_branch(&r.base_branch)
            .map_err(|e| format!("{}: {e}", at("base_branch")))?;
        if r.remote.trim().is_empty() || r.remote.starts_with('-') {
            return Err(format!("{}: must be a path or a URL", at("remote")));
        }
        let remote = if r.remote.contains("://") || Path::new(&r.remote).is_absolute() {
            r.remote.clone()
        } else {
            dir.join(&r.remote).display().to_string()
        };
        if let Some(g) = &r.gitea
            && g.split('/').filter(|p| !p.is_empty()).count() != 2
        {
            return Err(format!("{}: expected owner/repo", at("gitea")));
        }
        if let Some(p) = &r.plane_project_id {
            crate::domain::PlaneIssueId::parse(p)
                .map_err(|_| format!("{}: expected a UUID", at("plane_project_id")))?;
        }
        if let Some(p) = &r.plane_project
            && crate::domain::WorkItemId::from_parts(p, 1).is_err()
        {
            return Err(format!(
                "{}: expected a project identifier like ORCH",
                at("plane_project")
            ));
        }
        let merge_style = r.merge_style.unwrap_or_else(|| "merge".into());
        if ![
            "merge",
            "rebase",
            "rebase-merge",
            "squash",
            "fast-forward-only",
        ]
        .contains(&merge_style.as_str())
        {
            return Err(format!(
                "{}: unknown merge style {merge_style:?}",
                at("merge_style")
            ));
        }
        repos.push(RepoConfig {
            name,
            remote,
            base_branch: r.base_branch,
            plane_project: r.plane_project,
            plane_project_id: r.plane_project_id,
            gitea: r.gitea,
            deploy_staging: argv(r.deploy_staging, dir)
                .map_err(|e| format!("{}: {e}", at("deploy_staging")))?,
            deploy: argv(r.deploy, dir).map_err(|e| format!("{}: {e}", at("deploy")))?,
            deploy_env: r.deploy_env,
            merge_style,
        });
    }
    let mut roles = BTreeMap::new();
    for (name, r) in raw.role {
        let role: Role = name.parse().map_err(|e| format!("role.{name}: {e}"))?;
        if let Some(c) = &r.command
            && c.is_empty()
        {
            return Err(format!("role.{name}.command: must not be empty"));
        }
        if r.timeout_secs == Some(0) {
            return Err(format!("role.{name}.timeout_secs: must be positive"));
        }
        roles.insert(
            role,
            RoleConfig {
                command: r.command,
                timeout_secs: r.timeout_secs,
                prompt: r.prompt.map(|p| dir.join(p)),
            },
        );
    }
    Ok(Files { repos, roles })
}

/// A deploy command: an argv whose relative `argv[0]` is resolved against the
/// config file's directory, never the worktree.
fn argv(v: Option<Vec<String>>, dir: &Path) -> Result<Option<Vec<String>>, String> {
    let Some(mut v) = v else { return Ok(None) };
    let Some(first) = v.first_mut() else {
        return Err("must not be empty".into());
    };
    if first.contains('/') && !Path::new(first.as_str()).is_absolute() {
        *first = dir.join(first.as_str()).display().to_string();
    }
    Ok(Some(v))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_err(text: &str, needle: &str) {
        let e = parse(text, Path::new("/etc/orch")).unwrap_err();
        assert!(e.contains(needle), "{e:?} should name {needle:?}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn parses_the_documented_example() {
        let f = parse(
            r#"
[[repo]]
name = "orchestrator"
remote = "https://gitea.example/acme/orchestrator.git"
base_branch = "main"
plane_project = "ORCH"
plane_project_id = "a1c2e3f4-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
gitea = "acme/orchestrator"
deploy_staging = ["./deploy.sh", "staging"]
deploy = ["./deploy.sh", "production"]
deploy_env = { DEPLOY_TARGET = "eu-1" }

[role.developer]
command = ["claude", "-p"]
timeout_secs = 3600
prompt = "prompts/developer.md"
"#,
            Path::new("/etc/orch"),
        )
        .unwrap();
        let r = &f.repos[0];
        assert_eq!(r.deploy.as_ref().unwrap()[0], "/etc/orch/./deploy.sh");
        assert_eq!(r.deploy_env["DEPLOY_TARGET"], "eu-1");
        assert_eq!(
            f.roles[&Role::Developer].prompt.as_deref(),
            Some(Path::new("/etc/orch/prompts/developer.md"))
        );
    }

    #[test]
    fn invalid_config_names_the_key() {
        check_err("[[repo]]\nname='../x'\nremote='r'", "repo[0].name");
        check_err("[[repo]]\nname='a'\nremote='r'\ntoken='s3cret'", "token");
        check_err("[role.wizard]\ncommand=['x']", "role.wizard");
        check_err("[role.developer]\ncommand=[]", "role.developer.command");
        check_err(
            "[[repo]]\nname='a'\nremote='--upload-pack=x'",
            "repo[0].remote",
        );
        check_err(
            "[[repo]]\nname='a'\nremote='r'\nbase_branch='-f'",
            "repo[0].base_branch",
        );
        check_err(
            "[[repo]]\nname='a'\nremote='r'\n[[repo]]\nname='a'\nremote='s'",
            "twice",
        );
    }
}
