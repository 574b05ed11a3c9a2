//! Reaching the server: TCP connect, the hello exchange and the registration.
//!
//! Everything here ends in either a registered connection or a [`LinkError`] saying why
//! not; the worker loop decides whether to retry.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use buildcat_client::tls::{self, Stream};
use buildcat_proto::{
    ClientFrame, CodecError, FrameCodec, HandshakeError, Hello, HelloReply, PROTOCOL_VERSION,
    Reply, Request, RequestError, RequestId, Role, SOFTWARE_VERSION, ServerFrame,
    WorkerRegistration,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpStream, lookup_host};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_util::codec::Framed;
use tracing::debug;

/// How long a TCP connect may take before the next address (or attempt) is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the server may take to answer the hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the server may take to answer the registration.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection past the handshake, speaking requests and server frames.
pub(crate) type ServerLink = Framed<Stream, FrameCodec<ServerFrame, ClientFrame>>;

/// Why a connection could not be made or was lost.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    /// The address did not resolve.
    #[error("cannot resolve the address: {0}")]
    Resolve(io::Error),
    /// The address resolved to nothing.
    #[error("the address resolves to no socket address")]
    NoAddress,
    /// No resolved address accepted a connection.
    #[error("cannot connect to {address}: {error}")]
    Connect {
        /// The socket address tried last.
        address: SocketAddr,
        /// Why it failed.
        error: io::Error,
    },
    /// The server did not answer in time.
    #[error("no answer to the {stage} within {limit:?}")]
    Timeout {
        /// What was being waited for.
        stage: &'static str,
        /// How long it waited.
        limit: Duration,
    },
    /// Reading or writing frames failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// The server said it is closing the connection.
    #[error("the server is closing the connection: {0}")]
    Closing(String),
    /// The server refused the hello.
    #[error("the server refused the connection: {0}")]
    Refused(HandshakeError),
    /// The server refused the registration.
    #[error("the server refused the registration: {0}")]
    RegistrationRefused(RequestError),
    /// The server could not store a result; it is sent again on a new connection.
    #[error("the server could not take the result of task {task}: {error}")]
    ResultRefused {
        /// The task whose result was refused, as people name it (`42.3`).
        task: String,
        /// The server's reason.
        error: RequestError,
    },
    /// The server sent something the protocol does not allow here.
    #[error("unexpected frame from the server: {0}")]
    Unexpected(String),
    /// Nothing arrived from the server for too long.
    #[error("heard nothing from the server for {0:?}")]
    Silent(Duration),
    /// The TLS session could not be set up.
    #[error("{0}")]
    Tls(String),
    /// What answered the hello is not a buildcat server (an HTTP server, another service):
    /// retrying may help once the right server is there, but saying so more than once
    /// does not.
    #[error(
        "{address} does not speak the buildcat protocol ({why}); check --host and --port (a buildcat server listens on {default_port} unless started with --port)",
        default_port = buildcat_proto::DEFAULT_PORT
    )]
    NotBuildcat {
        /// The address that answered.
        address: String,
        /// What was wrong with its answer.
        why: CodecError,
    },
}

impl LinkError {
    /// The handshake error if retrying cannot help (the two sides speak different protocols).
    pub(crate) fn fatal(&self) -> Option<&HandshakeError> {
        match self {
            LinkError::Refused(
                error @ (HandshakeError::ProtocolMismatch { .. }
                | HandshakeError::BadMagic
                | HandshakeError::TlsRequired),
            ) => Some(error),
            _ => None,
        }
    }
}

/// What the server said when it registered the worker.
#[derive(Debug)]
pub(crate) struct Registered {
    /// The name the server knows the worker by.
    pub(crate) name: String,
    /// How often to send a heartbeat.
    pub(crate) heartbeat: Duration,
    /// How long the server keeps this worker's task once it stops hearing from it; the
    /// worker's lease on a running task is derived from it.
    pub(crate) reconnect_grace: Duration,
}

/// Connects to `server`, exchanges hellos and registers; ready for the worker loop.
///
/// `server` may list several servers, comma-separated (an active server and its standbys
/// on one PostgreSQL store): they are tried in order and the first that registers the
/// worker is used, so a standby's refusal moves on to the next at once; if none does, the
/// last one's error is returned.
pub(crate) async fn open(
    server: &str,
    max_frame: usize,
    tls_connector: Option<&TlsConnector>,
    request_id: RequestId,
    registration: WorkerRegistration,
) -> Result<(ServerLink, Registered), LinkError> {
    if !server.contains(',') {
        return open_one(server, max_frame, tls_connector, request_id, registration).await;
    }
    let mut last_error = LinkError::NoAddress;
    for one in server
        .split(',')
        .map(str::trim)
        .filter(|one| !one.is_empty())
    {
        let attempt = open_one(
            one,
            max_frame,
            tls_connector,
            request_id,
            registration.clone(),
        );
        match attempt.await {
            Ok(opened) => return Ok(opened),
            Err(error) => {
                debug!(server = one, %error, "trying the next server");
                last_error = error;
            }
        }
    }
    Err(last_error)
}

/// Connects to one server, exchanges hellos and registers.
async fn open_one(
    server: &str,
    max_frame: usize,
    tls_connector: Option<&TlsConnector>,
    request_id: RequestId,
    registration: WorkerRegistration,
) -> Result<(ServerLink, Registered), LinkError> {
    let tcp = connect(server).await?;
    let stream = match tls_connector {
        None => Stream::Plain(tcp),
        Some(connector) => timeout(HELLO_TIMEOUT, tls::handshake(connector, server, tcp))
            .await
            .map_err(|_| LinkError::Timeout {
                stage: "tls handshake",
                limit: HELLO_TIMEOUT,
            })?
            .map_err(|error| LinkError::Tls(error.to_string()))?,
    };
    let mut link = handshake(stream, max_frame)
        .await
        .map_err(|error| match error {
            // Bytes that are no hello reply: another kind of service on that port.
            LinkError::Codec(why) => LinkError::NotBuildcat {
                address: server.to_owned(),
                why,
            },
            other => other,
        })?;
    let registered = register(&mut link, request_id, registration).await?;
    Ok((link, registered))
}

/// Opens a TCP connection to the first address of `server` that answers.
async fn connect(server: &str) -> Result<TcpStream, LinkError> {
    let addresses = lookup_host(server).await.map_err(LinkError::Resolve)?;
    let mut last_error = LinkError::NoAddress;
    for address in addresses {
        match timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                // Frames are small and each is flushed whole; do not hold them back.
                if let Err(error) = stream.set_nodelay(true) {
                    debug!(%address, %error, "cannot disable nagle's algorithm");
                }
                // At debug: "registered" says the worker is in; a connection to something
                // that is not a buildcat server must not read as success on every retry.
                debug!(server = %address, "connected");
                return Ok(stream);
            }
            Ok(Err(error)) => last_error = LinkError::Connect { address, error },
            Err(_) => {
                last_error = LinkError::Connect {
                    address,
                    error: io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer within {CONNECT_TIMEOUT:?}"),
                    ),
                }
            }
        }
    }
    Err(last_error)
}

/// Sends the hello and checks the answer; on welcome, switches to the frames that follow.
async fn handshake(stream: Stream, max_frame: usize) -> Result<ServerLink, LinkError> {
    let mut framed = Framed::new(stream, FrameCodec::<HelloReply, Hello>::new(max_frame));
    framed.send(Hello::new(Role::Worker)).await?;
    let reply = timeout(HELLO_TIMEOUT, framed.next())
        .await
        .map_err(|_| LinkError::Timeout {
            stage: "hello",
            limit: HELLO_TIMEOUT,
        })?
        .ok_or(LinkError::Closed)??;
    match reply {
        HelloReply::Welcome(welcome) if welcome.protocol == PROTOCOL_VERSION => {
            debug!(server_version = %welcome.software, "welcomed");
            Ok(framed.map_codec(FrameCodec::retype))
        }
        HelloReply::Welcome(welcome) => Err(LinkError::Refused(HandshakeError::ProtocolMismatch {
            server: welcome.protocol,
            server_software: welcome.software,
            peer: PROTOCOL_VERSION,
            peer_software: SOFTWARE_VERSION.to_owned(),
        })),
        HelloReply::Refused(error) => Err(LinkError::Refused(error)),
    }
}

/// Sends the registration and waits for the server to accept it.
async fn register(
    link: &mut ServerLink,
    id: RequestId,
    registration: WorkerRegistration,
) -> Result<Registered, LinkError> {
    let request = Request::Register(registration);
    link.send(ClientFrame { id, request }).await?;
    let frame = timeout(REGISTER_TIMEOUT, link.next())
        .await
        .map_err(|_| LinkError::Timeout {
            stage: "registration",
            limit: REGISTER_TIMEOUT,
        })?
        .ok_or(LinkError::Closed)??;
    match frame {
        ServerFrame::Reply {
            id: answered,
            reply,
        } if answered == id => match reply {
            Ok(Reply::Registered {
                name,
                heartbeat_ms,
                reconnect_grace_ms,
            }) => Ok(Registered {
                name,
                // A zero period would make the heartbeat timer spin (and tokio refuses it).
                heartbeat: Duration::from_millis(heartbeat_ms.max(1)),
                reconnect_grace: Duration::from_millis(reconnect_grace_ms),
            }),
            Ok(_) => Err(LinkError::Unexpected(
                "a reply other than `Registered` to the registration".to_owned(),
            )),
            Err(error) => Err(LinkError::RegistrationRefused(error)),
        },
        ServerFrame::Closing(reason) => Err(LinkError::Closing(reason)),
        other => Err(LinkError::Unexpected(format!(
            "{} before the registration was answered",
            describe(&other)
        ))),
    }
}

/// A short description of a frame for error messages (never its payload).
pub(crate) fn describe(frame: &ServerFrame) -> String {
    match frame {
        ServerFrame::Reply { id, .. } => format!("a reply to request {id}"),
        ServerFrame::Assign(assignment) => format!("an assignment of task {}", assignment.label()),
        ServerFrame::Closing(reason) => format!("a closing notice ({reason})"),
        ServerFrame::Cancel { task, attempt, .. } => {
            format!("a cancel of task {task} attempt {attempt}")
        }
        ServerFrame::Event { id, .. } => format!("an event for request {id}"),
    }
}
