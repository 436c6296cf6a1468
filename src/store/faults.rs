//! Fault injection for tests. These switches exist so the tests can prove
//! the fail-open and never-fail rules (TC-17, TC-19); nothing in production
//! sets them.

use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct Faults {
    /// Every serial-gate evaluation errors.
    pub serial_gate: AtomicBool,
    /// Every deps-gate evaluation errors.
    pub deps_gate: AtomicBool,
    /// Every snapshot read errors.
    pub snapshot: AtomicBool,
}

impl Faults {
    pub fn set(flag: &AtomicBool, on: bool) {
        flag.store(on, Ordering::SeqCst);
    }

    pub(crate) fn on(flag: &AtomicBool) -> bool {
        flag.load(Ordering::SeqCst)
    }
}

/// A storage backend that behaves like the file until a budget of writes is
/// spent, then fails every write and sync: what the file holds at that point
/// is what a crash at that moment would leave. Crash tests open the store on
/// it, write until it fails, then reopen the same file normally.
#[derive(Debug)]
pub(crate) struct CrashBackend {
    inner: redb::backends::FileBackend,
    budget: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl CrashBackend {
    pub(crate) fn new(
        file: std::fs::File,
        budget: std::sync::Arc<std::sync::atomic::AtomicI64>,
    ) -> std::io::Result<Self> {
        let inner = redb::backends::FileBackend::new(file).map_err(std::io::Error::other)?;
        Ok(Self { inner, budget })
    }

    fn spend(&self) -> std::io::Result<()> {
        if self.budget.fetch_sub(1, Ordering::SeqCst) <= 0 {
            Err(std::io::Error::other(
                "simulated crash: the disk accepts no more writes",
            ))
        } else {
            Ok(())
        }
    }
}

impl redb::StorageBackend for CrashBackend {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.spend()?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> std::io::Result<()> {
        self.spend()?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.spend()?;
        self.inner.write(offset, data)
    }

    fn close(&self) -> std::io::Result<()> {
        self.inner.close()
    }
}
