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
//!     println!("job {} ran on {}", job.id(), report.worker.name);
//!     Ok(())
//! }
//! ```
//!
//! A tour of the modules:
//! - `client`: [`Client`] and [`ClientOptions`]. Connecting, then typed requests
//!   (`submit`, `wait_job`, `job`, `info`) over one connection that every clone shares.
//! - `handle`: [`JobHandle`] ties a submitted job to its task type, so `wait` returns the
//!   task's output.
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

mod client;
mod connect;
mod connection;
mod error;
mod handle;
mod reconnect;
pub mod tls;

pub use buildcat_proto as proto;
pub use buildcat_proto::{
    DEFAULT_PORT, Failure, FarmInfo, JobId, JobOptions, JobState, JobStatus, LogPage, NewJob,
    Reply, Request, RequestError, Task, WorkerInfo, WorkerInfoReport,
};
pub use client::{Client, ClientOptions, JobListing};
pub use error::{ClientError, ErrorKind};
pub use handle::JobHandle;
pub use reconnect::Reconnect;
pub use tls::TlsOptions;
