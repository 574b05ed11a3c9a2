//! Stable default names: a worker without `--name` is `HOST-SLOT` (`render01-1`), taking the
//! lowest slots no other live worker of this user on this host holds, so a machine's worker
//! has the same name on every start (its history and quarantine follow it) and two workers
//! started side by side never share one.
//!
//! A slot is held by an exclusive lock on `STATE_DIR/slot-N.lock` (`flock` on Unix,
//! `LockFileEx` on Windows) for as long as the worker lives; the system releases it when the
//! process dies, however it dies.

use std::fs::File;
use std::io;
use std::path::Path;

/// The most slots looked at: far beyond the workers one host runs, and a bound on the
/// files a broken lock directory could make us try.
const MAX_SLOTS: u32 = 4096;

/// A slot this process holds, and the lock that holds it.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The slot's number, from 1.
    pub(crate) number: u32,
    /// The locked file: dropping it frees the slot.
    _lock: File,
}

/// Takes the `count` lowest free slots under `dir` (made if missing).
pub(crate) fn claim(dir: &Path, count: usize) -> io::Result<Vec<Slot>> {
    std::fs::create_dir_all(dir)?;
    let mut slots = Vec::with_capacity(count);
    for number in 1..=MAX_SLOTS {
        if slots.len() == count {
            break;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("slot-{number}.lock")))?;
        if try_lock(&file)? {
            slots.push(Slot {
                number,
                _lock: file,
            });
        }
    }
    if slots.len() < count {
        return Err(io::Error::other(format!(
            "every one of {MAX_SLOTS} worker slots under {} is taken",
            dir.display()
        )));
    }
    Ok(slots)
}

/// Locks `file` exclusively without waiting; `false` when another process holds it.
#[cfg(unix)]
fn try_lock(file: &File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` on a descriptor this `File` owns and keeps open; no memory is passed.
    let result = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if result == 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    if error.kind() == io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(error)
    }
}

/// Locks `file` exclusively without waiting (`LockFileEx` on its first byte); `false` when
/// another process holds it. The system drops the lock when the handle closes, so also
/// when the worker dies, however it dies, as the kernel drops a `flock`.
#[cfg(windows)]
fn try_lock(file: &File) -> io::Result<bool> {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Foundation::ERROR_LOCK_VIOLATION;
    use windows_sys::Win32::Storage::FileSystem::{
        LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY, LockFileEx,
    };
    use windows_sys::Win32::System::IO::OVERLAPPED;
    // SAFETY: an all-zero OVERLAPPED is valid: it names offset 0 and no event.
    let mut at: OVERLAPPED = unsafe { std::mem::zeroed() };
    // SAFETY: the handle is this `File`'s own, open for the call; `at` outlives the call,
    // which (the file not being opened for overlapped I/O) completes before returning.
    let locked = unsafe {
        LockFileEx(
            file.as_raw_handle(),
            LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY,
            0,
            1,
            0,
            &raw mut at,
        )
    };
    if locked != 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() == i32::try_from(ERROR_LOCK_VIOLATION).ok() {
        Ok(false)
    } else {
        Err(error)
    }
}

/// Elsewhere, slots are not shared between processes: each worker counts from 1.
#[cfg(not(any(unix, windows)))]
fn try_lock(_file: &File) -> io::Result<bool> {
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_the_lowest_free_ones_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let first = claim(dir.path(), 2).unwrap_or_else(|e| panic!("{e}"));
        let numbers = |slots: &[Slot]| slots.iter().map(|s| s.number).collect::<Vec<_>>();
        assert_eq!(numbers(&first), [1, 2]);
        let second = claim(dir.path(), 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(numbers(&second), [3]);
        drop(first);
        let third = claim(dir.path(), 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(numbers(&third), [1]);
    }
}
