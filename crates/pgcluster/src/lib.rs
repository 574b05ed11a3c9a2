//! A private PostgreSQL cluster for tests and the bench: `initdb` into a temporary
//! directory, `pg_ctl` on a free loopback port, stopped and removed on drop. Never the
//! system's cluster.
//!
//! PostgreSQL refuses to run as root, so as root its programs run as the `postgres` user
//! (`runuser`), with the directory given to that user. Without PostgreSQL installed,
//! [`Cluster::start`] says why it could not start; whether that skips a test or fails it
//! is the caller's policy. SQL goes through `psql` over TCP, as the cluster's superuser.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where Debian installs PostgreSQL's server programs, one directory per version;
/// `PG_BIN` overrides.
const DEBIAN_LIB: &str = "/usr/lib/postgresql";

/// Seconds `psql` waits to connect before giving up, so a dead cluster fails a caller
/// instead of hanging it.
const CONNECT_TIMEOUT_S: &str = "30";

/// How to start a cluster.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Keep `fsync` on (and let `initdb` sync): measurements of durable commits need it,
    /// tests are faster without.
    pub fsync: bool,
    /// The server's certificate and key, turning on `ssl` so clients may ask for TLS
    /// (plain connections still pass); `None` for plain connections only.
    pub tls: Option<Tls>,
}

/// A server certificate and its key, in PEM.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The certificate PostgreSQL presents to clients.
    pub cert_pem: String,
    /// Its private key, written readable by its owner only (PostgreSQL insists).
    pub key_pem: String,
}

/// A running private cluster, stopped and removed on drop.
#[derive(Debug)]
pub struct Cluster {
    /// The cluster's data, socket and log; removed on drop.
    dir: tempfile::TempDir,
    /// The directory of `initdb` and `pg_ctl`, to stop the cluster with the same version.
    bin: PathBuf,
    /// The loopback port it listens on, which its URLs name.
    port: u16,
    /// Whether its programs run as the `postgres` user (PostgreSQL refuses root).
    as_postgres: bool,
}

/// The directory holding PostgreSQL's server programs: `PG_BIN`, else the newest version
/// under Debian's directory; `Err` says why there is none (not installed).
pub fn server_programs() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(bin));
    }
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
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        format!("no PostgreSQL server programs under {DEBIAN_LIB}; install Debian's postgresql package or set PG_BIN")
    })
}

/// Whether this process runs as root (asked of `id`, to stay on std).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A loopback port no one listens on now.
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("could not find a free loopback port: {e}"))
}

/// A program's output, stdout then stderr, for an error message.
fn describe(output: &Output) -> String {
    format!(
        "{} {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
    .trim()
    .to_owned()
}

/// Gives `path` to the `postgres` user (recursively with `recursive`).
fn chown(path: &Path, recursive: bool) -> Result<(), String> {
    let mut command = Command::new("chown");
    if recursive {
        command.arg("-R");
    }
    let output = command
        .arg("postgres:postgres")
        .arg(path)
        .output()
        .map_err(|e| format!("could not run chown: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "could not give {} to the postgres user: {}",
            path.display(),
            describe(&output)
        ))
    }
}

impl Cluster {
    /// Starts a cluster, or says why it could not (PostgreSQL not installed, `initdb` or
    /// `pg_ctl` failed). A port taken between the probe and the start fails here; it is
    /// not retried.
    pub fn start(options: &Options) -> Result<Cluster, String> {
        let bin = server_programs()?;
        let dir = tempfile::tempdir()
            .map_err(|e| format!("could not create the cluster's directory: {e}"))?;
        let as_postgres = is_root();
        if as_postgres {
            chown(dir.path(), true)?;
        }
        let cluster = Cluster {
            dir,
            bin,
            port: free_port()?,
            as_postgres,
        };
        let data = cluster.data();
        let mut initdb = vec!["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8"];
        if !options.fsync {
            initdb.push("--no-sync");
        }
        cluster.pg("initdb", &initdb)?;
        let mut settings = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            cluster.port,
            cluster.dir.path().display()
        );
        if !options.fsync {
            settings.push_str(" -c fsync=off -c full_page_writes=off");
        }
        if let Some(tls) = &options.tls {
            let (cert, key) = cluster.write_tls(tls)?;
            settings.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key}"
            ));
        }
        let log = cluster.log().display().to_string();
        cluster.pg(
            "pg_ctl",
            &["-D", &data, "-o", &settings, "-l", &log, "-w", "start"],
        )?;
        Ok(cluster)
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (data, socket, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log file, for a test that looks at what PostgreSQL said.
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The URL of database `name`, as the superuser.
    pub fn url(&self, name: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, String> {
        self.sql("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.url(name))
    }

    /// Runs `sql` in database `name` with `psql` and returns what it printed (unaligned,
    /// tuples only, trimmed), or says why it failed.
    pub fn sql(&self, name: &str, sql: &str) -> Result<String, String> {
        let output = Command::new("psql")
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url(name))
            .args(["-c", sql])
            .env("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_S)
            .output()
            .map_err(|e| format!("could not run psql (install PostgreSQL's client): {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(format!("psql `{sql}` failed: {}", describe(&output)))
        }
    }

    /// Writes the server's certificate and key where PostgreSQL accepts them (readable by
    /// their owner only, owned by the `postgres` user when root); their paths.
    fn write_tls(&self, tls: &Tls) -> Result<(String, String), String> {
        use std::os::unix::fs::PermissionsExt;
        let cert = self.dir.path().join("server.crt");
        let key = self.dir.path().join("server.key");
        for (path, text) in [(&cert, &tls.cert_pem), (&key, &tls.key_pem)] {
            std::fs::write(path, text)
                .map_err(|e| format!("could not write {}: {e}", path.display()))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("could not restrict {}: {e}", path.display()))?;
            if self.as_postgres {
                chown(path, false)?;
            }
        }
        Ok((cert.display().to_string(), key.display().to_string()))
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
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .map_err(|e| format!("could not run {}: {e}", path.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!("{program} failed: {}", describe(&output)))
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        // Immediate: the cluster is thrown away, so nothing needs a clean shutdown.
        let _ = self.pg("pg_ctl", &["-D", &data, "-m", "immediate", "stop"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A started cluster answers SQL, makes databases, and is gone after drop; skipped
    /// (with a line) where PostgreSQL is not installed.
    #[test]
    fn starts_answers_and_removes() {
        let cluster = match Cluster::start(&Options::default()) {
            Ok(cluster) => cluster,
            Err(why) => {
                eprintln!("skipping: {why}");
                return;
            }
        };
        assert_eq!(cluster.sql("postgres", "SELECT 1 + 1").as_deref(), Ok("2"));
        let url = cluster.create_database("made").expect("a database");
        assert!(url.ends_with("/made"), "{url}");
        assert_eq!(cluster.sql("made", "SHOW fsync").as_deref(), Ok("off"));
        assert!(cluster.sql("made", "SELECT nonsense").is_err());
        let dir = cluster.dir().to_owned();
        drop(cluster);
        assert!(!dir.exists(), "{} is left behind", dir.display());
    }
}
