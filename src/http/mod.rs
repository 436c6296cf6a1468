//! The HTTP API of `orch serve` (SPEC §9.2): task start, show, list and
//! retry, the agent logs, the `/queue` snapshot, `/healthz` and `/metrics`.
//!
//! The layout is one file per concern: `router` names every route, `auth`
//! is the guard every request passes (Host check, bearer token, JSON-only
//! mutations), `error` maps every failure to its status, and the handlers
//! live in `tasks`, `logs`, `queue`, `health` and `metrics`.
//! `docs/adr/0003-http-api.md` records the design.

mod auth;
mod body;
mod error;
mod health;
mod host;
mod logs;
mod metrics;
mod queue;
mod router;
mod server;
mod stop;
mod tasks;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

pub use error::ApiError;
pub use metrics::ClaimStats;
pub use router::router;
pub use server::{HttpError, Listener, check_bind, serve};

use crate::runtime::Runtime;
use crate::store::ReadTx;

/// The largest request body the server reads; a larger one is refused with
/// 413 before any of it is parsed.
pub const BODY_LIMIT: usize = 1 << 20;

/// What every handler shares.
#[derive(Clone)]
pub struct HttpState {
    rt: Arc<Runtime>,
    /// The address the listener is bound to, with its real port: the Host
    /// check accepts it.
    bound: SocketAddr,
    claims: Arc<ClaimStats>,
}

impl HttpState {
    pub fn new(rt: Arc<Runtime>, bound: SocketAddr, claims: Arc<ClaimStats>) -> Self {
        Self { rt, bound, claims }
    }

    /// Runs a store read on the blocking pool: a read transaction is
    /// synchronous and may walk an index, and the async worker threads have
    /// other requests and the pipeline's workers to serve meanwhile.
    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTx) -> Result<R, ApiError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let store = self.rt.store.clone();
        tokio::task::spawn_blocking(move || store.read(|rx| Ok(f(rx)))).await??
    }
}
