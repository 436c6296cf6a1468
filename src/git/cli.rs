//! The one place orch starts the `git` program. gix has no push, so pushes
//! and remote branch deletions on plain remotes go through here (see
//! `docs/adr/0002-git-cli-for-push.md`). Agents can write into a
//! repository's config and hooks, so every invocation disables hooks and
//! fsmonitor on the command line, and the child gets a minimal environment
//! in which none of orch's tokens or secrets appear.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, Stdio};

use super::error::GitError;

/// Options placed before every subcommand. `-c` on the command line beats
/// any repository, global or system config an agent may have edited.
pub const HARDENING: [&str; 6] = [
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "protocol.ext.allow=never",
];

/// Variables a git child may inherit: what it needs to find programs,
/// reach an ssh agent or a proxy, and read the operator's git config and
/// credential helpers. Everything else, orch's tokens included, is dropped.
const INHERITED: [&str; 17] = [
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "TMPDIR",
    "TZ",
    "XDG_CONFIG_HOME",
    "SSH_AUTH_SOCK",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
];

/// Variables set for every git child: messages in a stable language (some
/// outcomes are recognised by their text), and never a credential prompt,
/// because nobody is at a terminal to answer it.
const FIXED: [(&str, &str); 3] = [("LC_ALL", "C"), ("LANG", "C"), ("GIT_TERMINAL_PROMPT", "0")];

/// The environment of a git child, built from an allowlist of the parent's.
/// A variable that looks like a secret is dropped even if allowlisted.
pub fn child_env(
    parent: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = parent
        .into_iter()
        .filter(|(key, _)| {
            let key = key.to_string_lossy();
            INHERITED.contains(&key.as_ref()) && !looks_secret(&key)
        })
        .collect();
    env.extend(
        FIXED
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
    );
    env
}

fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_uppercase();
    key.starts_with("ORCH_")
        || ["TOKEN", "SECRET", "PASSWORD"]
            .iter()
            .any(|w| key.contains(w))
}

/// A prepared `git` invocation against one repository's git dir.
pub fn command(git_dir: &Path, args: &[&OsStr]) -> Command {
    let mut cmd = Command::new("git");
    cmd.env_clear()
        .envs(child_env(std::env::vars_os()))
        .env("GIT_DIR", git_dir)
        .current_dir(git_dir)
        .args(HARDENING)
        .args(args)
        .stdin(Stdio::null());
    cmd
}

/// What a finished git child said.
pub struct Output {
    pub success: bool,
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `git` with `args` against `git_dir` and collects its output.
pub fn run(git_dir: &Path, args: &[&OsStr]) -> Result<Output, GitError> {
    let out = command(git_dir, args).output().map_err(GitError::Spawn)?;
    Ok(Output {
        success: out.status.success(),
        status: out.status.to_string(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

/// One ref line of `git push --porcelain`: `<flag>\t<from>:<to>\t<summary>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedRef {
    pub flag: char,
    pub to: String,
    pub summary: String,
}

/// Finds the porcelain line for the destination ref `to`.
pub fn pushed_ref(stdout: &str, to: &str) -> Option<PushedRef> {
    stdout.lines().find_map(|line| {
        let mut fields = line.splitn(3, '\t');
        let flag = fields.next()?.chars().next()?;
        let (_, dest) = fields.next()?.split_once(':')?;
        let summary = fields.next().unwrap_or("").to_owned();
        (dest == to).then(|| PushedRef {
            flag,
            to: dest.to_owned(),
            summary,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    /// TC-38 (git side): no orch token or secret reaches a git child.
    #[test]
    fn child_env_is_minimal() {
        let out = child_env(env(&[
            ("PATH", "/usr/bin"),
            ("HOME", "/home/orch"),
            ("ORCH_GITEA_TOKEN", "t1"),
            ("ORCH_PLANE_API_TOKEN", "t2"),
            ("ORCH_PLANE_WEBHOOK_SECRET", "s1"),
            ("AWS_SECRET_ACCESS_KEY", "s2"),
            ("GIT_DIR", "/elsewhere"),
            ("GIT_CONFIG_PARAMETERS", "'core.hooksPath'='/tmp/evil'"),
            ("LD_PRELOAD", "/tmp/evil.so"),
        ]));
        let keys: Vec<_> = out
            .iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            keys,
            ["PATH", "HOME", "LC_ALL", "LANG", "GIT_TERMINAL_PROMPT"]
        );
    }

    #[test]
    fn every_command_is_hardened() {
        let cmd = command(Path::new("/repo.git"), &[OsStr::new("push")]);
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-c",
                "core.hooksPath=/dev/null",
                "-c",
                "core.fsmonitor=false",
                "-c",
                "protocol.ext.allow=never",
                "push"
            ]
        );
        let leaked = cmd
            .get_envs()
            .any(|(k, _)| k.to_string_lossy().starts_with("ORCH_"));
        assert!(!leaked);
    }

    #[test]
    fn porcelain_lines() {
        let out = "To /r.git\n!\trefs/heads/feature/ORCH-1:refs/heads/feature/ORCH-1\t[rejected] (non-fast-forward)\n*\t:refs/heads/x\t[new branch]\nDone\n";
        let line = pushed_ref(out, "refs/heads/feature/ORCH-1").expect("line");
        assert_eq!(line.flag, '!');
        assert_eq!(line.summary, "[rejected] (non-fast-forward)");
        assert_eq!(pushed_ref(out, "refs/heads/x").map(|l| l.flag), Some('*'));
        assert_eq!(pushed_ref(out, "refs/heads/main"), None);
    }
}
