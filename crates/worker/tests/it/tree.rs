//! Waiting for processes a task started to be gone, without polling: a pidfd becomes
//! readable when its process exits.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::fake::within;

/// The pid a test script printed (`echo $!`).
pub fn pid(line: &str) -> i32 {
    line.trim()
        .parse()
        .unwrap_or_else(|e| panic!("expected a pid, got {line:?}: {e}"))
}

/// Waits until process `pid` has exited, failing the test if it takes too long. A zombie
/// counts as gone: it runs nothing (and in containers whose init does not reap, orphans stay
/// zombies).
pub async fn gone(pid: i32) {
    within(&format!("process {pid} to be gone"), exited(pid)).await;
}

/// Resolves when `pid` has exited.
async fn exited(pid: i32) {
    // SAFETY: `pidfd_open` takes a pid and flags and returns a new descriptor, or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        let error = io::Error::last_os_error();
        // ESRCH: no such process at all (exited and reaped).
        assert_eq!(
            error.raw_os_error(),
            Some(libc::ESRCH),
            "pidfd_open({pid}): {error}"
        );
        return;
    }
    let raw = i32::try_from(raw).unwrap_or_else(|e| panic!("odd descriptor {raw}: {e}"));
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    let descriptor = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: the `AsyncFd` owns the `OwnedFd`, which stays open, and the same descriptor,
    // until the `AsyncFd` is dropped.
    let watched = unsafe { AsyncFd::register_with_interest(descriptor, Interest::READABLE) }
        .unwrap_or_else(|e| panic!("cannot watch process {pid}: {e}"));
    let _ready = watched
        .readable()
        .await
        .unwrap_or_else(|e| panic!("cannot wait for process {pid}: {e}"));
}
