//! The tokio shell around the [`Core`]: the accept loop, one session per connection, the
//! core task, the store writer and the timers.
//!
//! ```text
//!  sessions ──Input──► core task ──Persist──► writer thread (SQLite, group commit)
//!     ▲                 │   ▲                      │
//!     └──ServerFrame────┘   └──────Persisted───────┘
//! ```
//! Sessions decode frames and forward requests; the core task owns the [`Core`] and is the
//! only place state changes; the writer commits batches on its own thread, since SQLite
//! blocks.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use buildcat_proto::{
    ClientFrame, CodecError, DEFAULT_MAX_FRAME, FrameCodec, HandshakeError, Hello, HelloReply,
    PROTOCOL_VERSION, SOFTWARE_VERSION, ServerFrame, Timestamp, Welcome,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Framed;
use tracing::{debug, error, info, warn};

use crate::core::{ConnId, Core, CoreConfig, Effect, Input, OutputRead, Token};
use crate::store::sqlite::SqliteOptions;
use crate::store::{SqliteStore, Store, StoreError, StoreOp};
use crate::tls::{ServerTls, TlsSetupError};

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
    /// Connections beyond this many are refused.
    pub max_connections: usize,
    /// Heartbeats, worker loss and retention.
    pub core: CoreConfig,
    /// How many store operations one commit takes at most.
    pub max_batch: usize,
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
            handshake_timeout: Duration::from_secs(5),
            max_connections: 20_000,
            core: CoreConfig::default(),
            max_batch: 10_000,
            tls: None,
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

/// What the writer thread is given.
enum WriteItem {
    /// Operations to commit, and the token to report.
    Ops(Vec<StoreOp>, Option<Token>),
    /// A page of job output to read once everything before it is committed; the page goes
    /// back to the core as [`Input::OutputRead`].
    Read(OutputRead),
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
pub struct Server {
    /// Settings.
    config: ServerConfig,
    /// The TLS acceptor, when TLS is on.
    acceptor: Option<TlsAcceptor>,
    /// The open store.
    store: SqliteStore,
    /// The state rebuilt from it.
    core: Core,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("tls", &self.acceptor.is_some())
            .field("jobs", &self.core.job_count())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Reads the TLS files, opens the store and rebuilds the state from it.
    pub async fn open(config: ServerConfig) -> Result<Server, ServerError> {
        // Read the TLS files first: a missing key is reported before anything else happens.
        let acceptor = config.tls.as_ref().map(ServerTls::acceptor).transpose()?;
        let storage = config.storage.clone();
        let sync = config.sync;
        let mut core_config = config.core.clone();
        // Replies stay well within a frame, whatever the frame limit.
        core_config.max_reply_bytes = core_config.max_reply_bytes.min(config.max_frame / 2);
        let (store, core, startup_ops) = tokio::task::spawn_blocking(move || {
            let mut store = SqliteStore::open(&storage, SqliteOptions { sync })?;
            let jobs = store.load()?;
            let (core, ops) = Core::new(core_config, jobs, Timestamp::now());
            store.commit(&ops)?;
            Ok::<_, StoreError>((store, core, ops.len()))
        })
        .await
        .map_err(|e| ServerError::Internal(e.to_string()))??;
        info!(
            jobs = core.job_count(),
            requeued = startup_ops,
            storage = %config.storage.display(),
            "loaded storage"
        );
        Ok(Server {
            config,
            acceptor,
            store,
            core,
        })
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
        } = self;
        serve(listener, config, acceptor, store, core, shutdown).await
    }
}

async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    acceptor: Option<TlsAcceptor>,
    store: SqliteStore,
    core: Core,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let addr = listener.local_addr().map_err(ServerError::Listen)?;
    info!(%addr, version = SOFTWARE_VERSION, "buildcat server listening");

    let (input_tx, input_rx) = mpsc::channel::<Message>(8192);
    let (write_tx, write_rx) = mpsc::channel::<WriteItem>(1024);
    let (stop_tx, stop_rx) = watch::channel(false);
    // Weak: the writer must not keep the core task alive at shutdown (the core task ends
    // when every session is gone, and then the writer ends when the core drops its sender).
    let persisted_tx = input_tx.downgrade();
    let max_batch = config.max_batch;
    let writer = std::thread::Builder::new()
        .name("buildcat-store".into())
        .spawn(move || writer_thread(store, write_rx, persisted_tx, max_batch))
        .map_err(|e| ServerError::Internal(format!("could not start the store writer: {e}")))?;

    let core_task = tokio::spawn(core_task(core, config.core.heartbeat, input_rx, write_tx));
    let accept = accept_loop(listener, Arc::new(config), acceptor, input_tx, stop_rx);
    tokio::select! {
        result = accept => result?,
        () = shutdown => info!("shutting down"),
    }
    // Sessions see the stop and end; when the last one drops its sender the core task ends,
    // which drops the writer's sender, and the writer commits what is left and ends.
    let _ = stop_tx.send(true);
    core_task
        .await
        .map_err(|e| ServerError::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .map_err(|e| ServerError::Internal(e.to_string()))?
        .map_err(|_| ServerError::Internal("the store writer panicked".into()))?;
    info!("server stopped");
    Ok(())
}

/// What the core task receives.
enum Message {
    /// A new connection's outbox.
    Open(ConnId, mpsc::Sender<ServerFrame>),
    /// An input for the core.
    Input(Input),
}

async fn core_task(
    mut core: Core,
    heartbeat: Duration,
    mut inputs: mpsc::Receiver<Message>,
    write_tx: mpsc::Sender<WriteItem>,
) {
    let mut outboxes: HashMap<ConnId, mpsc::Sender<ServerFrame>> = HashMap::new();
    let mut ticker = tokio::time::interval(
        heartbeat
            .min(Duration::from_secs(1))
            .max(Duration::from_millis(10)),
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending_inputs: Vec<Input> = Vec::new();
    loop {
        let message = tokio::select! {
            message = inputs.recv() => match message {
                Some(message) => message,
                None => break,
            },
            _ = ticker.tick() => Message::Input(Input::Tick),
        };
        match message {
            Message::Open(conn, outbox) => {
                outboxes.insert(conn, outbox);
            }
            Message::Input(input) => pending_inputs.push(input),
        }
        while let Some(input) = pending_inputs.pop() {
            if let Input::Disconnected { conn } = &input {
                // Dropping the outbox ends the session's writer, which closes the socket.
                outboxes.remove(conn);
            }
            let effects = core.handle(Timestamp::now(), input);
            for effect in effects {
                match effect {
                    Effect::Send(conn, frame) => {
                        let Some(outbox) = outboxes.get(&conn) else {
                            continue;
                        };
                        if outbox.try_send(frame).is_err() {
                            warn!(
                                conn,
                                "peer reads too slowly or is gone; closing its connection"
                            );
                            outboxes.remove(&conn);
                            pending_inputs.push(Input::Disconnected { conn });
                        }
                    }
                    Effect::Close(conn, reason) => {
                        if let Some(outbox) = outboxes.remove(&conn) {
                            let _ = outbox.try_send(ServerFrame::Closing(reason));
                        }
                    }
                    Effect::Persist { ops, token } => {
                        if write_tx.send(WriteItem::Ops(ops, token)).await.is_err() {
                            error!("the store writer is gone; stopping");
                            return;
                        }
                    }
                    Effect::ReadOutput(read) => {
                        if write_tx.send(WriteItem::Read(read)).await.is_err() {
                            error!("the store writer is gone; stopping");
                            return;
                        }
                    }
                }
            }
        }
    }
    debug!("core task stopped");
}

fn writer_thread(
    mut store: SqliteStore,
    mut items: mpsc::Receiver<WriteItem>,
    persisted: mpsc::WeakSender<Message>,
    max_batch: usize,
) {
    let mut ops: Vec<StoreOp> = Vec::new();
    let mut tokens: Vec<Token> = Vec::new();
    while let Some(first) = items.blocking_recv() {
        let mut item = Some(first);
        let mut read = None;
        while let Some(next) = item.take() {
            match next {
                WriteItem::Ops(more, token) => {
                    ops.extend(more);
                    tokens.extend(token);
                }
                // Served after the batch before it commits, so it sees every change sent
                // before it.
                WriteItem::Read(query) => {
                    read = Some(query);
                    break;
                }
            }
            if ops.len() >= max_batch {
                break;
            }
            item = items.try_recv().ok();
        }
        if !ops.is_empty() || !tokens.is_empty() {
            let result = store.commit(&ops);
            if let Err(e) = &result {
                error!(error = %e, ops = ops.len(), "could not commit to storage");
            }
            ops.clear();
            if !tokens.is_empty() {
                let input = Input::Persisted {
                    tokens: std::mem::take(&mut tokens),
                    result,
                };
                // The core may be gone at shutdown; the data is committed either way.
                if let Some(core) = persisted.upgrade() {
                    let _ = core.blocking_send(Message::Input(input));
                }
            }
        }
        if let Some(read) = read {
            let result = store.read_output(read.job, read.from, read.max_bytes);
            if let Err(e) = &result {
                warn!(error = %e, job = %read.job, "could not read job output");
            }
            if let Some(core) = persisted.upgrade() {
                let _ = core.blocking_send(Message::Input(Input::OutputRead { read, result }));
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    acceptor: Option<TlsAcceptor>,
    inputs: mpsc::Sender<Message>,
    stop: watch::Receiver<bool>,
) -> Result<(), ServerError> {
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let mut next_conn: ConnId = 0;
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: log, wait a little, go on.
                warn!(error = %e, "could not accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        next_conn += 1;
        let conn = next_conn;
        let permit = limit.clone().try_acquire_owned().ok();
        let session = Session {
            conn,
            peer,
            config: config.clone(),
            inputs: inputs.clone(),
            stop: stop.clone(),
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit.as_ref();
            let _ = socket.set_nodelay(true);
            match acceptor {
                None => session.run(socket, permit.is_some()).await,
                Some(acceptor) => {
                    if let Some(stream) = session.tls_handshake(acceptor, socket).await {
                        session.run(stream, permit.is_some()).await;
                    }
                }
            }
        });
    }
}

/// One connection.
struct Session {
    /// Its id in the core.
    conn: ConnId,
    /// Who is on the other end, for logs.
    peer: SocketAddr,
    /// Server settings.
    config: Arc<ServerConfig>,
    /// Where requests go.
    inputs: mpsc::Sender<Message>,
    /// Becomes true at shutdown.
    stop: watch::Receiver<bool>,
}

impl Session {
    /// The TLS handshake, bounded by the handshake timeout. A peer that speaks plain TCP
    /// is answered in plain TCP that TLS is required.
    async fn tls_handshake(
        &self,
        acceptor: TlsAcceptor,
        socket: TcpStream,
    ) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
        let limit = self.config.handshake_timeout;
        let mut first = [0u8; 1];
        match tokio::time::timeout(limit, socket.peek(&mut first)).await {
            Ok(Ok(1)) => {}
            Ok(_) => return None,
            Err(_) => {
                info!(peer = %self.peer, "closing connection: nothing received within {limit:?}");
                return None;
            }
        }
        // 0x16 opens a TLS handshake record; anything else is a plain peer.
        if first[0] != 0x16 {
            warn!(peer = %self.peer, "refused a plain-TCP connection: this server requires TLS");
            let codec = FrameCodec::<Hello, HelloReply>::new(self.config.max_frame);
            let mut framed = Framed::new(socket, codec);
            let _ = tokio::time::timeout(
                limit,
                framed.send(HelloReply::Refused(HandshakeError::TlsRequired)),
            )
            .await;
            return None;
        }
        match tokio::time::timeout(limit, acceptor.accept(socket)).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(e)) => {
                warn!(peer = %self.peer, error = %e, "refused a connection: tls handshake failed");
                None
            }
            Err(_) => {
                info!(peer = %self.peer, "closing connection: tls handshake not done within {limit:?}");
                None
            }
        }
    }

    async fn run<S>(mut self, socket: S, admitted: bool)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let codec = FrameCodec::<Hello, HelloReply>::new(self.config.max_frame);
        let mut framed = Framed::new(socket, codec);
        let hello = tokio::time::timeout(self.config.handshake_timeout, framed.next()).await;
        let hello = match hello {
            Err(_) => {
                info!(peer = %self.peer, "closing connection: no hello within {:?}", self.config.handshake_timeout);
                return;
            }
            Ok(None) => {
                debug!(peer = %self.peer, "connection closed before hello");
                return;
            }
            Ok(Some(Err(CodecError::FrameTooLarge { len, .. }))) if len >> 16 == 0x1603 => {
                warn!(peer = %self.peer, "closing connection: a TLS client connected, but this server runs without TLS (start it with --tls-cert, --tls-key and --client-ca)");
                return;
            }
            Ok(Some(Err(e))) => {
                warn!(peer = %self.peer, error = %e, "closing connection: not a buildcat hello");
                let _ = framed
                    .send(HelloReply::Refused(HandshakeError::BadMagic))
                    .await;
                return;
            }
            Ok(Some(Ok(hello))) => hello,
        };
        if let Err(refusal) = hello.check() {
            warn!(peer = %self.peer, error = %refusal, "refused connection");
            let _ = framed.send(HelloReply::Refused(refusal)).await;
            return;
        }
        if !admitted {
            let limit = u32::try_from(self.config.max_connections).unwrap_or(u32::MAX);
            warn!(peer = %self.peer, limit, "refused connection: too many connections");
            let _ = framed
                .send(HelloReply::Refused(HandshakeError::TooManyConnections {
                    limit,
                }))
                .await;
            return;
        }
        if *self.stop.borrow() {
            let _ = framed
                .send(HelloReply::Refused(HandshakeError::ShuttingDown))
                .await;
            return;
        }
        let welcome = Welcome {
            protocol: PROTOCOL_VERSION,
            software: SOFTWARE_VERSION.to_owned(),
            max_frame: u32::try_from(self.config.max_frame).unwrap_or(u32::MAX),
        };
        if framed.send(HelloReply::Welcome(welcome)).await.is_err() {
            return;
        }
        debug!(peer = %self.peer, conn = self.conn, role = ?hello.role, software = %hello.software, "connected");
        let framed = framed.map_codec(|codec| codec.retype::<ClientFrame, ServerFrame>());
        let (mut sink, mut stream) = framed.split();
        let (outbox, mut outgoing) = mpsc::channel::<ServerFrame>(4096);
        // Weak, so that the core dropping its sender still ends the writer.
        let last_words = outbox.downgrade();
        if self
            .inputs
            .send(Message::Open(self.conn, outbox))
            .await
            .is_err()
            || self
                .inputs
                .send(Message::Input(Input::Connected {
                    conn: self.conn,
                    role: hello.role,
                }))
                .await
                .is_err()
        {
            return;
        }
        let peer = self.peer;
        let mut writer = tokio::spawn(async move {
            while let Some(frame) = outgoing.recv().await {
                let closing = matches!(frame, ServerFrame::Closing(_));
                if sink.feed(frame).await.is_err() {
                    return;
                }
                while let Ok(frame) = outgoing.try_recv() {
                    if sink.feed(frame).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() || closing {
                    let _ = sink.close().await;
                    return;
                }
            }
            let _ = sink.close().await;
        });
        let reason = loop {
            tokio::select! {
                frame = stream.next() => match frame {
                    None => break None,
                    Some(Ok(ClientFrame { id, request })) => {
                        let input = Input::Request { conn: self.conn, id, request };
                        if self.inputs.send(Message::Input(input)).await.is_err() {
                            break Some("server is shutting down".to_owned());
                        }
                    }
                    // A TLS peer that hangs up without close_notify has only closed.
                    Some(Err(CodecError::Io(e))) if e.kind() == std::io::ErrorKind::UnexpectedEof => break None,
                    Some(Err(e)) => {
                        warn!(%peer, conn = self.conn, error = %e, "closing connection: bad frame");
                        break Some(describe(&e));
                    }
                },
                _ = &mut writer => break None,
                _ = self.stop.changed() => break Some("server is shutting down".to_owned()),
            }
        };
        if let (Some(reason), Some(outbox)) = (reason, last_words.upgrade()) {
            let _ = outbox.try_send(ServerFrame::Closing(reason));
        }
        let _ = self
            .inputs
            .send(Message::Input(Input::Disconnected { conn: self.conn }))
            .await;
        // Let the writer flush a last frame; a peer that reads nothing gets 5 s, then the
        // writer (and with it the socket) is dropped.
        if tokio::time::timeout(Duration::from_secs(5), &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
        debug!(%peer, conn = self.conn, "disconnected");
    }
}

fn describe(error: &CodecError) -> String {
    format!("protocol error: {error}")
}
