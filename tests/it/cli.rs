//! The binary on a real file: `orch db check` and `orch queue`.

use std::process::Command;

use orch::domain::{Role, Stage};
use orch::store::{Options, Store};

use crate::support::{new_task, tempdir};

fn orch(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_orch"))
        .args(args)
        .env("ORCH_DATA_DIR", dir)
        .env_remove("ORCH_DB_PATH")
        .output()
        .unwrap()
}

#[test]
fn db_check_and_queue_on_a_file() {
    let dir = tempdir();
    let out = orch(dir.path(), &["db", "check"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: 0 tasks"));
    {
        let store = Store::open(dir.path().join("orch.redb"), Options::default(), 5).unwrap();
        store
            .write(6, |tx| {
                let a = tx.create_task(new_task("ORCH-1", "r", &[]))?;
                tx.set_stage(a.id, Stage::Development)?;
                let b = tx.create_task(new_task("ORCH-2", "r", &[]))?;
                tx.set_stage(b.id, Stage::Analysis)?;
                tx.enqueue(b.id, Role::Analyst, None)
            })
            .unwrap();
    }
    let out = orch(dir.path(), &["queue"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["jobs"]["queued"], 1);
    assert_eq!(
        v["serial_gate"]["per_repo"]["r"]["active_task"]["work_item_id"],
        "ORCH-1"
    );
    assert_eq!(v["serial_gate"]["per_repo"]["r"]["waiting_count"], 1);
    let out = orch(dir.path(), &["db", "check"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("ok: 2 tasks, 1 jobs"),
        "{out:?}"
    );
}

#[test]
fn bad_switch_is_a_usage_error() {
    let dir = tempdir();
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .args(["queue"])
        .env("ORCH_DATA_DIR", dir.path())
        .env("ORCH_SERIAL_GATE_ENABLED", "perhaps")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("ORCH_SERIAL_GATE_ENABLED"));
    assert!(
        !dir.path().join("orch.redb").exists(),
        "bad input changes nothing"
    );
}

#[test]
fn a_held_file_is_named() {
    let dir = tempdir();
    let _held = Store::open(dir.path().join("orch.redb"), Options::default(), 1).unwrap();
    let out = orch(dir.path(), &["db", "check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("held by another orch process"),
        "{out:?}"
    );
}

/// While `orch serve` holds the file, `orch task …` and `orch queue` go
/// through its HTTP API.
#[test]
fn task_commands_reach_a_running_server() {
    let dir = tempdir();
    let root = dir.path().canonicalize().unwrap();
    let remote = crate::world::bare_remote(&root, "r");
    std::fs::write(
        root.join("orch.toml"),
        format!(
            "[[repo]]\nname = \"r\"\nremote = \"{}\"\n",
            remote.display()
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sleepy = crate::world::demo_agent_with("ORCH_DEMO_SLEEP_MS=60000");
    let env = |c: &mut Command| {
        c.env("ORCH_DATA_DIR", root.join("data"))
            .env("ORCH_CONFIG", root.join("orch.toml"))
            .env("ORCH_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("ORCH_AGENT_CMD", &sleepy)
            .env("ORCH_STOP_GRACE_SECS", "1")
            .env_remove("ORCH_DB_PATH")
            .env_remove("ORCH_API_TOKEN");
    };
    let mut serve = Command::new(env!("CARGO_BIN_EXE_orch"));
    env(&mut serve);
    let mut serve = serve
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let run = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_orch"));
        env(&mut c);
        c.args(args).output().unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "orch serve did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = run(&[
        "task",
        "start",
        "ORCH-1",
        "--repo",
        "r",
        "--title",
        "over http",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"], "created");
    let out = run(&["task", "show", "ORCH-1"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["task"]["title"], "over http");
    let out = run(&["queue"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["stop"]["enabled"].as_bool().unwrap());
    let out = run(&["task", "stop", "ORCH-1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["task", "show", "ORCH-404"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(serve.wait().unwrap().success());
    let store = Store::open(root.join("data/orch.redb"), Options::default(), 0).unwrap();
    let t = store.read(|rx| rx.task(1)).unwrap().unwrap();
    assert!(t.cancel.is_some(), "the STOP reached the server");
}

/// `orch db backup` writes a copy that opens and checks clean; `orch db
/// compact` keeps every record.
#[test]
fn backup_and_compact() {
    let dir = tempdir();
    {
        let store = Store::open(dir.path().join("orch.redb"), Options::default(), 5).unwrap();
        for i in 1..=20 {
            store
                .write(6, |tx| {
                    tx.create_task(new_task(&format!("ORCH-{i}"), "r", &[]))
                        .map(|_| ())
                })
                .unwrap();
        }
    }
    let copy = dir.path().join("backup.redb");
    let out = orch(dir.path(), &["db", "backup", copy.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let again = orch(dir.path(), &["db", "backup", copy.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1), "a backup never overwrites");
    let backup = Store::open(&copy, Options::default(), 7).unwrap();
    let report = backup.check().unwrap();
    assert!(report.ok() && report.tasks == 20, "{report:?}");
    drop(backup);
    let out = orch(dir.path(), &["db", "compact"]);
    assert!(out.status.success(), "{out:?}");
    let out = orch(dir.path(), &["db", "check"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("ok: 20 tasks"),
        "{out:?}"
    );
}
