//! A scripted fake server and helpers to run a worker against it.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use buildcat_proto::{
    Assignment, ClientFrame, Completion, DEFAULT_MAX_FRAME, Failure, FrameCodec, Hello, HelloReply,
    JobId, Outcome, PROTOCOL_VERSION, Reply, Request, RequestError, RequestId, SOFTWARE_VERSION,
    ServerFrame, Task, TaskId, TaskProgress, Welcome, WorkerRegistration, codec,
};
use buildcat_worker::{RunStats, ShutdownHandle, Worker, WorkerBuilder, WorkerError};
use futures_util::{SinkExt, StreamExt};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

/// How long any single expected event may take before the test fails. Generous: events
/// normally arrive in milliseconds, but CI machines stall.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// A heartbeat period long enough that heartbeats do not show up in tests about other things.
pub const QUIET_HEARTBEAT_MS: u64 = 60_000;

/// The reconnect grace the fake server announces: long enough that no worker's lease runs
/// out in tests about other things.
pub const FAKE_RECONNECT_GRACE_MS: u64 = 600_000;

/// Awaits `future`, failing the test if it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {PATIENCE:?} waiting for {what}"),
    }
}

/// A fresh job number, unique within the test run; the job's id is made from it.
fn job_number() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The id of job `number` (a valid UUID v7 shape).
fn job_id_of(number: u64) -> JobId {
    format!("00000000-0000-7000-8000-{number:012x}")
        .parse()
        .unwrap_or_else(|e| panic!("bad job id: {e}"))
}

/// A fresh job id (unique within the test run).
pub fn job_id() -> JobId {
    job_id_of(job_number())
}

/// A task of a fresh job (unique within the test run): its task 2, so that a worker that
/// took the index for anything else shows it.
pub fn task_id() -> TaskId {
    TaskId::new(job_id(), 2)
}

/// An assignment of `task` as the first attempt of task 2 of a new job in queue `default`
/// (labelled `N.2`, for the job's number N).
pub fn assignment<T: Task>(task: &T) -> Assignment {
    let number = job_number();
    Assignment {
        task: TaskId::new(job_id_of(number), 2),
        number,
        name: format!("test job {number}"),
        frames: None,
        attempt: 1,
        queue: "default".to_owned(),
        kind: T::KIND.to_owned(),
        args: codec::encode_value(task).unwrap_or_else(|e| panic!("cannot encode args: {e}")),
        timeout_ms: None,
    }
}

/// The handshake-stage connection, seen from the server.
pub type HelloLink = Framed<TcpStream, FrameCodec<Hello, HelloReply>>;

/// A registered connection, seen from the server.
pub type Link = Framed<TcpStream, FrameCodec<ClientFrame, ServerFrame>>;

/// A listening fake server.
pub struct FakeServer {
    /// Where workers connect.
    listener: TcpListener,
}

impl FakeServer {
    /// A fake server on a free loopback port.
    pub async fn bind() -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot bind: {e}"));
        FakeServer { listener }
    }

    /// A fake server on an existing listener.
    pub fn on(listener: TcpListener) -> FakeServer {
        FakeServer { listener }
    }

    /// The address to give the worker.
    pub fn address(&self) -> String {
        let address = self
            .listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no local address: {e}"));
        address.to_string()
    }

    /// Accepts a connection and reads its hello, without answering.
    pub async fn accept_hello(&self) -> (Hello, HelloLink) {
        let (stream, _) = within("a worker to connect", self.listener.accept())
            .await
            .unwrap_or_else(|e| panic!("accept failed: {e}"));
        let mut link = Framed::new(stream, FrameCodec::new(DEFAULT_MAX_FRAME));
        let hello = within("the hello", link.next())
            .await
            .unwrap_or_else(|| panic!("closed before the hello"))
            .unwrap_or_else(|e| panic!("bad hello: {e}"));
        (hello, link)
    }

    /// Accepts a connection, welcomes it and answers its registration with `heartbeat_ms`.
    pub async fn accept(&self, heartbeat_ms: u64) -> FakeConnection {
        self.accept_with_grace(heartbeat_ms, FAKE_RECONNECT_GRACE_MS)
            .await
    }

    /// Accepts a connection, welcomes it and answers its registration with `heartbeat_ms`
    /// and a reconnect grace of `grace_ms`.
    pub async fn accept_with_grace(&self, heartbeat_ms: u64, grace_ms: u64) -> FakeConnection {
        let (hello, link) = self.accept_hello().await;
        assert_eq!(hello, Hello::new(buildcat_proto::Role::Worker));
        FakeServer::welcome_with_grace(link, heartbeat_ms, grace_ms).await
    }

    /// Welcomes a connection whose hello was read and answers its registration with
    /// `heartbeat_ms`.
    pub async fn welcome(link: HelloLink, heartbeat_ms: u64) -> FakeConnection {
        FakeServer::welcome_with_grace(link, heartbeat_ms, FAKE_RECONNECT_GRACE_MS).await
    }

    /// Welcomes a connection whose hello was read and answers its registration with
    /// `heartbeat_ms` and a reconnect grace of `grace_ms`.
    pub async fn welcome_with_grace(
        mut link: HelloLink,
        heartbeat_ms: u64,
        grace_ms: u64,
    ) -> FakeConnection {
        link.send(HelloReply::Welcome(Welcome {
            protocol: PROTOCOL_VERSION,
            software: SOFTWARE_VERSION.to_owned(),
            max_frame: u32::try_from(DEFAULT_MAX_FRAME).unwrap_or(u32::MAX),
        }))
        .await
        .unwrap_or_else(|e| panic!("cannot welcome: {e}"));
        let mut link: Link = link.map_codec(FrameCodec::retype);
        let frame = within("the registration", link.next())
            .await
            .unwrap_or_else(|| panic!("closed before registering"))
            .unwrap_or_else(|e| panic!("bad registration frame: {e}"));
        let Request::Register(registration) = frame.request else {
            panic!("expected a registration, got {:?}", frame.request);
        };
        let reply = Ok(Reply::Registered {
            name: registration.name.clone(),
            heartbeat_ms,
            reconnect_grace_ms: grace_ms,
        });
        let mut connection = FakeConnection {
            link,
            registration,
            previews: Vec::new(),
            tools: None,
        };
        connection.reply(frame.id, reply).await;
        connection
    }
}

/// One registered worker connection, seen from the server.
pub struct FakeConnection {
    /// The framed connection.
    link: Link,
    /// What the worker registered with.
    pub registration: WorkerRegistration,
    /// Frame previews the worker sent, acknowledged and set aside as they came (they come
    /// whenever one is made, so no test waits for them in a fixed order).
    pub previews: Vec<buildcat_proto::FramePreview>,
    /// The tools with their versions as the worker last sent them after registering
    /// (`UpdateTools`), acknowledged as they came; `None` until it has.
    pub tools: Option<Vec<buildcat_proto::ToolVersion>>,
}

impl FakeConnection {
    /// The next frame from the worker, or `None` once it disconnects.
    pub async fn next_frame(&mut self) -> Option<ClientFrame> {
        match within("a frame from the worker", self.link.next()).await {
            Some(Ok(frame)) => Some(frame),
            None => None,
            Some(Err(buildcat_proto::CodecError::Io(e)))
                if e.kind() == io::ErrorKind::ConnectionReset =>
            {
                None
            }
            Some(Err(e)) => panic!("bad frame from the worker: {e}"),
        }
    }

    /// The next request other than a heartbeat, a preview or the tools' versions; those on
    /// the way are acknowledged (previews kept in `previews`, the tools in `tools`).
    pub async fn next_request(&mut self) -> (RequestId, Request) {
        loop {
            let Some(frame) = self.next_frame().await else {
                panic!("the worker disconnected while a request was expected");
            };
            match frame.request {
                Request::Heartbeat => self.ack(frame.id).await,
                Request::Preview(preview) => {
                    self.previews.push(preview);
                    self.ack(frame.id).await;
                }
                Request::UpdateTools(tools) => {
                    self.tools = Some(tools);
                    self.ack(frame.id).await;
                }
                request => return (frame.id, request),
            }
        }
    }

    /// The tools with their versions, once the worker has read them and sent them
    /// (`UpdateTools`); heartbeats and previews on the way are acknowledged, anything else
    /// fails the test.
    #[cfg(target_os = "linux")]
    pub async fn expect_tools(&mut self) -> Vec<buildcat_proto::ToolVersion> {
        loop {
            if let Some(tools) = &self.tools {
                return tools.clone();
            }
            let Some(frame) = self.next_frame().await else {
                panic!("the worker disconnected before sending its tools' versions");
            };
            match frame.request {
                Request::Heartbeat => self.ack(frame.id).await,
                Request::Preview(preview) => {
                    self.previews.push(preview);
                    self.ack(frame.id).await;
                }
                Request::UpdateTools(tools) => {
                    self.tools = Some(tools);
                    self.ack(frame.id).await;
                }
                other => panic!("expected the tools' versions, got {other:?}"),
            }
        }
    }

    /// The next task result the worker reports.
    pub async fn expect_completion(&mut self) -> (RequestId, Completion) {
        match self.next_request().await {
            (id, Request::Complete(completion)) => (id, completion),
            (_, other) => panic!("expected a completion, got {other:?}"),
        }
    }

    /// Everything the worker sends about its running task until its result: output lines,
    /// progress and the completion, each acknowledged as it comes.
    pub async fn expect_report(&mut self) -> TaskReport {
        let mut report = TaskReport::default();
        loop {
            match self.next_request().await {
                (id, Request::Log { task, lines, .. }) => {
                    report.tasks.push(task);
                    report.log_frames.push(lines);
                    self.ack(id).await;
                }
                (id, Request::Progress { task, progress, .. }) => {
                    report.tasks.push(task);
                    report.progress.push(progress);
                    self.ack(id).await;
                }
                (id, Request::Complete(completion)) => {
                    report.completion = Some((id, completion));
                    self.ack(id).await;
                    return report;
                }
                (_, other) => panic!("expected output or a completion, got {other:?}"),
            }
        }
    }

    /// Acknowledges output frames until one holds a line for which `wanted` is true, and
    /// returns that line; fails on anything else but heartbeats.
    pub async fn expect_line(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        loop {
            match self.next_request().await {
                (id, Request::Log { lines, .. }) => {
                    self.ack(id).await;
                    if let Some(line) = lines.into_iter().find(|line| wanted(line)) {
                        return line;
                    }
                }
                (id, Request::Progress { .. }) => self.ack(id).await,
                (_, other) => panic!("expected output lines, got {other:?}"),
            }
        }
    }

    /// Waits for the worker to close the connection, acknowledging heartbeats meanwhile and
    /// failing on any other request.
    pub async fn expect_closed(&mut self) {
        while let Some(frame) = self.next_frame().await {
            match frame.request {
                Request::Heartbeat | Request::Preview(_) | Request::UpdateTools(_) => {
                    self.ack(frame.id).await;
                }
                other => panic!("expected the worker to disconnect, got {other:?}"),
            }
        }
    }

    /// Pushes a task to the worker.
    pub async fn assign(&mut self, assignment: Assignment) {
        self.send(ServerFrame::Assign(assignment)).await;
    }

    /// Answers request `id` with `Ack`.
    pub async fn ack(&mut self, id: RequestId) {
        self.reply(id, Ok(Reply::Ack)).await;
    }

    /// Answers request `id`.
    pub async fn reply(&mut self, id: RequestId, reply: Result<Reply, RequestError>) {
        self.send(ServerFrame::Reply { id, reply }).await;
    }

    /// Sends any frame.
    pub async fn send(&mut self, frame: ServerFrame) {
        self.link
            .send(frame)
            .await
            .unwrap_or_else(|e| panic!("cannot send to the worker: {e}"));
    }

    /// Acknowledges heartbeats until `count` have arrived, failing on any other request.
    pub async fn expect_heartbeats(&mut self, count: usize) {
        for _ in 0..count {
            match self.next_frame().await {
                Some(ClientFrame {
                    id,
                    request: Request::Heartbeat,
                }) => self.ack(id).await,
                other => panic!("expected a heartbeat, got {other:?}"),
            }
        }
    }
}

/// What the worker sent about one task, up to its result.
#[derive(Debug, Default)]
pub struct TaskReport {
    /// The task each output frame named, in order.
    pub tasks: Vec<TaskId>,
    /// The lines of each `Log` frame, in order.
    pub log_frames: Vec<Vec<String>>,
    /// Each `Progress` frame, in order.
    pub progress: Vec<TaskProgress>,
    /// The result and its request id.
    pub completion: Option<(RequestId, Completion)>,
}

impl TaskReport {
    /// Every line logged, in order.
    pub fn lines(&self) -> Vec<String> {
        self.log_frames.concat()
    }

    /// The result; fails the test if there was none.
    pub fn completion(&self) -> &Completion {
        match &self.completion {
            Some((_, completion)) => completion,
            None => panic!("no completion in {self:?}"),
        }
    }
}

/// The decoded output of a finished completion; fails the test on a failure.
pub fn output<T: Task>(completion: &Completion) -> T::Output {
    match &completion.outcome {
        Outcome::Finished(bytes) | Outcome::FinishedWithTasks { result: bytes, .. } => {
            codec::decode_value(bytes)
                .unwrap_or_else(|e| panic!("undecodable output of {}: {e}", T::KIND))
        }
        Outcome::Failed(failure) => panic!("task failed: {failure:?}"),
        Outcome::Canceled => panic!("task canceled"),
        Outcome::Interrupted => panic!("task interrupted"),
    }
}

/// The failure of a failed completion; fails the test if it did not fail.
pub fn failure(completion: &Completion) -> Failure {
    match &completion.outcome {
        Outcome::Failed(failure) => failure.clone(),
        other => panic!("expected the task to fail, got {other:?}"),
    }
}

/// The reason of a failed completion; fails the test if it did not fail.
pub fn failure_reason(completion: &Completion) -> String {
    failure(completion).reason
}

/// A temporary root directory for a worker.
pub fn temp_root() -> TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("no temp dir: {e}"))
}

/// A builder aimed at `server` with `root`, named `test-worker`, that does not look for
/// DCC tools (so what it registers does not depend on what this machine has installed).
pub fn builder(server: &FakeServer, root: &TempDir) -> WorkerBuilder {
    Worker::builder()
        .server(server.address())
        .root(root.path())
        .name("test-worker")
        .detect_tools(false)
        // Each test's own, so tests running at once never see each other's task groups.
        .state_dir(root.path().join(".buildcat-state"))
}

/// A worker running in its own task, with a handle to shut it down.
pub struct RunningWorker {
    /// The task running [`Worker::run`].
    task: JoinHandle<Result<RunStats, WorkerError>>,
    /// Resolves the worker's shutdown future when sent to (or dropped).
    shutdown: Option<oneshot::Sender<()>>,
}

/// Builds `builder` and runs the worker in a task.
pub fn start(builder: WorkerBuilder) -> RunningWorker {
    start_with_handle(builder).0
}

/// Builds `builder` and runs the worker in a task; also returns its shutdown handle.
pub fn start_with_handle(builder: WorkerBuilder) -> (RunningWorker, ShutdownHandle) {
    let worker = builder
        .build()
        .unwrap_or_else(|e| panic!("cannot build the worker: {e}"));
    let handle = worker.shutdown_handle();
    let (shutdown, signal) = oneshot::channel::<()>();
    let task = tokio::spawn(worker.run(async move {
        let _ = signal.await;
    }));
    let running = RunningWorker {
        task,
        shutdown: Some(shutdown),
    };
    (running, handle)
}

impl RunningWorker {
    /// Resolves the worker's shutdown future.
    pub fn shut_down(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Waits for `run` to return.
    pub async fn finished(&mut self) -> Result<RunStats, WorkerError> {
        within("the worker to return", &mut self.task)
            .await
            .unwrap_or_else(|e| panic!("the worker task failed: {e}"))
    }

    /// Shuts the worker down and waits for it to return successfully.
    pub async fn stop(mut self) -> RunStats {
        self.shut_down();
        self.finished()
            .await
            .unwrap_or_else(|e| panic!("the worker failed: {e}"))
    }
}

impl Drop for RunningWorker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Collects log lines written by the worker, so a test can wait for one.
#[derive(Clone)]
pub struct LogLines(pub mpsc::UnboundedSender<String>);

impl io::Write for LogLines {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let _ = self.0.send(String::from_utf8_lossy(bytes).into_owned());
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogLines {
    type Writer = LogLines;

    fn make_writer(&'a self) -> LogLines {
        self.clone()
    }
}
