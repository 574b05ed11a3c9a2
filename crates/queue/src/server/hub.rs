//! The hub: the one task that owns the [`Core`], and the [`CoreHandle`] every shell (TCP
//! today, HTTP next) uses to reach it.
//!
//! The core task awaits in one place only, its `select!`, which in order of priority takes:
//! 1. commit results from the store writer (their own channel, which never blocks the
//!    writer);
//! 2. room in the writer's queue, while store batches wait in the local backlog;
//! 3. messages from the shells, only while that backlog is under
//!    [`Capacities::backlog_ops`] (backpressure as a guard, never as an await);
//! 4. the core's next deadline ([`Core::next_deadline`]), to deliver [`Input::Tick`].
//!
//! Each connection may have at most [`Capacities::queued_requests`] requests waiting in the
//! hub's queue, so a peer pipelining expensive requests waits for its own turn instead of
//! filling the queue ahead of everyone else.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use buildcat_proto::{
    JobSummary, Reply, Request, RequestError, RequestId, Role, ServerFrame, Timestamp,
};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, error, warn};

use super::Capacities;
use super::store_writer::{Report, WriteBatch};
use crate::core::{ConnId, Core, Effect, Input, Notice};
use crate::http::TaskMetrics;
use crate::store::StoreOp;

/// The shortest gap between two ticks: the core's deadlines are in milliseconds and its
/// periodic scan runs every second, so this only matters if a deadline stays in the past,
/// where it keeps the task from spinning.
const TICK_FLOOR: Duration = Duration::from_millis(10);

/// The request id a one-shot [`CoreHandle::call`] uses on its private connection.
const CALL_ID: RequestId = 1;

/// How long the hub sleeps when the core waits on no time at all; any input wakes it sooner.
const IDLE_SLEEP: Duration = Duration::from_secs(3600);

/// What the shells send the hub.
#[derive(Debug)]
pub(crate) enum Message {
    /// A peer completed its handshake; frames for it go to `outbox`.
    Open {
        /// Its id, from [`CoreHandle`]'s counter.
        conn: ConnId,
        /// Client or worker.
        role: Role,
        /// Where its frames go; dropping it ends the connection's writer.
        outbox: mpsc::Sender<ServerFrame>,
        /// Counts the frames in `outbox`.
        unsent: Arc<Unsent>,
    },
    /// A peer's request.
    Request {
        /// Who asks.
        conn: ConnId,
        /// Echoed in the reply.
        id: RequestId,
        /// What it asks; boxed, since a worker's registration (with its tools) makes it
        /// far larger than the other messages, which pass through the same channel.
        request: Box<Request>,
        /// One of the connection's queued-request slots, freed once the core handled it.
        slot: OwnedSemaphorePermit,
    },
    /// A connection ended.
    Closed {
        /// Which one.
        conn: ConnId,
    },
}

/// The hub is gone (the server is shutting down), or it closed the connection.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the server closed the connection: {reason}")]
pub struct HubClosed {
    /// Why, as the server put it.
    pub reason: String,
}

impl HubClosed {
    /// The hub itself has stopped.
    fn stopped() -> HubClosed {
        HubClosed {
            reason: "the server is shutting down".to_owned(),
        }
    }
}

/// How many frames a connection has been sent that its writer has not taken yet.
#[derive(Debug, Default)]
pub(crate) struct Unsent {
    /// Frames in the outbox.
    count: AtomicUsize,
    /// Set once the receiving side is gone: nothing will be taken any more.
    closed: AtomicBool,
    /// Wakes a shell waiting for the count to fall.
    taken: Notify,
}

/// A connection's frames, as the shell that writes them out receives them.
#[derive(Debug)]
pub struct Frames {
    /// The outbox's receiving end.
    receiver: mpsc::Receiver<ServerFrame>,
    /// Counted down as frames are taken.
    unsent: Arc<Unsent>,
}

impl Frames {
    /// The next frame; `None` once the core is done with the connection.
    pub async fn recv(&mut self) -> Option<ServerFrame> {
        let frame = self.receiver.recv().await?;
        self.unsent.count.fetch_sub(1, Ordering::AcqRel);
        self.unsent.taken.notify_waiters();
        Some(frame)
    }

    /// Frames from a bare channel, counted by nobody (tests of the writers).
    #[cfg(test)]
    pub(crate) fn detached(receiver: mpsc::Receiver<ServerFrame>) -> Frames {
        let unsent = Arc::new(Unsent::default());
        // Nothing counts up, so count as if every frame were counted: never below zero.
        unsent.count.store(usize::MAX / 2, Ordering::Relaxed);
        Frames { receiver, unsent }
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        self.unsent.closed.store(true, Ordering::Release);
        self.unsent.taken.notify_waiters();
    }
}

/// A cloneable way into the core task, shared by every shell.
///
/// Connection ids come from one counter here, so connections of different shells never
/// share an id.
#[derive(Debug, Clone)]
pub struct CoreHandle {
    /// The hub's queue.
    inputs: mpsc::Sender<Message>,
    /// The last connection id handed out.
    last_conn: Arc<AtomicU64>,
    /// Frames one connection's outbox holds.
    outbox_frames: usize,
    /// Requests one connection may have waiting in the hub's queue.
    queued_requests: usize,
    /// Frames one connection may have unsent before its requests wait.
    unsent_frames: usize,
    /// The farm's generation, bumped by the hub after each step that changed something a
    /// page shows, so live views wake on a change instead of polling.
    generation: watch::Receiver<u64>,
}

impl CoreHandle {
    /// The farm's generation: it grows after every step that stored something, after a
    /// worker connected, reported or left, and after a request that steers jobs; a reader
    /// woken by it refetches what it shows. Reads (HTTP calls included) never bump it, so a
    /// page refetching on a change does not cause the next one.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.generation.clone()
    }

    /// Opens a connection for a peer that completed its handshake as `role`; its frames
    /// arrive on the receiver, which closes when the core is done with the connection.
    pub async fn open(&self, role: Role) -> Result<(Link, Frames), HubClosed> {
        let conn = self.last_conn.fetch_add(1, Ordering::Relaxed) + 1;
        let (outbox, receiver) = mpsc::channel(self.outbox_frames.max(1));
        let last_words = outbox.downgrade();
        let unsent = Arc::new(Unsent::default());
        self.inputs
            .send(Message::Open {
                conn,
                role,
                outbox,
                unsent: Arc::clone(&unsent),
            })
            .await
            .map_err(|_| HubClosed::stopped())?;
        let link = Link {
            conn,
            inputs: self.inputs.clone(),
            slots: Arc::new(Semaphore::new(self.queued_requests.max(1))),
            last_words,
            unsent: Arc::clone(&unsent),
            unsent_limit: self.unsent_frames.max(1),
            closed: false,
        };
        Ok((link, Frames { receiver, unsent }))
    }

    /// Asks one question on a connection of its own and returns the answer (for request and
    /// reply front ends such as HTTP). Requests that stream events (`Logs { follow }`,
    /// `Watch`) answer only once they end; use [`CoreHandle::open`] for those.
    pub async fn call(&self, request: Request) -> Result<Result<Reply, RequestError>, HubClosed> {
        let (link, mut frames) = self.open(Role::Client).await?;
        link.request(CALL_ID, request).await?;
        let answer = loop {
            match frames.recv().await {
                Some(ServerFrame::Reply { id, reply }) if id == CALL_ID => break Ok(reply),
                Some(ServerFrame::Closing(reason)) => break Err(HubClosed { reason }),
                Some(_) => {}
                None => break Err(HubClosed::stopped()),
            }
        };
        link.close().await;
        answer
    }
}

/// One open connection to the core, held by the shell that serves it.
///
/// Dropping it without [`Link::close`] still tells the core, from a spawned task.
#[derive(Debug)]
pub struct Link {
    /// Its id in the core.
    conn: ConnId,
    /// The hub's queue.
    inputs: mpsc::Sender<Message>,
    /// Its queued-request slots: a request waits for one before it enters the hub's queue.
    slots: Arc<Semaphore>,
    /// The connection's outbox, weak so that the hub dropping its sender still ends the
    /// writer; used to send a last `Closing` frame when the shell ends the connection.
    last_words: mpsc::WeakSender<ServerFrame>,
    /// The connection's frames not yet taken by its writer.
    unsent: Arc<Unsent>,
    /// How many of those may wait before the shell stops reading requests.
    unsent_limit: usize,
    /// Whether the core has been told the connection ended.
    closed: bool,
}

impl Link {
    /// Its id in the core.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// Whether the peer has taken enough of what it was sent to have more requests served;
    /// a shell reads the peer's next request only then.
    pub fn has_room(&self) -> bool {
        self.unsent.count.load(Ordering::Acquire) < self.unsent_limit
            || self.unsent.closed.load(Ordering::Acquire)
    }

    /// Resolves once [`Link::has_room`] holds.
    pub async fn room(&self) {
        loop {
            // Registered before the check, so a frame taken in between still wakes it.
            let taken = self.unsent.taken.notified();
            if self.has_room() {
                return;
            }
            taken.await;
        }
    }

    /// Hands a request to the core; waits while this connection already has its share of
    /// requests queued.
    pub async fn request(&self, id: RequestId, request: Request) -> Result<(), HubClosed> {
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| HubClosed::stopped())?;
        self.inputs
            .send(Message::Request {
                conn: self.conn,
                id,
                request: Box::new(request),
                slot,
            })
            .await
            .map_err(|_| HubClosed::stopped())
    }

    /// Sends the peer a last [`ServerFrame::Closing`] with `reason` (if its outbox has
    /// room), then tells the core the connection ended.
    pub async fn close_with(self, reason: String) {
        if let Some(outbox) = self.last_words.upgrade() {
            let _ = outbox.try_send(ServerFrame::Closing(reason));
        }
        self.close().await;
    }

    /// Tells the core the connection ended.
    pub async fn close(mut self) {
        self.closed = true;
        let _ = self.inputs.send(Message::Closed { conn: self.conn }).await;
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        let closed = Message::Closed { conn: self.conn };
        if let Err(mpsc::error::TrySendError::Full(closed)) = self.inputs.try_send(closed) {
            // Outside a runtime the hub is gone too, and nobody needs telling.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let inputs = self.inputs.clone();
                runtime.spawn(async move {
                    let _ = inputs.send(closed).await;
                });
            }
        }
    }
}

/// Where the core's [`Notice`]s go; with neither, the core is not asked for any.
#[derive(Debug, Clone, Default)]
pub(crate) struct NoticeSink {
    /// The task run time and queue wait histograms `/metrics` shows.
    pub(crate) metrics: Option<TaskMetrics>,
    /// The notifier's inbox of ended jobs ([`crate::notify`]); never waited on.
    pub(crate) ended: Option<mpsc::Sender<Box<JobSummary>>>,
}

impl NoticeSink {
    /// Whether anything takes notices.
    pub(crate) fn wanted(&self) -> bool {
        self.metrics.is_some() || self.ended.is_some()
    }

    /// Hands one notice on, without waiting.
    fn take(&self, notice: Notice) {
        if let Some(metrics) = &self.metrics {
            metrics.observe(&notice);
        }
        if let (Notice::JobEnded(job), Some(ended)) = (notice, &self.ended)
            && let Err(mpsc::error::TrySendError::Full(job)) = ended.try_send(job)
        {
            warn!(
                job = job.number,
                "notification dropped: the notifier is far behind"
            );
        }
    }
}

/// Builds the hub around `core`: the handle for the shells and the core task to spawn. The
/// task ends once every handle and link is gone and the backlog is handed to the writer.
pub(crate) fn start(
    core: Core,
    capacities: &Capacities,
    batches: mpsc::Sender<WriteBatch>,
    committed: mpsc::UnboundedReceiver<Report>,
    notices: NoticeSink,
) -> (CoreHandle, impl Future<Output = ()> + Send + use<>) {
    let (inputs_tx, inputs) = mpsc::channel(capacities.inputs.max(1));
    let (generation_tx, generation) = watch::channel(0);
    let handle = CoreHandle {
        generation,
        inputs: inputs_tx,
        last_conn: Arc::new(AtomicU64::new(0)),
        outbox_frames: capacities.outbox_frames,
        queued_requests: capacities.queued_requests,
        unsent_frames: capacities.unsent_frames,
    };
    let hub = Hub {
        core,
        outboxes: HashMap::new(),
        backlog: VecDeque::new(),
        backlog_ops: 0,
        backlog_bytes: 0,
        writer_bytes: 0,
        notices,
        workers: HashSet::new(),
        generation: generation_tx,
        changed: false,
    };
    let task = hub.run(
        inputs,
        committed,
        batches,
        (
            capacities.backlog_ops.max(1),
            capacities.backlog_bytes.max(1),
        ),
    );
    (handle, task)
}

/// The core task's state.
struct Hub {
    /// The farm's state; changed only here.
    core: Core,
    /// Each open connection's outbox; the core's `Send` effects go here.
    outboxes: HashMap<ConnId, (mpsc::Sender<ServerFrame>, Arc<Unsent>)>,
    /// Store batches the writer has no room for yet, in order.
    backlog: VecDeque<WriteBatch>,
    /// Store operations in `backlog`, compared with [`Capacities::backlog_ops`].
    backlog_ops: usize,
    /// Their [`StoreOp::size_hint`]s; with `writer_bytes`, compared with
    /// [`Capacities::backlog_bytes`].
    backlog_bytes: usize,
    /// The size hints of batches handed to the writer and not yet committed: what waits to
    /// be stored is bounded as a whole, not per queue (the writer holds a whole group
    /// commit in memory while it runs).
    writer_bytes: usize,
    /// Where the core's notices go.
    notices: NoticeSink,
    /// The worker connections: their coming, going and reports change what a page shows,
    /// while a client connection (every HTTP read is one) changes nothing.
    workers: HashSet<ConnId>,
    /// Bumped once per step that changed something (see [`CoreHandle::changes`]).
    generation: watch::Sender<u64>,
    /// Whether the step being handled changed something; published at its end.
    changed: bool,
}

impl Hub {
    /// The core task's loop.
    async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Message>,
        mut committed: mpsc::UnboundedReceiver<Report>,
        batches: mpsc::Sender<WriteBatch>,
        (max_backlog_ops, max_backlog_bytes): (usize, usize),
    ) {
        let mut reading = true;
        let mut last_tick: Option<Instant> = None;
        let sleep = tokio::time::sleep(IDLE_SLEEP);
        tokio::pin!(sleep);
        loop {
            self.publish();
            if !reading && self.backlog.is_empty() {
                break;
            }
            let wake = self.core.next_deadline().map(|deadline| {
                let wake = Instant::now() + deadline.since(Timestamp::now());
                last_tick.map_or(wake, |tick| wake.max(tick + TICK_FLOOR))
            });
            if let Some(wake) = wake
                && sleep.deadline() != wake
            {
                sleep.as_mut().reset(wake);
            }
            tokio::select! {
                biased;
                Some(report) = committed.recv() => {
                    let input = match report {
                        Report::Committed { tokens, result, bytes } => {
                            self.writer_bytes = self.writer_bytes.saturating_sub(bytes);
                            (!tokens.is_empty()).then_some(Input::Persisted { tokens, result })
                        }
                        Report::Read { read, result } => Some(Input::OutputRead { read, result }),
                    };
                    if let Some(input) = input {
                        self.handle(input);
                    }
                }
                permit = batches.reserve(), if !self.backlog.is_empty() => {
                    let Ok(permit) = permit else {
                        error!("the store writer is gone; stopping");
                        return;
                    };
                    self.hand_over(permit, &batches);
                }
                message = inputs.recv(), if reading
                    && self.backlog_ops < max_backlog_ops
                    && self.backlog_bytes + self.writer_bytes < max_backlog_bytes => {
                    match message {
                        Some(message) => self.message(message),
                        None => reading = false,
                    }
                }
                () = &mut sleep, if wake.is_some() => {
                    last_tick = Some(Instant::now());
                    self.handle(Input::Tick);
                }
                else => break,
            }
        }
        debug!("core task stopped");
    }

    /// Bumps the generation if the last step changed something; waking the watchers once
    /// per step, not once per effect.
    fn publish(&mut self) {
        if std::mem::take(&mut self.changed) {
            self.generation.send_modify(|generation| *generation += 1);
        }
    }

    /// Gives the writer the oldest batch, and more while it has room.
    fn hand_over(
        &mut self,
        permit: mpsc::Permit<'_, WriteBatch>,
        batches: &mpsc::Sender<WriteBatch>,
    ) {
        let mut permit = Some(permit);
        while let Some(batch) = self.backlog.pop_front() {
            let next = match permit.take() {
                Some(permit) => permit,
                None => match batches.try_reserve() {
                    Ok(permit) => permit,
                    Err(_) => {
                        self.backlog.push_front(batch);
                        break;
                    }
                },
            };
            self.backlog_ops -= batch.ops.len();
            self.backlog_bytes -= batch.bytes;
            self.writer_bytes += batch.bytes;
            next.send(batch);
        }
    }

    /// Turns a shell's message into core inputs.
    fn message(&mut self, message: Message) {
        match message {
            Message::Open {
                conn,
                role,
                outbox,
                unsent,
            } => {
                self.outboxes.insert(conn, (outbox, unsent));
                if role == Role::Worker {
                    self.workers.insert(conn);
                    self.changed = true;
                }
                self.handle(Input::Connected { conn, role });
            }
            Message::Request {
                conn,
                id,
                request,
                slot,
            } => {
                if steers(&request)
                    || (self.workers.contains(&conn) && !matches!(*request, Request::Heartbeat))
                {
                    self.changed = true;
                }
                self.handle(Input::Request {
                    conn,
                    id,
                    request: *request,
                });
                drop(slot);
            }
            Message::Closed { conn } => {
                // Dropping the outbox ends the session's writer, which closes the socket.
                if self.workers.remove(&conn) {
                    self.changed = true;
                }
                if self.outboxes.remove(&conn).is_some() {
                    self.handle(Input::Disconnected { conn });
                }
            }
        }
    }

    /// Hands one input to the core and carries out what it says, including the inputs
    /// that follow from it (a peer dropped for reading too slowly).
    fn handle(&mut self, input: Input) {
        let mut pending = vec![input];
        while let Some(input) = pending.pop() {
            for effect in self.core.handle(Timestamp::now(), input) {
                match effect {
                    Effect::Send(conn, frame) => {
                        let Some((outbox, unsent)) = self.outboxes.get(&conn) else {
                            continue;
                        };
                        // Counted before it can be taken, so the count never goes below zero.
                        unsent.count.fetch_add(1, Ordering::AcqRel);
                        if let Err(error) = outbox.try_send(frame) {
                            unsent.count.fetch_sub(1, Ordering::AcqRel);
                            if matches!(error, mpsc::error::TrySendError::Full(_)) {
                                warn!(conn, "closing connection: peer reads too slowly");
                            }
                            self.outboxes.remove(&conn);
                            if self.workers.remove(&conn) {
                                self.changed = true;
                            }
                            pending.push(Input::Disconnected { conn });
                        }
                    }
                    Effect::Close(conn, reason) => {
                        if self.workers.remove(&conn) {
                            self.changed = true;
                        }
                        if let Some((outbox, _)) = self.outboxes.remove(&conn) {
                            let _ = outbox.try_send(ServerFrame::Closing(reason));
                        }
                    }
                    Effect::Persist { ops, token } => {
                        self.changed = true;
                        let bytes = ops.iter().map(StoreOp::size_hint).sum::<usize>();
                        self.backlog_ops += ops.len();
                        self.backlog_bytes += bytes;
                        self.backlog.push_back(WriteBatch {
                            ops,
                            token,
                            read: None,
                            bytes,
                        });
                    }
                    Effect::Notice(notice) => self.notices.take(notice),
                    Effect::ReadOutput(read) => {
                        // In line with the batches, so the read sees every change before it.
                        self.backlog.push_back(WriteBatch {
                            ops: Vec::new(),
                            token: None,
                            read: Some(read),
                            bytes: 0,
                        });
                    }
                }
            }
        }
    }
}

/// Whether a client's request steers the farm (a page shows its effect even where nothing
/// is stored, such as enabling a worker), as opposed to reading it.
fn steers(request: &Request) -> bool {
    !matches!(
        request,
        Request::Wait(_)
            | Request::Job(_)
            | Request::Task(_)
            | Request::Info
            | Request::Heartbeat
            | Request::Jobs(_)
            | Request::Logs { .. }
            | Request::Watch(_)
    )
}

#[cfg(test)]
mod tests {
    use buildcat_proto::{JobOptions, NewJob, NewTask};

    use super::*;
    use crate::core::CoreConfig;
    use crate::server::store_writer;
    use crate::store::{Loaded, Store, StoreError, StoreOp};

    /// Keeps what it is given in memory.
    struct MemoryStore(Vec<StoreOp>);

    impl Store for MemoryStore {
        fn load(&mut self) -> Result<Loaded, StoreError> {
            Ok(Loaded::default())
        }

        fn commit(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
            self.0.extend_from_slice(ops);
            Ok(())
        }

        fn read_output(
            &mut self,
            _task: buildcat_proto::TaskId,
            from: u64,
            _max_bytes: usize,
        ) -> Result<buildcat_proto::LogPage, StoreError> {
            // Keeps no output: every page is empty.
            Ok(buildcat_proto::LogPage::empty_at(from))
        }
    }

    /// A hub over an empty core and a memory store, its task spawned.
    fn hub() -> (CoreHandle, tokio::task::JoinHandle<()>) {
        let capacities = Capacities::default();
        let (core, _) = Core::new(CoreConfig::default(), Loaded::default(), Timestamp::now());
        let (batches_tx, batches_rx) = mpsc::channel(capacities.store_batches);
        let (committed_tx, committed_rx) = mpsc::unbounded_channel();
        store_writer::spawn(
            MemoryStore(Vec::new()),
            batches_rx,
            committed_tx,
            tokio::sync::oneshot::channel().0,
            100,
            crate::http::StoreMetrics::default(),
        )
        .expect("a writer thread");
        let (handle, task) = start(
            core,
            &capacities,
            batches_tx,
            committed_rx,
            NoticeSink::default(),
        );
        (handle, tokio::spawn(task))
    }

    #[tokio::test]
    async fn the_generation_grows_on_changes_and_not_on_reads() {
        let (handle, task) = hub();
        let mut changes = handle.changes();
        let reply = handle.call(Request::Info).await.expect("the hub answers");
        assert!(matches!(reply, Ok(Reply::Info(_))));
        let reply = handle
            .call(Request::Jobs(buildcat_proto::JobQuery {
                queue: None,
                state: None,
                user: None,
                limit: 10,
            }))
            .await
            .expect("the hub answers");
        assert!(matches!(reply, Ok(Reply::Jobs { .. })));
        assert!(
            !changes.has_changed().expect("the hub runs"),
            "reads (and the connections they open) must not wake the page, or its refetch would wake it again"
        );
        let job = NewJob {
            queue: "q".to_owned(),
            kind: "k".to_owned(),
            name: String::new(),
            submitter: "test@host".to_owned(),
            runs: String::new(),
            options: JobOptions::default(),
            tasks: vec![NewTask {
                frames: None,
                args: Vec::new(),
            }],
        };
        let reply = handle
            .call(Request::Submit(vec![job]))
            .await
            .expect("the hub answers");
        assert!(matches!(reply, Ok(Reply::Submitted(_))));
        tokio::time::timeout(Duration::from_secs(60), changes.changed())
            .await
            .expect("a submission bumps the generation")
            .expect("the hub runs");
        assert!(*changes.borrow_and_update() >= 1);
        drop(changes);
        drop(handle);
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the hub ends once every handle is gone")
            .expect("the hub task");
    }

    #[tokio::test]
    async fn a_call_is_answered_after_its_commit_and_connection_ids_are_unique() {
        let (handle, task) = hub();
        let job = NewJob {
            queue: "q".to_owned(),
            kind: "k".to_owned(),
            name: String::new(),
            submitter: "test@host".to_owned(),
            runs: String::new(),
            options: JobOptions::default(),
            tasks: vec![NewTask {
                frames: None,
                args: Vec::new(),
            }],
        };
        let reply = handle
            .call(Request::Submit(vec![job]))
            .await
            .expect("the hub answers");
        let Ok(Reply::Submitted(ids)) = reply else {
            panic!("expected the submission acknowledged, got {reply:?}");
        };
        assert_eq!(ids.len(), 1);
        let reply = handle.call(Request::Info).await.expect("the hub answers");
        let Ok(Reply::Info(info)) = reply else {
            panic!("expected info, got {reply:?}");
        };
        assert_eq!(info.queues.iter().map(|q| q.tasks.queued).sum::<u64>(), 1);

        let (first, _first_frames) = handle.open(Role::Client).await.expect("open");
        let (second, _second_frames) = handle.clone().open(Role::Worker).await.expect("open");
        assert_ne!(first.conn(), second.conn());
        first.close().await;
        drop(second);
        drop(handle);
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the hub ends once every handle and link is gone")
            .expect("the hub task");
    }
}
