//! PostgreSQL storage: the state of a farm in a database that any number of servers can
//! reach, one of them active, the others standing by.
//!
//! `schema.rs` holds the layout and its version, `rows.rs` the encoding of jobs, tasks and
//! output as rows, `errors.rs` PostgreSQL's failures in words, `pgpass.rs` the password as
//! libpq finds it. This file opens the store and implements [`Store`].
//!
//! The client is the `postgres` crate, tokio-postgres's blocking wrapper: the store is used
//! by one std thread (the store writer) and by `spawn_blocking` at start, exactly the shape
//! the blocking client fits, and it runs its own small runtime so the server's tasks never
//! wait on the database. TLS to the database follows libpq's `sslmode` and `sslrootcert`
//! (`tls.rs`: `prefer`, the default, encrypts when the database offers TLS without checking
//! its certificate; `verify-full` checks it against `sslrootcert` and the host name).
//!
//! # Active and standby
//!
//! A server becomes active by taking a session advisory lock ([`LOCK_KEY`]) on a connection
//! of its own, held for as long as that connection lives (PostgreSQL releases it when the
//! session ends: the process died, the host went away and TCP keepalives noticed, an
//! administrator ended the backend). [`PostgresStore::try_open`] tries once: the lock is
//! held by another server, it answers [`Opened::Standby`] with the active server's address;
//! the caller waits and tries again.
//!
//! # Fencing
//!
//! Holding the lock once does not prove holding it now: a server stopped for a while
//! (SIGSTOP, a frozen VM) may have lost its session, and a standby may have taken over. So
//! each server that becomes active bumps the `term` in `buildcat.meta` and keeps the value,
//! and every commit first locks the meta row where the term is still its own
//! (`rows::CHECK_TERM`) in the same transaction. A server that was superseded finds no
//! row: the commit is rolled back and fails with [`StoreError::Superseded`], as does every
//! later one, and the server steps down. A takeover's bump waits for a commit in flight, so
//! the new server loads everything the old one committed, and nothing after.

#[cfg(test)]
pub(crate) mod cluster;
mod errors;
mod pgpass;
mod rows;
mod schema;
#[cfg(test)]
mod tests;
mod tls;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use buildcat_proto::{LogPage, TaskId, Timestamp};
use postgres::config::Host;
use postgres::types::ToSql;
use postgres::{Client, Config, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use self::errors::{describe, is_unique_violation, write_error};
pub use self::schema::SCHEMA_VERSION;
use super::{Loaded, OutputExtent, Store, StoreError, StoreOp, StoredJob, StoredTask, page};

/// The advisory lock the active server holds: "buildcat" in ASCII, so it is recognisable
/// in `pg_locks` and unlikely to meet another program's key.
pub const LOCK_KEY: i64 = 0x6275_696c_6463_6174;

/// How long connecting may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Server-side TCP keepalives of the lock's session (idle, interval, count): PostgreSQL ends
/// the session of an active server whose host vanished after about 10 + 3 × 5 seconds, so
/// the lock goes to a standby within half a minute rather than the two hours of the
/// system's default.
const LOCK_KEEPALIVES: &str =
    "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3";

/// How a [`PostgresStore`] is opened.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// The database, as `postgresql://USER@HOST:PORT/DATABASE` (or libpq's `key=value`
    /// form); the password comes from the URL, `PGPASSWORD` or the password file.
    pub url: String,
    /// Where clients reach this server (`host:port`), stored while it is active so that
    /// standbys can tell clients where to go.
    pub advertise: String,
}

/// What trying to become the active server gave.
#[derive(Debug)]
pub enum Opened {
    /// This server holds the lock: the store is open and the term is its own (boxed: a
    /// store is large and a standby's answer small).
    Active(Box<PostgresStore>),
    /// Another server holds the lock.
    Standby {
        /// Where that server said clients reach it, if it did.
        active: Option<String>,
    },
}

/// Jobs kept in a PostgreSQL database, written only while this server is the active one.
pub struct PostgresStore {
    /// The session that holds the advisory lock; dropping it lets a standby take over.
    lock: Option<Client>,
    /// The session that reads and writes, with its prepared statements; `None` after it
    /// was lost, until the next commit connects again.
    data: Option<Session>,
    /// How to connect again (password filled in).
    config: Config,
    /// The TLS `sslmode` asks for, to connect again the same way.
    tls: MakeRustlsConnect,
    /// The database as shown in messages (no password).
    shown: String,
    /// The term this server became active in: its commits pass only while it is current.
    term: i64,
    /// Why the store refuses every commit, once another server took over.
    superseded: Option<StoreError>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.shown)
            .field("term", &self.term)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        let lock = self.lock.take();
        let data = self.data.take();
        // Let the lock go before the session closes: PostgreSQL ends a closed session
        // a moment later, and a server reopening the store at once must find it free.
        let release = move || {
            if let Some(mut lock) = lock {
                let _ = lock.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]);
            }
            drop(data);
        };
        // Each client runs a small runtime of its own, which may be neither used nor
        // dropped on a runtime's thread; there, a thread of its own does it.
        if tokio::runtime::Handle::try_current().is_ok() {
            if let Ok(thread) = std::thread::Builder::new()
                .name("buildcat-pg-close".into())
                .spawn(release)
            {
                let _ = thread.join();
            }
        } else {
            release();
        }
    }
}

/// The read-write session and its statements, prepared once per connection.
struct Session {
    /// The connection.
    client: Client,
    /// Every statement of the commit and read paths.
    statements: Statements,
}

/// The statements prepared on a session.
struct Statements {
    /// [`rows::CHECK_TERM`].
    check_term: Statement,
    /// [`rows::INSERT_JOB`].
    insert_job: Statement,
    /// [`rows::INSERT_TASK`].
    insert_task: Statement,
    /// [`rows::LAST_TASK_INDEX`].
    last_task_index: Statement,
    /// [`rows::UPDATE_JOB`].
    update_job: Statement,
    /// [`rows::UPDATE_TASK`].
    update_task: Statement,
    /// [`rows::DELETE_JOB`].
    delete_job: Statement,
    /// [`rows::DELETE_TASKS`].
    delete_tasks: Statement,
    /// [`rows::DELETE_OUTPUT`].
    delete_output: Statement,
    /// [`rows::RAISE_NEXT_NUMBER`].
    raise_next_number: Statement,
    /// [`rows::PAUSE_QUEUE`].
    pause_queue: Statement,
    /// [`rows::RESUME_QUEUE`].
    resume_queue: Statement,
    /// [`rows::APPEND_OUTPUT`].
    append_output: Statement,
    /// [`rows::DROP_OUTPUT`].
    drop_output: Statement,
    /// [`rows::SELECT_CHUNK_AT`].
    chunk_at: Statement,
    /// [`rows::SELECT_CHUNKS_AFTER`].
    chunks_after: Statement,
}

impl Statements {
    /// Prepares every statement on `client`.
    fn prepare(client: &mut Client) -> Result<Statements, postgres::Error> {
        Ok(Statements {
            check_term: client.prepare(rows::CHECK_TERM)?,
            insert_job: client.prepare(rows::INSERT_JOB)?,
            insert_task: client.prepare(rows::INSERT_TASK)?,
            last_task_index: client.prepare(rows::LAST_TASK_INDEX)?,
            update_job: client.prepare(rows::UPDATE_JOB)?,
            update_task: client.prepare(rows::UPDATE_TASK)?,
            delete_job: client.prepare(rows::DELETE_JOB)?,
            delete_tasks: client.prepare(rows::DELETE_TASKS)?,
            delete_output: client.prepare(rows::DELETE_OUTPUT)?,
            raise_next_number: client.prepare(rows::RAISE_NEXT_NUMBER)?,
            pause_queue: client.prepare(rows::PAUSE_QUEUE)?,
            resume_queue: client.prepare(rows::RESUME_QUEUE)?,
            append_output: client.prepare(rows::APPEND_OUTPUT)?,
            drop_output: client.prepare(rows::DROP_OUTPUT)?,
            chunk_at: client.prepare(rows::SELECT_CHUNK_AT)?,
            chunks_after: client.prepare(rows::SELECT_CHUNKS_AFTER)?,
        })
    }
}

/// Whether `storage` names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres_url(storage: &str) -> bool {
    storage.starts_with("postgresql://") || storage.starts_with("postgres://")
}

/// The connection settings from `url`, with the user and password filled in as libpq
/// would, and the database as shown in messages (without the password).
pub fn connection_config(url: &str) -> Result<(Config, String), StoreError> {
    connection_settings(url).map(|(config, shown, _)| (config, shown))
}

/// [`connection_config`], with the TLS connector `sslmode` and `sslrootcert` ask for.
fn connection_settings(url: &str) -> Result<(Config, String, MakeRustlsConnect), StoreError> {
    let (rest, tls_settings) = tls::split(url).map_err(|message| StoreError::Open {
        path: redact(url),
        message,
    })?;
    let mut config = Config::from_str(&rest).map_err(|e| StoreError::Open {
        path: redact(url),
        message: format!(
            "it is not a PostgreSQL address ({}); write postgresql://USER@HOST:PORT/DATABASE",
            errors::lowercase_first(&e.to_string())
        ),
    })?;
    if config.get_user().is_none() {
        // libpq's default: the user running the program.
        if let Some(user) = std::env::var("PGUSER")
            .ok()
            .or_else(|| std::env::var("USER").ok())
        {
            config.user(&user);
        }
    }
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or_default().to_owned();
    let database = config.get_dbname().unwrap_or(&user).to_owned();
    let shown = format!("postgresql://{user}@{host}:{port}/{database}");
    config.ssl_mode(tls_settings.mode.ssl_mode());
    let connector = tls::connector(&tls_settings).map_err(|message| StoreError::Open {
        path: shown.clone(),
        message,
    })?;
    if config.get_password().is_none() {
        let target = pgpass::Target {
            host: &host,
            port,
            database: &database,
            user: &user,
        };
        if let Some(password) = pgpass::password(&target) {
            config.password(password);
        }
    }
    config.connect_timeout(CONNECT_TIMEOUT);
    Ok((config, shown, connector))
}

/// `url` without a password, for a message about a URL that could not be read.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) => {
                let user = user.split_once(':').map_or(user, |(user, _)| user);
                format!("{scheme}://{user}@{host}")
            }
            None => url.to_owned(),
        },
        None => "the PostgreSQL address".to_owned(),
    }
}

impl PostgresStore {
    /// Opens the store if no other server holds it; fails with [`StoreError::Open`] naming
    /// the active server if one does.
    pub fn open(options: &PostgresOptions) -> Result<PostgresStore, StoreError> {
        match Self::try_open(options)? {
            Opened::Active(store) => Ok(*store),
            Opened::Standby { active } => {
                let (_, shown) = connection_config(&options.url)?;
                Err(StoreError::Open {
                    path: shown,
                    message: held_message(active.as_deref()),
                })
            }
        }
    }

    /// Tries once to become the active server: takes the advisory lock, creates or checks
    /// the layout, starts a new term (fencing off any server before) and stores where this
    /// one is reached.
    pub fn try_open(options: &PostgresOptions) -> Result<Opened, StoreError> {
        let (config, shown, tls) = connection_settings(&options.url)?;
        let open_err = |e: postgres::Error| StoreError::Open {
            path: shown.clone(),
            message: connect_hint(&e),
        };
        let mut lock_config = config.clone();
        lock_config.application_name(&format!("buildcat-lock-{}", std::process::id()));
        lock_config.options(&lock_options(&config));
        let mut lock = lock_config.connect(tls.clone()).map_err(open_err)?;
        let held: bool = lock
            .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
            .and_then(|row| row.try_get(0))
            .map_err(open_err)?;
        if !held {
            // The active server's address, if it got as far as storing it.
            let active = lock
                .query_opt(
                    "SELECT active_address FROM buildcat.meta WHERE \
                     to_regclass('buildcat.meta') IS NOT NULL",
                    &[],
                )
                .ok()
                .flatten()
                .and_then(|row| row.try_get::<_, Option<String>>(0).ok().flatten());
            return Ok(Opened::Standby { active });
        }
        let mut data = connect_data(&config, &tls).map_err(open_err)?;
        let term = {
            let mut tx = data.transaction().map_err(open_err)?;
            schema::init(&mut tx, &shown)?;
            let now = i64::try_from(Timestamp::now().0).unwrap_or(i64::MAX);
            let term: i64 = tx
                .query_one(
                    "UPDATE buildcat.meta SET term = term + 1, active_address = $1, \
                     active_since = $2 RETURNING term",
                    &[&options.advertise, &now],
                )
                .and_then(|row| row.try_get(0))
                .map_err(open_err)?;
            tx.commit().map_err(open_err)?;
            term
        };
        let statements = Statements::prepare(&mut data).map_err(open_err)?;
        Ok(Opened::Active(Box::new(PostgresStore {
            lock: Some(lock),
            data: Some(Session {
                client: data,
                statements,
            }),
            config,
            tls,
            shown,
            term,
            superseded: None,
        })))
    }

    /// The term this server became active in.
    pub fn term(&self) -> i64 {
        self.term
    }

    /// The database as shown in messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The read-write session, connected again if it was lost.
    fn session(&mut self) -> Result<&mut Session, StoreError> {
        if self
            .data
            .as_ref()
            .is_some_and(|session| session.client.is_closed())
        {
            self.data = None;
        }
        if self.data.is_none() {
            let mut client = connect_data(&self.config, &self.tls)
                .map_err(|e| write_error("could not connect to the database again", &e))?;
            let statements = Statements::prepare(&mut client)
                .map_err(|e| write_error("could not prepare statements", &e))?;
            self.data = Some(Session { client, statements });
        }
        self.data.as_mut().ok_or_else(|| {
            StoreError::Unavailable("the database session was lost; it is tried again".into())
        })
    }

    /// The error a commit of a superseded server fails with.
    fn superseded_error(&self) -> StoreError {
        StoreError::Superseded {
            path: self.shown.clone(),
            message: format!(
                "this server was active in term {} and another server has become active since \
                 (this one was stopped or cut off from the database for longer than its \
                 session lasted); its changes are refused, so it stops serving: clients and \
                 workers go on with the active server",
                self.term
            ),
        }
    }
}

/// The libpq `options` for the lock's session: the keepalives, after any the URL gave.
fn lock_options(config: &Config) -> String {
    match config.get_options() {
        Some(options) if !options.is_empty() => format!("{options} {LOCK_KEEPALIVES}"),
        _ => LOCK_KEEPALIVES.to_owned(),
    }
}

/// Connects the read-write session.
fn connect_data(config: &Config, tls: &MakeRustlsConnect) -> Result<Client, postgres::Error> {
    let mut config = config.clone();
    config.application_name(&format!("buildcat-{}", std::process::id()));
    config.connect(tls.clone())
}

/// What a standby says about the active server.
fn held_message(active: Option<&str>) -> String {
    match active {
        Some(address) => format!(
            "it is held by the active buildcat server at {address}; this server can only \
             stand by until that one stops"
        ),
        None => "it is held by another buildcat server (which has not said where it is \
                 reached); this server can only stand by until that one stops"
            .to_owned(),
    }
}

/// What went wrong connecting, with a hint.
fn connect_hint(error: &postgres::Error) -> String {
    let text = describe(error);
    if error.code() == Some(&postgres::error::SqlState::INVALID_PASSWORD) {
        format!(
            "{text}; give the password in PGPASSWORD or ~/.pgpass (host:port:database:user:password)"
        )
    } else if text.contains("certificate") || text.contains("TLS") || text.contains("tls") {
        format!(
            "{text}; check sslrootcert (the CA that signed the database's certificate) and, \
             for sslmode=verify-full, that the certificate names the host of the address"
        )
    } else if error.as_db_error().is_none() {
        format!("{text}; check that PostgreSQL runs there and accepts TCP connections")
    } else {
        text
    }
}

/// A read failure in words.
fn read_error(what: &str, error: &postgres::Error) -> StoreError {
    write_error(&format!("could not read {what}"), error)
}

impl Store for PostgresStore {
    fn load(&mut self) -> Result<Loaded, StoreError> {
        let shown = self.shown.clone();
        let incompatible = |message: String| StoreError::Incompatible {
            path: shown.clone(),
            message,
        };
        let client = &mut self.session()?.client;
        let mut jobs: Vec<StoredJob> = Vec::new();
        for row in client
            .query(rows::SELECT_JOBS, &[])
            .map_err(|e| read_error("jobs", &e))?
        {
            let id: Vec<u8> = row.try_get(0).map_err(|e| read_error("jobs", &e))?;
            let id = rows::decode_id(&id).map_err(&incompatible)?;
            let job = rows::decode_job(id, &row)
                .map_err(|message| incompatible(format!("job {id}: {message}")))?;
            jobs.push(StoredJob {
                job,
                tasks: Vec::new(),
            });
        }
        // Tasks come in the jobs' order, so one pass over both pairs them.
        let mut place = 0;
        for row in client
            .query(rows::SELECT_TASKS, &[])
            .map_err(|e| read_error("tasks", &e))?
        {
            let id = rows::decode_task_id(&row)
                .map_err(|message| incompatible(format!("a task: {message}")))?;
            while jobs.get(place).is_some_and(|job| job.job.id < id.job) {
                place += 1;
            }
            let Some(job) = jobs.get_mut(place).filter(|job| job.job.id == id.job) else {
                return Err(incompatible(format!(
                    "task {id} belongs to no stored job; the database is damaged"
                )));
            };
            if usize::try_from(id.index).ok() != Some(job.tasks.len()) {
                return Err(incompatible(format!(
                    "job {}: its tasks are not numbered 0, 1, 2.. (task {} is missing); the \
                     database is damaged",
                    id.job,
                    job.tasks.len()
                )));
            }
            let task = rows::decode_task(id, &job.job, &row)
                .map_err(|message| incompatible(format!("task {id}: {message}")))?;
            job.tasks.push(task);
        }
        if let Some(job) = jobs.iter().find(|job| job.tasks.is_empty()) {
            return Err(incompatible(format!(
                "job {} has no tasks; the database is damaged",
                job.job.id
            )));
        }
        let mut extents = HashMap::new();
        for row in client
            .query(rows::SELECT_EXTENTS, &[])
            .map_err(|e| read_error("task output", &e))?
        {
            let id = rows::decode_task_id(&row)
                .map_err(|message| incompatible(format!("task output: {message}")))?;
            let bytes: i64 = row.try_get(2).map_err(|e| read_error("task output", &e))?;
            let lines: i64 = row.try_get(3).map_err(|e| read_error("task output", &e))?;
            extents.insert(
                id,
                OutputExtent {
                    bytes: u64::try_from(bytes).unwrap_or(0),
                    lines: u64::try_from(lines).unwrap_or(0),
                },
            );
        }
        for job in &mut jobs {
            for task in &mut job.tasks {
                if let Some(extent) = extents.remove(&task.status.id) {
                    task.output = extent;
                }
            }
        }
        let next_number: i64 = client
            .query_one("SELECT next_number FROM buildcat.meta", &[])
            .and_then(|row| row.try_get(0))
            .map_err(|e| read_error("the next job number", &e))?;
        let next_number = u64::try_from(next_number).map_err(|_| {
            incompatible(format!("its next job number {next_number} is out of range"))
        })?;
        let paused_queues = client
            .query(
                "SELECT queue FROM buildcat.paused_queues ORDER BY queue",
                &[],
            )
            .map_err(|e| read_error("the paused queues", &e))?
            .iter()
            .map(|row| row.try_get::<_, String>(0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| read_error("the paused queues", &e))?;
        Ok(Loaded {
            jobs,
            next_number,
            paused_queues,
        })
    }

    fn commit(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        if let Some(superseded) = &self.superseded {
            return Err(superseded.clone());
        }
        if ops.is_empty() {
            return Ok(());
        }
        let term = self.term;
        let superseded = self.superseded_error();
        let session = self.session()?;
        let result = commit_in(session, term, ops);
        match result {
            Err(Refusal::Superseded) => {
                self.superseded = Some(superseded.clone());
                Err(superseded)
            }
            Err(Refusal::Store(error)) => {
                if error.is_retryable() {
                    // The session may be broken; the next commit connects again.
                    if self
                        .data
                        .as_ref()
                        .is_some_and(|session| session.client.is_closed())
                    {
                        self.data = None;
                    }
                }
                Err(error)
            }
            Ok(()) => Ok(()),
        }
    }

    fn read_output(
        &mut self,
        task: TaskId,
        from: u64,
        max_bytes: usize,
    ) -> Result<LogPage, StoreError> {
        let session = self.session()?;
        let job = task.job.0.as_bytes().as_slice();
        let index = i64::from(task.index);
        let from_sql = i64::try_from(from).unwrap_or(i64::MAX);
        let before = session
            .client
            .query_opt(&session.statements.chunk_at, &[&job, &index, &from_sql])
            .map_err(|e| read_error("task output", &e))?
            .map(|row| rows::decode_chunk(&row))
            .transpose()
            .map_err(|message| StoreError::Database(format!("task {task} output: {message}")))?;
        let params: [&(dyn ToSql + Sync); 3] = [&job, &index, &from_sql];
        let mut after = session
            .client
            .query_raw(&session.statements.chunks_after, params)
            .map_err(|e| read_error("task output", &e))?;
        page::fill(from, max_bytes, before, || {
            use postgres::fallible_iterator::FallibleIterator;
            after
                .next()
                .map_err(|e| read_error("task output", &e))?
                .map(|row| {
                    rows::decode_chunk(&row).map_err(|message| {
                        StoreError::Database(format!("task {task} output: {message}"))
                    })
                })
                .transpose()
        })
    }
}

/// Why a commit failed.
enum Refusal {
    /// Another server has become active since this one.
    Superseded,
    /// The database failed or refused the change.
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        Refusal::Store(error)
    }
}

/// Applies `ops` in one transaction that first checks `term` is still current.
fn commit_in(session: &mut Session, term: i64, ops: &[StoreOp]) -> Result<(), Refusal> {
    let Session { client, statements } = session;
    // On any error the transaction is dropped, which rolls it back.
    let mut tx = client
        .transaction()
        .map_err(|e| write_error("could not begin a transaction", &e))?;
    let current = tx
        .query_opt(&statements.check_term, &[&term])
        .map_err(|e| write_error("could not check the term", &e))?;
    if current.is_none() {
        return Err(Refusal::Superseded);
    }
    let mut next_number: Option<i64> = None;
    for op in ops {
        apply(&mut tx, statements, op, &mut next_number)?;
    }
    if let Some(past) = next_number {
        tx.execute(&statements.raise_next_number, &[&past])
            .map_err(|e| write_error("could not store the next job number", &e))?;
    }
    tx.commit()
        .map_err(|e| write_error("could not commit", &e))?;
    Ok(())
}

/// Inserts one task row (its job's row is stored already, or in the same transaction).
fn insert_task(
    tx: &mut postgres::Transaction<'_>,
    statements: &Statements,
    task: &StoredTask,
) -> Result<(), StoreError> {
    let status = &task.status;
    let task_id = status.id;
    let columns = rows::TaskColumns::of(status)?;
    let index = i64::from(task_id.index);
    tx.execute(
        &statements.insert_task,
        &[
            &task_id.job.0.as_bytes().as_slice(),
            &index,
            &status.frames,
            &task.args,
            &columns.state,
            &columns.max_attempts,
            &columns.ended_at,
            &columns.attempts,
            &status.result,
            &columns.failure,
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Database(format!(
                "could not insert task {task_id}: a task with this id is already \
                 stored"
            ))
        } else {
            write_error(&format!("could not insert task {task_id}"), &e)
        }
    })?;
    Ok(())
}

/// Applies one op within the commit's transaction.
fn apply(
    tx: &mut postgres::Transaction<'_>,
    statements: &Statements,
    op: &StoreOp,
    next_number: &mut Option<i64>,
) -> Result<(), StoreError> {
    match op {
        StoreOp::Insert(job) => {
            super::sqlite::rows::check_new_job(job)?;
            let record = &job.job;
            let id = record.id;
            let subject = format!("job {id}");
            let after = rows::encode(&record.options.after, "dependencies", &subject)?;
            let timeout = record
                .options
                .timeout_ms
                .map(|t| rows::to_sql(t, "timeout", &subject))
                .transpose()?;
            let number = rows::to_sql(record.number, "number", &subject)?;
            let created = rows::to_sql(record.created_at.0, "creation time", &subject)?;
            let ended = rows::to_sql_time(record.ended_at, "end time", &subject)?;
            let max_attempts = i64::from(record.options.max_attempts);
            let gpus = i64::from(record.options.gpus.count);
            let gpu_memory = rows::to_sql(record.options.gpus.memory_mib, "GPU memory", &subject)?;
            tx.execute(
                &statements.insert_job,
                &[
                    &id.0.as_bytes().as_slice(),
                    &number,
                    &record.name,
                    &record.queue,
                    &record.kind,
                    &record.submitter,
                    &record.runs,
                    &timeout,
                    &max_attempts,
                    &record.options.priority,
                    &after,
                    &record.paused,
                    &created,
                    &ended,
                    &gpus,
                    &gpu_memory,
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    let what = match e.as_db_error().and_then(|db| db.constraint()) {
                        Some(constraint) if constraint.contains("number") => {
                            format!("another stored job has its number {}", record.number)
                        }
                        _ => "a job with this id is already stored".to_owned(),
                    };
                    StoreError::Database(format!("could not insert job {id}: {what}"))
                } else {
                    write_error(&format!("could not insert job {id}"), &e)
                }
            })?;
            for task in &job.tasks {
                insert_task(tx, statements, task)?;
            }
            let past = record
                .number
                .checked_add(1)
                .and_then(|past| i64::try_from(past).ok())
                .ok_or_else(|| {
                    StoreError::Database(format!(
                        "could not insert job {id}: its number {} is too large to store",
                        record.number
                    ))
                })?;
            *next_number = Some(next_number.map_or(past, |next| next.max(past)));
        }
        StoreOp::AppendTasks { job, tasks } => {
            let last: Option<i64> = tx
                .query_one(&statements.last_task_index, &[&job.0.as_bytes().as_slice()])
                .and_then(|row| row.try_get(0))
                .map_err(|e| write_error(&format!("could not read the tasks of job {job}"), &e))?;
            for task in super::number_added(*job, last, tasks)? {
                insert_task(tx, statements, &task)?;
            }
        }
        StoreOp::UpdateJob(record) => {
            let id = record.id;
            let ended = rows::to_sql_time(record.ended_at, "end time", &format!("job {id}"))?;
            let changed = tx
                .execute(
                    &statements.update_job,
                    &[
                        &id.0.as_bytes().as_slice(),
                        &record.options.priority,
                        &record.paused,
                        &ended,
                    ],
                )
                .map_err(|e| write_error(&format!("could not update job {id}"), &e))?;
            if changed == 0 {
                return Err(StoreError::Database(format!(
                    "could not update job {id}: it is not stored"
                )));
            }
        }
        StoreOp::UpdateTask(status) => {
            let id = status.id;
            let columns = rows::TaskColumns::of(status)?;
            let index = i64::from(id.index);
            let changed = tx
                .execute(
                    &statements.update_task,
                    &[
                        &id.job.0.as_bytes().as_slice(),
                        &index,
                        &columns.state,
                        &columns.max_attempts,
                        &columns.ended_at,
                        &columns.attempts,
                        &status.result,
                        &columns.failure,
                    ],
                )
                .map_err(|e| write_error(&format!("could not update task {id}"), &e))?;
            if changed == 0 {
                return Err(StoreError::Database(format!(
                    "could not update task {id}: it is not stored"
                )));
            }
        }
        StoreOp::Delete(id) => {
            // Deleting a job that is not stored is not an error: pruning twice leaves the
            // same state.
            let key = id.0.as_bytes().as_slice();
            for (statement, what) in [
                (&statements.delete_job, "the record"),
                (&statements.delete_tasks, "the tasks"),
                (&statements.delete_output, "the output"),
            ] {
                tx.execute(statement, &[&key]).map_err(|e| {
                    write_error(&format!("could not delete {what} of job {id}"), &e)
                })?;
            }
        }
        StoreOp::PauseQueue { queue, paused } => {
            let statement = if *paused {
                &statements.pause_queue
            } else {
                &statements.resume_queue
            };
            tx.execute(statement, &[queue]).map_err(|e| {
                write_error(&format!("could not store the pause of queue {queue}"), &e)
            })?;
        }
        StoreOp::AppendOutput {
            task,
            offset,
            line,
            lines,
            text,
            stderr,
        } => {
            let subject = format!("output of task {task}");
            let streams = super::page::stderr_to_bytes(stderr);
            let index = i64::from(task.index);
            tx.execute(
                &statements.append_output,
                &[
                    &task.job.0.as_bytes().as_slice(),
                    &index,
                    &rows::to_sql(*offset, "offset", &subject)?,
                    &rows::to_sql(*line, "line", &subject)?,
                    &rows::to_sql(*lines, "line count", &subject)?,
                    &text.as_bytes(),
                    &streams,
                ],
            )
            .map_err(|e| write_error(&format!("could not store output of task {task}"), &e))?;
        }
        StoreOp::DropOutput { task, from, to } => {
            let subject = format!("output of task {task}");
            let index = i64::from(task.index);
            tx.execute(
                &statements.drop_output,
                &[
                    &task.job.0.as_bytes().as_slice(),
                    &index,
                    &rows::to_sql(*from, "offset", &subject)?,
                    &rows::to_sql(*to, "offset", &subject)?,
                ],
            )
            .map_err(|e| write_error(&format!("could not drop output of task {task}"), &e))?;
        }
    }
    Ok(())
}
