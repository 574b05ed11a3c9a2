//! One welcomed connection carrying many requests at once.
//!
//! After the handshake the socket is split. A writer task owns the write half and drains a
//! channel of frames, feeding every frame already queued into its buffer before one flush,
//! so a burst of requests costs a few writes rather than one each. A reader task owns the
//! read half and completes the caller waiting on each reply's id; replies may come in any
//! order. The callers, the reader and the writer meet in [`Shared`]: the map of pending
//! requests behind a std mutex (held only to insert or remove an entry, never across an
//! await) and a cancellation token that stops both tasks.
//!
//! When the connection ends, the first task to notice records why, fails every pending
//! request with that reason and stops the other task; later requests fail at once with the
//! same reason. When the last [`Connection`] handle is dropped both tasks stop and the
//! socket closes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use buildcat_proto::{
    ClientFrame, CodecError, FrameCodec, JobEvent, Reply, Request, RequestId, ServerFrame, Welcome,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{Framed, FramedParts, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::connect::HelloFramed;
use crate::error::{ClientError, describe_io};
use crate::tls::Stream;

/// The codec after the handshake, as a client sees it.
type Codec = FrameCodec<ServerFrame, ClientFrame>;

/// Where a reply goes: the caller waiting on its request.
type ReplySender = oneshot::Sender<Result<Reply, ClientError>>;

/// Frames queued for the writer before callers wait for room.
const OUTGOING_CAPACITY: usize = 1024;

/// The most frames the writer feeds before it flushes.
const BATCH_LIMIT: usize = 256;

/// Bytes the writer buffers before it writes mid-batch.
const WRITE_BUFFER: usize = 64 * 1024;

/// The handle callers share; dropping the last one stops the tasks.
pub(crate) struct Connection {
    /// What callers, the reader and the writer share.
    shared: Arc<Shared>,
    /// Frames for the writer task.
    outgoing: mpsc::Sender<ClientFrame>,
    /// The id of the next request; unique on this connection.
    next_id: AtomicU64,
    /// The server's software version, from its welcome.
    server_version: String,
}

/// What callers, the reader and the writer share.
struct Shared {
    /// The address as the caller gave it, for messages.
    addr: String,
    /// Requests waiting for their reply, or why no reply will come.
    pending: Mutex<Waiting>,
    /// Cancelled when the connection ends or the last handle is dropped.
    stop: CancellationToken,
    /// Where events for streaming requests (`Logs { follow }`, `Watch`) go, by request id.
    events: Mutex<HashMap<RequestId, mpsc::Sender<JobEvent>>>,
}

/// The pending requests of a connection that is open, or why it is not.
enum Waiting {
    /// Each request's id and where its reply goes.
    Open(HashMap<RequestId, ReplySender>),
    /// The reason the connection ended, for every later request.
    Closed(String),
}

impl Connection {
    /// Splits a welcomed socket and starts its reader and writer tasks.
    pub(crate) fn start(
        addr: &str,
        framed: HelloFramed,
        welcome: &Welcome,
        max_frame: usize,
    ) -> Connection {
        let parts = framed.into_parts();
        let (read_half, write_half) = tokio::io::split(parts.io);

        // Bytes the server sent after its welcome may already sit in the read buffer; a
        // `Framed` rebuilt from parts decodes them before reading more (a `FramedRead`
        // given the buffer afterwards would not look at it until new bytes arrived).
        let mut read_parts = FramedParts::new::<ClientFrame>(read_half, parts.codec.retype());
        read_parts.read_buf = parts.read_buf;
        let frames_in: Framed<ReadHalf<Stream>, Codec> = Framed::from_parts(read_parts);

        // Write no frame larger than the server accepts: an oversized request then fails
        // alone with a clear error instead of getting the connection closed.
        let server_limit = usize::try_from(welcome.max_frame).unwrap_or(usize::MAX);
        let write_limit = if server_limit == 0 {
            max_frame
        } else {
            max_frame.min(server_limit)
        };
        let mut frames_out = FramedWrite::new(write_half, Codec::new(write_limit));
        frames_out.set_backpressure_boundary(WRITE_BUFFER);

        let shared = Arc::new(Shared {
            addr: addr.to_owned(),
            pending: Mutex::new(Waiting::Open(HashMap::new())),
            stop: CancellationToken::new(),
            events: Mutex::new(HashMap::new()),
        });
        let (outgoing, queued) = mpsc::channel(OUTGOING_CAPACITY);
        tokio::spawn(read_replies(frames_in, Arc::clone(&shared)));
        tokio::spawn(write_requests(frames_out, queued, Arc::clone(&shared)));
        Connection {
            shared,
            outgoing,
            next_id: AtomicU64::new(1),
            server_version: welcome.software.clone(),
        }
    }

    /// Whether the connection has ended (the server closed it, or it broke).
    pub(crate) fn is_closed(&self) -> bool {
        matches!(*self.shared.lock(), Waiting::Closed(_))
    }

    /// The server's software version, from its welcome.
    pub(crate) fn server_version(&self) -> &str {
        &self.server_version
    }

    /// Sends one request and waits for its reply.
    ///
    /// Cancel-safe: dropping the future forgets the request, and a reply that comes later
    /// is dropped.
    pub(crate) async fn request(&self, request: Request) -> Result<Reply, ClientError> {
        self.request_inner(request, None).await
    }

    /// Sends a streaming request: events the server pushes for it go to `events` until the
    /// reply comes.
    pub(crate) async fn request_with_events(
        &self,
        request: Request,
        events: mpsc::Sender<JobEvent>,
    ) -> Result<Reply, ClientError> {
        self.request_inner(request, Some(events)).await
    }

    async fn request_inner(
        &self,
        request: Request,
        events: Option<mpsc::Sender<JobEvent>>,
    ) -> Result<Reply, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Some(events) = events {
            self.shared.events_lock().insert(id, events);
        }
        let (reply_to, reply) = oneshot::channel();
        self.shared.register(id, reply_to)?;
        let _forget_on_drop = PendingGuard {
            shared: &self.shared,
            id,
        };
        if self
            .outgoing
            .send(ClientFrame { id, request })
            .await
            .is_err()
        {
            return Err(self.shared.lost());
        }
        match reply.await {
            Ok(result) => result,
            Err(_) => Err(self.shared.lost()),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

/// Removes a request from the pending map when its caller stops waiting.
struct PendingGuard<'a> {
    /// Holds the map.
    shared: &'a Shared,
    /// The request to forget.
    id: RequestId,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Waiting::Open(waiting) = &mut *self.shared.lock() {
            waiting.remove(&self.id);
        }
        self.shared.events_lock().remove(&self.id);
    }
}

impl Shared {
    /// The event routes; no code holding them can panic, so a poisoned lock is still sound.
    fn events_lock(&self) -> MutexGuard<'_, HashMap<RequestId, mpsc::Sender<JobEvent>>> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands an event to the caller of the streaming request `id`.
    ///
    /// Never waits: the reader serves every request of the connection. When the caller's
    /// channel is full, its stream ends with [`ClientError::Lagged`] (later events for it
    /// are dropped) rather than holding up everyone else or buffering without limit.
    fn event(&self, id: RequestId, event: JobEvent) {
        let full = {
            let mut routes = self.events_lock();
            let Some(events) = routes.get(&id) else {
                return;
            };
            match events.try_send(event) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let capacity = events.max_capacity();
                    routes.remove(&id);
                    capacity
                }
                // The caller stopped reading on purpose; its request ends when it stops
                // waiting for the reply.
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        };
        debug!(server = %self.addr, request = id, capacity = full, "event stream lagged");
        self.complete(id, Err(ClientError::Lagged { capacity: full }));
    }

    /// The pending map; no code holding it can panic, so a poisoned lock is still sound.
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records where the reply to `id` goes, unless the connection has ended.
    fn register(&self, id: RequestId, reply_to: ReplySender) -> Result<(), ClientError> {
        match &mut *self.lock() {
            Waiting::Open(waiting) => {
                waiting.insert(id, reply_to);
                Ok(())
            }
            Waiting::Closed(reason) => Err(self.lost_because(reason.clone())),
        }
    }

    /// Hands a reply to the caller waiting for it.
    fn complete(&self, id: RequestId, result: Result<Reply, ClientError>) {
        let reply_to = match &mut *self.lock() {
            Waiting::Open(waiting) => waiting.remove(&id),
            Waiting::Closed(_) => None,
        };
        match reply_to {
            // The caller may have stopped waiting since; nothing to do then.
            Some(reply_to) => drop(reply_to.send(result)),
            None => {
                debug!(server = %self.addr, request = id, "reply to a request nobody waits for")
            }
        }
    }

    /// Ends the connection: records why, fails every pending request and stops both tasks.
    /// The first reason wins.
    fn close(&self, reason: String) {
        let waiting = {
            let mut pending = self.lock();
            if matches!(*pending, Waiting::Closed(_)) {
                return;
            }
            match std::mem::replace(&mut *pending, Waiting::Closed(reason.clone())) {
                Waiting::Open(waiting) => waiting,
                Waiting::Closed(_) => HashMap::new(),
            }
        };
        self.stop.cancel();
        info!(
            server = %self.addr,
            reason = %reason,
            pending = waiting.len(),
            "connection to the buildcat server ended"
        );
        for reply_to in waiting.into_values() {
            drop(reply_to.send(Err(self.lost_because(reason.clone()))));
        }
    }

    /// The error for a request on a connection that has ended.
    fn lost(&self) -> ClientError {
        let reason = match &*self.lock() {
            Waiting::Closed(reason) => reason.clone(),
            Waiting::Open(_) => "the connection closed".to_owned(),
        };
        self.lost_because(reason)
    }

    /// The error for a request on a connection that ended for `reason`.
    fn lost_because(&self, reason: String) -> ClientError {
        ClientError::ConnectionLost {
            addr: self.addr.clone(),
            reason,
        }
    }
}

/// The reader task: hands each reply to its caller until the connection ends.
async fn read_replies(mut frames: Framed<ReadHalf<Stream>, Codec>, shared: Arc<Shared>) {
    loop {
        let frame = tokio::select! {
            () = shared.stop.cancelled() => return,
            frame = frames.next() => frame,
        };
        match frame {
            Some(Ok(ServerFrame::Reply { id, reply })) => {
                shared.complete(id, reply.map_err(ClientError::RequestRefused));
            }
            Some(Ok(ServerFrame::Closing(reason))) => {
                shared.close(format!("the server closed it: {reason}"));
                return;
            }
            Some(Ok(ServerFrame::Event { id, event })) => shared.event(id, event),
            Some(Ok(ServerFrame::Cancel { task, .. })) => {
                warn!(server = %shared.addr, task = %task, "ignoring a cancel sent to a client connection");
            }
            Some(Ok(ServerFrame::Assign(assignment))) => {
                warn!(
                    server = %shared.addr,
                    task = %assignment.task,
                    "ignoring a task assignment sent to a client connection"
                );
            }
            Some(Err(error)) => {
                shared.close(describe_codec(&error));
                return;
            }
            None => {
                shared.close("the server closed the connection".to_owned());
                return;
            }
        }
    }
}

/// The writer task: feeds queued frames, one flush per batch, until the connection ends.
async fn write_requests(
    mut frames: FramedWrite<WriteHalf<Stream>, Codec>,
    mut queued: mpsc::Receiver<ClientFrame>,
    shared: Arc<Shared>,
) {
    let mut batch = Vec::with_capacity(BATCH_LIMIT);
    loop {
        let received = tokio::select! {
            () = shared.stop.cancelled() => return,
            received = queued.recv_many(&mut batch, BATCH_LIMIT) => received,
        };
        if received == 0 {
            // Every handle is gone; dropping the write half closes our side.
            return;
        }
        let written = tokio::select! {
            () = shared.stop.cancelled() => return,
            written = write_batch(&mut frames, &mut batch, &shared) => written,
        };
        if let Err(error) = written {
            shared.close(format!(
                "could not send a request: {}",
                describe_codec(&error)
            ));
            return;
        }
    }
}

/// Feeds every frame of `batch`, then flushes once.
///
/// A frame that cannot be encoded (over the size limit) fails its own request only; an
/// I/O error is returned, since the connection is then gone.
async fn write_batch(
    frames: &mut FramedWrite<WriteHalf<Stream>, Codec>,
    batch: &mut Vec<ClientFrame>,
    shared: &Shared,
) -> Result<(), CodecError> {
    for frame in batch.drain(..) {
        let id = frame.id;
        match frames.feed(frame).await {
            Ok(()) => {}
            Err(CodecError::Io(error)) => return Err(CodecError::Io(error)),
            // The encoder left nothing of this frame in the buffer.
            Err(error) => shared.complete(id, Err(ClientError::Encode(error))),
        }
    }
    frames.flush().await
}

/// A codec error in the words of a connection-lost reason.
fn describe_codec(error: &CodecError) -> String {
    match error {
        CodecError::Io(error) => describe_io(error),
        other => other.to_string(),
    }
}
