//! orch: drives AI coding agents through a gated pipeline. See
//! `docs/ARCHITECTURE.md` for the module map and its invariants.

pub mod agent;
pub mod cancel;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod forge;
pub mod fsutil;
pub mod gates;
pub mod git;
pub mod gitea;
pub mod http;
pub mod pipeline;
pub mod plane;
pub mod queue;
pub mod runtime;
pub mod store;
pub mod views;
