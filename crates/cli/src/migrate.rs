//! `buildcat migrate`: copies a farm's state from one storage to another, new one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use buildcat_queue::store::migrate::{Copied, copy};
use buildcat_queue::store::postgres::{PostgresOptions, PostgresStore, is_postgres_url};
use buildcat_queue::store::sqlite::{SqliteOptions, SqliteStore};
use buildcat_queue::store::{Store, StoreError};

use crate::args::MigrateArgs;

/// What the database of a PostgreSQL store records as the active server's address while
/// migrate holds it, so that a server started meanwhile says who holds it.
const ADVERTISED: &str = "buildcat migrate (no server)";

/// One side of the copy, as given.
enum Side {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by its URL.
    Postgres(String),
}

impl Side {
    /// Reads `--from`/`--to`.
    fn parse(text: &str) -> Side {
        if is_postgres_url(text) {
            Side::Postgres(text.to_owned())
        } else {
            Side::Sqlite(PathBuf::from(text.strip_prefix("sqlite:").unwrap_or(text)))
        }
    }

    /// Opens the storage as a server would, holding it until dropped: fails while a server
    /// (or another migrate) holds it.
    fn open(&self) -> Result<Box<dyn Store>, StoreError> {
        match self {
            Side::Sqlite(path) => Ok(Box::new(SqliteStore::open(path, SqliteOptions::default())?)),
            Side::Postgres(url) => Ok(Box::new(PostgresStore::open(&PostgresOptions {
                url: url.clone(),
                advertise: ADVERTISED.to_owned(),
            })?)),
        }
    }
}

/// `buildcat migrate --from A --to B`.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let from = Side::parse(&args.from);
    let to = Side::parse(&args.to);
    if let Side::Sqlite(path) = &from
        && !path.exists()
    {
        // Opening would create an empty farm and copy nothing, which is surely not meant.
        bail!(
            "--from {}: there is no such file; give the SQLite file a server used (its \
             --storage)",
            path.display()
        );
    }
    if let (Side::Sqlite(a), Side::Sqlite(b)) = (&from, &to)
        && same_file(a, b)
    {
        bail!("--from and --to are the same file; give a new file or a database as --to");
    }
    let (from_text, to_text) = (args.from.clone(), args.to.clone());
    // The stores block (the PostgreSQL client runs its own runtime), so off the async
    // threads.
    let copied = tokio::task::spawn_blocking(move || -> anyhow::Result<Copied> {
        let mut source = from.open().with_context(|| {
            format!("could not open --from {from_text} (is a server running on it? stop it first)")
        })?;
        let mut target = to
            .open()
            .with_context(|| format!("could not open --to {to_text}"))?;
        let copied = copy(source.as_mut(), target.as_mut())
            .with_context(|| format!("could not migrate {from_text} to {to_text}"))?;
        Ok(copied)
    })
    .await
    .context("the copy stopped unexpectedly")??;
    if args.json {
        let view = serde_json::json!({
            "jobs": copied.jobs,
            "tasks": copied.tasks,
            "ended_tasks": copied.ended_tasks,
            "output_chunks": copied.output_chunks,
            "output_bytes": copied.output_bytes,
            "paused_queues": copied.paused_queues,
            "next_number": copied.next_number,
        });
        println!("{view}");
    } else {
        println!(
            "copied {} jobs ({} tasks, {} ended), {} bytes of output in {} chunks, {} paused \
             queues; the next job is number {}",
            copied.jobs,
            copied.tasks,
            copied.ended_tasks,
            copied.output_bytes,
            copied.output_chunks,
            copied.paused_queues,
            copied.next_number
        );
        println!(
            "start the server with --storage {} (frame previews live in memory, not in \
             storage: they come back as tasks save new ones)",
            args.to
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `a` and `b` name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
