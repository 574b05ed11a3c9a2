//! Helpers that run the real `buildcat` binary: finding (or building) it and the examples,
//! free loopback ports, guards that kill servers and workers on drop and keep their logs,
//! client commands with a deadline, commands whose output is read as it comes, polling
//! `buildcat info --json` or `buildcat status --json` until the farm or a job looks as
//! expected, and finding a job's processes by a marker in their command line.
//!
//! Nothing here sleeps to let something happen: a wait either polls an observable condition
//! (a port that accepts, a line in a log, the output of `info` or `status`, the process
//! table) under [`PATIENCE`], or waits for a process to exit.

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// How long anything a test waits for may take before the test fails. Generous, because a
/// two-core machine runs every test of this binary at once; a passing test never waits it
/// out.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// How often a poll looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Environment variables the binary reads that must not leak from the developer's shell into
/// a test.
const AMBIENT: [&str; 4] = [
    "BUILDCAT_HOST",
    "BUILDCAT_PORT",
    "BUILDCAT_ROOT",
    "RUST_LOG",
];

/// The `buildcat` binary under test: `BUILDCAT_BIN` if set, otherwise built once per test
/// process with the profile of this test binary. A failed build is remembered, so every
/// test reports the same failure instead of building again.
pub fn buildcat() -> &'static Path {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let binary = BINARY.get_or_init(|| match std::env::var_os("BUILDCAT_BIN") {
        Some(path) => Ok(PathBuf::from(path)),
        None => build_buildcat(),
    });
    match binary {
        Ok(path) => path,
        Err(reason) => panic!("{reason}"),
    }
}

/// Runs `cargo build -p buildcat-cli --bin buildcat` into this test binary's target
/// directory and returns the binary's path, or why there is none.
fn build_buildcat() -> Result<PathBuf, String> {
    let profile_dir = cargo_build(&["-p", "buildcat-cli", "--bin", "buildcat"])?;
    let binary = profile_dir.join(format!("buildcat{}", std::env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        return Err(format!(
            "building buildcat succeeded but {} does not exist",
            binary.display()
        ));
    }
    Ok(binary)
}

/// An example program of the `buildcat-examples` package (`submit_batch`, `custom_worker`):
/// from `BUILDCAT_EXAMPLES_DIR` if set, otherwise built once per test process (`cargo build
/// -p buildcat-examples --examples`) with the profile of this test binary.
pub fn example(name: &str) -> PathBuf {
    static EXAMPLES: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = EXAMPLES.get_or_init(|| match std::env::var_os("BUILDCAT_EXAMPLES_DIR") {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => cargo_build(&["-p", "buildcat-examples", "--examples"])
            .map(|profile_dir| profile_dir.join("examples")),
    });
    let dir = match dir {
        Ok(dir) => dir,
        Err(reason) => panic!("{reason}"),
    };
    let program = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        program.is_file(),
        "the example {name} was built but {} does not exist",
        program.display()
    );
    program
}

/// Runs `cargo build --quiet ARGS` in the workspace, into this test binary's target
/// directory and with its profile; returns the profile directory (`target/debug`), or why
/// the build failed.
fn cargo_build(args: &[&str]) -> Result<PathBuf, String> {
    let profile_dir = profile_dir();
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("{} has no parent", profile_dir.display()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package lives in the workspace");
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--quiet"])
        .args(args)
        .arg("--target-dir")
        .arg(target_dir);
    match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
    }
    let output = command
        .output()
        .map_err(|error| format!("could not run {command:?}: {error}"))?;
    if !output.status.success() {
        return Err(format!("{command:?} failed:\n{}", describe(&output)));
    }
    Ok(profile_dir)
}

/// `target/<profile>`: two levels up from this test binary (`target/debug/deps/it-xxxx`),
/// or `$CARGO_TARGET_DIR/debug` when the binary is somewhere unexpected.
fn profile_dir() -> PathBuf {
    let from_exe = std::env::current_exe().ok().and_then(|exe| {
        let deps = exe.parent()?;
        (deps.file_name()? == "deps").then(|| deps.parent().map(Path::to_path_buf))?
    });
    from_exe.unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
        PathBuf::from(target).join("debug")
    })
}

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
fn hygiene(command: &mut Command) {
    for name in AMBIENT {
        command.env_remove(name);
    }
    command.env("NO_COLOR", "1").stdin(Stdio::null());
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
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {limit:?}\n{}",
                self.name,
                self.logs()
            );
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until its log contains `text`; fails the test if it exits first or the wait
    /// runs past [`PATIENCE`].
    pub fn wait_for_log(&mut self, text: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.log().contains(text) {
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "{} did not log {text:?} within {PATIENCE:?}\n{}",
                self.name,
                self.logs()
            );
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until `probe` says the process is ready (e.g. its port accepts connections);
    /// `Err` with its logs if it exits first, a failed test if it takes past [`PATIENCE`].
    pub fn wait_until(
        &mut self,
        what: &str,
        mut probe: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            // Exited first: a probe must not be answered by another process that took the
            // port in the meantime.
            if self.exited().is_some() {
                return Err(self.logs());
            }
            if probe() {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "{} was not {what} within {PATIENCE:?}\n{}",
                self.name,
                self.logs()
            );
            thread::sleep(POLL_INTERVAL);
        }
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
    fn drop(&mut self) {
        self.kill();
    }
}

/// How to run client commands against one server: a command prefix (empty, or e.g.
/// `ip netns exec NS`), the server's host and its port.
#[derive(Debug, Clone)]
pub struct Client {
    /// Program and arguments that wrap `buildcat`, e.g. `["ip", "netns", "exec", "bc-cli"]`.
    prefix: Vec<OsString>,
    /// The `--host` given to every command.
    host: String,
    /// The `--port` given to every command.
    port: u16,
}

impl Client {
    /// A client on this host for a server on `127.0.0.1:port`.
    pub fn local(port: u16) -> Client {
        Client {
            prefix: Vec::new(),
            host: "127.0.0.1".to_owned(),
            port,
        }
    }

    /// A client that runs every command through `prefix` for a server at `host:port`.
    pub fn wrapped(prefix: &[&str], host: &str, port: u16) -> Client {
        Client {
            prefix: prefix.iter().map(OsString::from).collect(),
            host: host.to_owned(),
            port,
        }
    }

    /// `buildcat SUBCOMMAND --host H --port P REST...`, through the prefix.
    pub fn command(&self, args: &[&str]) -> Command {
        let (subcommand, rest) = args.split_first().expect("a subcommand");
        let mut command = match self.prefix.split_first() {
            Some((program, prefix_args)) => {
                let mut command = Command::new(program);
                command.args(prefix_args).arg(buildcat());
                command
            }
            None => Command::new(buildcat()),
        };
        command
            .arg(subcommand)
            .args(["--host", &self.host, "--port", &self.port.to_string()])
            .args(rest);
        hygiene(&mut command);
        command
    }

    /// Runs `buildcat ARGS` (with `--host` and `--port`) and returns what it printed.
    pub fn run(&self, args: &[&str]) -> Output {
        run_command(self.command(args), PATIENCE)
    }

    /// `buildcat info --json`, parsed; fails the test (showing `server`'s logs) if it fails.
    pub fn info(&self, server: &Proc) -> Value {
        let output = self.run(&["info", "--json"]);
        assert!(
            output.status.success(),
            "`buildcat info --json` failed\n{}\n{}",
            describe(&output),
            server.logs()
        );
        json(&output)
    }

    /// Polls `buildcat info --json` until `condition` holds and returns that view of the
    /// farm; fails the test with the last output and `server`'s logs after [`PATIENCE`].
    pub fn wait_for_info(
        &self,
        server: &Proc,
        what: &str,
        condition: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let output = self.run(&["info", "--json"]);
            let info = output
                .status
                .success()
                .then(|| serde_json::from_slice::<Value>(&output.stdout).ok())
                .flatten();
            if let Some(info) = info.filter(|info| condition(info)) {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "the farm did not reach `{what}` within {PATIENCE:?}\nlast `buildcat info --json`:\n{}\n{}",
                describe(&output),
                server.logs()
            );
            thread::sleep(POLL_INTERVAL);
        }
    }
}

/// A farm on this host: a temporary directory (storage, worker roots, logs), a loopback port
/// and, once started, a `buildcat server` on it.
#[derive(Debug)]
pub struct Farm {
    /// The server, while it runs. Declared first so it is killed before the directory goes.
    server: Option<Proc>,
    /// Runs client commands against the server.
    pub client: Client,
    /// The server's port.
    pub port: u16,
    /// The canonical path of `dir`.
    path: PathBuf,
    /// Extra arguments of every `buildcat server` this farm starts.
    server_args: Vec<String>,
    /// The server's storage: `buildcat.db` in `dir` unless a test puts it elsewhere (on a
    /// small or read-only file system).
    storage: PathBuf,
    /// Storage, roots and logs; removed on drop.
    _dir: TempDir,
}

impl Farm {
    /// A farm with its server started and accepting connections.
    pub fn start() -> Farm {
        Farm::start_with(&[])
    }

    /// A farm whose server is started with `server_args` added (e.g. `--reconnect-grace
    /// 1`), accepting connections.
    pub fn start_with(server_args: &[&str]) -> Farm {
        let mut farm = Farm::without_server();
        farm.server_args = server_args.iter().map(|&arg| arg.to_owned()).collect();
        // The port was free when picked, but another process may take it before the server
        // binds it; only then is a new port worth a try.
        for _ in 0..3 {
            match farm.try_start_server() {
                Ok(()) => return farm,
                Err(logs) if logs.contains("could not listen") => {
                    farm.port = free_port();
                    farm.client = Client::local(farm.port);
                }
                Err(logs) => panic!("the server exited during startup\n{logs}"),
            }
        }
        panic!("the server could not listen on three free ports in a row");
    }

    /// A farm whose server is not started yet (its port is chosen).
    pub fn without_server() -> Farm {
        let dir = tempfile::Builder::new()
            .prefix("buildcat-it-")
            .tempdir()
            .expect("could not make a temporary directory");
        let path = canonical(dir.path());
        let port = free_port();
        Farm {
            server: None,
            client: Client::local(port),
            port,
            storage: path.join("buildcat.db"),
            path,
            server_args: Vec::new(),
            _dir: dir,
        }
    }

    /// The farm's temporary directory (canonical).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The server's SQLite file.
    pub fn storage(&self) -> PathBuf {
        self.storage.clone()
    }

    /// Puts the storage of servers started from now on at `path`.
    pub fn set_storage(&mut self, path: &Path) {
        self.storage = path.to_owned();
    }

    /// A new directory under the farm's, canonical.
    pub fn make_dir(&self, name: &str) -> PathBuf {
        let dir = self.path.join(name);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|error| panic!("could not create {}: {error}", dir.display()));
        canonical(&dir)
    }

    /// Starts the server on the farm's port and storage; fails the test if it does not
    /// come up.
    pub fn start_server(&mut self) {
        if let Err(logs) = self.try_start_server() {
            panic!("the server exited during startup\n{logs}");
        }
    }

    /// Starts the server and waits until its port accepts connections; `Err` with its logs
    /// if it exits first.
    fn try_start_server(&mut self) -> Result<(), String> {
        assert!(self.server.is_none(), "the server is already running");
        let port = self.port.to_string();
        let storage = self.storage();
        let mut command = buildcat_command([
            "server".as_ref(),
            "--port".as_ref(),
            port.as_ref(),
            "--storage".as_ref(),
            storage.as_os_str(),
        ]);
        command.args(&self.server_args);
        let mut server = Proc::spawn("server", command, &self.path);
        let addr = ("127.0.0.1", self.port);
        server.wait_until("accepting connections", || TcpStream::connect(addr).is_ok())?;
        self.server = Some(server);
        Ok(())
    }

    /// The server process; fails the test if it is not running.
    #[track_caller]
    pub fn server(&mut self) -> &mut Proc {
        let server = self.server.as_mut().expect("the server is not started");
        server.assert_running();
        server
    }

    /// The server's logs, or a note that there is no server.
    pub fn server_logs(&self) -> String {
        self.server
            .as_ref()
            .map_or_else(|| "(no server running)".to_owned(), Proc::logs)
    }

    /// Kills the server with SIGKILL (no graceful shutdown) and waits until it is gone.
    pub fn kill_server(&mut self) {
        let mut server = self.server.take().expect("the server is not started");
        server.assert_running();
        server.kill();
    }

    /// Starts `buildcat worker --port P ARGS...` (or another long-running subcommand when
    /// `args` starts with one, such as `workers`) in the farm's directory.
    pub fn worker(&self, args: &[&str]) -> Proc {
        self.worker_in(&self.path, args)
    }

    /// Like [`Farm::worker`], with `dir` as the current directory.
    pub fn worker_in(&self, dir: &Path, args: &[&str]) -> Proc {
        let (subcommand, rest) = match args.first() {
            Some(&"workers") => ("workers", &args[1..]),
            _ => ("worker", args),
        };
        let mut command = buildcat_command([subcommand, "--port", &self.port.to_string()]);
        command.args(rest).current_dir(dir);
        let name = format!("{subcommand} {}", rest.join(" "));
        Proc::spawn(name.trim(), command, &self.path)
    }

    /// Runs `buildcat ARGS` against the server (see [`Client::run`]).
    pub fn run(&self, args: &[&str]) -> Output {
        self.client.run(args)
    }

    /// `buildcat info --json`, parsed.
    pub fn info(&self) -> Value {
        let server = self.server.as_ref().expect("the server is not started");
        self.client.info(server)
    }

    /// Polls `buildcat info --json` until `condition` holds (see [`Client::wait_for_info`]).
    pub fn wait_for_info(&self, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
        let server = self.server.as_ref().expect("the server is not started");
        self.client.wait_for_info(server, what, condition)
    }

    /// `buildcat run ARGS` (options, `--`, the program and its arguments) without
    /// `--wait`: returns the id it printed; fails the test if it fails.
    #[track_caller]
    pub fn submit(&self, args: &[&str]) -> String {
        let mut full = vec!["run"];
        full.extend_from_slice(args);
        let output = self.run(&full);
        assert!(
            output.status.success(),
            "`buildcat {}` failed\n{}\n{}",
            full.join(" "),
            describe(&output),
            self.server_logs()
        );
        job_id(&output)
    }

    /// `buildcat status JOB --json`, parsed; fails the test if it fails.
    #[track_caller]
    pub fn status(&self, job: &str) -> Value {
        let output = self.run(&["status", job, "--json"]);
        assert!(
            output.status.success(),
            "`buildcat status {job} --json` failed\n{}\n{}",
            describe(&output),
            self.server_logs()
        );
        json(&output)
    }

    /// Polls `buildcat status JOB --json` until `condition` holds and returns that record;
    /// fails the test with the last record and the server's logs after [`PATIENCE`].
    pub fn wait_for_status(
        &self,
        job: &str,
        what: &str,
        condition: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = self.status(job);
            if condition(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "job {job} did not reach `{what}` within {PATIENCE:?}\nlast status: {status:#}\n{}",
                self.server_logs()
            );
            thread::sleep(POLL_INTERVAL);
        }
    }
}

/// The job id a `buildcat run` (without `--json`) printed: its first line of stdout.
#[track_caller]
pub fn job_id(output: &Output) -> String {
    let printed = stdout(output);
    let id = printed.lines().next().unwrap_or_default().trim().to_owned();
    assert_eq!(
        id.len(),
        36,
        "no job id on the first line of stdout\n{}",
        describe(output)
    );
    id
}

/// Queue `name` in an `info --json` view, if it has any jobs.
pub fn queue<'a>(info: &'a Value, name: &str) -> Option<&'a Value> {
    info["queues"]
        .as_array()?
        .iter()
        .find(|queue| queue["name"] == name)
}

/// How many jobs of queue `name` are in `state`; `None` if the queue is not listed.
pub fn count(info: &Value, name: &str, state: &str) -> Option<u64> {
    queue(info, name).map(|queue| {
        queue[state]
            .as_u64()
            .unwrap_or_else(|| panic!("queue {name} has no count `{state}`: {queue}"))
    })
}

/// Worker `name` in an `info --json` view, if it is connected.
pub fn worker<'a>(info: &'a Value, name: &str) -> Option<&'a Value> {
    info["workers"]
        .as_array()?
        .iter()
        .find(|worker| worker["name"] == name)
}

/// How many workers an `info --json` view lists.
pub fn worker_count(info: &Value) -> usize {
    info["workers"].as_array().map_or(0, Vec::len)
}

/// The string at `pointer` (e.g. `/worker/root`) in a JSON value; fails the test if absent.
#[track_caller]
pub fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value:#}"))
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
        loop {
            let status = self
                .child
                .try_wait()
                .unwrap_or_else(|error| panic!("could not check on {}: {error}", self.what));
            if let Some(status) = status {
                return (status, rest);
            }
            assert!(
                Instant::now() < deadline,
                "{} closed its stdout but did not exit within {limit:?}\n{}",
                self.what,
                self.describe()
            );
            thread::sleep(POLL_INTERVAL);
        }
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
        let deadline = Instant::now() + PATIENCE;
        loop {
            let pids = self.pids();
            if pids.len() == count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: expected {count} processes running `sleep {}` within {PATIENCE:?}, \
                 found {pids:?}",
                self.arg
            );
            thread::sleep(POLL_INTERVAL);
        }
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
