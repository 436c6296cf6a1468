//! The store: every piece of orch's state in one redb file. Only this module
//! knows redb. Each public operation is one write transaction that changes
//! the records and every index derived from them together; a failing
//! operation aborts its transaction, so nothing half-done is ever committed.

mod check;
pub mod codec;
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
        let db = Database::builder()
            .set_cache_size(opts.cache_bytes)
            .create(&path)
            .map_err(|e| StoreError::open(&path, e))?;
        let store = Self {
            db,
            path,
            opts,
            gate_errors: AtomicU64::new(0),
        };
        store.write(now, |tx| meta::prepare(tx))?;
        Ok(store)
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
