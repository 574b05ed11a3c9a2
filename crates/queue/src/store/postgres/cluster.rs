//! A private PostgreSQL cluster for tests: `initdb` into a temporary directory, `pg_ctl`
//! on a free loopback port, stopped and removed on drop. Never the system's cluster.
//!
//! PostgreSQL refuses to run as root, so as root its programs run as the `postgres` user
//! (`runuser`), with the directory given to that user. Without PostgreSQL installed,
//! [`Cluster::start`] says why it could not start; [`Cluster::start_or_skip`] then skips
//! the test, or fails it under `BUILDCAT_CI=1`, where a missing PostgreSQL is a broken CI.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian installs PostgreSQL's server programs; `PG_BIN` overrides.
const DEBIAN_BIN: &str = "/usr/lib/postgresql";

/// A running private cluster.
#[derive(Debug)]
pub(crate) struct Cluster {
    /// The cluster's directory (data and socket), removed on drop.
    dir: tempfile::TempDir,
    /// The directory of `initdb` and `pg_ctl`.
    bin: PathBuf,
    /// The loopback port it listens on.
    pub(crate) port: u16,
    /// Whether its programs run as the `postgres` user (the tests run as root).
    as_postgres: bool,
}

/// The directory holding `pg_ctl`: `PG_BIN`, else the newest under Debian's directory.
fn find_bin() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_BIN)
        .map_err(|e| format!("PostgreSQL is not installed ({DEBIAN_BIN}: {e}); install Debian's postgresql package or set PG_BIN"))?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| format!("no PostgreSQL server programs under {DEBIAN_BIN}; install Debian's postgresql package or set PG_BIN"))
}

/// Whether this process runs as root.
fn is_root() -> bool {
    std::env::var("USER").is_ok_and(|user| user == "root")
        || Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A port no one listens on now.
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| e.to_string())
}

impl Cluster {
    /// Starts a cluster, or says why it could not.
    pub(crate) fn start() -> Result<Cluster, String> {
        let bin = find_bin()?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .map_err(|e| format!("could not run chown: {e}"))?;
            if !status.success() {
                return Err("could not give the cluster's directory to the postgres user".into());
            }
        }
        let port = free_port()?;
        let mut cluster = Cluster {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            cluster.dir.path().display()
        );
        let log = cluster.dir.path().join("log").display().to_string();
        cluster.run(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
        )?;
        // A port taken between the probe and the start fails above; it is not retried.
        cluster.port = port;
        Ok(cluster)
    }

    /// Starts a cluster; without PostgreSQL, `None` after saying why (or a panic under
    /// `BUILDCAT_CI=1`).
    pub(crate) fn start_or_skip(test: &str) -> Option<Cluster> {
        match Cluster::start() {
            Ok(cluster) => Some(cluster),
            Err(why) if std::env::var("BUILDCAT_CI").is_ok_and(|v| v == "1") => {
                panic!("{test}: PostgreSQL is needed under BUILDCAT_CI=1: {why}")
            }
            Err(why) => {
                eprintln!("skipping {test}: {why}");
                None
            }
        }
    }

    /// The data directory.
    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs one of PostgreSQL's programs, as the `postgres` user when root.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        };
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .map_err(|e| format!("could not run {}: {e}", path.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// The URL of database `name` as the superuser.
    pub(crate) fn url(&self, name: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` and gives its URL.
    pub(crate) fn create_database(&self, name: &str) -> Result<String, String> {
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .map_err(|e| e.to_string())?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(|e| e.to_string())?;
        Ok(self.url(name))
    }

    /// The cluster's directory.
    #[allow(dead_code, reason = "kept for tests that look at the server's log")]
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "stop"]);
    }
}
