//! The pipeline: pure decisions about a finished job, and the exit checks
//! over the artefacts an agent wrote.

pub mod decide;

pub use decide::{Counters, Decision, Limits, Outcome, decide};
