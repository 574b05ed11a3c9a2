//! Servers and workers to measure: a server in this process (`buildcat_queue::run`), a
//! server as a child process (the real `buildcat server`), and the no-op task.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use buildcat_client::Client;
use buildcat_proto::{JobOptions, NewJob, NewTask, Task, codec};
use buildcat_queue::ServerConfig;
use buildcat_worker::{RunStats, Worker};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::sys;

/// The queue every bench job goes to.
pub const QUEUE: &str = "bench";

/// A task that does nothing; `n` only makes the arguments a few bytes long.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Noop {
    /// A sequence number.
    pub n: u64,
}

impl Task for Noop {
    const KIND: &'static str = "bench.noop";
    type Output = ();
}

/// Worker threads of an in-process server's runtime; 0 runs it on a current-thread
/// runtime (`--server-threads`, for trying how the server behaves on one thread).
pub static SERVER_THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(2);

/// A server running in this process on a loopback port, with its storage in a temp dir.
///
/// It runs on a runtime of its own (two threads named `bench-server`, like the two worker
/// threads of a `buildcat server` process on this machine), so that its CPU time can be
/// told apart from the client's and the workers' (`bench-client` threads); its store
/// writer thread is `buildcat-store`.
pub struct InProcessServer {
    /// `127.0.0.1:port`.
    pub addr: String,
    /// Holds the storage.
    _dir: tempfile::TempDir,
    /// Resolves the server's shutdown future.
    stop: Option<oneshot::Sender<()>>,
    /// The thread running the server's runtime.
    thread: Option<std::thread::JoinHandle<Result<(), buildcat_queue::ServerError>>>,
}

impl InProcessServer {
    /// Starts a server; `sync` false is the unsafe no-sync mode.
    pub async fn start(sync: bool) -> anyhow::Result<InProcessServer> {
        let dir = tempfile::tempdir().context("creating a temp dir")?;
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?.to_string();
        let mut config = ServerConfig::new(dir.path().join("bench.db"));
        config.sync = sync;
        let (stop, stopped) = oneshot::channel::<()>();
        let threads = SERVER_THREADS.load(std::sync::atomic::Ordering::Relaxed);
        let mut builder = if threads == 0 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        };
        let runtime = builder
            .thread_name("bench-server")
            .enable_all()
            .build()
            .context("starting the server's runtime")?;
        let thread = std::thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener)
                        .map_err(buildcat_queue::ServerError::Listen)?;
                    buildcat_queue::run(listener, config, async move {
                        let _ = stopped.await;
                    })
                    .await
                })
            })
            .context("starting the server thread")?;
        let server = InProcessServer {
            addr,
            _dir: dir,
            stop: Some(stop),
            thread: Some(thread),
        };
        wait_until_serving(&server.addr, Duration::from_secs(30)).await?;
        Ok(server)
    }

    /// Stops the server. Waits a second for it to end; a server still closing connections
    /// then is left to finish on its own (its sessions wait up to 5 s for their writers
    /// after a peer disconnects; see BENCHMARKS.md), which costs no CPU.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                if let Some(thread) = self.thread.take() {
                    match thread.join() {
                        Ok(result) => result?,
                        Err(_) => bail!("the in-process server panicked"),
                    }
                }
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}

/// A `buildcat server` child process, killed when dropped.
pub struct ChildServer {
    /// Its process.
    child: Child,
    /// `127.0.0.1:port`.
    pub addr: String,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl ChildServer {
    /// Starts `buildcat server` on a free port with `storage`; does not wait for it.
    pub fn spawn(buildcat: &Path, storage: &Path, log: &Path) -> anyhow::Result<ChildServer> {
        let port = sys::free_port()?;
        let stderr = std::fs::File::create(log)
            .with_context(|| format!("creating the server log {}", log.display()))?;
        let child = Command::new(buildcat)
            .arg("server")
            .arg("--port")
            .arg(port.to_string())
            .arg("--storage")
            .arg(storage)
            .env_remove("BUILDCAT_PORT")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {} server", buildcat.display()))?;
        Ok(ChildServer {
            child,
            addr: format!("127.0.0.1:{port}"),
            log: log.to_owned(),
        })
    }

    /// Starts a server and waits until it answers `info`.
    pub async fn start(buildcat: &Path, storage: &Path, log: &Path) -> anyhow::Result<Self> {
        let mut server = ChildServer::spawn(buildcat, storage, log)?;
        server.wait_serving(Duration::from_secs(60)).await?;
        Ok(server)
    }

    /// Waits until the server answers `info`, or fails if it exits first.
    pub async fn wait_serving(&mut self, limit: Duration) -> anyhow::Result<Client> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                bail!("the server exited ({status}) before serving:\n{log}");
            }
            let error = match Client::connect(&self.addr).await {
                Ok(client) => match client.info().await {
                    Ok(_) => return Ok(client),
                    Err(error) => error,
                },
                Err(error) => error,
            };
            if Instant::now() > deadline {
                bail!(
                    "the server at {} did not serve within {limit:?}; last error: {error}",
                    self.addr
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or(0)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until a server at `addr` answers `info`.
pub async fn wait_until_serving(addr: &str, limit: Duration) -> anyhow::Result<Client> {
    let deadline = Instant::now() + limit;
    loop {
        let error = match Client::connect(addr).await {
            Ok(client) => match client.info().await {
                Ok(_) => return Ok(client),
                Err(error) => error,
            },
            Err(error) => error,
        };
        if Instant::now() > deadline {
            bail!("the server at {addr} did not serve within {limit:?}; last error: {error}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until at least `count` workers are registered; returns how many are.
pub async fn wait_for_workers(
    client: &Client,
    count: usize,
    limit: Duration,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + limit;
    loop {
        let seen = client.info().await?.workers.len();
        if seen >= count || Instant::now() > deadline {
            return Ok(seen);
        }
        tokio::time::sleep(Duration::from_millis(if count > 100 { 200 } else { 2 })).await;
    }
}

/// A worker of `loops` no-op loops, stopping after `max_jobs` jobs if given, run in a task.
pub fn spawn_noop_worker(
    addr: &str,
    root: &Path,
    name: &str,
    loops: usize,
    max_jobs: Option<u64>,
    stop: oneshot::Receiver<()>,
) -> anyhow::Result<JoinHandle<Result<RunStats, buildcat_worker::WorkerError>>> {
    let worker = Worker::builder()
        .server(addr)
        .queue(QUEUE)
        .root(root)
        .name(name)
        .concurrency(loops)
        .max_tasks(max_jobs)
        .handler::<Noop, _, _>(|_, _| async { Ok(()) })
        .build()
        .context("building the worker")?;
    Ok(tokio::spawn(worker.run(async move {
        let _ = stop.await;
    })))
}

/// `count` no-op jobs of one task each, numbered from `first`.
pub fn noop_jobs(first: u64, count: usize) -> anyhow::Result<Vec<NewJob>> {
    (0..count as u64)
        .map(|i| {
            Ok(NewJob {
                queue: QUEUE.to_owned(),
                kind: Noop::KIND.to_owned(),
                name: String::new(),
                submitter: String::new(),
                runs: String::new(),
                options: JobOptions::default(),
                tasks: vec![NewTask {
                    frames: None,
                    args: codec::encode_value(&Noop { n: first + i })?,
                }],
            })
        })
        .collect()
}

/// Submits `total` no-op jobs in batches of `batch`, with up to `in_flight` batches
/// waiting for their acknowledgement at once. Returns the number acknowledged.
pub async fn submit_batched(
    client: &Client,
    total: usize,
    batch: usize,
    in_flight: usize,
) -> anyhow::Result<usize> {
    let batches = total.div_ceil(batch);
    let mut lanes = JoinSet::new();
    for lane in 0..in_flight.min(batches) {
        let client = client.clone();
        lanes.spawn(async move {
            let mut acknowledged = 0usize;
            let mut index = lane;
            while index < batches {
                let first = index * batch;
                let count = batch.min(total - first);
                let jobs = noop_jobs(first as u64, count)?;
                acknowledged += client.submit_jobs(jobs).await?.len();
                index += in_flight;
            }
            Ok::<_, anyhow::Error>(acknowledged)
        });
    }
    let mut acknowledged = 0;
    while let Some(lane) = lanes.join_next().await {
        acknowledged += lane.context("a submitting task panicked")??;
    }
    Ok(acknowledged)
}
