//! Task types and handlers the tests register.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use buildcat_proto::{Failure, Task, TaskId, TaskProgress};
use buildcat_worker::JobContext;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};

/// A task whose output echoes its arguments and the handler's context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Greet {
    /// Who to greet.
    pub name: String,
    /// How many times.
    pub times: u32,
}

/// What [`Greet`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Greeting {
    /// One line per time.
    pub lines: Vec<String>,
    /// The task the context named.
    pub task: TaskId,
    /// The task's label (`42.3`) the context named.
    pub label: String,
    /// The job name the context named.
    pub job_name: String,
    /// The attempt the context named.
    pub attempt: u32,
    /// The queue the context named.
    pub queue: String,
    /// The root the context named.
    pub root: String,
    /// The worker the context named.
    pub worker: String,
}

impl Task for Greet {
    const KIND: &'static str = "test.greet";
    type Output = Greeting;
}

/// The handler of [`Greet`].
pub async fn greet(task: Greet, context: JobContext) -> Result<Greeting, Failure> {
    Ok(Greeting {
        lines: (0..task.times)
            .map(|_| format!("hello {}", task.name))
            .collect(),
        task: context.task,
        label: context.label,
        job_name: context.job_name,
        attempt: context.attempt,
        queue: context.queue,
        root: context.root.to_string_lossy().into_owned(),
        worker: context.worker,
    })
}

/// A task that runs until the test lets it end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gated {
    /// Echoed in the output.
    pub label: String,
}

impl Task for Gated {
    const KIND: &'static str = "test.gated";
    type Output = String;
}

/// The test's side of [`Gated`] jobs.
pub struct Gate {
    /// Receives the id of each gated task as it starts.
    pub started: mpsc::UnboundedReceiver<TaskId>,
    /// Lets one waiting (or the next) gated job end.
    pub release: Arc<Notify>,
}

/// What the [`Gated`] handler returns.
pub type GatedFuture = Pin<Box<dyn Future<Output = Result<String, Failure>> + Send>>;

/// A handler for [`Gated`] jobs and the gate that controls it.
pub fn gated() -> (
    Gate,
    impl Fn(Gated, JobContext) -> GatedFuture + Send + Sync + 'static,
) {
    let (started_tx, started) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let released = Arc::clone(&release);
    let handler = move |task: Gated, context: JobContext| {
        let started = started_tx.clone();
        let release = Arc::clone(&released);
        Box::pin(async move {
            let _ = started.send(context.task);
            release.notified().await;
            Ok(format!("{} done", task.label))
        }) as GatedFuture
    };
    (Gate { started, release }, handler)
}

impl Gate {
    /// Waits for the next gated job to start and returns its id.
    pub async fn started(&mut self) -> TaskId {
        crate::fake::within("a gated job to start", self.started.recv())
            .await
            .unwrap_or_else(|| panic!("the gated handler is gone"))
    }

    /// Lets the running gated job end.
    pub fn open(&self) {
        self.release.notify_one();
    }
}

/// A task that runs until the test lets it end, or until it is canceled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stoppable {
    /// Echoed in the output.
    pub label: String,
}

impl Task for Stoppable {
    const KIND: &'static str = "test.stoppable";
    type Output = String;
}

/// A handler for [`Stoppable`] jobs and the gate that controls it. Canceled, it fails
/// (the worker reports it as canceled all the same).
pub fn stoppable() -> (
    Gate,
    impl Fn(Stoppable, JobContext) -> GatedFuture + Send + Sync + 'static,
) {
    let (started_tx, started) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let released = Arc::clone(&release);
    let handler = move |task: Stoppable, context: JobContext| {
        let started = started_tx.clone();
        let release = Arc::clone(&released);
        Box::pin(async move {
            let _ = started.send(context.task);
            tokio::select! {
                () = release.notified() => Ok(format!("{} done", task.label)),
                () = context.cancelled() => Err(Failure::new("stopped early")),
            }
        }) as GatedFuture
    };
    (Gate { started, release }, handler)
}

/// A task that logs `before` lines, waits for the test, then logs `after` lines and ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chatty {
    /// Lines `before N` logged first.
    pub before: u32,
    /// Lines `after N` logged once the gate opens.
    pub after: u32,
}

impl Task for Chatty {
    const KIND: &'static str = "test.chatty";
    type Output = ();
}

/// What the [`Chatty`] handler returns.
pub type ChattyFuture = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send>>;

/// A handler for [`Chatty`] jobs and its gate: the job's id arrives on `started` once it
/// has logged its `before` lines, and again once it has logged its `after` lines.
pub fn chatty() -> (
    Gate,
    impl Fn(Chatty, JobContext) -> ChattyFuture + Send + Sync + 'static,
) {
    let (started_tx, started) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let released = Arc::clone(&release);
    let handler = move |task: Chatty, context: JobContext| {
        let started = started_tx.clone();
        let release = Arc::clone(&released);
        Box::pin(async move {
            for index in 0..task.before {
                context.log(format!("before {index}"));
            }
            let _ = started.send(context.task);
            release.notified().await;
            for index in 0..task.after {
                context.log(format!("after {index}"));
            }
            let _ = started.send(context.task);
            Ok(())
        }) as ChattyFuture
    };
    (Gate { started, release }, handler)
}

/// A task that reports progress `1..=steps` out of `steps`, as fast as it can.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counting {
    /// How many steps.
    pub steps: u32,
}

impl Task for Counting {
    const KIND: &'static str = "test.counting";
    type Output = u32;
}

/// The handler of [`Counting`].
pub async fn counting(task: Counting, context: JobContext) -> Result<u32, Failure> {
    for done in 1..=task.steps {
        context.progress(TaskProgress {
            done,
            total: task.steps,
            outputs: vec![format!("frame.{done:04}.exr")],
            frame_percent: None,
        });
    }
    context.log("counted");
    Ok(task.steps)
}
