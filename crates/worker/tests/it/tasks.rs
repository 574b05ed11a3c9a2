//! Task types and handlers the tests register.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use buildcat_proto::{Failure, JobId, Task};
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
    /// The job id the context named.
    pub job: JobId,
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
        job: context.job,
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
    /// Receives the id of each gated job as it starts.
    pub started: mpsc::UnboundedReceiver<JobId>,
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
            let _ = started.send(context.job);
            release.notified().await;
            Ok(format!("{} done", task.label))
        }) as GatedFuture
    };
    (Gate { started, release }, handler)
}

impl Gate {
    /// Waits for the next gated job to start and returns its id.
    pub async fn started(&mut self) -> JobId {
        crate::fake::within("a gated job to start", self.started.recv())
            .await
            .unwrap_or_else(|| panic!("the gated handler is gone"))
    }

    /// Lets the running gated job end.
    pub fn open(&self) {
        self.release.notify_one();
    }
}
