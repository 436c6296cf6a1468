//! The Gitea forge (SPEC §8.2): an API client for pull requests, merges,
//! the default branch and branch deletion, and the optional webhook that
//! reports pull requests closed without merge. The runtime reaches it
//! through [`crate::forge::Forge`], which hides whether a repo has a forge.

pub mod client;
pub mod config;
pub mod error;
pub mod types;
pub mod webhook;

pub use client::{GiteaClient, Opened};
pub use config::GiteaConfig;
pub use error::GiteaError;
pub use types::{MergeStyle, PullRequest, RepoRef};
pub use webhook::{ClosedPull, GiteaEvent};
