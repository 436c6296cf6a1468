//! The integration tests: one binary, one module per area.

mod agent;
mod claim;
mod cli;
mod crash;
mod docs;
mod e2e;
mod fakes;
mod git;
mod gitea;
mod http;
mod keys;
mod model;
mod pipeline;
mod plane;
mod reaper;
mod recovery;
mod stop;
mod stop_crash;
mod support;
mod webhooks;
mod world;
