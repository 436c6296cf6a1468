//! A fake Gitea: the `/api/v1/repos/{owner}/{repo}` paths orch uses, with
//! `Authorization: token …` checked and the documented status codes —
//! create PR 201 / 409 / 422, merge 200 / 405 / 409 / 404, delete branch
//! 204 / 403 / 404.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use orch::gitea::GiteaClient;
use orch::plane::Secret;

use super::{Script, Scripted, Seen, empty, serve};

pub const TOKEN: &str = "gitea_test_token_5678";
pub const REPO: &str = "acme/orchestrator";
pub const REPO_JSON: &str = include_str!("fixtures/repo.json");
pub const PULL_JSON: &str = include_str!("fixtures/pull-created.json");
pub const HEAD_SHA: &str = "4f1c2d3e4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d";

/// The merge styles the fake repository allows.
const STYLES: [&str; 5] = [
    "merge",
    "rebase",
    "rebase-merge",
    "squash",
    "fast-forward-only",
];

#[derive(Debug, Clone)]
pub struct Pull {
    pub number: u64,
    pub head: String,
    pub base: String,
    pub title: String,
    pub state: String,
    pub merged: bool,
    pub head_sha: String,
}

#[derive(Debug, Clone)]
pub struct Repo {
    pub default_branch: String,
    /// Branch → tip.
    pub branches: HashMap<String, String>,
    pub protected: HashSet<String>,
    pub allowed_styles: Vec<String>,
    /// A real bare repository the fake stands in front of: branches are read
    /// from it, merges fast-forward it and deletions delete there, so the
    /// pipeline's end state can be checked with git.
    pub backing: Option<std::path::PathBuf>,
}

fn backing_git(bare: &std::path::Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Reloads the branch map from the backing repository.
fn sync_branches(repo: &mut Repo) {
    let Some(bare) = repo.backing.clone() else {
        return;
    };
    let listing = backing_git(
        &bare,
        &[
            "for-each-ref",
            "--format=%(refname:strip=2) %(objectname)",
            "refs/heads",
        ],
    )
    .unwrap_or_default();
    repo.branches = listing
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(b, sha)| (b.to_owned(), sha.to_owned()))
        .collect();
}

#[derive(Debug, Default)]
pub struct GiteaState {
    pub repos: HashMap<String, Repo>,
    pub pulls: Vec<Pull>,
    pub script: Script,
    pub seen: Vec<Seen>,
}

#[derive(Clone)]
pub struct FakeGitea {
    pub url: String,
    state: Arc<Mutex<GiteaState>>,
}

impl FakeGitea {
    /// `acme/orchestrator` with default branch `main` and the feature
    /// branches orch would have pushed.
    pub async fn start() -> Self {
        let fixture: Value = serde_json::from_str(REPO_JSON).expect("repo fixture");
        let default = fixture["default_branch"]
            .as_str()
            .expect("default")
            .to_owned();
        let mut branches = HashMap::new();
        branches.insert(
            default.clone(),
            "0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b".into(),
        );
        for b in ["feature/ORCH-90", "feature/ORCH-91", "feature/ORCH-92"] {
            branches.insert(b.into(), HEAD_SHA.into());
        }
        let mut st = GiteaState::default();
        st.repos.insert(
            REPO.into(),
            Repo {
                default_branch: default,
                branches,
                protected: HashSet::new(),
                allowed_styles: STYLES.iter().map(|s| s.to_string()).collect(),
                backing: None,
            },
        );
        let state = Arc::new(Mutex::new(st));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let addr = serve(app).await;
        Self {
            url: format!("http://{addr}"),
            state,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, GiteaState> {
        self.state.lock().expect("fake state")
    }

    pub fn script(&self, s: Scripted) {
        self.lock().script.push(s);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    pub fn client(&self) -> GiteaClient {
        GiteaClient::new(&self.url, Secret::new(TOKEN)).expect("client")
    }

    /// Adds an open pull request as if someone had opened it earlier.
    pub fn add_pull(&self, head: &str, base: &str) -> u64 {
        let mut st = self.lock();
        let number = st.pulls.len() as u64 + 12;
        st.pulls.push(Pull {
            number,
            head: head.into(),
            base: base.into(),
            title: format!("{head} into {base}"),
            state: "open".into(),
            merged: false,
            head_sha: HEAD_SHA.into(),
        });
        number
    }

    /// Puts the fake in front of a real bare repository.
    pub fn back_with(&self, bare: &std::path::Path) {
        self.with_repo(|r| {
            r.backing = Some(bare.to_path_buf());
            sync_branches(r);
        });
    }

    pub fn with_repo<R>(&self, f: impl FnOnce(&mut Repo) -> R) -> R {
        f(self.lock().repos.get_mut(REPO).expect("the repo"))
    }
}

async fn handle(
    State(state): State<Arc<Mutex<GiteaState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = Seen::new(method, &uri, &headers, &body);
    let mut st = state.lock().expect("fake state");
    st.seen.push(seen.clone());
    if let Some(answer) = st.script.next() {
        return answer.respond();
    }
    if seen.header("authorization") != Some(&format!("token {TOKEN}")) {
        return message(401, "token is required");
    }
    let segments = seen.segments();
    match segments.as_slice() {
        ["api", "v1", "repos", owner, name, rest @ ..] => {
            let key = format!("{owner}/{name}");
            let Some(repo) = st.repos.get_mut(&key) else {
                return message(404, "repository does not exist");
            };
            sync_branches(repo);
            // As on Gitea, an open pull request follows pushes to its head.
            if repo.backing.is_some() {
                let tips = repo.branches.clone();
                for p in st.pulls.iter_mut().filter(|p| p.state == "open") {
                    if let Some(tip) = tips.get(&p.head) {
                        p.head_sha = tip.clone();
                    }
                }
            }
            route(&mut st, &key, &seen, rest)
        }
        _ => empty(404),
    }
}

fn route(st: &mut GiteaState, key: &str, seen: &Seen, rest: &[&str]) -> Response {
    let m = &seen.method;
    match rest {
        [] if m == Method::GET => {
            let repo = &st.repos[key];
            let mut fixture: Value = serde_json::from_str(REPO_JSON).expect("repo fixture");
            fixture["default_branch"] = json!(repo.default_branch);
            super::json(200, fixture)
        }
        ["pulls"] if m == Method::POST => create_pull(st, key, &seen.json()),
        ["pulls"] if m == Method::GET => list_pulls(st, seen),
        ["pulls", n] if m == Method::GET => match find(st, n) {
            Some(p) => super::json(200, pull_json(p)),
            None => message(404, "pull request does not exist"),
        },
        ["pulls", n, "merge"] if m == Method::POST => merge(st, key, n, &seen.json()),
        ["branches", branch @ ..] if m == Method::DELETE && !branch.is_empty() => {
            let branch = branch.join("/");
            let repo = st.repos.get_mut(key).expect("checked");
            if branch == repo.default_branch {
                message(403, "can not delete default branch")
            } else if repo.protected.contains(&branch) {
                message(403, "branch protected")
            } else if repo.branches.remove(&branch).is_some() {
                if let Some(bare) = &repo.backing {
                    backing_git(bare, &["update-ref", "-d", &format!("refs/heads/{branch}")]);
                }
                empty(204)
            } else {
                message(404, "branch does not exist")
            }
        }
        _ => empty(404),
    }
}

fn create_pull(st: &mut GiteaState, key: &str, body: &Value) -> Response {
    let head = body["head"].as_str().unwrap_or_default().to_owned();
    let base = body["base"].as_str().unwrap_or_default().to_owned();
    if head == base {
        return message(
            422,
            "Invalid PullRequest: There are no changes between the head and the base",
        );
    }
    let repo = &st.repos[key];
    let Some(sha) = repo.branches.get(&head).cloned() else {
        return message(404, "head branch does not exist");
    };
    if !repo.branches.contains_key(&base) {
        return message(404, "base branch does not exist");
    }
    if st
        .pulls
        .iter()
        .any(|p| p.head == head && p.base == base && p.state == "open")
    {
        return message(409, "pull request already exists for these targets");
    }
    let number = st.pulls.len() as u64 + 12;
    st.pulls.push(Pull {
        number,
        head,
        base,
        title: body["title"].as_str().unwrap_or_default().to_owned(),
        state: "open".into(),
        merged: false,
        head_sha: sha,
    });
    super::json(201, pull_json(st.pulls.last().expect("just pushed")))
}

fn list_pulls(st: &GiteaState, seen: &Seen) -> Response {
    let state = seen.query.get("state").map_or("open", String::as_str);
    let base = seen.query.get("base_branch");
    let limit: usize = seen
        .query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(30);
    let page: usize = seen
        .query
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let all: Vec<Value> = st
        .pulls
        .iter()
        .filter(|p| state == "all" || p.state == state)
        .filter(|p| base.is_none_or(|b| *b == p.base))
        .skip((page - 1) * limit)
        .take(limit)
        .map(pull_json)
        .collect();
    super::json(200, Value::Array(all))
}

fn merge(st: &mut GiteaState, key: &str, n: &str, body: &Value) -> Response {
    let allowed = st.repos[key].allowed_styles.clone();
    let Some(pull) = n
        .parse::<u64>()
        .ok()
        .and_then(|n| st.pulls.iter_mut().find(|p| p.number == n))
    else {
        return message(404, "pull request does not exist");
    };
    if pull.merged {
        return empty(405);
    }
    if pull.state != "open" {
        return message(404, "pull request is closed");
    }
    let style = body["Do"].as_str().unwrap_or("merge");
    if !allowed.iter().any(|s| s == style) {
        return message(
            405,
            &format!("{style} is not allowed an allowed merge style for this repository"),
        );
    }
    if let Some(expected) = body["head_commit_id"].as_str()
        && !expected.is_empty()
        && expected != pull.head_sha
    {
        return message(409, "head out of date");
    }
    if let Some(bare) = st.repos[key].backing.clone() {
        let (head, base) = (pull.head_sha.clone(), pull.base.clone());
        let ancestor = backing_git(&bare, &["merge-base", "--is-ancestor", &base, &head]).is_some();
        if !ancestor {
            return message(409, "merge conflict: the base moved");
        }
        backing_git(&bare, &["update-ref", &format!("refs/heads/{base}"), &head]);
    }
    pull.merged = true;
    pull.state = "closed".into();
    empty(200)
}

fn find<'a>(st: &'a GiteaState, n: &str) -> Option<&'a Pull> {
    let n: u64 = n.parse().ok()?;
    st.pulls.iter().find(|p| p.number == n)
}

/// The pull request in the shape of the fixture, with this pull's values.
fn pull_json(p: &Pull) -> Value {
    let mut v: Value = serde_json::from_str(PULL_JSON).expect("pull fixture");
    v["number"] = json!(p.number);
    v["title"] = json!(p.title);
    v["state"] = json!(p.state);
    v["merged"] = json!(p.merged);
    v["html_url"] = json!(format!("https://gitea.example/{REPO}/pulls/{}", p.number));
    v["head"]["ref"] = json!(p.head);
    v["head"]["label"] = json!(p.head);
    v["head"]["sha"] = json!(p.head_sha);
    v["base"]["ref"] = json!(p.base);
    v["base"]["label"] = json!(p.base);
    v
}

fn message(status: u16, text: &str) -> Response {
    super::json(
        status,
        json!({"message": text, "url": "https://gitea.example/api/swagger"}),
    )
}
