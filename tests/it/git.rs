//! The git layer against real repositories: bare remotes made with the real
//! `git` program in temporary directories, and real `git` as the judge of
//! what the layer leaves behind.

use std::path::{Path, PathBuf};

use orch::domain::{RepoName, WorkItemId};

use crate::support::{git, git_output};
use orch::git::{
    CommitId, FastForward, GitError, GitLayer, LocalDelete, PushOutcome, RemoteDelete, WorktreeAdd,
    WorktreeRemove, task_names,
};

fn oid(hex: &str) -> CommitId {
    CommitId::from_hex(hex.as_bytes()).expect("a commit id")
}

/// Commits a file in `dir` (with hooks off, so hook tests only see what
/// orch runs) and returns the new commit.
fn commit(dir: &Path, file: &str, content: &str) -> CommitId {
    std::fs::write(dir.join(file), content).expect("write file");
    git(dir, &["add", file]);
    git(
        dir,
        &["-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", file],
    );
    oid(&git(dir, &["rev-parse", "HEAD"]))
}

/// A bare remote with one commit on `main`, a seed clone to push more from,
/// and a git layer on a fresh data dir.
struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    remote: String,
    seed: PathBuf,
    layer: GitLayer,
    repo: RepoName,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().canonicalize().expect("canonical tempdir");
        let remote = root.join("remote.git");
        git(&root, &["init", "-q", "--bare", "-b", "main", "remote.git"]);
        git(&root, &["clone", "-q", "remote.git", "seed"]);
        let seed = root.join("seed");
        git(&seed, &["checkout", "-q", "-b", "main"]);
        commit(&seed, "README", "hello\n");
        git(&seed, &["push", "-q", "origin", "main"]);
        let layer = GitLayer::new(root.join("data")).expect("layer");
        Self {
            _tmp: tmp,
            remote: remote.to_string_lossy().into_owned(),
            seed,
            root,
            layer,
            repo: RepoName::parse("orch").expect("valid"),
        }
    }

    fn mirror(&self) -> PathBuf {
        self.layer
            .ensure_mirror(&self.repo, &self.remote)
            .expect("mirror")
    }

    /// Names for incarnation `n` of `wi`: (branch, absolute worktree path).
    fn names(&self, wi: &str, n: u32) -> (String, PathBuf) {
        let id = WorkItemId::parse(wi).expect("valid id");
        let names = task_names(&self.repo, &id, n).expect("names");
        let path = self.layer.data_dir().join(&names.worktree_rel);
        (names.branch.to_string(), path)
    }

    /// Mirror fetched and a task worktree added on its branch from `main`.
    fn task(&self, wi: &str, n: u32) -> (String, PathBuf, CommitId) {
        self.mirror();
        let (branch, path) = self.names(wi, n);
        let added = self.layer.add_worktree(&self.repo, "main", &branch, &path);
        let Ok(WorktreeAdd::Created { head }) = added else {
            panic!("add_worktree: {added:?}");
        };
        (branch, path, head)
    }

    fn remote_tip(&self, branch: &str) -> Option<CommitId> {
        let out = git_output(
            &self.root,
            &[
                "--git-dir",
                &self.remote,
                "rev-parse",
                "--verify",
                "-q",
                branch,
            ],
        );
        out.status
            .success()
            .then(|| oid(String::from_utf8_lossy(&out.stdout).trim()))
    }

    fn seed_main_tip(&self) -> CommitId {
        oid(&git(&self.seed, &["rev-parse", "main"]))
    }
}

/// Asserts that `result` is a refusal of the kind `matches` accepts.
fn check_refused<T: std::fmt::Debug>(result: Result<T, GitError>, matches: fn(&GitError) -> bool) {
    match result {
        Err(e) if matches(&e) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// TC-35: a worktree and branch made with gix are accepted by real
/// `git worktree list`, `git status` and `git fsck`, and so is their removal.
#[test]
fn tc35_gix_worktree_and_branch_accepted_by_git() {
    let f = Fixture::new();
    let (branch, path, head) = f.task("ORCH-1", 1);
    let mirror = f.layer.mirror_path(&f.repo);
    assert_eq!(head, f.seed_main_tip());

    let list = git(&mirror, &["worktree", "list", "--porcelain"]);
    assert!(
        list.contains(&format!("worktree {}", path.display())),
        "{list}"
    );
    assert!(list.contains("branch refs/heads/feature/ORCH-1"), "{list}");
    assert_eq!(git(&path, &["status", "--porcelain"]), "");
    assert_eq!(git(&path, &["rev-parse", "--abbrev-ref", "HEAD"]), branch);
    assert_eq!(
        git(&mirror, &["worktree", "prune", "--dry-run", "--verbose"]),
        ""
    );
    git(&mirror, &["fsck", "--strict", "--no-dangling"]);

    let new_head = commit(&path, "work.txt", "done\n");
    assert_eq!(f.layer.head(&path).expect("head"), new_head);
    assert_eq!(f.layer.commits_since(&path, head).expect("count"), 1);
    assert_eq!(f.layer.commits_since(&path, new_head).expect("count"), 0);
    git(&path, &["fsck", "--strict", "--no-dangling"]);

    let again = f.layer.add_worktree(&f.repo, "main", &branch, &path);
    assert_eq!(
        again.expect("replay"),
        WorktreeAdd::Existing { head: new_head }
    );

    std::fs::write(path.join("uncommitted.txt"), "scratch").expect("write");
    let removed = f.layer.remove_worktree(&f.repo, &path).expect("remove");
    assert_eq!(removed, WorktreeRemove::Removed);
    assert!(!path.exists());
    let list = git(&mirror, &["worktree", "list", "--porcelain"]);
    assert!(!list.contains("ORCH-1"), "{list}");
    assert_eq!(
        git(&mirror, &["worktree", "prune", "--dry-run", "--verbose"]),
        ""
    );

    check_refused(
        f.layer
            .delete_local_branch(&f.repo, &branch, "main", Some(head)),
        |e| matches!(e, GitError::BranchMoved { .. }),
    );
    let deleted = f
        .layer
        .delete_local_branch(&f.repo, &branch, "main", Some(new_head));
    assert_eq!(
        deleted.expect("delete"),
        LocalDelete::Deleted { tip: new_head }
    );
    let gone = git_output(
        &mirror,
        &["show-ref", "--verify", "refs/heads/feature/ORCH-1"],
    );
    assert!(!gone.status.success());
    git(&mirror, &["fsck", "--strict", "--no-dangling"]);

    let again = f
        .layer
        .remove_worktree(&f.repo, &path)
        .expect("remove again");
    assert_eq!(again, WorktreeRemove::AlreadyGone);
    let again = f.layer.delete_local_branch(&f.repo, &branch, "main", None);
    assert_eq!(again.expect("delete again"), LocalDelete::AlreadyGone);
}

/// TC-35: a branch checked out in a worktree is not deleted under it.
#[test]
fn tc35_checked_out_branch_is_not_deleted() {
    let f = Fixture::new();
    let (branch, path, _) = f.task("ORCH-1", 1);
    assert!(
        f.layer
            .delete_local_branch(&f.repo, &branch, "main", None)
            .is_err()
    );
    assert_eq!(git(&path, &["status", "--porcelain"]), "");
}

/// Restart-safety: an add interrupted at any point is finished by a replay.
#[test]
fn add_worktree_replays_after_interruptions() {
    let f = Fixture::new();
    let (branch, path, head) = f.task("ORCH-1", 1);
    let mirror = f.layer.mirror_path(&f.repo);
    let replay = || f.layer.add_worktree(&f.repo, "main", &branch, &path);

    // The checkout vanished but its registration remained.
    std::fs::remove_dir_all(&path).expect("rm");
    assert_eq!(replay().expect("replay"), WorktreeAdd::Created { head });
    assert_eq!(git(&path, &["status", "--porcelain"]), "");

    // The registration is there, the index never got written.
    let admin = git(&path, &["rev-parse", "--git-dir"]);
    std::fs::remove_file(Path::new(&admin).join("index")).expect("rm index");
    assert_eq!(replay().expect("replay"), WorktreeAdd::Created { head });
    assert_eq!(git(&path, &["status", "--porcelain"]), "");

    // Killed after the checkout, before the registration was unlocked.
    std::fs::write(Path::new(&admin).join("locked"), "initializing\n").expect("lock");
    assert_eq!(replay().expect("replay"), WorktreeAdd::Created { head });
    assert!(!Path::new(&admin).join("locked").exists());
    std::fs::write(Path::new(&admin).join("locked"), "initializing\n").expect("lock");
    let removed = f.layer.remove_worktree(&f.repo, &path).expect("remove");
    assert_eq!(removed, WorktreeRemove::Removed);
    f.layer
        .add_worktree(&f.repo, "main", &branch, &path)
        .expect("re-add");

    // A directory of files without any registration.
    f.layer.remove_worktree(&f.repo, &path).expect("remove");
    std::fs::create_dir_all(&path).expect("mkdir");
    std::fs::write(path.join("stray"), "x").expect("write");
    assert_eq!(replay().expect("replay"), WorktreeAdd::Created { head });
    assert!(!path.join("stray").exists());
    assert_eq!(
        git(&mirror, &["worktree", "prune", "--dry-run", "--verbose"]),
        ""
    );
    git(&mirror, &["fsck", "--strict", "--no-dangling"]);
}

/// TC-39 (git side): a re-created task works under fresh names, and the
/// predecessor's late cleanup never touches them.
#[test]
fn tc39_successor_names_survive_predecessor_cleanup() {
    let f = Fixture::new();
    let (old_branch, old_path, _) = f.task("ORCH-1", 1);
    f.layer.remove_worktree(&f.repo, &old_path).expect("remove");
    f.layer
        .delete_local_branch(&f.repo, &old_branch, "main", None)
        .expect("delete");
    let (new_branch, new_path, _) = f.task("ORCH-1", 2);
    assert_eq!(new_branch, "feature/ORCH-1-2");
    assert!(new_path.ends_with("worktrees/orch/ORCH-1-2"));

    let late = f
        .layer
        .remove_worktree(&f.repo, &old_path)
        .expect("late remove");
    assert_eq!(late, WorktreeRemove::AlreadyGone);
    let late = f
        .layer
        .delete_local_branch(&f.repo, &old_branch, "main", None);
    assert_eq!(late.expect("late delete"), LocalDelete::AlreadyGone);
    assert_eq!(git(&new_path, &["status", "--porcelain"]), "");
    assert_eq!(
        git(&new_path, &["rev-parse", "--abbrev-ref", "HEAD"]),
        new_branch
    );
}

/// TC-40: names from outside cannot escape the data dir or become options;
/// invalid ids are refused and nothing is created for them.
#[test]
fn tc40_names_cannot_escape_or_become_options() {
    let f = Fixture::new();
    f.mirror();
    let (branch, path) = f.names("ORCH-1", 1);
    let add = |branch: &str, path: &str| {
        f.layer
            .add_worktree(&f.repo, "main", branch, Path::new(path))
    };
    let escape = |e: &GitError| matches!(e, GitError::PathEscape { .. });
    check_refused(add(&branch, "worktrees/orch/../../../outside"), escape);
    check_refused(add(&branch, "worktrees/orch/../other/ORCH-1"), escape);
    check_refused(
        add(&branch, &f.root.join("ORCH-1").to_string_lossy()),
        escape,
    );
    check_refused(add(&branch, "/etc/ORCH-1"), escape);
    check_refused(add(&branch, "worktrees/orch/--force"), escape);
    check_refused(add(&branch, "worktrees/orch/ORCH-2"), |e| {
        matches!(e, GitError::WorktreeConflict { .. })
    });
    check_refused(add("--force", "worktrees/orch/ORCH-1"), |e| {
        matches!(e, GitError::NotFeatureBranch { .. })
    });
    check_refused(add("main", "worktrees/orch/ORCH-1"), |e| {
        matches!(e, GitError::ProtectedBranch { .. })
    });
    check_refused(
        f.layer
            .add_worktree(&f.repo, "--upload-pack=touch x", &branch, &path),
        |e| matches!(e, GitError::InvalidBranchName { .. }),
    );
    let marker = f.root.join("pwned");
    let evil = format!("--upload-pack=touch {}", marker.display());
    check_refused(f.layer.ensure_mirror(&f.repo, &evil), |e| {
        matches!(e, GitError::InvalidRemote { .. })
    });
    check_refused(
        f.layer
            .ensure_mirror(&f.repo, &format!("ext::sh -c touch% {}", marker.display())),
        |e| matches!(e, GitError::InvalidRemote { .. }),
    );
    check_refused(
        f.layer
            .push_branch(&f.repo, &f.remote, "feature/ORCH-1:refs/heads/main"),
        |e| matches!(e, GitError::NotFeatureBranch { .. }),
    );
    check_refused(
        f.layer.remote_ref(&f.repo, &f.remote, "feature/../main"),
        |e| matches!(e, GitError::NotFeatureBranch { .. }),
    );
    check_refused(
        f.layer.remote_ref(&f.repo, &f.remote, "--upload-pack=x"),
        |e| matches!(e, GitError::InvalidBranchName { .. }),
    );
    assert!(!marker.exists());
    assert!(!f.root.join("outside").exists());
    assert!(!f.root.join("ORCH-1").exists());
    for bad in ["../escape", "a/b", "-rf", ".git", ""] {
        assert!(RepoName::parse(bad).is_err(), "{bad:?}");
    }
    for bad in ["ORCH-1/../../x", "--upload-pack=x-1", "orch-1", "ORCH-0"] {
        assert!(WorkItemId::parse(bad).is_err(), "{bad:?}");
    }
    let worktrees = f.layer.data_dir().join("worktrees");
    let created: Vec<_> = walk(&worktrees);
    assert!(created.is_empty(), "nothing was created: {created:?}");
}

/// Every file and directory below `dir`, or nothing if it does not exist.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let mut found = vec![e.path()];
            found.extend(walk(&e.path()));
            found
        })
        .collect()
}

/// TC-40: a symlink planted where the repo's worktree directory should be
/// cannot turn a removal into one outside the data dir.
#[test]
fn tc40_symlinked_worktree_dir_is_refused() {
    let f = Fixture::new();
    let outside = f.root.join("outside");
    std::fs::create_dir_all(outside.join("ORCH-9")).expect("mkdir");
    std::fs::write(outside.join("ORCH-9/keep"), "precious").expect("write");
    let worktrees = f.layer.data_dir().join("worktrees");
    std::fs::create_dir_all(&worktrees).expect("mkdir");
    std::os::unix::fs::symlink(&outside, worktrees.join("orch")).expect("symlink");
    check_refused(
        f.layer
            .remove_worktree(&f.repo, Path::new("worktrees/orch/ORCH-9")),
        |e| matches!(e, GitError::PathEscape { .. }),
    );
    assert!(outside.join("ORCH-9/keep").exists());
}

#[test]
fn data_dir_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    let fresh = tmp.path().join("a/b/data");
    GitLayer::new(&fresh).expect("layer");
    assert_eq!(mode(&fresh), 0o700);
    let open = tmp.path().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    GitLayer::new(&open).expect("layer");
    assert_eq!(mode(&open), 0o700);
}

/// Pushes never force: a remote branch that diverged is refused and left
/// as it was.
#[test]
fn push_is_non_force_and_diverged_remote_is_refused() {
    let f = Fixture::new();
    let (branch, path, _) = f.task("ORCH-1", 1);
    let head = commit(&path, "a.txt", "a\n");
    let pushed = f.layer.push_branch(&f.repo, &f.remote, &branch);
    assert_eq!(pushed.expect("push"), PushOutcome::Pushed { head });
    assert_eq!(
        f.layer.remote_ref(&f.repo, &f.remote, &branch).expect("ls"),
        Some(head)
    );
    let again = f.layer.push_branch(&f.repo, &f.remote, &branch);
    assert_eq!(again.expect("push again"), PushOutcome::UpToDate { head });

    // Someone else adds a commit to the remote branch; ours diverges.
    git(&f.seed, &["fetch", "-q", "origin"]);
    git(
        &f.seed,
        &["checkout", "-q", "-b", "other", &format!("origin/{branch}")],
    );
    let theirs = commit(&f.seed, "b.txt", "b\n");
    git(
        &f.seed,
        &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")],
    );
    commit(&path, "c.txt", "c\n");
    check_refused(f.layer.push_branch(&f.repo, &f.remote, &branch), |e| {
        matches!(e, GitError::NonFastForward { .. })
    });
    assert_eq!(f.remote_tip(&format!("refs/heads/{branch}")), Some(theirs));
}

#[test]
fn delete_remote_branch_then_already_gone() {
    let f = Fixture::new();
    let (branch, path, _) = f.task("ORCH-1", 1);
    commit(&path, "a.txt", "a\n");
    f.layer
        .push_branch(&f.repo, &f.remote, &branch)
        .expect("push");
    let deleted = f
        .layer
        .delete_remote_branch(&f.repo, &f.remote, &branch, "main");
    assert_eq!(deleted.expect("delete"), RemoteDelete::Deleted);
    assert_eq!(
        f.layer.remote_ref(&f.repo, &f.remote, &branch).expect("ls"),
        None
    );
    let again = f
        .layer
        .delete_remote_branch(&f.repo, &f.remote, &branch, "main");
    assert_eq!(again.expect("delete again"), RemoteDelete::AlreadyGone);
    assert!(f.remote_tip("refs/heads/main").is_some());
}

/// TC-S08 (git side): `main`, `master`, the base branch and the remote's
/// default branch are never deleted, locally or on the remote.
#[test]
fn protected_branches_are_never_deleted() {
    let f = Fixture::new();
    let (_, path, _) = f.task("ORCH-5", 1);
    commit(&path, "a.txt", "a\n");
    f.layer
        .push_branch(&f.repo, &f.remote, "feature/ORCH-5")
        .expect("push");
    let protected = |e: &GitError| matches!(e, GitError::ProtectedBranch { .. });
    let remote_delete = |branch: &str, base: &str| {
        f.layer
            .delete_remote_branch(&f.repo, &f.remote, branch, base)
    };
    check_refused(remote_delete("main", "main"), protected);
    check_refused(remote_delete("master", "develop"), protected);
    check_refused(remote_delete("develop", "develop"), protected);
    check_refused(remote_delete("feature/ORCH-5", "feature/ORCH-5"), protected);
    check_refused(
        f.layer.delete_local_branch(&f.repo, "main", "main", None),
        protected,
    );
    check_refused(remote_delete("release", "main"), |e| {
        matches!(e, GitError::NotFeatureBranch { .. })
    });

    // The remote's HEAD names its default branch, which is refused too.
    git(
        &f.root,
        &[
            "--git-dir",
            &f.remote,
            "symbolic-ref",
            "HEAD",
            "refs/heads/feature/ORCH-5",
        ],
    );
    check_refused(remote_delete("feature/ORCH-5", "main"), protected);
    assert!(f.remote_tip("refs/heads/feature/ORCH-5").is_some());
    assert!(f.remote_tip("refs/heads/main").is_some());
}

/// The deploy merge on a plain remote: a fast-forward push when the base is
/// behind, a no-op when it already contains the head, a refusal (never a
/// force) when it diverged.
#[test]
fn fast_forward_base_pushes_skips_and_refuses() {
    let f = Fixture::new();
    let main0 = f.seed_main_tip();
    let (one, one_path, _) = f.task("ORCH-1", 1);
    let (two, two_path, _) = f.task("ORCH-2", 1);
    let head1 = commit(&one_path, "one.txt", "1\n");
    commit(&two_path, "two.txt", "2\n");
    let ff = |branch: &str, expected| {
        f.layer
            .fast_forward_base(&f.repo, &f.remote, branch, "main", expected)
    };

    check_refused(ff(&one, Some(main0)), |e| {
        matches!(e, GitError::BranchMoved { .. })
    });
    assert_eq!(
        ff(&one, Some(head1)).expect("merge"),
        FastForward::Pushed {
            from: main0,
            to: head1
        }
    );
    assert_eq!(f.remote_tip("refs/heads/main"), Some(head1));
    assert_eq!(
        ff(&one, None).expect("repeat"),
        FastForward::AlreadyContained {
            base: head1,
            head: head1
        }
    );

    check_refused(ff(&two, None), |e| {
        matches!(e, GitError::NonFastForward { .. })
    });
    assert_eq!(f.remote_tip("refs/heads/main"), Some(head1));
}

/// Hooks in the clone, and a `core.hooksPath` an agent wrote into its
/// config, never run for anything orch does; the same hook does run for a
/// plain git command, so the check can fail.
#[test]
fn hooks_never_run() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    let mirror = f.mirror();
    let marker = f.root.join("hook-ran");
    let agent_hooks = f.root.join("agent-hooks");
    std::fs::create_dir_all(&agent_hooks).expect("mkdir");
    for dir in [mirror.join("hooks"), agent_hooks.clone()] {
        for hook in [
            "pre-push",
            "post-checkout",
            "reference-transaction",
            "push-to-checkout",
        ] {
            let script = dir.join(hook);
            std::fs::write(
                &script,
                format!("#!/bin/sh\necho {hook} >> {}\n", marker.display()),
            )
            .expect("write hook");
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
        }
    }
    git(
        &mirror,
        &["config", "core.hooksPath", &agent_hooks.to_string_lossy()],
    );

    let (branch, path) = f.names("ORCH-1", 1);
    f.layer
        .add_worktree(&f.repo, "main", &branch, &path)
        .expect("add");
    commit(&path, "a.txt", "a\n");
    f.layer
        .push_branch(&f.repo, &f.remote, &branch)
        .expect("push");
    f.layer
        .fast_forward_base(&f.repo, &f.remote, &branch, "main", None)
        .expect("merge");
    f.layer
        .delete_remote_branch(&f.repo, &f.remote, &branch, "main")
        .expect("delete remote");
    f.layer.remove_worktree(&f.repo, &path).expect("remove");
    f.layer
        .delete_local_branch(&f.repo, &branch, "main", None)
        .expect("delete local");
    assert!(
        !marker.exists(),
        "a hook ran: {:?}",
        std::fs::read_to_string(&marker)
    );

    git(&f.seed, &["checkout", "-q", "-b", "control"]);
    git(
        &f.seed,
        &["config", "core.hooksPath", &agent_hooks.to_string_lossy()],
    );
    git(&f.seed, &["checkout", "-q", "main"]);
    assert!(marker.exists(), "the control hook should have run");
}

/// Fetching the clone updates the remote-tracking refs and never deletes
/// or moves orch's local feature branches, even when the remote lost them.
#[test]
fn mirror_fetch_keeps_local_feature_branches() {
    let f = Fixture::new();
    let (branch, path, _) = f.task("ORCH-1", 1);
    let local = commit(&path, "a.txt", "a\n");
    f.layer
        .push_branch(&f.repo, &f.remote, &branch)
        .expect("push");
    git(
        &f.root,
        &[
            "--git-dir",
            &f.remote,
            "update-ref",
            "-d",
            &format!("refs/heads/{branch}"),
        ],
    );
    commit(&f.seed, "news.txt", "news\n");
    git(&f.seed, &["push", "-q", "origin", "main"]);

    let mirror = f.mirror();
    assert_eq!(
        oid(&git(&mirror, &["rev-parse", "refs/remotes/origin/main"])),
        f.seed_main_tip()
    );
    assert_eq!(
        oid(&git(
            &mirror,
            &["rev-parse", &format!("refs/heads/{branch}")]
        )),
        local
    );
    assert_eq!(
        f.layer.local_branch_tip(&f.repo, &branch).expect("tip"),
        Some(local)
    );
    assert_eq!(git(&path, &["status", "--porcelain"]), "");

    // A file:// URL names the same remote.
    let url = format!("file://{}", f.remote);
    f.layer.ensure_mirror(&f.repo, &url).expect("fetch by URL");
    assert_eq!(
        oid(&git(
            &mirror,
            &["rev-parse", &format!("refs/heads/{branch}")]
        )),
        local
    );
}

#[test]
fn remote_ref_of_missing_branch_is_none() {
    let f = Fixture::new();
    f.mirror();
    let tip = f
        .layer
        .remote_ref(&f.repo, &f.remote, "feature/ORCH-404")
        .expect("ls");
    assert_eq!(tip, None);
    let main = f.layer.remote_ref(&f.repo, &f.remote, "main").expect("ls");
    assert_eq!(main, Some(f.seed_main_tip()));
}

/// An empty remote can be cloned; a worktree needs its base branch first.
#[test]
fn empty_remote_has_no_base_branch() {
    let f = Fixture::new();
    git(&f.root, &["init", "-q", "--bare", "empty.git"]);
    let empty = f.root.join("empty.git");
    let repo = RepoName::parse("empty").expect("valid");
    f.layer
        .ensure_mirror(&repo, &empty.to_string_lossy())
        .expect("clone of an empty remote");
    check_refused(
        f.layer.add_worktree(
            &repo,
            "main",
            "feature/ORCH-1",
            Path::new("worktrees/empty/ORCH-1"),
        ),
        |e| matches!(e, GitError::BaseBranchMissing { .. }),
    );
}

/// Unreachable remotes are errors, never panics; https is a compiled-in
/// transport (the failure comes from the handshake, not from the scheme).
#[test]
fn unreachable_remotes_are_errors() {
    let f = Fixture::new();
    let missing = f.layer.ensure_mirror(&f.repo, "/nonexistent/remote.git");
    check_refused(missing, |e| matches!(e, GitError::Gix { .. }));
    let https = f
        .layer
        .ensure_mirror(&f.repo, "https://127.0.0.1:1/remote.git");
    check_refused(https, |e| {
        matches!(
            e,
            GitError::Gix {
                op: "list remote refs",
                ..
            }
        )
    });
    let (branch, _, _) = f.task("ORCH-1", 1);
    let push = f
        .layer
        .push_branch(&f.repo, "/nonexistent/remote.git", &branch);
    check_refused(push, |e| matches!(e, GitError::Command { .. }));
}
