//! The integration tests: one binary, one module per area.

mod agent;
mod claim;
mod cli;
mod crash;
mod e2e;
mod git;
mod http;
mod keys;
mod model;
mod pipeline;
mod reaper;
mod recovery;
mod support;
mod world;
