//! A private PostgreSQL cluster for the tests of servers that share a database
//! (`buildcat-pgcluster`'s, the one implementation the queue's tests and the bench use
//! too), with this suite's policy on top: the shared cluster of [`STORAGE_SWITCH`], TLS
//! from a [`TestCa`], and a failed test where SQL fails.
//!
//! Without PostgreSQL, [`Postgres::start_or_skip`] skips the test saying why, except under
//! `BUILDCAT_CI=1`, where it fails it: CI installs PostgreSQL, so a missing one is a bug.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use buildcat_pgcluster::{Cluster, Options, Tls};

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

/// A running private cluster (`buildcat_pgcluster::Cluster`, `fsync` off), stopped and
/// removed on drop; this harness adds only its policy (skip or fail, panics on failed SQL).
#[derive(Debug)]
pub struct Postgres(Cluster);

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
        let options = Options {
            fsync: false,
            tls: tls.map(|tls| Tls {
                cert_pem: tls.cert_pem.clone(),
                key_pem: tls.key_pem.clone(),
            }),
        };
        Cluster::start(&options).map(Postgres)
    }

    /// Creates database `name` and returns its URL; fails the test if it cannot.
    #[track_caller]
    pub fn create_database(&self, name: &str) -> String {
        self.0
            .create_database(name)
            .unwrap_or_else(|why| panic!("could not create database {name}: {why}"))
    }

    /// Runs `sql` in database `name` with `psql` and returns what it printed (unaligned,
    /// tuples only); fails the test if it fails.
    #[track_caller]
    pub fn sql(&self, name: &str, sql: &str) -> String {
        self.0.sql(name, sql).unwrap_or_else(|why| panic!("{why}"))
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
