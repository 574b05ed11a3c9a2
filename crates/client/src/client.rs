//! [`Client`]: typed requests over one shared connection.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use buildcat_proto::{
    Change, Changed, DEFAULT_MAX_FRAME, FarmInfo, JobEvent, JobId, JobOptions, JobQuery, JobRef,
    JobStatus, JobSummary, LogPage, NewJob, NewTask, Reply, Request, Requeue, Submitted, Task,
    TaskRef, TaskStatus, codec,
};

use tokio::sync::mpsc;

use crate::builder::JobBuilder;
use crate::connect::{self, DEFAULT_TIMEOUT};
use crate::connection::Connection;
use crate::error::ClientError;
use crate::handle::JobHandle;
use crate::reconnect::Reconnect;
use crate::submitter::submitter;

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
    /// The jobs, newest first, each with its tasks' counts by state.
    pub jobs: Vec<JobSummary>,
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

    /// Submits one task to `queue` as a job of one task, with the task's default options.
    ///
    /// The job's name is left empty (the server names it after its kind) and says nothing
    /// of what it runs; [`Client::new_job`] sets both.
    pub async fn submit<T: Task>(
        &self,
        queue: &str,
        task: &T,
    ) -> Result<JobHandle<T>, ClientError> {
        self.submit_with(queue, task, task.default_options()).await
    }

    /// Submits one task to `queue` as a job of one task, with the given options.
    ///
    /// Returns once the server has stored the job.
    pub async fn submit_with<T: Task>(
        &self,
        queue: &str,
        task: &T,
        options: JobOptions,
    ) -> Result<JobHandle<T>, ClientError> {
        self.new_job::<T>(queue)
            .options(options)
            .task(None, task)
            .submit()
            .await
    }

    /// Submits many tasks to `queue` in one request, each as a job of its own with its
    /// task's default options.
    ///
    /// The handles come in the order of `tasks`. An empty batch sends nothing. To submit
    /// one named job of many tasks (a render in chunks), use [`Client::new_job`].
    pub async fn submit_batch<T: Task>(
        &self,
        queue: &str,
        tasks: impl IntoIterator<Item = T>,
    ) -> Result<Vec<JobHandle<T>>, ClientError> {
        let jobs = tasks
            .into_iter()
            .map(|task| {
                let options = task.default_options();
                one_task_job::<T>(queue, None, &task, options)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let submitted = self.submit_jobs(jobs).await?;
        Ok(submitted
            .into_iter()
            .map(|job| JobHandle::new(self.clone(), job))
            .collect())
    }

    /// Starts a job of many tasks of type `T` for `queue`: name it, say what it runs, add
    /// its tasks, then [`JobBuilder::submit`] sends it in one request.
    ///
    /// ```no_run
    /// # async fn example(client: buildcat_client::Client) -> Result<(), buildcat_client::ClientError> {
    /// use buildcat_client::WorkerInfo;
    ///
    /// let job = client
    ///     .new_job::<WorkerInfo>("default")
    ///     .name("three reports")
    ///     .task(None, &WorkerInfo)
    ///     .task(None, &WorkerInfo)
    ///     .task(None, &WorkerInfo)
    ///     .submit()
    ///     .await?;
    /// for output in job.wait_all().await? {
    ///     println!("{}", output?.worker.name);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn new_job<T: Task>(&self, queue: &str) -> JobBuilder<T> {
        JobBuilder::new(self.clone(), queue)
    }

    /// Submits jobs as they are, in one request; returns each job's id, number and task
    /// count, in the same order.
    ///
    /// Returns once the server has stored every job. An empty list sends nothing. A job
    /// with an empty queue or kind, without tasks, or past a limit of the server's (more
    /// than [`MAX_TASKS`](crate::MAX_TASKS) tasks, a timeout over
    /// [`MAX_TIMEOUT_MS`](crate::MAX_TIMEOUT_MS)) is refused before anything is encoded or
    /// sent ([`ClientError::Invalid`]). A job whose `submitter` is empty is sent with
    /// [`submitter()`](crate::submitter)'s.
    pub async fn submit_jobs(&self, mut jobs: Vec<NewJob>) -> Result<Vec<Submitted>, ClientError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let who = submitter();
        for job in &mut jobs {
            crate::limits::check_job(job)?;
            if job.submitter.is_empty() {
                job.submitter.clone_from(&who);
            }
        }
        let count = jobs.len();
        match self.request(Request::Submit(jobs)).await? {
            Reply::Submitted(submitted) if submitted.len() == count => Ok(submitted),
            Reply::Submitted(submitted) => Err(wrong_id_count(count, submitted.len())),
            other => Err(unexpected("Submit", &other)),
        }
    }

    /// A handle on a job submitted earlier (by this program or another), to wait for its
    /// typed output; `submitted` is as [`Client::submit_jobs`] returned it (or built from a
    /// [`JobSummary`](buildcat_proto::JobSummary)'s id, number and task count).
    ///
    /// The job's kind is checked against `T` when its output is read.
    pub fn handle<T: Task>(&self, submitted: Submitted) -> JobHandle<T> {
        JobHandle::new(self.clone(), submitted)
    }

    /// Waits until every task of the job has ended, however it ended, and returns the
    /// job's final record with its tasks (without their results: ask with
    /// [`Client::task`]).
    ///
    /// The server tells the client when the job ends; nothing polls, so waiting for hours
    /// costs nothing.
    ///
    /// # Errors
    /// [`ClientError::RequestRefused`] with `RequestError::UnknownJob` when the server
    /// knows no such job.
    pub async fn wait_job(&self, job: impl Into<JobRef>) -> Result<JobStatus, ClientError> {
        let job = job.into();
        match self.request(Request::Wait(job)).await? {
            Reply::Ended(status) => check_job_status(job, status),
            other => Err(unexpected("Wait", &other)),
        }
    }

    /// What the server knows of a job now: the job and a summary of each task.
    ///
    /// # Errors
    /// [`ClientError::RequestRefused`] with `RequestError::UnknownJob` when the server
    /// knows no such job.
    pub async fn job(&self, job: impl Into<JobRef>) -> Result<JobStatus, ClientError> {
        let job = job.into();
        match self.request(Request::Job(job)).await? {
            Reply::Job(status) => check_job_status(job, status),
            other => Err(unexpected("Job", &other)),
        }
    }

    /// Everything the server knows of one task: its attempts, its failure, its result.
    ///
    /// A [`TaskRef`] without an index names the only task of a job of one task.
    ///
    /// # Errors
    /// [`ClientError::RequestRefused`] with `RequestError::UnknownJob`,
    /// `RequestError::UnknownTask` (no task of that index), or `RequestError::WhichTask`
    /// (no index, and the job has several tasks).
    pub async fn task(&self, task: impl Into<TaskRef>) -> Result<TaskStatus, ClientError> {
        let task = task.into();
        match self.request(Request::Task(task)).await? {
            Reply::Task(status) => check_task_status(task, status),
            other => Err(unexpected("Task", &other)),
        }
    }

    /// The farm at a glance: queues with their counts, and workers.
    pub async fn info(&self) -> Result<FarmInfo, ClientError> {
        match self.request(Request::Info).await? {
            Reply::Info(info) => Ok(info),
            other => Err(unexpected("Info", &other)),
        }
    }

    /// Cancels jobs (every task not ended) or single tasks: queued tasks end at once,
    /// running ones are killed by their worker.
    ///
    /// One [`Change`] per target, in order: what was done, or why not (an unknown job is
    /// an `Err` entry, not a failure of the whole request). At most
    /// [`MAX_CHANGES_PER_REQUEST`](buildcat_proto::MAX_CHANGES_PER_REQUEST) targets.
    pub async fn cancel(&self, targets: Vec<TaskRef>) -> Result<Vec<Change>, ClientError> {
        self.changes("Cancel", Request::Cancel(targets)).await
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

    /// A job's frame previews, newest first (what its workers sent of the frames its tasks
    /// saved); with `image`, the newest one's image too.
    ///
    /// # Errors
    /// [`ClientError::RequestRefused`] with `RequestError::UnknownJob`.
    pub async fn previews(
        &self,
        job: impl Into<JobRef>,
        image: bool,
    ) -> Result<buildcat_proto::JobPreviews, ClientError> {
        let job = job.into();
        match self.request(Request::Previews { job, image }).await? {
            Reply::Previews(previews) => Ok(previews),
            other => Err(unexpected("Previews", &other)),
        }
    }

    /// Puts tasks back in their queue, with one more attempt each: the failed and
    /// canceled tasks of jobs or single tasks ([`Requeue::Tasks`], `all` for finished ones
    /// too), or those of one submitter's failed jobs ([`Requeue::Failed`], at most
    /// [`MAX_CHANGES_PER_REQUEST`](buildcat_proto::MAX_CHANGES_PER_REQUEST) jobs per
    /// request: ask again while a reply is that long). Running tasks are left alone.
    ///
    /// One [`Change`] per target (per job requeued for [`Requeue::Failed`]).
    pub async fn requeue(&self, requeue: Requeue) -> Result<Vec<Change>, ClientError> {
        self.changes("Requeue", Request::Requeue(requeue)).await
    }

    /// Holds jobs: their queued tasks do not start (they show as paused), running ones
    /// finish. One [`Change`] per job.
    pub async fn pause(&self, jobs: Vec<JobRef>) -> Result<Vec<Change>, ClientError> {
        self.changes("Pause", Request::Pause(jobs)).await
    }

    /// Lets paused jobs' tasks start again. One [`Change`] per job.
    pub async fn resume(&self, jobs: Vec<JobRef>) -> Result<Vec<Change>, ClientError> {
        self.changes("Resume", Request::Resume(jobs)).await
    }

    /// Holds every job of `queue` (`paused`), or lets them go; the server stores it, so a
    /// held queue stays held across restarts. A queue not on record is held for the jobs
    /// that come to it.
    pub async fn pause_queue(&self, queue: &str, paused: bool) -> Result<(), ClientError> {
        let request = Request::PauseQueue {
            queue: queue.to_owned(),
            paused,
        };
        match self.request(request).await? {
            Reply::Ack => Ok(()),
            other => Err(unexpected("PauseQueue", &other)),
        }
    }

    /// Changes a job's priority (higher runs first within its queue); its queued tasks
    /// move in their queue.
    ///
    /// # Errors
    /// [`ClientError::RequestRefused`] with the server's reason (an unknown job) when the
    /// change was not made.
    pub async fn set_priority(
        &self,
        job: impl Into<JobRef>,
        priority: i32,
    ) -> Result<Changed, ClientError> {
        let job = job.into();
        let changes = self
            .changes("SetPriority", Request::SetPriority { job, priority })
            .await?;
        match <[Change; 1]>::try_from(changes) {
            Ok([change]) => change.result.map_err(ClientError::RequestRefused),
            Err(changes) => Err(ClientError::Protocol(format!(
                "asked to change the priority of one job, it answered with {} changes",
                changes.len()
            ))),
        }
    }

    /// Removes ended jobs now, with their tasks' output and results. A job that has not
    /// ended is refused in its [`Change`] (`RequestError::WrongState`: cancel it first).
    /// Job numbers are never given out again.
    pub async fn delete(&self, jobs: Vec<JobRef>) -> Result<Vec<Change>, ClientError> {
        self.changes("Delete", Request::Delete(jobs)).await
    }

    /// Lists jobs, newest first: at most `query.limit`, and fewer where more would not fit
    /// in one reply; [`JobListing::more`] says whether more matched.
    pub async fn jobs(&self, query: JobQuery) -> Result<JobListing, ClientError> {
        match self.request(Request::Jobs(query)).await? {
            Reply::Jobs { jobs, more } => Ok(JobListing { jobs, more }),
            other => Err(unexpected("Jobs", &other)),
        }
    }

    /// One page of a task's output from byte offset `from` (0 for the start): the lines
    /// that fit in a page, where they start, where the next page starts, and whether the
    /// server holds more. Ask again from [`LogPage::next`] while [`LogPage::more`] is true.
    ///
    /// A [`TaskRef`] without an index names the only task of a job of one task (else
    /// `RequestError::WhichTask`).
    pub async fn log_page(
        &self,
        task: impl Into<TaskRef>,
        from: u64,
    ) -> Result<LogPage, ClientError> {
        let request = Request::Logs {
            task: task.into(),
            from,
            follow: false,
        };
        match self.request(request).await? {
            Reply::Log(page) => Ok(page),
            other => Err(unexpected("Logs", &other)),
        }
    }

    /// Streams a task's output from byte offset `from`: what it printed from there (stored
    /// pages), then new lines as they come, each as a [`JobEvent::Log`] event on `events`
    /// that says where its lines are. Returns when the task has ended, with the offset
    /// where its output ends.
    ///
    /// After a lost connection, follow again from the `next` of the last page received to
    /// carry on exactly where it stopped. Read `events` while this runs: if the channel
    /// fills, the stream ends with [`ClientError::Lagged`] (follow again to carry on).
    pub async fn follow_logs(
        &self,
        task: impl Into<TaskRef>,
        from: u64,
        events: mpsc::Sender<JobEvent>,
    ) -> Result<u64, ClientError> {
        let request = Request::Logs {
            task: task.into(),
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

    /// Follows jobs: their tasks' changes, progress and the jobs' ends arrive on `events`
    /// as [`JobEvent::Task`], [`JobEvent::Progress`] and [`JobEvent::Ended`]; returns once
    /// every job has ended.
    ///
    /// Read `events` while this runs: if the channel fills, the watch ends with
    /// [`ClientError::Lagged`] (watch the jobs not ended yet again to carry on).
    pub async fn watch(
        &self,
        jobs: Vec<JobRef>,
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

    /// Sends a request answered with [`Reply::Changes`].
    async fn changes(&self, name: &str, request: Request) -> Result<Vec<Change>, ClientError> {
        match self.request(request).await? {
            Reply::Changes(changes) => Ok(changes),
            other => Err(unexpected(name, &other)),
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

/// `task` as a job of one task for `queue`, unnamed (the server names it after its kind).
pub(crate) fn one_task_job<T: Task>(
    queue: &str,
    frames: Option<&str>,
    task: &T,
    options: JobOptions,
) -> Result<NewJob, ClientError> {
    Ok(NewJob {
        queue: queue.to_owned(),
        kind: T::KIND.to_owned(),
        name: String::new(),
        submitter: String::new(),
        runs: String::new(),
        options,
        tasks: vec![new_task(frames, task)?],
    })
}

/// `task` encoded as one task of a job.
pub(crate) fn new_task<T: Task>(frames: Option<&str>, task: &T) -> Result<NewTask, ClientError> {
    Ok(NewTask {
        frames: frames.map(str::to_owned),
        args: codec::encode_value(task).map_err(ClientError::Encode)?,
    })
}

/// Whether a job's record is that of the job `asked` names.
fn is_job(asked: JobRef, id: JobId, number: u64) -> bool {
    match asked {
        JobRef::Id(asked) => asked == id,
        JobRef::Number(asked) => asked == number,
    }
}

/// Checks that a job's record is about the job asked for.
fn check_job_status(asked: JobRef, status: JobStatus) -> Result<JobStatus, ClientError> {
    if is_job(asked, status.job.id, status.job.number) {
        Ok(status)
    } else {
        Err(ClientError::Protocol(format!(
            "asked about job {asked}, it answered with the record of job {} ({})",
            status.job.number, status.job.id
        )))
    }
}

/// Checks that a task's record is about the task asked for.
fn check_task_status(asked: TaskRef, status: TaskStatus) -> Result<TaskStatus, ClientError> {
    let same_index = asked.index.is_none_or(|index| index == status.id.index);
    if is_job(asked.job, status.id.job, status.number) && same_index {
        Ok(status)
    } else {
        Err(ClientError::Protocol(format!(
            "asked about task {asked}, it answered with the record of task {} ({})",
            status.label(),
            status.id
        )))
    }
}

/// The server returned a number of ids other than the number of jobs submitted.
fn wrong_id_count(submitted: usize, returned: usize) -> ClientError {
    ClientError::Protocol(format!(
        "{submitted} jobs were submitted but it acknowledged {returned}"
    ))
}

/// A reply that does not answer the request it came for.
fn unexpected(request: &str, reply: &Reply) -> ClientError {
    let name = match reply {
        Reply::Submitted(_) => "Submitted",
        Reply::Ended(_) => "Ended",
        Reply::Job(_) => "Job",
        Reply::Task(_) => "Task",
        Reply::Info(_) => "Info",
        Reply::Registered { .. } => "Registered",
        Reply::Ack => "Ack",
        Reply::Changes(_) => "Changes",
        Reply::Jobs { .. } => "Jobs",
        Reply::Log(_) => "Log",
        Reply::Previews(_) => "Previews",
    };
    ClientError::Protocol(format!(
        "it answered a `{request}` request with a `{name}` reply"
    ))
}
