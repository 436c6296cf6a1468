//! Binding and running the server. Binding is separate from serving so
//! `orch serve` can refuse a bad address (exit 2) or report a taken port
//! (exit 1) before it opens the store, and so tests can bind port 0 and
//! learn the real port.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::{ClaimStats, HttpState, host, router};
use crate::config::Settings;
use crate::runtime::Runtime;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "refusing to serve the HTTP API on {addr} without ORCH_API_TOKEN: set a token, or bind a loopback address (ORCH_HTTP_ADDR=127.0.0.1:8787)"
    )]
    OffLoopbackWithoutToken { addr: SocketAddr },
    #[error("cannot listen on {addr} (ORCH_HTTP_ADDR): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Refuses an address reachable from other machines unless a token guards
/// the API: without one, anyone on the network could start work.
pub fn check_bind(settings: &Settings) -> Result<(), HttpError> {
    let addr = settings.http_addr;
    if settings.api_token.is_none() && !host::is_loopback(addr.ip()) {
        return Err(HttpError::OffLoopbackWithoutToken { addr });
    }
    Ok(())
}

/// A bound listener, not yet serving.
#[derive(Debug)]
pub struct Listener {
    inner: TcpListener,
    addr: SocketAddr,
}

impl Listener {
    /// Checks the address (see `check_bind`) and binds it.
    pub async fn bind(settings: &Settings) -> Result<Self, HttpError> {
        check_bind(settings)?;
        let wanted = settings.http_addr;
        let inner = TcpListener::bind(wanted)
            .await
            .map_err(|source| HttpError::Bind {
                addr: wanted,
                source,
            })?;
        let addr = inner.local_addr().map_err(|source| HttpError::Bind {
            addr: wanted,
            source,
        })?;
        Ok(Self { inner, addr })
    }

    /// The bound address, with the real port when port 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Serves the API until `rt.shutdown` turns true, then stops accepting,
/// lets requests in flight finish and returns.
pub async fn serve(
    listener: Listener,
    rt: Arc<Runtime>,
    claims: Arc<ClaimStats>,
) -> std::io::Result<()> {
    let mut shutdown = rt.shutdown.subscribe();
    let app = router(HttpState::new(rt, listener.addr, claims));
    tracing::info!(addr = %listener.addr, "HTTP API listening");
    axum::serve(listener.inner, app)
        .with_graceful_shutdown(async move {
            // A dropped sender also ends the wait: nothing can serve then.
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
}
