//! The Plane tracker (SPEC §8.1): the webhook that starts and stops tasks,
//! and the API client orch uses to check, resolve and comment.
//!
//! The handler of `POST /webhooks/plane` runs, in order:
//! [`webhook::verify`] → [`webhook::parse`] → [`Intake::interpret`] (state
//! name, start/stop decision, replay check, repo and work item id) → the
//! start or stop entry point. See `docs/adr/0004-tracker-and-forge.md`.

pub mod client;
pub mod config;
pub mod error;
pub mod html;
pub mod intake;
pub mod retry;
pub mod signature;
pub mod types;
pub mod webhook;

pub use client::PlaneClient;
pub use config::{PlaneApiConfig, PlaneConfig};
pub use error::PlaneError;
pub use intake::{Action, Intake, StartRequest, StopRequest};
pub use retry::RetryPolicy;
pub use signature::Secret;
pub use types::{Blocker, Issue, Replay, State, StateGroup};
pub use webhook::{Decision, PlaneEvent, StateChange, WebhookError};
