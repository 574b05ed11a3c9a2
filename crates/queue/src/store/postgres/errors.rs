//! PostgreSQL's failures in words a person can act on, sorted by whether retrying can help.

use postgres::error::SqlState;

use crate::store::StoreError;

/// The error in words: the server's message (with its detail and hint) for a database
/// error, else the client's, lowercase first.
pub(super) fn describe(error: &postgres::Error) -> String {
    let text = match error.as_db_error() {
        Some(db) => {
            let mut text = db.message().to_owned();
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("; {hint}"));
            }
            text
        }
        None => {
            // The client's own error names the cause only in its source.
            let mut text = error.to_string();
            if let Some(source) = std::error::Error::source(error) {
                text.push_str(&format!(": {source}"));
            }
            text
        }
    };
    lowercase_first(&text)
}

/// `text` with its first letter in lower case, as error messages are written here.
pub(super) fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Whether trying the same change again later may pass: the connection is gone or the
/// database is restarting, short of resources, or broke off a transaction that conflicted
/// with another.
pub(super) fn is_transient(error: &postgres::Error) -> bool {
    let Some(code) = error.code() else {
        // No SQL state: the connection itself failed (closed, reset, timed out).
        return true;
    };
    let class = code.code().get(..2).unwrap_or_default();
    matches!(class, "08" | "53" | "57" | "58")
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
}

/// A failed write or read as the error a commit reports: [`StoreError::Unavailable`] when
/// retrying may pass, else [`StoreError::Database`].
pub(super) fn write_error(what: &str, error: &postgres::Error) -> StoreError {
    let message = format!("{what}: {}", describe(error));
    if is_transient(error) {
        StoreError::Unavailable(format!(
            "{message}; check that the PostgreSQL server is up and reachable"
        ))
    } else {
        StoreError::Database(message)
    }
}

/// Whether `error` is a unique or primary key violation.
pub(super) fn is_unique_violation(error: &postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
}
