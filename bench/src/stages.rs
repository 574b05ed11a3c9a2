//! Per-stage timings that explain the end-to-end figures: what one fsync costs on this
//! disk, what a SQLite commit of a batch costs (and a PostgreSQL one, on a private cluster
//! on this machine, when PostgreSQL is installed), how much CPU the server's core spends per
//! submitted job, and what encoding a submit frame costs. None has a target.

use std::io::Write as _;
use std::time::Instant;

use anyhow::{Context, bail};
use buildcat_proto::{ClientFrame, Request, Role, Timestamp, codec};
use buildcat_queue::core::{Core, CoreConfig, Effect, Input};
use buildcat_queue::store::postgres::{PostgresOptions, PostgresStore};
use buildcat_queue::store::sqlite::SqliteOptions;
use buildcat_queue::store::{Loaded, SqliteStore, Store, StoreOp};

use crate::farm::noop_jobs;
use crate::report::{Figure, micros, percentile};

/// How many times each stage is repeated.
pub struct StageSizes {
    /// fsyncs timed.
    pub fsyncs: usize,
    /// Commits of one job timed.
    pub single_commits: usize,
    /// Commits of a 1,000-job batch timed.
    pub batch_commits: usize,
}

/// Median of samples (sorted in place).
fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    percentile(samples, 50.0)
}

/// The PostgreSQL store's commits of 1,000 inserts (throughput) and of one (latency, p50
/// and p99), on a private cluster with `fsync` and `synchronous_commit` on, over loopback
/// TCP: beside SQLite's, what the shared store costs. Skipped with a line when PostgreSQL
/// is not installed.
fn postgres_commits(
    sizes: &StageSizes,
    batches: &[Vec<StoreOp>],
    singles: &[StoreOp],
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    let Some(cluster) = crate::postgres::Cluster::start()? else {
        eprintln!(
            "buildcat-bench: PostgreSQL is not installed (/usr/lib/postgresql or PG_BIN); \
             skipping the PostgreSQL store figures"
        );
        return Ok(());
    };
    let mut store = PostgresStore::open(&PostgresOptions {
        url: cluster.url(),
        advertise: "buildcat-bench".to_owned(),
    })?;
    let mut batch_samples = Vec::new();
    for ops in batches.iter().take(sizes.batch_commits) {
        let start = Instant::now();
        store.commit(ops)?;
        batch_samples.push(micros(start.elapsed()) / 1000.0);
    }
    let mut single_samples = Vec::new();
    for op in singles.iter().take(sizes.single_commits) {
        let start = Instant::now();
        store.commit(std::slice::from_ref(op))?;
        single_samples.push(micros(start.elapsed()));
    }
    let batch = median(&mut batch_samples);
    figures.push(
        Figure::info(
            "stage_postgres_commit_1000_ms",
            "stage: PostgreSQL commit of 1,000 inserts",
            batch,
            "ms",
        )
        .how(format!(
            "PostgresStore::commit over loopback TCP, fsync and synchronous_commit on, median \
             of {} ({:.0} jobs/s)",
            sizes.batch_commits,
            1e6 / batch
        )),
    );
    let p50 = median(&mut single_samples);
    let p99 = percentile(&single_samples, 99.0);
    figures.push(
        Figure::info(
            "stage_postgres_commit_1_us",
            "stage: PostgreSQL commit of 1 insert",
            p50,
            "µs",
        )
        .how(format!(
            "PostgresStore::commit over loopback TCP, fsync and synchronous_commit on, median \
             of {}",
            sizes.single_commits
        )),
    );
    figures.push(
        Figure::info(
            "stage_postgres_commit_1_p99_us",
            "stage: PostgreSQL commit of 1 insert, p99",
            p99,
            "µs",
        )
        .how(format!(
            "the same {} commits' 99th percentile",
            sizes.single_commits
        )),
    );
    drop(store);
    drop(cluster);
    Ok(())
}

/// Every stage figure.
pub fn measure(sizes: &StageSizes) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    let dir = tempfile::tempdir().context("creating a temp dir")?;

    // One 4 KiB write and fdatasync, the floor under any durable commit.
    let mut file = std::fs::File::create(dir.path().join("fsync.bin"))?;
    let page = [7u8; 4096];
    let mut samples = Vec::with_capacity(sizes.fsyncs);
    for _ in 0..sizes.fsyncs {
        let start = Instant::now();
        file.write_all(&page)?;
        file.sync_data()?;
        samples.push(micros(start.elapsed()));
    }
    figures.push(
        Figure::info(
            "stage_fsync_us",
            "stage: 4 KiB write + fdatasync",
            median(&mut samples),
            "µs",
        )
        .how(format!(
            "median of {} in {}",
            sizes.fsyncs,
            dir.path().display()
        )),
    );

    // The core: CPU per submitted job (a Submit of 1,000 jobs, then its commit reported).
    let mut core_samples = Vec::new();
    let mut insert_batches: Vec<Vec<StoreOp>> = Vec::new();
    let (mut core, _) = Core::new(CoreConfig::default(), Loaded::default(), Timestamp::now());
    core.handle(
        Timestamp::now(),
        Input::Connected {
            conn: 1,
            role: Role::Client,
        },
    );
    let batches = sizes.batch_commits + sizes.single_commits.div_ceil(1000) + 1;
    for index in 0..batches {
        let jobs = noop_jobs(index as u64 * 1000, 1000)?;
        let start = Instant::now();
        let effects = core.handle(
            Timestamp::now(),
            Input::Request {
                conn: 1,
                id: index as u64 + 1,
                request: Request::Submit(jobs),
            },
        );
        let mut tokens = Vec::new();
        let mut ops = Vec::new();
        for effect in effects {
            if let Effect::Persist { ops: more, token } = effect {
                ops.extend(more);
                tokens.extend(token);
            }
        }
        let effects = core.handle(
            Timestamp::now(),
            Input::Persisted {
                tokens,
                result: Ok(()),
            },
        );
        core_samples.push(micros(start.elapsed()) / 1000.0);
        if effects.is_empty() {
            bail!("the core did not answer a committed submit");
        }
        insert_batches.push(ops);
    }
    figures.push(
        Figure::info(
            "stage_core_submit_us_per_job",
            "stage: core CPU per submitted job",
            median(&mut core_samples),
            "µs",
        )
        .how(format!(
            "Core::handle of a 1,000-job Submit plus its Persisted, median of {batches} batches, no I/O"
        )),
    );

    // SQLite: commits of one insert and of 1,000 inserts, durable and not.
    let mut singles: Vec<StoreOp> = insert_batches.pop().unwrap_or_default();
    for (sync, name) in [(true, "sync"), (false, "nosync")] {
        let mut store = SqliteStore::open(
            &dir.path().join(format!("{name}.db")),
            SqliteOptions { sync },
        )?;
        let mut batch_samples = Vec::new();
        for ops in insert_batches.iter().take(sizes.batch_commits) {
            let start = Instant::now();
            store.commit(ops)?;
            batch_samples.push(micros(start.elapsed()) / 1000.0);
        }
        let mut single_samples = Vec::new();
        for op in singles.iter().take(sizes.single_commits) {
            let start = Instant::now();
            store.commit(std::slice::from_ref(op))?;
            single_samples.push(micros(start.elapsed()));
        }
        let label = if sync {
            "synchronous=FULL"
        } else {
            "synchronous=OFF (unsafe)"
        };
        figures.push(
            Figure::info(
                &format!("stage_sqlite_commit_1000_{name}_ms"),
                &format!("stage: SQLite commit of 1,000 inserts, {name}"),
                median(&mut batch_samples),
                "ms",
            )
            .how(format!(
                "SqliteStore::commit, {label}, median of {}",
                sizes.batch_commits
            )),
        );
        figures.push(
            Figure::info(
                &format!("stage_sqlite_commit_1_{name}_us"),
                &format!("stage: SQLite commit of 1 insert, {name}"),
                median(&mut single_samples),
                "µs",
            )
            .how(format!(
                "SqliteStore::commit, {label}, median of {}",
                sizes.single_commits
            )),
        );
    }
    postgres_commits(sizes, &insert_batches, &singles, &mut figures)?;
    singles.clear();

    // The codec: a 1,000-job Submit frame, encoded and decoded.
    let frame = ClientFrame {
        id: 1,
        request: Request::Submit(noop_jobs(0, 1000)?),
    };
    let mut encode = Vec::new();
    let mut decode = Vec::new();
    let mut bytes = 0;
    for _ in 0..50 {
        let start = Instant::now();
        let encoded = codec::encode_value(&frame)?;
        encode.push(micros(start.elapsed()) / 1000.0);
        let start = Instant::now();
        let decoded: ClientFrame = codec::decode_value(&encoded)?;
        decode.push(micros(start.elapsed()) / 1000.0);
        bytes = encoded.len();
        drop(decoded);
    }
    let (encode, decode) = (median(&mut encode), median(&mut decode));
    figures.push(
        Figure::info(
            "stage_codec_us_per_job",
            "stage: encode + decode per submitted job",
            encode + decode,
            "µs",
        )
        .how(format!(
            "a 1,000-job Submit frame of {bytes} bytes: encode {encode:.3} µs/job, decode {decode:.3} µs/job"
        )),
    );
    Ok(figures)
}
