//! The store: every piece of orch's state in one redb file. Only this module
//! knows redb. Each public operation is one write transaction that changes
//! the records and every index derived from them together; a failing
//! operation aborts its transaction, so nothing half-done is ever committed.

mod check;
pub mod codec;
mod debt;
mod error;
mod faults;
mod index;
mod jobs;
mod meta;
pub mod records;
mod snapshot;
pub mod tables;
mod tasks;
mod tx;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, Durability as RedbDurability, ReadableDatabase};

pub use check::CheckReport;
pub use debt::{DEBT_KINDS, Debt, MAX_DEBT_TRIES};
pub use error::StoreError;
pub use faults::Faults;
pub use jobs::{Completion, Lease, ReapOutcome};
pub use records::{Blocked, Cancel, Event, EventKind, Job, Task};
pub use snapshot::{ActiveTask, DepsBlocked, DepsSnapshot, RepoGate, SerialSnapshot, WaitingJob};
pub use tasks::{CancelRequest, NewTask, TaskKey};
pub use tx::{ReadTx, Tx};
pub use writer::Writer;

use crate::domain::Millis;
use crate::gates::GateConfig;

/// The schema version this orch writes. Older files are migrated on open,
/// newer ones refused.
pub const SCHEMA_VERSION: u64 = 1;

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync before the commit returns: for everything that could start or
    /// lose work.
    Immediate,
    /// No fsync: benchmarks and bulk loads only.
    None,
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct Options {
    pub gates: GateConfig,
    pub durability: Durability,
    /// redb page cache in bytes; bounds the process's memory.
    pub cache_bytes: usize,
    pub faults: Arc<Faults>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            gates: GateConfig::default(),
            durability: Durability::Immediate,
            cache_bytes: 64 << 20,
            faults: Arc::new(Faults::default()),
        }
    }
}

/// An open store. Cheap to share behind an `Arc`; redb serialises writers.
pub struct Store {
    db: Database,
    path: PathBuf,
    opts: Options,
    gate_errors: AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens or creates the file, checks its schema version, and rebuilds
    /// the claim indexes when the gate switches in force differ from the
    /// ones the file was indexed with.
    pub fn open(path: impl AsRef<Path>, opts: Options, now: Millis) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        discard_if_never_initialised(&path)?;
        let db = Database::builder()
            .set_cache_size(opts.cache_bytes)
            .create(&path)
            .map_err(|e| StoreError::open(&path, e))?;
        Self::prepared(db, path, opts, now)
    }

    /// Wraps an open database and runs the open-time checks (schema version,
    /// index rebuild on changed switches).
    fn prepared(
        db: Database,
        path: PathBuf,
        opts: Options,
        now: Millis,
    ) -> Result<Self, StoreError> {
        let store = Self {
            db,
            path,
            opts,
            gate_errors: AtomicU64::new(0),
        };
        store.write(now, meta::prepare)?;
        Ok(store)
    }

    /// Opens the file through a backend that fails every write once
    /// `write_budget` writes are spent, simulating a crash at that moment.
    /// For crash-safety tests only.
    pub fn open_crashing(
        path: impl AsRef<Path>,
        opts: Options,
        now: Millis,
        write_budget: Arc<std::sync::atomic::AtomicI64>,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::Db(format!("{}: {e}", path.display())))?;
        let backend = faults::CrashBackend::new(file, write_budget)
            .map_err(|e| StoreError::Db(e.to_string()))?;
        let db = Database::builder()
            .set_cache_size(opts.cache_bytes)
            .create_with_backend(backend)
            .map_err(|e| StoreError::open(&path, e))?;
        Self::prepared(db, path, opts, now)
    }

    /// Compacts the file (offline: the caller holds it). Returns whether
    /// anything was reclaimed.
    pub fn compact(&mut self) -> Result<bool, StoreError> {
        self.db.compact().map_err(|e| StoreError::Db(e.to_string()))
    }

    /// Writes a consistent copy of the store to `dest`, which must not
    /// exist. Offline: this process holds the file and writes nothing while
    /// it copies, and every commit was durable, so the copy is the last
    /// committed state.
    pub fn backup(&self, dest: &Path) -> Result<u64, StoreError> {
        if dest.exists() {
            return Err(StoreError::Conflict(format!(
                "{} exists; a backup never overwrites",
                dest.display()
            )));
        }
        // While this process holds the file nothing else writes it, and
        // this store has no write under way: the file is consistent.
        std::fs::copy(&self.path, dest)
            .map_err(|e| StoreError::Db(format!("copying to {}: {e}", dest.display())))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn gates(&self) -> &GateConfig {
        &self.opts.gates
    }

    pub fn faults(&self) -> &Faults {
        &self.opts.faults
    }

    /// How many gate evaluations failed open since the store was opened.
    pub fn gate_errors(&self) -> u64 {
        self.gate_errors.load(Ordering::Relaxed)
    }

    /// Runs `f` in one write transaction at the store's durability. `Err`
    /// aborts the transaction: no part of a failed operation is committed.
    pub fn write<R>(
        &self,
        now: Millis,
        f: impl FnOnce(&mut Tx<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut f = Some(f);
        let mut out = self.write_many(now, 1, |tx, _| match f.take() {
            Some(f) => f(tx),
            None => Err(StoreError::Db("a single write ran twice".into())),
        })?;
        out.pop()
            .ok_or_else(|| StoreError::Db("a write returned nothing".into()))
    }

    /// Runs `n` operations in one transaction and one commit (group commit).
    /// Any failure aborts all of them.
    pub(crate) fn write_many<R>(
        &self,
        now: Millis,
        n: usize,
        mut f: impl FnMut(&mut Tx<'_>, usize) -> Result<R, StoreError>,
    ) -> Result<Vec<R>, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(match self.opts.durability {
            Durability::Immediate => RedbDurability::Immediate,
            Durability::None => RedbDurability::None,
        })
        .map_err(|e| StoreError::Db(redb::Error::from(e).to_string()))?;
        let result = {
            let mut tx = Tx::open(
                &txn,
                now,
                &self.opts.gates,
                &self.opts.faults,
                &self.gate_errors,
            )?;
            (0..n)
                .map(|i| f(&mut tx, i))
                .collect::<Result<Vec<R>, StoreError>>()
        };
        match result {
            Ok(v) => {
                txn.commit()?;
                Ok(v)
            }
            Err(e) => {
                txn.abort()?;
                Err(e)
            }
        }
    }

    /// Runs `f` on a consistent read snapshot.
    pub fn read<R>(
        &self,
        f: impl FnOnce(&ReadTx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let txn = self.db.begin_read()?;
        let rx = ReadTx::open(&txn, &self.opts.gates)?;
        f(&rx)
    }
}

/// A crash while redb was creating a brand-new file can leave it empty or
/// with a header of zeros: no transaction was ever committed to it, so it is
/// removed and created again rather than refused as "not a redb database".
fn discard_if_never_initialised(path: &Path) -> Result<(), StoreError> {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        return Ok(());
    };
    let mut head = [0u8; 512];
    let mut read = 0;
    while read < head.len() {
        match f.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(StoreError::Db(format!("{}: {e}", path.display()))),
        }
    }
    if head[..read].iter().all(|b| *b == 0) {
        tracing::warn!(path = %path.display(), "store file was never initialised (crash during creation); creating it again");
        std::fs::remove_file(path)
            .map_err(|e| StoreError::Db(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}
