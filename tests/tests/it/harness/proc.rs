//! Processes that outlive one call: servers and workers with their logs in files
//! ([`Proc`]), and commands whose stdout is read line by line while they run
//! ([`Streaming`]). Both are killed on drop.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::{poll_until, poll_within};

/// What Rust prints when a thread panics (`thread 'NAME' panicked at FILE:LINE`), and what
/// the server says when one of its threads did: no log of a process the harness started may
/// contain it.
const PANIC_MARK: &str = "panicked";

/// Numbers log files, so that every process of a test gets its own.
static NEXT_LOG: AtomicUsize = AtomicUsize::new(1);

/// A long-running `buildcat` process (server or worker), killed on drop. Its stdout and
/// stderr go to files so that a failing test can show them.
#[derive(Debug)]
pub struct Proc {
    /// What it is, for messages: `server`, `worker w1`.
    name: String,
    /// The process.
    child: Child,
    /// Where its stdout goes.
    stdout: PathBuf,
    /// Where its stderr (its log) goes.
    stderr: PathBuf,
    /// How it ended, once it has.
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `command`, with its output in files under `log_dir`.
    pub fn spawn(name: &str, mut command: Command, log_dir: &Path) -> Proc {
        let number = NEXT_LOG.fetch_add(1, Ordering::Relaxed);
        let stem: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let stdout = log_dir.join(format!("{number:03}-{stem}.stdout"));
        let stderr = log_dir.join(format!("{number:03}-{stem}.stderr"));
        let create = |path: &Path| {
            File::create(path)
                .unwrap_or_else(|error| panic!("could not create {}: {error}", path.display()))
        };
        command.stdout(create(&stdout)).stderr(create(&stderr));
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("could not start {name} ({command:?}): {error}"));
        Proc {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
            status: None,
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// What it has logged so far (its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The file its stderr goes to, for a probe that reads its log while it is waited on.
    pub fn log_path(&self) -> PathBuf {
        self.stderr.clone()
    }

    /// Its status, stdout and stderr so far, for failure messages.
    pub fn logs(&self) -> String {
        let stdout = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        let status = self
            .status
            .map_or_else(|| "running".to_owned(), |status| status.to_string());
        format!(
            "=== {} (pid {}, {status}) stdout ===\n{stdout}\n=== {} stderr ===\n{}",
            self.name,
            self.id(),
            self.name,
            self.log()
        )
    }

    /// How it ended, or `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .unwrap_or_else(|error| panic!("could not check on {}: {error}", self.name));
        }
        self.status
    }

    /// Fails the test, showing the logs, if the process has exited.
    #[track_caller]
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!("{} exited ({status})\n{}", self.name, self.logs());
        }
    }

    /// Waits for the process to exit by itself; fails the test if it runs past `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let what = format!("{} to exit", self.name);
        poll_within(limit, &what, || self.exited().ok_or_else(|| self.logs()))
    }

    /// Waits until its log contains `text`; fails the test if it exits first or the wait
    /// runs past [`PATIENCE`].
    pub fn wait_for_log(&mut self, text: &str) {
        let what = format!("{} to log {text:?}", self.name);
        poll_until(&what, || {
            self.assert_running();
            if self.log().contains(text) {
                Ok(())
            } else {
                Err(self.logs())
            }
        });
    }

    /// Waits until `probe` says the process is ready (e.g. its port accepts connections);
    /// `Err` with its logs if it exits first, a failed test if it takes past [`PATIENCE`].
    pub fn wait_until(
        &mut self,
        what: &str,
        mut probe: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let what = format!("{} to be {what}", self.name);
        poll_until(&what, || {
            // Exited first: a probe must not be answered by another process that took the
            // port in the meantime.
            if self.exited().is_some() {
                Ok(Err(self.logs()))
            } else if probe() {
                Ok(Ok(()))
            } else {
                Err(self.logs())
            }
        })
    }

    /// Kills it at once (SIGKILL, no chance to clean up) and reaps it.
    pub fn kill(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Proc {
    /// Kills the process, then fails the test if its log shows a panic: a server or worker
    /// that panicked (even in a task it survived) is a bug whatever the test checked.
    fn drop(&mut self) {
        self.kill();
        // A second panic while a test is already failing would abort the test binary.
        if thread::panicking() {
            return;
        }
        let log = self.log();
        if let Some(line) = log.lines().find(|line| line.contains(PANIC_MARK)) {
            panic!("{} logged a panic: {line}\n{}", self.name, self.logs());
        }
    }
}

/// A command whose stdout is read line by line while it runs (`logs --follow`, `eta`);
/// killed on drop.
#[derive(Debug)]
pub struct Streaming {
    /// What it is, for messages.
    what: String,
    /// The process.
    child: Child,
    /// Its stdout, a line at a time; closed at end of file.
    lines: mpsc::Receiver<String>,
    /// The lines handed out so far, for messages.
    seen: Vec<String>,
    /// Its stderr, as it comes.
    stderr: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Streaming {
    /// Starts `command` with its stdout and stderr piped.
    pub fn spawn(what: &str, mut command: Command) -> Streaming {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("could not start {what} ({command:?}): {error}"));
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let sink = std::sync::Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(count @ 1..) = pipe.read(&mut buffer) {
                sink.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend_from_slice(&buffer[..count]);
            }
        });
        Streaming {
            what: what.to_owned(),
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// What it printed so far, for failure messages.
    pub fn describe(&self) -> String {
        let stderr = self
            .stderr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        format!(
            "{}: lines so far: {:?}\n--- stderr ---\n{}",
            self.what,
            self.seen,
            String::from_utf8_lossy(&stderr)
        )
    }

    /// The next line of stdout; fails the test if none comes within `limit` or stdout ends.
    #[track_caller]
    pub fn next_line(&mut self, limit: Duration) -> String {
        match self.lines.recv_timeout(limit) {
            Ok(line) => {
                self.seen.push(line.clone());
                line
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("no line within {limit:?}\n{}", self.describe())
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.try_wait().ok().flatten();
                panic!(
                    "stdout ended (status {status:?}) before the next line\n{}",
                    self.describe()
                )
            }
        }
    }

    /// Waits for the process to exit by itself and for its stdout to end; returns its status
    /// and the lines it printed that were not handed out yet. Fails the test after `limit`.
    #[track_caller]
    pub fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + limit;
        let mut rest = Vec::new();
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => rest.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "{} did not end within {limit:?}; extra lines {rest:?}\n{}",
                        self.what,
                        self.describe()
                    )
                }
            }
        }
        let what = format!("{} to exit after closing its stdout", self.what);
        let remaining = deadline.saturating_duration_since(Instant::now());
        let status = poll_within(remaining, &what, || {
            let status = self
                .child
                .try_wait()
                .unwrap_or_else(|error| panic!("could not check on {}: {error}", self.what));
            status.ok_or_else(|| self.describe())
        });
        (status, rest)
    }

    /// Kills it (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Guards the harness's panic check (issue 9 item 9: a server panic went unnoticed while the
/// tests passed): a process whose log shows a panic fails the test when it is dropped.
#[test]
#[should_panic(expected = "logged a panic")]
fn a_panic_in_a_log_fails_the_test() {
    let dir = tempfile::tempdir().expect("could not make a temporary directory");
    let mut command = Command::new("sh");
    command.args([
        "-c",
        "echo \"thread 'main' panicked at src/main.rs:1:1:\" >&2; exec sleep 1000",
    ]);
    let mut process = Proc::spawn("panicking", command, dir.path());
    process.wait_for_log("panicked at");
    drop(process);
}
