//! What can stop a worker from starting or running.

use std::io;
use std::path::PathBuf;

use buildcat_proto::{HandshakeError, RequestError};

/// Why a worker could not be built or had to stop.
///
/// Each message names the path or address involved and includes its cause, so it reads
/// whole when printed on its own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The root directory cannot be found or read.
    #[error("cannot use {} as the worker root: {error}", path.display())]
    Root {
        /// The root as it was given.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// The root exists but is not a directory.
    #[error("the worker root {} is not a directory", path.display())]
    RootNotDirectory {
        /// The root, made absolute.
        path: PathBuf,
    },
    /// A tool's executable given to the builder (the CLI's `--blender PATH` and such)
    /// cannot be used.
    #[error("cannot use {} as {tool} (given with {flag}): {problem}", path.display())]
    ToolPath {
        /// The tool's name, e.g. `blender`.
        tool: &'static str,
        /// The CLI flag that gives it, e.g. `--blender`.
        flag: &'static str,
        /// The path as it was given.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A builder setting cannot work (no queues, zero loops, ...).
    #[error("invalid worker configuration: {0}")]
    Config(String),
    /// The server refused the worker for a reason that retrying cannot fix, such as a
    /// protocol version mismatch.
    #[error("the buildcat server at {server} refused this worker: {reason}")]
    Refused {
        /// The server's address as configured.
        server: String,
        /// The server's answer to the handshake.
        reason: HandshakeError,
    },
    /// Another live worker holds the name this one was given (`--name`): the server refuses
    /// a second worker of one name, and waiting would not end while the other runs.
    #[error("the buildcat server at {server} refused this worker: {reason}")]
    NameTaken {
        /// The server's address as configured.
        server: String,
        /// The server's answer to the registration, naming the process that holds the name.
        reason: RequestError,
    },
    /// A worker loop ended abnormally (its task panicked or was aborted).
    #[error("worker loop {name} stopped unexpectedly: {reason}")]
    LoopFailed {
        /// The loop's worker name.
        name: String,
        /// What happened to it.
        reason: String,
    },
}
