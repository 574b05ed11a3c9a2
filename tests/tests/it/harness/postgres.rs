//! A private PostgreSQL cluster for the tests of servers that share a database: `initdb`
//! into a temporary directory and `pg_ctl` on a free loopback port, stopped on drop; never
//! the system's cluster. As root, PostgreSQL's programs run as the `postgres` user (it
//! refuses root). SQL goes through `psql` over TCP, as the cluster's superuser.
//!
//! Without PostgreSQL, [`Postgres::start_or_skip`] skips the test saying why, except under
//! `BUILDCAT_CI=1`, where it fails it: CI installs PostgreSQL, so a missing one is a bug.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{PATIENCE, describe, free_port, run_command};

/// The environment variable that runs every farm's server on PostgreSQL (one switch for the
/// whole suite): `BUILDCAT_TEST_STORAGE=postgresql`.
pub const STORAGE_SWITCH: &str = "BUILDCAT_TEST_STORAGE";

/// The cluster the farms share under [`STORAGE_SWITCH`], each on a database of its own;
/// stopped when the test binary exits.
static SHARED: Mutex<Option<Result<Postgres, String>>> = Mutex::new(None);

/// Numbers the farms' databases within this test binary.
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// Whether [`STORAGE_SWITCH`] asks for PostgreSQL.
pub fn switched_to_postgres() -> bool {
    std::env::var(STORAGE_SWITCH).is_ok_and(|value| value == "postgresql" || value == "postgres")
}

/// A new, empty database on the shared cluster, started at the first call, for one farm's
/// server; fails the test when PostgreSQL cannot be started (the switch asks for it).
pub fn shared_database() -> String {
    let mut shared = SHARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if shared.is_none() {
        *shared = Some(Postgres::start(None));
        // SAFETY: `stop_shared` is a plain function that only takes the mutex; registering
        // it has no other precondition.
        unsafe {
            libc::atexit(stop_shared);
        }
    }
    let cluster = match shared.as_ref() {
        Some(Ok(cluster)) => cluster,
        Some(Err(why)) => panic!("{STORAGE_SWITCH}=postgresql needs PostgreSQL: {why}"),
        None => unreachable!("the shared cluster was just started"),
    };
    let name = format!("farm_{}", DATABASES.fetch_add(1, Ordering::Relaxed));
    cluster.create_database(&name)
}

/// Stops the shared cluster and removes its directory as the test binary exits.
extern "C" fn stop_shared() {
    if let Ok(mut shared) = SHARED.lock() {
        drop(shared.take());
    }
}

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
        Postgres::skip_unless(test, Postgres::start(None))
    }

    /// Like [`Postgres::start_or_skip`], with TLS on (`ssl=on`) and `tls` as the server's
    /// certificate and key (PEM), so clients may ask for TLS (plain connections still
    /// pass).
    pub fn start_tls_or_skip(test: &str, tls: &ServerCert) -> Option<Postgres> {
        Postgres::skip_unless(test, Postgres::start(Some(tls)))
    }

    /// The cluster, or `None` after saying why not (a failed test under `BUILDCAT_CI=1`).
    fn skip_unless(test: &str, started: Result<Postgres, String>) -> Option<Postgres> {
        match started {
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

    /// Starts a cluster (with TLS when `tls` is given), or says why it could not.
    fn start(tls: Option<&ServerCert>) -> Result<Postgres, String> {
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
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            cluster.port,
            cluster.dir.path().display()
        );
        if let Some(tls) = tls {
            let (cert, key) = cluster.write_tls(tls)?;
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key}"
            ));
        }
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

    /// Writes the server's certificate and key where PostgreSQL accepts them (the key
    /// readable by its owner only, owned by the `postgres` user when root); their paths.
    fn write_tls(&self, tls: &ServerCert) -> Result<(String, String), String> {
        use std::os::unix::fs::PermissionsExt;
        let cert = self.dir.path().join("server.crt");
        let key = self.dir.path().join("server.key");
        for (path, text) in [(&cert, &tls.cert_pem), (&key, &tls.key_pem)] {
            std::fs::write(path, text)
                .map_err(|e| format!("could not write {}: {e}", path.display()))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("could not restrict {}: {e}", path.display()))?;
            if self.as_postgres {
                let output = Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(path)
                    .output()
                    .map_err(|e| format!("could not run chown: {e}"))?;
                if !output.status.success() {
                    return Err(format!(
                        "could not chown {}: {}",
                        path.display(),
                        describe(&output)
                    ));
                }
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

/// A certificate authority made for one test, which signs database servers' certificates.
pub struct TestCa {
    /// Its certificate, which signs.
    cert: rcgen::Certificate,
    /// Its key.
    key: rcgen::KeyPair,
}

/// A database server's certificate and key, in PEM.
pub struct ServerCert {
    /// The certificate, signed by a [`TestCa`].
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("a CA key");
        let cert = params.self_signed(&key).expect("a CA certificate");
        TestCa { cert, key }
    }

    /// Its certificate in PEM, as `sslrootcert` takes it.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `host` (a name or an IP address) signed by this CA.
    pub fn issue(&self, host: &str) -> ServerCert {
        let params = rcgen::CertificateParams::new(vec![host.to_owned()]).expect("server params");
        let key = rcgen::KeyPair::generate().expect("a server key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("a server certificate");
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
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
