//! The Gitea integration and the forge abstraction: the client against the
//! local fake Gitea (pull requests, the merge with `head_commit_id`, branch
//! deletion and its refusals), the pull-request webhook, and the plain git
//! forge against a real bare remote.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use orch::config::RepoConfig;
use orch::domain::{RepoName, WorkItemId};
use orch::forge::{BranchDelete, Forge, ForgeError, MergeOutcome};
use orch::git::{CommitId, FeatureBranch, GitLayer, WorktreeAdd, task_names};
use orch::gitea::webhook::{self, GiteaEvent};
use orch::gitea::{GiteaClient, GiteaError, MergeStyle, Opened, RepoRef};
use orch::plane::signature::{MAX_BODY, sign_hex};

use crate::fakes::Scripted;
use crate::fakes::gitea::{FakeGitea, HEAD_SHA, REPO, TOKEN};
use crate::support::git;
use crate::world::bare_remote;

fn repo() -> RepoRef {
    RepoRef::parse(REPO).expect("owner/repo")
}

fn feature(s: &str) -> FeatureBranch {
    FeatureBranch::parse(s).expect("a feature branch")
}

/// Every request carries `Authorization: token …`.
fn check_authenticated(gitea: &FakeGitea) {
    for seen in gitea.seen() {
        let expected = format!("token {TOKEN}");
        assert_eq!(
            seen.header("authorization"),
            Some(expected.as_str()),
            "{}",
            seen.path
        );
    }
}

// ------------------------------------------------------------------ client

#[tokio::test]
async fn default_branch_from_the_repository() {
    let gitea = FakeGitea::start().await;
    assert_eq!(
        gitea.client().default_branch(&repo()).await.unwrap(),
        "main"
    );
    assert_eq!(gitea.seen()[0].path, "/api/v1/repos/acme/orchestrator");
    check_authenticated(&gitea);
}

/// 201 opens a pull request; a second open gets 409 and finds the same one.
#[tokio::test]
async fn pull_request_opened_then_found_on_409() {
    let gitea = FakeGitea::start().await;
    let client = gitea.client();
    let branch = feature("feature/ORCH-90");
    let opened = client
        .open_pull_request(
            &repo(),
            &branch,
            "main",
            "ORCH-90: Cancel tasks",
            "Opened by orch.",
        )
        .await
        .unwrap();
    let Opened::Created(pull) = &opened else {
        panic!("expected a new pull request, got {opened:?}");
    };
    assert_eq!(
        (pull.head_ref.as_str(), pull.base_ref.as_str()),
        ("feature/ORCH-90", "main")
    );
    assert_eq!(pull.head_sha.as_deref(), Some(HEAD_SHA));
    let sent = gitea.seen()[0].json();
    assert_eq!(sent["head"], "feature/ORCH-90");
    assert_eq!(sent["base"], "main");
    assert_eq!(sent["title"], "ORCH-90: Cancel tasks");

    let again = client
        .open_pull_request(&repo(), &branch, "main", "again", "")
        .await
        .unwrap();
    assert_eq!(again, Opened::Existing(pull.clone()));
    let seen = gitea.seen();
    assert_eq!(seen.len(), 3, "create, create (409), list");
    assert_eq!(seen[2].query.get("state").map(String::as_str), Some("open"));
    check_authenticated(&gitea);
}

#[tokio::test]
async fn pull_request_refusals_are_errors() {
    let gitea = FakeGitea::start().await;
    let client = gitea.client();
    let err = client
        .open_pull_request(&repo(), &feature("feature/ORCH-99"), "main", "t", "")
        .await
        .unwrap_err();
    assert!(
        matches!(err, GiteaError::Status { status: 404, .. }),
        "{err}"
    );
    let err = client
        .open_pull_request(&repo(), &feature("feature/ORCH-90"), "-x", "t", "")
        .await
        .unwrap_err();
    assert!(matches!(err, GiteaError::Setup(_)), "{err}");
    gitea.script(Scripted::status(500));
    let err = client
        .open_pull_request(&repo(), &feature("feature/ORCH-90"), "main", "t", "")
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
}

/// One line per merge case: the outcome for merging pull `number` with
/// `head`.
async fn check_merge(
    client: &GiteaClient,
    number: u64,
    head: &str,
    want: fn(&MergeOutcome) -> bool,
) {
    let got = client
        .merge(&repo(), number, MergeStyle::Squash, head)
        .await
        .unwrap();
    assert!(want(&got), "merge #{number} at {head}: {got:?}");
}

/// The merge sends `Do` and `head_commit_id`; a moved head is refused
/// (409), a repeated merge is `AlreadyMerged` (405, read back), other
/// 405s and 404s are refusals.
#[tokio::test]
async fn merge_with_head_commit_id() {
    let gitea = FakeGitea::start().await;
    let client = gitea.client();
    let moved = "9".repeat(40);
    let n = gitea.add_pull("feature/ORCH-90", "main");
    check_merge(
        &client,
        n,
        &moved,
        |o| matches!(o, MergeOutcome::Refused(r) if r.contains("head out of date")),
    )
    .await;
    check_merge(&client, n, HEAD_SHA, |o| *o == MergeOutcome::Merged).await;
    let merge_req = gitea
        .seen()
        .into_iter()
        .filter(|s| s.path.ends_with("/merge"))
        .nth(1)
        .expect("second merge request");
    assert_eq!(
        merge_req.path,
        format!("/api/v1/repos/{REPO}/pulls/{n}/merge")
    );
    assert_eq!(merge_req.json()["Do"], "squash");
    assert_eq!(merge_req.json()["head_commit_id"], HEAD_SHA);
    check_merge(&client, n, HEAD_SHA, |o| *o == MergeOutcome::AlreadyMerged).await;
    check_merge(&client, 999, HEAD_SHA, |o| {
        matches!(o, MergeOutcome::Refused(_))
    })
    .await;

    let m = gitea.add_pull("feature/ORCH-91", "main");
    gitea.with_repo(|r| r.allowed_styles = vec!["merge".into()]);
    check_merge(
        &client,
        m,
        HEAD_SHA,
        |o| matches!(o, MergeOutcome::Refused(r) if r.contains("cannot be merged")),
    )
    .await;
    let err = client
        .merge(&repo(), m, MergeStyle::Merge, "HEAD")
        .await
        .unwrap_err();
    assert!(matches!(err, GiteaError::Setup(_)), "{err}");
    check_authenticated(&gitea);
}

/// One line per deletion case: the outcome, and how many DELETE requests
/// reached the forge (a refusal orch can see coming sends none).
async fn check_delete(
    gitea: &FakeGitea,
    branch: &str,
    want: fn(&BranchDelete) -> bool,
    deletes: usize,
) {
    let before = count_deletes(gitea);
    let got = gitea
        .client()
        .delete_branch(&repo(), branch, "main")
        .await
        .unwrap();
    assert!(want(&got), "delete {branch:?}: {got:?}");
    assert_eq!(
        count_deletes(gitea) - before,
        deletes,
        "DELETE requests for {branch:?}"
    );
}

fn count_deletes(gitea: &FakeGitea) -> usize {
    gitea
        .seen()
        .iter()
        .filter(|s| s.method == axum::http::Method::DELETE)
        .count()
}

fn deleted(o: &BranchDelete) -> bool {
    *o == BranchDelete::Deleted
}
fn gone(o: &BranchDelete) -> bool {
    *o == BranchDelete::AlreadyGone
}
fn refused(o: &BranchDelete) -> bool {
    matches!(o, BranchDelete::Refused(_))
}

/// 204 deleted, 404 already gone (ok), 403 refused and sent only once; the
/// base, default, `main` and `master` branches and non-feature names are
/// refused before any request.
#[tokio::test]
async fn delete_branch_outcomes() {
    let gitea = FakeGitea::start().await;
    check_delete(&gitea, "feature/ORCH-90", deleted, 1).await;
    assert!(!gitea.with_repo(|r| r.branches.contains_key("feature/ORCH-90")));
    assert_eq!(
        gitea.seen().last().unwrap().path,
        format!("/api/v1/repos/{REPO}/branches/feature/ORCH-90")
    );
    check_delete(&gitea, "feature/ORCH-90", gone, 1).await;
    gitea.with_repo(|r| r.protected.insert("feature/ORCH-91".into()));
    check_delete(&gitea, "feature/ORCH-91", refused, 1).await;
    assert!(gitea.with_repo(|r| r.branches.contains_key("feature/ORCH-91")));
    for never in [
        "main",
        "master",
        "refs/heads/main",
        "develop",
        "--force",
        "feature/../main",
    ] {
        check_delete(&gitea, never, refused, 0).await;
    }
    gitea.with_repo(|r| r.default_branch = "feature/ORCH-92".into());
    check_delete(&gitea, "feature/ORCH-92", refused, 0).await;
    assert!(gitea.with_repo(|r| r.branches.contains_key("feature/ORCH-92")));
    check_authenticated(&gitea);
}

/// The default branch is never deleted even when the forge itself would
/// answer 403 anyway: the refusal is orch's own, whatever the caller passes
/// as base.
#[tokio::test]
async fn default_branch_is_never_deleted_whatever_the_base() {
    let gitea = FakeGitea::start().await;
    gitea.with_repo(|r| r.default_branch = "feature/ORCH-90".into());
    let got = gitea
        .client()
        .delete_branch(&repo(), "feature/ORCH-90", "release")
        .await
        .unwrap();
    assert!(
        matches!(&got, BranchDelete::Refused(r) if r.contains("protected")),
        "{got:?}"
    );
    assert_eq!(count_deletes(&gitea), 0);
}

#[tokio::test]
async fn gitea_errors_never_show_the_token() {
    let gitea = FakeGitea::start().await;
    let client = GiteaClient::new(&gitea.url, orch::plane::Secret::new("nope_token_42")).unwrap();
    let err = client.default_branch(&repo()).await.unwrap_err();
    assert!(
        matches!(err, GiteaError::Status { status: 401, .. }),
        "{err}"
    );
    let shown = format!("{err} {err:?} {client:?} {:?}", gitea.client());
    assert!(
        !shown.contains("nope_token_42") && !shown.contains(TOKEN),
        "{shown}"
    );
    let unreachable = GiteaClient::new("http://127.0.0.1:9", orch::plane::Secret::new("x"))
        .unwrap()
        .default_branch(&repo())
        .await
        .unwrap_err();
    assert!(unreachable.is_transient(), "{unreachable}");
}

// ----------------------------------------------------------------- webhook

const SECRET: &[u8] = b"gitea-webhook-secret";

fn closed_delivery(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = json!({
        "action": "closed",
        "number": 12,
        "pull_request": {
            "id": 311,
            "number": 12,
            "state": "closed",
            "merged": false,
            "head": {"ref": "feature/ORCH-90", "sha": HEAD_SHA},
            "base": {"ref": "main"},
        },
        "repository": {"id": 17, "full_name": REPO},
        "sender": {"login": "ana"},
    });
    edit(&mut v);
    serde_json::to_vec(&v).expect("json")
}

fn check_gitea_verify(secret: Option<&[u8]>, signature: Option<&str>, body: &[u8], status: u16) {
    match webhook::verify(secret, signature, body) {
        Ok(()) => assert_eq!(status, 200),
        Err(e) => assert_eq!(e.status(), status, "{e}"),
    }
}

#[test]
fn gitea_webhook_signature() {
    let body = closed_delivery(|_| {});
    let good = sign_hex(SECRET, &body);
    check_gitea_verify(Some(SECRET), Some(&good), &body, 200);
    check_gitea_verify(Some(SECRET), Some(&sign_hex(b"x", &body)), &body, 401);
    check_gitea_verify(Some(SECRET), None, &body, 401);
    check_gitea_verify(None, Some(&good), &body, 503);
    let mut big = body.clone();
    big.resize(MAX_BODY + 1, b' ');
    check_gitea_verify(Some(SECRET), Some(&sign_hex(SECRET, &big)), &big, 413);
}

fn check_gitea_parse(event: Option<&str>, body: &[u8], want: fn(&Result<GiteaEvent, u16>) -> bool) {
    let got = webhook::parse(event, body).map_err(|e| e.status());
    assert!(want(&got), "{got:?}");
}

/// A pull request of an orch branch closed without merge is reported;
/// merged, reopened, other events and foreign branches are ignored; wrong
/// types on used fields are 400.
#[test]
fn gitea_webhook_closed_without_merge() {
    let body = closed_delivery(|_| {});
    let Ok(GiteaEvent::ClosedWithoutMerge(closed)) = webhook::parse(Some("pull_request"), &body)
    else {
        panic!("expected a closed pull request");
    };
    assert_eq!(closed.repo, repo());
    assert_eq!(
        (closed.number, closed.head.as_str(), closed.base.as_str()),
        (12, "feature/ORCH-90", "main")
    );
    let ignored = |r: &Result<GiteaEvent, u16>| matches!(r, Ok(GiteaEvent::Ignored(_)));
    let bad = |r: &Result<GiteaEvent, u16>| *r == Err(400);
    check_gitea_parse(None, &body, |r| {
        matches!(r, Ok(GiteaEvent::ClosedWithoutMerge(_)))
    });
    check_gitea_parse(Some("push"), &body, ignored);
    check_gitea_parse(
        None,
        &closed_delivery(|v| v["pull_request"]["merged"] = json!(true)),
        ignored,
    );
    check_gitea_parse(
        None,
        &closed_delivery(|v| v["action"] = json!("reopened")),
        ignored,
    );
    check_gitea_parse(
        None,
        &closed_delivery(|v| v["pull_request"]["head"]["ref"] = json!("hotfix")),
        ignored,
    );
    check_gitea_parse(
        None,
        &closed_delivery(|v| v["pull_request"] = Value::Null),
        ignored,
    );
    check_gitea_parse(None, b"{", bad);
    check_gitea_parse(
        None,
        &closed_delivery(|v| v["pull_request"]["merged"] = json!("no")),
        bad,
    );
    check_gitea_parse(
        None,
        &closed_delivery(|v| v["pull_request"]["number"] = json!(0)),
        bad,
    );
    check_gitea_parse(
        None,
        &closed_delivery(|v| v["pull_request"]["head"] = json!("x")),
        bad,
    );
    check_gitea_parse(
        None,
        &closed_delivery(|v| v["repository"]["full_name"] = json!("../x")),
        bad,
    );
}

// ------------------------------------------------------------------- forge

fn repo_config(remote: &str, extra: &str) -> RepoConfig {
    let text = format!("[[repo]]\nname='orchestrator'\nremote='{remote}'\n{extra}");
    orch::config::file::parse(&text, Path::new("/"))
        .expect("valid config")
        .repos
        .remove(0)
}

/// On Gitea the forge opens (then finds) the pull request, merges it by
/// number or by branch, and deletes the branch through the API.
#[tokio::test]
async fn gitea_forge() {
    let gitea = FakeGitea::start().await;
    let tmp = crate::support::tempdir();
    let layer = Arc::new(GitLayer::new(tmp.path().join("data")).unwrap());
    let config = repo_config(
        "https://gitea.example/acme/orchestrator.git",
        "gitea='acme/orchestrator'\nmerge_style='rebase'\n",
    );
    let forge =
        Forge::for_repo(&config, Arc::clone(&layer), Some(Arc::new(gitea.client()))).unwrap();
    assert!(forge.is_gitea());
    assert_eq!(
        forge.default_branch().await.unwrap().as_deref(),
        Some("main")
    );
    let pr = forge
        .open_pull_request("feature/ORCH-90", "ORCH-90", "body")
        .await
        .unwrap()
        .expect("a pull request");
    assert!(pr.created);
    let again = forge
        .open_pull_request("feature/ORCH-90", "ORCH-90", "body")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.number, again.created), (pr.number, false));
    let head = CommitId::from_hex(HEAD_SHA.as_bytes()).unwrap();
    assert_eq!(
        forge.merge("feature/ORCH-90", None, head).await.unwrap(),
        MergeOutcome::Merged
    );
    let merge_req = gitea
        .seen()
        .into_iter()
        .find(|s| s.path.ends_with("/merge"))
        .unwrap();
    assert_eq!(merge_req.json()["Do"], "rebase");
    assert_eq!(
        forge
            .merge("feature/ORCH-90", Some(pr.number), head)
            .await
            .unwrap(),
        MergeOutcome::AlreadyMerged
    );
    assert!(matches!(
        forge.merge("feature/ORCH-91", None, head).await.unwrap(),
        MergeOutcome::Refused(_)
    ));
    assert_eq!(
        forge.delete_remote_branch("feature/ORCH-90").await.unwrap(),
        BranchDelete::Deleted
    );
    assert!(matches!(
        forge.delete_remote_branch("main").await.unwrap(),
        BranchDelete::Refused(_)
    ));
    let err = forge.open_pull_request("main", "t", "b").await.unwrap_err();
    assert!(!err.is_transient(), "{err}");

    let no_client = Forge::for_repo(&config, layer, None).unwrap_err();
    assert!(
        matches!(no_client, ForgeError::Config { .. }),
        "{no_client}"
    );
}

/// A bare remote, a task branch with one commit pushed to it, and the
/// plain git forge of that remote.
struct PlainRemote {
    _tmp: tempfile::TempDir,
    remote: std::path::PathBuf,
    forge: Forge,
    branch: String,
    head: CommitId,
}

fn plain_remote() -> PlainRemote {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let remote = bare_remote(&root, "orchestrator");
    let layer = Arc::new(GitLayer::new(root.join("data")).unwrap());
    let repo = RepoName::parse("orchestrator").unwrap();
    let remote_str = remote.to_str().unwrap();
    layer.ensure_mirror(&repo, remote_str).unwrap();
    let names = task_names(&repo, &WorkItemId::parse("ORCH-1").unwrap(), 1).unwrap();
    let path = layer.data_dir().join(&names.worktree_rel);
    let branch = names.branch.to_string();
    let added = layer.add_worktree(&repo, "main", &branch, &path).unwrap();
    assert!(matches!(added, WorktreeAdd::Created { .. }), "{added:?}");
    std::fs::write(path.join("feature.txt"), "work\n").unwrap();
    git(&path, &["add", "feature.txt"]);
    git(
        &path,
        &[
            "-c",
            "core.hooksPath=/dev/null",
            "commit",
            "-q",
            "-m",
            "work",
        ],
    );
    let head = CommitId::from_hex(git(&path, &["rev-parse", "HEAD"]).as_bytes()).unwrap();
    layer.push_branch(&repo, remote_str, &branch).unwrap();
    let config = repo_config(remote_str, "");
    let forge = Forge::for_repo(&config, layer, None).unwrap();
    PlainRemote {
        _tmp: tmp,
        remote,
        forge,
        branch,
        head,
    }
}

fn remote_tip(remote: &Path, branch: &str) -> Option<String> {
    let out = crate::support::git_output(remote, &["rev-parse", "--verify", "-q", branch]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// On a plain git remote there is no pull request; the merge is a
/// non-force fast-forward of the base (refused when the branch moved since
/// review), and deleting the feature branch is a push, never of `main`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_git_forge_against_a_real_remote() {
    let p = plain_remote();
    assert!(!p.forge.is_gitea());
    assert_eq!(p.forge.default_branch().await.unwrap(), None);
    assert_eq!(
        p.forge
            .open_pull_request(&p.branch, "t", "b")
            .await
            .unwrap(),
        None
    );

    let stale = CommitId::from_hex("1".repeat(40).as_bytes()).unwrap();
    let refused = p.forge.merge(&p.branch, None, stale).await.unwrap();
    assert!(
        matches!(&refused, MergeOutcome::Refused(r) if r.contains("moved")),
        "{refused:?}"
    );
    assert_ne!(remote_tip(&p.remote, "main"), Some(p.head.to_string()));

    assert_eq!(
        p.forge.merge(&p.branch, None, p.head).await.unwrap(),
        MergeOutcome::Merged
    );
    assert_eq!(remote_tip(&p.remote, "main"), Some(p.head.to_string()));
    assert_eq!(
        p.forge.merge(&p.branch, None, p.head).await.unwrap(),
        MergeOutcome::AlreadyMerged
    );

    for never in ["main", "master", "develop", "--force"] {
        let got = p.forge.delete_remote_branch(never).await.unwrap();
        assert!(matches!(got, BranchDelete::Refused(_)), "{never}: {got:?}");
    }
    assert!(remote_tip(&p.remote, "main").is_some());
    assert_eq!(
        p.forge.delete_remote_branch(&p.branch).await.unwrap(),
        BranchDelete::Deleted
    );
    assert_eq!(remote_tip(&p.remote, &p.branch), None);
    assert_eq!(
        p.forge.delete_remote_branch(&p.branch).await.unwrap(),
        BranchDelete::AlreadyGone
    );
}
