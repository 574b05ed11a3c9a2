//! [`JobHandle`]: a submitted job and the type of its output.

use std::fmt;
use std::marker::PhantomData;

use buildcat_proto::{JobId, JobState, JobStatus, Task, codec};

use crate::client::Client;
use crate::error::ClientError;

/// A job submitted to the farm, typed by its task so that [`JobHandle::wait`] returns the
/// task's output.
///
/// Made by [`Client::submit`] and its siblings, or by [`Client::handle`] for a job
/// submitted earlier. Holds a [`Client`], so the connection stays open while a handle
/// lives.
pub struct JobHandle<T> {
    /// The job.
    id: JobId,
    /// The connection to ask about it on.
    client: Client,
    /// The task type, for the output's type; `fn() -> T` keeps the handle `Send`, `Sync`
    /// and `Clone` whatever `T` is.
    task: PhantomData<fn() -> T>,
}

impl<T> JobHandle<T> {
    /// A handle on job `id`, asked about through `client`.
    pub(crate) fn new(client: Client, id: JobId) -> JobHandle<T> {
        JobHandle {
            id,
            client,
            task: PhantomData,
        }
    }
}

impl<T> Clone for JobHandle<T> {
    fn clone(&self) -> Self {
        JobHandle {
            id: self.id,
            client: self.client.clone(),
            task: PhantomData,
        }
    }
}

impl<T: Task> fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("id", &self.id)
            .field("kind", &T::KIND)
            .field("server", &self.client.addr())
            .finish()
    }
}

impl<T: Task> JobHandle<T> {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// The client the handle asks through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// What the server knows of the job now.
    pub async fn status(&self) -> Result<JobStatus, ClientError> {
        self.client.job(self.id).await
    }

    /// Waits until the job has ended and returns its output.
    ///
    /// A failed job gives [`ClientError::JobFailed`] with the recorded reason, a canceled
    /// one [`ClientError::JobCanceled`]. The server tells the client when the job ends;
    /// nothing polls.
    pub async fn wait(&self) -> Result<T::Output, ClientError> {
        let status = self.client.wait_job(self.id).await?;
        output_of::<T>(status)
    }

    /// The output of the job from its final record (as [`Client::wait_job`] returns it),
    /// or why there is none: for callers that wait their own way, e.g. reconnecting
    /// when the server restarts.
    pub fn output(&self, status: JobStatus) -> Result<T::Output, ClientError> {
        if status.id != self.id {
            return Err(ClientError::Invalid(format!(
                "the record of job {} is not that of job {}",
                status.id, self.id
            )));
        }
        output_of::<T>(status)
    }
}

/// The typed output of a job that has ended, or why there is none.
fn output_of<T: Task>(status: JobStatus) -> Result<T::Output, ClientError> {
    let id = status.id;
    if status.kind != T::KIND {
        return Err(ClientError::Invalid(format!(
            "job {id} is a `{}` job, not a `{}` job",
            status.kind,
            T::KIND
        )));
    }
    match status.state {
        JobState::Finished => {
            // A unit output may be stored as no bytes at all.
            let bytes = status.result.unwrap_or_default();
            codec::decode_value(&bytes).map_err(|error| ClientError::Decode {
                id,
                kind: status.kind,
                error,
            })
        }
        JobState::Failed => Err(ClientError::JobFailed {
            id,
            failure: status.failure,
        }),
        JobState::Canceled => Err(ClientError::JobCanceled { id }),
        state @ (JobState::Queued | JobState::Started | JobState::Deferred) => {
            Err(ClientError::Protocol(format!(
                "it said job {id} had ended, but the job is {state}"
            )))
        }
    }
}
