//! A private PostgreSQL cluster for the store figures: `initdb` into a temporary directory
//! and `pg_ctl` on a free loopback port, stopped on drop, as the tests do (as root,
//! PostgreSQL's programs run as the `postgres` user). Unlike the tests' cluster it keeps
//! `fsync` on: the figures are of durable commits.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

/// Where Debian installs PostgreSQL's server programs, one directory per version.
const DEBIAN_LIB: &str = "/usr/lib/postgresql";

/// A running private cluster, stopped on drop.
pub struct Cluster {
    /// Its data, socket and log; removed on drop.
    dir: tempfile::TempDir,
    /// The directory of `initdb` and `pg_ctl`.
    bin: PathBuf,
    /// The loopback port it listens on.
    port: u16,
    /// Whether its programs run as the `postgres` user (PostgreSQL refuses root).
    as_postgres: bool,
}

impl Cluster {
    /// Starts a cluster; `Ok(None)` when PostgreSQL is not installed (the figures are
    /// skipped with a line saying so).
    pub fn start() -> anyhow::Result<Option<Cluster>> {
        let Some(bin) = newest_bin() else {
            return Ok(None);
        };
        let dir = tempfile::tempdir().context("creating the cluster's directory")?;
        // SAFETY: `geteuid` has no preconditions.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        if as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()))?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("finding a free port")?
            .port();
        let cluster = Cluster {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = cluster.data();
        cluster.pg(
            "initdb",
            &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        )?;
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            cluster.port,
            cluster.dir.path().display()
        );
        let log = cluster
            .dir
            .path()
            .join("postgres.log")
            .display()
            .to_string();
        cluster.pg(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
        )?;
        Ok(Some(cluster))
    }

    /// The URL of its `postgres` database, as the superuser.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The data directory.
    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs one of PostgreSQL's server programs, as the `postgres` user when root.
    fn pg(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        };
        command.args(args).current_dir(self.dir.path());
        run(&mut command)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.pg("pg_ctl", &["-D", &data, "-m", "immediate", "stop"]);
    }
}

/// Runs `command`, failing with its output if it fails.
fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// The newest version's server programs under Debian's directory (or `PG_BIN`).
fn newest_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("PG_BIN") {
        return Some(PathBuf::from(bin));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_LIB)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}
