//! The domain vocabulary: identifiers, stages, roles, job statuses and the
//! pipeline registries. It depends on nothing else in the crate.

pub mod cancel;
pub mod ids;
pub mod stage;

pub use cancel::{CancelResolution, CancelStep};
pub use ids::{IdError, PlaneIssueId, RepoName, WorkItemId, task_names};
pub use stage::{Check, JobStatus, QG_CHECKS, Role, STAGE_TRANSITIONS, Stage, Transition};

/// Milliseconds since the Unix epoch. Time is always passed in, never read
/// inside decisions, so tests control it.
pub type Millis = i64;
