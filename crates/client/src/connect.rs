//! Opening a connection: resolving the address, connecting over TCP and the hello.
//!
//! Everything here happens once, before any request; it ends with a framed socket that has
//! been welcomed and the server's [`Welcome`], which [`connection`](crate::connection) then
//! splits into its reader and writer tasks.

use std::io;
use std::time::Duration;

use buildcat_proto::{
    CodecError, FrameCodec, HandshakeError, Hello, HelloReply, PROTOCOL_VERSION, Role,
    SOFTWARE_VERSION, Welcome,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpStream, lookup_host};
use tokio_util::codec::Framed;
use tracing::debug;

use crate::ClientOptions;
use crate::error::{ClientError, describe_io};
use crate::tls::{self, Stream};

/// The default connect and handshake timeout.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A socket that has not been welcomed yet, framed for the hello.
pub(crate) type HelloFramed = Framed<Stream, FrameCodec<HelloReply, Hello>>;

/// Connects to `addr` and exchanges hellos, each step bounded by its timeout.
///
/// `addr` may list several servers, comma-separated (an active server and its standbys
/// on one PostgreSQL store): they are tried in order, and the first that welcomes the
/// client is used; a standby's refusal moves on to the next at once. If none does, the
/// last one's error is returned.
pub(crate) async fn open(
    addr: &str,
    options: &ClientOptions,
) -> Result<(HelloFramed, Welcome), ClientError> {
    if !addr.contains(',') {
        return open_one(addr, options).await;
    }
    let mut last_error = None;
    for one in addr.split(',').map(str::trim).filter(|one| !one.is_empty()) {
        match open_one(one, options).await {
            Ok(opened) => return Ok(opened),
            Err(error) => {
                debug!(server = one, error = %error, "trying the next server");
                last_error = Some(error);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| ClientError::InvalidAddress {
        addr: addr.to_owned(),
    }))
}

/// Connects to one server and exchanges hellos.
async fn open_one(
    addr: &str,
    options: &ClientOptions,
) -> Result<(HelloFramed, Welcome), ClientError> {
    // Read the TLS files before dialing, so a missing file is reported as such.
    let connector = options
        .tls
        .as_ref()
        .map(tls::TlsOptions::connector)
        .transpose()?;
    let stream = tokio::time::timeout(options.connect_timeout, connect_tcp(addr))
        .await
        .map_err(|_| ClientError::ConnectTimeout {
            addr: addr.to_owned(),
            after: options.connect_timeout,
        })??;
    // Requests are small and the writer task already batches them; Nagle would only delay
    // each batch by a round trip.
    if let Err(error) = stream.set_nodelay(true) {
        debug!(server = addr, error = %error, "could not disable nagle's algorithm");
    }
    let stream = match &connector {
        None => Stream::Plain(stream),
        Some(connector) => tokio::time::timeout(
            options.handshake_timeout,
            tls::handshake(connector, addr, stream),
        )
        .await
        .map_err(|_| ClientError::HandshakeTimeout {
            addr: addr.to_owned(),
            after: options.handshake_timeout,
        })??,
    };
    let mut framed = Framed::new(stream, FrameCodec::new(options.max_frame));
    let welcome = tokio::time::timeout(options.handshake_timeout, handshake(addr, &mut framed))
        .await
        .map_err(|_| ClientError::HandshakeTimeout {
            addr: addr.to_owned(),
            after: options.handshake_timeout,
        })??;
    debug!(
        server = addr,
        software = %welcome.software,
        max_frame = welcome.max_frame,
        "connected to the buildcat server"
    );
    Ok((framed, welcome))
}

/// Resolves `addr` and connects to the first of its addresses that accepts.
async fn connect_tcp(addr: &str) -> Result<TcpStream, ClientError> {
    let targets = match lookup_host(addr).await {
        Ok(targets) => targets,
        // The standard library's parser says InvalidInput for a missing or bad port, before
        // any lookup is made.
        Err(error) if error.kind() == io::ErrorKind::InvalidInput => {
            return Err(ClientError::InvalidAddress {
                addr: addr.to_owned(),
            });
        }
        Err(error) => {
            return Err(ClientError::Resolve {
                addr: addr.to_owned(),
                error,
            });
        }
    };
    let mut last_error = None;
    for target in targets {
        match TcpStream::connect(target).await {
            Ok(stream) => return Ok(stream),
            Err(error) => {
                debug!(server = addr, %target, error = %error, "could not connect");
                last_error = Some(error);
            }
        }
    }
    Err(match last_error {
        Some(error) => ClientError::Connect {
            addr: addr.to_owned(),
            error,
        },
        None => ClientError::Resolve {
            addr: addr.to_owned(),
            error: io::Error::new(io::ErrorKind::NotFound, "the name has no address"),
        },
    })
}

/// Sends the client's hello and reads the server's answer.
async fn handshake(addr: &str, framed: &mut HelloFramed) -> Result<Welcome, ClientError> {
    framed
        .send(Hello::new(Role::Client))
        .await
        .map_err(|error| match error {
            CodecError::Io(error) => lost_in_handshake(addr, &error),
            other => ClientError::Encode(other),
        })?;
    let reply = match framed.next().await {
        Some(Ok(reply)) => reply,
        Some(Err(CodecError::Io(error))) => return Err(lost_in_handshake(addr, &error)),
        Some(Err(error)) => {
            return Err(ClientError::NotBuildcat {
                addr: addr.to_owned(),
                reason: format!("its answer to the hello is not a buildcat reply ({error})"),
            });
        }
        None => {
            return Err(ClientError::NotBuildcat {
                addr: addr.to_owned(),
                reason: "it closed the connection without answering the hello".to_owned(),
            });
        }
    };
    match reply {
        // A server must refuse a hello of another version; one that welcomes it anyway
        // would misread every frame, so the client refuses in its stead.
        HelloReply::Welcome(welcome) if welcome.protocol != PROTOCOL_VERSION => {
            Err(ClientError::HandshakeRefused {
                addr: addr.to_owned(),
                error: HandshakeError::ProtocolMismatch {
                    server: welcome.protocol,
                    server_software: welcome.software,
                    peer: PROTOCOL_VERSION,
                    peer_software: SOFTWARE_VERSION.to_owned(),
                },
            })
        }
        HelloReply::Welcome(welcome) => Ok(welcome),
        HelloReply::Refused(error) => Err(ClientError::HandshakeRefused {
            addr: addr.to_owned(),
            error,
        }),
    }
}

/// The connection broke before the handshake finished.
fn lost_in_handshake(addr: &str, error: &io::Error) -> ClientError {
    if error
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
    {
        return ClientError::Tls {
            addr: addr.to_owned(),
            reason: tls::explain(error),
        };
    }
    ClientError::ConnectionLost {
        addr: addr.to_owned(),
        reason: format!("{} during the handshake", describe_io(error)),
    }
}
