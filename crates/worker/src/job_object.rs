//! Windows Job Objects: the Windows counterpart of a task's process group and supervisor.
//!
//! Each program the process runner starts is created suspended, put in a job object of its
//! own and only then let run, so everything it starts is in the job too (children inherit
//! their parent's job). The job is made with `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`: the
//! worker holds its only handle, so when the worker dies, however it dies, the system closes
//! the handle and kills every process in the job (what the supervisor does on Linux).
//! Cancel and timeout call `TerminateJobObject`.
//!
//! Termination, like a SIGKILL, completes after the call returns. A task has ended only once
//! its job has no active process left, so the process runner hands its job to [`hand_over`]
//! when a run ends, and the loop's wait for the task's processes asks [`has_live`], as it
//! reads `/proc` on Linux. A job is closed once it is seen empty.

use std::io;
use std::mem::{size_of, zeroed};
use std::ptr::null;
use std::sync::{Mutex, PoisonError};

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, TH32CS_SNAPTHREAD, THREADENTRY32, Thread32First, Thread32Next,
};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOBOBJECT_BASIC_ACCOUNTING_INFORMATION, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JobObjectBasicAccountingInformation, JobObjectExtendedLimitInformation,
    QueryInformationJobObject, SetInformationJobObject, TerminateJobObject,
};
use windows_sys::Win32::System::Threading::{OpenThread, ResumeThread, THREAD_SUSPEND_RESUME};

/// The exit code the processes of a terminated job get: 1, as `taskkill /f` gives.
const TERMINATED_EXIT_CODE: u32 = 1;

/// A handle owned by this process, closed when dropped.
#[derive(Debug)]
struct Owned(HANDLE);

// SAFETY: a kernel handle is a process-wide value; any thread may use or close it.
unsafe impl Send for Owned {}
// SAFETY: the job calls made through a shared handle are thread-safe in the kernel.
unsafe impl Sync for Owned {}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: the handle was opened by this process, is owned here alone and is closed
        // once.
        unsafe { CloseHandle(self.0) };
    }
}

/// A job object whose processes die when it is closed.
#[derive(Debug)]
pub(crate) struct JobObject {
    /// The job's only handle: closing it (or the worker dying) kills what is in the job.
    handle: Owned,
}

impl JobObject {
    /// A new, empty, unnamed job that kills its processes when closed.
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: no security attributes and no name are valid arguments; the result is
        // checked before use.
        let handle = unsafe { CreateJobObjectW(null(), null()) };
        if handle.is_null() {
            return Err(io::Error::last_os_error());
        }
        let job = JobObject {
            handle: Owned(handle),
        };
        // SAFETY: an all-zero limit structure is valid (no limits); one flag is set.
        let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { zeroed() };
        limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        // SAFETY: the pointer and size describe `limits`, of the class named.
        let set = unsafe {
            SetInformationJobObject(
                job.handle.0,
                JobObjectExtendedLimitInformation,
                (&raw const limits).cast(),
                size_u32::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>(),
            )
        };
        if set == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(job)
    }

    /// Puts the (suspended) process `process` in the job, then lets its threads run.
    pub(crate) fn adopt(&self, process: HANDLE, pid: u32) -> io::Result<()> {
        // SAFETY: both handles are valid: the job's is owned here, the process's is the
        // caller's live child.
        if unsafe { AssignProcessToJobObject(self.handle.0, process) } == 0 {
            return Err(io::Error::last_os_error());
        }
        resume_threads(pid)
    }

    /// Kills every process in the job; an error when the system refused.
    pub(crate) fn terminate(&self) -> io::Result<()> {
        // SAFETY: the job handle is valid for the life of `self`.
        if unsafe { TerminateJobObject(self.handle.0, TERMINATED_EXIT_CODE) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// How many processes in the job are still running.
    pub(crate) fn active_processes(&self) -> io::Result<u32> {
        // SAFETY: an all-zero accounting structure is a valid buffer to fill.
        let mut accounting: JOBOBJECT_BASIC_ACCOUNTING_INFORMATION = unsafe { zeroed() };
        // SAFETY: the pointer and size describe `accounting`, of the class named; the
        // returned-length pointer may be null.
        let queried = unsafe {
            QueryInformationJobObject(
                self.handle.0,
                JobObjectBasicAccountingInformation,
                (&raw mut accounting).cast(),
                size_u32::<JOBOBJECT_BASIC_ACCOUNTING_INFORMATION>(),
                std::ptr::null_mut(),
            )
        };
        if queried == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(accounting.ActiveProcesses)
    }

    /// Whether any process of the job still runs; an unreadable job counts as empty, as an
    /// unreadable `/proc` does on Linux (the kill was sent either way).
    fn is_active(&self) -> bool {
        self.active_processes().is_ok_and(|count| count > 0)
    }
}

/// The size of `T` as the `u32` the job calls take (their structures are a few hundred
/// bytes).
fn size_u32<T>() -> u32 {
    u32::try_from(size_of::<T>()).unwrap_or(u32::MAX)
}

/// Resumes every thread of the process `pid`, created suspended (it has only its first).
fn resume_threads(pid: u32) -> io::Result<()> {
    // SAFETY: a thread snapshot of the whole system takes no pointers; checked before use.
    let snapshot = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0) };
    if snapshot == INVALID_HANDLE_VALUE {
        return Err(io::Error::last_os_error());
    }
    let snapshot = Owned(snapshot);
    // SAFETY: an all-zero entry is valid once its size is set, as the calls require.
    let mut entry: THREADENTRY32 = unsafe { zeroed() };
    entry.dwSize = size_u32::<THREADENTRY32>();
    let mut resumed = 0;
    // SAFETY: the snapshot handle is valid and `entry` is a sized, writable entry.
    let mut more = unsafe { Thread32First(snapshot.0, &raw mut entry) } != 0;
    while more {
        if entry.th32OwnerProcessID == pid {
            // SAFETY: opening a thread by id has no pointer arguments; checked before use.
            let thread = unsafe { OpenThread(THREAD_SUSPEND_RESUME, 0, entry.th32ThreadID) };
            if thread.is_null() {
                return Err(io::Error::last_os_error());
            }
            let thread = Owned(thread);
            // SAFETY: the thread handle was opened with the right to resume it.
            if unsafe { ResumeThread(thread.0) } == u32::MAX {
                return Err(io::Error::last_os_error());
            }
            resumed += 1;
        }
        // SAFETY: as for `Thread32First`.
        more = unsafe { Thread32Next(snapshot.0, &raw mut entry) } != 0;
    }
    if resumed == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no thread of process {pid} was found to start"),
        ));
    }
    Ok(())
}

/// The jobs of ended runs whose processes may still be dying, by their program's pid (the
/// id the task's record names, as a process group's id on Linux).
static DYING: Mutex<Vec<(u32, JobObject)>> = Mutex::new(Vec::new());

/// Keeps the job of an ended run (already terminated) until it is seen empty, so that the
/// loop can wait for its processes to be gone. Jobs already empty are closed meanwhile.
pub(crate) fn hand_over(pid: u32, job: JobObject) {
    let mut dying = DYING.lock().unwrap_or_else(PoisonError::into_inner);
    dying.retain(|(_, job)| job.is_active());
    if job.is_active() {
        dying.push((pid, job));
    }
}

/// Whether the job of the ended run whose program had pid `pid` still has a process;
/// closes it once it has none.
pub(crate) fn has_live(pid: u32) -> bool {
    let mut dying = DYING.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(index) = dying.iter().position(|(owner, _)| *owner == pid) else {
        return false;
    };
    if dying[index].1.is_active() {
        return true;
    }
    dying.swap_remove(index);
    false
}

#[cfg(test)]
mod tests {
    use std::os::windows::io::AsRawHandle;
    use std::os::windows::process::CommandExt;
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

    use windows_sys::Win32::System::Threading::CREATE_SUSPENDED;

    use super::*;

    /// How long the system may take to start or end a job's processes: generous, for a
    /// loaded machine or Wine.
    const PATIENCE: Duration = Duration::from_secs(60);

    /// How often a wait looks again.
    const LOOK_AGAIN: Duration = Duration::from_millis(10);

    /// Polls `done` until it holds, failing the test after [`PATIENCE`].
    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(LOOK_AGAIN);
        }
    }

    /// `cmd` running a long `ping` (a program that starts another), started suspended in a
    /// new job as the process runner starts programs; waits until both run in the job.
    fn contained() -> (Child, JobObject) {
        let child = Command::new("cmd")
            .args(["/c", "ping -n 120 127.0.0.1 > NUL"])
            .creation_flags(CREATE_SUSPENDED)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start cmd: {e}"));
        let job = JobObject::new().unwrap_or_else(|e| panic!("{e}"));
        job.adopt(child.as_raw_handle(), child.id())
            .unwrap_or_else(|e| panic!("{e}"));
        wait_for("cmd and its ping to run in the job", || {
            job.active_processes().is_ok_and(|count| count >= 2)
        });
        (child, job)
    }

    /// Guards issue 16: terminating the job ends the program and what it started.
    #[test]
    fn a_terminated_job_ends_the_program_and_its_children() {
        let (mut child, job) = contained();
        job.terminate().unwrap_or_else(|e| panic!("{e}"));
        wait_for("the terminated job to be empty", || {
            job.active_processes().is_ok_and(|count| count == 0)
        });
        let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status.code(), i32::try_from(TERMINATED_EXIT_CODE).ok());
    }

    /// Guards issue 16: closing the job's only handle (what the system does when the
    /// worker dies) kills what is in it.
    #[test]
    fn closing_the_job_kills_its_processes() {
        let (mut child, job) = contained();
        drop(job);
        wait_for("cmd to be killed with its job", || {
            child.try_wait().is_ok_and(|status| status.is_some())
        });
    }
}
