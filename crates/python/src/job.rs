//! `Job`: a job on the farm, as Python holds it after submitting (or looking it up).

use buildcat_client::proto::view::{ChangeView, JobStatusView};
use buildcat_client::{Client, ClientError, Submitted, TaskId, TaskRef, TaskState};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::errors::OrRaise;
use crate::runtime;
use crate::values;

/// A job on the farm: `id`, `number`, `status()`, `wait()`, `cancel()`.
#[pyclass(module = "buildcat", frozen)]
#[derive(Debug)]
pub struct Job {
    /// The connection it was submitted on, to ask about it.
    client: Client,
    /// Its id, number and task count, as the server acknowledged them.
    job: Submitted,
    /// Its kind, e.g. `buildcat.blender.render`, shown by `repr`.
    kind: String,
}

impl Job {
    /// The job acknowledged as `job`, asked about through `client`.
    pub fn new(client: Client, job: Submitted, kind: String) -> Job {
        Job { client, job, kind }
    }

    /// The job's id, for dependencies.
    pub fn job_id(&self) -> buildcat_client::JobId {
        self.job.id
    }
}

/// One task's record once it has ended: its result as JSON, or why it has none.
fn outcome(task: buildcat_client::TaskStatus) -> Result<serde_json::Value, ClientError> {
    match task.state {
        TaskState::Finished => values::result_json(&task).map_err(ClientError::Protocol),
        TaskState::Failed => Err(ClientError::JobFailed {
            task: task.label(),
            failure: task.failure,
        }),
        TaskState::Canceled => Err(ClientError::JobCanceled { task: task.label() }),
        state => Err(ClientError::Protocol(format!(
            "the server said job {} had ended, but task {} is {state}",
            task.number,
            task.label()
        ))),
    }
}

#[pymethods]
impl Job {
    /// The job's id (a UUID), stable across servers' restarts.
    #[getter]
    fn id(&self) -> String {
        self.job.id.to_string()
    }

    /// The job's farm-wide number, as people name it (`buildcat status 42`).
    #[getter]
    fn number(&self) -> u64 {
        self.job.number
    }

    /// How many tasks the job has.
    #[getter]
    fn tasks(&self) -> u32 {
        self.job.tasks
    }

    /// The job's kind, e.g. `buildcat.blender.render`.
    #[getter]
    fn kind(&self) -> &str {
        &self.kind
    }

    fn __repr__(&self) -> String {
        format!(
            "<buildcat.Job {} ({}, {} task(s))>",
            self.job.number, self.kind, self.job.tasks
        )
    }

    /// The job and its tasks now, as `buildcat status N --json` prints them.
    fn status(&self, py: Python<'_>) -> PyResult<PyObject> {
        let client = self.client.clone();
        let id = self.job.id;
        let status = runtime::block(py, async move { client.job(id).await })?.or_raise(py)?;
        values::to_python(py, &JobStatusView::from(&status))
    }

    /// Waits until the job ends and returns its result: the output of its task for a job
    /// of one task (a dict, e.g. the worker's info), a list of them for a job of several.
    ///
    /// Raises `JobFailed` (with the reason and the exit code) or `JobCanceled` for the first
    /// task that did not finish, `Timeout` when `timeout` seconds pass first. Ctrl-C
    /// interrupts it.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyObject> {
        let timeout = runtime::seconds(py, timeout, "timeout")?;
        let client = self.client.clone();
        let id = self.job.id;
        let what = format!("job {}", self.job.number);
        let ended =
            runtime::wait_for(py, async move { client.wait_job(id).await }, timeout, &what)?
                .or_raise(py)?;
        let client = self.client.clone();
        let indexes: Vec<u32> = ended.tasks.iter().map(|task| task.index).collect();
        let records = runtime::block(py, async move {
            let mut records = Vec::with_capacity(indexes.len());
            for index in indexes {
                records.push(client.task(TaskId::new(id, index)).await?);
            }
            Ok::<_, ClientError>(records)
        })?
        .or_raise(py)?;
        let mut results = Vec::with_capacity(records.len());
        for record in records {
            results.push(outcome(record).or_raise(py)?);
        }
        match results.as_slice() {
            [one] => values::to_python(py, one),
            _ => values::to_python(py, &results),
        }
    }

    /// Cancels the job: its queued tasks never run, running ones are stopped. Returns what
    /// changed, as `buildcat cancel --json` prints it.
    fn cancel(&self, py: Python<'_>) -> PyResult<PyObject> {
        let client = self.client.clone();
        let target = TaskRef::from(self.job.id);
        let changes =
            runtime::block(py, async move { client.cancel(vec![target]).await })?.or_raise(py)?;
        let views = changes
            .iter()
            .map(|change| values::to_python(py, &ChangeView::from(change)))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyList::new(py, views)?.into_any().unbind())
    }
}

/// A job's handle from its status, for `Client.job(42)`.
pub fn from_status(client: Client, status: &buildcat_client::JobStatus) -> Job {
    let summary = &status.job;
    let tasks = u32::try_from(status.tasks.len()).unwrap_or(u32::MAX);
    Job::new(
        client,
        Submitted {
            id: summary.id,
            number: summary.number,
            tasks,
        },
        summary.kind.clone(),
    )
}
