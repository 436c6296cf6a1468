//! Cleanup debt (SPEC §7.1): a cancel step that failed (archiving the docs,
//! removing the worktree, deleting the remote branch, telling the tracker)
//! never blocks the cancel; it is recorded here and retried by the reaper
//! with exponential backoff, capped at one hour, at most 50 tries.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::codec::{self, Record};
use super::error::StoreError;
use super::records::EventKind;
use super::tx::{ReadTx, Tx, counter};
use crate::domain::Millis;

/// Tries before a debt is given up.
pub const MAX_DEBT_TRIES: u32 = 50;
/// The first retry waits this long; each failure doubles it.
const FIRST_BACKOFF_MS: i64 = 30_000;
const MAX_BACKOFF_MS: i64 = 3_600_000;

/// What a debt is about, in the order they must be settled.
pub const DEBT_KINDS: [&str; 4] = [
    "preserve_docs",
    "remove_worktree",
    "delete_remote_branch",
    "tell_tracker",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Debt {
    pub task_id: u64,
    pub what: String,
    pub attempts: u32,
    pub last_error: String,
    pub next_at: Millis,
}

impl Record for Debt {
    const KIND: &'static str = "cleanup debt";
    const VERSION: u8 = 1;
}

fn backoff(attempts: u32) -> i64 {
    FIRST_BACKOFF_MS
        .saturating_mul(1i64 << attempts.min(20))
        .min(MAX_BACKOFF_MS)
}

fn kind(what: &str) -> Result<&'static str, StoreError> {
    DEBT_KINDS
        .iter()
        .copied()
        .find(|k| *k == what)
        .ok_or_else(|| StoreError::Invalid(format!("unknown cleanup debt {what:?}")))
}

impl Tx<'_> {
    /// Records a failed attempt: a new debt, or one more try of an old one.
    /// After `MAX_DEBT_TRIES`, or when `permanent` (a refusal that will not
    /// change), the debt is closed and only the events remember it.
    pub fn debt_failed(
        &mut self,
        task_id: u64,
        what: &str,
        error: &str,
        permanent: bool,
    ) -> Result<(), StoreError> {
        let what = kind(what)?;
        let old: Option<Debt> = match self.cleanup_debt.get((task_id, what))? {
            Some(v) => Some(codec::decode(v.value())?),
            None => None,
        };
        let attempts = old.as_ref().map_or(0, |d| d.attempts) + 1;
        let closing = permanent || attempts >= MAX_DEBT_TRIES;
        let verdict = if permanent {
            "refused"
        } else if closing {
            "given up"
        } else {
            "will retry"
        };
        self.event(
            task_id,
            EventKind::CleanupFailed,
            None,
            format!("{what} ({verdict}, try {attempts}): {error}"),
        )?;
        if closing {
            if old.is_some() {
                self.cleanup_debt.remove((task_id, what))?;
                self.bump(counter::CLEANUP_DEBT, -1)?;
            }
            return Ok(());
        }
        let debt = Debt {
            task_id,
            what: what.to_owned(),
            attempts,
            last_error: error.to_owned(),
            next_at: self.now + backoff(attempts - 1),
        };
        self.cleanup_debt
            .insert((task_id, what), codec::encode(&debt)?.as_slice())?;
        if old.is_none() {
            self.bump(counter::CLEANUP_DEBT, 1)?;
        }
        Ok(())
    }

    /// Records a debt due now without a failure (work queued for the
    /// reaper, e.g. telling the tracker after finalize).
    pub fn debt_due(&mut self, task_id: u64, what: &str) -> Result<(), StoreError> {
        let what = kind(what)?;
        if self.cleanup_debt.get((task_id, what))?.is_some() {
            return Ok(());
        }
        let debt = Debt {
            task_id,
            what: what.to_owned(),
            attempts: 0,
            last_error: String::new(),
            next_at: self.now,
        };
        self.cleanup_debt
            .insert((task_id, what), codec::encode(&debt)?.as_slice())?;
        self.bump(counter::CLEANUP_DEBT, 1)
    }

    /// A debt was settled.
    pub fn debt_settled(&mut self, task_id: u64, what: &str) -> Result<(), StoreError> {
        let what = kind(what)?;
        if self.cleanup_debt.remove((task_id, what))?.is_some() {
            self.bump(counter::CLEANUP_DEBT, -1)?;
        }
        Ok(())
    }
}

impl ReadTx {
    /// Every open debt, by task and kind.
    pub fn debts(&self) -> Result<Vec<Debt>, StoreError> {
        let mut out = Vec::new();
        for row in self.cleanup_debt.iter()? {
            out.push(codec::decode(row?.1.value())?);
        }
        Ok(out)
    }

    /// The open debts of one task.
    pub fn debts_of(&self, task_id: u64) -> Result<Vec<Debt>, StoreError> {
        let mut out = Vec::new();
        for row in self.cleanup_debt.range((task_id, "")..(task_id + 1, ""))? {
            out.push(codec::decode(row?.1.value())?);
        }
        Ok(out)
    }

    /// Ids of the most recently cancelled tasks, newest first.
    pub fn recently_cancelled(&self, limit: usize) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        for row in self.cancelled.iter()?.rev().take(limit) {
            out.push(row?.0.value().1);
        }
        Ok(out)
    }

    /// How many tasks were ever cancelled.
    pub fn cancelled_count(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
        Ok(self.cancelled.len()?)
    }

    /// Tasks whose cancel is under way, oldest first, at most `limit`.
    pub fn cancelling(&self, limit: usize) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        for row in self.cancelling.iter()?.take(limit) {
            out.push(row?.0.value());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_doubles_and_caps_at_an_hour() {
        assert_eq!(backoff(0), 30_000);
        assert_eq!(backoff(1), 60_000);
        assert_eq!(backoff(6), 1_920_000);
        assert_eq!(backoff(7), 3_600_000);
        assert_eq!(backoff(49), 3_600_000);
    }
}
