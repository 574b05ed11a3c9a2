//! Standing by: a server whose PostgreSQL store another server holds waits for the advisory
//! lock, trying again every [`STANDBY_POLL`], and meanwhile answers every hello on its
//! listener with [`HandshakeError::Standby`], naming the active server, so clients and
//! workers given several addresses move on at once instead of waiting for a timeout.

use std::future::Future;
use std::time::Duration;

use buildcat_proto::{FrameCodec, HandshakeError, Hello, HelloReply};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Framed;
use tracing::{debug, info, warn};

use super::ServerError;
use crate::store::postgres::{Opened, PostgresOptions, PostgresStore};

/// How often a standby tries the lock: a takeover happens within about this long of the
/// active server's session ending, and a few connections a second cost the database
/// nothing.
const STANDBY_POLL: Duration = Duration::from_millis(500);

/// The largest hello a standby reads: a hello is a few dozen bytes.
const HELLO_MAX_FRAME: usize = 64 * 1024;

/// What a standby says when the active server has not stored its address.
const UNKNOWN_ACTIVE: &str = "not known (it has not stored its address)";

/// Waits until this server holds the store, refusing every peer on `listener` meanwhile
/// and answering every request on `http` (when given; over TLS with its acceptor) with a
/// 503 that names the active server; `None` if `shutdown` came first.
pub(crate) async fn become_active(
    options: &PostgresOptions,
    listener: &TcpListener,
    http: Option<(&TcpListener, Option<TlsAcceptor>)>,
    acceptor: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> Result<Option<PostgresStore>, ServerError> {
    tokio::pin!(shutdown);
    let mut active: Option<String> = None;
    let mut waited = false;
    // The HTTP answers run beside the polls, not restarted with each: a TLS handshake in
    // progress must not be cut every STANDBY_POLL. They name the active server as it is now.
    let (active_now, active_seen) = watch::channel(UNKNOWN_ACTIVE.to_owned());
    let mut answering: Option<crate::http::standby::Answering> = None;
    loop {
        let attempt = {
            let options = options.clone();
            tokio::task::spawn_blocking(move || PostgresStore::try_open(&options))
        };
        tokio::pin!(attempt);
        let refuse = Refuser {
            acceptor: acceptor.clone(),
            active: active.clone().unwrap_or_else(|| UNKNOWN_ACTIVE.to_owned()),
            limit: handshake_timeout,
        };
        // Until the first try says whether another server holds the store, peers wait in
        // the listen backlog: refusing them as a standby's would send them away from a
        // server that may be about to serve them (the only one, most often).
        let refusing = async {
            if waited {
                refuse.serve(listener).await;
            }
            std::future::pending::<()>().await;
        };
        let opened = tokio::select! {
            joined = &mut attempt => joined.map_err(|e| ServerError::Internal(e.to_string()))?,
            () = refusing => unreachable_accept(),
            () = &mut shutdown => return Ok(None),
        };
        match opened {
            Ok(Opened::Active(store)) => {
                if waited {
                    info!(
                        term = store.term(),
                        previous = active.as_deref().unwrap_or(UNKNOWN_ACTIVE),
                        "standby: taking over as the active server"
                    );
                }
                return Ok(Some(*store));
            }
            Ok(Opened::Standby { active: now }) => {
                if !waited || now != active {
                    info!(
                        active = now.as_deref().unwrap_or(UNKNOWN_ACTIVE),
                        "standby: waiting for the active server"
                    );
                }
                waited = true;
                active_now.send_replace(now.clone().unwrap_or_else(|| UNKNOWN_ACTIVE.to_owned()));
                active = now;
                if let (None, Some((http, tls))) = (&answering, &http) {
                    match crate::http::standby::answer_on(http, tls.clone(), active_seen.clone()) {
                        Ok(started) => answering = Some(started),
                        Err(error) => warn!(%error, "standby: cannot answer on the http port yet"),
                    }
                }
            }
            // At start a bad address or password is the operator's to fix; once standing
            // by, the database restarting must not end the standby.
            Err(error) if waited => warn!(%error, "standby: could not try the lock"),
            Err(error) => return Err(error.into()),
        }
        let refuse = Refuser {
            acceptor: acceptor.clone(),
            active: active.clone().unwrap_or_else(|| UNKNOWN_ACTIVE.to_owned()),
            limit: handshake_timeout,
        };
        tokio::select! {
            () = tokio::time::sleep(STANDBY_POLL) => {}
            () = refuse.serve(listener) => {}
            () = &mut shutdown => return Ok(None),
        }
    }
}

/// [`Refuser::serve`] never returns; its branch of a `select!` never wins.
fn unreachable_accept() -> Result<Opened, crate::store::StoreError> {
    Err(crate::store::StoreError::Unavailable(
        "the standby's accept loop ended".to_owned(),
    ))
}

/// Answers hellos with a standby's refusal.
#[derive(Clone)]
struct Refuser {
    /// The TLS acceptor when the server takes TLS only.
    acceptor: Option<TlsAcceptor>,
    /// The active server's address, as the refusal names it.
    active: String,
    /// How long a peer has to say hello.
    limit: Duration,
}

impl Refuser {
    /// Accepts connections for as long as it is polled, refusing each in a task of its own.
    async fn serve(&self, listener: &TcpListener) {
        loop {
            match listener.accept().await {
                Ok((socket, peer)) => {
                    debug!(%peer, "standby: refusing a connection");
                    let refuser = self.clone();
                    tokio::spawn(async move { refuser.refuse(socket).await });
                }
                Err(error) => {
                    warn!(%error, "standby: accept failed");
                    tokio::time::sleep(STANDBY_POLL).await;
                }
            }
        }
    }

    /// Reads the hello (through TLS when the server takes TLS only) and refuses it.
    async fn refuse(self, socket: TcpStream) {
        let limit = self.limit;
        match self.acceptor.clone() {
            None => {
                let _ = tokio::time::timeout(limit, self.answer(socket)).await;
            }
            Some(acceptor) => {
                let _ = tokio::time::timeout(limit, async move {
                    if let Ok(stream) = acceptor.accept(socket).await {
                        self.answer(stream).await;
                    }
                })
                .await;
            }
        }
    }

    /// The hello, answered with the refusal.
    async fn answer<S: AsyncRead + AsyncWrite + Unpin>(&self, stream: S) {
        let mut framed = Framed::new(
            stream,
            FrameCodec::<Hello, HelloReply>::new(HELLO_MAX_FRAME),
        );
        if let Some(Ok(_hello)) = framed.next().await {
            let refusal = HandshakeError::Standby {
                active: self.active.clone(),
            };
            let _ = framed.send(HelloReply::Refused(refusal)).await;
        }
    }
}
