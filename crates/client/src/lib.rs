//! The embeddable async client of a buildcat render farm: submit jobs, wait for their
//! results and look at the farm from any tokio program.
//!
//! ```no_run
//! use buildcat_client::{Client, ClientError, WorkerInfo};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), ClientError> {
//!     let client = Client::connect("127.0.0.1:2228").await?;
//!     let job = client.submit("default", &WorkerInfo).await?;
//!     let report = job.wait().await?;
//!     println!("job {} ran on {}", job.number(), report.worker.name);
//!     Ok(())
//! }
//! ```
//!
//! A tour of the modules:
//! - `client`: [`Client`] and [`ClientOptions`]. Connecting, then typed requests
//!   (`submit`, `wait_job`, `job`, `task`, `cancel`, `pause`, `info`, ...) over one
//!   connection that every clone shares. Jobs are named by [`JobRef`] (`42` or an id) and
//!   tasks by [`TaskRef`] (`42.3`).
//! - `builder`: [`JobBuilder`], one named job of many tasks (a render in chunks).
//! - `handle`: [`JobHandle`] ties a submitted job to its task type, so `wait` returns the
//!   task's output (`wait_all`, each task's of a job of many).
//! - [`render`]: a render's checks, name and tasks before it is sent
//!   ([`render::BlenderRenderPlan`] and its siblings), shared by the command line, the Python
//!   package and the Blender add-on.
//! - `limits`: what a server accepts in a submission ([`MAX_TASKS`], [`MAX_TIMEOUT_MS`]),
//!   checked before anything is encoded, so the message names the limit.
//! - `submitter`: [`submitter()`], `user@host`, which every submission records.
//! - `connect`: opening a connection. Resolves the address, connects over TCP and
//!   exchanges hellos, each step bounded by its timeout.
//! - `connection`: many requests at once over the welcomed socket. A writer task batches
//!   frames; a reader task matches replies to requests by id.
//! - `reconnect`: [`Reconnect`], how long and how often [`Client::reconnect`] tries to
//!   reach a server it lost (one that restarted keeps every job, so watchers carry on).
//! - `error`: [`ClientError`] says what went wrong in one line that names the server or
//!   the job; [`ErrorKind`] sorts errors into a few classes for bindings.
//!
//! The wire encoding lives in [`buildcat_proto`] (re-exported as [`proto`]); this crate
//! never sees bytes, only typed frames.
#![deny(missing_docs)]

mod builder;
mod client;
mod connect;
mod connection;
mod error;
mod handle;
mod limits;
mod reconnect;
pub mod render;
mod submitter;
pub mod tls;

pub use buildcat_proto as proto;
pub use buildcat_proto::{
    Change, Changed, DEFAULT_PORT, Dependency, Failure, FarmInfo, JobEvent, JobId, JobOptions,
    JobQuery, JobRef, JobState, JobStatus, JobSummary, LogPage, NewJob, NewTask, Reply, Request,
    RequestError, Requeue, Submitted, Task, TaskId, TaskRef, TaskState, TaskStatus, TaskSummary,
    WorkerInfo, WorkerInfoReport,
};
pub use builder::JobBuilder;
pub use client::{Client, ClientOptions, JobListing};
pub use error::{ClientError, ErrorKind};
pub use handle::JobHandle;
pub use limits::{MAX_GPU_MEMORY_MIB, MAX_TASKS, MAX_TIMEOUT_MS};
pub use reconnect::Reconnect;
pub use submitter::{submitter, submitter_user};
pub use tls::TlsOptions;
