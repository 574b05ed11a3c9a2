//! Finding a job's processes by a marker in their command line: [`Sleeper`] and
//! [`processes_running`].

use super::poll_until;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Numbers [`Sleeper`] markers within this test process.
static NEXT_SLEEPER: AtomicUsize = AtomicUsize::new(1);

/// A `sleep` argument no other process uses (`1000.PIDNNNN`: a long sleep, with digits that
/// are this test's alone), to find the processes a job started by their command line and to
/// tell whether they are gone. Whatever is left of them is killed on drop.
#[derive(Debug)]
pub struct Sleeper {
    /// The argument.
    arg: String,
}

impl Sleeper {
    /// A new marker.
    pub fn new() -> Sleeper {
        let number = NEXT_SLEEPER.fetch_add(1, Ordering::Relaxed);
        Sleeper {
            arg: format!("1000.{}{number:04}", std::process::id()),
        }
    }

    /// The argument to give `sleep`.
    pub fn arg(&self) -> &str {
        &self.arg
    }

    /// The processes running `sleep ARG` now.
    pub fn pids(&self) -> Vec<u32> {
        processes_running(&["sleep", &self.arg])
    }

    /// Waits until exactly `count` processes run `sleep ARG`; fails the test after
    /// [`PATIENCE`].
    #[track_caller]
    pub fn wait_for(&self, count: usize, what: &str) {
        let what = format!("{what}: {count} processes running `sleep {}`", self.arg);
        poll_until(&what, || {
            let pids = self.pids();
            if pids.len() == count {
                Ok(())
            } else {
                Err(format!("found {pids:?}"))
            }
        });
    }
}

impl Default for Sleeper {
    fn default() -> Self {
        Sleeper::new()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        for pid in self.pids() {
            let Ok(pid) = libc::pid_t::try_from(pid) else {
                continue;
            };
            // SAFETY: `kill` has no memory-safety preconditions; `pid` is a single process
            // (positive) found running this test's own marker.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// The ids of the processes whose whole command line is `argv`.
#[cfg(target_os = "linux")]
pub fn processes_running(argv: &[&str]) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let wanted: Vec<&[u8]> = argv.iter().map(|arg| arg.as_bytes()).collect();
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // A process that exited meanwhile, or a zombie (empty command line), does not
            // match.
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                let args: Vec<&[u8]> = cmdline
                    .strip_suffix(b"\0")
                    .unwrap_or(&cmdline)
                    .split(|&byte| byte == 0)
                    .collect();
                args == wanted
            })
        })
        .collect()
}

/// The ids of the processes whose whole command line is `argv` (from `ps`).
#[cfg(not(target_os = "linux"))]
pub fn processes_running(argv: &[&str]) -> Vec<u32> {
    let wanted = argv.join(" ");
    let Ok(output) = Command::new("ps").args(["-A", "-o", "pid=,args="]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (pid, args) = line.trim().split_once(' ')?;
            (args.trim() == wanted).then(|| pid.parse().ok())?
        })
        .collect()
}
