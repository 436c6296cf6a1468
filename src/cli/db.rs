//! `orch db …` and `orch queue` on the store file.

use anyhow::Context;
use clap::Subcommand;

use super::Failure;
use crate::config;
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Verify every index against the records; prints a one-line verdict and
    /// exits 1 if anything is out of step.
    Check,
    /// Copy the store to a new file (offline, like every `db` command).
    Backup {
        /// Where the copy goes; must not exist.
        dest: std::path::PathBuf,
    },
    /// Give the file's free pages back to the filesystem.
    Compact,
}

fn now() -> i64 {
    crate::clock::now_millis()
}

fn open(env: &impl Fn(&str) -> Option<String>) -> Result<Store, Failure> {
    let opts = config::store_options(env).map_err(|e| Failure::Usage(e.into()))?;
    let (data, db) = config::paths(env);
    crate::fsutil::ensure_private_dir(&data)
        .with_context(|| format!("creating data dir {}", data.display()))?;
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    Ok(Store::open(&db, opts, now())?)
}

pub fn run(cmd: DbCommand, env: &impl Fn(&str) -> Option<String>) -> Result<(), Failure> {
    match cmd {
        DbCommand::Backup { dest } => {
            let store = open(env)?;
            let report = store.check()?;
            if !report.ok() {
                return Err(Failure::Runtime(anyhow::anyhow!(
                    "refusing to back up a store that fails its check: {}",
                    report.verdict()
                )));
            }
            let bytes = store.backup(&dest)?;
            println!(
                "backed up {} ({bytes} bytes) to {}",
                store.path().display(),
                dest.display()
            );
            Ok(())
        }
        DbCommand::Compact => {
            let mut store = open(env)?;
            let before = std::fs::metadata(store.path())
                .map(|m| m.len())
                .unwrap_or(0);
            store.compact()?;
            let after = std::fs::metadata(store.path())
                .map(|m| m.len())
                .unwrap_or(0);
            println!(
                "compacted {}: {before} → {after} bytes",
                store.path().display()
            );
            Ok(())
        }
        DbCommand::Check => {
            let store = open(env)?;
            let report = store.check()?;
            println!("{}", report.verdict());
            if report.ok() {
                Ok(())
            } else {
                Err(Failure::Runtime(anyhow::anyhow!(
                    "{} index problem(s) found",
                    report.problems.len()
                )))
            }
        }
    }
}

pub fn queue(env: &impl Fn(&str) -> Option<String>) -> Result<(), Failure> {
    let store = match open(env) {
        Err(Failure::Runtime(e))
            if e.downcast_ref::<crate::store::StoreError>()
                .is_some_and(|s| matches!(s, crate::store::StoreError::Locked { .. })) =>
        {
            // A running `orch serve` holds the file: ask it.
            let settings = super::settings()?;
            let answer = super::client::call(&settings, "GET", "/queue", None)?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            return Ok(());
        }
        other => other?,
    };
    let snap = crate::queue::snapshot(&store, now());
    println!("{}", serde_json::to_string_pretty(&snap)?);
    Ok(())
}
