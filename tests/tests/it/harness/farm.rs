//! A farm on this host ([`Farm`]: a temporary directory, a port, a server and its
//! workers) and the client commands run against a server ([`Client`]).

use std::ffi::OsString;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

use super::command::hygiene;
use super::{
    Later, PATIENCE, Proc, buildcat, buildcat_command, canonical, describe, free_port, job_number,
    json, poll_until, run_command, task_handle,
};

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
        let what = format!("the farm to reach `{what}`");
        poll_until(&what, || {
            let output = self.run(&["info", "--json"]);
            let info = output
                .status
                .success()
                .then(|| serde_json::from_slice::<Value>(&output.stdout).ok())
                .flatten();
            info.filter(|info| condition(info)).ok_or(Later(move || {
                format!(
                    "last `buildcat info --json`:\n{}\n{}",
                    describe(&output),
                    server.logs()
                )
            }))
        })
    }
}

/// What a server on PostgreSQL logs once it holds the database and is about to serve.
const ACTIVE_LOG: &str = "active server of the database";

/// Whether `storage` names a PostgreSQL database rather than a SQLite file.
fn is_postgres(storage: &Path) -> bool {
    storage
        .to_str()
        .is_some_and(|text| text.starts_with("postgresql://") || text.starts_with("postgres://"))
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
        // One switch runs the whole suite on PostgreSQL: each farm a database of its own.
        let storage = if super::postgres::switched_to_postgres() {
            PathBuf::from(super::postgres::shared_database())
        } else {
            path.join("buildcat.db")
        };
        Farm {
            server: None,
            client: Client::local(port),
            port,
            storage,
            path,
            server_args: Vec::new(),
            _dir: dir,
        }
    }

    /// The farm's temporary directory (canonical).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The server's storage: its SQLite file, or under the PostgreSQL switch
    /// (`BUILDCAT_TEST_STORAGE=postgresql`) its database's URL.
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
        if is_postgres(&storage) {
            // A server on PostgreSQL binds before it holds the database: it serves once it
            // says it is the active server.
            let log = server.log_path();
            server.wait_until("the active server", || {
                std::fs::read_to_string(&log).is_ok_and(|log| log.contains(ACTIVE_LOG))
            })?;
        }
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

    /// `buildcat ARGS` that must succeed: fails the test, with the output and the server's
    /// logs, if it does not.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> Output {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "`buildcat {}` failed\n{}\n{}",
            args.join(" "),
            describe(&output),
            self.server_logs()
        );
        output
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
    /// `--wait`: returns the job number it printed; fails the test if it fails.
    #[track_caller]
    pub fn submit(&self, args: &[&str]) -> String {
        let mut full = vec!["run"];
        full.extend_from_slice(args);
        job_number(&self.ok(&full))
    }

    /// `buildcat status HANDLE --json`, parsed; fails the test if it fails.
    #[track_caller]
    fn status_json(&self, handle: &str) -> Value {
        json(&self.ok(&["status", handle, "--json"]))
    }

    /// A task's details (`status 42.3 --json`: state, worker, attempts, reason, output,
    /// result); a job handle alone (`42`, a UUID) names the only task of a one-task job
    /// (see [`task_handle`]). Fails the test if the command fails.
    #[track_caller]
    pub fn status(&self, handle: &str) -> Value {
        self.status_json(&task_handle(handle))
    }

    /// A job with its tasks (`status 42 --json`); fails the test if the command fails.
    #[track_caller]
    pub fn job(&self, job: &str) -> Value {
        self.status_json(job)
    }

    /// Polls [`Farm::status`] of a task until `condition` holds and returns that record;
    /// fails the test with the last record and the server's logs after [`PATIENCE`].
    pub fn wait_for_status(
        &self,
        handle: &str,
        what: &str,
        condition: impl Fn(&Value) -> bool,
    ) -> Value {
        let what = format!("task {} to reach `{what}`", task_handle(handle));
        self.wait_for_view(&task_handle(handle), &what, condition)
    }

    /// Polls [`Farm::job`] until `condition` holds and returns that view; fails the test
    /// with the last view and the server's logs after [`PATIENCE`].
    pub fn wait_for_job(&self, job: &str, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
        let what = format!("job {job} to reach `{what}`");
        self.wait_for_view(job, &what, condition)
    }

    /// Polls `status HANDLE --json` until `condition` holds.
    fn wait_for_view(&self, handle: &str, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
        poll_until(what, || {
            let status = self.status_json(handle);
            if condition(&status) {
                Ok(status)
            } else {
                Err(Later(move || {
                    format!("last status: {status:#}\n{}", self.server_logs())
                }))
            }
        })
    }

    /// `buildcat jobs ARGS --json`, parsed; fails the test if the command fails.
    #[track_caller]
    pub fn jobs(&self, args: &[&str]) -> Value {
        let mut full = vec!["jobs"];
        full.extend_from_slice(args);
        full.push("--json");
        json(&self.ok(&full))
    }
}
