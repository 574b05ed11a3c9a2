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
//! - `page`: the web page (one HTML file, its script and style, embedded in the binary),
//!   served without the token: it holds no data, and asks for the token itself.
//! - `login`: trades the token for an HttpOnly cookie, so the page's script never keeps it.
//! - `events`: the live feeds as server-sent events: the farm's generation (woken by the
//!   hub's `watch`, coalesced), a job's events and a task's log (a `Watch` or `Logs {
//!   follow }` on a connection of their own), at most `events::MAX_STREAMS` (64) at once.
//! - `throughput`: tasks finished per minute over the last hour, for the page's chart,
//!   counted from the core's notices with the task metrics.
//! - `previews`: a job's frame previews, listed and the newest served as an image.
//! - `origin`: requests from other sites' pages (a foreign `Origin`, `Sec-Fetch-Site:
//!   cross-site`) may not change anything, and without a token a foreign `Host` (DNS
//!   rebinding) gets no answer; checked before anything else, on every route.
//! - `standby`: what the HTTP port of a standby server answers (503, naming the active
//!   server); not the shell, which runs only on the active server.

use std::future::{Future, IntoFuture};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::server::CoreHandle;

mod api;
mod auth;
mod events;
mod guesses;
mod login;
mod metrics;
mod openapi;
mod origin;
mod page;
mod previews;
pub(crate) mod standby;
mod throughput;
mod tls;

pub use metrics::{ConnectionCounts, StoreMetrics, TaskMetrics};

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

/// What `/metrics` shows beyond `Info`, each filled where it is measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Measures {
    /// Filled by the store writer thread.
    pub(crate) store: StoreMetrics,
    /// Kept by the TCP sessions.
    pub(crate) connections: ConnectionCounts,
    /// Filled by the hub from the core's notices.
    pub(crate) tasks: TaskMetrics,
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
    /// Filled by the hub from the core's notices, read at scrape time.
    pub(crate) tasks: TaskMetrics,
    /// Places for requests being answered: each holds a connection to the hub, so a flood
    /// of requests gets 503 instead of piling up connections in the core.
    pub(crate) in_flight: Arc<tokio::sync::Semaphore>,
    /// Places for live streams, which outlast their request (see [`events::MAX_STREAMS`]).
    pub(crate) streams: Arc<tokio::sync::Semaphore>,
    /// Cancelled when the server stops, so live streams end instead of holding the
    /// graceful shutdown for its whole drain time.
    pub(crate) stopping: tokio_util::sync::CancellationToken,
    /// Tasks finished per minute, kept by the hub with the task metrics.
    pub(crate) throughput: throughput::Throughput,
    /// Wrong tokens per peer address, to slow down guessing.
    pub(crate) guesses: guesses::Guesses,
    /// The server's own scheme and address, which a browser's `Origin` and `Host` must
    /// name (other sites' pages may not steer the farm).
    pub(crate) own: origin::Own,
}

/// Serves the HTTP API and metrics on `listener` until `shutdown` resolves; requests in
/// flight then finish, and the shell drops its handle on the core.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    options: HttpOptions,
    core: CoreHandle,
    measures: Measures,
    drain: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let addr = listener
        .local_addr()
        .map_or_else(|e| format!("unknown ({e})"), |addr| addr.to_string());
    let own = origin::Own {
        https: tls.is_some(),
        listen: listener.local_addr().ok().map(|addr| addr.ip()),
    };
    let stopping = tokio_util::sync::CancellationToken::new();
    let core = Arc::new(RwLock::new(Some(core)));
    let state = AppState {
        streams: Arc::new(tokio::sync::Semaphore::new(events::MAX_STREAMS)),
        stopping: stopping.clone(),
        throughput: measures.tasks.throughput(),
        core: Arc::clone(&core),
        token: options.token.map(Arc::from),
        store: measures.store,
        connections: measures.connections,
        tasks: measures.tasks,
        in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        guesses: guesses::Guesses::default(),
        own,
    };
    let shell_stopping = stopping.clone();
    let state_stopping = stopping;
    // Each request knows its peer's address, for slowing down token guesses.
    let app = api::router(state).into_make_service_with_connect_info::<guesses::PeerAddr>();
    info!(%addr, tls = tls.is_some(), "http api listening");
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let graceful = async move {
        shutdown.await;
        shell_stopping.cancel();
        let _ = stopping_tx.send(());
    };
    let served: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> = match tls {
        None => Box::pin(
            axum::serve(listener, app)
                .with_graceful_shutdown(graceful)
                .into_future(),
        ),
        Some(acceptor) => match tls::TlsListener::new(listener, acceptor) {
            Ok(listener) => Box::pin(
                axum::serve(listener, app)
                    .with_graceful_shutdown(graceful)
                    .into_future(),
            ),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        },
    };
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
    // Live feeds end on `stopping`, cancelled above (or here when the server stopped for
    // another reason).
    state_stopping.cancel();
}
