//! [`Client`]: typed requests over one shared connection.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use buildcat_proto::{
    DEFAULT_MAX_FRAME, FarmInfo, JobChange, JobEvent, JobId, JobOptions, JobQuery, JobStatus,
    LogPage, NewJob, Reply, Request, RequeueTarget, Task, codec,
};

use tokio::sync::mpsc;

use crate::connect::{self, DEFAULT_TIMEOUT};
use crate::connection::Connection;
use crate::error::ClientError;
use crate::handle::JobHandle;
use crate::reconnect::Reconnect;

/// How a [`Client`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// How long resolving the address and opening the TCP connection may take.
    pub connect_timeout: Duration,
    /// How long the server may take to answer the hello once connected.
    pub handshake_timeout: Duration,
    /// The largest frame the client accepts from the server, and sends (the server's own
    /// limit, from its welcome, applies to sending when it is smaller).
    pub max_frame: usize,
    /// TLS with mutual certificates; `None` for plain TCP.
    pub tls: Option<crate::tls::TlsOptions>,
    /// How [`Client::reconnect`] retries after the connection is lost.
    pub reconnect: Reconnect,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: DEFAULT_TIMEOUT,
            handshake_timeout: DEFAULT_TIMEOUT,
            max_frame: DEFAULT_MAX_FRAME,
            tls: None,
            reconnect: Reconnect::default(),
        }
    }
}

/// Jobs as [`Client::jobs`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobListing {
    /// The jobs, newest first, without their results.
    pub jobs: Vec<JobStatus>,
    /// Whether more jobs matched than are listed (the limit, or what fits in one reply,
    /// cut the list): a narrower query (queue, state) shows the others.
    pub more: bool,
}

/// A connection to a buildcat server.
///
/// Cheap to clone: clones share one connection, on which any number of requests may be in
/// flight at once (replies are matched to requests by id, in whatever order they come).
/// The connection closes when the last clone, and the last [`JobHandle`] made from it, is
/// dropped.
///
/// If the connection is lost, every request waiting and every later one fails with
/// [`ClientError::ConnectionLost`]. [`Client::reconnect`] then opens a new connection to
/// the same server for every clone; requests made after it use the new one.
#[derive(Clone)]
pub struct Client {
    /// What every clone shares, so that a reconnect by one serves them all.
    shared: Arc<Shared>,
}

/// What the clones of a [`Client`] share.
struct Shared {
    /// The address as the caller gave it, dialed again on a reconnect.
    addr: String,
    /// The options it connected with, used again on a reconnect.
    options: ClientOptions,
    /// The current connection. A std lock, held only to clone or swap the `Arc`, never
    /// across an await; a request keeps the connection it started on to its end.
    connection: RwLock<Arc<Connection>>,
    /// Held while reconnecting, so clones that lose the connection together open one new
    /// connection, not one each.
    reconnecting: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.addr())
            .field("server_version", &self.server_version())
            .finish()
    }
}

impl Client {
    /// Connects to the server at `addr` (`host:port`, e.g. `127.0.0.1:2228`, `[::1]:2228`
    /// or `render-server:2228`) with the default options.
    pub async fn connect(addr: &str) -> Result<Client, ClientError> {
        Client::connect_with(addr, ClientOptions::default()).await
    }

    /// Connects to the server at `addr` with the given timeouts and frame limit.
    ///
    /// Every address the host name resolves to is tried in turn.
    pub async fn connect_with(addr: &str, options: ClientOptions) -> Result<Client, ClientError> {
        let connection = open_connection(addr, &options).await?;
        Ok(Client {
            shared: Arc::new(Shared {
                addr: addr.to_owned(),
                options,
                connection: RwLock::new(Arc::new(connection)),
                reconnecting: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The server's address as given to [`Client::connect`].
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// The server's software version, as it said in its welcome (on the latest
    /// connection: a server may have been upgraded while the client reconnected).
    pub fn server_version(&self) -> String {
        self.connection().server_version().to_owned()
    }

    /// Whether the current connection has ended; requests fail until
    /// [`Client::reconnect`] opens a new one.
    pub fn is_closed(&self) -> bool {
        self.connection().is_closed()
    }

    /// Opens a new connection to the same server, with the same options, for this client
    /// and every clone, unless the current connection is still open.
    ///
    /// Retries with a doubling delay (see [`Reconnect`], from
    /// [`ClientOptions::reconnect`]) while the server is out of reach, and gives up with
    /// [`ClientError::GaveUp`] after [`Reconnect::give_up_after`]. A failure that retrying
    /// cannot fix (another protocol version, an unusable TLS file) is returned at once.
    ///
    /// Requests that were in flight on the lost connection have failed with
    /// [`ClientError::ConnectionLost`]; whether the server acted on them is unknown, so
    /// make them again only where doing so twice is harmless (asking, waiting, following).
    pub async fn reconnect(&self) -> Result<(), ClientError> {
        let _only_one = self.shared.reconnecting.lock().await;
        if !self.is_closed() {
            // Another clone reconnected while this one waited for the lock.
            return Ok(());
        }
        let policy = &self.shared.options.reconnect;
        let started = Instant::now();
        let mut delay = None;
        loop {
            match open_connection(&self.shared.addr, &self.shared.options).await {
                Ok(connection) => {
                    *self
                        .shared
                        .connection
                        .write()
                        .unwrap_or_else(PoisonError::into_inner) = Arc::new(connection);
                    return Ok(());
                }
                Err(error) if !error.is_transient() => return Err(error),
                Err(error) => {
                    let wait = policy.next_delay(delay);
                    let elapsed = started.elapsed();
                    if elapsed + wait > policy.give_up_after {
                        return Err(ClientError::GaveUp {
                            addr: self.shared.addr.clone(),
                            after: elapsed,
                            last: Box::new(error),
                        });
                    }
                    tracing::debug!(
                        server = %self.shared.addr,
                        error = %error,
                        retry_in = ?wait,
                        "could not reconnect yet"
                    );
                    tokio::time::sleep(wait).await;
                    delay = Some(wait);
                }
            }
        }
    }

    /// The current connection; a request holds it to its end even if a reconnect swaps it.
    fn connection(&self) -> Arc<Connection> {
        Arc::clone(
            &self
                .shared
                .connection
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Submits one task to `queue` with the task's default options.
    pub async fn submit<T: Task>(
        &self,
        queue: &str,
        task: &T,
    ) -> Result<JobHandle<T>, ClientError> {
        self.submit_with(queue, task, task.default_options()).await
    }

    /// Submits one task to `queue` with the given options.
    ///
    /// Returns once the server has stored the job.
    pub async fn submit_with<T: Task>(
        &self,
        queue: &str,
        task: &T,
        options: JobOptions,
    ) -> Result<JobHandle<T>, ClientError> {
        let job = new_job(queue, task, options)?;
        let ids = self.submit_jobs(vec![job]).await?;
        match ids.as_slice() {
            [id] => Ok(self.handle(*id)),
            _ => Err(wrong_id_count(1, ids.len())),
        }
    }

    /// Submits many tasks to `queue` in one request, each with its default options.
    ///
    /// The handles come in the order of `tasks`. An empty batch sends nothing.
    pub async fn submit_batch<T: Task>(
        &self,
        queue: &str,
        tasks: impl IntoIterator<Item = T>,
    ) -> Result<Vec<JobHandle<T>>, ClientError> {
        let jobs = tasks
            .into_iter()
            .map(|task| new_job(queue, &task, task.default_options()))
            .collect::<Result<Vec<_>, _>>()?;
        let ids = self.submit_jobs(jobs).await?;
        Ok(ids.into_iter().map(|id| self.handle(id)).collect())
    }

    /// Submits jobs as they are, in one request; returns their ids in the same order.
    ///
    /// Returns once the server has stored every job. An empty list sends nothing.
    pub async fn submit_jobs(&self, jobs: Vec<NewJob>) -> Result<Vec<JobId>, ClientError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        for job in &jobs {
            check_job(job)?;
        }
        let count = jobs.len();
        match self.request(Request::Submit(jobs)).await? {
            Reply::Submitted(ids) if ids.len() == count => Ok(ids),
            Reply::Submitted(ids) => Err(wrong_id_count(count, ids.len())),
            other => Err(unexpected("Submit", &other)),
        }
    }

    /// A handle on a job submitted earlier (by this program or another), to wait for its
    /// typed output.
    ///
    /// The job's kind is checked against `T` when its output is read.
    pub fn handle<T: Task>(&self, id: JobId) -> JobHandle<T> {
        JobHandle::new(self.clone(), id)
    }

    /// Waits until the job has ended, however it ended, and returns its final record.
    ///
    /// The server tells the client when the job ends; nothing polls, so waiting for hours
    /// costs nothing.
    pub async fn wait_job(&self, id: JobId) -> Result<JobStatus, ClientError> {
        match self.request(Request::Wait(id)).await? {
            Reply::Ended(status) => check_status(id, status),
            other => Err(unexpected("Wait", &other)),
        }
    }

    /// What the server knows of a job now.
    pub async fn job(&self, id: JobId) -> Result<JobStatus, ClientError> {
        match self.request(Request::Job(id)).await? {
            Reply::Job(status) => check_status(id, status),
            other => Err(unexpected("Job", &other)),
        }
    }

    /// The farm at a glance: queues with their counts, and workers.
    pub async fn info(&self) -> Result<FarmInfo, ClientError> {
        match self.request(Request::Info).await? {
            Reply::Info(info) => Ok(info),
            other => Err(unexpected("Info", &other)),
        }
    }

    /// Cancels jobs: queued ones are removed, running ones are killed by their worker.
    pub async fn cancel(&self, jobs: Vec<JobId>) -> Result<Vec<JobChange>, ClientError> {
        match self.request(Request::Cancel(jobs)).await? {
            Reply::Changes(changes) => Ok(changes),
            other => Err(unexpected("Cancel", &other)),
        }
    }

    /// Lets a quarantined worker (every slot registered under `name`) take work again.
    ///
    /// # Errors
    /// [`ClientError::RequestRefused`] with `RequestError::UnknownWorker` when the server knows no
    /// worker of that name.
    pub async fn enable_worker(&self, name: &str) -> Result<(), ClientError> {
        match self.request(Request::EnableWorker(name.to_owned())).await? {
            Reply::Ack => Ok(()),
            other => Err(unexpected("EnableWorker", &other)),
        }
    }

    /// Puts failed or canceled jobs back in their queue.
    pub async fn requeue(&self, target: RequeueTarget) -> Result<Vec<JobChange>, ClientError> {
        match self.request(Request::Requeue(target)).await? {
            Reply::Changes(changes) => Ok(changes),
            other => Err(unexpected("Requeue", &other)),
        }
    }

    /// Lists jobs, newest first: at most `query.limit`, and fewer where more would not fit
    /// in one reply; [`JobListing::more`] says whether more matched.
    pub async fn jobs(&self, query: JobQuery) -> Result<JobListing, ClientError> {
        match self.request(Request::Jobs(query)).await? {
            Reply::Jobs { jobs, more } => Ok(JobListing { jobs, more }),
            other => Err(unexpected("Jobs", &other)),
        }
    }

    /// One page of a job's output from byte offset `from` (0 for the start): the lines
    /// that fit in a page, where they start, where the next page starts, and whether the
    /// server holds more. Ask again from [`LogPage::next`] while [`LogPage::more`] is true.
    pub async fn log_page(&self, job: JobId, from: u64) -> Result<LogPage, ClientError> {
        let request = Request::Logs {
            job,
            from,
            follow: false,
        };
        match self.request(request).await? {
            Reply::Log(page) => Ok(page),
            other => Err(unexpected("Logs", &other)),
        }
    }

    /// Streams a job's output from byte offset `from`: what it printed from there (stored
    /// pages), then new lines as they come, each as a [`JobEvent::Log`] event on `events`
    /// that says where its lines are. Returns when the job has ended, with the offset where
    /// its output ends.
    ///
    /// After a lost connection, follow again from the `next` of the last page received to
    /// carry on exactly where it stopped. Read `events` while this runs: if the channel
    /// fills, the stream ends with [`ClientError::Lagged`] (follow again to carry on).
    pub async fn follow_logs(
        &self,
        job: JobId,
        from: u64,
        events: mpsc::Sender<JobEvent>,
    ) -> Result<u64, ClientError> {
        let request = Request::Logs {
            job,
            from,
            follow: true,
        };
        match self
            .connection()
            .request_with_events(request, events)
            .await?
        {
            Reply::Log(page) => Ok(page.next),
            other => Err(unexpected("Logs", &other)),
        }
    }

    /// Follows jobs: their progress and ends arrive on `events` as [`JobEvent::Progress`]
    /// and [`JobEvent::Ended`]; returns once every one has ended.
    ///
    /// Read `events` while this runs: if the channel fills, the watch ends with
    /// [`ClientError::Lagged`] (watch the jobs not ended yet again to carry on).
    pub async fn watch(
        &self,
        jobs: Vec<JobId>,
        events: mpsc::Sender<JobEvent>,
    ) -> Result<(), ClientError> {
        match self
            .connection()
            .request_with_events(Request::Watch(jobs), events)
            .await?
        {
            Reply::Ack => Ok(()),
            other => Err(unexpected("Watch", &other)),
        }
    }

    /// Sends any request and waits for its reply.
    ///
    /// The typed methods are built on this. A request the server cannot serve gives
    /// [`ClientError::RequestRefused`]. Dropping the future stops waiting; the server may
    /// still act on the request.
    pub async fn request(&self, request: Request) -> Result<Reply, ClientError> {
        self.connection().request(request).await
    }
}

/// Connects, says hello and starts the connection's tasks.
async fn open_connection(addr: &str, options: &ClientOptions) -> Result<Connection, ClientError> {
    let (framed, welcome) = connect::open(addr, options).await?;
    Ok(Connection::start(addr, framed, &welcome, options.max_frame))
}

/// A task as a job for `queue`.
fn new_job<T: Task>(queue: &str, task: &T, options: JobOptions) -> Result<NewJob, ClientError> {
    let args = codec::encode_value(task).map_err(ClientError::Encode)?;
    Ok(NewJob {
        queue: queue.to_owned(),
        kind: T::KIND.to_owned(),
        args,
        options,
    })
}

/// Refuses, before anything is sent, a job the server would refuse.
fn check_job(job: &NewJob) -> Result<(), ClientError> {
    if job.queue.trim().is_empty() {
        return Err(ClientError::Invalid(
            "the queue name is empty; every job goes into a named queue, such as `default`"
                .to_owned(),
        ));
    }
    if job.kind.trim().is_empty() {
        return Err(ClientError::Invalid(format!(
            "a job for queue `{}` has an empty kind",
            job.queue
        )));
    }
    Ok(())
}

/// Checks that a record is about the job asked for.
fn check_status(id: JobId, status: JobStatus) -> Result<JobStatus, ClientError> {
    if status.id == id {
        Ok(status)
    } else {
        Err(ClientError::Protocol(format!(
            "asked about job {id}, it answered with the record of job {}",
            status.id
        )))
    }
}

/// The server returned a number of ids other than the number of jobs submitted.
fn wrong_id_count(submitted: usize, returned: usize) -> ClientError {
    ClientError::Protocol(format!(
        "{submitted} jobs were submitted but it returned {returned} ids"
    ))
}

/// A reply that does not answer the request it came for.
fn unexpected(request: &str, reply: &Reply) -> ClientError {
    let name = match reply {
        Reply::Submitted(_) => "Submitted",
        Reply::Ended(_) => "Ended",
        Reply::Job(_) => "Job",
        Reply::Info(_) => "Info",
        Reply::Registered { .. } => "Registered",
        Reply::Ack => "Ack",
        Reply::Changes(_) => "Changes",
        Reply::Jobs { .. } => "Jobs",
        Reply::Log(_) => "Log",
    };
    ClientError::Protocol(format!(
        "it answered a `{request}` request with a `{name}` reply"
    ))
}
