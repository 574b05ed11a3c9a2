//! Random sequences of inputs, with the invariants checked after every one (issue 9, item 1:
//! "state the core's invariants as code and check them after every input in a randomized,
//! seeded test").
//!
//! Each sequence interleaves submissions (with attempts, priorities, timeouts and
//! dependencies), workers registering, reconnecting under the same name with what they still
//! run, completing (current and stale results, failures, interruptions), disconnecting and
//! going silent; clients waiting, watching, following, canceling, requeueing and hanging up;
//! commits that come back late, in any grouping, or fail; ticks and jumps of the clock to the
//! core's next deadline. Then a drain phase with healthy workers and working storage must end
//! every job: nothing is stranded.
//!
//! `BUILDCAT_SEED=N` replays one sequence exactly; `BUILDCAT_SEQUENCES=N` runs more (or fewer)
//! than the default. A failure names its seed.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use buildcat_proto::{
    Completion, Failure, JobId, JobOptions, JobQuery, JobState, NewJob, Outcome, Reply, Request,
    RequestError, RequeueTarget, Role, ServerFrame, Timestamp, WorkerRegistration,
};

use crate::core::{ConnId, Core, CoreConfig, Effect, Input, Token};
use crate::store::{StoreError, StoreOp};

/// Sequences run by default: enough to cover the interleavings in a few seconds.
const DEFAULT_SEQUENCES: u64 = 2_000;
/// Inputs in a sequence's random phase.
const STEPS: usize = 250;
/// Worker names: few, so that reconnects under a name happen often.
const NAMES: [&str; 4] = ["w0", "w1", "w2", "w3"];
const KIND: &str = "buildcat.worker.info";

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
    for seed in 0..sequences {
        run_or_panic(seed, false);
    }
}

fn run_or_panic(seed: u64, verbose: bool) {
    let outcome = catch_unwind(AssertUnwindSafe(|| Sim::new(seed, verbose).run()));
    match outcome {
        Ok(Ok(())) => {}
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

/// What one simulated worker slot knows, like the real worker loop: the job it runs and the
/// results the server has not acknowledged.
#[derive(Debug, Default, Clone)]
struct SimWorker {
    /// The attempt it runs, and whether it was told to stop it.
    running: Option<(JobId, u32, bool)>,
    /// Results sent or to send, not yet acknowledged.
    unacked: Vec<Completion>,
    /// A result sent whose reply has not come: request id to completion.
    sent: BTreeMap<u64, Completion>,
}

struct Sim {
    rng: Rng,
    core: Core,
    now: Timestamp,
    /// Commits asked for and not yet reported back.
    commits: Vec<Token>,
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
    /// Jobs deleted after their retention.
    pruned: Vec<JobId>,
    /// Every id the server acknowledged.
    acknowledged: Vec<JobId>,
    /// Jobs seen finished, and how many times each was assigned while finished.
    log: Vec<String>,
}

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
            id_seed: Some(seed),
            ..CoreConfig::default()
        };
        let now = Timestamp(1_700_000_000_000);
        let (core, _) = Core::new(config, Vec::new(), now);
        Sim {
            rng: Rng(seed ^ 0x5eed),
            core,
            now,
            commits: Vec::new(),
            clients: Vec::new(),
            connected: BTreeMap::new(),
            slots: BTreeMap::new(),
            next_conn: 1,
            next_request: 1,
            dead: Vec::new(),
            verbose,
            pruned: Vec::new(),
            acknowledged: Vec::new(),
            log: Vec::new(),
        }
    }

    fn run(mut self) -> Result<(), String> {
        for _ in 0..STEPS {
            self.step()?;
        }
        self.drain()
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
                    for op in ops {
                        if let StoreOp::Delete(id) = op {
                            self.pruned.push(id);
                        }
                    }
                    self.commits.extend(token);
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
            }
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
            if let ServerFrame::Reply {
                reply: Ok(Reply::Submitted(ids)),
                ..
            } = frame
            {
                self.acknowledged.extend(ids);
            }
            return Ok(());
        };
        let slot = self.slots.entry(name).or_default();
        match frame {
            ServerFrame::Assign(assignment) => {
                if let Some((job, attempt, _)) = slot.running {
                    return Err(format!(
                        "worker {name} was given job {} while it runs job {job} attempt {attempt}\n{}",
                        assignment.job,
                        self.recent()
                    ));
                }
                slot.running = Some((assignment.job, assignment.attempt, false));
            }
            ServerFrame::Cancel { job, attempt, .. } => {
                if let Some(running) = slot.running.as_mut()
                    && (running.0, running.1) == (job, attempt)
                {
                    running.2 = true;
                }
            }
            ServerFrame::Reply { id, reply } => {
                if let Some(completion) = slot.sent.remove(&id) {
                    match reply {
                        // Not stored: keep it, to send again after reconnecting.
                        Err(RequestError::Storage(_)) => {}
                        _ => slot
                            .unacked
                            .retain(|c| (c.job, c.attempt) != (completion.job, completion.attempt)),
                    }
                }
            }
            ServerFrame::Closing(_) | ServerFrame::Event { .. } => {}
        }
        Ok(())
    }

    fn request(&mut self, conn: ConnId, request: Request) -> Result<u64, String> {
        let id = self.next_request;
        self.next_request += 1;
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

    fn step(&mut self) -> Result<(), String> {
        match self.rng.below(100) {
            0..=14 => self.submit(),
            15..=24 => self.connect_worker(),
            25..=44 => self.finish_a_job(false),
            45..=49 => self.resend_stale(),
            50..=55 => self.disconnect_worker(),
            56..=63 => self.commit_some(),
            64..=71 => self.pass_time(),
            72..=75 => self.client_follows(),
            76..=79 => self.client_steers(),
            80..=82 => self.client_hangs_up(),
            83..=86 => self.worker_chatter(),
            87..=89 => {
                let name = self.rng.pick(&NAMES).unwrap_or("w0");
                let client = self.client()?;
                self.request(client, Request::EnableWorker(name.to_owned()))?;
                Ok(())
            }
            _ => self.heartbeats(),
        }
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
            if self.rng.chance(15)
                && let Some(dependency) = self.random_job()
            {
                options.after.push(dependency);
            }
            let queue = if self.rng.chance(80) {
                "default"
            } else {
                "other"
            };
            jobs.push(NewJob {
                queue: queue.to_owned(),
                kind: KIND.to_owned(),
                args: Vec::new(),
                options,
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
        let running: Vec<(JobId, u32)> = slot
            .running
            .iter()
            .map(|(job, attempt, _)| (*job, *attempt))
            .chain(slot.unacked.iter().map(|c| (c.job, c.attempt)))
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
        };
        self.request(conn, Request::Register(registration))?;
        Ok(conn)
    }

    /// A connected worker ends its running job and reports it.
    fn finish_a_job(&mut self, healthy: bool) -> Result<(), String> {
        let busy: Vec<(ConnId, &'static str)> = self
            .connected
            .iter()
            .filter(|(_, name)| self.slots.get(*name).is_some_and(|s| s.running.is_some()))
            .map(|(conn, name)| (*conn, *name))
            .collect();
        let Some((conn, name)) = self.rng.pick(&busy) else {
            return Ok(());
        };
        let Some((job, attempt, told_to_stop)) =
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
                0..=4 => Outcome::Finished(vec![1]),
                5..=8 => Outcome::Failed(Failure::new("exit 1")),
                _ => Outcome::Interrupted,
            }
        };
        let interrupted = outcome == Outcome::Interrupted;
        let completion = Completion {
            job,
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
            // A worker that interrupts its job is stopping: it exits, acknowledged or not.
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
        let Some(job) = self.random_job() else {
            return Ok(());
        };
        if self
            .slots
            .get(name)
            .is_some_and(|s| s.running.is_some_and(|r| r.0 == job))
        {
            return Ok(());
        }
        let attempt = u32::try_from(self.rng.below(3)).unwrap_or(0);
        let completion = Completion {
            job,
            attempt,
            outcome: Outcome::Finished(Vec::new()),
        };
        let current = self.core.jobs.get(&job).is_some_and(|j| j.runs(attempt));
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
        let result = if self.rng.chance(15) {
            Err(StoreError::Database("database or disk is full".to_owned()))
        } else {
            Ok(())
        };
        self.input(Input::Persisted { tokens, result })
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
        let Some(job) = self.random_job() else {
            return Ok(());
        };
        let request = match self.rng.below(4) {
            0 => Request::Wait(job),
            1 => Request::Watch(vec![job]),
            2 => Request::Logs {
                job,
                from: 0,
                follow: true,
            },
            _ => Request::Job(job),
        };
        self.request(client, request)?;
        Ok(())
    }

    fn client_steers(&mut self) -> Result<(), String> {
        let client = self.client()?;
        let Some(job) = self.random_job() else {
            return Ok(());
        };
        let request = match self.rng.below(5) {
            0 | 1 => Request::Cancel(vec![job]),
            2 => Request::Requeue(RequeueTarget::Jobs(vec![job])),
            3 => Request::Requeue(RequeueTarget::Failed { queue: None }),
            _ => Request::Jobs(JobQuery {
                queue: None,
                state: None,
                limit: 10,
            }),
        };
        self.request(client, request)?;
        if self.rng.chance(10) {
            self.request(client, Request::Info)?;
        }
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
        let busy: Vec<(ConnId, JobId, u32)> = self
            .connected
            .iter()
            .filter_map(|(conn, name)| {
                let (job, attempt, _) = self.slots.get(name)?.running?;
                Some((*conn, job, attempt))
            })
            .collect();
        let Some((conn, job, attempt)) = self.rng.pick(&busy) else {
            return Ok(());
        };
        self.request(
            conn,
            Request::Log {
                job,
                attempt,
                lines: vec!["Fra:1".to_owned()],
            },
        )?;
        Ok(())
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
    fn drain(mut self) -> Result<(), String> {
        // Every worker reconnects serving every queue (some served only one).
        let connected: Vec<ConnId> = self.connected.keys().copied().collect();
        self.connected.clear();
        for conn in std::mem::take(&mut self.dead).into_iter().chain(connected) {
            self.input(Input::Disconnected { conn })?;
        }
        for name in NAMES {
            if !self.connected.values().any(|n| *n == name) {
                self.register(name, vec!["default".to_owned(), "other".to_owned()])?;
            }
        }
        for _ in 0..2_000 {
            if self.core.jobs.values().all(|job| job.state.is_terminal()) {
                return self.check_acknowledged();
            }
            let tokens: Vec<Token> = self.commits.drain(..).collect();
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
            self.finish_a_job(true)?;
            self.heartbeats()?;
            self.now = self.now.plus(Duration::from_millis(700));
            self.input(Input::Tick)?;
        }
        let stuck: Vec<String> = self
            .core
            .jobs
            .values()
            .filter(|job| !job.state.is_terminal())
            .map(|job| format!("{} {} attempts {:?}", job.id, job.state, job.attempts))
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
            "jobs never ended with healthy workers: {stuck:?}\nworkers: {workers:#?}\nsimulated: {:?}\n{}",
            self.slots,
            self.recent()
        ))
    }

    /// Nothing acknowledged is lost: every acknowledged job is still known, unless it was
    /// deleted after its retention.
    fn check_acknowledged(&self) -> Result<(), String> {
        for id in &self.acknowledged {
            if !self.core.jobs.contains_key(id) && !self.pruned.contains(id) {
                return Err(format!("acknowledged job {id} is gone"));
            }
        }
        let unknown_state = self
            .core
            .jobs
            .values()
            .any(|job| job.state == JobState::Deferred);
        if unknown_state {
            return Err("a deferred job outlived the drain".to_owned());
        }
        Ok(())
    }
}
