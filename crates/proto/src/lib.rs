//! The buildcat wire protocol: message types, the frame codec, the handshake and the task
//! definitions that submitters and workers share.
//!
//! A tour of the modules:
//! - [`codec`] is the only place that knows the byte encoding (bincode 2, behind a 4-byte
//!   big-endian length prefix). Everything else deals in typed values.
//! - [`handshake`] is the first exchange on every connection: [`Hello`] and [`HelloReply`].
//! - [`message`] holds the frames that follow: requests with ids, replies that echo them and
//!   pushes from the server (job assignments for workers).
//! - [`job`] holds what jobs and tasks are: ids, the handles people type (`42`, `42.3`),
//!   options, states and the records the server keeps.
//! - [`frames`] parses frame specs (`1,7,10-25,75-100:2`); [`dcc`] defines the render
//!   tasks (Houdini, Modo, Redshift, Blender).
//! - [`preview`] holds frame previews: what a worker sends and what the server keeps.
//! - [`paths`] checks that paths in jobs are relative to the farm root.
//! - [`task`] ties a job kind to typed arguments and output ([`Task`]) and defines the
//!   built-in [`WorkerInfo`] task.
//!
//! ```
//! use buildcat_proto::{codec, Task, WorkerInfo};
//!
//! // A submitter encodes typed arguments; the worker decodes them into the same type.
//! let args = codec::encode_value(&WorkerInfo).unwrap();
//! let _back: WorkerInfo = codec::decode_value(&args).unwrap();
//! assert_eq!(WorkerInfo::KIND, "buildcat.worker.info");
//! ```
#![deny(missing_docs)]

pub mod codec;
pub mod dcc;
pub mod frames;
pub mod gpu;
pub mod handshake;
pub mod job;
pub mod message;
pub mod paths;
pub mod preview;
pub mod task;
pub mod view;

pub use codec::{CodecError, DEFAULT_MAX_FRAME, FrameCodec, encoded_len};
pub use gpu::{Gpu, GpuRequirement, GpuVendor, MAX_GPU_TEXT, MAX_GPUS, MAX_GPUS_REQUIRED};
pub use handshake::{HandshakeError, Hello, HelloReply, MAGIC, PROTOCOL_VERSION, Role, Welcome};
pub use job::{
    Attempt, AttemptOutcome, Dependency, Failure, JobId, JobOptions, JobRef, JobState, JobStatus,
    JobSummary, MAX_GPU_MEMORY_MIB, MAX_TASKS, MAX_TIMEOUT_MS, NewJob, NewTask, TaskCounts, TaskId,
    TaskProgress, TaskRef, TaskState, TaskStatus, TaskSummary, Timestamp,
};
pub use message::{
    Assignment, Change, Changed, ClientFrame, Completion, DroppedOutput, FarmInfo, JobEvent,
    JobQuery, LogPage, MAX_CHANGES_PER_REQUEST, MAX_TOOL_TEXT, MAX_TOOLS, Outcome, QueueSummary,
    Reply, Request, RequestError, RequestId, Requeue, RunningTask, ServerFrame, Submitted,
    ToolVersion, Unserved, WorkerActivity, WorkerRegistration, WorkerSummary,
};
pub use preview::{
    FramePreview, JobPreviews, MAX_PREVIEW_BYTES, MAX_PREVIEW_SIDE, PreviewFormat, PreviewInfo,
};
pub use task::{
    CommandResult, OsInfo, RunCommand, RunCommandIn, RuntimeInfo, Task, WorkerDetails, WorkerInfo,
    WorkerInfoReport,
};

/// The default TCP port of a buildcat server.
///
/// The original used Redis's 6379; the rewrite has its own so both can run side by side.
pub const DEFAULT_PORT: u16 = 2228;

/// The version of this software, sent in the handshake and reported by `buildcat version`.
pub const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");
