//! A tiny per-task supervisor that kills the task's process group when the worker dies, however
//! it dies (SIGKILL included), so that no copy of a task runs on without its worker.
//!
//! `PR_SET_PDEATHSIG` alone is not enough: it reaches only the direct child (not the `sleep`
//! a shell started), and it fires when the *thread* that forked exits, which tokio's blocking
//! threads do when idle. Instead the program is started through a supervisor:
//!
//! ```text
//! worker ──(spawn)──► supervisor: leads the task's process group, pid = group id
//!    │ write end          │ read end           └─(fork)─► the program (exec), same group
//!    └────── pipe ────────┘
//! ```
//!
//! The worker holds the only write end of a pipe (close-on-exec, so no other program it
//! starts inherits it); the supervisor holds the read end. When the worker exits, by any
//! means, the kernel closes the write end, the supervisor reads end-of-file and kills its
//! process group with SIGKILL, itself included. The worker also closes it on purpose when a
//! run ends ([`Tether`] dropped), which has the same effect.
//!
//! A worker that is alive but frozen (stopped with SIGSTOP, a paused VM, swapped to a halt)
//! keeps its end open, yet the server hands its task on once it stops hearing from it. So
//! the pipe is also a dead man's switch: the worker writes a byte to it every quarter second
//! while the task runs (the process runner's beat), and a supervisor given a `silence` limit (the
//! worker's lease) kills the group when no byte came for that long: a frozen worker's task
//! stops before the server can hand it on, and never runs beside its next copy.
//!
//! The supervisor is the worker's direct child, so the worker reaps it as before; it reaps
//! the program and exits the way the program did (its exit code, or killed by its signal, with
//! core dumps off so the supervisor's copy of the worker's memory is never dumped), so exit
//! codes and signals are reported as they were without it. It ignores the polite signals the
//! worker sends the group (SIGTERM, SIGINT, SIGHUP, SIGQUIT) and stays until the program has
//! gone. The program gets `PR_SET_PDEATHSIG` = SIGKILL towards the supervisor, which is
//! single-threaded, so killing the supervisor alone takes the program with it.
//!
//! Everything between the fork and the program's exec runs in the forked child of a
//! multithreaded process, so it uses only async-signal-safe system calls: no allocation, no
//! locks, no Rust formatting. The supervisor never execs, so it holds a copy-on-write copy of
//! the worker's memory; it touches almost none of it.
//!
//! Linux only; elsewhere programs run as before, in their own process group, and die with
//! the worker only when it exits cleanly.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::process::Command;

/// How often, in milliseconds, a supervisor on a kernel without pidfds (before 5.3) checks
/// whether the program has exited, between looks at the pipe.
const FALLBACK_POLL_MS: libc::c_int = 100;

/// The most descriptors the supervisor closes one by one on a kernel without `close_range`
/// (before 5.9).
const FALLBACK_MAX_FDS: RawFd = 1 << 16;

/// The worker's end of the pipe a task's supervisor watches: while it is open (and beats
/// come, when the supervisor was given a silence limit), the task may run; once it is closed
/// (dropped, or the worker gone), or silent too long, the supervisor kills the task's process
/// group.
#[derive(Debug)]
pub(crate) struct Tether {
    /// The write end: a byte is a beat; its closing ends the task.
    write: OwnedFd,
}

impl Tether {
    /// Tells the supervisor the worker is alive. A full pipe (a supervisor not reading) is
    /// not worth waiting for: the beat is dropped.
    pub(crate) fn beat(&self) {
        let byte = 1u8;
        // SAFETY: a one-byte write from a stack value to a descriptor this tether owns.
        let _ = unsafe { libc::write(self.write.as_raw_fd(), (&raw const byte).cast(), 1) };
    }
}

/// The read end, until the program is spawned; the worker must close its copy then.
#[derive(Debug)]
pub(crate) struct PendingTether {
    /// The supervisor's end, which the worker closes once the supervisor has its copy.
    read: OwnedFd,
    /// The worker's end.
    write: OwnedFd,
}

impl PendingTether {
    /// The program was spawned (or failed to): keep only the worker's end.
    pub(crate) fn spawned(self) -> Tether {
        drop(self.read);
        // A beat never waits: the supervisor reads them, and one lost is harmless.
        // SAFETY: fcntl on a descriptor this tether owns.
        unsafe {
            let fd = self.write.as_raw_fd();
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
        }
        Tether { write: self.write }
    }
}

/// Makes `command` start through a supervisor tied to the returned tether. The command must
/// already be set to lead a new process group (`process_group(0)`). With `silence`, the
/// supervisor also kills the group when the tether has not beaten for that long.
pub(crate) fn supervise(
    command: &mut Command,
    silence: Option<std::time::Duration>,
) -> io::Result<PendingTether> {
    // Milliseconds, or -1 for no limit: an integer is all the forked child may use.
    let silence_ms: i64 = silence.map_or(-1, |limit| {
        i64::try_from(limit.as_millis()).unwrap_or(i64::MAX).max(1)
    });
    let mut ends: [libc::c_int; 2] = [-1, -1];
    // SAFETY: `ends` is a valid array of two descriptors for `pipe2` to fill.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `pipe2` succeeded, so both are new descriptors that nothing else owns.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    let read_fd = read.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and makes only
    // async-signal-safe calls (see `start_supervised`); it captures one integer.
    unsafe {
        command.pre_exec(move || start_supervised(read_fd, silence_ms));
    }
    Ok(PendingTether { read, write })
}

/// In the forked child: forks the program, which returns to exec it, while this process
/// becomes its supervisor and never returns.
fn start_supervised(read_fd: RawFd, silence_ms: i64) -> io::Result<()> {
    // SAFETY (whole function): plain system calls on integers and stack values; see above.
    unsafe {
        let supervisor = libc::getpid();
        // The group kill below must never reach the worker's own group.
        if libc::getpgrp() != supervisor {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let program = libc::fork();
        if program < 0 {
            return Err(io::Error::last_os_error());
        }
        if program == 0 {
            // The program: it dies with its supervisor; if the supervisor died already,
            // it goes at once.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            if libc::getppid() != supervisor {
                libc::_exit(127);
            }
            return Ok(());
        }
        run_supervisor(read_fd, program, silence_ms)
    }
}

/// Milliseconds on the monotonic clock (async-signal-safe).
///
/// # Safety
/// Plain system call on a stack value.
unsafe fn monotonic_ms() -> i64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the kernel to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec * 1000 + now.tv_nsec / 1_000_000
}

/// The supervisor's life: wait for the program to exit (then exit the same way) or for the
/// worker's end of the pipe to close or, with a limit (`silence_ms` >= 0), to fall silent
/// (then kill the whole group).
///
/// # Safety
/// Called only in the forked supervisor, with `read_fd` open and `program` its child.
unsafe fn run_supervisor(read_fd: RawFd, program: libc::pid_t, silence_ms: i64) -> ! {
    // SAFETY (whole function): async-signal-safe system calls on integers and stack values.
    unsafe {
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(signal, libc::SIG_IGN);
        }
        // The worker's own handler (tokio's child reaper) must not run here, where the
        // descriptors it writes to are closed or reused.
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        close_all_but(read_fd);
        let pidfd = libc::syscall(libc::SYS_pidfd_open, program, 0) as libc::c_int;
        let mut fds = [
            libc::pollfd {
                fd: read_fd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let (count, wait_ms) = if pidfd >= 0 {
            (2, -1)
        } else {
            (1, FALLBACK_POLL_MS)
        };
        let mut byte = 0u8;
        let mut last_beat = monotonic_ms();
        loop {
            let mut status: libc::c_int = 0;
            let reaped = libc::waitpid(program, &mut status, libc::WNOHANG);
            if reaped == program {
                exit_like(status);
            }
            if reaped < 0 && *libc::__errno_location() != libc::EINTR {
                // No such child: nothing left to mirror.
                libc::_exit(127);
            }
            fds[0].revents = 0;
            fds[1].revents = 0;
            let mut wait = wait_ms;
            if silence_ms >= 0 {
                let left = last_beat + silence_ms - monotonic_ms();
                if left <= 0 {
                    // The worker is frozen or wedged: the server is about to hand the task on.
                    libc::kill(-libc::getpid(), libc::SIGKILL);
                    libc::_exit(137);
                }
                let left = libc::c_int::try_from(left).unwrap_or(libc::c_int::MAX);
                wait = if wait < 0 { left } else { wait.min(left) };
            }
            libc::poll(fds.as_mut_ptr(), count, wait);
            if fds[0].revents != 0 {
                let read = libc::read(read_fd, (&raw mut byte).cast(), 1);
                if read == 0 || (read < 0 && *libc::__errno_location() != libc::EINTR) {
                    // The worker is gone or done with the task: nothing of it may run on.
                    libc::kill(-libc::getpid(), libc::SIGKILL);
                    libc::_exit(137);
                }
                if read > 0 {
                    last_beat = monotonic_ms();
                }
            }
        }
    }
}

/// Closes every descriptor but `keep`, so the supervisor holds none of the task's pipes (the
/// worker judges the task's end by its output pipes closing) nor the worker's.
///
/// # Safety
/// Only in the forked supervisor, which uses no descriptor but `keep` afterwards.
unsafe fn close_all_but(keep: RawFd) {
    // SAFETY: closing descriptors has no memory-safety preconditions.
    unsafe {
        let Ok(keep_index) = u32::try_from(keep) else {
            return;
        };
        let low = match keep_index.checked_sub(1) {
            Some(below) => libc::syscall(libc::SYS_close_range, 0u32, below, 0u32),
            None => 0,
        };
        let high = libc::syscall(libc::SYS_close_range, keep_index + 1, u32::MAX, 0u32);
        if low != 0 || high != 0 {
            for fd in 0..FALLBACK_MAX_FDS {
                if fd != keep {
                    libc::close(fd);
                }
            }
        }
    }
}

/// Ends the supervisor the way the program ended: the same exit code, or the same signal.
///
/// # Safety
/// Only in the forked supervisor.
unsafe fn exit_like(status: libc::c_int) -> ! {
    // SAFETY: async-signal-safe system calls on integers and stack values.
    unsafe {
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            // A core dump of the supervisor would be a copy of the worker's memory.
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            libc::signal(signal, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, signal);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::kill(libc::getpid(), signal);
            // A signal whose default is not to terminate: report it as a shell would.
            libc::_exit(128 + signal);
        }
        libc::_exit(127)
    }
}
