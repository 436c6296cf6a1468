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
