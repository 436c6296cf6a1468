//! The domain vocabulary: identifiers, stages, roles, job statuses and the
//! pipeline registries. It depends on nothing else in the crate.

pub mod ids;
pub mod stage;

pub use ids::{IdError, PlaneIssueId, RepoName, WorkItemId};
pub use stage::{Check, JobStatus, QG_CHECKS, Role, STAGE_TRANSITIONS, Stage, Transition};

/// Milliseconds since the Unix epoch. Time is always passed in, never read
/// inside decisions, so tests control it.
pub type Millis = i64;
