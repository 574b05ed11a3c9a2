//! How a job is written to and read from a row of the `jobs` table.
//!
//! The options and timestamps are plain columns, the id is the 16 bytes of its UUID (v7,
//! so byte order is submission order), `after` is the dependency ids concatenated (16 bytes
//! each), and the attempts list and the failure are blobs encoded with
//! [`buildcat_proto::codec::encode_value`].

use std::borrow::Cow;
use std::path::Path;

use buildcat_proto::codec::{decode_value, encode_value};
use buildcat_proto::{Attempt, Failure, JobId, JobOptions, JobState, JobStatus, Timestamp};
use rusqlite::types::ValueRef;
use rusqlite::{CachedStatement, Row, params};
use uuid::Uuid;

use super::errors::write_error;
use crate::store::{StoreError, StoredJob};

/// Bytes of a job id.
pub(super) const ID_LEN: usize = 16;

/// Inserts a job; the parameters are the columns in table order.
pub(super) const INSERT_JOB: &str = "INSERT INTO jobs (id, queue, kind, args, timeout_ms, max_attempts, \
    priority, after, state, created_at, ended_at, attempts, result, failure) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";

/// Updates a job's mutable columns.
pub(super) const UPDATE_JOB: &str = "UPDATE jobs SET state = ?2, ended_at = ?3, attempts = ?4, \
    result = ?5, failure = ?6, max_attempts = ?7 WHERE id = ?1";

/// Deletes a job.
pub(super) const DELETE_JOB: &str = "DELETE FROM jobs WHERE id = ?1";

/// Reads every job in id order; the columns are in table order.
pub(super) const SELECT_JOBS: &str = "SELECT id, queue, kind, args, timeout_ms, max_attempts, priority, \
    after, state, created_at, ended_at, attempts, result, failure FROM jobs ORDER BY id";

/// A `u64` as an SQLite integer, or an error naming what it is.
pub(super) fn to_sql_int(value: u64, what: &str, id: JobId) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| {
        StoreError::Database(format!(
            "could not store job {id}: {what} {value} is too large to store"
        ))
    })
}

/// Encodes the attempts list, reusing the encoding of an empty list.
fn encode_attempts<'a>(
    attempts: &[Attempt],
    no_attempts: &'a [u8],
    id: JobId,
) -> Result<Cow<'a, [u8]>, StoreError> {
    if attempts.is_empty() {
        return Ok(Cow::Borrowed(no_attempts));
    }
    encode_value(&attempts).map(Cow::Owned).map_err(|e| {
        StoreError::Database(format!("could not encode the attempts of job {id}: {e}"))
    })
}

/// Encodes the failure, if any.
fn encode_failure(failure: Option<&Failure>, id: JobId) -> Result<Option<Vec<u8>>, StoreError> {
    failure
        .map(|failure| {
            encode_value(failure).map_err(|e| {
                StoreError::Database(format!("could not encode the failure of job {id}: {e}"))
            })
        })
        .transpose()
}

/// Runs the insert statement for `job`, building its `after` column in `after`.
pub(super) fn insert(
    stmt: &mut CachedStatement<'_>,
    job: &StoredJob,
    no_attempts: &[u8],
    after: &mut Vec<u8>,
    path: &Path,
) -> Result<(), StoreError> {
    let status = &job.status;
    let id = status.id;
    after.clear();
    for dep in &status.options.after {
        after.extend_from_slice(dep.0.as_bytes());
    }
    let timeout_ms = status
        .options
        .timeout_ms
        .map(|t| to_sql_int(t, "timeout", id))
        .transpose()?;
    let ended_at = status
        .ended_at
        .map(|t| to_sql_int(t.0, "end time", id))
        .transpose()?;
    let attempts = encode_attempts(&status.attempts, no_attempts, id)?;
    let failure = encode_failure(status.failure.as_ref(), id)?;
    stmt.execute(params![
        id.0.as_bytes(),
        status.queue,
        status.kind,
        job.args,
        timeout_ms,
        status.options.max_attempts,
        status.options.priority,
        after.as_slice(),
        status.state.as_str(),
        to_sql_int(status.created_at.0, "creation time", id)?,
        ended_at,
        attempts.as_ref(),
        status.result.as_deref(),
        failure,
    ])
    .map_err(|e| {
        let duplicate = e.sqlite_error().is_some_and(|error| {
            error.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || error.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        });
        if duplicate {
            StoreError::Database(format!(
                "could not insert job {id}: a job with this id is already stored"
            ))
        } else {
            write_error(path, &format!("could not insert job {id}"), &e)
        }
    })?;
    Ok(())
}

/// Runs the update statement for `status`; the job must be stored.
pub(super) fn update(
    stmt: &mut CachedStatement<'_>,
    status: &JobStatus,
    no_attempts: &[u8],
    path: &Path,
) -> Result<(), StoreError> {
    let id = status.id;
    let ended_at = status
        .ended_at
        .map(|t| to_sql_int(t.0, "end time", id))
        .transpose()?;
    let attempts = encode_attempts(&status.attempts, no_attempts, id)?;
    let failure = encode_failure(status.failure.as_ref(), id)?;
    let changed = stmt
        .execute(params![
            id.0.as_bytes(),
            status.state.as_str(),
            ended_at,
            attempts.as_ref(),
            status.result.as_deref(),
            failure,
            status.options.max_attempts,
        ])
        .map_err(|e| write_error(path, &format!("could not update job {id}"), &e))?;
    if changed == 0 {
        return Err(StoreError::Database(format!(
            "could not update job {id}: it is not stored"
        )));
    }
    Ok(())
}

/// Decodes the columns after the id; the error says which column is wrong.
pub(super) fn decode_row(id: JobId, row: &Row<'_>) -> Result<StoredJob, String> {
    let col = |index: usize| {
        row.get_ref(index)
            .map_err(|e| format!("column {index} is missing ({e})"))
    };
    let text = |index: usize, name: &str| -> Result<String, String> {
        match col(index)? {
            ValueRef::Text(bytes) => String::from_utf8(bytes.to_vec())
                .map_err(|_| format!("its {name} is not valid utf-8")),
            other => Err(format!("its {name} is of type {}", other.data_type())),
        }
    };
    let blob = |index: usize, name: &str| -> Result<Option<&[u8]>, String> {
        match col(index)? {
            ValueRef::Blob(bytes) => Ok(Some(bytes)),
            ValueRef::Null => Ok(None),
            other => Err(format!("its {name} is of type {}", other.data_type())),
        }
    };
    let int = |index: usize, name: &str| -> Result<Option<i64>, String> {
        match col(index)? {
            ValueRef::Integer(value) => Ok(Some(value)),
            ValueRef::Null => Ok(None),
            other => Err(format!("its {name} is of type {}", other.data_type())),
        }
    };
    let required =
        |value: Option<i64>, name: &str| value.ok_or_else(|| format!("its {name} is null"));
    let unsigned = |value: i64, name: &str| {
        u64::try_from(value).map_err(|_| format!("its {name} is negative ({value})"))
    };

    let queue = text(1, "queue")?;
    let kind = text(2, "kind")?;
    let args = blob(3, "args")?.unwrap_or_default().to_vec();
    let timeout_ms = int(4, "timeout")?
        .map(|t| unsigned(t, "timeout"))
        .transpose()?;
    let max_attempts = required(int(5, "max_attempts")?, "max_attempts")?;
    let max_attempts = u32::try_from(max_attempts)
        .map_err(|_| format!("its max_attempts {max_attempts} is out of range"))?;
    let priority = required(int(6, "priority")?, "priority")?;
    let priority =
        i32::try_from(priority).map_err(|_| format!("its priority {priority} is out of range"))?;
    let after_bytes = blob(7, "after")?.unwrap_or_default();
    if after_bytes.len() % ID_LEN != 0 {
        return Err(format!(
            "its dependency list is {} bytes, not a multiple of {ID_LEN}",
            after_bytes.len()
        ));
    }
    let after = after_bytes
        .chunks_exact(ID_LEN)
        .map(|chunk| {
            <[u8; ID_LEN]>::try_from(chunk)
                .map(|bytes| JobId(Uuid::from_bytes(bytes)))
                .map_err(|_| "its dependency list is damaged".to_owned())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let state = match col(8)? {
        ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .map_err(|_| "its state is not valid utf-8".to_owned())?
            .parse::<JobState>()?,
        other => return Err(format!("its state is of type {}", other.data_type())),
    };
    let created_at = Timestamp(unsigned(
        required(int(9, "created_at")?, "created_at")?,
        "created_at",
    )?);
    let ended_at = int(10, "ended_at")?
        .map(|t| unsigned(t, "ended_at").map(Timestamp))
        .transpose()?;
    let attempts: Vec<Attempt> = match blob(11, "attempts")? {
        Some(bytes) => {
            decode_value(bytes).map_err(|e| format!("its attempts cannot be decoded: {e}"))?
        }
        None => Vec::new(),
    };
    let result = blob(12, "result")?.map(<[u8]>::to_vec);
    let failure: Option<Failure> = blob(13, "failure")?
        .map(|bytes| decode_value(bytes).map_err(|e| format!("its failure cannot be decoded: {e}")))
        .transpose()?;

    Ok(StoredJob {
        status: JobStatus {
            id,
            queue,
            kind,
            state,
            options: JobOptions {
                timeout_ms,
                max_attempts,
                priority,
                after,
            },
            created_at,
            ended_at,
            attempts,
            result,
            failure,
            progress: None,
        },
        args,
        output: crate::store::OutputExtent::default(),
    })
}

/// Decodes the id column; the error says what is wrong with it.
pub(super) fn decode_id(value: ValueRef<'_>) -> Result<JobId, String> {
    let bytes = match value {
        ValueRef::Blob(bytes) => bytes,
        other => {
            return Err(format!(
                "a job has an id of type {}, expected a blob",
                other.data_type()
            ));
        }
    };
    <[u8; ID_LEN]>::try_from(bytes)
        .map(|bytes| JobId(Uuid::from_bytes(bytes)))
        .map_err(|_| {
            format!(
                "a job has an id of {} bytes, expected {ID_LEN}",
                bytes.len()
            )
        })
}
