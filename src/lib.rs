//! orch: drives AI coding agents through a gated pipeline. See
//! `docs/ARCHITECTURE.md` for the module map and its invariants.

pub mod agent;
pub mod cli;
pub mod domain;
