//! HTTPS for the HTTP shell: when the server speaks TLS, the page, the API and the metrics
//! are served over TLS with the server's own certificate.
//!
//! The protocol's TLS is mutual, but a browser or a Prometheus scraper carries no client
//! certificate, so this side asks for none: the token (`--http-token-file`) is what admits a
//! request here. Handshakes run beside the accept loop, each with a time limit and at most
//! [`MAX_HANDSHAKES`] at once, so a peer that connects and says nothing holds one place for
//! [`HANDSHAKE_LIMIT`] and blocks nobody.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, warn};

/// How long a peer has to finish its TLS handshake: far more than any browser needs, short
/// enough that silent peers do not pile up.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// Handshakes under way at once, at most: the HTTP shell answers at most a few hundred
/// requests at once anyway (`MAX_IN_FLIGHT`), and each handshake holds a socket and a
/// little memory.
const MAX_HANDSHAKES: usize = 64;

/// Finished handshakes waiting for the HTTP server to take them.
const READY: usize = 16;

/// A pause after a failed `accept` (out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A listener that yields connections whose TLS handshake has finished, for `axum::serve`.
pub(crate) struct TlsListener {
    /// Finished handshakes, from the task that accepts and shakes hands.
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    /// The address bound.
    local: SocketAddr,
    /// Ends the accepting task when the listener goes.
    _accepting: AbortOnDrop,
}

/// Aborts the accepting task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl TlsListener {
    /// Accepts on `listener` and shakes hands with `acceptor`.
    ///
    /// # Errors
    /// When the listener's address cannot be read.
    pub(crate) fn new(listener: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (ready_tx, ready) = mpsc::channel(READY);
        let accepting = tokio::spawn(accept(listener, acceptor, ready_tx));
        Ok(TlsListener {
            ready,
            local,
            _accepting: AbortOnDrop(accepting),
        })
    }
}

/// Accepts TCP connections and hands each finished handshake to `ready`, until `ready`
/// closes.
async fn accept(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let places = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let place = tokio::select! {
            place = Arc::clone(&places).acquire_owned() => match place {
                Ok(place) => place,
                Err(_) => return,
            },
            () = ready.closed() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "http: could not accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = ready.closed() => return,
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let _place = place;
            match tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let _ = ready.send((stream, peer)).await;
                }
                Ok(Err(error)) => debug!(%peer, %error, "http: tls handshake failed"),
                Err(_) => debug!(%peer, "http: tls handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accepting task only ends once this listener is gone; wait for the
            // shutdown that drops it.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
