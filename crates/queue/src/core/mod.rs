//! The farm's state machine: queues, jobs, workers and who runs what.
//!
//! [`Core::handle`] takes one [`Input`] at a time with the current time and returns the
//! [`Effect`]s the shell must carry out: frames to send, changes to store, connections to
//! close. It does no I/O and reads no clock, so every rule here is tested without sockets.
//!
//! Durability: a submission becomes visible (queued, dispatchable, acknowledged) only after
//! the store has committed it; the core parks it under a [`Token`] until
//! [`Input::Persisted`] comes back. A completion likewise takes effect (the job ends or
//! is retried, waiting clients hear of it, the worker is acknowledged) only once its record
//! is committed; a failed commit leaves the job as it was, for the worker to send again.
//!
//! The parts, each owning its share of the state:
//! - `job`: the job record and what is derived from it;
//! - `dispatch`: queues, workers, who runs what (and quarantine);
//! - `lifecycle`: submit, commit, complete, retry, loss, end;
//! - `connections`: peers, their subscriptions, silence, and the timed steps of a tick;
//! - `follow` (output and progress pushed to clients) and `manage` (cancel, requeue, list).
//!
//! The core is deterministic: it iterates ordered maps wherever order decides an outcome,
//! makes job ids from a seedable `IdSource`, and says when it next needs
//! the time to move ([`Core::next_deadline`]). `check_invariants` (tests) states what
//! must hold after every input; `tests/randomized.rs` checks it over random sequences.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use buildcat_proto::{
    FarmInfo, JobId, JobState, LogPage, Reply, Request, RequestError, RequestId, RequeueTarget,
    Role, ServerFrame, Timestamp, Unserved, WorkerActivity, WorkerSummary,
};

use crate::store::{StoreError, StoreOp, StoredJob};

use connections::{Connection, Orphan};
use dispatch::{Queue, Worker, WorkerRecord};
use ids::IdSource;
use job::Job;
use lifecycle::AwaitingCommit;

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

/// How long a worker whose connection dropped has to come back and reclaim its job, by
/// default. Render farms wait about a minute before handing work on (Flamenco and OpenCue
/// wait a minute or more): a network blip of seconds must not cost an hour-long render, and
/// a dead machine must not hold a frame for long. Workers stop a job themselves once they
/// have been cut off for most of this, so the two copies never overlap.
pub const DEFAULT_RECONNECT_GRACE: Duration = Duration::from_secs(60);

/// Bytes of output kept per job by default: a day of a chatty render's log, while a farm of
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
    /// Seeds the job id generator; `None` seeds it from the operating system. Tests set it
    /// so that a run replays exactly.
    pub id_seed: Option<u64>,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            heartbeat: Duration::from_secs(5),
            missed_heartbeats: 3,
            retention: Duration::from_secs(24 * 60 * 60),
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
            id_seed: None,
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

/// A page of a job's stored output the core needs: the shell reads it from the store, after
/// every change sent before it, and hands it back unchanged in [`Input::OutputRead`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRead {
    /// The job.
    pub job: JobId,
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
    /// Read a page of a job's output from the store, after every [`Effect::Persist`] before
    /// it; report it in [`Input::OutputRead`].
    ReadOutput(OutputRead),
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
    /// Connected peers. Ordered, so the scans act on them in the same order every run.
    connections: BTreeMap<ConnId, Connection>,
    /// Registered workers, by connection. Ordered for the same reason.
    workers: BTreeMap<ConnId, Worker>,
    /// Which worker connection runs each started job's current attempt: the reverse of
    /// `Worker::current`, so finding a job's worker is a lookup, not a scan.
    running: HashMap<JobId, ConnId>,
    /// What the server remembers of each worker by name, across its reconnects: failures in
    /// a row and quarantine.
    records: BTreeMap<String, WorkerRecord>,
    /// Idle workers, longest idle first.
    idle: BTreeMap<u64, ConnId>,
    /// Next idle-order number.
    idle_counter: u64,
    /// Clients waiting for a job to end.
    waiters: HashMap<JobId, Vec<(ConnId, RequestId)>>,
    /// Deferred jobs waiting on each job.
    dependents: HashMap<JobId, Vec<JobId>>,
    /// Commits the core waits for.
    pending: HashMap<Token, AwaitingCommit>,
    /// Next token.
    next_token: Token,
    /// Makes job ids: strictly increasing, reproducible from a seed.
    ids: IdSource,
    /// Failed jobs waiting for their retry, by when it is due.
    delayed: BTreeSet<(Timestamp, JobId)>,
    /// Finished jobs by when they ended, so pruning looks only at the expired ones.
    finished: BTreeSet<(Timestamp, JobId)>,
    /// Started jobs with no connected worker, waiting for theirs to come back: the worker's
    /// connection dropped, the server restarted, or a completion's commit failed.
    orphans: BTreeMap<JobId, Orphan>,
    /// Clients following a job's output that have caught up with it: new lines go to them
    /// as they come.
    log_followers: HashMap<JobId, Vec<(ConnId, RequestId)>>,
    /// `Logs` requests waiting for a page from the store, and for which job.
    reading: HashMap<(ConnId, RequestId), JobId>,
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
    /// stopped wait `reconnect_grace` for their workers to come back and reclaim them; only
    /// unclaimed ones go back to their queue. The returned ops are changes made while
    /// loading, to store before serving.
    pub fn new(config: CoreConfig, stored: Vec<StoredJob>, now: Timestamp) -> (Core, Vec<StoreOp>) {
        let ids = match config.id_seed {
            Some(seed) => IdSource::seeded(seed),
            None => IdSource::from_entropy(),
        };
        let mut core = Core {
            config,
            jobs: HashMap::with_capacity(stored.len()),
            queues: BTreeMap::new(),
            kinds: HashSet::new(),
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
            finished: BTreeSet::new(),
            orphans: BTreeMap::new(),
            log_followers: HashMap::new(),
            reading: HashMap::new(),
            watchers: HashMap::new(),
            watches: HashMap::new(),
            effects: Vec::new(),
            ops: Vec::new(),
            next_scan: now,
        };
        for StoredJob {
            status,
            args,
            output,
        } in stored
        {
            let queue = core.intern_queue(&status.queue);
            let kind = core.intern_kind(&status.kind);
            let job = Job::from_stored(status, args, output, queue, kind);
            core.insert_loaded(job, now);
        }
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
            .finished
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
                let mut info = self.info();
                self.fit_info(&mut info);
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
            Request::Cancel(jobs) | Request::Requeue(RequeueTarget::Jobs(jobs))
                if jobs.len() > manage::MAX_CHANGES =>
            {
                let error = RequestError::Invalid(format!(
                    "{} jobs named in one request; name at most {} at a time",
                    jobs.len(),
                    manage::MAX_CHANGES
                ));
                self.reply(conn, id, Err(error));
            }
            Request::Cancel(jobs) => {
                let changes = jobs.into_iter().map(|job| self.cancel(now, job)).collect();
                self.reply_once_stored(conn, id, Reply::Changes(changes));
            }
            Request::Requeue(target) => {
                let changes = self.requeue(now, target);
                self.reply_once_stored(conn, id, Reply::Changes(changes));
            }
            Request::Jobs(query) => {
                let (jobs, more) = self.list(&query);
                self.reply(conn, id, Ok(Reply::Jobs { jobs, more }));
            }
            Request::Logs { job, from, follow } => self.logs(conn, id, job, from, follow),
            Request::Watch(jobs) => self.watch(conn, id, jobs),
            Request::EnableWorker(name) => {
                let reply = self.enable_worker(now, &name).map(|()| Reply::Ack);
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
        self.prune_finished(now);
    }

    /// Answers `reply` once the changes made for it are committed: a person told "canceled"
    /// can count on it after a crash. A failed commit answers a storage error instead (the
    /// change holds until the server restarts, which would undo it).
    fn reply_once_stored(&mut self, conn: ConnId, id: RequestId, reply: Reply) {
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
            .filter(|queue| JobState::ALL.iter().any(|s| queue.summary.count(*s) > 0))
            .map(|queue| queue.summary.clone())
            .collect();
        let quarantine = |worker: &Worker| {
            let record = self.records.get(&worker.registration.name)?;
            Some(record.quarantine.as_ref()?.reason.clone())
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
                } else {
                    WorkerActivity::Idle
                },
                job: worker.current.map(|(id, _)| id),
                connected_at: worker.connected_at,
                quarantine: quarantine(worker),
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
            truncated: false,
        }
    }
}

mod connections;
mod dispatch;
mod follow;
mod ids;
#[cfg(test)]
mod invariants;
mod job;
mod lifecycle;
mod manage;
#[cfg(test)]
mod tests;
