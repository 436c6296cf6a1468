//! The pipeline: pure decisions about a finished job, and the exit checks
//! over the artefacts an agent wrote.

pub mod apply;
pub mod checks;
pub mod decide;
pub mod prompt;

pub use decide::{Counters, Decision, Limits, Outcome, decide};
