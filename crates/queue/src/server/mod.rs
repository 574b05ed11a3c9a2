//! The tokio shell around the [`Core`]: the server's setup and shutdown, the hub that owns the
//! core task, the store writer, and the TCP front end.
//!
//! ```text
//!  tcp sessions ─┐                   ┌──WriteBatch──► store writer thread (group commit)
//!  http requests ─┼─CoreHandle─► hub ─┤                      │
//!                 │   (Message)  core ◄──────Committed───────┘ (own channel, drained first)
//!                 ◄─────────────ServerFrame (per-connection outbox)
//! ```
//! - [`hub`]: the one task that owns the [`Core`]; shells reach it through a cloneable
//!   [`CoreHandle`]. It awaits in one place only, its `select!`, so no channel cycle can
//!   stop it: commit results have their own unbounded channel (at most one message per
//!   commit), store batches wait in a local backlog, and new inputs are read only while
//!   that backlog is short.
//! - `store_writer`: commits everything queued since its last commit in one transaction,
//!   on its own thread since stores block; generic over [`Store`].
//! - `tcp`: the accept loop and one session per connection (TLS sniffing, hello, a reader
//!   that bounds unfinished frames, a writer that bounds bytes queued).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use buildcat_proto::{DEFAULT_MAX_FRAME, SOFTWARE_VERSION, Timestamp};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{error, info};

use crate::core::{Core, CoreConfig};
use crate::http::{ConnectionCounts, HttpOptions, StoreMetrics, TaskMetrics};
use crate::notify::NotifyOptions;
use crate::store::postgres::{PostgresOptions, PostgresStore};
use crate::store::sqlite::SqliteOptions;
use crate::store::{SqliteStore, Store, StoreError};
use crate::tls::{ServerTls, TlsSetupError};
use hub::NoticeSink;

pub mod hub;
mod standby;
mod store_writer;
mod tcp;

pub use hub::{CoreHandle, Frames, HubClosed, Link};

/// How long a new connection has to say hello: long enough for a loaded machine or a TLS
/// handshake over a slow link, short enough that silent sockets do not pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections beyond this many are refused with a reason; well above a large farm's workers
/// plus its clients, well below the open-file limits servers are given.
const MAX_CONNECTIONS: usize = 20_000;

/// How many store operations one commit takes at most: large enough that a burst of
/// submissions costs few syncs, small enough that one transaction stays quick.
const MAX_BATCH: usize = 10_000;

/// How long a peer has to send the rest of a frame once its length prefix arrived: a 16 MiB
/// frame needs about two minutes at 1 Mbit/s; a peer slower than that holds memory for
/// nothing.
const FRAME_BODY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long requests to the HTTP API in flight at shutdown have to finish: answers take
/// milliseconds; only a peer that stopped sending its request mid-way takes longer.
const HTTP_DRAIN: Duration = Duration::from_secs(5);

/// How a server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The SQLite file holding the jobs.
    pub storage: PathBuf,
    /// Whether commits wait for the disk (turn off only to measure what durability costs).
    pub sync: bool,
    /// The largest frame accepted, in bytes.
    pub max_frame: usize,
    /// How long a new connection has to say hello.
    pub handshake_timeout: Duration,
    /// How long a peer has to finish a frame once its length prefix arrived.
    pub frame_body_timeout: Duration,
    /// Connections beyond this many are refused.
    pub max_connections: usize,
    /// Heartbeats, worker loss and retention.
    pub core: CoreConfig,
    /// How many store operations one commit takes at most.
    pub max_batch: usize,
    /// Queue lengths and memory bounds of the shell; tests shrink them.
    pub capacities: Capacities,
    /// TLS with mutual certificates; `None` for plain TCP.
    pub tls: Option<ServerTls>,
}

impl ServerConfig {
    /// Defaults, with jobs stored in `storage`.
    pub fn new(storage: impl Into<PathBuf>) -> Self {
        ServerConfig {
            storage: storage.into(),
            sync: true,
            max_frame: DEFAULT_MAX_FRAME,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            frame_body_timeout: FRAME_BODY_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            core: CoreConfig::default(),
            max_batch: MAX_BATCH,
            capacities: Capacities::default(),
            tls: None,
        }
    }
}

/// Queue lengths and memory bounds of the shell. Every queue between tasks is bounded; these
/// say by how much.
#[derive(Debug, Clone)]
pub struct Capacities {
    /// Messages from the shells to the core task; a full queue makes sessions wait, which
    /// stops them reading their sockets (backpressure onto the peers).
    pub inputs: usize,
    /// Batches handed to the store writer and not yet taken; more wait in the core task's
    /// backlog.
    pub store_batches: usize,
    /// Store operations the core task may hold back while the writer is busy before it stops
    /// reading new inputs; bounds the memory of a slow disk.
    pub backlog_ops: usize,
    /// Bytes the operations not yet stored may hold (output chunks, results), in the core
    /// task's backlog and in the writer's hands together, before the core task stops
    /// reading new inputs: a worker printing hundreds of MB faster than the disk takes them
    /// waits rather than filling the server's memory.
    pub backlog_bytes: usize,
    /// Frames queued to one connection and not yet encoded; a connection whose queue is full
    /// is closed.
    pub outbox_frames: usize,
    /// Requests one connection may have queued to the core task and not yet handled, so one
    /// busy peer cannot fill the core's queue ahead of everyone else.
    pub queued_requests: usize,
    /// Frames sent to one connection and not yet taken by its writer, past which the shell
    /// stops handing the core that connection's requests until the writer catches up: a
    /// peer that asks and does not read cannot make the core pile up replies for it.
    pub unsent_frames: usize,
    /// Encoded bytes queued to one connection and not yet written to its socket; a peer that
    /// lets more pile up is closed as too slow.
    pub queued_bytes: usize,
    /// Bytes held in unfinished large frames across all connections; a peer whose frame does
    /// not fit is closed with a reason.
    pub unfinished_frame_bytes: usize,
}

impl Default for Capacities {
    fn default() -> Self {
        Capacities {
            // A few thousand: enough that sessions rarely wait, small next to the core's
            // speed (a full queue drains in milliseconds).
            inputs: 8192,
            // The writer gathers everything queued into one commit, so a short queue loses
            // nothing; the backlog takes the rest, bounded in bytes (a batch may hold a
            // 256 KiB chunk of output, so this many is at most 16 MiB).
            store_batches: 64,
            // A few commits' worth: the disk is the bottleneck then, and more only costs
            // memory.
            backlog_ops: 4 * MAX_BATCH,
            // A commit's worth of output chunks (a chunk is at most a few hundred KiB): the
            // disk, not this, sets the pace of a task printing at full speed, and what waits
            // here is held about twice over (lines as received, then joined).
            backlog_bytes: 8 << 20,
            // Replies to one group commit (hundreds per client) fit with room to spare; the
            // session writer empties it as fast as it encodes.
            outbox_frames: 4096,
            // Enough to keep a pipelining client's requests flowing while the core takes
            // turns between connections.
            queued_requests: 32,
            // A burst of replies to one group commit drains in microseconds; a peer that
            // reads nothing holds at most this many replies before its requests wait.
            unsent_frames: 64,
            // Half a default frame: a peer that reads nothing costs at most this plus one
            // frame; one that reads keeps it near empty.
            queued_bytes: DEFAULT_MAX_FRAME / 2,
            // Two maximal frames at once; a farm's frames are far smaller.
            unfinished_frame_bytes: 2 * DEFAULT_MAX_FRAME,
        }
    }
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The storage could not be opened, read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The TLS files could not be used.
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    /// The listener failed.
    #[error("the listener failed: {0}")]
    Listen(#[source] std::io::Error),
    /// An internal task ended unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Opens the store, loads the jobs and serves `listener` until `shutdown` resolves.
///
/// On shutdown: stop accepting, close connections, commit what is in flight, return.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    Server::open(config).await?.serve(listener, shutdown).await
}

/// A server whose storage is open and loaded, ready to serve a listener.
///
/// Opening before binding means a second server on the same storage fails before it
/// accepts anyone.
pub struct Server<S = SqliteStore> {
    /// Settings, kept for the shells.
    config: ServerConfig,
    /// The TLS acceptor, built before the store is opened so a bad key is reported first.
    acceptor: Option<TlsAcceptor>,
    /// The open store, handed to the writer thread when serving starts.
    store: S,
    /// The state rebuilt from the store; owned by the hub once serving starts.
    core: Core,
    /// The HTTP API's listener and settings, when it is served too.
    http: Option<(TcpListener, HttpOptions)>,
    /// Where to POST job ends, if anywhere.
    notify: Option<NotifyOptions>,
}

impl<S> std::fmt::Debug for Server<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("tls", &self.acceptor.is_some())
            .field("jobs", &self.core.job_count())
            .field("http", &self.http.as_ref().map(|(_, options)| options))
            .finish_non_exhaustive()
    }
}

impl Server<SqliteStore> {
    /// Reads the TLS files, opens the SQLite store named in `config` and rebuilds the state
    /// from it.
    pub async fn open(config: ServerConfig) -> Result<Server<SqliteStore>, ServerError> {
        // Read the TLS files first: a missing key is reported before anything else happens.
        let acceptor = config.tls.as_ref().map(ServerTls::acceptor).transpose()?;
        let storage = config.storage.clone();
        let sync = config.sync;
        let store = tokio::task::spawn_blocking(move || {
            SqliteStore::open(&storage, SqliteOptions { sync })
        })
        .await
        .map_err(|e| ServerError::Internal(e.to_string()))??;
        Self::load(config, acceptor, store).await
    }
}

impl Server<PostgresStore> {
    /// Reads the TLS files and becomes the active server of the PostgreSQL store named in
    /// `options`: while another server holds it, stands by, answering every hello on
    /// `listener` with a refusal that names the active server, until that one's session
    /// ends; then rebuilds the state from the store. `None` if `shutdown` came first.
    /// Meanwhile requests on `http` (the HTTP shell's listener, when served without TLS)
    /// are answered 503 with the active server's address.
    ///
    /// `config.storage` is only shown in the log; give it the database as
    /// [`PostgresStore::shown`] would, without a password.
    pub async fn open_postgres(
        config: ServerConfig,
        options: PostgresOptions,
        listener: &TcpListener,
        http: Option<&TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Option<Server<PostgresStore>>, ServerError> {
        let acceptor = config.tls.as_ref().map(ServerTls::acceptor).transpose()?;
        // A standby's HTTP port answers over HTTPS with the server's certificate when the
        // server has TLS, as the HTTP shell will once this server is active.
        let http_tls = match (&http, &config.tls) {
            (Some(_), Some(tls)) => Some(tls.http_acceptor()?),
            _ => None,
        };
        let store = standby::become_active(
            &options,
            listener,
            http.map(|listener| (listener, http_tls)),
            acceptor.clone(),
            config.handshake_timeout,
            shutdown,
        )
        .await?;
        match store {
            Some(store) => {
                info!(
                    term = store.term(),
                    database = store.shown(),
                    "active server of the database"
                );
                Self::load(config, acceptor, store).await.map(Some)
            }
            None => Ok(None),
        }
    }
}

impl<S: Store> Server<S> {
    /// Rebuilds the state from `store`, an already open store of any kind (`config.storage`
    /// and `config.sync` are not used).
    pub async fn with_store(config: ServerConfig, store: S) -> Result<Server<S>, ServerError> {
        let acceptor = config.tls.as_ref().map(ServerTls::acceptor).transpose()?;
        Self::load(config, acceptor, store).await
    }

    /// Loads the jobs and commits what rebuilding the core changed (jobs found started).
    async fn load(
        config: ServerConfig,
        acceptor: Option<TlsAcceptor>,
        mut store: S,
    ) -> Result<Server<S>, ServerError> {
        let mut core_config = config.core.clone();
        // Replies stay well within a frame, whatever the frame limit.
        core_config.max_reply_bytes = core_config.max_reply_bytes.min(config.max_frame / 2);
        let (store, core, startup_ops) = tokio::task::spawn_blocking(move || {
            let loaded = store.load()?;
            let (core, ops) = Core::new(core_config, loaded, Timestamp::now());
            store.commit(&ops)?;
            Ok::<_, StoreError>((store, core, ops.len()))
        })
        .await
        .map_err(|e| ServerError::Internal(e.to_string()))??;
        info!(
            jobs = core.job_count(),
            tasks = core.task_count(),
            changed = startup_ops,
            storage = %config.storage.display(),
            "loaded storage"
        );
        Ok(Server {
            config,
            acceptor,
            store,
            core,
            http: None,
            notify: None,
        })
    }

    /// Serves the HTTP API and metrics ([`crate::http`]) on `listener` too, from the same
    /// core, until the server stops.
    pub fn with_http(mut self, listener: TcpListener, options: HttpOptions) -> Server<S> {
        self.http = Some((listener, options));
        self
    }

    /// POSTs a notification to each of `options.urls` when a job ends ([`crate::notify`]).
    /// Without `options.page`, links point at the HTTP shell's address when it is served.
    pub fn with_notify(mut self, options: NotifyOptions) -> Server<S> {
        self.notify = (!options.urls.is_empty()).then_some(options);
        self
    }

    /// Serves `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        let Server {
            config,
            acceptor,
            store,
            core,
            http,
            notify,
        } = self;
        let mut core = core;
        let addr = listener.local_addr().map_err(ServerError::Listen)?;
        info!(%addr, version = SOFTWARE_VERSION, "buildcat server listening");

        let capacities = &config.capacities;
        let (batches_tx, batches_rx) = mpsc::channel(capacities.store_batches.max(1));
        let (committed_tx, committed_rx) = mpsc::unbounded_channel();
        let store_metrics = StoreMetrics::default();
        let (superseded_tx, mut superseded_rx) = oneshot::channel();
        let writer = store_writer::spawn(
            store,
            batches_rx,
            committed_tx,
            superseded_tx,
            config.max_batch,
            store_metrics.clone(),
        )
        .map_err(|e| ServerError::Internal(format!("could not start the store writer: {e}")))?;
        let mut notices = NoticeSink {
            metrics: http.as_ref().map(|_| TaskMetrics::default()),
            ended: None,
        };
        // With TLS on, the HTTP shell serves HTTPS with the server's certificate (the files
        // were read once already, at open).
        let http_tls = match (&http, &config.tls) {
            (Some(_), Some(tls)) => Some(tls.http_acceptor()?),
            _ => None,
        };
        let notify_task = notify.map(|mut options| {
            if options.page.is_none()
                && let Some(Ok(addr)) = http.as_ref().map(|(listener, _)| listener.local_addr())
            {
                let scheme = if http_tls.is_some() { "https" } else { "http" };
                options.page = Some(format!("{scheme}://{addr}"));
            }
            let (ended_tx, ended_rx) = mpsc::channel(crate::notify::HANDOVER);
            notices.ended = Some(ended_tx);
            info!(urls = options.urls.len(), "notifying job ends");
            tokio::spawn(crate::notify::run(options, ended_rx))
        });
        core.set_notices(notices.wanted());
        let task_metrics = notices.metrics.clone().unwrap_or_default();
        let (handle, hub) = hub::start(core, capacities, batches_tx, committed_rx, notices);
        let hub_task = tokio::spawn(hub);

        let (stop_tx, stop_rx) = watch::channel(false);
        let connections = ConnectionCounts::default();
        let http_task = http.map(|(listener, options)| {
            let mut stop = stop_rx.clone();
            tokio::spawn(crate::http::serve(
                listener,
                http_tls.clone(),
                options,
                handle.clone(),
                crate::http::Measures {
                    store: store_metrics,
                    connections: connections.clone(),
                    tasks: task_metrics,
                },
                HTTP_DRAIN,
                async move {
                    // A closed channel means the server is going away as well.
                    let _ = stop.wait_for(|stopped| *stopped).await;
                },
            ))
        });
        let accept = tcp::accept_loop(
            listener,
            Arc::new(config),
            acceptor,
            handle,
            stop_rx,
            connections,
        );
        let stepped_down = tokio::select! {
            () = accept => None,
            () = shutdown => {
                info!("shutting down");
                None
            }
            Ok(superseded) = &mut superseded_rx => {
                error!(error = %superseded, "stepping down: another server is active on this storage");
                Some(superseded)
            }
        };
        // Sessions see the stop and end; when the last handle is dropped the hub ends, which
        // drops the writer's sender, and the writer commits what is left and ends.
        let _ = stop_tx.send(true);
        if let Some(http_task) = http_task {
            // It holds a handle on the core: the hub ends only once it has let it go (after
            // the requests in flight, for at most `HTTP_DRAIN`).
            http_task
                .await
                .map_err(|e| ServerError::Internal(e.to_string()))?;
        }
        hub_task
            .await
            .map_err(|e| ServerError::Internal(e.to_string()))?;
        if let Some(notify_task) = notify_task {
            // The hub is gone, so its inbox is closed and the notifier returns at once.
            notify_task
                .await
                .map_err(|e| ServerError::Internal(e.to_string()))?;
        }
        tokio::task::spawn_blocking(move || writer.join())
            .await
            .map_err(|e| ServerError::Internal(e.to_string()))?
            .map_err(|_| ServerError::Internal("the store writer panicked".into()))?;
        if let Some(superseded) = stepped_down {
            return Err(ServerError::Store(superseded));
        }
        info!("server stopped");
        Ok(())
    }
}
