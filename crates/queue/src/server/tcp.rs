//! The TCP front end: the accept loop and one [`Session`] per connection.
//!
//! A session sniffs TLS, takes the hello, then runs a reader (this task) that hands requests
//! to the hub and a writer (a task of its own) that encodes the connection's frames and
//! writes them out. Memory per peer is bounded in bytes on both sides:
//! - reading: a frame larger than the read buffer is received into a buffer of its own,
//!   paid for from a budget shared by all connections ([`Capacities::unfinished_frame_bytes`])
//!   and finished within [`ServerConfig::frame_body_timeout`]; the read buffer never grows
//!   past a few kilobytes, so nothing stays allocated after a large frame;
//! - writing: the writer encodes frames as they arrive and closes a peer that leaves more
//!   than [`Capacities::queued_bytes`] unread.
//!
//! [`Capacities::unfinished_frame_bytes`]: super::Capacities::unfinished_frame_bytes
//! [`Capacities::queued_bytes`]: super::Capacities::queued_bytes

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use buildcat_proto::{
    ClientFrame, CodecError, FrameCodec, HandshakeError, Hello, HelloReply, PROTOCOL_VERSION,
    SOFTWARE_VERSION, ServerFrame, Welcome,
};
use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::{Decoder, Encoder, Framed, FramedParts};
use tracing::{debug, info, warn};

use super::ServerConfig;
use super::hub::{CoreHandle, Frames};
use crate::core::ConnId;
use crate::http::ConnectionCounts;

/// How long the accept loop waits after a failed accept (out of file descriptors and the
/// like) before trying again: long enough not to spin, short enough to recover at once.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// How long a closing session waits for its writer to send the last frames; a peer that
/// reads nothing is cut off after this.
const WRITER_DRAIN: Duration = Duration::from_secs(5);

/// The largest hello accepted: a hello is a few dozen bytes, so a peer announcing more is
/// not a buildcat peer, and nothing large is buffered for it.
const HELLO_MAX_FRAME: usize = 64 * 1024;

/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// A TLS record's first two bytes (handshake, version 3.x) as the top half of a length
/// prefix: how a TLS client looks to a plain-TCP server.
const TLS_RECORD_PREFIX: usize = 0x1603;

/// Bytes of a frame's length prefix.
const PREFIX_LEN: usize = 4;

/// The read buffer each connection keeps: frames up to this size (nearly all of them) are
/// read in place; larger ones get a buffer of their own, paid for from the shared budget.
const READ_BUFFER: usize = 8 * 1024;

/// The write buffer a connection starts with and returns to once it has written a burst, so
/// a large reply does not stay allocated.
const WRITE_BUFFER: usize = 8 * 1024;

/// Accepts connections until the listener fails for good (never, in practice) and starts a
/// session for each.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    acceptor: Option<TlsAcceptor>,
    hub: CoreHandle,
    stop: watch::Receiver<bool>,
    counts: ConnectionCounts,
) {
    let connections = Arc::new(Semaphore::new(config.max_connections));
    let budget = config
        .capacities
        .unfinished_frame_bytes
        .max(config.max_frame)
        .min(Semaphore::MAX_PERMITS);
    let frame_budget = Arc::new(Semaphore::new(budget));
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "could not accept a connection");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        // Over the cap, the peer still gets a hello reply that says why.
        let admission = Arc::clone(&connections).try_acquire_owned().ok();
        let session = Session {
            peer,
            config: Arc::clone(&config),
            hub: hub.clone(),
            stop: stop.clone(),
            frame_budget: Arc::clone(&frame_budget),
            counts: counts.clone(),
        };
        let acceptor = acceptor.clone();
        tokio::spawn(session.serve(socket, acceptor, admission));
    }
}

/// One connection.
struct Session {
    /// Who is on the other end, for logs.
    peer: SocketAddr,
    /// Limits and timeouts.
    config: Arc<ServerConfig>,
    /// The way into the core.
    hub: CoreHandle,
    /// Becomes true at shutdown.
    stop: watch::Receiver<bool>,
    /// Bytes of unfinished large frames all connections may hold, shared by all sessions.
    frame_budget: Arc<Semaphore>,
    /// Open connections by role, for `/metrics`.
    counts: ConnectionCounts,
}

impl Session {
    /// Runs the connection to its end; `admission` is its place under the connection cap,
    /// `None` when the server is full.
    async fn serve(
        self,
        socket: TcpStream,
        acceptor: Option<TlsAcceptor>,
        admission: Option<OwnedSemaphorePermit>,
    ) {
        let admitted = admission.is_some();
        let _ = socket.set_nodelay(true);
        match acceptor {
            None => self.run(socket, admitted).await,
            Some(acceptor) => {
                if let Some(stream) = self.tls_handshake(acceptor, socket).await {
                    self.run(stream, admitted).await;
                }
            }
        }
        // The place under the cap is free again only once the socket is gone.
        drop(admission);
    }

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
                info!(peer = %self.peer, ?limit, "closing connection: nothing received in time");
                return None;
            }
        }
        if first[0] != TLS_HANDSHAKE_RECORD {
            warn!(peer = %self.peer, "refused a plain-TCP connection: this server requires TLS");
            let codec = FrameCodec::<Hello, HelloReply>::new(HELLO_MAX_FRAME);
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
            Ok(Err(error)) => {
                warn!(peer = %self.peer, %error, "refused a connection: tls handshake failed");
                None
            }
            Err(_) => {
                info!(peer = %self.peer, ?limit, "closing connection: tls handshake not done in time");
                None
            }
        }
    }

    /// The hello, then the connection's requests until either side ends it.
    async fn run<S>(mut self, socket: S, admitted: bool)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Some((hello, parts)) = self.handshake(socket, admitted).await else {
            return;
        };
        let Ok((link, frames)) = self.hub.open(hello.role).await else {
            return;
        };
        let _counted = self.counts.count(hello.role);
        let conn = link.conn();
        let peer = self.peer;
        debug!(%peer, conn, role = ?hello.role, software = %hello.software, "connected");
        let FramedParts { io, read_buf, .. } = parts;
        let (read_half, write_half) = tokio::io::split(io);
        let mut reader = FrameReader {
            io: read_half,
            buffer: read_buf,
            codec: FrameCodec::new(self.config.max_frame),
            max_frame: self.config.max_frame,
            budget: Arc::clone(&self.frame_budget),
            body_timeout: self.config.frame_body_timeout,
        };
        let writer = FrameWriter {
            io: write_half,
            codec: FrameCodec::new(self.config.max_frame),
            max_queued: self.config.capacities.queued_bytes,
            conn,
            peer,
        };
        let mut writer = tokio::spawn(writer.run(frames));
        // The writer's handle may be awaited once only: polling a finished JoinHandle again
        // panics ("JoinHandle polled after completion").
        let mut writer_ended = false;
        let reason = loop {
            tokio::select! {
                frame = reader.next(), if link.has_room() => match frame {
                    Ok(Some(ClientFrame { id, request })) => {
                        if link.request(id, request).await.is_err() {
                            break Some("server is shutting down".to_owned());
                        }
                    }
                    Ok(None) => break None,
                    // A TLS peer that hangs up without close_notify has only closed.
                    Err(ReadError::Codec(CodecError::Io(error)))
                        if error.kind() == std::io::ErrorKind::UnexpectedEof => break None,
                    Err(error) => {
                        warn!(%peer, conn, %error, "closing connection");
                        break Some(error.to_string());
                    }
                },
                // The peer has not taken what it was sent: serve it more only once it has.
                () = link.room(), if !link.has_room() => {}
                _ = &mut writer => {
                    writer_ended = true;
                    break None;
                }
                _ = self.stop.changed() => break Some("server is shutting down".to_owned()),
            }
        };
        drop(reader);
        match reason {
            Some(reason) => link.close_with(reason).await,
            None => link.close().await,
        }
        // Let the writer send the last frames; a peer that reads nothing gets a few seconds,
        // then the writer (and with it the socket) is dropped.
        if !writer_ended
            && tokio::time::timeout(WRITER_DRAIN, &mut writer)
                .await
                .is_err()
        {
            writer.abort();
        }
        debug!(%peer, conn, "disconnected");
    }

    /// Takes the hello and answers it; returns the hello and the connection's parts (with
    /// any bytes read past the hello) once the peer is welcome.
    async fn handshake<S>(
        &self,
        socket: S,
        admitted: bool,
    ) -> Option<(Hello, FramedParts<S, FrameCodec<Hello, HelloReply>>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let peer = self.peer;
        let limit = self.config.handshake_timeout;
        let mut framed = Framed::new(
            socket,
            FrameCodec::<Hello, HelloReply>::new(HELLO_MAX_FRAME),
        );
        let hello = match tokio::time::timeout(limit, framed.next()).await {
            Err(_) => {
                info!(%peer, ?limit, "closing connection: no hello in time");
                return None;
            }
            Ok(None) => {
                debug!(%peer, "connection closed before hello");
                return None;
            }
            Ok(Some(Err(CodecError::FrameTooLarge { len, .. })))
                if len >> 16 == TLS_RECORD_PREFIX =>
            {
                warn!(%peer, "closing connection: a TLS client connected, but this server runs without TLS (start it with --tls-cert, --tls-key and --client-ca)");
                return None;
            }
            Ok(Some(Err(error))) => {
                warn!(%peer, %error, "closing connection: not a buildcat hello");
                let _ = framed
                    .send(HelloReply::Refused(HandshakeError::BadMagic))
                    .await;
                return None;
            }
            Ok(Some(Ok(hello))) => hello,
        };
        let refusal = if let Err(refusal) = hello.check() {
            warn!(%peer, error = %refusal, "refused connection");
            Some(refusal)
        } else if !admitted {
            let limit = u32::try_from(self.config.max_connections).unwrap_or(u32::MAX);
            warn!(%peer, limit, "refused connection: too many connections");
            Some(HandshakeError::TooManyConnections { limit })
        } else if *self.stop.borrow() {
            Some(HandshakeError::ShuttingDown)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            let _ = framed.send(HelloReply::Refused(refusal)).await;
            return None;
        }
        let welcome = Welcome {
            protocol: PROTOCOL_VERSION,
            software: SOFTWARE_VERSION.to_owned(),
            max_frame: u32::try_from(self.config.max_frame).unwrap_or(u32::MAX),
        };
        if framed.send(HelloReply::Welcome(welcome)).await.is_err() {
            return None;
        }
        Some((hello, framed.into_parts()))
    }
}

/// Why reading a connection's frames stopped; the text is the reason the peer is sent.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    /// The bytes are not a frame of a message, or the connection failed.
    #[error("protocol error: {0}")]
    Codec(#[from] CodecError),
    /// The peer sent a length prefix and then too little of the body for too long.
    #[error(
        "protocol error: {received} of a {len}-byte frame arrived within {limit:?}; send frames without pausing"
    )]
    BodyTimeout {
        /// Bytes of the frame received.
        received: usize,
        /// The frame's announced length.
        len: usize,
        /// The deadline that passed.
        limit: Duration,
    },
    /// Other connections hold the memory for unfinished large frames.
    #[error(
        "the server is receiving too many large frames at once; this {len}-byte frame does not fit now, send it again later or in smaller pieces"
    )]
    OverBudget {
        /// The frame's announced length.
        len: usize,
    },
}

/// Reads a connection's frames with bounded memory.
struct FrameReader<R> {
    /// The connection's reading half.
    io: R,
    /// Bytes read and not yet decoded: small frames, and the start of a large one. Kept at
    /// about [`READ_BUFFER`].
    buffer: BytesMut,
    /// Decodes a whole frame once it is in one buffer (the only place that knows bincode).
    codec: FrameCodec<ClientFrame, ServerFrame>,
    /// The largest frame accepted.
    max_frame: usize,
    /// Bytes all connections may hold in unfinished large frames, one permit per byte.
    budget: Arc<Semaphore>,
    /// How long a frame may take to arrive once it has begun.
    body_timeout: Duration,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// The next frame; `Ok(None)` when the peer closed between frames.
    async fn next(&mut self) -> Result<Option<ClientFrame>, ReadError> {
        let mut deadline: Option<Instant> = None;
        loop {
            if let Some(len) = self.announced()? {
                let total = PREFIX_LEN + len;
                if self.buffer.len() >= total {
                    let mut frame = self.buffer.split_to(total);
                    self.shrink();
                    return Self::decode(&mut self.codec, &mut frame).map(Some);
                }
                if total > READ_BUFFER {
                    let deadline = deadline.unwrap_or_else(|| Instant::now() + self.body_timeout);
                    return self.next_large(len, deadline).await.map(Some);
                }
            }
            if self.buffer.capacity() - self.buffer.len() < READ_BUFFER / 2 {
                self.buffer.reserve(READ_BUFFER);
            }
            let read = if self.buffer.is_empty() {
                // Between frames a peer may stay silent; the core closes idle peers.
                self.io.read_buf(&mut self.buffer).await
            } else {
                let deadline = *deadline.get_or_insert_with(|| Instant::now() + self.body_timeout);
                let received = self.buffer.len();
                tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.buffer))
                    .await
                    .map_err(|_| ReadError::BodyTimeout {
                        received,
                        len: self.announced().ok().flatten().unwrap_or(received),
                        limit: self.body_timeout,
                    })?
            };
            match read.map_err(CodecError::Io)? {
                0 if self.buffer.is_empty() => return Ok(None),
                0 => {
                    let buffered = self.buffer.len();
                    return Err(CodecError::Truncated { buffered }.into());
                }
                _ => {}
            }
        }
    }

    /// The length the next frame announces, once its prefix is in; refuses one over the
    /// limit before anything is allocated for it.
    fn announced(&self) -> Result<Option<usize>, ReadError> {
        let Some(prefix) = self.buffer.get(..PREFIX_LEN) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > self.max_frame {
            return Err(CodecError::FrameTooLarge {
                len,
                max: self.max_frame,
            }
            .into());
        }
        Ok(Some(len))
    }

    /// Receives a frame larger than the read buffer into a buffer of its own, paid for from
    /// the shared budget and freed once it is decoded.
    async fn next_large(
        &mut self,
        len: usize,
        deadline: Instant,
    ) -> Result<ClientFrame, ReadError> {
        let permits = u32::try_from(len).map_err(|_| ReadError::OverBudget { len })?;
        let Ok(_held) = Arc::clone(&self.budget).try_acquire_many_owned(permits) else {
            return Err(ReadError::OverBudget { len });
        };
        let total = PREFIX_LEN + len;
        let mut frame = BytesMut::with_capacity(total);
        // The buffer holds only the start of this frame, since the frame does not fit it.
        frame.extend_from_slice(&self.buffer);
        self.buffer = BytesMut::with_capacity(READ_BUFFER);
        while frame.len() < total {
            let received = frame.len();
            // `frame` has exactly `total` bytes of room, so no read takes the next frame.
            let read = tokio::time::timeout_at(deadline, self.io.read_buf(&mut frame))
                .await
                .map_err(|_| ReadError::BodyTimeout {
                    received,
                    len,
                    limit: self.body_timeout,
                })?;
            if read.map_err(CodecError::Io)? == 0 {
                return Err(CodecError::Truncated { buffered: received }.into());
            }
        }
        Self::decode(&mut self.codec, &mut frame)
    }

    /// Decodes one whole frame (prefix and body).
    fn decode(
        codec: &mut FrameCodec<ClientFrame, ServerFrame>,
        frame: &mut BytesMut,
    ) -> Result<ClientFrame, ReadError> {
        match codec.decode(frame)? {
            Some(message) => Ok(message),
            None => Err(CodecError::Truncated {
                buffered: frame.len(),
            }
            .into()),
        }
    }

    /// Gives back a read buffer that grew past its usual size.
    fn shrink(&mut self) {
        if self.buffer.capacity() > 2 * READ_BUFFER && self.buffer.len() < READ_BUFFER {
            let mut smaller = BytesMut::with_capacity(READ_BUFFER);
            smaller.extend_from_slice(&self.buffer);
            self.buffer = smaller;
        }
    }
}

/// Encodes a connection's frames and writes them out, bounded in bytes.
struct FrameWriter<W> {
    /// The connection's writing half.
    io: W,
    /// Encodes frames (the only place that knows bincode).
    codec: FrameCodec<ClientFrame, ServerFrame>,
    /// Encoded bytes the peer may leave unread before it is closed as too slow.
    max_queued: usize,
    /// Its connection, for logs.
    conn: ConnId,
    /// Its peer, for logs.
    peer: SocketAddr,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Writes frames until the outbox closes (the core is done with the connection) or a
    /// `Closing` frame is sent, then shuts the connection down.
    async fn run(mut self, mut frames: Frames) {
        let mut buffer = BytesMut::with_capacity(WRITE_BUFFER);
        let mut open = true;
        let mut unflushed = false;
        let (conn, peer) = (self.conn, self.peer);
        while open || !buffer.is_empty() || unflushed {
            tokio::select! {
                frame = frames.recv(), if open => {
                    let Some(frame) = frame else {
                        open = false;
                        continue;
                    };
                    if buffer.len() >= self.max_queued {
                        warn!(%peer, conn, queued = buffer.len(), "closing connection: peer reads too slowly");
                        return;
                    }
                    open = !matches!(frame, ServerFrame::Closing(_));
                    if let Err(error) = self.codec.encode(frame, &mut buffer) {
                        warn!(%peer, conn, %error, "closing connection: could not send a frame");
                        let reason = format!("the server could not send a reply: {error}");
                        let _ = self.codec.encode(ServerFrame::Closing(reason), &mut buffer);
                        open = false;
                    }
                }
                // One branch both writes and flushes: a TLS stream holds records until
                // flushed, and both need the stream.
                progress = async {
                    if buffer.is_empty() {
                        self.io.flush().await.map(|()| None)
                    } else {
                        self.io.write_buf(&mut buffer).await.map(Some)
                    }
                }, if !buffer.is_empty() || unflushed => {
                    match progress {
                        Ok(Some(0)) | Err(_) => return,
                        Ok(Some(_)) => unflushed = true,
                        Ok(None) => unflushed = false,
                    }
                    if buffer.is_empty() && buffer.capacity() > 2 * WRITE_BUFFER {
                        buffer = BytesMut::with_capacity(WRITE_BUFFER);
                    }
                }
            }
        }
        let _ = self.io.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use buildcat_proto::codec::encode_frame;
    use buildcat_proto::{JobOptions, NewJob, Request};
    use tokio::io::{AsyncWriteExt, DuplexStream};

    use super::*;

    /// A deadline for the body that a test can wait out quickly.
    const SHORT: Duration = Duration::from_millis(200);

    /// The largest frame the test readers accept.
    const MAX: usize = 1 << 20;

    /// A reader over one end of an in-memory pipe with `budget` bytes for large frames.
    fn reader(budget: usize) -> (FrameReader<DuplexStream>, DuplexStream, Arc<Semaphore>) {
        let (ours, theirs) = tokio::io::duplex(4 * MAX);
        let budget = Arc::new(Semaphore::new(budget));
        let reader = FrameReader {
            io: ours,
            buffer: BytesMut::new(),
            codec: FrameCodec::new(MAX),
            max_frame: MAX,
            budget: Arc::clone(&budget),
            body_timeout: SHORT,
        };
        (reader, theirs, budget)
    }

    /// A submission whose frame is about `args` bytes long.
    fn submission(id: u64, args: usize) -> ClientFrame {
        let job = NewJob {
            queue: "q".to_owned(),
            kind: "k".to_owned(),
            name: String::new(),
            submitter: "test@host".to_owned(),
            runs: String::new(),
            options: JobOptions::default(),
            tasks: vec![buildcat_proto::NewTask {
                frames: None,
                args: vec![7; args],
            }],
        };
        ClientFrame {
            id,
            request: Request::Submit(vec![job]),
        }
    }

    #[tokio::test]
    async fn small_and_large_frames_arrive_whole_and_the_budget_comes_back() {
        let (mut reader, mut peer, budget) = reader(MAX);
        let mut bytes = Vec::new();
        for (id, size) in [(1, 10), (2, 100_000), (3, 20), (4, 3 * READ_BUFFER)] {
            bytes.extend(encode_frame(&submission(id, size)).expect("encodes"));
        }
        peer.write_all(&bytes).await.expect("write");
        for id in 1..=4 {
            let frame = reader.next().await.expect("a frame").expect("not closed");
            assert_eq!(frame.id, id);
        }
        assert_eq!(
            budget.available_permits(),
            MAX,
            "every large frame paid back"
        );
        assert!(
            reader.buffer.capacity() <= 2 * READ_BUFFER,
            "the read buffer stays small: {}",
            reader.buffer.capacity()
        );
        drop(peer);
        assert!(reader.next().await.expect("a clean close").is_none());
    }

    #[tokio::test]
    async fn a_frame_over_the_shared_budget_is_refused() {
        let (mut reader, mut peer, budget) = reader(MAX);
        let _others = Arc::clone(&budget)
            .try_acquire_many_owned(u32::try_from(MAX - 1000).expect("fits"))
            .expect("the other connections' frames");
        let frame = encode_frame(&submission(1, 50_000)).expect("encodes");
        peer.write_all(&frame).await.expect("write");
        let error = reader.next().await.expect_err("over budget");
        assert!(matches!(error, ReadError::OverBudget { .. }), "{error:?}");
        assert!(error.to_string().contains("send it again later"), "{error}");
    }

    #[tokio::test]
    async fn a_frame_whose_body_stops_coming_is_refused_at_its_deadline() {
        for size in [100, 50_000] {
            let (mut reader, mut peer, budget) = reader(MAX);
            let frame = encode_frame(&submission(1, size)).expect("encodes");
            peer.write_all(&frame[..frame.len() / 2])
                .await
                .expect("write");
            let error = tokio::time::timeout(Duration::from_secs(60), reader.next())
                .await
                .expect("the deadline ends the read")
                .expect_err("a stalled body");
            assert!(
                matches!(error, ReadError::BodyTimeout { .. }),
                "{size}: {error:?}"
            );
            assert_eq!(budget.available_permits(), MAX, "{size}: budget paid back");
        }
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_is_refused_from_its_prefix() {
        let (mut reader, mut peer, _budget) = reader(MAX);
        let prefix = u32::try_from(MAX + 1).expect("fits").to_be_bytes();
        peer.write_all(&prefix).await.expect("write");
        let error = reader.next().await.expect_err("too large");
        assert!(
            matches!(error, ReadError::Codec(CodecError::FrameTooLarge { .. })),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_peer_that_reads_nothing_is_dropped_once_its_bytes_pile_up() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let writer = FrameWriter {
            io: ours,
            codec: FrameCodec::new(MAX),
            max_queued: 64 * 1024,
            conn: 1,
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
        };
        let (outbox, frames) = tokio::sync::mpsc::channel(16);
        let writing = tokio::spawn(writer.run(Frames::detached(frames)));
        // Any frame but `Closing`, which ends the writer by itself.
        let reply = ServerFrame::Cancel {
            task: buildcat_proto::TaskId::new(buildcat_proto::JobId(uuid::Uuid::nil()), 0),
            attempt: 1,
            reason: "x".repeat(1000),
        };
        let mut sent = 0;
        // The writer takes frames while it is within its limit, then ends.
        while outbox.send(reply.clone()).await.is_ok() {
            sent += 1;
            assert!(sent < 10_000, "the writer kept taking frames");
        }
        tokio::time::timeout(Duration::from_secs(60), writing)
            .await
            .expect("the writer ends")
            .expect("the writer task");
        // What the peer can still read is what fit before the limit.
        let mut received = Vec::new();
        let _ = theirs.read_to_end(&mut received).await;
        assert!(
            (1024..64 * 1024 + 2048).contains(&received.len()),
            "{} bytes",
            received.len()
        );
        assert!(sent > 64, "the writer took only {sent} frames");
    }
}
