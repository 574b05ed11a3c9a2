//! The state machine's rules, checked without sockets, clocks or disks.
//!
//! A single submission is a job of one task, so most rules are stated with such jobs and
//! named by their task (`TaskId`); `jobs.rs` states the rules of jobs of many tasks.

use std::time::Duration;

use buildcat_proto::{
    AttemptOutcome, Change, Changed, Completion, Dependency, Failure, JobId, JobOptions, JobRef,
    JobState, NewJob, NewTask, Outcome, Reply, Request, RequestError, Requeue, Role, ServerFrame,
    Submitted, TaskId, TaskRef, TaskState, Timestamp, WorkerActivity, WorkerRegistration,
};

mod faults;
mod gpus;
mod jobs;
mod logs;
mod memstore;
mod notices;
mod outage;
mod output_bytes;
mod previews;
mod randomized;
mod spawn;
mod worker_pause;

use super::job::Task;
use super::{ConnId, Core, CoreConfig, Effect, Input, MAX_WORKER_LOSSES, Notice, OutputRead};
use crate::store::{Loaded, Store, StoreError, StoreOp};
use memstore::MemStore;

const CLIENT: ConnId = 1;

/// A core with a clock that tests move by hand; commits succeed at once unless told not to.
pub(super) struct Farm {
    /// The state machine under test.
    core: Core,
    /// The time every input is handled at; tests move it with `advance`.
    now: Timestamp,
    /// The id of the last request sent, so that each gets its own.
    next_request: u64,
    /// Every store op the core asked for, in order.
    stored: Vec<StoreOp>,
    /// What a store holds after every commit that succeeded: a restart loads from it, and
    /// output reads are served from it.
    store: MemStore,
    /// Output reads the core asked for and no test has served yet (`tests/logs.rs` serves
    /// them from `store`).
    reads: Vec<OutputRead>,
    /// Every notice the core made, in order (`tests/notices.rs` reads them).
    notices: Vec<Notice>,
}

impl Farm {
    fn new() -> Farm {
        Farm::with(CoreConfig::default())
    }

    /// A farm with an empty store.
    fn with(config: CoreConfig) -> Farm {
        Farm::from_store(config, MemStore::default(), Timestamp(1_700_000_000_000))
    }

    /// A farm started at `now` from what `store` holds, as a server starts.
    fn from_store(config: CoreConfig, mut store: MemStore, now: Timestamp) -> Farm {
        let loaded: Loaded = store.load().expect("an in-memory load");
        let (core, stored) = Core::new(config, loaded, now);
        store.commit(&stored).expect("an in-memory commit");
        let mut farm = Farm {
            core,
            now,
            next_request: 100,
            stored,
            store,
            reads: Vec::new(),
            notices: Vec::new(),
        };
        farm.handle(Input::Connected {
            conn: CLIENT,
            role: Role::Client,
        });
        farm
    }

    /// A new core from what this farm stored, as after the server was killed and started
    /// again at the same time; no connection survives.
    fn restart(&self, config: CoreConfig) -> Farm {
        Farm::from_store(config, self.store.clone(), self.now)
    }

    /// Handles an input and completes every commit it asks for; returns every frame sent.
    fn handle(&mut self, input: Input) -> Vec<(ConnId, ServerFrame)> {
        self.handle_with(input, None)
    }

    fn handle_with(
        &mut self,
        input: Input,
        commit_error: Option<&str>,
    ) -> Vec<(ConnId, ServerFrame)> {
        let mut frames = Vec::new();
        let mut inputs = vec![input];
        while let Some(input) = inputs.pop() {
            let effects = self.core.handle(self.now, input);
            if let Err(broken) = self.core.check_invariants() {
                panic!("invariant broken: {broken}");
            }
            for effect in effects {
                match effect {
                    Effect::Send(conn, frame) => frames.push((conn, frame)),
                    Effect::Close(conn, reason) => {
                        frames.push((conn, ServerFrame::Closing(reason)))
                    }
                    Effect::ReadOutput(read) => self.reads.push(read),
                    Effect::Notice(notice) => self.notices.push(notice),
                    Effect::Persist { ops, token } => {
                        if commit_error.is_none() {
                            self.store.commit(&ops).expect("an in-memory commit");
                        }
                        self.stored.extend(ops);
                        if let Some(token) = token {
                            inputs.push(Input::Persisted {
                                tokens: vec![token],
                                result: match commit_error {
                                    None => Ok(()),
                                    Some(e) => Err(StoreError::Database(e.to_owned())),
                                },
                            });
                        }
                    }
                }
            }
        }
        frames
    }

    fn request(&mut self, conn: ConnId, request: Request) -> Vec<(ConnId, ServerFrame)> {
        self.next_request += 1;
        let id = self.next_request;
        self.handle(Input::Request { conn, id, request })
    }

    /// Submits jobs; what the server took, with every frame sent.
    fn submit_jobs(&mut self, jobs: Vec<NewJob>) -> (Vec<Submitted>, Vec<(ConnId, ServerFrame)>) {
        let frames = self.request(CLIENT, Request::Submit(jobs));
        let submitted = frames
            .iter()
            .find_map(|(conn, frame)| match frame {
                ServerFrame::Reply {
                    reply: Ok(Reply::Submitted(submitted)),
                    ..
                } if *conn == CLIENT => Some(submitted.clone()),
                _ => None,
            })
            .expect("submission acknowledged");
        (submitted, frames)
    }

    /// Submits jobs of one task each; their tasks.
    fn submit(&mut self, jobs: Vec<NewJob>) -> (Vec<TaskId>, Vec<(ConnId, ServerFrame)>) {
        let (submitted, frames) = self.submit_jobs(jobs);
        let tasks = submitted.iter().map(|job| TaskId::new(job.id, 0)).collect();
        (tasks, frames)
    }

    /// Submits a job of one task; the task.
    fn submit_one(&mut self, queue: &str, kind: &str) -> (TaskId, Vec<(ConnId, ServerFrame)>) {
        let (ids, frames) = self.submit(vec![job(queue, kind, JobOptions::default())]);
        (ids[0], frames)
    }

    fn worker(&mut self, conn: ConnId, name: &str, queues: &[&str]) -> Vec<(ConnId, ServerFrame)> {
        self.worker_with(conn, name, queues, &["buildcat.worker.info"], Vec::new())
    }

    fn worker_with(
        &mut self,
        conn: ConnId,
        name: &str,
        queues: &[&str],
        kinds: &[&str],
        running: Vec<(TaskId, u32)>,
    ) -> Vec<(ConnId, ServerFrame)> {
        self.handle(Input::Connected {
            conn,
            role: Role::Worker,
        });
        let registration = WorkerRegistration {
            name: name.to_owned(),
            host: "render01".to_owned(),
            root: "/mnt/farm".to_owned(),
            queues: queues.iter().map(|q| (*q).to_owned()).collect(),
            kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
            pid: 42,
            version: "test".to_owned(),
            running,
            tools: Vec::new(),
            gpus: Vec::new(),
        };
        self.request(conn, Request::Register(registration))
    }

    fn complete(
        &mut self,
        conn: ConnId,
        task: TaskId,
        attempt: u32,
        outcome: Outcome,
    ) -> Vec<(ConnId, ServerFrame)> {
        self.request(
            conn,
            Request::Complete(Completion {
                task,
                attempt,
                outcome,
            }),
        )
    }

    /// The task as the core keeps it.
    fn task(&self, id: TaskId) -> &Task {
        self.core.task(id).expect("the task is on record")
    }

    /// The task's state as kept (a held task is queued).
    fn state(&self, id: TaskId) -> TaskState {
        self.task(id).state
    }

    /// The task's state as people see it (a held task is paused).
    fn shown(&self, id: TaskId) -> TaskState {
        let job = &self.core.jobs[&id.job];
        job.shown_state(self.task(id), self.core.queue_paused(&job.queue))
    }

    /// The job's state, derived from its tasks.
    fn job_state(&self, id: JobId) -> JobState {
        let job = &self.core.jobs[&id];
        job.state(self.core.queue_paused(&job.queue))
    }

    fn advance(&mut self, by: Duration) {
        self.now = self.now.plus(by);
    }

    /// The worker's connection drops and it does not come back within the grace period.
    fn lose(&mut self, conn: ConnId) -> Vec<(ConnId, ServerFrame)> {
        let mut frames = self.handle(Input::Disconnected { conn });
        self.advance(CoreConfig::default().reconnect_grace + Duration::from_secs(1));
        frames.extend(self.handle(Input::Tick));
        frames
    }

    /// The client's request answered with `Changes`: the changes.
    fn changes(&mut self, request: Request) -> Vec<Change> {
        let frames = self.request(CLIENT, request);
        match replies(&frames, CLIENT).pop() {
            Some(Ok(Reply::Changes(changes))) => changes,
            other => panic!("expected changes, got {other:?}"),
        }
    }
}

/// A job of one task.
fn job(queue: &str, kind: &str, options: JobOptions) -> NewJob {
    job_of(queue, kind, options, 1)
}

/// A job of `tasks` tasks, task `i` rendering frame `i + 1`.
fn job_of(queue: &str, kind: &str, options: JobOptions, tasks: u32) -> NewJob {
    NewJob {
        queue: queue.to_owned(),
        kind: kind.to_owned(),
        name: String::new(),
        submitter: "ana@render01".to_owned(),
        runs: "a test".to_owned(),
        options,
        tasks: (1..=tasks)
            .map(|frame| NewTask {
                frames: Some(frame.to_string()),
                args: vec![1, 2, 3],
            })
            .collect(),
    }
}

/// The whole job `task` belongs to, as a handle.
fn whole(task: TaskId) -> TaskRef {
    TaskRef::job(task.job)
}

/// The (worker, task, attempt) of every assignment among `frames`.
fn assignments(frames: &[(ConnId, ServerFrame)]) -> Vec<(ConnId, TaskId, u32)> {
    frames
        .iter()
        .filter_map(|(conn, frame)| match frame {
            ServerFrame::Assign(a) => Some((*conn, a.task, a.attempt)),
            _ => None,
        })
        .collect()
}

/// The (worker, task, attempt) of every stop among `frames`.
fn stops(frames: &[(ConnId, ServerFrame)]) -> Vec<(ConnId, TaskId, u32)> {
    frames
        .iter()
        .filter_map(|(conn, frame)| match frame {
            ServerFrame::Cancel { task, attempt, .. } => Some((*conn, *task, *attempt)),
            _ => None,
        })
        .collect()
}

fn replies(frames: &[(ConnId, ServerFrame)], to: ConnId) -> Vec<Result<Reply, RequestError>> {
    frames
        .iter()
        .filter_map(|(conn, frame)| match frame {
            ServerFrame::Reply { reply, .. } if *conn == to => Some(reply.clone()),
            _ => None,
        })
        .collect()
}

const INFO: &str = "buildcat.worker.info";

#[test]
fn submission_is_acknowledged_only_after_commit() {
    let mut farm = Farm::new();
    let effects = farm.core.handle(
        farm.now,
        Input::Request {
            conn: CLIENT,
            id: 7,
            request: Request::Submit(vec![job("default", INFO, JobOptions::default())]),
        },
    );
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Send(..))),
        "nothing is acknowledged before the commit: {effects:?}"
    );
    let [
        Effect::Persist {
            ops,
            token: Some(token),
        },
    ] = effects.as_slice()
    else {
        panic!("expected one persist with a token: {effects:?}");
    };
    assert!(matches!(ops.as_slice(), [StoreOp::Insert(_)]));
    assert_eq!(
        farm.core.info().queues.len(),
        0,
        "not visible before commit"
    );
    let effects = farm.core.handle(
        farm.now,
        Input::Persisted {
            tokens: vec![*token],
            result: Ok(()),
        },
    );
    assert!(matches!(
        effects.as_slice(),
        [Effect::Send(CLIENT, ServerFrame::Reply { id: 7, reply: Ok(Reply::Submitted(ids)) })] if ids.len() == 1
    ));
    assert_eq!(farm.core.info().queues[0].count(TaskState::Queued), 1);
}

#[test]
fn a_failed_commit_acknowledges_nothing_and_queues_nothing() {
    let mut farm = Farm::new();
    let frames = farm.handle_with(
        Input::Request {
            conn: CLIENT,
            id: 1,
            request: Request::Submit(vec![job("default", INFO, JobOptions::default())]),
        },
        Some("the disk is full"),
    );
    assert_eq!(
        replies(&frames, CLIENT),
        vec![Err(RequestError::Storage(
            "storage error: the disk is full".into()
        ))]
    );
    assert_eq!(farm.core.job_count(), 0);
}

#[test]
fn invalid_submissions_are_refused_with_the_reason() {
    let mut farm = Farm::new();
    let cases = [
        (job("", INFO, JobOptions::default()), "queue name is empty"),
        (
            job("default", " ", JobOptions::default()),
            "job kind is empty",
        ),
    ];
    for (bad, reason) in cases {
        let frames = farm.request(CLIENT, Request::Submit(vec![bad]));
        assert_eq!(
            replies(&frames, CLIENT),
            vec![Err(RequestError::Invalid(reason.into()))]
        );
    }
}

#[test]
fn idle_worker_gets_a_new_job_at_once() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (id, frames) = farm.submit_one("default", INFO);
    assert_eq!(assignments(&frames), vec![(10, id, 1)]);
    assert_eq!(farm.state(id), TaskState::Started);
}

#[test]
fn queued_job_goes_to_a_worker_when_it_registers() {
    let mut farm = Farm::new();
    let (id, _) = farm.submit_one("default", INFO);
    assert_eq!(farm.state(id), TaskState::Queued);
    let frames = farm.worker(10, "w1", &["default"]);
    assert_eq!(assignments(&frames), vec![(10, id, 1)]);
}

#[test]
fn jobs_leave_a_queue_by_priority_then_age() {
    let mut farm = Farm::new();
    let low = |p| JobOptions {
        priority: p,
        ..JobOptions::default()
    };
    let (ids, _) = farm.submit(vec![
        job("default", INFO, low(0)),
        job("default", INFO, low(5)),
        job("default", INFO, low(0)),
        job("default", INFO, low(5)),
    ]);
    let mut order = Vec::new();
    let mut frames = farm.worker(10, "w1", &["default"]);
    for _ in 0..4 {
        let (_, id, attempt) = assignments(&frames)[0];
        order.push(id);
        frames = farm.complete(10, id, attempt, Outcome::Finished(vec![]));
    }
    assert_eq!(order, vec![ids[1], ids[3], ids[0], ids[2]]);
}

#[test]
fn a_worker_serves_its_queues_in_the_order_it_names_them() {
    let mut farm = Farm::new();
    let (low, _) = farm.submit_one("low", INFO);
    let (high, _) = farm.submit_one("high", INFO);
    let frames = farm.worker(10, "w1", &["high", "low"]);
    assert_eq!(assignments(&frames), vec![(10, high, 1)]);
    let frames = farm.complete(10, high, 1, Outcome::Finished(vec![]));
    assert_eq!(assignments(&frames), vec![(10, low, 1)]);
}

#[test]
fn the_worker_idle_longest_gets_the_next_job() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    farm.worker(11, "w2", &["default"]);
    let (first, frames) = farm.submit_one("default", INFO);
    assert_eq!(assignments(&frames), vec![(10, first, 1)]);
    farm.complete(10, first, 1, Outcome::Finished(vec![]));
    // w1 is idle again, but w2 has waited longer.
    let (second, frames) = farm.submit_one("default", INFO);
    assert_eq!(assignments(&frames), vec![(11, second, 1)]);
    let (third, frames) = farm.submit_one("default", INFO);
    assert_eq!(assignments(&frames), vec![(10, third, 1)]);
}

#[test]
fn a_job_only_goes_to_a_worker_that_can_run_its_kind() {
    let mut farm = Farm::new();
    farm.worker_with(10, "plain", &["default"], &[INFO], Vec::new());
    let (render, frames) = farm.submit_one("default", "buildcat.blender.render");
    assert!(assignments(&frames).is_empty());
    let frames = farm.worker_with(
        11,
        "blender",
        &["default"],
        &["buildcat.blender.render"],
        Vec::new(),
    );
    assert_eq!(assignments(&frames), vec![(11, render, 1)]);
    // The plain worker still gets what it can run, past the job it cannot.
    let (info_job, frames) = farm.submit_one("default", INFO);
    assert_eq!(assignments(&frames), vec![(10, info_job, 1)]);
}

#[test]
fn waiting_clients_hear_the_end_once_it_is_committed() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (id, _) = farm.submit_one("default", INFO);
    let frames = farm.request(CLIENT, Request::Wait(id.job.into()));
    assert!(
        replies(&frames, CLIENT).is_empty(),
        "no answer while running"
    );
    let frames = farm.complete(10, id, 1, Outcome::Finished(vec![9]));
    assert_eq!(replies(&frames, 10), vec![Ok(Reply::Ack)]);
    let ended = replies(&frames, CLIENT);
    let [Ok(Reply::Ended(status))] = ended.as_slice() else {
        panic!("expected the end: {frames:?}");
    };
    assert_eq!(status.job.state, JobState::Finished);
    assert_eq!(status.tasks[0].state, TaskState::Finished);
    assert_eq!(status.tasks[0].worker.as_deref(), Some("w1"));
    let frames = farm.request(CLIENT, Request::Task(id.into()));
    assert!(matches!(
        replies(&frames, CLIENT).as_slice(),
        [Ok(Reply::Task(task))] if task.result == Some(vec![9]) && task.worker() == Some("w1")
    ));
    // Waiting on an ended job answers at once.
    let frames = farm.request(CLIENT, Request::Wait(id.job.into()));
    assert!(matches!(
        replies(&frames, CLIENT).as_slice(),
        [Ok(Reply::Ended(_))]
    ));
}

#[test]
fn a_lost_worker_hands_its_job_back_to_the_queue() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (id, _) = farm.submit_one("default", INFO);
    farm.lose(10);
    assert_eq!(farm.state(id), TaskState::Queued);
    let attempt = &farm.task(id).attempts[0];
    assert_eq!(attempt.outcome, Some(AttemptOutcome::WorkerLost));
    let frames = farm.worker(11, "w2", &["default"]);
    assert_eq!(assignments(&frames), vec![(11, id, 2)]);
}

#[test]
fn a_job_that_loses_every_worker_fails_with_worker_lost() {
    let mut farm = Farm::new();
    let (id, _) = farm.submit_one("default", INFO);
    let frames = farm.request(CLIENT, Request::Wait(id.job.into()));
    assert!(frames.is_empty());
    let mut last = Vec::new();
    for n in 0..MAX_WORKER_LOSSES {
        let conn = 10 + ConnId::from(n);
        farm.worker(conn, &format!("w{n}"), &["default"]);
        last = farm.lose(conn);
    }
    assert_eq!(farm.state(id), TaskState::Failed);
    let failure = farm.task(id).failure.clone().expect("a reason");
    assert!(failure.reason.starts_with("worker lost"), "{failure:?}");
    assert!(
        matches!(replies(&last, CLIENT).as_slice(), [Ok(Reply::Ended(s))] if s.job.state == JobState::Failed)
    );
}

#[test]
fn a_result_for_an_old_attempt_is_refused() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (id, _) = farm.submit_one("default", INFO);
    farm.lose(10);
    farm.worker(11, "w2", &["default"]);
    farm.worker(12, "late", &["default"]);
    let frames = farm.complete(12, id, 1, Outcome::Finished(vec![]));
    assert_eq!(
        replies(&frames, 12),
        vec![Err(RequestError::StaleAttempt {
            task: id,
            attempt: 1
        })]
    );
    assert_eq!(farm.state(id), TaskState::Started);
    let frames = farm.complete(11, id, 2, Outcome::Finished(vec![]));
    assert_eq!(replies(&frames, 11), vec![Ok(Reply::Ack)]);
    assert_eq!(farm.state(id), TaskState::Finished);
}

#[test]
fn a_reconnecting_worker_reclaims_its_running_job() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (id, _) = farm.submit_one("default", INFO);
    farm.lose(10);
    assert_eq!(farm.state(id), TaskState::Queued);
    let frames = farm.worker_with(20, "w1", &["default"], &[INFO], vec![(id, 1)]);
    assert!(
        assignments(&frames).is_empty(),
        "it is busy with its own job"
    );
    assert_eq!(farm.state(id), TaskState::Started);
    let frames = farm.complete(20, id, 1, Outcome::Finished(vec![1]));
    assert_eq!(replies(&frames, 20), vec![Ok(Reply::Ack)]);
    assert_eq!(farm.state(id), TaskState::Finished);
}

#[test]
fn failed_attempts_are_retried_until_attempts_run_out() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let options = JobOptions {
        max_attempts: 2,
        ..JobOptions::default()
    };
    let (ids, _) = farm.submit(vec![job("default", INFO, options)]);
    let id = ids[0];
    let failure = Failure::new("hython exited with code 3");
    let frames = farm.complete(10, id, 1, Outcome::Failed(failure.clone()));
    assert!(
        assignments(&frames).is_empty(),
        "the retry waits for its backoff"
    );
    assert_eq!(farm.state(id), TaskState::Queued);
    farm.advance(CoreConfig::default().retry_backoff);
    let frames = farm.handle(Input::Tick);
    assert_eq!(assignments(&frames), vec![(10, id, 2)]);
    farm.complete(10, id, 2, Outcome::Failed(failure.clone()));
    assert_eq!(farm.state(id), TaskState::Failed);
    let task = farm.task(id);
    assert_eq!(task.failure.as_deref(), Some(&failure));
    assert_eq!(task.attempts.len(), 2);
    assert_eq!(farm.job_state(id.job), JobState::Failed);
}

#[test]
fn worker_requests_are_refused_on_client_connections() {
    let mut farm = Farm::new();
    let frames = farm.request(CLIENT, Request::Heartbeat);
    assert!(matches!(
        replies(&frames, CLIENT).as_slice(),
        [Err(RequestError::WrongRole { .. })]
    ));
}

#[test]
fn unknown_jobs_are_named_in_the_error() {
    let mut farm = Farm::new();
    let id: JobId = "0190f0c0-0000-7000-8000-000000000000".parse().unwrap();
    for job in [JobRef::Id(id), JobRef::Number(42)] {
        for request in [
            Request::Job(job),
            Request::Wait(job),
            Request::Task(TaskRef::job(job)),
        ] {
            let frames = farm.request(CLIENT, request);
            assert_eq!(
                replies(&frames, CLIENT),
                vec![Err(RequestError::UnknownJob(job))]
            );
        }
    }
}

#[test]
fn dependents_wait_for_their_dependencies() {
    let mut farm = Farm::new();
    let (first, _) = farm.submit_one("default", INFO);
    let after = |tasks: Vec<TaskId>| JobOptions {
        after: tasks.iter().map(|task| Dependency::Job(task.job)).collect(),
        ..JobOptions::default()
    };
    let (ids, _) = farm.submit(vec![job("default", INFO, after(vec![first]))]);
    let second = ids[0];
    assert_eq!(farm.state(second), TaskState::Deferred);
    let frames = farm.worker(10, "w1", &["default"]);
    assert_eq!(assignments(&frames), vec![(10, first, 1)]);
    let frames = farm.complete(10, first, 1, Outcome::Finished(vec![]));
    assert_eq!(assignments(&frames), vec![(10, second, 1)]);

    // A failed dependency fails the dependent with a reason instead of leaving it deferred.
    let (third, _) = farm.submit_one("other", INFO);
    let (ids, _) = farm.submit(vec![job("default", INFO, after(vec![third]))]);
    farm.worker(11, "w2", &["other"]);
    farm.complete(11, third, 1, Outcome::Failed(Failure::new("boom")));
    assert_eq!(farm.state(ids[0]), TaskState::Failed);
    let reason = &farm.task(ids[0]).failure.as_ref().unwrap().reason;
    let number = farm.core.jobs[&third.job].number;
    assert_eq!(reason, &format!("dependency job {number} failed"));
}

/// A silent worker (frozen, or cut off without the connection closing) is dropped after
/// three missed heartbeats; its job waits the reconnect grace counted from the last time the
/// server heard from it, as the worker counts its lease, then goes back to its queue.
#[test]
fn silent_workers_are_dropped_and_their_jobs_requeued_after_the_grace() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (id, _) = farm.submit_one("default", INFO);
    farm.advance(Duration::from_secs(14));
    assert!(
        farm.handle(Input::Tick).is_empty(),
        "within three heartbeats"
    );
    farm.advance(Duration::from_secs(2));
    let frames = farm.handle(Input::Tick);
    assert!(
        matches!(frames.as_slice(), [(10, ServerFrame::Closing(reason))] if reason.contains("no heartbeat"))
    );
    assert!(farm.core.info().workers.is_empty());
    assert_eq!(farm.state(id), TaskState::Started, "in its grace");
    let grace = CoreConfig::default().reconnect_grace;
    farm.advance(grace - Duration::from_secs(16));
    farm.handle(Input::Tick);
    assert_eq!(
        farm.state(id),
        TaskState::Queued,
        "grace from the last heartbeat"
    );
}

#[test]
fn heartbeats_keep_a_worker() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    for _ in 0..10 {
        farm.advance(Duration::from_secs(5));
        farm.request(10, Request::Heartbeat);
        assert!(farm.handle(Input::Tick).is_empty());
    }
    assert_eq!(farm.core.info().workers.len(), 1);
}

#[test]
fn finished_jobs_are_pruned_after_retention_and_failed_ones_kept() {
    let config = CoreConfig {
        retention: Duration::from_secs(60),
        ..CoreConfig::default()
    };
    let mut farm = Farm::with(config);
    farm.worker(10, "w1", &["default"]);
    let (done, _) = farm.submit_one("default", INFO);
    farm.complete(10, done, 1, Outcome::Finished(vec![]));
    let (failed, _) = farm.submit_one("default", INFO);
    farm.complete(10, failed, 1, Outcome::Failed(Failure::new("no")));
    farm.advance(Duration::from_secs(61));
    farm.request(10, Request::Heartbeat);
    farm.handle(Input::Tick);
    assert!(!farm.core.jobs.contains_key(&done.job));
    assert!(farm.core.jobs.contains_key(&failed.job));
    assert!(farm.stored.contains(&StoreOp::Delete(done.job)));
    let queue = &farm.core.info().queues[0];
    assert_eq!(
        (
            queue.count(TaskState::Finished),
            queue.count(TaskState::Failed)
        ),
        (0, 1)
    );
}

/// Issue 9, item 4: after `kill -9` of the server, jobs found started were requeued at once
/// and ran a second time while their first workers still ran them.
#[test]
fn after_a_restart_started_jobs_wait_the_grace_for_their_workers() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    farm.worker(11, "w2", &["default"]);
    let (kept, _) = farm.submit_one("default", INFO);
    let (unclaimed, _) = farm.submit_one("default", INFO);
    let (queued, _) = farm.submit_one("default", INFO);
    // Heartbeats far apart, so that only the grace decides here.
    let config = CoreConfig {
        heartbeat: Duration::from_secs(600),
        ..CoreConfig::default()
    };
    let mut restarted = farm.restart(config);
    assert!(restarted.stored.is_empty(), "nothing changes at load");
    assert_eq!(restarted.state(kept), TaskState::Started);
    assert_eq!(restarted.state(unclaimed), TaskState::Started);
    // w1 comes back still running its job: it keeps it, and gets nothing else meanwhile.
    let frames = restarted.worker_with(20, "w1", &["default"], &[INFO], vec![(kept, 1)]);
    assert!(assignments(&frames).is_empty());
    let frames = restarted.complete(20, kept, 1, Outcome::Finished(vec![]));
    assert_eq!(restarted.state(kept), TaskState::Finished);
    assert_eq!(assignments(&frames), vec![(20, queued, 1)]);
    assert_eq!(restarted.task(kept).attempts.len(), 1, "ran once");
    // w2 never comes back: its job is handed on after the grace, as a worker loss.
    restarted.advance(CoreConfig::default().reconnect_grace - Duration::from_secs(1));
    restarted.handle(Input::Tick);
    assert_eq!(restarted.state(unclaimed), TaskState::Started);
    restarted.advance(Duration::from_secs(2));
    restarted.handle(Input::Tick);
    let attempts = &restarted.task(unclaimed).attempts;
    assert_eq!(attempts[0].outcome, Some(AttemptOutcome::WorkerLost));
    assert_eq!(restarted.state(unclaimed), TaskState::Queued);
}

/// A worker that comes back without the job it ran (it stopped it while cut off, or was
/// restarted) hands it on at once rather than after the grace.
#[test]
fn a_worker_back_without_its_job_hands_it_on_at_once() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (id, _) = farm.submit_one("default", INFO);
    farm.handle(Input::Disconnected { conn: 10 });
    assert_eq!(farm.state(id), TaskState::Started);
    let frames = farm.worker_with(11, "w1", &["default"], &[INFO], Vec::new());
    assert_eq!(assignments(&frames), vec![(11, id, 2)]);
    let attempts = &farm.task(id).attempts;
    assert_eq!(attempts[0].outcome, Some(AttemptOutcome::WorkerLost));
}

#[test]
fn info_shows_queues_and_what_each_worker_does() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    farm.worker(11, "w2", &["other"]);
    let (id, _) = farm.submit_one("default", INFO);
    farm.submit_one("default", INFO);
    let info = farm.core.info();
    assert_eq!(info.queues.len(), 1);
    assert_eq!(
        (
            info.queues[0].count(TaskState::Queued),
            info.queues[0].count(TaskState::Started)
        ),
        (1, 1)
    );
    assert_eq!(info.queues[0].jobs, 2, "two jobs not ended");
    assert_eq!(info.workers[0].name, "w1");
    assert_eq!(info.workers[0].activity, WorkerActivity::Busy);
    let running = info.workers[0].task.expect("w1 runs a task");
    assert_eq!(running.id, id);
    assert_eq!(running.to_string(), "1.0");
    assert_eq!(info.workers[1].activity, WorkerActivity::Idle);
}

#[test]
fn a_worker_back_within_the_grace_period_keeps_its_job() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    farm.worker(11, "w2", &["default"]);
    let (id, _) = farm.submit_one("default", INFO);
    farm.handle(Input::Disconnected { conn: 10 });
    assert_eq!(
        farm.state(id),
        TaskState::Started,
        "not taken away during the grace period"
    );
    farm.advance(Duration::from_secs(5));
    assert!(
        assignments(&farm.handle(Input::Tick)).is_empty(),
        "w2 does not get it"
    );
    let frames = farm.worker_with(20, "w1", &["default"], &[INFO], vec![(id, 1)]);
    assert!(assignments(&frames).is_empty());
    farm.advance(Duration::from_secs(60));
    farm.request(20, Request::Heartbeat);
    farm.request(11, Request::Heartbeat);
    assert!(
        farm.handle(Input::Tick).is_empty(),
        "the grace period no longer applies"
    );
    assert_eq!(farm.state(id), TaskState::Started);
    let frames = farm.complete(20, id, 1, Outcome::Finished(vec![]));
    assert_eq!(replies(&frames, 20), vec![Ok(Reply::Ack)]);
    assert_eq!(farm.task(id).attempts.len(), 1, "run once");
}

#[test]
fn retries_back_off_exponentially() {
    let config = CoreConfig {
        retry_backoff: Duration::from_secs(10),
        max_retry_backoff: Duration::from_secs(15),
        ..CoreConfig::default()
    };
    let mut farm = Farm::with(config);
    farm.worker(10, "w1", &["default"]);
    let options = JobOptions {
        max_attempts: 3,
        ..JobOptions::default()
    };
    let (ids, _) = farm.submit(vec![job("default", INFO, options)]);
    let id = ids[0];
    farm.complete(10, id, 1, Outcome::Failed(Failure::new("first")));
    farm.advance(Duration::from_secs(9));
    assert!(assignments(&farm.handle(Input::Tick)).is_empty());
    farm.advance(Duration::from_secs(1));
    assert_eq!(assignments(&farm.handle(Input::Tick)), vec![(10, id, 2)]);
    farm.complete(10, id, 2, Outcome::Failed(Failure::new("second")));
    // 20 s doubled, capped at 15 s.
    farm.advance(Duration::from_secs(14));
    assert!(assignments(&farm.handle(Input::Tick)).is_empty());
    farm.advance(Duration::from_secs(1));
    assert_eq!(assignments(&farm.handle(Input::Tick)), vec![(10, id, 3)]);
    let outcomes: Vec<_> = farm
        .task(id)
        .attempts
        .iter()
        .map(|a| a.outcome.clone())
        .collect();
    assert_eq!(
        outcomes,
        vec![
            Some(AttemptOutcome::Failed(Failure::new("first"))),
            Some(AttemptOutcome::Failed(Failure::new("second"))),
            None
        ],
        "each attempt's reason is kept"
    );
}

#[test]
fn canceling_a_queued_job_removes_it_and_its_waiters_hear() {
    let mut farm = Farm::new();
    let (id, _) = farm.submit_one("default", INFO);
    farm.request(CLIENT, Request::Wait(id.job.into()));
    let frames = farm.request(CLIENT, Request::Cancel(vec![whole(id)]));
    let replies = replies(&frames, CLIENT);
    assert!(matches!(&replies[0], Ok(Reply::Ended(s)) if s.job.state == JobState::Canceled));
    assert!(
        matches!(&replies[1], Ok(Reply::Changes(c)) if matches!(c[0].result, Ok(Changed { tasks: 1, state: JobState::Canceled, .. })))
    );
    let frames = farm.worker(10, "w1", &["default"]);
    assert!(
        assignments(&frames).is_empty(),
        "a canceled job is never run"
    );
}

#[test]
fn canceling_a_running_job_tells_its_worker_and_its_report_changes_nothing() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (id, _) = farm.submit_one("default", INFO);
    let frames = farm.request(CLIENT, Request::Cancel(vec![whole(id)]));
    assert!(frames.iter().any(|(conn, frame)| *conn == 10
        && matches!(frame, ServerFrame::Cancel { task, attempt: 1, .. } if *task == id)));
    assert_eq!(farm.state(id), TaskState::Canceled);
    let frames = farm.complete(10, id, 1, Outcome::Canceled);
    assert_eq!(
        replies(&frames, 10),
        vec![Ok(Reply::Ack)],
        "expected, so acknowledged"
    );
    assert_eq!(farm.state(id), TaskState::Canceled, "and not recorded");
    let (next, frames) = farm.submit_one("default", INFO);
    assert_eq!(
        assignments(&frames),
        vec![(10, next, 1)],
        "the worker is free again"
    );
    // Canceling an ended job says why nothing happened.
    let frames = farm.request(CLIENT, Request::Cancel(vec![whole(id)]));
    assert!(matches!(
        replies(&frames, CLIENT).as_slice(),
        [Ok(Reply::Changes(c))] if matches!(&c[0].result, Err(RequestError::WrongState { state, .. }) if state == "canceled")
    ));
}

#[test]
fn requeue_gives_failed_jobs_another_attempt() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (id, _) = farm.submit_one("default", INFO);
    farm.complete(10, id, 1, Outcome::Failed(Failure::new("no licence")));
    assert_eq!(farm.state(id), TaskState::Failed);
    let frames = farm.request(
        CLIENT,
        Request::Requeue(Requeue::Failed {
            queue: None,
            user: None,
        }),
    );
    assert_eq!(assignments(&frames), vec![(10, id, 2)]);
    assert!(
        farm.stored
            .iter()
            .any(|op| matches!(op, StoreOp::UpdateTask(s) if s.id == id && s.max_attempts == 2))
    );
    farm.complete(10, id, 2, Outcome::Finished(vec![]));
    assert_eq!(farm.state(id), TaskState::Finished);
    let frames = farm.request(
        CLIENT,
        Request::Requeue(Requeue::Tasks {
            targets: vec![whole(id)],
            all: false,
        }),
    );
    assert!(matches!(
        replies(&frames, CLIENT).as_slice(),
        [Ok(Reply::Changes(c))] if matches!(c[0].result, Err(RequestError::WrongState { .. }))
    ));
}

#[test]
fn jobs_are_listed_newest_first_with_filters() {
    let mut farm = Farm::new();
    let (ids, _) = farm.submit(vec![
        job("a", INFO, JobOptions::default()),
        job("b", INFO, JobOptions::default()),
        job("a", INFO, JobOptions::default()),
    ]);
    let list = |farm: &mut Farm, query: buildcat_proto::JobQuery| {
        let frames = farm.request(CLIENT, Request::Jobs(query));
        match replies(&frames, CLIENT).pop() {
            Some(Ok(Reply::Jobs { jobs, .. })) => {
                jobs.into_iter().map(|j| j.id).collect::<Vec<_>>()
            }
            other => panic!("{other:?}"),
        }
    };
    let all = buildcat_proto::JobQuery {
        limit: 50,
        ..Default::default()
    };
    let ids: Vec<JobId> = ids.iter().map(|task| task.job).collect();
    assert_eq!(list(&mut farm, all.clone()), vec![ids[2], ids[1], ids[0]]);
    let in_a = buildcat_proto::JobQuery {
        queue: Some("a".into()),
        ..all.clone()
    };
    assert_eq!(list(&mut farm, in_a), vec![ids[2], ids[0]]);
    let two = buildcat_proto::JobQuery {
        limit: 2,
        ..all.clone()
    };
    assert_eq!(list(&mut farm, two), vec![ids[2], ids[1]]);
    let failed = buildcat_proto::JobQuery {
        state: Some(JobState::Failed),
        ..all
    };
    assert!(list(&mut farm, failed).is_empty());
}

#[test]
fn watchers_get_progress_and_the_end_of_every_job() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (ids, _) = farm.submit(vec![
        job("default", INFO, JobOptions::default()),
        job("default", INFO, JobOptions::default()),
    ]);
    let jobs = ids.iter().map(|task| JobRef::Id(task.job)).collect();
    let frames = farm.request(CLIENT, Request::Watch(jobs));
    assert!(replies(&frames, CLIENT).is_empty());
    let progress = buildcat_proto::TaskProgress {
        done: 1,
        total: 3,
        outputs: vec!["out/0001.png".into()],
        frame_percent: Some(45),
    };
    let frames = farm.request(
        10,
        Request::Progress {
            task: ids[0],
            attempt: 1,
            progress: progress.clone(),
        },
    );
    assert!(frames.iter().any(|(conn, frame)| *conn == CLIENT
        && matches!(frame, ServerFrame::Event { event: buildcat_proto::JobEvent::Progress { progress: p, .. }, .. } if *p == progress)));
    let status = farm.core.task_status(ids[0]).expect("the task");
    assert_eq!(status.progress, Some(progress.clone()));
    let summary = farm
        .core
        .job_status(ids[0].job)
        .map(|job| job.tasks[0].progress.clone());
    assert_eq!(
        summary.flatten().and_then(|shown| shown.frame_percent),
        progress.frame_percent,
        "the job's summary drops how far the frame is"
    );
    let frames = farm.complete(10, ids[0], 1, Outcome::Finished(vec![]));
    assert!(replies(&frames, CLIENT).is_empty(), "one job still runs");
    let frames = farm.complete(10, ids[1], 1, Outcome::Finished(vec![]));
    assert_eq!(replies(&frames, CLIENT), vec![Ok(Reply::Ack)]);
    let ended = frames
        .iter()
        .filter(|(_, frame)| {
            matches!(
                frame,
                ServerFrame::Event {
                    event: buildcat_proto::JobEvent::Ended(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(ended, 1);
}

#[test]
fn the_server_fails_a_job_whose_worker_misses_its_timeout() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let options = JobOptions {
        timeout_ms: Some(60_000),
        ..JobOptions::default()
    };
    let (ids, _) = farm.submit(vec![job("default", INFO, options)]);
    let id = ids[0];
    farm.advance(Duration::from_secs(60) + CoreConfig::default().timeout_backstop);
    farm.request(10, Request::Heartbeat);
    assert!(
        farm.handle(Input::Tick).is_empty(),
        "not before the backstop has passed"
    );
    farm.advance(Duration::from_secs(1));
    farm.request(10, Request::Heartbeat);
    let frames = farm.handle(Input::Tick);
    assert!(
        frames
            .iter()
            .any(|(conn, frame)| *conn == 10 && matches!(frame, ServerFrame::Cancel { .. }))
    );
    assert_eq!(farm.state(id), TaskState::Failed);
    let reason = &farm.task(id).failure.as_ref().unwrap().reason;
    assert!(reason.starts_with("timed out after 60s"), "{reason}");
}

#[test]
fn requests_in_flight_per_connection_are_capped() {
    let config = CoreConfig {
        max_in_flight: 2,
        ..CoreConfig::default()
    };
    let mut farm = Farm::with(config);
    let (a, _) = farm.submit_one("default", INFO);
    farm.request(CLIENT, Request::Wait(a.job.into()));
    farm.request(CLIENT, Request::Wait(a.job.into()));
    let frames = farm.request(CLIENT, Request::Wait(a.job.into()));
    assert_eq!(
        replies(&frames, CLIENT),
        vec![Err(RequestError::TooManyInFlight { limit: 2 })]
    );
}

#[test]
fn info_names_queued_kinds_no_worker_can_run() {
    let mut farm = Farm::new();
    farm.worker_with(10, "plain", &["default"], &[INFO], Vec::new());
    farm.submit_one("default", "buildcat.blender.render");
    farm.submit_one("default", "buildcat.blender.render");
    farm.submit_one("other", INFO);
    let unserved = farm.core.info().unserved;
    let rows: Vec<(String, String, u64)> = unserved
        .into_iter()
        .map(|u| (u.queue, u.kind, u.tasks))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("default".into(), "buildcat.blender.render".into(), 2),
            ("other".into(), INFO.into(), 1),
        ]
    );
    farm.worker_with(
        11,
        "blender",
        &["default"],
        &["buildcat.blender.render"],
        Vec::new(),
    );
    farm.complete(
        11,
        farm.core.workers[&11].current.unwrap().0,
        1,
        Outcome::Finished(vec![]),
    );
    farm.complete(
        11,
        farm.core.workers[&11].current.unwrap().0,
        1,
        Outcome::Finished(vec![]),
    );
    let rows: Vec<String> = farm
        .core
        .info()
        .unserved
        .into_iter()
        .map(|u| u.queue)
        .collect();
    assert_eq!(rows, vec!["other".to_owned()]);
}

#[test]
fn silent_connections_are_closed() {
    let mut farm = Farm::new();
    farm.handle(Input::Connected {
        conn: 50,
        role: Role::Worker,
    });
    farm.advance(Duration::from_secs(11));
    let frames = farm.handle(Input::Tick);
    assert!(
        matches!(frames.as_slice(), [(50, ServerFrame::Closing(r))] if r.contains("did not register")),
        "{frames:?}"
    );
    // A client waiting on a job is never idle; one with nothing asked is closed eventually.
    let (id, _) = farm.submit_one("default", INFO);
    farm.request(CLIENT, Request::Wait(id.job.into()));
    farm.handle(Input::Connected {
        conn: 51,
        role: Role::Client,
    });
    farm.advance(Duration::from_secs(3601));
    let frames = farm.handle(Input::Tick);
    let closed: Vec<ConnId> = frames
        .iter()
        .filter(|(_, frame)| matches!(frame, ServerFrame::Closing(_)))
        .map(|(conn, _)| *conn)
        .collect();
    assert_eq!(closed, vec![51]);
}

#[test]
fn a_job_canceled_while_its_worker_was_away_is_canceled_again_when_it_returns() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (id, _) = farm.submit_one("default", INFO);
    farm.handle(Input::Disconnected { conn: 10 });
    farm.request(CLIENT, Request::Cancel(vec![whole(id)]));
    let frames = farm.worker_with(20, "w1", &["default"], &[INFO], vec![(id, 1)]);
    assert!(
        frames.iter().any(|(conn, frame)| *conn == 20
            && matches!(frame, ServerFrame::Cancel { task, attempt: 1, .. } if *task == id)),
        "{frames:?}"
    );
    assert_eq!(farm.state(id), TaskState::Canceled);
}

#[test]
fn a_client_that_hangs_up_is_forgotten_by_every_job_it_waited_on() {
    let mut farm = Farm::new();
    let (ids, _) = farm.submit(
        (0..100)
            .map(|_| job("default", INFO, JobOptions::default()))
            .collect(),
    );
    for id in &ids {
        farm.request(CLIENT, Request::Wait(id.job.into()));
    }
    farm.request(
        CLIENT,
        Request::Watch(ids.iter().map(|task| JobRef::Id(task.job)).collect()),
    );
    farm.request(
        CLIENT,
        Request::Logs {
            task: ids[0].into(),
            from: 0,
            follow: true,
        },
    );
    farm.handle(Input::Disconnected { conn: CLIENT });
    assert!(farm.core.waiters.is_empty());
    assert!(farm.core.watchers.is_empty());
    assert!(farm.core.log_followers.is_empty());
    assert!(farm.core.watches.is_empty());
}

/// Guards issue 14 (item 6): a second live worker under a name already connected from
/// another process is refused, naming the first; the same process coming back on a new
/// connection is a reconnect and is taken.
#[test]
fn a_second_live_worker_of_one_name_is_refused() {
    let mut farm = Farm::new();
    farm.worker(10, "host-1", &["default"]);
    farm.handle(Input::Connected {
        conn: 11,
        role: Role::Worker,
    });
    let registration = WorkerRegistration {
        name: "host-1".to_owned(),
        host: "render01".to_owned(),
        root: "/mnt/farm".to_owned(),
        queues: vec!["default".to_owned()],
        kinds: vec!["buildcat.worker.info".to_owned()],
        pid: 43,
        version: "test".to_owned(),
        running: Vec::new(),
        tools: Vec::new(),
        gpus: Vec::new(),
    };
    let frames = farm.request(11, Request::Register(registration));
    let refused = replies(&frames, 11);
    assert_eq!(
        refused,
        vec![Err(RequestError::NameTaken {
            name: "host-1".to_owned(),
            holder: "pid 42 on render01".to_owned(),
        })]
    );
    assert!(
        matches!(&refused[..], [Err(error)]
            if error.to_string().contains("`host-1` is already connected (pid 42 on render01)")),
        "{refused:?}"
    );
    assert_eq!(farm.core.info().workers.len(), 1);
    // The first one's process on a new connection: taken.
    let frames = farm.worker(12, "host-1", &["default"]);
    assert!(
        matches!(&replies(&frames, 12)[..], [Ok(Reply::Registered { .. })]),
        "{frames:?}"
    );
}

/// Guards issue 14 (item 7): the tools a worker registers with, and their versions, are
/// kept with it and shown by `info`; a list longer than the server keeps, or a name or
/// version too long, is refused with a reason and the worker is not taken.
#[test]
fn a_workers_tools_are_kept_and_shown_and_oversized_lists_are_refused() {
    use buildcat_proto::{MAX_TOOL_TEXT, MAX_TOOLS, ToolVersion};
    let tool = |name: &str, version: &str| ToolVersion {
        name: name.to_owned(),
        version: version.to_owned(),
    };
    let registration = |name: &str, tools: Vec<ToolVersion>| WorkerRegistration {
        name: name.to_owned(),
        host: "render01".to_owned(),
        root: "/mnt/farm".to_owned(),
        queues: vec!["default".to_owned()],
        kinds: vec!["buildcat.worker.info".to_owned()],
        pid: 42,
        version: "test".to_owned(),
        running: Vec::new(),
        tools,
        gpus: Vec::new(),
    };
    let mut farm = Farm::new();
    let refusals = [
        (
            (0..=MAX_TOOLS)
                .map(|i| tool(&format!("tool{i}"), "1"))
                .collect(),
            "at most 32 tools",
        ),
        (
            vec![tool(&"b".repeat(MAX_TOOL_TEXT + 1), "1")],
            "name is 257 bytes",
        ),
        (
            vec![tool("blender", &"9".repeat(MAX_TOOL_TEXT + 1))],
            "version is 257 bytes",
        ),
        (vec![tool("", "1")], "name is empty"),
    ];
    for (conn, (tools, expected)) in (20..).zip(refusals) {
        farm.handle(Input::Connected {
            conn,
            role: Role::Worker,
        });
        let frames = farm.request(conn, Request::Register(registration("big", tools)));
        let refused = replies(&frames, conn);
        assert!(
            matches!(&refused[..], [Err(RequestError::Invalid(reason))] if reason.contains(expected)),
            "expected a refusal containing {expected:?}, got {refused:?}"
        );
    }
    assert!(
        farm.core.info().workers.is_empty(),
        "no refused worker is taken"
    );

    farm.handle(Input::Connected {
        conn: 10,
        role: Role::Worker,
    });
    let tools = vec![tool("blender", "3.4.1"), tool("hython", "")];
    let frames = farm.request(10, Request::Register(registration("host-1", tools.clone())));
    assert!(
        matches!(&replies(&frames, 10)[..], [Ok(Reply::Registered { .. })]),
        "{frames:?}"
    );
    // Through the request, as `info` asks: the reply carries them.
    let frames = farm.request(CLIENT, Request::Info);
    let info = match &replies(&frames, CLIENT)[..] {
        [Ok(Reply::Info(info))] => info.clone(),
        other => panic!("expected info, got {other:?}"),
    };
    assert_eq!(info.workers.len(), 1);
    assert_eq!(info.workers[0].tools, tools);
    let view = buildcat_proto::view::FarmView::from(&info);
    assert_eq!(view.workers[0].tools[0].name, "blender");
    assert_eq!(view.workers[0].tools[0].version, "3.4.1");
}

/// A worker registers at once with its tools' names and sends their versions once read
/// (`UpdateTools`, protocol 6): they replace what `info` shows, within the registration's
/// bounds (an oversized list is refused and the kept one stays); a connection that has not
/// registered, or a client, has no tools to update.
#[test]
fn a_workers_tools_are_updated_after_registering() {
    use buildcat_proto::{MAX_TOOLS, ToolVersion};
    let tool = |name: &str, version: &str| ToolVersion {
        name: name.to_owned(),
        version: version.to_owned(),
    };
    let shown = |farm: &mut Farm| {
        let frames = farm.request(CLIENT, Request::Info);
        match &replies(&frames, CLIENT)[..] {
            [Ok(Reply::Info(info))] => info.workers[0].tools.clone(),
            other => panic!("expected info, got {other:?}"),
        }
    };
    let mut farm = Farm::new();
    farm.handle(Input::Connected {
        conn: 11,
        role: Role::Worker,
    });
    let frames = farm.request(11, Request::UpdateTools(vec![tool("blender", "3.4.1")]));
    assert!(
        matches!(&replies(&frames, 11)[..], [Err(RequestError::Invalid(reason))] if reason.contains("send `Register` first")),
        "{frames:?}"
    );
    let frames = farm.request(CLIENT, Request::UpdateTools(Vec::new()));
    assert!(
        matches!(
            &replies(&frames, CLIENT)[..],
            [Err(RequestError::WrongRole { .. })]
        ),
        "{frames:?}"
    );

    farm.worker(10, "host-1", &["default"]);
    let frames = farm.request(
        10,
        Request::UpdateTools(vec![tool("blender", "3.4.1"), tool("mantra", "")]),
    );
    assert!(
        matches!(&replies(&frames, 10)[..], [Ok(Reply::Ack)]),
        "{frames:?}"
    );
    let expected = vec![tool("blender", "3.4.1"), tool("mantra", "")];
    assert_eq!(shown(&mut farm), expected);

    let too_many = (0..=MAX_TOOLS)
        .map(|i| tool(&format!("tool{i}"), "1"))
        .collect();
    let frames = farm.request(10, Request::UpdateTools(too_many));
    assert!(
        matches!(&replies(&frames, 10)[..], [Err(RequestError::Invalid(reason))] if reason.contains("at most 32 tools")),
        "{frames:?}"
    );
    assert_eq!(
        shown(&mut farm),
        expected,
        "a refused update changes nothing"
    );
}
