//! The farm's state machine: queues, jobs and their tasks, workers and who runs what.
//!
//! [`Core::handle`] takes one [`Input`] at a time with the current time and returns the
//! [`Effect`]s the shell must carry out: frames to send, changes to store, connections to
//! close. It does no I/O and reads no clock, so every rule here is tested without sockets.
//!
//! Durability: a submission becomes visible (queued, dispatchable, acknowledged) only after
//! the store has committed it; the core parks it under a [`Token`] until
//! [`Input::Persisted`] comes back. A completion likewise takes effect (the task ends or
//! is retried, waiting clients hear of it, the worker is acknowledged) only once its record
//! is committed; a failed commit leaves the task as it was, for the worker to send again.
//!
//! Jobs and tasks: a job is what a person submits and steers (cancel, requeue, pause,
//! priority, delete); a task is what one worker slot runs, and attempts, leases, results
//! and output are per task. A job's state is derived from its tasks' counts; after every
//! input the jobs whose tasks changed are *settled* (`settle`): their end is noted,
//! announced to waiters and watchers, and jobs waiting on them are released.
//!
//! The parts, each owning its share of the state:
//! - `job`: the job and task records and what is derived from them;
//! - `dispatch`: queues, workers, which worker runs which task (and quarantine);
//! - `lifecycle`: submit, commit, complete, retry, loss, end, settle;
//! - `connections`: peers, their subscriptions, silence, and the timed steps of a tick;
//! - `follow` (output and progress pushed to clients), `manage` (cancel, requeue, pause,
//!   priority, delete, list) and `handles` (job numbers and `42.3` resolved);
//! - `previews`: the latest frame previews of each job, in memory, within a byte budget;
//! - `worker_pause`: a person's pause of a worker (finish the task, take no more).
//!
//! The core is deterministic: it iterates ordered maps wherever order decides an outcome,
//! makes job ids from a seedable `IdSource`, and says when it next needs
//! the time to move ([`Core::next_deadline`]). `check_invariants` (tests) states what
//! must hold after every input; `tests/randomized.rs` checks it over random sequences.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use buildcat_proto::{
    Dependency, FarmInfo, GpuRequirement, JobId, LogPage, Reply, Request, RequestError, RequestId,
    Requeue, Role, RunningTask, ServerFrame, TaskId, TaskState, Timestamp, Unserved,
    WorkerActivity, WorkerSummary,
};

use crate::store::{Loaded, StoreError, StoreOp};

use connections::{Connection, Orphan};
use dispatch::{Queue, Worker, WorkerRecord};
use ids::IdSource;
use job::Job;
use lifecycle::AwaitingCommit;
pub use notices::Notice;

/// Identifies one connection for the life of the server.
pub type ConnId = u64;

/// Identifies a batch of store operations whose commit the core waits for.
pub type Token = u64;

/// How many times a task may lose its worker (crash, network loss) before it fails with
/// "worker lost". Separate from `max_attempts`, which counts failures the task itself reports,
/// so a render is not failed because a machine rebooted, yet a task that kills every worker it
/// lands on does not loop forever.
pub const MAX_WORKER_LOSSES: u32 = 3;

/// How often the core looks over every connection and worker for silence and overdue
/// jobs. Those checks scan, so they run on this coarse period rather than at each peer's
/// exact deadline; a second is far finer than any of the timeouts involved.
pub const SCAN_INTERVAL: Duration = Duration::from_secs(1);

/// How long a worker whose connection dropped has to come back and reclaim its job, by
/// default. Render farms wait about a minute before handing work on (Flamenco and OpenCue
/// wait a minute or more): a network blip of seconds must not cost an hour-long render, and
/// a dead machine must not hold a frame for long. Workers stop a job themselves once they
/// have been cut off for most of this, so the two copies never overlap.
pub const DEFAULT_RECONNECT_GRACE: Duration = Duration::from_secs(60);

/// How long an ended job is kept by default: a week, so Monday's renders are still there
/// on the next Monday's review, while a busy farm's store stays bounded.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Bytes of output kept per task by default: a day of a chatty render's log, while a farm of
/// thousands of jobs stays within a few gigabytes of disk at worst.
pub const DEFAULT_MAX_LOG_BYTES: u64 = 64 << 20;

/// Subscriptions a connection may collect before its list is compacted (then at each
/// doubling, so the cost per subscription stays constant).
pub(crate) const SUBSCRIPTION_COMPACT_AT: usize = 64;

/// Settings of the state machine.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// How often workers must heartbeat.
    pub heartbeat: Duration,
    /// Heartbeats a worker may miss before it is considered lost.
    pub missed_heartbeats: u32,
    /// How long a finished or canceled job is kept after it ended (failed ones are kept
    /// until deleted).
    pub retention: Duration,
    /// How long a worker whose connection dropped has to reconnect and reclaim its jobs.
    pub reconnect_grace: Duration,
    /// The wait before the first retry of a failed attempt; it doubles with each retry.
    pub retry_backoff: Duration,
    /// The longest wait between retries.
    pub max_retry_backoff: Duration,
    /// How long after a job's timeout the server stops waiting for its worker to report it.
    pub timeout_backstop: Duration,
    /// Bytes of output kept per job (in the store): past this, the first quarter and the
    /// newest three quarters are kept and the middle is dropped, and readers are told
    /// where and how much.
    pub max_log_bytes: u64,
    /// The most bytes one reply may take encoded: listings stop short of it, output is read
    /// in pages well under it. The server sets it from its frame limit.
    pub max_reply_bytes: usize,
    /// Requests one connection may have unanswered at once.
    pub max_in_flight: u32,
    /// How long a worker connection may stay unregistered after its hello.
    pub register_timeout: Duration,
    /// How long a client connection with nothing in flight may stay silent.
    pub client_idle_timeout: Duration,
    /// Different jobs a worker may fail in a row before it is quarantined (no more work
    /// until enabled again); 0 turns quarantine off.
    pub quarantine_after: u32,
    /// How long a quarantine lasts before the worker gets work again; zero: until a person
    /// runs `buildcat worker-enable`.
    pub quarantine_cooldown: Duration,
    /// Frame previews kept per job (the oldest of the job goes first).
    pub previews_per_job: usize,
    /// Bytes of frame previews kept for the whole farm, in memory (the oldest on the farm
    /// goes first).
    pub preview_budget: usize,
    /// Seeds the job id generator; `None` seeds it from the operating system. Tests set it
    /// so that a run replays exactly.
    pub id_seed: Option<u64>,
    /// Whether to make [`Effect::Notice`]s (for metrics and notifications); off, the core
    /// spends nothing on them.
    pub notices: bool,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            heartbeat: Duration::from_secs(5),
            missed_heartbeats: 3,
            retention: DEFAULT_RETENTION,
            reconnect_grace: DEFAULT_RECONNECT_GRACE,
            retry_backoff: Duration::from_secs(2),
            max_retry_backoff: Duration::from_secs(300),
            timeout_backstop: Duration::from_secs(30),
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
            max_reply_bytes: buildcat_proto::DEFAULT_MAX_FRAME / 2,
            max_in_flight: 100_000,
            register_timeout: Duration::from_secs(10),
            client_idle_timeout: Duration::from_secs(3600),
            quarantine_after: 5,
            quarantine_cooldown: Duration::from_secs(15 * 60),
            previews_per_job: previews::DEFAULT_PREVIEWS_PER_JOB,
            preview_budget: previews::DEFAULT_PREVIEW_BUDGET,
            id_seed: None,
            notices: false,
        }
    }
}

/// Something that happened, for the core to act on.
#[derive(Debug)]
pub enum Input {
    /// A peer completed the handshake.
    Connected {
        /// Its connection.
        conn: ConnId,
        /// Client or worker.
        role: Role,
    },
    /// A peer sent a request.
    Request {
        /// Its connection.
        conn: ConnId,
        /// The request id to echo.
        id: RequestId,
        /// What it asks.
        request: Request,
    },
    /// A connection ended.
    Disconnected {
        /// The connection.
        conn: ConnId,
    },
    /// The store finished committing the batches with these tokens.
    Persisted {
        /// Which batches.
        tokens: Vec<Token>,
        /// Whether the commit took effect; on `Err` none of the batches did.
        result: Result<(), StoreError>,
    },
    /// Time passed: check heartbeats and prune old jobs.
    Tick,
    /// The store read the output asked for by [`Effect::ReadOutput`].
    OutputRead {
        /// The read, as the effect gave it.
        read: OutputRead,
        /// The page, or why it could not be read.
        result: Result<LogPage, StoreError>,
    },
}

/// A page of a task's stored output the core needs: the shell reads it from the store, after
/// every change sent before it, and hands it back unchanged in [`Input::OutputRead`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRead {
    /// The task.
    pub task: TaskId,
    /// The first byte to read.
    pub from: u64,
    /// About how many bytes of lines to read at most.
    pub max_bytes: usize,
    /// The connection that asked, to answer it.
    pub conn: ConnId,
    /// The request that asked, to answer it.
    pub request: RequestId,
    /// Whether the request follows the output (then reading goes on until it catches up).
    pub follow: bool,
}

/// Something the shell must do.
#[derive(Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "effects live for one loop iteration and are moved once; boxing every frame costs more"
)]
pub enum Effect {
    /// Send a frame to a connection.
    Send(ConnId, ServerFrame),
    /// Write changes durably, in order; report `token` back in [`Input::Persisted`].
    Persist {
        /// The changes.
        ops: Vec<StoreOp>,
        /// Reported back once committed, when the core waits for it.
        token: Option<Token>,
    },
    /// Send [`ServerFrame::Closing`] with this reason and close the connection. The core has
    /// already forgotten the connection.
    Close(ConnId, String),
    /// Read a page of a task's output from the store, after every [`Effect::Persist`] before
    /// it; report it in [`Input::OutputRead`].
    ReadOutput(OutputRead),
    /// Something happened that the shell may measure or tell people about; nothing to do
    /// for the farm's sake. Only with [`CoreConfig::notices`].
    Notice(Notice),
}

/// The farm's state.
#[derive(Debug)]
pub struct Core {
    /// Settings.
    config: CoreConfig,
    /// Every job on record, with its tasks. Boxed: the table's buckets stay small (a power
    /// of two of them, mostly empty, would otherwise each be the size of a whole job).
    jobs: HashMap<JobId, Box<Job>>,
    /// Job ids by number: numbers are what people type, and listing newest first walks
    /// this backwards.
    numbers: BTreeMap<u64, JobId>,
    /// The number the next job gets; never goes back, so numbers are never reused.
    next_number: u64,
    /// Every queue that has held a job or was paused, by name.
    queues: BTreeMap<Arc<str>, Queue>,
    /// Interned kind names.
    kinds: HashSet<Arc<str>>,
    /// Interned submitters (`user@host`). Never shrinks: a farm has few.
    submitters: HashSet<Arc<str>>,
    /// Connected peers. Ordered, so the scans act on them in the same order every run.
    connections: BTreeMap<ConnId, Connection>,
    /// Registered workers, by connection. Ordered for the same reason.
    workers: BTreeMap<ConnId, Worker>,
    /// Which worker connection runs each started task's current attempt: the reverse of
    /// `Worker::current`, so finding a task's worker is a lookup, not a scan.
    running: HashMap<TaskId, ConnId>,
    /// What the server remembers of each worker by name, across its reconnects: failures in
    /// a row, quarantine and a person's pause.
    records: BTreeMap<String, WorkerRecord>,
    /// Idle workers, longest idle first.
    idle: BTreeMap<u64, ConnId>,
    /// Next idle-order number.
    idle_counter: u64,
    /// Clients waiting for a job to end.
    waiters: HashMap<JobId, Vec<(ConnId, RequestId)>>,
    /// Jobs with deferred tasks waiting on each job or task.
    dependents: HashMap<Dependency, Vec<JobId>>,
    /// Commits the core waits for.
    pending: HashMap<Token, AwaitingCommit>,
    /// Next token.
    next_token: Token,
    /// Makes job ids: strictly increasing, reproducible from a seed.
    ids: IdSource,
    /// Failed tasks waiting for their retry, by when it is due.
    delayed: BTreeSet<(Timestamp, TaskId)>,
    /// Finished and canceled jobs by when they ended, so pruning looks only at the expired
    /// ones (failed jobs are kept until deleted).
    expiring: BTreeSet<(Timestamp, JobId)>,
    /// Started tasks with no connected worker, waiting for theirs to come back: the worker's
    /// connection dropped, the server restarted, or a completion's commit failed.
    orphans: BTreeMap<TaskId, Orphan>,
    /// Tasks canceled while their worker was cut off, with when that worker's lease ends:
    /// it may run the attempt until then, so a requeue does not start the task elsewhere
    /// before (the task waits as for a retry).
    lingering: HashMap<TaskId, Timestamp>,
    /// Clients following a task's output that have caught up with it, by job: new lines go
    /// to them as they come. Each entry names the task (its index) it follows.
    log_followers: HashMap<JobId, Vec<(ConnId, RequestId, u32)>>,
    /// `Logs` requests waiting for a page from the store, and for which task.
    reading: HashMap<(ConnId, RequestId), TaskId>,
    /// Clients watching a job's tasks and end.
    watchers: HashMap<JobId, Vec<(ConnId, RequestId)>>,
    /// How many jobs each watch request still waits for.
    watches: HashMap<(ConnId, RequestId), usize>,
    /// Jobs whose tasks changed state while handling the current input, to settle (note
    /// their end, announce it, release their dependents) before the input is done.
    touched: BTreeSet<JobId>,
    /// Effects gathered while handling one input.
    effects: Vec<Effect>,
    /// Store operations gathered while handling one input (sent as one Persist).
    ops: Vec<StoreOp>,
    /// When the periodic scans (idle connections, silent workers, overdue tasks) next run.
    next_scan: Timestamp,
    /// The latest frame previews of each job, in memory only, within a byte budget.
    previews: previews::Previews,
    /// Bytes of task output the store keeps for every job on record, as a running count
    /// (`FarmInfo::output_bytes`, the `buildcat_output_bytes` gauge): kept as lines arrive,
    /// middles drop and jobs go, so a scrape never sums the job table.
    output_bytes: u64,
}

impl Core {
    /// A core holding what was loaded from storage. Tasks that were started when the server
    /// stopped wait `reconnect_grace` for their workers to come back and reclaim them; only
    /// unclaimed ones go back to their queue. The returned ops are changes made while
    /// loading, to store before serving.
    pub fn new(config: CoreConfig, loaded: Loaded, now: Timestamp) -> (Core, Vec<StoreOp>) {
        let ids = match config.id_seed {
            Some(seed) => IdSource::seeded(seed),
            None => IdSource::from_entropy(),
        };
        let Loaded {
            jobs,
            next_number,
            paused_queues,
        } = loaded;
        let mut core = Core {
            config,
            jobs: HashMap::with_capacity(jobs.len()),
            numbers: BTreeMap::new(),
            next_number: next_number.max(1),
            queues: BTreeMap::new(),
            kinds: HashSet::new(),
            submitters: HashSet::new(),
            connections: BTreeMap::new(),
            workers: BTreeMap::new(),
            running: HashMap::new(),
            records: BTreeMap::new(),
            idle: BTreeMap::new(),
            idle_counter: 0,
            waiters: HashMap::new(),
            dependents: HashMap::new(),
            pending: HashMap::new(),
            next_token: 0,
            ids,
            delayed: BTreeSet::new(),
            expiring: BTreeSet::new(),
            orphans: BTreeMap::new(),
            lingering: HashMap::new(),
            log_followers: HashMap::new(),
            reading: HashMap::new(),
            watchers: HashMap::new(),
            watches: HashMap::new(),
            touched: BTreeSet::new(),
            effects: Vec::new(),
            ops: Vec::new(),
            next_scan: now,
            previews: previews::Previews::default(),
            output_bytes: 0,
        };
        for queue in paused_queues {
            let name = core.intern_queue(&queue);
            core.queue_mut(&name).paused = true;
        }
        for stored in jobs {
            let queue = core.intern_queue(&stored.job.queue);
            let kind = core.intern_kind(&stored.job.kind);
            let submitter = core.intern_submitter(&stored.job.submitter);
            let job = Job::from_stored(stored, queue, kind, submitter);
            core.insert_loaded(job, now);
        }
        // A dependency's end is stored before the release of the jobs waiting on it (the
        // release is the next commit): a server stopped in between left them deferred on a
        // dependency that has ended. Release them now. Sorted, so that loading is the same
        // every time.
        let mut ended: Vec<Dependency> = core
            .dependents
            .keys()
            .copied()
            .filter(|dependency| !core.dependency_open(*dependency))
            .collect();
        ended.sort_unstable();
        for dependency in ended {
            core.release_dependents(now, dependency);
        }
        core.settle(now);
        let ops = std::mem::take(&mut core.ops);
        (core, ops)
    }

    /// When the core next needs an [`Input::Tick`]: the earliest retry due, orphan grace
    /// end, retention expiry or periodic scan. `None` when nothing is waiting on time.
    ///
    /// The shell sleeps until then (or until an input arrives); tests jump the clock there.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let retry = self.delayed.first().map(|(due, _)| *due);
        let orphan = self.orphans.values().map(|orphan| orphan.deadline).min();
        let quarantine = self
            .records
            .values()
            .filter_map(|record| record.quarantine.as_ref()?.until)
            .min();
        let prune = self
            .expiring
            .first()
            .map(|(ended, _)| ended.plus(self.config.retention + Duration::from_millis(1)));
        let scan = (!self.connections.is_empty()).then_some(self.next_scan);
        [retry, orphan, quarantine, prune, scan]
            .into_iter()
            .flatten()
            .min()
    }

    /// How many jobs the core holds.
    pub fn job_count(&self) -> usize {
        self.jobs.len()
    }

    /// How many tasks the core holds, in all its jobs.
    pub fn task_count(&self) -> usize {
        self.jobs.values().map(|job| job.tasks.len()).sum()
    }

    /// Turns [`Effect::Notice`]s on or off (see [`CoreConfig::notices`]).
    pub fn set_notices(&mut self, on: bool) {
        self.config.notices = on;
    }

    /// Handles one input and returns what the shell must do.
    pub fn handle(&mut self, now: Timestamp, input: Input) -> Vec<Effect> {
        match input {
            Input::Connected { conn, role } => {
                let connection = Connection {
                    role,
                    in_flight: 0,
                    last_request: now,
                    subscribed: Vec::new(),
                };
                self.connections.insert(conn, connection);
            }
            Input::Request { conn, id, request } => self.request(now, conn, id, request),
            Input::Disconnected { conn } => self.forget_connection(now, conn, true),
            Input::Persisted { tokens, result } => {
                let error = result.err();
                for token in tokens {
                    self.persisted(now, token, error.as_ref());
                }
            }
            Input::Tick => self.tick(now),
            Input::OutputRead { read, result } => self.output_read(read, result),
        }
        self.settle(now);
        self.flush_ops(None);
        std::mem::take(&mut self.effects)
    }

    pub(super) fn flush_ops(&mut self, token: Option<Token>) {
        if !self.ops.is_empty() || token.is_some() {
            let ops = std::mem::take(&mut self.ops);
            self.effects.push(Effect::Persist { ops, token });
        }
    }

    pub(super) fn reply(
        &mut self,
        conn: ConnId,
        id: RequestId,
        reply: Result<Reply, RequestError>,
    ) {
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.in_flight = connection.in_flight.saturating_sub(1);
        }
        self.effects
            .push(Effect::Send(conn, ServerFrame::Reply { id, reply }));
    }

    pub(super) fn request(
        &mut self,
        now: Timestamp,
        conn: ConnId,
        id: RequestId,
        request: Request,
    ) {
        let limit = self.config.max_in_flight;
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        let role = connection.role;
        connection.last_request = now;
        if connection.in_flight >= limit {
            let refusal = ServerFrame::Reply {
                id,
                reply: Err(RequestError::TooManyInFlight { limit }),
            };
            self.effects.push(Effect::Send(conn, refusal));
            return;
        }
        connection.in_flight += 1;
        if let Some(worker) = self.workers.get_mut(&conn) {
            worker.last_seen = now;
        }
        let worker_only = matches!(
            request,
            Request::Register(_)
                | Request::Heartbeat
                | Request::Complete(_)
                | Request::Log { .. }
                | Request::Progress { .. }
                | Request::Preview(_)
                | Request::UpdateTools(_)
        );
        if worker_only && role != Role::Worker {
            let error = RequestError::WrongRole {
                request: request.name().to_owned(),
                role: "client".to_owned(),
            };
            self.reply(conn, id, Err(error));
            return;
        }
        match request {
            Request::Submit(jobs) => self.submit(now, conn, id, jobs),
            Request::Wait(job) => match self.resolve(job) {
                Err(error) => self.reply(conn, id, Err(error)),
                Ok(job_id) => {
                    if let Some(status) = self.ended_status(job_id) {
                        self.reply(conn, id, Ok(Reply::Ended(status)));
                    } else {
                        self.waiters.entry(job_id).or_default().push((conn, id));
                        self.subscribe(conn, job_id);
                    }
                }
            },
            Request::Job(job) => {
                let reply = self.resolve(job).and_then(|job_id| {
                    self.job_status(job_id)
                        .map(Reply::Job)
                        .ok_or(RequestError::UnknownJob(job))
                });
                self.reply(conn, id, reply);
            }
            Request::Task(task) => {
                let reply = self.resolve_task(task).and_then(|task_id| {
                    self.task_status(task_id)
                        .map(Reply::Task)
                        .ok_or(RequestError::UnknownJob(task.job))
                });
                self.reply(conn, id, reply);
            }
            Request::Info => {
                let mut info = self.info();
                self.fit_info(&mut info);
                self.reply(conn, id, Ok(Reply::Info(info)));
            }
            Request::Register(registration) => self.register(now, conn, id, registration),
            Request::Heartbeat => self.reply(conn, id, Ok(Reply::Ack)),
            Request::Complete(completion) => self.complete(now, conn, id, completion),
            Request::Log {
                task,
                attempt,
                lines,
                stderr,
            } => {
                self.append_log(task, attempt, lines, &stderr);
                self.reply(conn, id, Ok(Reply::Ack));
            }
            Request::Progress {
                task,
                attempt,
                progress,
            } => {
                self.record_progress(task, attempt, progress);
                self.reply(conn, id, Ok(Reply::Ack));
            }
            Request::Cancel(targets) | Request::Requeue(Requeue::Tasks { targets, .. })
                if targets.len() > manage::MAX_CHANGES =>
            {
                self.reply(conn, id, Err(manage::too_many(targets.len())));
            }
            Request::Pause(jobs) | Request::Resume(jobs) | Request::Delete(jobs)
                if jobs.len() > manage::MAX_CHANGES =>
            {
                self.reply(conn, id, Err(manage::too_many(jobs.len())));
            }
            Request::Cancel(targets) => {
                let changes = targets
                    .into_iter()
                    .map(|target| self.cancel(now, target))
                    .collect();
                self.reply_once_stored(now, conn, id, Reply::Changes(changes));
            }
            Request::Requeue(requeue) => {
                let changes = self.requeue(now, requeue);
                self.reply_once_stored(now, conn, id, Reply::Changes(changes));
            }
            Request::Pause(jobs) => {
                let changes = jobs
                    .into_iter()
                    .map(|job| self.pause(now, job, true))
                    .collect();
                self.reply_once_stored(now, conn, id, Reply::Changes(changes));
            }
            Request::Resume(jobs) => {
                let changes = jobs
                    .into_iter()
                    .map(|job| self.pause(now, job, false))
                    .collect();
                self.reply_once_stored(now, conn, id, Reply::Changes(changes));
            }
            Request::PauseQueue { queue, paused } => match self.pause_queue(now, &queue, paused) {
                Ok(()) => self.reply_once_stored(now, conn, id, Reply::Ack),
                Err(error) => self.reply(conn, id, Err(error)),
            },
            Request::SetPriority { job, priority } => {
                let change = self.set_priority(job, priority);
                self.reply_once_stored(now, conn, id, Reply::Changes(vec![change]));
            }
            Request::Delete(jobs) => {
                let changes = jobs.into_iter().map(|job| self.delete(job)).collect();
                self.reply_once_stored(now, conn, id, Reply::Changes(changes));
            }
            Request::Jobs(query) => {
                let (jobs, more) = self.list(&query);
                self.reply(conn, id, Ok(Reply::Jobs { jobs, more }));
            }
            Request::Logs { task, from, follow } => match self.resolve_task(task) {
                Ok(task) => self.logs(conn, id, task, from, follow),
                Err(error) => self.reply(conn, id, Err(error)),
            },
            Request::Watch(jobs) => self.watch(conn, id, jobs),
            Request::EnableWorker(name) => {
                let reply = self.enable_worker(now, &name).map(|()| Reply::Ack);
                self.reply(conn, id, reply);
            }
            Request::Preview(preview) => {
                let reply = self.preview(now, conn, preview).map(|()| Reply::Ack);
                self.reply(conn, id, reply);
            }
            Request::Previews { job, image } => {
                let reply = self.job_previews(job, image).map(Reply::Previews);
                self.reply(conn, id, reply);
            }
            Request::UpdateTools(tools) => {
                let reply = self.update_tools(conn, tools).map(|()| Reply::Ack);
                self.reply(conn, id, reply);
            }
            Request::PauseWorker { name, paused } => {
                let reply = self.pause_worker(now, &name, paused).map(|()| Reply::Ack);
                self.reply(conn, id, reply);
            }
        }
    }

    pub(super) fn tick(&mut self, now: Timestamp) {
        if now >= self.next_scan {
            self.next_scan = now.plus(SCAN_INTERVAL);
            self.scan(now);
        }
        self.expire_orphans(now);
        self.end_quarantines(now);
        self.release_due_retries(now);
        self.prune_expired(now);
    }

    /// Answers `reply` once the changes made for it are committed: a person told "canceled"
    /// can count on it after a crash. A failed commit answers a storage error instead (the
    /// change holds until the server restarts, which would undo it).
    fn reply_once_stored(&mut self, now: Timestamp, conn: ConnId, id: RequestId, reply: Reply) {
        // The jobs the change ended or started again are settled in the same commit.
        self.settle(now);
        let token = self.next_token();
        self.pending
            .insert(token, AwaitingCommit::Reply { conn, id, reply });
        self.flush_ops(Some(token));
    }

    /// A new commit token.
    pub(super) fn next_token(&mut self) -> Token {
        let token = self.next_token;
        self.next_token += 1;
        token
    }

    /// The farm at a glance.
    pub fn info(&self) -> FarmInfo {
        let queues = self
            .queues
            .values()
            .filter(|queue| queue.paused || queue.counts.total > 0)
            .map(Queue::summary)
            .collect();
        let quarantine = |worker: &Worker| {
            let record = self.records.get(&worker.registration.name)?;
            let quarantine = record.quarantine.as_ref()?;
            // The absolute end, so whoever reads it later (a submit's warning) can say when
            // the worker comes back by itself without knowing when it was quarantined.
            Some(match quarantine.until {
                Some(until) => format!(
                    "{}; it ends by itself at {}",
                    quarantine.reason,
                    buildcat_proto::view::rfc3339(until)
                ),
                None => quarantine.reason.clone(),
            })
        };
        let mut workers: Vec<WorkerSummary> = self
            .workers
            .values()
            .map(|worker| WorkerSummary {
                name: worker.registration.name.clone(),
                host: worker.registration.host.clone(),
                root: worker.registration.root.clone(),
                queues: worker.registration.queues.clone(),
                activity: if worker.current.is_some() {
                    WorkerActivity::Busy
                } else if quarantine(worker).is_some() {
                    WorkerActivity::Quarantined
                } else if self.worker_paused(&worker.registration.name) {
                    WorkerActivity::Paused
                } else {
                    WorkerActivity::Idle
                },
                task: worker.current.map(|(id, _)| RunningTask {
                    id,
                    number: self.jobs.get(&id.job).map_or(0, |job| job.number),
                }),
                connected_at: worker.connected_at,
                quarantine: quarantine(worker),
                tools: worker.registration.tools.clone(),
                gpus: worker.registration.gpus.clone(),
                paused: self.worker_paused(&worker.registration.name),
            })
            .collect();
        workers.sort_by(|a, b| a.name.cmp(&b.name));
        let mut unserved: Vec<Unserved> = Vec::new();
        for (name, queue) in &self.queues {
            if queue.paused {
                // Held by a person, not waiting for a worker.
                continue;
            }
            for ((kind, gpus), tasks) in &queue.pending_kinds {
                let mut serving = self
                    .workers
                    .values()
                    .filter(|worker| worker.serves(name, kind))
                    .peekable();
                // No worker has the kind: that is the reason, whatever the GPUs. Workers
                // that have it but not the GPUs: the GPUs are.
                let missing = if serving.peek().is_none() {
                    GpuRequirement::NONE
                } else if serving.any(|worker| gpus.is_met_by(&worker.registration.gpus)) {
                    continue;
                } else {
                    *gpus
                };
                let same = unserved.iter_mut().find(|entry| {
                    *entry.queue == **name && *entry.kind == **kind && entry.gpus == missing
                });
                match same {
                    Some(entry) => entry.tasks += *tasks,
                    None => unserved.push(Unserved {
                        queue: name.to_string(),
                        kind: kind.to_string(),
                        tasks: *tasks,
                        gpus: missing,
                    }),
                }
            }
        }
        unserved.sort_by(|a, b| {
            (&a.queue, &a.kind, a.gpus.count, a.gpus.memory_mib).cmp(&(
                &b.queue,
                &b.kind,
                b.gpus.count,
                b.gpus.memory_mib,
            ))
        });
        FarmInfo {
            queues,
            workers,
            unserved,
            truncated: false,
            output_bytes: self.output_bytes,
        }
    }

    /// Whether the queue named `name` is paused.
    pub(super) fn queue_paused(&self, name: &str) -> bool {
        self.queues.get(name).is_some_and(|queue| queue.paused)
    }

    /// The job with its tasks, as `status` shows it.
    pub(super) fn job_status(&self, id: JobId) -> Option<buildcat_proto::JobStatus> {
        let job = self.jobs.get(&id)?;
        Some(self.fit_status(job.status(self.queue_paused(&job.queue))))
    }

    /// The job's final status if it has ended.
    pub(super) fn ended_status(&self, id: JobId) -> Option<buildcat_proto::JobStatus> {
        let job = self.jobs.get(&id)?;
        if job.ended() {
            self.job_status(id)
        } else {
            None
        }
    }

    /// Everything about one task.
    pub(super) fn task_status(&self, id: TaskId) -> Option<buildcat_proto::TaskStatus> {
        let job = self.jobs.get(&id.job)?;
        job.task_status(id.index, self.queue_paused(&job.queue))
    }

    /// A task's state as kept (never paused).
    pub(super) fn task_state(&self, id: TaskId) -> Option<TaskState> {
        Some(self.jobs.get(&id.job)?.task(id.index)?.state)
    }
}

mod connections;
mod dispatch;
mod follow;
mod handles;
mod ids;
#[cfg(test)]
mod invariants;
mod job;
mod lifecycle;
mod manage;
mod notices;
mod previews;
#[cfg(test)]
mod tests;
mod worker_pause;

pub use previews::{DEFAULT_PREVIEW_BUDGET, DEFAULT_PREVIEWS_PER_JOB};
