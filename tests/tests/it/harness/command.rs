//! Running commands: the hygiene every `buildcat` command gets, running one to completion
//! under a deadline, and reading what it printed.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::buildcat;

/// Environment variables the binary reads that must not leak from the developer's shell into
/// a test.
const AMBIENT: [&str; 8] = [
    "BUILDCAT_HOST",
    "BUILDCAT_PORT",
    "BUILDCAT_ROOT",
    "BUILDCAT_TLS",
    "BUILDCAT_TLS_CA",
    "BUILDCAT_TLS_CERT",
    "BUILDCAT_TLS_KEY",
    "RUST_LOG",
];
/// A `buildcat` command with none of the ambient settings of the shell that runs the tests,
/// and logs without colour codes, so the log files read well in a failure message.
pub fn buildcat_command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = Command::new(buildcat());
    command.args(args);
    hygiene(&mut command);
    command
}

/// `program ARGS` (another program than `buildcat`, e.g. an example) with the same hygiene as
/// [`buildcat_command`].
pub fn program_command<I, S>(program: &Path, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = Command::new(program);
    command.args(args);
    hygiene(&mut command);
    command
}

/// Removes the ambient settings from `command` and turns colours off.
pub(super) fn hygiene(command: &mut Command) {
    for name in AMBIENT {
        command.env_remove(name);
    }
    // No config file of the user's (an empty BUILDCAT_CONFIG reads none); a test that
    // wants one sets BUILDCAT_CONFIG after this.
    command
        .env("BUILDCAT_CONFIG", "")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
}

/// A loopback port nothing listens on right now: bind port 0, read the port, let it go.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("could not bind a loopback port");
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}

/// A directory's canonical path (temporary directories may sit behind symlinks).
pub fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .unwrap_or_else(|error| panic!("could not canonicalize {}: {error}", path.display()))
}

/// Runs `command` to completion and returns what it printed; kills it and fails the test if
/// it takes longer than `limit`.
pub fn run_command(mut command: Command, limit: Duration) -> Output {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("could not start {command:?}: {error}"));
    // Both pipes are drained on their own threads (a full pipe would stall the child); both
    // reach end of file when the child exits, which is the event waited for.
    let (sender, receiver) = mpsc::channel();
    let drain = |pipe: Option<Box<dyn Read + Send>>, which: usize| {
        let sender = sender.clone();
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            let _ = sender.send((which, bytes));
        });
    };
    drain(child.stdout.take().map(|p| Box::new(p) as _), 0);
    drain(child.stderr.take().map(|p| Box::new(p) as _), 1);
    drop(sender);
    let deadline = Instant::now() + limit;
    let mut streams = [Vec::new(), Vec::new()];
    let mut timed_out = false;
    for _ in 0..2 {
        let received =
            match receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(received) => received,
                Err(_) => {
                    timed_out = true;
                    let _ = child.kill();
                    receiver
                        .recv()
                        .expect("the pipe readers finish once the child is killed")
                }
            };
        streams[received.0] = received.1;
    }
    let status = child
        .wait()
        .unwrap_or_else(|error| panic!("could not wait for {command:?}: {error}"));
    let [stdout, stderr] = streams;
    let output = Output {
        status,
        stdout,
        stderr,
    };
    assert!(
        !timed_out,
        "{command:?} did not finish within {limit:?}; killed it\n{}",
        describe(&output)
    );
    output
}

/// An output's status, stdout and stderr, for failure messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Fails the test, showing the output, unless the command succeeded.
#[track_caller]
pub fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed\n{}",
        describe(output)
    );
}

/// Stdout parsed as JSON; fails the test (showing the output) if it is not.
#[track_caller]
pub fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("stdout is not JSON ({error})\n{}", describe(output)))
}
