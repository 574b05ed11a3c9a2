//! The HTTP shell: the JSON API under `/api/v1/`, its OpenAPI document, and Prometheus
//! metrics at `/metrics`, served beside the TCP protocol by the same server.
//!
//! It is another shell on the hub: every request becomes one [`Request`](buildcat_proto::Request)
//! through [`CoreHandle::call`] and its reply is shown through the same views
//! ([`buildcat_proto::view`]) as the CLI's `--json`, so a script gets one shape from both. It
//! keeps no farm state of its own.
//!
//! - `api`: the routes and their handlers, and how the server's errors become statuses.
//! - `auth`: the bearer token (or `buildcat_token` cookie), compared in constant time.
//! - `metrics`: the Prometheus text, built at scrape time from `Info` and from the
//!   [`StoreMetrics`] the store writer thread fills and the [`ConnectionCounts`] the TCP
//!   sessions keep.
//! - `openapi`: the OpenAPI 3 document, listing every route.
//! - `previews`: a job's frame previews, listed and the newest served as an image.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::server::CoreHandle;

mod api;
mod auth;
mod metrics;
mod openapi;
mod previews;

pub use metrics::{ConnectionCounts, StoreMetrics};

/// Requests answered at once, at most: far more than a dashboard and a few scrapers need,
/// few enough that the hub's connection table stays small under a flood.
const MAX_IN_FLIGHT: usize = 256;

/// How the HTTP shell runs.
#[derive(Clone, Default)]
pub struct HttpOptions {
    /// The token every request must carry (`Authorization: Bearer TOKEN` or a
    /// `buildcat_token` cookie); `None` serves anyone who can reach the address, which the
    /// CLI allows only on loopback.
    pub token: Option<String>,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token itself.
        f.debug_struct("HttpOptions")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    /// The way into the core, taken away at shutdown: connection tasks may outlive the
    /// server's accept loop (a peer that never finishes its request), and the hub stops
    /// only once every handle is gone.
    pub(crate) core: Arc<RwLock<Option<CoreHandle>>>,
    /// The token requests must carry, if any.
    pub(crate) token: Option<Arc<str>>,
    /// Filled by the store writer thread, read at scrape time.
    pub(crate) store: StoreMetrics,
    /// Kept by the TCP sessions, read at scrape time.
    pub(crate) connections: ConnectionCounts,
    /// Places for requests being answered: each holds a connection to the hub, so a flood
    /// of requests gets 503 instead of piling up connections in the core.
    pub(crate) in_flight: Arc<tokio::sync::Semaphore>,
}

/// Serves the HTTP API and metrics on `listener` until `shutdown` resolves; requests in
/// flight then finish, and the shell drops its handle on the core.
pub(crate) async fn serve(
    listener: TcpListener,
    options: HttpOptions,
    core: CoreHandle,
    store: StoreMetrics,
    connections: ConnectionCounts,
    drain: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let addr = listener
        .local_addr()
        .map_or_else(|e| format!("unknown ({e})"), |addr| addr.to_string());
    let core = Arc::new(RwLock::new(Some(core)));
    let state = AppState {
        core: Arc::clone(&core),
        token: options.token.map(Arc::from),
        store,
        connections,
        in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
    };
    let app = api::router(state);
    info!(%addr, "http api listening");
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let served = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stopping_tx.send(());
    });
    let cut_off = async move {
        match stopping_rx.await {
            Ok(()) => tokio::time::sleep(drain).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        result = served => {
            if let Err(e) = result {
                warn!(error = %e, "the http api stopped");
            }
        }
        () = cut_off => warn!(?drain, "http requests still unfinished at shutdown are cut off"),
    }
    // Whatever connection tasks remain, they no longer keep the hub alive; a request they
    // still make is answered that the server is shutting down.
    if let Ok(mut slot) = core.write() {
        slot.take();
    }
}
