//! SQLite's failures in words a person can act on, sorted by whether retrying can help.
//!
//! SQLite reports a read-only or forbidden file as `SQLITE_READONLY`, `SQLITE_CANTOPEN` or a
//! plain `SQLITE_IOERR` ("disk I/O error") depending on where it notices. When it reports one
//! of those, [`filesystem_refusal`] asks the file system itself, so that the message names
//! the cause ("read-only file system", "permission denied") instead.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::Path;

use rusqlite::ErrorCode;

use crate::store::StoreError;

/// An `Open` error for `path` with a hint that fits `error`.
pub(super) fn open_error(path: &Path, shown: &str, error: &rusqlite::Error) -> StoreError {
    let message = match error.sqlite_error_code() {
        Some(ErrorCode::CannotOpen) => cannot_open_hint(path, error),
        _ => describe_open(path, error),
    };
    StoreError::Open {
        path: shown.to_owned(),
        message,
    }
}

/// What went wrong opening the file at `path`, in words with a hint.
pub(super) fn describe_open(path: &Path, error: &rusqlite::Error) -> String {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "it is in use by another buildcat server (or another program); stop that server \
             or give this one another file"
                .to_owned()
        }
        Some(ErrorCode::NotADatabase) => {
            "it is not a SQLite database; check the path, or move the file away to start with \
             an empty store"
                .to_owned()
        }
        Some(ErrorCode::PermissionDenied | ErrorCode::ReadOnly | ErrorCode::SystemIoFailure) => {
            match filesystem_refusal(path) {
                Some(refusal) => refusal,
                None if error.sqlite_error_code() == Some(ErrorCode::SystemIoFailure) => {
                    format!("disk i/o error ({error}); check the disk and the system log")
                }
                None => format!(
                    "permission denied; the user running buildcat must be able to read and \
                     write the file and its directory ({error})"
                ),
            }
        }
        Some(ErrorCode::DiskFull) => {
            "the disk is full; free space on it and start again".to_owned()
        }
        Some(ErrorCode::DatabaseCorrupt) => {
            format!("the database is damaged ({error}); restore it from a backup")
        }
        _ => lowercase_first(&error.to_string()),
    }
}

/// A hint for `SQLITE_CANTOPEN`, found by looking at the path.
pub(super) fn cannot_open_hint(path: &Path, error: &rusqlite::Error) -> String {
    if path.is_dir() {
        return "it is a directory; give the path of a file inside it".to_owned();
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        match std::fs::metadata(parent) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return format!(
                    "directory {} does not exist; create it first",
                    parent.display()
                );
            }
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                return format!(
                    "permission denied: the user running buildcat cannot reach directory {}; \
                     fix the permissions of it and the directories above it",
                    parent.display()
                );
            }
            Ok(metadata) if !metadata.is_dir() => {
                return format!("{} is not a directory", parent.display());
            }
            _ => {}
        }
    }
    if let Some(refusal) = filesystem_refusal(path) {
        return refusal;
    }
    format!(
        "{}; check that the user running buildcat may read and write the file and create \
         files in its directory",
        lowercase_first(&error.to_string())
    )
}

/// Why the file system refuses to let us write beside `path`, if it does.
///
/// Creates and removes a probe file in the file's directory: only this tells a read-only
/// mount or a missing permission apart from other failures, whoever runs the server (root
/// passes permission checks that mode bits alone would fail). The database file itself is
/// never opened here: closing any descriptor of it would drop the POSIX locks SQLite holds
/// on it for this process.
pub(super) fn filesystem_refusal(path: &Path) -> Option<String> {
    let directory = path.parent().filter(|p| !p.as_os_str().is_empty());
    let probe = directory
        .unwrap_or(Path::new("."))
        .join(format!(".buildcat-write-probe-{}", std::process::id()));
    let error = match OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(file) => {
            drop(file);
            // A probe left behind is harmless; nothing reads it.
            let _ = std::fs::remove_file(&probe);
            return None;
        }
        Err(error) => error,
    };
    match error.kind() {
        ErrorKind::ReadOnlyFilesystem => Some(format!(
            "read-only file system: {} cannot be written; remount it read-write or give \
             storage on a writable disk",
            path.display()
        )),
        ErrorKind::PermissionDenied => Some(format!(
            "permission denied: the user running buildcat cannot create files in the \
             directory of {}; fix its permissions or give storage the user may write",
            path.display()
        )),
        _ => None,
    }
}

/// `text` with its first letter lowercased, unless the first word is an acronym or in
/// capitals (SQLite says "UNIQUE constraint failed", rusqlite "Query returned no rows").
pub(super) fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if first.is_uppercase() && !second.is_uppercase() => {
            let mut lowered = String::with_capacity(text.len());
            lowered.extend(first.to_lowercase());
            lowered.push_str(&text[first.len_utf8()..]);
            lowered
        }
        _ => text.to_owned(),
    }
}

/// The error for a failed read or write of the file at `path`: `context` says what was
/// being done.
///
/// Conditions outside the change that may pass (a full disk, a lock, a read-only or failing
/// disk) are [`StoreError::Unavailable`]; anything about the change or the file's contents
/// is [`StoreError::Database`].
pub(super) fn write_error(path: &Path, context: &str, error: &rusqlite::Error) -> StoreError {
    let unavailable = |what: String| StoreError::Unavailable(format!("{context}: {what}"));
    match error.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => unavailable(format!(
            "the disk is full; free space on the disk that holds {}, then try again",
            path.display()
        )),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => unavailable(format!(
            "the database is locked by another program ({error}); stop the program that \
             opened {}",
            path.display()
        )),
        Some(
            ErrorCode::SystemIoFailure
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::CannotOpen,
        ) => match filesystem_refusal(path) {
            Some(refusal) => unavailable(refusal),
            None if error.sqlite_error_code() == Some(ErrorCode::SystemIoFailure) => {
                unavailable(format!(
                    "disk i/o error ({error}); check the disk that holds {} and the system log",
                    path.display()
                ))
            }
            None => unavailable(format!("the file cannot be written ({error})")),
        },
        Some(ErrorCode::DatabaseCorrupt) => StoreError::Database(format!(
            "{context}: the database is damaged ({error}); restore it from a backup"
        )),
        _ => StoreError::Database(format!(
            "{context}: {}",
            lowercase_first(&error.to_string())
        )),
    }
}
