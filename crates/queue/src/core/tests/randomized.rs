//! Random sequences of inputs, with the invariants checked after every one (issue 9, item 1:
//! "state the core's invariants as code and check them after every input in a randomized,
//! seeded test").
//!
//! Each sequence interleaves submissions of jobs of one to four tasks (with attempts,
//! priorities, timeouts, submitters and dependencies on jobs and on tasks), workers
//! registering, reconnecting under the same name with what they still run, completing
//! (current and stale results, failures, interruptions), disconnecting and going silent;
//! clients waiting, watching, following, canceling jobs and single tasks, requeueing (failed
//! ones, `all`, one submitter's), pausing and resuming jobs and queues, changing priorities,
//! deleting, and hanging up; commits that come back late, in any grouping, or fail; ticks and
//! jumps of the clock to the core's next deadline; and the server killed and started again
//! from what it had committed. Then a drain phase with healthy workers,
//! working storage and every pause let go must end every job: nothing is stranded.
//!
//! Besides the core's invariants, the simulated farm checks what peers see: a worker slot is
//! given one task at a time; a task never runs on two connected workers at once unless the
//! older copy was told to stop; only ended jobs are deleted; job numbers are never given out
//! twice; every acknowledged job is still known at the end, with its tasks, unless it was
//! deleted.
//!
//! `BUILDCAT_SEED=N` replays one sequence exactly; `BUILDCAT_SEQUENCES=N` runs more (or fewer)
//! than the default. A failure names its seed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use buildcat_proto::{
    Completion, Dependency, Failure, FramePreview, JobId, JobOptions, JobQuery, JobRef, JobState,
    NewJob, NewTask, Outcome, PreviewFormat, Reply, Request, RequestError, Requeue, Role,
    ServerFrame, TaskId, TaskRef, TaskState, Timestamp, WorkerRegistration,
};

use super::memstore::MemStore;
use crate::core::{ConnId, Core, CoreConfig, Effect, Input, Token};
use crate::store::{Store, StoreError, StoreOp};

/// Sequences run by default: enough to cover the interleavings in a few seconds.
const DEFAULT_SEQUENCES: u64 = 2_000;
/// Inputs in a sequence's random phase.
const STEPS: usize = 250;
/// The GPUs the worker named `name` registers: the first two have one (the same on every
/// reconnect, as a host's do), so GPU jobs wait for them while CPU jobs go anywhere.
fn gpus_of(name: &str) -> Vec<buildcat_proto::Gpu> {
    if name == NAMES[0] || name == NAMES[1] {
        vec![buildcat_proto::Gpu {
            index: 0,
            uuid: format!("GPU-{name}"),
            name: "NVIDIA H200".to_owned(),
            memory_mib: 143_771,
            driver: "550.54.15".to_owned(),
            vendor: buildcat_proto::GpuVendor::Nvidia,
        }]
    } else {
        Vec::new()
    }
}

/// Worker names: few, so that reconnects under a name happen often.
const NAMES: [&str; 4] = ["w0", "w1", "w2", "w3"];
const KIND: &str = "buildcat.worker.info";
/// Queues: two, so that a queue's pause holds some jobs while others run.
const QUEUES: [&str; 2] = ["default", "other"];
/// Submitters: two users, one on two hosts, for `requeue --failed --user`.
const SUBMITTERS: [&str; 3] = ["ana@render01", "ana@laptop", "bob@render01"];

#[test]
fn the_invariants_hold_after_every_input_of_random_sequences() {
    if let Some(seed) = std::env::var("BUILDCAT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run_or_panic(seed, true);
        return;
    }
    let sequences = std::env::var("BUILDCAT_SEQUENCES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEQUENCES);
    let mut made = Made::new();
    for seed in 0..sequences {
        for (what, count) in run_or_panic(seed, false) {
            *made.entry(what).or_default() += count;
        }
    }
    // A simulation that never got a change through would pass while checking nothing: every
    // kind of change must have been made, and a job of several tasks seen to finish.
    if sequences >= DEFAULT_SEQUENCES {
        for what in STEERED {
            assert!(
                made.get(what).is_some_and(|count| *count > 0),
                "no `{what}` was ever done: {made:?}"
            );
        }
    }
}

/// What the simulated people got done, by the request's name, over sequences.
type Made = BTreeMap<&'static str, u64>;

/// The changes every full run must have made at least once: by name, as
/// [`Request::name`] gives it, plus the end of a job of several tasks.
const STEERED: [&str; 13] = [
    "cancel",
    "cancel one task",
    "requeue",
    "requeue --all",
    "requeue --failed",
    "pause",
    "resume",
    "pause --queue",
    "priority",
    "delete",
    "a job of several tasks finished",
    "worker-pause",
    "worker-resume",
];

fn run_or_panic(seed: u64, verbose: bool) -> Made {
    let outcome = catch_unwind(AssertUnwindSafe(|| Sim::new(seed, verbose).run()));
    match outcome {
        Ok(Ok(made)) => made,
        Ok(Err(broken)) => {
            panic!("seed {seed}: {broken}\nreplay with BUILDCAT_SEED={seed}")
        }
        Err(_) => {
            panic!("seed {seed}: the core panicked (above)\nreplay with BUILDCAT_SEED={seed}")
        }
    }
}

/// splitmix64: a tiny seeded generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            return None;
        }
        let index = usize::try_from(self.below(items.len() as u64)).unwrap_or(0);
        items.get(index).copied()
    }
}

/// What one simulated worker slot knows, like the real worker loop: the task it runs and the
/// results the server has not acknowledged.
#[derive(Debug, Default, Clone)]
struct SimWorker {
    /// The attempt it runs, and whether it was told to stop it.
    running: Option<(TaskId, u32, bool)>,
    /// Results sent or to send, not yet acknowledged.
    unacked: Vec<Completion>,
    /// A result sent whose reply has not come: request id to completion.
    sent: BTreeMap<u64, Completion>,
    /// When the server last heard from this worker, on any of its connections: its lease
    /// runs from there.
    heard: Option<Timestamp>,
    /// When the worker kills its running attempt for its timeout, if it has one (a real
    /// worker does, cut off or not).
    stops_at: Option<Timestamp>,
}

struct Sim {
    rng: Rng,
    core: Core,
    now: Timestamp,
    /// Commits asked for and not yet reported back.
    commits: Vec<Token>,
    /// Batches of changes the core asked to store, not yet committed, in order, each with
    /// its token if the core waits for it.
    batches: VecDeque<(Vec<StoreOp>, Option<Token>)>,
    /// What is committed: a store in memory, as the writer keeps the real one.
    store: MemStore,
    /// Whether this sequence's storage ever fails (one sequence in four never does, so
    /// that what is stored can be compared with the core's state at the end).
    failing: bool,
    /// The settings, to start the core again from the store.
    config: CoreConfig,
    /// Client connections.
    clients: Vec<ConnId>,
    /// Worker connections and the name each registered.
    connected: BTreeMap<ConnId, &'static str>,
    /// The slots by name, surviving their connections.
    slots: BTreeMap<&'static str, SimWorker>,
    next_conn: ConnId,
    next_request: u64,
    /// Connections whose process moved on to a new one, not yet reported closed.
    dead: Vec<ConnId>,
    /// Whether to keep a description of every input (when replaying one seed).
    verbose: bool,
    /// Jobs deleted, by a person or after their retention.
    pruned: BTreeSet<JobId>,
    /// Every job the server acknowledged, with its number and how many tasks it has.
    acknowledged: BTreeMap<JobId, (u64, u32)>,
    /// Every job number given out.
    numbers: BTreeSet<u64>,
    /// Delete requests in flight: request id to whether each job named had ended when it
    /// was asked.
    deleting: BTreeMap<u64, Vec<bool>>,
    /// Requests in flight by id, with the name they count under in `made`.
    asked: BTreeMap<u64, &'static str>,
    /// Changes made (answered with at least one change done, or acknowledged), by name.
    made: Made,
    /// How many attempts each task was seen stored with, to tell a new start.
    attempts: BTreeMap<TaskId, usize>,
    /// Jobs seen finished, and how many times each was assigned while finished.
    log: Vec<String>,
}

/// Previews a job keeps in these runs: few, so that eviction by count happens often.
const RANDOM_PREVIEWS_PER_JOB: usize = 2;

impl Sim {
    fn new(seed: u64, verbose: bool) -> Sim {
        let config = CoreConfig {
            heartbeat: Duration::from_secs(5),
            reconnect_grace: Duration::from_secs(10),
            retry_backoff: Duration::from_secs(1),
            max_retry_backoff: Duration::from_secs(8),
            timeout_backstop: Duration::from_secs(5),
            retention: Duration::from_secs(600),
            quarantine_after: 3,
            quarantine_cooldown: Duration::from_secs(30),
            // Small, so that previews are evicted by count and by budget.
            previews_per_job: RANDOM_PREVIEWS_PER_JOB,
            preview_budget: 6_000,
            id_seed: Some(seed),
            // Half the runs make notices too: they must change nothing else.
            notices: seed.is_multiple_of(2),
            ..CoreConfig::default()
        };
        let now = Timestamp(1_700_000_000_000);
        let (core, _) = Core::new(config.clone(), crate::store::Loaded::default(), now);
        Sim {
            rng: Rng(seed ^ 0x5eed),
            core,
            now,
            commits: Vec::new(),
            batches: VecDeque::new(),
            store: MemStore::default(),
            failing: !seed.is_multiple_of(4),
            config,
            clients: Vec::new(),
            connected: BTreeMap::new(),
            slots: BTreeMap::new(),
            next_conn: 1,
            next_request: 1,
            dead: Vec::new(),
            verbose,
            pruned: BTreeSet::new(),
            acknowledged: BTreeMap::new(),
            numbers: BTreeSet::new(),
            deleting: BTreeMap::new(),
            asked: BTreeMap::new(),
            made: Made::new(),
            attempts: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    fn run(mut self) -> Result<Made, String> {
        for _ in 0..STEPS {
            self.step()?;
        }
        self.drain()?;
        let several = self
            .core
            .jobs
            .values()
            .filter(|job| job.tasks.len() > 1 && job.counts.finished == job.counts.total)
            .count();
        *self.made.entry(STEERED[10]).or_default() += several as u64;
        Ok(self.made)
    }

    /// Handles one input, checks the invariants, plays the effects on the simulated peers.
    fn input(&mut self, input: Input) -> Result<(), String> {
        // Describing every input costs more than handling it: only when replaying one seed.
        if self.verbose {
            let described = format!("{input:?}");
            self.log.push(described.chars().take(160).collect());
        }
        let effects = self.core.handle(self.now, input);
        self.core.check_invariants().map_err(|broken| {
            format!(
                "after {}: {broken}\nrecent inputs:\n{}",
                self.log.last().cloned().unwrap_or_default(),
                self.recent()
            )
        })?;
        for effect in effects {
            match effect {
                Effect::Persist { ops, token } => {
                    let ops_kept = ops.clone();
                    for op in ops {
                        match op {
                            StoreOp::Delete(id) => {
                                self.pruned.insert(id);
                            }
                            StoreOp::UpdateTask(status) => self.check_start(&status)?,
                            _ => {}
                        }
                    }
                    self.commits.extend(token);
                    self.batches.push_back((ops_kept, token));
                }
                Effect::Send(conn, frame) => self.deliver(conn, frame)?,
                // Output is not stored here: every read finds nothing more.
                Effect::ReadOutput(read) => {
                    let result = Ok(buildcat_proto::LogPage::empty_at(read.from));
                    self.input(Input::OutputRead { read, result })?;
                }
                Effect::Close(conn, _) => {
                    self.connected.remove(&conn);
                    self.clients.retain(|c| *c != conn);
                }
                Effect::Notice(crate::core::Notice::JobEnded(job)) => {
                    if !matches!(
                        job.state,
                        JobState::Finished | JobState::Failed | JobState::Canceled
                    ) || job.ended_at.is_none()
                    {
                        return Err(format!("a job noticed as ended has not: {job:?}"));
                    }
                }
                Effect::Notice(_) => {}
            }
        }
        Ok(())
    }

    /// A new attempt is stored just before its worker is sent it: the task's job and queue
    /// must not be paused then (a pause holds queued tasks; running ones go on).
    fn check_start(&mut self, status: &buildcat_proto::TaskStatus) -> Result<(), String> {
        let seen = self.attempts.entry(status.id).or_default();
        let started = status.state == TaskState::Started && status.attempts.len() > *seen;
        *seen = (*seen).max(status.attempts.len());
        let Some(job) = self.core.jobs.get(&status.id.job) else {
            return Ok(());
        };
        if started && (job.paused || self.core.queue_paused(&job.queue)) {
            return Err(format!(
                "task {} attempt {} started while its job (paused: {}) or queue {} was paused\n{}",
                status.id,
                status.attempts.len(),
                job.paused,
                job.queue,
                self.recent()
            ));
        }
        Ok(())
    }

    fn recent(&self) -> String {
        if !self.verbose {
            return "(replay the seed to see the inputs)".to_owned();
        }
        let count = std::env::var("BUILDCAT_SHOW")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(12);
        let start = self.log.len().saturating_sub(count);
        self.log[start..].join("\n")
    }

    fn deliver(&mut self, conn: ConnId, frame: ServerFrame) -> Result<(), String> {
        let Some(name) = self.connected.get(&conn).copied() else {
            return self.deliver_to_client(frame);
        };
        match frame {
            ServerFrame::Assign(assignment) => {
                let task = assignment.task;
                let attempt = assignment.attempt;
                if let Some((running, running_attempt, _)) =
                    self.slots.get(name).and_then(|slot| slot.running)
                {
                    return Err(format!(
                        "worker {name} was given task {task} while it runs task {running} \
                         attempt {running_attempt}\n{}",
                        self.recent()
                    ));
                }
                // Another worker may still run the task only if it was told to stop that
                // older attempt, or if it is cut off and the server waited the reconnect
                // grace since it last heard from it (by then its lease stopped it).
                let grace = self.config.reconnect_grace;
                for (other, slot) in &self.slots {
                    let Some((running, running_attempt, told)) = slot.running else {
                        continue;
                    };
                    if running != task || *other == name || (told && running_attempt < attempt) {
                        continue;
                    }
                    let connected = self.connected.values().any(|n| n == other);
                    let waited = slot.heard.is_none_or(|heard| self.now >= heard.plus(grace));
                    let timed_out = slot.stops_at.is_some_and(|at| self.now >= at);
                    if !timed_out && (connected || !waited) {
                        return Err(format!(
                            "task {task} attempt {attempt} was given to {name} while worker \
                             {other} (connected: {connected}, last heard {:?}) runs attempt \
                             {running_attempt} (told to stop: {told}); now {:?}, the task's \
                             attempts {:?}\n{}",
                            slot.heard,
                            self.now,
                            self.core.task(task).map(|task| &task.attempts),
                            self.recent()
                        ));
                    }
                }
                if self.verbose {
                    self.log
                        .push(format!("assigned {task} attempt {attempt} to {name}"));
                }
                let slot = self.slots.entry(name).or_default();
                slot.running = Some((task, attempt, false));
                slot.stops_at = assignment
                    .timeout_ms
                    .map(|ms| self.now.plus(Duration::from_millis(ms)));
            }
            ServerFrame::Cancel { task, attempt, .. } => {
                let slot = self.slots.entry(name).or_default();
                if let Some(running) = slot.running.as_mut()
                    && (running.0, running.1) == (task, attempt)
                {
                    running.2 = true;
                }
            }
            ServerFrame::Reply { id, reply } => {
                let slot = self.slots.entry(name).or_default();
                if let Some(completion) = slot.sent.remove(&id) {
                    match reply {
                        // Not stored: keep it, to send again after reconnecting.
                        Err(RequestError::Storage(_)) => {}
                        _ => slot.unacked.retain(|c| {
                            (c.task, c.attempt) != (completion.task, completion.attempt)
                        }),
                    }
                }
            }
            ServerFrame::Closing(_) | ServerFrame::Event { .. } => {}
        }
        Ok(())
    }

    /// A frame for a client: submissions acknowledged and deletes answered are checked.
    fn deliver_to_client(&mut self, frame: ServerFrame) -> Result<(), String> {
        let ServerFrame::Reply { id, reply } = frame else {
            return Ok(());
        };
        let asked = self.asked.remove(&id);
        let made = match &reply {
            Ok(Reply::Changes(changes)) => changes.iter().any(|change| change.result.is_ok()),
            Ok(Reply::Ack) => true,
            _ => false,
        };
        if let Some(name) = asked.filter(|_| made) {
            *self.made.entry(name).or_default() += 1;
        }
        match reply {
            Ok(Reply::Submitted(submitted)) => {
                for job in submitted {
                    if !self.numbers.insert(job.number) {
                        return Err(format!(
                            "job number {} was given out twice\n{}",
                            job.number,
                            self.recent()
                        ));
                    }
                    self.acknowledged.insert(job.id, (job.number, job.tasks));
                }
            }
            Ok(Reply::Previews(previews)) => {
                let times: Vec<Timestamp> = previews.previews.iter().map(|p| p.at).collect();
                if previews.previews.len() > RANDOM_PREVIEWS_PER_JOB
                    || times.windows(2).any(|pair| pair[0] < pair[1])
                    || previews.latest.as_ref().is_some_and(|image| {
                        previews.previews.first().map(|p| p.bytes as usize) != Some(image.len())
                    })
                {
                    return Err(format!(
                        "previews of job {} are not its newest few, newest first: {previews:?}\n{}",
                        previews.number,
                        self.recent()
                    ));
                }
            }
            Ok(Reply::Changes(changes)) => {
                if let Some(ended) = self.deleting.remove(&id) {
                    for (change, ended) in changes.iter().zip(ended) {
                        if change.result.is_ok() && !ended {
                            return Err(format!(
                                "{} was deleted before it ended\n{}",
                                change.target,
                                self.recent()
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn request(&mut self, conn: ConnId, request: Request) -> Result<u64, String> {
        let id = self.next_request;
        self.next_request += 1;
        if let Some(name) = self.connected.get(&conn).copied() {
            self.slots.entry(name).or_default().heard = Some(self.now);
        }
        let name = match &request {
            Request::Cancel(targets) if targets.iter().all(|t| t.index.is_some()) => {
                "cancel one task"
            }
            Request::Requeue(Requeue::Tasks { all: true, .. }) => "requeue --all",
            Request::Requeue(Requeue::Failed { .. }) => "requeue --failed",
            other => other.name(),
        };
        if self.clients.contains(&conn) {
            self.asked.insert(id, name);
        }
        self.input(Input::Request { conn, id, request })?;
        Ok(id)
    }

    fn random_job(&mut self) -> Option<JobId> {
        if self.core.jobs.is_empty() {
            return None;
        }
        // The n-th smallest id: independent of the table's iteration order.
        let mut ids: Vec<JobId> = self.core.jobs.keys().copied().collect();
        let index = usize::try_from(self.rng.below(ids.len() as u64)).unwrap_or(0);
        let (_, id, _) = ids.select_nth_unstable(index);
        Some(*id)
    }

    /// A task of a random job; now and then one past its job's last, which is refused.
    fn random_task(&mut self) -> Option<TaskId> {
        let job = self.random_job()?;
        let tasks = self.core.jobs.get(&job).map_or(0, |job| job.tasks.len());
        let past = u64::from(self.rng.chance(5));
        let index = self.rng.below(tasks as u64 + past);
        Some(TaskId::new(job, u32::try_from(index).unwrap_or(0)))
    }

    /// A random job as a person names it: by number or by id.
    fn random_ref(&mut self) -> Option<JobRef> {
        let job = self.random_job()?;
        let number = self.core.jobs.get(&job).map_or(0, |job| job.number);
        Some(if self.rng.chance(50) {
            JobRef::Number(number)
        } else {
            JobRef::Id(job)
        })
    }

    /// A random job or task handle: the whole job, or one task of it.
    fn random_target(&mut self) -> Option<TaskRef> {
        if self.rng.chance(50) {
            Some(TaskRef::job(self.random_ref()?))
        } else {
            Some(self.random_task()?.into())
        }
    }

    fn step(&mut self) -> Result<(), String> {
        match self.rng.below(100) {
            0..=13 => self.submit(),
            14..=22 => self.connect_worker(),
            23..=41 => self.finish_a_task(false),
            42..=45 => self.resend_stale(),
            46..=51 => self.disconnect_worker(),
            52..=59 => self.commit_some(),
            60..=67 => self.pass_time(),
            68..=71 => self.client_follows(),
            72..=77 => self.client_steers(),
            78..=81 => self.client_holds(),
            82..=83 => self.client_hangs_up(),
            84..=87 => self.worker_chatter(),
            88..=89 => {
                let name = self.rng.pick(&NAMES).unwrap_or("w0");
                let client = self.client()?;
                self.request(client, Request::EnableWorker(name.to_owned()))?;
                Ok(())
            }
            90..=91 => {
                let name = self.rng.pick(&NAMES).unwrap_or("w0");
                let paused = self.rng.below(2) == 0;
                let client = self.client()?;
                let request = Request::PauseWorker {
                    name: name.to_owned(),
                    paused,
                };
                self.request(client, request)?;
                Ok(())
            }
            99 => self.restart(),
            _ => self.heartbeats(),
        }
    }

    /// The server is killed and started again: what was not committed is lost, every
    /// connection drops, and a new core starts from the store. Worker processes live on and
    /// reconnect later with what they run and the results they hold.
    fn restart(&mut self) -> Result<(), String> {
        self.log.push("restart".to_owned());
        self.batches.clear();
        self.commits.clear();
        self.connected.clear();
        self.dead.clear();
        self.clients.clear();
        self.asked.clear();
        self.deleting.clear();
        let loaded = self.store.load().map_err(|e| e.to_string())?;
        // A new process seeds its ids anew (from the operating system, in a real server):
        // the same seed at the same simulated time would make the same ids again.
        let seed = self.config.id_seed.map(|seed| seed.wrapping_add(0x1000));
        self.config.id_seed = seed;
        let (core, ops) = Core::new(self.config.clone(), loaded, self.now);
        self.core = core;
        self.core.check_invariants().map_err(|broken| {
            format!(
                "after a restart: {broken}\nrecent inputs:\n{}",
                self.recent()
            )
        })?;
        self.batches.push_back((ops, None));
        if self.verbose {
            for job in self.core.jobs.values() {
                for (id, task) in job.indexed() {
                    if task.state == TaskState::Started {
                        self.log
                            .push(format!("loaded {id} started: {:?}", task.attempts));
                    }
                }
            }
        }
        Ok(())
    }

    fn client(&mut self) -> Result<ConnId, String> {
        if let Some(conn) = self.rng.pick(&self.clients.clone())
            && self.rng.chance(80)
        {
            return Ok(conn);
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        self.clients.push(conn);
        self.input(Input::Connected {
            conn,
            role: Role::Client,
        })?;
        Ok(conn)
    }

    fn submit(&mut self) -> Result<(), String> {
        let client = self.client()?;
        let count = 1 + self.rng.below(3);
        let mut jobs = Vec::new();
        for _ in 0..count {
            let mut options = JobOptions {
                max_attempts: u32::try_from(1 + self.rng.below(3)).unwrap_or(1),
                priority: i32::try_from(self.rng.below(3)).unwrap_or(0),
                ..JobOptions::default()
            };
            if self.rng.chance(15) {
                options.timeout_ms = Some(1_000 + self.rng.below(20_000));
            }
            if self.rng.chance(20) {
                // Only the workers with a GPU (issue 13) may run it.
                options.gpus = buildcat_proto::GpuRequirement {
                    count: 1,
                    memory_mib: 0,
                };
            }
            if self.rng.chance(15) {
                let dependency = if self.rng.chance(50) {
                    self.random_job().map(Dependency::Job)
                } else {
                    self.random_task()
                        .filter(|task| self.core.task(*task).is_some())
                        .map(Dependency::Task)
                };
                options.after.extend(dependency);
            }
            let queue = if self.rng.chance(80) {
                QUEUES[0]
            } else {
                QUEUES[1]
            };
            let tasks = 1 + self.rng.below(4);
            jobs.push(NewJob {
                queue: queue.to_owned(),
                kind: KIND.to_owned(),
                name: String::new(),
                submitter: self
                    .rng
                    .pick(&SUBMITTERS)
                    .unwrap_or("ana@render01")
                    .to_owned(),
                runs: "sim".to_owned(),
                options,
                tasks: (0..tasks)
                    .map(|frame| NewTask {
                        frames: Some(frame.to_string()),
                        args: Vec::new(),
                    })
                    .collect(),
            });
        }
        self.request(client, Request::Submit(jobs))?;
        Ok(())
    }

    fn connect_worker(&mut self) -> Result<(), String> {
        let name = self.rng.pick(&NAMES).unwrap_or("w0");
        let old: Vec<ConnId> = self
            .connected
            .iter()
            .filter(|(_, n)| **n == name)
            .map(|(conn, _)| *conn)
            .collect();
        if !old.is_empty() && self.rng.chance(70) {
            return Ok(());
        }
        // The process reconnects: its old connection is dead, though the server may not
        // have noticed yet (it hears of it later, or never before the heartbeat check).
        for conn in old {
            self.connected.remove(&conn);
            self.dead.push(conn);
        }
        let queues = if self.rng.chance(70) {
            vec!["default".to_owned(), "other".to_owned()]
        } else {
            vec!["default".to_owned()]
        };
        let conn = self.register(name, queues)?;
        // Like the real worker: results not acknowledged go again on the new connection.
        let unacked = self
            .slots
            .get(name)
            .map(|s| s.unacked.clone())
            .unwrap_or_default();
        for completion in unacked {
            let id = self.next_request;
            if let Some(slot) = self.slots.get_mut(name) {
                slot.sent.insert(id, completion.clone());
            }
            self.request(conn, Request::Complete(completion))?;
        }
        Ok(())
    }

    /// A worker process (re)connects as `name`, naming what it still runs or holds the
    /// results of, as the real worker loop does; returns its new connection.
    fn register(&mut self, name: &'static str, queues: Vec<String>) -> Result<ConnId, String> {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.connected.insert(conn, name);
        self.input(Input::Connected {
            conn,
            role: Role::Worker,
        })?;
        let slot = self.slots.entry(name).or_default();
        slot.sent.clear();
        let running: Vec<(TaskId, u32)> = slot
            .running
            .iter()
            .map(|(task, attempt, _)| (*task, *attempt))
            .chain(slot.unacked.iter().map(|c| (c.task, c.attempt)))
            .collect();
        let registration = WorkerRegistration {
            name: name.to_owned(),
            host: "sim".to_owned(),
            root: "/farm".to_owned(),
            queues,
            kinds: vec![KIND.to_owned()],
            pid: 1,
            version: "sim".to_owned(),
            running,
            tools: Vec::new(),
            gpus: gpus_of(name),
        };
        self.request(conn, Request::Register(registration))?;
        Ok(conn)
    }

    /// A connected worker ends its running task and reports it.
    fn finish_a_task(&mut self, healthy: bool) -> Result<(), String> {
        let busy: Vec<(ConnId, &'static str)> = self
            .connected
            .iter()
            .filter(|(_, name)| self.slots.get(*name).is_some_and(|s| s.running.is_some()))
            .map(|(conn, name)| (*conn, *name))
            .collect();
        let Some((conn, name)) = self.rng.pick(&busy) else {
            return Ok(());
        };
        let Some((task, attempt, told_to_stop)) =
            self.slots.get_mut(name).and_then(|s| s.running.take())
        else {
            return Ok(());
        };
        let outcome = if told_to_stop {
            Outcome::Canceled
        } else if healthy {
            Outcome::Finished(vec![1])
        } else {
            match self.rng.below(10) {
                0..=3 => Outcome::Finished(vec![1]),
                // Issue 11: a task that adds tasks to its job.
                4 => Outcome::FinishedWithTasks {
                    result: vec![1],
                    tasks: (0..=self.rng.below(2))
                        .map(|_| buildcat_proto::NewTask {
                            frames: Some("1".to_owned()),
                            args: vec![1],
                        })
                        .collect(),
                },
                5..=8 => Outcome::Failed(Failure::new("exit 1")),
                _ => Outcome::Interrupted,
            }
        };
        let interrupted = outcome == Outcome::Interrupted;
        let completion = Completion {
            task,
            attempt,
            outcome,
        };
        let id = self.next_request;
        if let Some(slot) = self.slots.get_mut(name) {
            slot.unacked.push(completion.clone());
            slot.sent.insert(id, completion.clone());
        }
        self.request(conn, Request::Complete(completion))?;
        if interrupted {
            // A worker that interrupts its task is stopping: it exits, acknowledged or not.
            self.connected.remove(&conn);
            self.slots.remove(name);
            self.input(Input::Disconnected { conn })?;
        }
        Ok(())
    }

    /// A worker sends a result the server already has, as after a partition.
    fn resend_stale(&mut self) -> Result<(), String> {
        let Some((&conn, &name)) = self.connected.iter().next() else {
            return Ok(());
        };
        let Some(task) = self.random_task() else {
            return Ok(());
        };
        if self
            .slots
            .get(name)
            .is_some_and(|s| s.running.is_some_and(|r| r.0 == task))
        {
            return Ok(());
        }
        let attempt = u32::try_from(self.rng.below(3)).unwrap_or(0);
        let completion = Completion {
            task,
            attempt,
            outcome: Outcome::Finished(Vec::new()),
        };
        let current = self.core.task(task).is_some_and(|t| t.runs(attempt));
        if current {
            return Ok(());
        }
        self.request(conn, Request::Complete(completion))?;
        Ok(())
    }

    fn disconnect_worker(&mut self) -> Result<(), String> {
        if !self.dead.is_empty() && self.rng.chance(50) {
            let conn = self.dead.remove(0);
            return self.input(Input::Disconnected { conn });
        }
        let conns: Vec<ConnId> = self.connected.keys().copied().collect();
        let Some(conn) = self.rng.pick(&conns) else {
            return Ok(());
        };
        let name = self.connected.remove(&conn).unwrap_or("w0");
        if self.rng.chance(30) {
            // The process died with it: nothing of the slot survives.
            self.slots.remove(name);
        }
        self.input(Input::Disconnected { conn })
    }

    fn commit_some(&mut self) -> Result<(), String> {
        if self.commits.is_empty() {
            return Ok(());
        }
        let count = 1 + usize::try_from(self.rng.below(self.commits.len() as u64)).unwrap_or(0);
        let tokens: Vec<Token> = self.commits.drain(..count).collect();
        let result = if self.failing && self.rng.chance(15) {
            Err(StoreError::Database("database or disk is full".to_owned()))
        } else {
            Ok(())
        };
        self.commit_batches(tokens.last().copied(), result.is_ok());
        self.input(Input::Persisted { tokens, result })
    }

    /// Commits (or, `stored` false, loses) every batch up to the one of token `last` in
    /// order, as the writer commits a group; `None`: every batch.
    fn commit_batches(&mut self, last: Option<Token>, stored: bool) {
        let count = match last {
            Some(last) => self
                .batches
                .iter()
                .position(|(_, token)| *token == Some(last))
                .map_or(0, |index| index + 1),
            None => self.batches.len(),
        };
        for (ops, _) in self.batches.drain(..count) {
            if stored {
                // A store in memory does not fail.
                let _ = self.store.commit(&ops);
            }
        }
    }

    /// After the drain, with every change committed: a core started from the store holds
    /// what this one holds, job for job and task for task.
    fn check_stored(&mut self) -> Result<(), String> {
        self.commit_batches(None, true);
        let loaded = self.store.load().map_err(|e| e.to_string())?;
        let (restarted, _) = Core::new(self.config.clone(), loaded, self.now);
        let stored = |core: &Core| {
            let mut jobs: Vec<_> = core
                .jobs
                .values()
                .map(|job| {
                    let mut stored = job.stored();
                    // The end as the core keeps it is when its commit came back; at load it
                    // is the last task's end, a moment earlier.
                    stored.job.ended_at = None;
                    (stored, job.paused)
                })
                .collect();
            jobs.sort_by_key(|(stored, _)| stored.job.id);
            jobs
        };
        let (live, again) = (stored(&self.core), stored(&restarted));
        if live.len() != again.len() {
            return Err(format!(
                "{} jobs in memory, {} stored",
                live.len(),
                again.len()
            ));
        }
        for (live, again) in live.iter().zip(&again) {
            if live != again {
                return Err(format!(
                    "job {} in memory:\n{live:?}\nas stored:\n{again:?}",
                    live.0.job.id
                ));
            }
        }
        let paused = |core: &Core| -> Vec<String> {
            core.queues
                .values()
                .filter(|queue| queue.paused)
                .map(|queue| queue.name.clone())
                .collect()
        };
        if paused(&self.core) != paused(&restarted)
            || self.core.next_number != restarted.next_number
        {
            return Err(format!(
                "paused queues {:?} and next number {} in memory; {:?} and {} stored",
                paused(&self.core),
                self.core.next_number,
                paused(&restarted),
                restarted.next_number
            ));
        }
        Ok(())
    }

    fn pass_time(&mut self) -> Result<(), String> {
        let next = self.core.next_deadline();
        match next {
            Some(deadline) if self.rng.chance(50) => self.now = deadline.max(self.now),
            _ => self.now = self.now.plus(Duration::from_millis(self.rng.below(12_000))),
        }
        self.input(Input::Tick)
    }

    fn client_follows(&mut self) -> Result<(), String> {
        let client = self.client()?;
        let Some(job) = self.random_ref() else {
            return Ok(());
        };
        let request = match self.rng.below(5) {
            0 => Request::Wait(job),
            1 => Request::Watch(vec![job]),
            2 => {
                let Some(task) = self.random_target() else {
                    return Ok(());
                };
                Request::Logs {
                    task,
                    from: 0,
                    follow: true,
                }
            }
            3 => {
                let Some(task) = self.random_target() else {
                    return Ok(());
                };
                Request::Task(task)
            }
            4 if self.rng.below(2) == 0 => Request::Previews {
                job,
                image: self.rng.below(2) == 0,
            },
            _ => Request::Job(job),
        };
        self.request(client, request)?;
        Ok(())
    }

    /// A person cancels, requeues, changes a priority, deletes, or lists.
    fn client_steers(&mut self) -> Result<(), String> {
        let client = self.client()?;
        let Some(target) = self.random_target() else {
            return Ok(());
        };
        let request = match self.rng.below(8) {
            0 | 1 => Request::Cancel(vec![target]),
            2 | 3 => Request::Requeue(Requeue::Tasks {
                targets: vec![target],
                all: self.rng.chance(40),
            }),
            4 => {
                let user = match self.rng.below(3) {
                    0 => None,
                    1 => Some("ana".to_owned()),
                    _ => self.rng.pick(&SUBMITTERS).map(str::to_owned),
                };
                let queue = self
                    .rng
                    .chance(30)
                    .then(|| self.rng.pick(&QUEUES).unwrap_or("default").to_owned());
                Request::Requeue(Requeue::Failed { queue, user })
            }
            5 => Request::SetPriority {
                job: target.job,
                priority: i32::try_from(self.rng.below(5)).unwrap_or(0) - 2,
            },
            6 => {
                // Whether the job had ended when asked: only then may it be deleted.
                let ended = self
                    .core
                    .resolve(target.job)
                    .ok()
                    .and_then(|id| self.core.jobs.get(&id))
                    .is_some_and(|job| job.ended());
                self.deleting.insert(self.next_request, vec![ended]);
                Request::Delete(vec![target.job])
            }
            _ => Request::Jobs(JobQuery {
                limit: 10,
                user: self.rng.chance(30).then(|| "ana".to_owned()),
                ..JobQuery::default()
            }),
        };
        let cancel = matches!(request, Request::Cancel(_));
        self.request(client, request)?;
        if cancel && self.rng.chance(30) {
            // Canceled to start it again at once, as after fixing a scene.
            let again = Request::Requeue(Requeue::Tasks {
                targets: vec![target],
                all: false,
            });
            self.request(client, again)?;
        }
        if self.rng.chance(10) {
            self.request(client, Request::Info)?;
        }
        Ok(())
    }

    /// A person pauses or resumes a job or a whole queue.
    fn client_holds(&mut self) -> Result<(), String> {
        let client = self.client()?;
        let request = match self.rng.below(6) {
            0 | 1 => Request::Pause(self.random_ref().into_iter().collect()),
            2 | 3 => Request::Resume(self.random_ref().into_iter().collect()),
            paused => Request::PauseQueue {
                queue: self.rng.pick(&QUEUES).unwrap_or("default").to_owned(),
                paused: paused == 4,
            },
        };
        self.request(client, request)?;
        Ok(())
    }

    fn client_hangs_up(&mut self) -> Result<(), String> {
        let Some(conn) = self.rng.pick(&self.clients.clone()) else {
            return Ok(());
        };
        self.clients.retain(|c| *c != conn);
        self.input(Input::Disconnected { conn })
    }

    fn worker_chatter(&mut self) -> Result<(), String> {
        let busy: Vec<(ConnId, TaskId, u32)> = self
            .connected
            .iter()
            .filter_map(|(conn, name)| {
                let (task, attempt, _) = self.slots.get(name)?.running?;
                Some((*conn, task, attempt))
            })
            .collect();
        let Some((conn, task, attempt)) = self.rng.pick(&busy) else {
            return Ok(());
        };
        let request = match self.rng.below(4) {
            0 => Request::Preview(self.preview(task, attempt)),
            // From a worker that may not run it, or for another attempt: ignored.
            1 => {
                let conn = self.rng.pick(&busy).map_or(conn, |(other, _, _)| other);
                let attempt = attempt + u32::try_from(self.rng.below(2)).unwrap_or(0);
                let preview = self.preview(task, attempt);
                return self.request(conn, Request::Preview(preview)).map(|_| ());
            }
            // The versions of its tools, read after it registered.
            2 if self.rng.below(4) == 0 => {
                Request::UpdateTools(vec![buildcat_proto::ToolVersion {
                    name: "blender".to_owned(),
                    version: "3.4.1".to_owned(),
                }])
            }
            _ => Request::Log {
                task,
                attempt,
                lines: vec!["Fra:1".to_owned()],
                stderr: if attempt % 2 == 0 {
                    vec![0]
                } else {
                    Vec::new()
                },
            },
        };
        self.request(conn, request)?;
        Ok(())
    }

    /// A frame preview of up to 2,000 bytes from `attempt` of `task`.
    fn preview(&mut self, task: TaskId, attempt: u32) -> FramePreview {
        let bytes = usize::try_from(self.rng.below(2_000)).unwrap_or(0) + 1;
        FramePreview {
            task,
            attempt,
            frame: i64::try_from(self.rng.below(100)).unwrap_or(0),
            width: 64,
            height: 48,
            format: PreviewFormat::Jpeg,
            image: vec![0; bytes],
        }
    }

    fn heartbeats(&mut self) -> Result<(), String> {
        let conns: Vec<ConnId> = self.connected.keys().copied().collect();
        for conn in conns {
            self.request(conn, Request::Heartbeat)?;
        }
        Ok(())
    }

    /// Healthy workers, working storage, time passing: every job must end. Nothing may be
    /// stranded as started or queued with a worker free to run it.
    fn drain(&mut self) -> Result<(), String> {
        // Every worker reconnects serving every queue (some served only one).
        let connected: Vec<ConnId> = self.connected.keys().copied().collect();
        self.connected.clear();
        for conn in std::mem::take(&mut self.dead).into_iter().chain(connected) {
            self.input(Input::Disconnected { conn })?;
        }
        for name in NAMES {
            if !self.connected.values().any(|n| *n == name) {
                self.register(name, QUEUES.iter().map(|q| (*q).to_owned()).collect())?;
            }
        }
        // Every pause is let go.
        let client = self.client()?;
        for queue in QUEUES {
            let request = Request::PauseQueue {
                queue: queue.to_owned(),
                paused: false,
            };
            self.request(client, request)?;
        }
        let paused: Vec<JobRef> = self
            .core
            .jobs
            .values()
            .filter(|job| job.paused)
            .map(|job| JobRef::Id(job.id))
            .collect();
        if !paused.is_empty() {
            self.request(client, Request::Resume(paused))?;
        }
        for name in NAMES {
            let request = Request::PauseWorker {
                name: name.to_owned(),
                paused: false,
            };
            self.request(client, request)?;
        }
        for _ in 0..2_000 {
            if self.core.jobs.values().all(|job| job.ended()) {
                self.check_acknowledged()?;
                if !self.failing {
                    self.check_stored()?;
                }
                return Ok(());
            }
            let tokens: Vec<Token> = self.commits.drain(..).collect();
            self.commit_batches(tokens.last().copied(), true);
            if !tokens.is_empty() {
                self.input(Input::Persisted {
                    tokens,
                    result: Ok(()),
                })?;
            }
            // Results waiting for acknowledgement go again.
            let pending: Vec<(ConnId, Completion)> = self
                .connected
                .iter()
                .flat_map(|(conn, name)| {
                    let slot = self.slots.get(name);
                    slot.into_iter()
                        .flat_map(|s| {
                            s.unacked
                                .iter()
                                .filter(|c| !s.sent.values().any(|x| x == *c))
                        })
                        .map(|c| (*conn, c.clone()))
                        .collect::<Vec<_>>()
                })
                .collect();
            for (conn, completion) in pending {
                let id = self.next_request;
                if let Some(name) = self.connected.get(&conn).copied()
                    && let Some(slot) = self.slots.get_mut(name)
                {
                    slot.sent.insert(id, completion.clone());
                }
                self.request(conn, Request::Complete(completion))?;
            }
            self.finish_a_task(true)?;
            self.heartbeats()?;
            self.now = self.now.plus(Duration::from_millis(700));
            self.input(Input::Tick)?;
        }
        let stuck: Vec<String> = self
            .core
            .jobs
            .values()
            .filter(|job| !job.ended())
            .map(|job| {
                let tasks: Vec<String> = job
                    .tasks
                    .iter()
                    .map(|task| format!("{} attempts {:?}", task.state, task.attempts))
                    .collect();
                format!(
                    "{} {} paused {}: {tasks:?}",
                    job.id,
                    job.state(self.core.queue_paused(&job.queue)),
                    job.paused
                )
            })
            .collect();
        let workers: Vec<String> = self
            .core
            .workers
            .iter()
            .map(|(conn, w)| {
                format!(
                    "{conn} {} current {:?} stopping {:?} idle {:?} quarantined {}",
                    w.registration.name,
                    w.current,
                    w.stopping,
                    w.idle_since,
                    self.core.quarantined(&w.registration.name)
                )
            })
            .collect();
        Err(format!(
            "jobs never ended with healthy workers: {stuck:#?}\nworkers: {workers:#?}\nsimulated: {:?}\n{}",
            self.slots,
            self.recent()
        ))
    }

    /// Nothing acknowledged is lost: every acknowledged job is still known with all its
    /// tasks (and any its tasks added since) and its number, unless it was deleted; no task
    /// outlived the drain deferred.
    fn check_acknowledged(&self) -> Result<(), String> {
        for (id, (number, tasks)) in &self.acknowledged {
            match self.core.jobs.get(id) {
                None if self.pruned.contains(id) => {}
                None => return Err(format!("acknowledged job {id} is gone")),
                Some(job) => {
                    if job.number != *number || job.tasks.len() < *tasks as usize {
                        return Err(format!(
                            "job {id} was acknowledged as number {number} of {tasks} tasks, \
                             is number {} of {}",
                            job.number,
                            job.tasks.len()
                        ));
                    }
                }
            }
        }
        let deferred = self.core.jobs.values().any(|job| {
            job.tasks
                .iter()
                .any(|task| task.state == TaskState::Deferred)
        });
        if deferred {
            return Err("a deferred task outlived the drain".to_owned());
        }
        Ok(())
    }
}
