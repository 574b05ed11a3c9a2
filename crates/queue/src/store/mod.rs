//! Durable storage of jobs, behind a trait so that the core does not know SQLite.
//!
//! The server holds its state in memory and writes every change through a [`Store`]. At
//! start it rebuilds the state from [`Store::load`]. One writer task owns the store and
//! calls [`Store::commit`] with every change gathered since the last commit (group commit),
//! so durability costs one sync per batch rather than one per job.

use buildcat_proto::{JobId, JobStatus};

pub mod sqlite;

pub use sqlite::SqliteStore;

/// A job as stored: its record and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredJob {
    /// Everything but the arguments.
    pub status: JobStatus,
    /// The encoded task arguments.
    pub args: Vec<u8>,
}

/// One change to storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// A new job.
    Insert(StoredJob),
    /// A job's mutable parts changed: state, ended_at, attempts, result, failure and
    /// max_attempts (raised by a requeue). Queue, kind, the other options, created_at and
    /// args never change after insert.
    Update(JobStatus),
    /// A job is removed (pruned after its retention period, or cleared).
    Delete(JobId),
}

/// Why storage failed.
///
/// `Clone`, because one failed commit is reported to every request that waited on it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened.
    #[error("could not open storage {path}: {message}")]
    Open {
        /// The file.
        path: String,
        /// What went wrong, with a hint.
        message: String,
    },
    /// The stored data is from a newer buildcat or is damaged.
    #[error("storage {path} is not readable by this buildcat: {message}")]
    Incompatible {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A read or write failed (disk full, I/O error, locked database).
    #[error("storage error: {0}")]
    Database(String),
}

/// Where jobs are kept durably.
pub trait Store: Send + 'static {
    /// Every job on record, in id order (which is submission order).
    fn load(&mut self) -> Result<Vec<StoredJob>, StoreError>;

    /// Applies `ops` in order as one transaction, durable when this returns `Ok`.
    ///
    /// On error nothing of `ops` is applied.
    fn commit(&mut self, ops: &[StoreOp]) -> Result<(), StoreError>;
}
