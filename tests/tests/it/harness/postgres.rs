//! A private PostgreSQL cluster for the tests of servers that share a database: `initdb`
//! into a temporary directory and `pg_ctl` on a free loopback port, stopped on drop; never
//! the system's cluster. As root, PostgreSQL's programs run as the `postgres` user (it
//! refuses root). SQL goes through `psql` over TCP, as the cluster's superuser.
//!
//! Without PostgreSQL, [`Postgres::start_or_skip`] skips the test saying why, except under
//! `BUILDCAT_CI=1`, where it fails it: CI installs PostgreSQL, so a missing one is a bug.

use std::path::PathBuf;
use std::process::Command;

use super::{PATIENCE, describe, free_port, run_command};

/// Where Debian installs PostgreSQL's server programs, one directory per version.
const DEBIAN_LIB: &str = "/usr/lib/postgresql";

/// A running private cluster, stopped on drop.
#[derive(Debug)]
pub struct Postgres {
    /// The cluster's data, socket and log; removed on drop.
    dir: tempfile::TempDir,
    /// The directory of `initdb` and `pg_ctl`.
    bin: PathBuf,
    /// The loopback port it listens on.
    pub port: u16,
    /// Whether its programs run as the `postgres` user (the tests run as root).
    as_postgres: bool,
}

impl Postgres {
    /// Starts a cluster; `None` (after saying why) when PostgreSQL is not installed, or a
    /// failed test under `BUILDCAT_CI=1`.
    pub fn start_or_skip(test: &str) -> Option<Postgres> {
        match Postgres::start() {
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

    /// Starts a cluster, or says why it could not.
    fn start() -> Result<Postgres, String> {
        let bin = match std::env::var_os("PG_BIN") {
            Some(bin) => PathBuf::from(bin),
            None => newest_bin()?,
        };
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        // SAFETY: `geteuid` has no preconditions.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        if as_postgres {
            let output = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .output()
                .map_err(|e| format!("could not run chown: {e}"))?;
            if !output.status.success() {
                return Err(format!(
                    "could not chown the cluster's directory: {}",
                    describe(&output)
                ));
            }
        }
        let cluster = Postgres {
            dir,
            bin,
            port: free_port(),
            as_postgres,
        };
        let data = cluster.data();
        cluster.pg(
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
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
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
        Ok(cluster)
    }

    /// The data directory.
    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs one of PostgreSQL's server programs, as the `postgres` user when root.
    fn pg(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        };
        command.args(args).current_dir(self.dir.path());
        let output = run_command(command, PATIENCE);
        if output.status.success() {
            Ok(())
        } else {
            Err(format!("{program} failed: {}", describe(&output)))
        }
    }

    /// The URL of database `name`, as the superuser.
    pub fn url(&self, name: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name)
    }

    /// Runs `sql` in database `name` with `psql` and returns what it printed (unaligned,
    /// tuples only); fails the test if it fails.
    #[track_caller]
    pub fn sql(&self, name: &str, sql: &str) -> String {
        let mut command = Command::new("psql");
        command.args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &self.url(name),
            "-c",
            sql,
        ]);
        let output = run_command(command, PATIENCE);
        assert!(
            output.status.success(),
            "psql `{sql}` failed\n{}",
            describe(&output)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

/// The newest version's server programs under Debian's directory.
fn newest_bin() -> Result<PathBuf, String> {
    let entries = std::fs::read_dir(DEBIAN_LIB).map_err(|e| {
        format!("PostgreSQL is not installed ({DEBIAN_LIB}: {e}); install Debian's postgresql package or set PG_BIN")
    })?;
    let mut versions: Vec<(u32, PathBuf)> = entries
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
        .ok_or_else(|| format!("no PostgreSQL server programs under {DEBIAN_LIB}"))
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.pg("pg_ctl", &["-D", &data, "-m", "immediate", "stop"]);
    }
}
