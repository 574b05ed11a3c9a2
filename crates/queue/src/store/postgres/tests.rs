//! PostgreSQL-only tests, against a private cluster: the conformance suite every store
//! passes, fencing by term, a newer schema refused and an older one migrated.

use std::sync::atomic::{AtomicUsize, Ordering};

use postgres::NoTls;

use super::cluster::Cluster;
use super::*;
use crate::store::conformance::{self, new_id, plain_job};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Databases made by these tests, numbered so each case has a fresh one.
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// A fresh database in `cluster`.
fn fresh_database(cluster: &Cluster) -> String {
    let name = format!("case{}", DATABASES.fetch_add(1, Ordering::Relaxed));
    cluster
        .create_database(&name)
        .expect("could not create a database")
}

fn options(url: &str) -> PostgresOptions {
    PostgresOptions {
        url: url.to_owned(),
        advertise: "127.0.0.1:2228".to_owned(),
    }
}

/// Guards the promises every store makes (the suite in `store/conformance.rs`), issue 17.
#[test]
fn postgres_passes_the_conformance_suite() {
    let Some(cluster) = Cluster::start_or_skip("postgres_passes_the_conformance_suite") else {
        return;
    };
    conformance::check_store(|| {
        let url = fresh_database(&cluster);
        move || {
            let store = PostgresStore::open(&options(&url))?;
            Ok(Box::new(store) as Box<dyn Store>)
        }
    });
}

/// A server that lost its lock (its session ended) and was superseded by a new active
/// server has every commit refused, and nothing of it lands (issue 17).
#[test]
fn a_superseded_server_cannot_commit() -> TestResult {
    let Some(cluster) = Cluster::start_or_skip("a_superseded_server_cannot_commit") else {
        return Ok(());
    };
    let url = fresh_database(&cluster);
    let context = uuid::ContextV7::new();
    let mut old = PostgresStore::open(&options(&url))?;
    old.commit(&[StoreOp::Insert(plain_job(new_id(&context, 1), 1))])?;
    // A standby is told where the active server is.
    match PostgresStore::try_open(&options(&url))? {
        Opened::Standby { active } => assert_eq!(active.as_deref(), Some("127.0.0.1:2228")),
        Opened::Active(_) => return Err("a second server became active".into()),
    }
    // The old server's lock session ends (as when it was stopped past its keepalives).
    let mut admin = postgres::Client::connect(&url, NoTls)?;
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1",
        &[&format!("buildcat-lock-{}", std::process::id())],
    )?;
    let mut new = loop {
        match PostgresStore::try_open(&options(&url))? {
            Opened::Active(store) => break *store,
            Opened::Standby { .. } => std::thread::yield_now(),
        }
    };
    assert_eq!(new.term(), old.term() + 1);
    let refused = old.commit(&[StoreOp::Insert(plain_job(new_id(&context, 2), 2))]);
    match refused {
        Err(error @ StoreError::Superseded { .. }) => assert!(!error.is_retryable()),
        other => {
            return Err(format!("expected the old server to be superseded, got {other:?}").into());
        }
    }
    // Every later commit too, and nothing of it landed.
    assert!(matches!(
        old.commit(&[StoreOp::PauseQueue {
            queue: "q".into(),
            paused: true
        }]),
        Err(StoreError::Superseded { .. })
    ));
    let loaded = new.load()?;
    assert_eq!(loaded.jobs.len(), 1);
    assert!(loaded.paused_queues.is_empty());
    new.commit(&[StoreOp::Insert(plain_job(new_id(&context, 3), 2))])?;
    Ok(())
}

/// A database whose layout a newer buildcat wrote is refused, naming that buildcat.
#[test]
fn a_newer_schema_is_refused_naming_the_version_to_run() -> TestResult {
    let Some(cluster) = Cluster::start_or_skip("a_newer_schema_is_refused") else {
        return Ok(());
    };
    let url = fresh_database(&cluster);
    drop(PostgresStore::open(&options(&url))?);
    let mut admin = postgres::Client::connect(&url, NoTls)?;
    admin.execute(
        "INSERT INTO buildcat.migrations (version, software) VALUES ($1, '99.1.0')",
        &[&(SCHEMA_VERSION + 1)],
    )?;
    match PostgresStore::open(&options(&url)) {
        Err(error @ StoreError::Incompatible { .. }) => {
            let message = error.to_string();
            assert!(
                message.contains("run buildcat 99.1.0 or later"),
                "{message}"
            );
        }
        other => return Err(format!("expected the newer schema refused, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn urls_are_read_shown_without_password_and_tls_settings_taken() {
    let (_, shown) =
        connection_config("postgresql://farm:secret@db.example:6543/jobs").expect("a valid url");
    assert_eq!(shown, "postgresql://farm@db.example:6543/jobs");
    let (config, shown) = connection_config("postgresql://farm@db.example/jobs?sslmode=require")
        .expect("require is taken");
    assert_eq!(config.get_ssl_mode(), postgres::config::SslMode::Require);
    assert_eq!(shown, "postgresql://farm@db.example:5432/jobs");
    let refused = connection_config("postgresql://farm@db.example/jobs?sslmode=verify-full")
        .expect_err("verify-full without a CA file is refused");
    assert!(refused.to_string().contains("sslrootcert"), "{refused}");
    let bad = connection_config("postgresql://farm:secret@db.example:notaport/jobs")
        .expect_err("a bad port is refused");
    assert!(!bad.to_string().contains("secret"), "{bad}");
    assert!(is_postgres_url("postgres://x@y/z") && !is_postgres_url("buildcat.db"));
}

/// A database of layout version 1 (jobs without a GPU requirement) is migrated at open:
/// its jobs need no GPU, and new jobs keep theirs (issue 13).
#[test]
fn a_version_1_database_reads_its_jobs_as_needing_no_gpu() -> TestResult {
    let Some(cluster) = Cluster::start_or_skip("a_version_1_database_reads") else {
        return Ok(());
    };
    let url = fresh_database(&cluster);
    let context = uuid::ContextV7::new();
    {
        let mut store = PostgresStore::open(&options(&url))?;
        store.commit(&[StoreOp::Insert(plain_job(new_id(&context, 1), 1))])?;
    }
    // Version 1's layout is this one without the jobs' GPUs.
    let mut admin = postgres::Client::connect(&url, NoTls)?;
    admin.batch_execute(
        "ALTER TABLE buildcat.jobs DROP COLUMN gpus, DROP COLUMN gpu_memory_mib;
         UPDATE buildcat.migrations SET version = 1;",
    )?;
    let mut store = PostgresStore::open(&options(&url))?;
    let loaded = store.load()?;
    assert_eq!(loaded.jobs.len(), 1);
    assert_eq!(
        loaded.jobs[0].job.options.gpus,
        buildcat_proto::GpuRequirement::NONE
    );
    let mut new = plain_job(new_id(&context, 2), 2);
    new.job.options.gpus = buildcat_proto::GpuRequirement {
        count: 1,
        memory_mib: 8_192,
    };
    store.commit(&[StoreOp::Insert(new.clone())])?;
    assert_eq!(store.load()?.jobs[1].job.options.gpus, new.job.options.gpus);
    let newest: i32 = admin
        .query_one("SELECT max(version) FROM buildcat.migrations", &[])?
        .try_get(0)?;
    assert_eq!(newest, SCHEMA_VERSION);
    Ok(())
}
