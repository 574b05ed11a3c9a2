//! Tasks: a job kind tied to typed arguments and a typed output.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::job::JobOptions;

/// A kind of job, with the type of its arguments (`Self`) and of its output.
///
/// Submitters send a `Task` value; the worker that has a handler for [`Task::KIND`] decodes
/// the same type, runs it and returns an [`Task::Output`], which the submitter gets back
/// typed.
///
/// ```
/// use buildcat_proto::Task;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Thumbnail { image: String, size: u32 }
///
/// impl Task for Thumbnail {
///     const KIND: &'static str = "studio.thumbnail";
///     type Output = String;
/// }
/// ```
pub trait Task: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The job kind, e.g. `buildcat.worker.info`. Namespaced by convention.
    const KIND: &'static str;
    /// What a worker returns.
    type Output: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// The options a job of this kind gets unless the submitter sets others.
    fn default_options(&self) -> JobOptions {
        JobOptions::default()
    }

    /// Reads a task's encoded arguments, as a worker does before running it.
    ///
    /// The encoding is not self-describing, so arguments stored by an earlier version of a
    /// task type (a job queued before an upgrade) do not decode as the current one: a type
    /// whose fields changed overrides this to read its earlier layouts too, so that queued
    /// work survives the upgrade.
    ///
    /// # Errors
    /// [`CodecError`] when `bytes` are no layout this type reads.
    fn decode_args(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode_value(bytes)
    }
}

/// The built-in task that reports on the worker that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WorkerInfo;

impl Task for WorkerInfo {
    const KIND: &'static str = "buildcat.worker.info";
    type Output = WorkerInfoReport;
}

/// What [`WorkerInfo`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfoReport {
    /// The operating system.
    pub os: OsInfo,
    /// The runtime the worker was built with.
    pub rust: RuntimeInfo,
    /// The worker process.
    pub worker: WorkerDetails,
    /// The GPUs of the slot that ran the task, as it registered them (empty without GPUs).
    pub gpus: Vec<crate::Gpu>,
}

/// The operating system of a worker, as `uname` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsInfo {
    /// The host name.
    pub host: String,
    /// The machine type, e.g. `x86_64`.
    pub machine: String,
    /// The processor type (often the same as `machine`).
    pub processor: String,
    /// The kernel release.
    pub release: String,
    /// The system name, e.g. `Linux`.
    pub system: String,
    /// The kernel version string.
    pub version: String,
}

/// The Rust toolchain and target a worker was built with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// The `rustc` version.
    pub version: String,
    /// The target triple.
    pub target: String,
}

/// The worker process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerDetails {
    /// Its process id.
    pub pid: u32,
    /// Its root directory, absolute.
    pub root: String,
    /// The user it runs as.
    pub user: String,
    /// The buildcat version.
    pub version: String,
    /// The worker's name on the farm.
    pub name: String,
}

/// Runs a program on a worker, without a shell, in the worker's root
/// (`buildcat run -- PROGRAM ARGS...`).
///
/// A bare program name is looked up on the worker's PATH; a name with a `/` is relative to
/// the root (or absolute). The job id is in `BUILDCAT_JOB_ID`, the root in `BUILDCAT_ROOT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCommand {
    /// The program.
    pub program: String,
    /// Its arguments, passed as they are.
    pub args: Vec<String>,
}

impl Task for RunCommand {
    const KIND: &'static str = "buildcat.command.run";
    type Output = CommandResult;
}

/// A [`RunCommand`] with environment variables and a working directory
/// (`buildcat run --env KEY=VALUE --cwd DIR -- PROGRAM ARGS...`).
///
/// A kind of its own rather than new fields of [`RunCommand`], whose layout stays as it is:
/// a worker too old to know this kind does not register it, so the server routes these
/// tasks only to workers that run them, and `info` says when none does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCommandIn {
    /// The program and its arguments, as [`RunCommand`] has them.
    pub command: RunCommand,
    /// Variables set for the program, in order (the worker's own `BUILDCAT_*` win).
    pub env: Vec<(String, String)>,
    /// The working directory, relative to the root; `None` for the root itself.
    pub cwd: Option<String>,
}

impl Task for RunCommandIn {
    const KIND: &'static str = "buildcat.command.run_in";
    type Output = CommandResult;
}

/// How a [`RunCommand`] job's program ended (a non-zero exit fails the job instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// The exit code: 0.
    pub exit_code: i32,
}
