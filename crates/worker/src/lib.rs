//! The buildcat worker: connects to a server, takes tasks (the pieces jobs are made of: a
//! chunk of frames, one command) from the queues it serves and runs them with the handlers
//! it has, one task at a time per connection.
//!
//! Embedding a worker in another program takes a [`Task`] type, an async handler and a
//! shutdown signal:
//!
//! ```no_run
//! use buildcat_worker::{Failure, JobContext, Task, Worker};
//! use serde::{Deserialize, Serialize};
//!
//! /// Make a thumbnail of an image under the farm's root.
//! #[derive(Serialize, Deserialize)]
//! struct Thumbnail {
//!     image: String,
//!     size: u32,
//! }
//!
//! impl Task for Thumbnail {
//!     const KIND: &'static str = "studio.thumbnail";
//!     type Output = String;
//! }
//!
//! async fn thumbnail(task: Thumbnail, context: JobContext) -> Result<String, Failure> {
//!     // Paths in arguments are relative to the root, which differs from host to host.
//!     let image = context.root.join(&task.image);
//!     if !image.exists() {
//!         return Err(Failure::new(format!("{} does not exist", image.display())));
//!     }
//!     Ok(format!("{}.thumb-{}.png", task.image, task.size))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let worker = Worker::builder()
//!         .server("render-server:2228")
//!         .queues(["urgent", "default"])
//!         .root("/mnt/farm")
//!         .handler(thumbnail)
//!         .build()?;
//!     let shutdown = async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     };
//!     let stats = worker.run(shutdown).await?;
//!     println!("ran {} tasks", stats.tasks_completed);
//!     Ok(())
//! }
//! ```
//!
//! A tour of the modules:
//! - `worker` holds [`Worker`] and its [`WorkerBuilder`]: settings, and [`Worker::run`],
//!   which runs one loop per connection and waits for the task limit or shutdown.
//! - `worker_loop` is one loop: register, take assignments, run one task at a time,
//!   heartbeat, report results; on a lost connection, reconnect with backoff while the task
//!   keeps running, and report it on the new connection. The running task's log lines and
//!   progress are sent from there too, and a cancel from the server reaches the task there.
//!   Its logs name a task as people do, `42.3` (its job's number and its index).
//! - `connection` reaches the server: TCP, the hello, the registration.
//! - `running` runs one task's handler in a tokio task of its own, with the backstops for
//!   handlers that do not stop at their deadline or when canceled.
//! - `control` is what the loops of one worker share: the task limit, the stop signals and
//!   the running count; its [`ShutdownHandle`] stops a worker gracefully
//!   ([`finish`](ShutdownHandle::finish)) or at once ([`stop_now`](ShutdownHandle::stop_now)).
//! - [`registry`] maps job kinds to handlers; [`JobContext`] is what a handler is told and
//!   how it logs, reports progress and learns that it must stop; `output` is the bounded
//!   buffer between a handler's log and the loop.
//! - `lease` is how long a loop lets its task run without hearing from the server: a margin
//!   short of the server's reconnect grace, so the server never hands on a task whose first
//!   copy still runs.
//! - [`process`] runs a tool for a task: its own process group, output streamed to the
//!   task's log, the whole tree killed on timeout or cancel. Every integration runs tools
//!   with it. On Linux each program starts through a tiny `supervisor` that kills the task's
//!   process group when the worker dies, however it dies; `leftovers` records the groups (and
//!   their tasks) under the worker's state directory, so a worker started later under the
//!   same name kills what a dead one left. On Windows `job_object` does both jobs: each
//!   program runs in a job object that kills its processes when the worker dies.
//! - [`gpu`] lists the host's GPUs (NVML, loaded at run time; AMD's sysfs entries), keeps
//!   those `--gpus` names, gives each slot its share (`--gpus-per-slot`), and holds what a
//!   slot's task processes see (`CUDA_VISIBLE_DEVICES` and the rest) and the lines that
//!   mean a GPU fault.
//! - [`info`] is the built-in [`WorkerInfo`](buildcat_proto::WorkerInfo) task, and `command`
//!   the built-in [`RunCommand`](buildcat_proto::RunCommand) task (`buildcat run`).
//! - [`integrations`] runs the DCC tools (Houdini, Modo, Redshift, Blender): it finds them
//!   when the worker is built ([`Toolbox`]) and registers the job kinds of those found.
#![deny(missing_docs)]

mod backoff;
mod command;
mod connection;
mod context;
mod control;
mod error;
pub mod gpu;
pub mod info;
pub mod integrations;
#[cfg(windows)]
mod job_object;
mod lease;
mod leftovers;
mod output;
mod preview;
pub mod process;
pub mod registry;
mod running;
mod slots;
#[cfg(target_os = "linux")]
mod supervisor;
mod worker;
mod worker_loop;

pub use buildcat_proto::{Failure, Task};
pub use context::{DEFAULT_KILL_GRACE, JobContext, JobMonitor};
pub use control::ShutdownHandle;
pub use error::WorkerError;
pub use integrations::tools::{Executable, Tool, Toolbox};
pub use integrations::{BlenderOptions, PROFILE_MARK};
pub use registry::{Handler, HandlerFuture, Registry};
pub use worker::{RunStats, Worker, WorkerBuilder};
