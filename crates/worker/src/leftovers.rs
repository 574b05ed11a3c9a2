//! A record of the process groups a worker's tasks run in, kept under the worker's state
//! directory, so that a worker starting on a host kills what an earlier worker of the same
//! name left running.
//!
//! The supervisor (see `supervisor`) already kills a task's group when its worker dies. This
//! is the second line: for a supervisor killed together with its worker (the OOM killer, a
//! `kill -9` of every process of the user), and for platforms without a supervisor.
//!
//! One file per loop name, `worker-NAME.pids`, rewritten whole (a new file put in the old
//! one's place at once, see `replace`) whenever a task's group starts or ends:
//!
//! ```text
//! worker 4242 81234567        # the worker's pid and start time (clock ticks since boot)
//! group 5101 81239000 42.3    # each running task's process group, its leader's start
//!                             # time, and the task (`42.3`), for the log of whoever kills it
//! ```
//!
//! A record written before groups named their task (three words to a `group` line) reads
//! as well: the task is then unknown. Lines that do not parse are skipped.
//!
//! Pids get reused, so nothing is killed on the strength of a number alone. A recorded
//! worker that is still the same process (same start time) is alive: its record is left
//! alone (two live workers share a name; the server sorts that out). A recorded group is
//! killed only if its leader is still the process recorded, or, once the leader is gone, the
//! processes still in that group started after it (a group id is not reused while any member
//! lives). Linux reads this from `/proc`; elsewhere the record is kept but nothing is checked
//! or killed. On Windows nothing needs to be: each task's job object is made kill-on-close,
//! so the system kills its processes when the worker dies, whatever killed it.
//!
//! The files are small and the directory is local (the runtime directory or the temporary
//! directory unless set), so they are written with plain blocking calls.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tracing::{debug, info, warn};

/// A process as recorded: its id and when it started, which together name it for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    /// The process id (for a group: its id, which is its leader's pid).
    pid: i32,
    /// When it started, in clock ticks since boot (`/proc/PID/stat` field 22); 0 if unknown.
    started: u64,
}

/// The record of one loop's running task groups, on disk.
#[derive(Debug)]
pub(crate) struct GroupRecord {
    /// The file, `STATE_DIR/worker-NAME.pids`.
    path: PathBuf,
    /// This worker process, written first so a later worker can tell it is still alive.
    worker: Stamp,
    /// The groups of the running tasks, by group id, with their leaders' start times and
    /// their tasks' labels (`42.3`).
    groups: Mutex<BTreeMap<i32, (u64, String)>>,
    /// Groups whose task's run has ended (killed, or left to die) since the loop last took
    /// them, with their leaders' start times: the loop waits for them to empty before its
    /// slot runs anything else, since a SIGKILL lands only when the kernel schedules it.
    ended: Mutex<Vec<(i32, u64)>>,
}

/// A task's group in a [`GroupRecord`]; removed from it when dropped.
#[derive(Debug)]
pub(crate) struct Recorded {
    /// The record to remove the group from.
    record: Arc<GroupRecord>,
    /// The group's id.
    group: i32,
}

impl Drop for Recorded {
    fn drop(&mut self) {
        self.record.forget(self.group);
    }
}

/// The default state directory: `$XDG_RUNTIME_DIR/buildcat` (a per-user directory emptied
/// at reboot, as the processes it names are), else `buildcat-UID` in the temporary directory.
pub(crate) fn default_state_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(runtime) if !runtime.is_empty() => PathBuf::from(runtime).join("buildcat"),
        _ => std::env::temp_dir().join(format!("buildcat-{}", user_id())),
    }
}

/// This process's user id, to keep users' records apart in a shared temporary directory.
fn user_id() -> u32 {
    #[cfg(unix)]
    {
        // SAFETY: `getuid` has no preconditions and cannot fail.
        unsafe { libc::getuid() }
    }
    #[cfg(not(unix))]
    {
        0
    }
}

impl GroupRecord {
    /// The record of the loop named `name` under `dir`.
    pub(crate) fn new(dir: &Path, name: &str) -> Self {
        let file: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        GroupRecord {
            path: dir.join(format!("worker-{file}.pids")),
            worker: Stamp {
                pid,
                started: start_time(pid).unwrap_or(0),
            },
            groups: Mutex::new(BTreeMap::new()),
            ended: Mutex::new(Vec::new()),
        }
    }

    /// Kills what an earlier worker of this name left running, then claims the record for
    /// this worker. Returns how many groups were killed. Failures are logged, not fatal: a
    /// worker that cannot keep its record still runs tasks (their supervisors still tie them
    /// to it).
    pub(crate) fn reap_and_claim(&self) -> usize {
        if let Err(error) = prepare_dir(self.path.parent().unwrap_or(Path::new("."))) {
            warn!(
                path = %self.path.display(),
                %error,
                "cannot use the worker's state directory; leftovers of this worker will not \
                 be found by the next one (set another with --state-dir)"
            );
            return 0;
        }
        let killed = match fs::read_to_string(&self.path) {
            Ok(text) => self.reap(&text),
            Err(error) if error.kind() == io::ErrorKind::NotFound => 0,
            Err(error) => {
                warn!(path = %self.path.display(), %error, "cannot read the earlier worker's record");
                0
            }
        };
        self.write();
        killed
    }

    /// Kills the groups recorded in `text`, unless their worker is still alive.
    fn reap(&self, text: &str) -> usize {
        let mut worker = None;
        let mut groups = Vec::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(kind), Some(pid), Some(started)) = (words.next(), words.next(), words.next())
            else {
                continue;
            };
            let (Ok(pid), Ok(started)) = (pid.parse(), started.parse()) else {
                continue;
            };
            let stamp = Stamp { pid, started };
            match kind {
                "worker" => worker = Some(stamp),
                // Older records have no task after the start time.
                "group" => groups.push((stamp, words.next().unwrap_or("unknown").to_owned())),
                _ => {}
            }
        }
        // Alive (this very process included, where two workers of one name share it): its
        // groups are its own business.
        if let Some(earlier) = worker
            && is_same_process(earlier)
        {
            warn!(
                path = %self.path.display(),
                pid = earlier.pid,
                "another worker of this name is running on this host; leaving its tasks alone"
            );
            return 0;
        }
        let mut killed = 0;
        for (group, task) in groups {
            if kill_leftover(group, &task) {
                killed += 1;
            }
        }
        if killed > 0 {
            info!(
                groups = killed,
                "killed the tasks an earlier worker of this name left running"
            );
        }
        killed
    }

    /// Adds the group led by `leader` (a task's supervisor, or its program) to the record.
    /// `task` is the task as people name it (`42.3`); it must hold no whitespace.
    pub(crate) fn remember(self: &Arc<Self>, leader: u32, task: &str) -> Option<Recorded> {
        let group = i32::try_from(leader).ok()?;
        let started = start_time(group).unwrap_or(0);
        // One word on the line, whatever a label holds.
        let task: String = task
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .collect();
        self.groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(group, (started, task));
        self.write();
        Some(Recorded {
            record: Arc::clone(self),
            group,
        })
    }

    /// Removes a group whose task has ended.
    fn forget(&self, group: i32) {
        let removed = self
            .groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&group);
        if let Some((started, _)) = removed {
            self.ended
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((group, started));
        }
        self.write();
    }

    /// The groups whose runs ended since the last call, as (group id, leader's start time);
    /// their processes may still be dying (see [`has_live_members`]).
    pub(crate) fn take_ended(&self) -> Vec<(i32, u64)> {
        std::mem::take(&mut *self.ended.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Writes the record whole: a temporary file put in the old one's place at once (see
    /// [`replace`]), so a reader never sees half of it.
    fn write(&self) {
        let mut text = format!("worker {} {}\n", self.worker.pid, self.worker.started);
        {
            let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
            for (group, (started, task)) in groups.iter() {
                text.push_str(&format!("group {group} {started} {task}\n"));
            }
        }
        let temporary = self.path.with_extension("pids.new");
        if let Err(error) = replace(&temporary, &self.path, text.as_bytes()) {
            debug!(path = %self.path.display(), %error, "cannot write the worker's record");
        }
    }
}

/// Puts `bytes` at `path` whole, by way of `temporary`, so that a reader finds the old
/// record or the new one, never half of one.
///
/// Not by renaming over the old file: ext4 (its default `auto_da_alloc`) starts writing a
/// file out when a rename replaces another with it, and on a busy disk that held up each
/// task's start and end by milliseconds (p90 2.9 ms against 0.15 ms, issue 20). Swapping
/// the two names (`renameat2` with `RENAME_EXCHANGE`) is as atomic and starts nothing; the
/// old record, then under the temporary name, is removed. The temporary file is made
/// afresh each time, since truncating one that holds data starts the same write-out when
/// it is closed. Where the swap is not supported (an older kernel, another file system),
/// or there is no old record yet, a plain rename does it.
fn replace(temporary: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    match fs::remove_file(temporary) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    fs::write(temporary, bytes)?;
    #[cfg(target_os = "linux")]
    if exchange(temporary, path).is_ok() {
        // The old record: nothing reads it under this name.
        if let Err(error) = fs::remove_file(temporary) {
            debug!(path = %temporary.display(), %error, "cannot remove the worker's old record");
        }
        return Ok(());
    }
    fs::rename(temporary, path)
}

/// Swaps the names `a` and `b` at once (both must exist).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |path: &Path| {
        CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: two valid NUL-terminated paths that outlive the call; renameat2 only reads
    // them.
    let result = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes the state directory, private to this user; refuses one owned by someone else.
fn prepare_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        match fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
        {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
        let metadata = fs::symlink_metadata(dir)?;
        if !metadata.is_dir() || metadata.uid() != user_id() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} is not a directory of this user", dir.display()),
            ));
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir)
    }
}

/// What `/proc/PID/stat` says of a live process: its group and its start time.
#[cfg(target_os = "linux")]
fn stat(pid: i32) -> Option<(i32, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold anything; the fields follow the last ')'.
    let fields: Vec<&str> = text
        .get(text.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    // Field 3 (index 0 here) is the state: a zombie runs nothing.
    if matches!(fields.first(), Some(&("Z" | "X"))) {
        return None;
    }
    let group = fields.get(2)?.parse().ok()?;
    let started = fields.get(19)?.parse().ok()?;
    Some((group, started))
}

/// When process `pid` started, if it is alive.
fn start_time(pid: i32) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        stat(pid).map(|(_, started)| started)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// Whether the process recorded as `stamp` is still that process.
fn is_same_process(stamp: Stamp) -> bool {
    stamp.started != 0 && start_time(stamp.pid) == Some(stamp.started)
}

/// The live (not zombie) processes in `group` that started no earlier than its leader (a
/// group id is not reused while any member lives); `None` when `/proc` cannot be read.
#[cfg(target_os = "linux")]
fn members(group: Stamp) -> Option<Vec<i32>> {
    let entries = fs::read_dir("/proc").ok()?;
    Some(
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| {
                stat(pid).is_some_and(|(member_group, started)| {
                    member_group == group.pid && started >= group.started
                })
            })
            .collect(),
    )
}

/// Whether any process of the group `group` (whose leader started at `started`) is still
/// alive, a zombie not counting: it runs nothing and holds no memory, files or devices.
/// On Windows, whether the job object of the run whose program had pid `group` still has an
/// active process. False where this cannot be known (no `/proc`, no job).
pub(crate) fn has_live_members(group: i32, started: u64) -> bool {
    #[cfg(target_os = "linux")]
    {
        if group <= 1 {
            return false;
        }
        // SAFETY: signal 0 only checks whether the group has any process (zombies included).
        if unsafe { libc::kill(-group, 0) } != 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
        {
            return false;
        }
        members(Stamp {
            pid: group,
            started,
        })
        .is_some_and(|members| !members.is_empty())
    }
    // The job object the group's program ran in says (see `job_object`).
    #[cfg(windows)]
    {
        let _ = started;
        u32::try_from(group).is_ok_and(crate::job_object::has_live)
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        let _ = (group, started);
        false
    }
}

/// Kills the recorded group if it is still the task's; returns whether it killed anything.
#[cfg(target_os = "linux")]
fn kill_leftover(group: Stamp, task: &str) -> bool {
    let members: Vec<i32> = match stat(group.pid) {
        // The leader is alive: the group is the task's only if the leader is the one recorded.
        Some((leader_group, started)) => {
            if started != group.started || leader_group != group.pid {
                return false;
            }
            vec![group.pid]
        }
        // The leader is gone: the members that started after it are what is left of the task.
        None => match members(group) {
            Some(members) => members,
            None => return false,
        },
    };
    if members.is_empty() || group.pid <= 1 {
        return false;
    }
    warn!(
        task = %task,
        group = group.pid,
        processes = members.len(),
        "killing a task's processes that an earlier worker of this name left running"
    );
    // SAFETY: `kill` has no memory-safety preconditions; a negative pid addresses the group.
    unsafe { libc::kill(-group.pid, libc::SIGKILL) };
    true
}

/// Elsewhere nothing is checked, so nothing is killed.
#[cfg(not(target_os = "linux"))]
fn kill_leftover(_group: Stamp, _task: &str) -> bool {
    false
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_odd_command_names_parses() {
        let own = i32::try_from(std::process::id()).unwrap_or_else(|e| panic!("{e}"));
        let (group, started) = stat(own).unwrap_or_else(|| panic!("no stat for this process"));
        assert!(group > 0);
        assert!(started > 0);
        assert!(is_same_process(Stamp { pid: own, started }));
        assert!(!is_same_process(Stamp {
            pid: own,
            started: started + 1
        }));
    }

    #[test]
    fn a_record_names_the_worker_and_its_groups() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let record = Arc::new(GroupRecord::new(dir.path(), "render 01/a"));
        assert_eq!(record.reap_and_claim(), 0);
        let path = dir.path().join("worker-render_01_a.pids");
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text.lines().count(), 1, "{text}");
        let own = std::process::id();
        let held = record.remember(own, "42.3");
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        let started = start_time(i32::try_from(own).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|| panic!("no start time"));
        assert!(
            text.contains(&format!("group {own} {started} 42.3\n")),
            "{text}"
        );
        drop(held);
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!text.contains("group"), "{text}");
        // Only the record: no temporary file left beside it.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|entry| {
                entry
                    .map(|e| e.file_name())
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("worker-render_01_a.pids")]
        );
    }

    #[test]
    fn a_record_replaces_the_old_one_whole() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("worker-w.pids");
        let temporary = dir.path().join("worker-w.pids.new");
        // A first record (nothing to swap with), a longer one, a shorter one, and one over a
        // temporary file a crash left behind.
        for text in [
            "worker 1 2\n",
            "worker 1 2\ngroup 3 4 5.6\n",
            "worker 7 8\n",
        ] {
            replace(&temporary, &path, text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}")),
                text
            );
            assert!(!temporary.exists());
        }
        fs::write(&temporary, "left by a crash, longer than the record\n")
            .unwrap_or_else(|e| panic!("{e}"));
        replace(&temporary, &path, b"worker 9 9\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}")),
            "worker 9 9\n"
        );
    }

    #[test]
    fn a_live_worker_of_the_same_name_is_left_alone() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let record = GroupRecord::new(dir.path(), "w");
        // This very process, under another pid's guise: the recorded worker is alive.
        let own = i32::try_from(std::process::id()).unwrap_or_else(|e| panic!("{e}"));
        let started = start_time(own).unwrap_or_else(|| panic!("no start time"));
        let parent =
            i32::try_from(std::os::unix::process::parent_id()).unwrap_or_else(|e| panic!("{e}"));
        let parent_started = start_time(parent).unwrap_or_else(|| panic!("no start time"));
        // A record whose worker is the test's parent (alive) and whose group is ours.
        let text = format!("worker {parent} {parent_started}\ngroup {own} {started}\n");
        assert_eq!(record.reap(&text), 0);
    }

    #[test]
    fn a_recorded_pid_that_was_reused_is_not_killed() {
        let own = i32::try_from(std::process::id()).unwrap_or_else(|e| panic!("{e}"));
        let started = start_time(own).unwrap_or_else(|| panic!("no start time"));
        // Same number, another start time: not the recorded process.
        let reused = Stamp {
            pid: own,
            started: started + 1,
        };
        assert!(!kill_leftover(reused, "42.3"));
    }

    /// Kills a group that `record` (a format string with `{group}` and `{started}` for the
    /// leftover's group) says a dead worker left, and checks it died.
    fn check_leftover_killed(record: &str) {
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut leftover = std::process::Command::new("sh")
            .args(["-c", "sleep 1000 & wait"])
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sh: {e}"));
        let group = i32::try_from(leftover.id()).unwrap_or_else(|e| panic!("{e}"));
        let started = start_time(group).unwrap_or_else(|| panic!("no start time"));
        let text = record
            .replace("{group}", &group.to_string())
            .replace("{started}", &started.to_string());
        fs::write(dir.path().join("worker-w.pids"), text).unwrap_or_else(|e| panic!("{e}"));
        let record = GroupRecord::new(dir.path(), "w");
        assert_eq!(record.reap_and_claim(), 1);
        let status = leftover.wait().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn a_record_naming_tasks_is_reaped() {
        // The earlier worker: a pid with a start time no live process has.
        check_leftover_killed("worker {group} 1\ngroup {group} {started} 42.3\n");
    }

    /// A record written before groups named their task, with a line this version cannot
    /// read, still reaps what it can.
    #[test]
    fn a_record_of_the_older_form_is_reaped() {
        check_leftover_killed("worker {group} 1\ngroup {group} {started}\ngroup x\n");
    }
}
