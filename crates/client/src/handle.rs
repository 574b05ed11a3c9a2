//! [`JobHandle`]: a submitted job and the type of its tasks' output.

use std::fmt;
use std::marker::PhantomData;

use buildcat_proto::{
    JobId, JobRef, JobStatus, Submitted, Task, TaskId, TaskState, TaskStatus, codec,
};

use crate::client::Client;
use crate::error::ClientError;

/// A job submitted to the farm, typed by its tasks so that [`JobHandle::wait`] returns the
/// task's output.
///
/// Made by [`Client::submit`] and its siblings, or by [`Client::handle`] for a job
/// submitted earlier. Holds a [`Client`], so the connection stays open while a handle
/// lives.
pub struct JobHandle<T> {
    /// The job's id, its number and its task count, as the server acknowledged them.
    job: Submitted,
    /// The connection to ask about it on.
    client: Client,
    /// The task type, for the output's type; `fn() -> T` keeps the handle `Send`, `Sync`
    /// and `Clone` whatever `T` is.
    task: PhantomData<fn() -> T>,
}

impl<T> JobHandle<T> {
    /// A handle on the job the server acknowledged as `job`, asked about through `client`.
    pub(crate) fn new(client: Client, job: Submitted) -> JobHandle<T> {
        JobHandle {
            job,
            client,
            task: PhantomData,
        }
    }
}

impl<T> Clone for JobHandle<T> {
    fn clone(&self) -> Self {
        JobHandle {
            job: self.job,
            client: self.client.clone(),
            task: PhantomData,
        }
    }
}

impl<T: Task> fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("id", &self.job.id)
            .field("number", &self.job.number)
            .field("tasks", &self.job.tasks)
            .field("kind", &T::KIND)
            .field("server", &self.client.addr())
            .finish()
    }
}

impl<T: Task> JobHandle<T> {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.job.id
    }

    /// The job's farm-wide number, as people name it (`buildcat status 42`).
    pub fn number(&self) -> u64 {
        self.job.number
    }

    /// How many tasks the job has.
    pub fn tasks(&self) -> u32 {
        self.job.tasks
    }

    /// The job's id, number and task count, as [`Client::submit_jobs`] returns them.
    pub fn submitted(&self) -> Submitted {
        self.job
    }

    /// The client the handle asks through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// What the server knows of the job now, with a summary of each task.
    pub async fn status(&self) -> Result<JobStatus, ClientError> {
        self.client.job(self.job.id).await
    }

    /// Everything the server knows of task `index` (0 for the first): attempts, failure,
    /// result.
    pub async fn task(&self, index: u32) -> Result<TaskStatus, ClientError> {
        self.client.task(TaskId::new(self.job.id, index)).await
    }

    /// Waits until the job has ended and returns the output of its only task.
    ///
    /// For a job of one task (as [`Client::submit`] makes); a job of several tasks gives
    /// [`ClientError::Invalid`] at once: use [`JobHandle::wait_all`]. A failed task gives
    /// [`ClientError::JobFailed`] with the recorded reason, a canceled one
    /// [`ClientError::JobCanceled`]. The server tells the client when the job ends;
    /// nothing polls.
    pub async fn wait(&self) -> Result<T::Output, ClientError> {
        if self.job.tasks != 1 {
            return Err(ClientError::Invalid(format!(
                "job {} has {} tasks, so it has no single output; wait for each task's with \
                 `wait_all`",
                self.job.number, self.job.tasks
            )));
        }
        self.client.wait_job(self.job.id).await?;
        let task = self.task(0).await?;
        self.output(task)
    }

    /// Waits until the job has ended and returns each task's output, or why it has none,
    /// in index order.
    ///
    /// The outer error is about the job (the connection, an unknown job); each inner one
    /// about its task ([`ClientError::JobFailed`], [`ClientError::JobCanceled`],
    /// [`ClientError::Decode`]). The tasks' records are asked for all at once on the one
    /// connection.
    pub async fn wait_all(&self) -> Result<Vec<Result<T::Output, ClientError>>, ClientError> {
        let ended = self.client.wait_job(self.job.id).await?;
        let asks = ended.tasks.iter().map(|task| self.task(task.index));
        let records = futures_util::future::join_all(asks).await;
        records
            .into_iter()
            .map(|record| match record {
                Ok(task) => Ok(self.output(task)),
                Err(error @ ClientError::RequestRefused(_)) => Ok(Err(error)),
                Err(error) => Err(error),
            })
            .collect()
    }

    /// The output of one of the job's tasks from its record (as [`Client::task`] returns
    /// it once the task has ended), or why there is none: for callers that wait their own
    /// way, e.g. reconnecting when the server restarts.
    pub fn output(&self, task: TaskStatus) -> Result<T::Output, ClientError> {
        if task.id.job != self.job.id {
            return Err(ClientError::Invalid(format!(
                "the record of task {} is not one of job {}'s",
                task.label(),
                self.job.number
            )));
        }
        output_of::<T>(task)
    }
}

/// The typed output of a task that has ended, or why there is none.
pub(crate) fn output_of<T: Task>(task: TaskStatus) -> Result<T::Output, ClientError> {
    let label = task.label();
    if task.kind != T::KIND {
        return Err(ClientError::Invalid(format!(
            "task {label} is a `{}` task, not a `{}` task",
            task.kind,
            T::KIND
        )));
    }
    match task.state {
        TaskState::Finished => {
            // A unit output may be stored as no bytes at all.
            let bytes = task.result.unwrap_or_default();
            codec::decode_value(&bytes).map_err(|error| ClientError::Decode {
                task: label,
                kind: task.kind,
                error,
            })
        }
        TaskState::Failed => Err(ClientError::JobFailed {
            task: label,
            failure: task.failure,
        }),
        TaskState::Canceled => Err(ClientError::JobCanceled { task: label }),
        state @ (TaskState::Queued
        | TaskState::Started
        | TaskState::Deferred
        | TaskState::Paused) => Err(ClientError::Protocol(format!(
            "it said task {label} had ended, but the task is {state}"
        ))),
    }
}

/// A job named by its id, for requests.
impl<T> From<&JobHandle<T>> for JobRef {
    fn from(handle: &JobHandle<T>) -> Self {
        JobRef::Id(handle.job.id)
    }
}
