//! [`JobBuilder`]: one named job of many tasks, built up and then submitted in one request.

use std::fmt;
use std::marker::PhantomData;

use buildcat_proto::{JobOptions, NewJob, Task};

use crate::client::{Client, new_task};
use crate::error::ClientError;
use crate::handle::JobHandle;

/// A job of tasks of type `T` being put together; made by [`Client::new_job`].
///
/// Each [`JobBuilder::task`] adds a task (task `i` gets index `i`); [`JobBuilder::submit`]
/// sends the job. Without [`JobBuilder::options`] the job takes its first task's
/// [`Task::default_options`]; without [`JobBuilder::name`] the server names it after its
/// kind.
#[must_use = "a job is only sent by `submit`"]
pub struct JobBuilder<T> {
    /// The connection to submit on.
    client: Client,
    /// The job so far; its options are filled in at submit when none were given.
    job: NewJob,
    /// Whether [`JobBuilder::options`] was called, so a task's defaults do not overwrite it.
    options_set: bool,
    /// The first task that could not be encoded: the builder is chainable, so the error
    /// waits for `submit`.
    error: Option<ClientError>,
    /// The task type; `fn() -> T` keeps the builder `Send` whatever `T` is.
    task: PhantomData<fn() -> T>,
}

impl<T: Task> JobBuilder<T> {
    /// An empty job for `queue`.
    pub(crate) fn new(client: Client, queue: &str) -> JobBuilder<T> {
        JobBuilder {
            client,
            job: NewJob {
                queue: queue.to_owned(),
                kind: T::KIND.to_owned(),
                name: String::new(),
                submitter: String::new(),
                runs: String::new(),
                options: JobOptions::default(),
                tasks: Vec::new(),
            },
            options_set: false,
            error: None,
            task: PhantomData,
        }
    }

    /// The job's name for people (`shot.blend 1-240`), shown in every listing.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.job.name = name.into();
        self
    }

    /// What the job runs, in a form a person reads (the scene and frames, the command
    /// line), shown by `buildcat status`.
    pub fn runs(mut self, runs: impl Into<String>) -> Self {
        self.job.runs = runs.into();
        self
    }

    /// Who submits it, `user@host`; [`submitter()`](crate::submitter) unless set.
    pub fn submitter(mut self, submitter: impl Into<String>) -> Self {
        self.job.submitter = submitter.into();
        self
    }

    /// Timeout, attempts, priority and dependencies, for every task of the job.
    pub fn options(mut self, options: JobOptions) -> Self {
        self.job.options = options;
        self.options_set = true;
        self
    }

    /// Adds a task: `frames` is the frame spec it renders (`1-10`), for renders, shown to
    /// people; `value` is what the worker's handler gets.
    pub fn task(mut self, frames: Option<&str>, value: &T) -> Self {
        if self.error.is_none() {
            if !self.options_set && self.job.tasks.is_empty() {
                self.job.options = value.default_options();
            }
            match new_task(frames, value) {
                Ok(task) => self.job.tasks.push(task),
                Err(error) => self.error = Some(error),
            }
        }
        self
    }

    /// How many tasks were added so far.
    pub fn len(&self) -> usize {
        self.job.tasks.len()
    }

    /// Whether no task was added yet.
    pub fn is_empty(&self) -> bool {
        self.job.tasks.is_empty()
    }

    /// The job as it would be sent, to submit with others through
    /// [`Client::submit_jobs`].
    ///
    /// # Errors
    /// [`ClientError::Encode`] when a task could not be encoded.
    pub fn into_new_job(self) -> Result<NewJob, ClientError> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.job),
        }
    }

    /// Submits the job; returns once the server has stored it.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for a job without tasks or with an empty queue name,
    /// [`ClientError::Encode`] for a task that could not be encoded, and any error of
    /// [`Client::submit_jobs`].
    pub async fn submit(self) -> Result<JobHandle<T>, ClientError> {
        let client = self.client.clone();
        let job = self.into_new_job()?;
        let submitted = client.submit_jobs(vec![job]).await?;
        match submitted.as_slice() {
            [job] => Ok(JobHandle::new(client, *job)),
            _ => Err(ClientError::Protocol(format!(
                "1 job was submitted but it acknowledged {}",
                submitted.len()
            ))),
        }
    }
}

impl<T: Task> fmt::Debug for JobBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobBuilder")
            .field("queue", &self.job.queue)
            .field("kind", &T::KIND)
            .field("name", &self.job.name)
            .field("tasks", &self.job.tasks.len())
            .finish()
    }
}
