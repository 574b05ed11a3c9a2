//! The farm's state machine: queues, jobs, workers and who runs what.
//!
//! [`Core::handle`] takes one [`Input`] at a time with the current time and returns the
//! [`Effect`]s the shell must carry out: frames to send, changes to store, connections to
//! close. It does no I/O and reads no clock, so every rule here is tested without sockets.
//!
//! Durability: a submission becomes visible (queued, dispatchable, acknowledged) only after
//! the store has committed it; the core parks it under a [`Token`] until
//! [`Input::Persisted`] comes back. Completions are applied at once and acknowledged to the
//! worker, and announced to waiting clients, once committed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use buildcat_proto::{
    Assignment, Attempt, AttemptOutcome, Completion, Failure, FarmInfo, JobEvent, JobId,
    JobOptions, JobProgress, JobState, JobStatus, NewJob, Outcome, QueueSummary, Reply, Request,
    RequestError, RequestId, Role, ServerFrame, Timestamp, Unserved, WorkerActivity,
    WorkerRegistration, WorkerSummary,
};

use crate::store::{StoreError, StoreOp, StoredJob};

/// Identifies one connection for the life of the server.
pub type ConnId = u64;

/// Identifies a batch of store operations whose commit the core waits for.
pub type Token = u64;

/// How many times a job may lose its worker (crash, network loss) before it fails with
/// "worker lost". Separate from `max_attempts`, which counts failures the job itself reports,
/// so a render is not failed because a machine rebooted, yet a job that kills every worker it
/// lands on does not loop forever.
pub const MAX_WORKER_LOSSES: u32 = 3;

/// How often the core looks over every connection and worker for silence and overdue
/// jobs. Those checks scan, so they run on this coarse period rather than at each peer's
/// exact deadline; a second is far finer than any of the timeouts involved.
pub const SCAN_INTERVAL: Duration = Duration::from_secs(1);

/// Settings of the state machine.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// How often workers must heartbeat.
    pub heartbeat: Duration,
    /// Heartbeats a worker may miss before it is considered lost.
    pub missed_heartbeats: u32,
    /// How long finished jobs are kept.
    pub retention: Duration,
    /// How long a worker whose connection dropped has to reconnect and reclaim its jobs.
    pub reconnect_grace: Duration,
    /// The wait before the first retry of a failed attempt; it doubles with each retry.
    pub retry_backoff: Duration,
    /// The longest wait between retries.
    pub max_retry_backoff: Duration,
    /// How long after a job's timeout the server stops waiting for its worker to report it.
    pub timeout_backstop: Duration,
    /// Output lines kept per job; older lines are dropped first.
    pub max_log_lines: usize,
    /// Requests one connection may have unanswered at once.
    pub max_in_flight: u32,
    /// How long a worker connection may stay unregistered after its hello.
    pub register_timeout: Duration,
    /// How long a client connection with nothing in flight may stay silent.
    pub client_idle_timeout: Duration,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            heartbeat: Duration::from_secs(5),
            missed_heartbeats: 3,
            retention: Duration::from_secs(24 * 60 * 60),
            reconnect_grace: Duration::from_secs(15),
            retry_backoff: Duration::from_secs(2),
            max_retry_backoff: Duration::from_secs(300),
            timeout_backstop: Duration::from_secs(30),
            max_log_lines: 10_000,
            max_in_flight: 100_000,
            register_timeout: Duration::from_secs(10),
            client_idle_timeout: Duration::from_secs(3600),
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
}

/// A job as the core holds it. Queue and kind names are shared between jobs.
#[derive(Debug, Clone)]
struct Job {
    /// The job's id.
    id: JobId,
    /// Its queue.
    queue: Arc<str>,
    /// Its kind.
    kind: Arc<str>,
    /// Its encoded arguments.
    args: Arc<[u8]>,
    /// As submitted.
    options: JobOptions,
    /// Where it is.
    state: JobState,
    /// When it was submitted.
    created_at: Timestamp,
    /// When it ended.
    ended_at: Option<Timestamp>,
    /// Every attempt so far.
    attempts: Vec<Attempt>,
    /// The output, once finished.
    result: Option<Vec<u8>>,
    /// Why it failed or was canceled.
    failure: Option<Box<Failure>>,
    /// How far the current attempt is (kept in memory only).
    progress: Option<Box<JobProgress>>,
    /// The output of the job's attempts (kept in memory only).
    log: Option<Box<JobLog>>,
    /// When a failed attempt's retry may start; the job is not in its queue's pending set
    /// until then.
    retry_at: Option<Timestamp>,
}

/// A job's output, bounded.
#[derive(Debug, Clone, Default)]
struct JobLog {
    /// The newest lines.
    lines: std::collections::VecDeque<String>,
    /// Older lines dropped to stay within the bound.
    dropped: u64,
}

impl Job {
    fn status(&self) -> JobStatus {
        JobStatus {
            id: self.id,
            queue: self.queue.to_string(),
            kind: self.kind.to_string(),
            state: self.state,
            options: self.options.clone(),
            created_at: self.created_at,
            ended_at: self.ended_at,
            attempts: self.attempts.clone(),
            result: self.result.clone(),
            failure: self.failure.as_deref().cloned(),
            progress: self.progress.as_deref().cloned(),
        }
    }

    fn stored(&self) -> StoredJob {
        StoredJob {
            status: self.status(),
            args: self.args.to_vec(),
        }
    }

    fn current_attempt(&self) -> u32 {
        self.attempts.last().map_or(0, |attempt| attempt.number)
    }

    fn worker_losses(&self) -> u32 {
        let lost = self
            .attempts
            .iter()
            .filter(|attempt| attempt.outcome == Some(AttemptOutcome::WorkerLost))
            .count();
        u32::try_from(lost).unwrap_or(u32::MAX)
    }

    fn queue_key(&self) -> QueueKey {
        (Reverse(self.options.priority), self.id)
    }

    fn failed_attempts(&self) -> u32 {
        let failed = self
            .attempts
            .iter()
            .filter(|attempt| matches!(attempt.outcome, Some(AttemptOutcome::Failed(_))))
            .count();
        u32::try_from(failed).unwrap_or(u32::MAX)
    }
}

/// The order jobs leave a queue: higher priority first, then older first.
type QueueKey = (Reverse<i32>, JobId);

/// One named queue.
#[derive(Debug, Default)]
struct Queue {
    /// Jobs waiting for a worker, in dispatch order.
    pending: BTreeSet<QueueKey>,
    /// How many of the pending jobs are of each kind, to tell which no worker can run.
    pending_kinds: HashMap<Arc<str>, u64>,
    /// Counts by state, for `info`.
    summary: QueueSummary,
}

impl Queue {
    /// Adds a job to the dispatch order.
    fn push(&mut self, key: QueueKey, kind: &Arc<str>) {
        if self.pending.insert(key) {
            *self.pending_kinds.entry(kind.clone()).or_default() += 1;
        }
    }

    /// Takes a job out of the dispatch order, if it is in it.
    fn take(&mut self, key: &QueueKey, kind: &Arc<str>) {
        if self.pending.remove(key)
            && let Some(count) = self.pending_kinds.get_mut(kind)
        {
            *count -= 1;
            if *count == 0 {
                self.pending_kinds.remove(kind);
            }
        }
    }
}

/// A registered worker.
#[derive(Debug)]
struct Worker {
    /// As the worker introduced itself.
    registration: WorkerRegistration,
    /// The job it runs, with the attempt number.
    current: Option<(JobId, u32)>,
    /// When it last sent anything.
    last_seen: Timestamp,
    /// When it registered.
    connected_at: Timestamp,
    /// Its place in the idle order while idle.
    idle_since: Option<u64>,
    /// Kinds it can run, for quick lookups.
    kinds: HashSet<String>,
}

/// A connection the core knows.
#[derive(Debug)]
struct Connection {
    /// Client or worker.
    role: Role,
    /// Requests not yet answered.
    in_flight: u32,
    /// When it last sent a request (or connected).
    last_request: Timestamp,
    /// Jobs it waits on, follows or watches (may repeat, may have ended), so that its
    /// subscriptions are dropped without scanning everyone's.
    subscribed: Vec<JobId>,
}

/// What the core waits on a commit for.
#[derive(Debug)]
enum Pending {
    /// Jobs to make visible and acknowledge.
    Submit {
        /// Who submitted.
        conn: ConnId,
        /// Their request.
        id: RequestId,
        /// The jobs, not yet visible.
        jobs: Vec<Job>,
    },
    /// A completion to acknowledge, and a job end to announce.
    Complete {
        /// The worker.
        conn: ConnId,
        /// Its request.
        id: RequestId,
        /// The job, if it ended for good.
        ended: Option<JobId>,
    },
}

/// The farm's state.
#[derive(Debug)]
pub struct Core {
    /// Settings.
    config: CoreConfig,
    /// Every job on record. Boxed: the table's buckets stay small (a power of two of them,
    /// mostly empty, would otherwise each be the size of a whole job).
    jobs: HashMap<JobId, Box<Job>>,
    /// Every queue that has held a job, by name.
    queues: BTreeMap<Arc<str>, Queue>,
    /// Interned kind names.
    kinds: HashSet<Arc<str>>,
    /// Connected peers.
    connections: HashMap<ConnId, Connection>,
    /// Registered workers, by connection.
    workers: HashMap<ConnId, Worker>,
    /// Idle workers, longest idle first.
    idle: BTreeMap<u64, ConnId>,
    /// Next idle-order number.
    idle_counter: u64,
    /// Clients waiting for a job to end.
    waiters: HashMap<JobId, Vec<(ConnId, RequestId)>>,
    /// Deferred jobs waiting on each job.
    dependents: HashMap<JobId, Vec<JobId>>,
    /// Commits the core waits for.
    pending: HashMap<Token, Pending>,
    /// Next token.
    next_token: Token,
    /// Makes job ids strictly increasing.
    id_context: uuid::ContextV7,
    /// Failed jobs waiting for their retry, by when it is due.
    delayed: BTreeSet<(Timestamp, JobId)>,
    /// Finished jobs by when they ended, so pruning looks only at the expired ones.
    finished: BTreeSet<(Timestamp, JobId)>,
    /// Running jobs whose worker's connection dropped: the worker's name, the attempt and
    /// when the grace period ends.
    orphans: HashMap<JobId, (String, u32, Timestamp)>,
    /// Clients following a job's output.
    log_followers: HashMap<JobId, Vec<(ConnId, RequestId)>>,
    /// Clients watching a job's progress and end.
    watchers: HashMap<JobId, Vec<(ConnId, RequestId)>>,
    /// How many jobs each watch request still waits for.
    watches: HashMap<(ConnId, RequestId), usize>,
    /// Effects gathered while handling one input.
    effects: Vec<Effect>,
    /// Store operations gathered while handling one input (sent as one Persist).
    ops: Vec<StoreOp>,
    /// When the periodic scans (idle connections, silent workers, overdue jobs) next run.
    next_scan: Timestamp,
}

impl Core {
    /// A core holding `jobs` loaded from storage. Jobs that were started when the server
    /// stopped go back to their queue; the returned ops record that.
    pub fn new(config: CoreConfig, stored: Vec<StoredJob>, now: Timestamp) -> (Core, Vec<StoreOp>) {
        let mut core = Core {
            config,
            jobs: HashMap::with_capacity(stored.len()),
            queues: BTreeMap::new(),
            kinds: HashSet::new(),
            connections: HashMap::new(),
            workers: HashMap::new(),
            idle: BTreeMap::new(),
            idle_counter: 0,
            waiters: HashMap::new(),
            dependents: HashMap::new(),
            pending: HashMap::new(),
            next_token: 0,
            id_context: uuid::ContextV7::new(),
            delayed: BTreeSet::new(),
            finished: BTreeSet::new(),
            orphans: HashMap::new(),
            log_followers: HashMap::new(),
            watchers: HashMap::new(),
            watches: HashMap::new(),
            effects: Vec::new(),
            ops: Vec::new(),
            next_scan: now,
        };
        for StoredJob { status, args } in stored {
            let job = Job {
                id: status.id,
                queue: core.intern_queue(&status.queue),
                kind: core.intern_kind(&status.kind),
                args: args.into(),
                options: status.options,
                state: status.state,
                created_at: status.created_at,
                ended_at: status.ended_at,
                attempts: status.attempts,
                result: status.result,
                failure: status.failure.map(Box::new),
                progress: None,
                log: None,
                retry_at: None,
            };
            core.insert_loaded(job, now);
        }
        let ops = std::mem::take(&mut core.ops);
        (core, ops)
    }

    fn insert_loaded(&mut self, mut job: Job, now: Timestamp) {
        if job.state == JobState::Started {
            // The server stopped while this ran; its worker has lost it.
            if let Some(attempt) = job.attempts.last_mut() {
                attempt.ended_at = Some(now);
                attempt.outcome = Some(AttemptOutcome::WorkerLost);
            }
            job.state = JobState::Queued;
            self.ops.push(StoreOp::Update(job.status()));
        }
        let id = job.id;
        let state = job.state;
        if state == JobState::Finished {
            self.finished
                .insert((job.ended_at.unwrap_or(job.created_at), id));
        }
        let key = job.queue_key();
        let queue = self.queue_mut(&job.queue);
        *queue.summary.count_mut(state) += 1;
        if state == JobState::Queued {
            queue.push(key, &job.kind);
        }
        if state == JobState::Deferred {
            for dependency in &job.options.after {
                self.dependents.entry(*dependency).or_default().push(id);
            }
        }
        self.jobs.insert(id, Box::new(job));
    }

    /// When the core next needs an [`Input::Tick`]: the earliest retry due, orphan grace
    /// end, retention expiry or periodic scan. `None` when nothing is waiting on time.
    ///
    /// The shell sleeps until then (or until an input arrives); tests jump the clock there.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let retry = self.delayed.first().map(|(due, _)| *due);
        let orphan = self
            .orphans
            .values()
            .map(|(_, _, deadline)| *deadline)
            .min();
        let prune = self
            .finished
            .first()
            .map(|(ended, _)| ended.plus(self.config.retention + Duration::from_millis(1)));
        let scan = (!self.connections.is_empty()).then_some(self.next_scan);
        [retry, orphan, prune, scan].into_iter().flatten().min()
    }

    /// How many jobs the core holds.
    pub fn job_count(&self) -> usize {
        self.jobs.len()
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
                let error = result.err().map(|e| e.to_string());
                for token in tokens {
                    self.persisted(now, token, error.as_deref());
                }
            }
            Input::Tick => self.tick(now),
        }
        self.flush_ops(None);
        std::mem::take(&mut self.effects)
    }

    fn flush_ops(&mut self, token: Option<Token>) {
        if !self.ops.is_empty() || token.is_some() {
            let ops = std::mem::take(&mut self.ops);
            self.effects.push(Effect::Persist { ops, token });
        }
    }

    fn reply(&mut self, conn: ConnId, id: RequestId, reply: Result<Reply, RequestError>) {
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.in_flight = connection.in_flight.saturating_sub(1);
        }
        self.effects
            .push(Effect::Send(conn, ServerFrame::Reply { id, reply }));
    }

    fn request(&mut self, now: Timestamp, conn: ConnId, id: RequestId, request: Request) {
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
        );
        if worker_only && role != Role::Worker {
            let name = match &request {
                Request::Register(_) => "register",
                Request::Heartbeat => "heartbeat",
                Request::Log { .. } => "log",
                Request::Progress { .. } => "progress",
                _ => "complete",
            };
            let error = RequestError::WrongRole {
                request: name.to_owned(),
                role: "client".to_owned(),
            };
            self.reply(conn, id, Err(error));
            return;
        }
        match request {
            Request::Submit(jobs) => self.submit(now, conn, id, jobs),
            Request::Wait(job) => match self.jobs.get(&job) {
                None => self.reply(conn, id, Err(RequestError::UnknownJob(job))),
                Some(found) if found.state.is_terminal() => {
                    let status = found.status();
                    self.reply(conn, id, Ok(Reply::Ended(status)));
                }
                Some(_) => {
                    self.waiters.entry(job).or_default().push((conn, id));
                    self.subscribe(conn, job);
                }
            },
            Request::Job(job) => {
                let reply = match self.jobs.get(&job) {
                    Some(found) => Ok(Reply::Job(found.status())),
                    None => Err(RequestError::UnknownJob(job)),
                };
                self.reply(conn, id, reply);
            }
            Request::Info => {
                let info = self.info();
                self.reply(conn, id, Ok(Reply::Info(info)));
            }
            Request::Register(registration) => self.register(now, conn, id, registration),
            Request::Heartbeat => self.reply(conn, id, Ok(Reply::Ack)),
            Request::Complete(completion) => self.complete(now, conn, id, completion),
            Request::Log {
                job,
                attempt,
                lines,
            } => {
                self.append_log(job, attempt, lines);
                self.reply(conn, id, Ok(Reply::Ack));
            }
            Request::Progress {
                job,
                attempt,
                progress,
            } => {
                self.record_progress(job, attempt, progress);
                self.reply(conn, id, Ok(Reply::Ack));
            }
            Request::Cancel(jobs) => {
                let changes = jobs.into_iter().map(|job| self.cancel(now, job)).collect();
                self.reply(conn, id, Ok(Reply::Changes(changes)));
            }
            Request::Requeue(target) => {
                let changes = self.requeue(now, target);
                self.reply(conn, id, Ok(Reply::Changes(changes)));
            }
            Request::Jobs(query) => {
                let jobs = self.list(&query);
                self.reply(conn, id, Ok(Reply::Jobs(jobs)));
            }
            Request::Logs { job, follow } => self.logs(conn, id, job, follow),
            Request::Watch(jobs) => self.watch(conn, id, jobs),
        }
    }

    fn submit(&mut self, now: Timestamp, conn: ConnId, id: RequestId, new_jobs: Vec<NewJob>) {
        if let Err(message) = self.validate(&new_jobs) {
            self.reply(conn, id, Err(RequestError::Invalid(message)));
            return;
        }
        let mut jobs = Vec::with_capacity(new_jobs.len());
        for new in new_jobs {
            let mut options = new.options;
            options.max_attempts = options.max_attempts.max(1);
            let job = Job {
                id: JobId::new(now, &self.id_context),
                queue: self.intern_queue(&new.queue),
                kind: self.intern_kind(&new.kind),
                args: new.args.into(),
                options,
                state: JobState::Queued,
                created_at: now,
                ended_at: None,
                attempts: Vec::new(),
                result: None,
                failure: None,
                progress: None,
                log: None,
                retry_at: None,
            };
            self.ops.push(StoreOp::Insert(job.stored()));
            jobs.push(job);
        }
        let token = self.next_token;
        self.next_token += 1;
        self.pending
            .insert(token, Pending::Submit { conn, id, jobs });
        self.flush_ops(Some(token));
    }

    fn validate(&self, jobs: &[NewJob]) -> Result<(), String> {
        for job in jobs {
            if job.queue.trim().is_empty() {
                return Err("queue name is empty".to_owned());
            }
            if job.kind.trim().is_empty() {
                return Err("job kind is empty".to_owned());
            }
            for dependency in &job.options.after {
                if !self.jobs.contains_key(dependency) {
                    return Err(format!(
                        "job depends on {dependency}, which the server does not know"
                    ));
                }
            }
        }
        Ok(())
    }

    fn persisted(&mut self, now: Timestamp, token: Token, error: Option<&str>) {
        let Some(pending) = self.pending.remove(&token) else {
            return;
        };
        match pending {
            Pending::Submit { conn, id, jobs } => {
                if let Some(error) = error {
                    self.reply(conn, id, Err(RequestError::Storage(error.to_owned())));
                    return;
                }
                let ids = jobs.iter().map(|job| job.id).collect();
                self.reply(conn, id, Ok(Reply::Submitted(ids)));
                for job in jobs {
                    self.admit(now, job);
                }
            }
            Pending::Complete { conn, id, ended } => {
                let reply = match error {
                    None => Ok(Reply::Ack),
                    Some(error) => Err(RequestError::Storage(error.to_owned())),
                };
                if self.connections.contains_key(&conn) {
                    self.reply(conn, id, reply);
                }
                if let Some(job) = ended {
                    self.announce_end(job);
                }
            }
        }
    }

    /// Makes a committed job visible: deferred, failed for a failed dependency, or queued.
    fn admit(&mut self, now: Timestamp, mut job: Job) {
        let mut waiting_on = Vec::new();
        let mut broken = None;
        for dependency in &job.options.after {
            match self.jobs.get(dependency).map(|d| d.state) {
                Some(JobState::Finished) | None => {}
                Some(state @ (JobState::Failed | JobState::Canceled)) => {
                    broken = Some(format!("dependency {dependency} {state}"));
                }
                Some(_) => waiting_on.push(*dependency),
            }
        }
        let id = job.id;
        if let Some(reason) = broken {
            job.state = JobState::Failed;
            job.ended_at = Some(now);
            job.failure = Some(Box::new(Failure::new(reason)));
            self.ops.push(StoreOp::Update(job.status()));
        } else if !waiting_on.is_empty() {
            job.state = JobState::Deferred;
            self.ops.push(StoreOp::Update(job.status()));
            for dependency in waiting_on {
                self.dependents.entry(dependency).or_default().push(id);
            }
        }
        let state = job.state;
        let queue = job.queue.clone();
        *self.queue_mut(&queue).summary.count_mut(state) += 1;
        self.jobs.insert(id, Box::new(job));
        if state == JobState::Queued {
            self.enqueue(now, id);
        }
    }

    /// Puts a queued job in its queue and hands it to an idle worker if one can take it.
    fn enqueue(&mut self, now: Timestamp, id: JobId) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let key = job.queue_key();
        let queue_name = job.queue.clone();
        let kind = job.kind.clone();
        self.queue_mut(&queue_name).push(key, &kind);
        // An idle worker has nothing to do in any of its queues, so the first idle worker
        // that serves this queue and can run this kind is the right one: the longest idle.
        let chosen = self.idle.values().copied().find(|conn| {
            self.workers.get(conn).is_some_and(|worker| {
                worker.kinds.contains(&*kind)
                    && worker
                        .registration
                        .queues
                        .iter()
                        .any(|q| **q == *queue_name)
            })
        });
        if let Some(conn) = chosen {
            self.assign(now, conn, id);
        }
    }

    /// Takes a job out of its queue's dispatch order, if it is in it.
    fn unqueue(&mut self, id: JobId) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let key = job.queue_key();
        let kind = job.kind.clone();
        let queue = job.queue.clone();
        self.queue_mut(&queue).take(&key, &kind);
    }

    fn queue_mut(&mut self, name: &Arc<str>) -> &mut Queue {
        self.queues.entry(name.clone()).or_insert_with(|| Queue {
            pending: BTreeSet::new(),
            pending_kinds: HashMap::new(),
            summary: QueueSummary {
                name: name.to_string(),
                ..QueueSummary::default()
            },
        })
    }

    fn intern_queue(&mut self, name: &str) -> Arc<str> {
        match self.queues.get_key_value(name) {
            Some((key, _)) => key.clone(),
            None => {
                let key: Arc<str> = Arc::from(name);
                self.queue_mut(&key);
                key
            }
        }
    }

    fn intern_kind(&mut self, kind: &str) -> Arc<str> {
        if let Some(existing) = self.kinds.get(kind) {
            return existing.clone();
        }
        let kind: Arc<str> = Arc::from(kind);
        self.kinds.insert(kind.clone());
        kind
    }

    fn set_state(&mut self, id: JobId, state: JobState) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let old = std::mem::replace(&mut job.state, state);
        if state == JobState::Finished {
            self.finished
                .insert((job.ended_at.unwrap_or(job.created_at), id));
        }
        let queue = job.queue.clone();
        let summary = &mut self.queue_mut(&queue).summary;
        *summary.count_mut(old) = summary.count(old).saturating_sub(1);
        *summary.count_mut(state) += 1;
    }

    /// Gives a queued job to an idle worker.
    fn assign(&mut self, now: Timestamp, conn: ConnId, id: JobId) {
        let Some(worker) = self.workers.get_mut(&conn) else {
            return;
        };
        if let Some(since) = worker.idle_since.take() {
            self.idle.remove(&since);
        }
        let worker_name = worker.registration.name.clone();
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let number = job.current_attempt() + 1;
        job.attempts.push(Attempt {
            number,
            worker: worker_name,
            started_at: now,
            ended_at: None,
            outcome: None,
        });
        let assignment = Assignment {
            job: id,
            attempt: number,
            queue: job.queue.to_string(),
            kind: job.kind.to_string(),
            args: job.args.to_vec(),
            timeout_ms: job.options.timeout_ms,
        };
        self.unqueue(id);
        self.set_state(id, JobState::Started);
        if let Some(worker) = self.workers.get_mut(&conn) {
            worker.current = Some((id, number));
        }
        self.record(id);
        self.effects
            .push(Effect::Send(conn, ServerFrame::Assign(assignment)));
    }

    /// The worker has no job: give it the best one it can run, or mark it idle.
    fn worker_ready(&mut self, now: Timestamp, conn: ConnId) {
        let Some(worker) = self.workers.get(&conn) else {
            return;
        };
        if worker.current.is_some() {
            return;
        }
        let mut found = None;
        for queue_name in &worker.registration.queues {
            let Some(queue) = self.queues.get(queue_name.as_str()) else {
                continue;
            };
            found = queue.pending.iter().find_map(|(_, id)| {
                let job = self.jobs.get(id)?;
                worker.kinds.contains(&*job.kind).then_some(*id)
            });
            if found.is_some() {
                break;
            }
        }
        match found {
            Some(id) => self.assign(now, conn, id),
            None => {
                let order = self.idle_counter;
                self.idle_counter += 1;
                self.idle.insert(order, conn);
                if let Some(worker) = self.workers.get_mut(&conn) {
                    worker.idle_since = Some(order);
                }
            }
        }
    }

    fn register(
        &mut self,
        now: Timestamp,
        conn: ConnId,
        id: RequestId,
        registration: WorkerRegistration,
    ) {
        if self.workers.contains_key(&conn) {
            let error = RequestError::Invalid("this connection is already registered".into());
            self.reply(conn, id, Err(error));
            return;
        }
        if registration.queues.is_empty() || registration.queues.iter().any(|q| q.is_empty()) {
            let error =
                RequestError::Invalid("a worker must serve at least one named queue".into());
            self.reply(conn, id, Err(error));
            return;
        }
        let kinds = registration.kinds.iter().cloned().collect();
        let mut current = None;
        for &(job_id, attempt) in &registration.running {
            if current.is_none() && self.reclaim(&registration.name, job_id, attempt) {
                current = Some((job_id, attempt));
            } else if self.jobs.get(&job_id).is_some_and(|job| {
                job.state == JobState::Canceled && job.current_attempt() == attempt
            }) {
                // Canceled while the worker was away: it still runs it, so tell it again.
                let stop = ServerFrame::Cancel {
                    job: job_id,
                    attempt,
                    reason: "canceled".to_owned(),
                };
                self.effects.push(Effect::Send(conn, stop));
            }
        }
        let name = registration.name.clone();
        self.workers.insert(
            conn,
            Worker {
                registration,
                current,
                last_seen: now,
                connected_at: now,
                idle_since: None,
                kinds,
            },
        );
        let heartbeat_ms = u64::try_from(self.config.heartbeat.as_millis()).unwrap_or(u64::MAX);
        // How long a job waits for a worker the server no longer hears from: the grace
        // after a dropped connection, or less where a silent one is dropped without it.
        let silence = self.config.heartbeat * self.config.missed_heartbeats;
        let hold = self.config.reconnect_grace.min(silence);
        let reconnect_grace_ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX);
        self.reply(
            conn,
            id,
            Ok(Reply::Registered {
                name,
                heartbeat_ms,
                reconnect_grace_ms,
            }),
        );
        self.worker_ready(now, conn);
    }

    /// A reconnecting worker still runs `job`: give it back if that attempt is still current.
    fn reclaim(&mut self, worker: &str, id: JobId, attempt: u32) -> bool {
        let Some(job) = self.jobs.get_mut(&id) else {
            return false;
        };
        if job.current_attempt() != attempt {
            return false;
        }
        let Some(last) = job.attempts.last_mut() else {
            return false;
        };
        match job.state {
            JobState::Queued if last.outcome == Some(AttemptOutcome::WorkerLost) => {
                last.ended_at = None;
                last.outcome = None;
                last.worker = worker.to_owned();
                self.unqueue(id);
                self.set_state(id, JobState::Started);
                self.record(id);
                true
            }
            JobState::Started => {
                // Back within the grace period, or the old connection's loss has not been
                // noticed yet: the job stays with this worker.
                self.orphans.remove(&id);
                last.worker = worker.to_owned();
                let holder = self
                    .workers
                    .iter()
                    .find(|(_, w)| w.current == Some((id, attempt)))
                    .map(|(conn, _)| *conn);
                if let Some(old) = holder
                    && let Some(w) = self.workers.get_mut(&old)
                {
                    w.current = None;
                }
                true
            }
            _ => false,
        }
    }

    fn complete(&mut self, now: Timestamp, conn: ConnId, id: RequestId, completion: Completion) {
        let Completion {
            job: job_id,
            attempt,
            outcome,
        } = completion;
        if let Some(worker) = self.workers.get_mut(&conn)
            && worker.current == Some((job_id, attempt))
        {
            worker.current = None;
        }
        // The job was canceled while it ran: the worker's report of that attempt is expected
        // and needs no warning; whatever it carries is not recorded.
        if self
            .jobs
            .get(&job_id)
            .is_some_and(|job| job.state == JobState::Canceled && job.current_attempt() == attempt)
        {
            self.reply(conn, id, Ok(Reply::Ack));
            self.worker_ready(now, conn);
            return;
        }
        let current = self.jobs.get(&job_id).is_some_and(|job| {
            job.current_attempt() == attempt
                && (job.state == JobState::Started
                    || (job.state == JobState::Queued
                        && job.attempts.last().and_then(|a| a.outcome.as_ref())
                            == Some(&AttemptOutcome::WorkerLost)))
        });
        if !current {
            tracing::warn!(job = %job_id, attempt, "refused a result for an attempt that is not current");
            self.reply(
                conn,
                id,
                Err(RequestError::StaleAttempt {
                    job: job_id,
                    attempt,
                }),
            );
            self.worker_ready(now, conn);
            return;
        }
        // A worker that interrupts its job is on its way out: it gets no more work.
        let leaving = outcome == Outcome::Interrupted;
        self.unqueue(job_id);
        let ended = self.end_attempt(now, job_id, outcome);
        let token = self.next_token;
        self.next_token += 1;
        self.pending.insert(
            token,
            Pending::Complete {
                conn,
                id,
                ended: ended.then_some(job_id),
            },
        );
        self.flush_ops(Some(token));
        if !leaving {
            self.worker_ready(now, conn);
        }
    }

    /// Records how the current attempt ended; returns whether the job ended for good.
    fn end_attempt(&mut self, now: Timestamp, id: JobId, outcome: Outcome) -> bool {
        let Some(job) = self.jobs.get_mut(&id) else {
            return false;
        };
        let (attempt_outcome, result, failure) = match outcome {
            Outcome::Finished(result) => (AttemptOutcome::Finished, Some(result), None),
            Outcome::Failed(failure) => {
                (AttemptOutcome::Failed(failure.clone()), None, Some(failure))
            }
            Outcome::Canceled => (
                AttemptOutcome::Canceled,
                None,
                Some(Failure::new("canceled")),
            ),
            Outcome::Interrupted => (AttemptOutcome::Interrupted, None, None),
        };
        let interrupted = attempt_outcome == AttemptOutcome::Interrupted;
        let canceled = attempt_outcome == AttemptOutcome::Canceled;
        if let Some(last) = job.attempts.last_mut() {
            last.ended_at = Some(now);
            last.outcome = Some(attempt_outcome);
        }
        let state = match (&result, &failure) {
            (Some(_), _) => JobState::Finished,
            _ if interrupted => JobState::Queued,
            _ if canceled => JobState::Canceled,
            _ if job.failed_attempts() < job.options.max_attempts => JobState::Queued,
            _ => JobState::Failed,
        };
        job.progress = None;
        if state.is_terminal() {
            job.ended_at = Some(now);
            job.result = result;
            job.failure = failure.map(Box::new);
        }
        self.set_state(id, state);
        self.record(id);
        if interrupted {
            // Not the job's fault: back in line at once, no attempt used up.
            self.enqueue(now, id);
            return false;
        }
        if state == JobState::Queued {
            self.schedule_retry(now, id);
            return false;
        }
        self.release_dependents(now, id);
        true
    }

    /// A failed attempt will be retried: after a backoff that doubles with each failure.
    fn schedule_retry(&mut self, now: Timestamp, id: JobId) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let failures = job.failed_attempts().max(1);
        let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
        let wait = self
            .config
            .retry_backoff
            .saturating_mul(factor)
            .min(self.config.max_retry_backoff);
        if wait.is_zero() {
            self.enqueue(now, id);
            return;
        }
        let due = now.plus(wait);
        job.retry_at = Some(due);
        self.delayed.insert((due, id));
    }

    /// Tells every client waiting on `id` that it ended.
    fn announce_end(&mut self, id: JobId) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let status = job.status();
        let dropped = job.log.as_ref().map_or(0, |log| log.dropped);
        for (conn, request) in self.waiters.remove(&id).unwrap_or_default() {
            self.reply(conn, request, Ok(Reply::Ended(status.clone())));
        }
        for (conn, request) in self.log_followers.remove(&id).unwrap_or_default() {
            let reply = Reply::Log {
                lines: Vec::new(),
                dropped,
            };
            self.reply(conn, request, Ok(reply));
        }
        for (conn, request) in self.watchers.remove(&id).unwrap_or_default() {
            self.event(conn, request, JobEvent::Ended(status.clone()));
            self.watch_done(conn, request);
        }
    }

    /// A job ended: wake or fail the jobs that were waiting on it.
    fn release_dependents(&mut self, now: Timestamp, id: JobId) {
        let Some(dependents) = self.dependents.remove(&id) else {
            return;
        };
        let Some(state) = self.jobs.get(&id).map(|job| job.state) else {
            return;
        };
        for dependent in dependents {
            let Some(job) = self.jobs.get(&dependent) else {
                continue;
            };
            if job.state != JobState::Deferred {
                continue;
            }
            if state == JobState::Finished {
                let ready = job.options.after.iter().all(|dep| {
                    self.jobs
                        .get(dep)
                        .is_none_or(|d| d.state == JobState::Finished)
                });
                if ready {
                    self.set_state(dependent, JobState::Queued);
                    self.record(dependent);
                    self.enqueue(now, dependent);
                }
            } else {
                let reason = format!("dependency {id} {state}");
                if let Some(job) = self.jobs.get_mut(&dependent) {
                    job.ended_at = Some(now);
                    job.failure = Some(Box::new(Failure::new(reason)));
                }
                self.set_state(dependent, JobState::Failed);
                self.record(dependent);
                self.announce_end(dependent);
                self.release_dependents(now, dependent);
            }
        }
    }

    /// Remembers that `conn` waits on, follows or watches `job`.
    fn subscribe(&mut self, conn: ConnId, job: JobId) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        connection.subscribed.push(job);
        let len = connection.subscribed.len();
        // A long-lived client subscribes to job after job; forget the ended ones now and then
        // (at doubling sizes, so the cost stays constant per subscription).
        if len >= 64 && len.is_power_of_two() {
            let mut subscribed = std::mem::take(&mut connection.subscribed);
            subscribed.sort_unstable();
            subscribed.dedup();
            subscribed.retain(|job| {
                [&self.waiters, &self.log_followers, &self.watchers]
                    .iter()
                    .any(|subscribers| subscribers.contains_key(job))
            });
            if let Some(connection) = self.connections.get_mut(&conn) {
                connection.subscribed = subscribed;
            }
        }
    }

    /// A connection ended. A worker's running job waits `reconnect_grace` for the worker
    /// to come back (`grace`), or is taken from it at once (a silent worker).
    fn forget_connection(&mut self, now: Timestamp, conn: ConnId, grace: bool) {
        let subscribed = self
            .connections
            .remove(&conn)
            .map(|connection| connection.subscribed)
            .unwrap_or_default();
        for job in subscribed {
            for subscribers in [
                &mut self.waiters,
                &mut self.log_followers,
                &mut self.watchers,
            ] {
                if let Some(list) = subscribers.get_mut(&job) {
                    list.retain(|(subscriber, _)| *subscriber != conn);
                    if list.is_empty() {
                        subscribers.remove(&job);
                    }
                }
            }
        }
        self.watches.retain(|(watcher, _), _| *watcher != conn);
        let Some(worker) = self.workers.remove(&conn) else {
            return;
        };
        if let Some(since) = worker.idle_since {
            self.idle.remove(&since);
        }
        let Some((id, attempt)) = worker.current else {
            return;
        };
        let name = worker.registration.name;
        if grace && !self.config.reconnect_grace.is_zero() {
            tracing::info!(worker = %name, job = %id, attempt, "worker disconnected while running a job; waiting for it to reconnect");
            let deadline = now.plus(self.config.reconnect_grace);
            self.orphans.insert(id, (name, attempt, deadline));
            return;
        }
        self.worker_lost(now, id, attempt, &name);
    }

    /// The worker running `id` is gone for good: requeue the job, or fail it after too many
    /// losses.
    fn worker_lost(&mut self, now: Timestamp, id: JobId, attempt: u32, worker: &str) {
        tracing::warn!(worker = %worker, job = %id, attempt, "worker lost while running a job");
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if job.state != JobState::Started || job.current_attempt() != attempt {
            return;
        }
        if let Some(last) = job.attempts.last_mut() {
            last.ended_at = Some(now);
            last.outcome = Some(AttemptOutcome::WorkerLost);
        }
        if job.worker_losses() < MAX_WORKER_LOSSES {
            self.set_state(id, JobState::Queued);
            self.record(id);
            self.enqueue(now, id);
        } else {
            let reason = format!(
                "worker lost: {MAX_WORKER_LOSSES} workers were lost while running this job, the \
                 last was {worker}"
            );
            job.ended_at = Some(now);
            job.failure = Some(Box::new(Failure::new(reason)));
            self.set_state(id, JobState::Failed);
            self.record(id);
            self.announce_end(id);
            self.release_dependents(now, id);
        }
    }

    fn tick(&mut self, now: Timestamp) {
        if now >= self.next_scan {
            self.next_scan = now.plus(SCAN_INTERVAL);
            self.scan(now);
        }
        self.expire_orphans(now);
        self.release_due_retries(now);
        self.prune_finished(now);
    }

    /// The checks that look at every connection: idle and unregistered peers, silent
    /// workers, jobs past their timeout.
    fn scan(&mut self, now: Timestamp) {
        // Idle timeouts: a worker that never registers, a client silent with nothing asked.
        let idle: Vec<(ConnId, String)> = self
            .connections
            .iter()
            .filter_map(|(conn, connection)| {
                let quiet = now.since(connection.last_request);
                match connection.role {
                    Role::Worker
                        if !self.workers.contains_key(conn)
                            && quiet > self.config.register_timeout =>
                    {
                        Some((*conn, "the worker did not register in time".to_owned()))
                    }
                    Role::Client
                        if connection.in_flight == 0 && quiet > self.config.client_idle_timeout =>
                    {
                        Some((*conn, "idle for too long".to_owned()))
                    }
                    _ => None,
                }
            })
            .collect();
        for (conn, reason) in idle {
            self.forget_connection(now, conn, false);
            self.effects.push(Effect::Close(conn, reason));
        }
        let silence = self.config.heartbeat * self.config.missed_heartbeats;
        let silent: Vec<ConnId> = self
            .workers
            .iter()
            .filter(|(_, worker)| now.since(worker.last_seen) > silence)
            .map(|(conn, _)| *conn)
            .collect();
        for conn in silent {
            let reason = format!(
                "no heartbeat for {}s; the worker is considered lost",
                silence.as_secs()
            );
            self.forget_connection(now, conn, false);
            self.effects.push(Effect::Close(conn, reason));
        }
        self.enforce_timeouts(now);
    }

    /// Orphans whose grace ended: their workers did not come back.
    fn expire_orphans(&mut self, now: Timestamp) {
        let expired_orphans: Vec<(JobId, u32, String)> = self
            .orphans
            .iter()
            .filter(|(_, (_, _, deadline))| *deadline <= now)
            .map(|(id, (worker, attempt, _))| (*id, *attempt, worker.clone()))
            .collect();
        for (id, attempt, worker) in expired_orphans {
            self.orphans.remove(&id);
            self.worker_lost(now, id, attempt, &worker);
        }
    }

    /// Failed jobs whose backoff is over go back to their queue.
    fn release_due_retries(&mut self, now: Timestamp) {
        while let Some(&(due, id)) = self.delayed.first() {
            if due > now {
                break;
            }
            self.delayed.pop_first();
            if let Some(job) = self.jobs.get_mut(&id)
                && job.state == JobState::Queued
                && job.retry_at == Some(due)
            {
                job.retry_at = None;
                self.enqueue(now, id);
            }
        }
    }

    /// Ended jobs past their retention are forgotten and deleted from storage.
    fn prune_finished(&mut self, now: Timestamp) {
        let retention = self.config.retention;
        while let Some(&(ended, id)) = self.finished.first() {
            if now.since(ended) <= retention {
                break;
            }
            self.finished.pop_first();
            if let Some(job) = self.jobs.remove(&id) {
                let summary = &mut self.queue_mut(&job.queue).summary;
                summary.finished = summary.finished.saturating_sub(1);
                self.ops.push(StoreOp::Delete(id));
            }
        }
    }

    /// The farm at a glance.
    pub fn info(&self) -> FarmInfo {
        let queues = self
            .queues
            .values()
            .filter(|queue| JobState::ALL.iter().any(|s| queue.summary.count(*s) > 0))
            .map(|queue| queue.summary.clone())
            .collect();
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
                } else {
                    WorkerActivity::Idle
                },
                job: worker.current.map(|(id, _)| id),
                connected_at: worker.connected_at,
            })
            .collect();
        workers.sort_by(|a, b| a.name.cmp(&b.name));
        let mut unserved = Vec::new();
        for (name, queue) in &self.queues {
            for (kind, jobs) in &queue.pending_kinds {
                let served = self.workers.values().any(|worker| {
                    worker.kinds.contains(&**kind)
                        && worker.registration.queues.iter().any(|q| **q == **name)
                });
                if !served {
                    unserved.push(Unserved {
                        queue: name.to_string(),
                        kind: kind.to_string(),
                        jobs: *jobs,
                    });
                }
            }
        }
        unserved.sort_by(|a, b| (&a.queue, &a.kind).cmp(&(&b.queue, &b.kind)));
        FarmInfo {
            queues,
            workers,
            unserved,
        }
    }
}

mod follow;
mod manage;
#[cfg(test)]
mod tests;
