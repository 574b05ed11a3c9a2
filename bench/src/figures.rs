//! The figures of the issue, each measured against a real server over loopback.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use buildcat_client::Client;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::farm::{
    ChildServer, InProcessServer, Noop, QUEUE, spawn_noop_worker, submit_batched, wait_for_workers,
};
use crate::report::{Figure, Goal, human, micros, percentile};
use crate::sys;

/// How big each measurement is.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Runs of `buildcat worker-info`.
    pub cli_runs: usize,
    /// Submit-and-wait samples.
    pub latency_samples: usize,
    /// Jobs in the headline throughput run.
    pub throughput_jobs: usize,
    /// Jobs in each run of the throughput-against-loops chart.
    pub chart_jobs: usize,
    /// Loop counts of the chart.
    pub chart_loops: Vec<usize>,
    /// Jobs submitted in batches for the submit rate.
    pub submit_batched_jobs: usize,
    /// Jobs submitted one per request for the submit rate.
    pub submit_single_jobs: usize,
    /// Requests in flight when submitting one job per request.
    pub single_in_flight: usize,
    /// Jobs queued for the memory and restart figures.
    pub queued_jobs: usize,
    /// Idle workers connected for the many-workers figure.
    pub many_workers: usize,
    /// How long the server's CPU is watched with the workers connected.
    pub cpu_window: Duration,
    /// Jobs in each run of the durability comparison.
    pub durability_jobs: usize,
    /// Sync/no-sync pairs run for the durability comparison (the median ratio counts).
    pub durability_rounds: usize,
    /// Runs of the headline throughput and of each submit rate (the median counts: the
    /// machine is shared).
    pub repeats: usize,
}

impl Sizes {
    /// The sizes of the issue.
    pub fn full() -> Sizes {
        Sizes {
            cli_runs: 20,
            latency_samples: 10_000,
            throughput_jobs: 200_000,
            chart_jobs: 50_000,
            chart_loops: vec![1, 2, 4, 8, 16],
            submit_batched_jobs: 200_000,
            submit_single_jobs: 100_000,
            single_in_flight: 512,
            queued_jobs: 1_000_000,
            many_workers: 10_000,
            cpu_window: Duration::from_secs(10),
            durability_jobs: 50_000,
            durability_rounds: 3,
            repeats: 3,
        }
    }

    /// Small enough to finish in under a minute.
    pub fn quick() -> Sizes {
        Sizes {
            cli_runs: 20,
            latency_samples: 2_000,
            throughput_jobs: 20_000,
            chart_jobs: 5_000,
            chart_loops: vec![1, 2, 4, 8],
            submit_batched_jobs: 50_000,
            submit_single_jobs: 20_000,
            single_in_flight: 512,
            queued_jobs: 100_000,
            many_workers: 1_000,
            cpu_window: Duration::from_secs(3),
            durability_jobs: 10_000,
            durability_rounds: 1,
            repeats: 1,
        }
    }
}

/// What the figures share.
pub struct Setup {
    /// The `buildcat` binary.
    pub buildcat: PathBuf,
    /// How big each measurement is.
    pub sizes: Sizes,
}

/// A child process killed when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sorted copy of samples.
fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// CLI round trip: `buildcat worker-info` as a whole process against a warm server with
/// one idle `buildcat worker`.
pub async fn cli_round_trip(ctx: &Setup) -> anyhow::Result<Vec<Figure>> {
    let dir = tempfile::tempdir()?;
    let server = ChildServer::start(
        &ctx.buildcat,
        &dir.path().join("cli.db"),
        &dir.path().join("server.log"),
    )
    .await?;
    let port = server.port().to_string();
    let worker_log = std::fs::File::create(dir.path().join("worker.log"))?;
    let _worker = KillOnDrop(
        Command::new(&ctx.buildcat)
            .args(["worker", "--port", &port, "--name", "bench-cli", "--root"])
            .arg(dir.path())
            .env_remove("BUILDCAT_PORT")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(worker_log)
            .spawn()
            .context("starting buildcat worker")?,
    );
    let client = Client::connect(&server.addr).await?;
    if wait_for_workers(&client, 1, Duration::from_secs(30)).await? < 1 {
        bail!("the buildcat worker did not register within 30 s");
    }
    let runs = ctx.sizes.cli_runs;
    let buildcat = ctx.buildcat.clone();
    let (samples, floor) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
            // The floor: starting the program at all, with no connection.
            let mut floor = Vec::new();
            for _ in 0..runs {
                let start = Instant::now();
                let output = Command::new(&buildcat)
                    .arg("version")
                    .stdin(Stdio::null())
                    .output()
                    .context("running buildcat version")?;
                if !output.status.success() {
                    bail!("buildcat version failed ({})", output.status);
                }
                floor.push(start.elapsed().as_secs_f64() * 1000.0);
            }
            let mut samples = Vec::new();
            // Two unmeasured runs warm the page cache and the server.
            for index in 0..runs + 2 {
                let start = Instant::now();
                let output = Command::new(&buildcat)
                    .args(["worker-info", "--port", &port, "--timeout", "30"])
                    .env_remove("BUILDCAT_PORT")
                    .env_remove("BUILDCAT_HOST")
                    .stdin(Stdio::null())
                    .output()
                    .context("running buildcat worker-info")?;
                let elapsed = start.elapsed();
                if !output.status.success() {
                    bail!(
                        "buildcat worker-info failed ({}): {}",
                        output.status,
                        String::from_utf8_lossy(&output.stderr)
                    );
                }
                if index >= 2 {
                    samples.push(elapsed.as_secs_f64() * 1000.0);
                }
            }
            Ok((samples, floor))
        })
        .await??;
    // The same exchange from this process: connect, submit worker-info, wait for it.
    let mut in_process = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let client = Client::connect(&server.addr).await?;
        client
            .submit("default", &buildcat_proto::WorkerInfo)
            .await?
            .wait()
            .await?;
        in_process.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let in_process = self::sorted(&in_process);
    let sorted = sorted(&samples);
    let floor = self::sorted(&floor);
    let median = percentile(&sorted, 50.0);
    Ok(vec![
        Figure::new(
            "cli_round_trip_ms",
            "CLI round trip (worker-info), median",
            median,
            "ms",
            Goal::AtMost,
            5.0,
        )
        .how(format!(
            "`buildcat worker-info` as a whole process, {runs} runs, child-process server (durable) and one idle `buildcat worker`"
        ))
        .detail(format!(
            "p90 {:.2} ms, min {:.2} ms, max {:.2} ms; of which starting the program (`buildcat version`) median {:.2} ms, and the exchange itself (connect, submit, wait, from this process) median {:.2} ms",
            percentile(&sorted, 90.0),
            sorted.first().copied().unwrap_or(0.0),
            sorted.last().copied().unwrap_or(0.0),
            percentile(&floor, 50.0),
            percentile(&in_process, 50.0)
        )),
    ])
}

/// Sequential submit-and-wait of no-op jobs, one client and one worker loop; returns the
/// samples in µs and the submit-acknowledgement part of each.
async fn latency_samples(
    addr: &str,
    count: usize,
) -> anyhow::Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let root = tempfile::tempdir()?;
    let (stop, stopped) = oneshot::channel();
    let worker = spawn_noop_worker(addr, root.path(), "latency", 1, None, stopped)?;
    let client = Client::connect(addr).await?;
    if wait_for_workers(&client, 1, Duration::from_secs(30)).await? < 1 {
        bail!("the worker did not register within 30 s");
    }
    // The floor: a request the core answers without storage.
    let mut rpc = Vec::new();
    for _ in 0..1000 {
        let start = Instant::now();
        client.info().await?;
        rpc.push(micros(start.elapsed()));
    }
    for n in 0..200 {
        client.submit(QUEUE, &Noop { n }).await?.wait().await?;
    }
    let mut total = Vec::with_capacity(count);
    let mut acked = Vec::with_capacity(count);
    for n in 0..count as u64 {
        let start = Instant::now();
        let handle = client.submit(QUEUE, &Noop { n }).await?;
        let submitted = start.elapsed();
        handle.wait().await?;
        total.push(micros(start.elapsed()));
        acked.push(micros(submitted));
    }
    let _ = stop.send(());
    drop(client);
    tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .context("the worker did not stop")???;
    Ok((total, acked, rpc))
}

/// The floor under any request: a 16-byte ping-pong over loopback TCP between two tokio
/// tasks (an echo task on the server runtime's kind of thread pool), in µs per round trip.
async fn bare_round_trips(count: usize) -> anyhow::Result<Vec<f64>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let echo = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        let mut buf = [0u8; 16];
        loop {
            if socket.read_exact(&mut buf).await.is_err() {
                return Ok::<_, std::io::Error>(());
            }
            socket.write_all(&buf).await?;
        }
    });
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    let mut buf = [7u8; 16];
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        socket.write_all(&buf).await?;
        socket.read_exact(&mut buf).await?;
        samples.push(micros(start.elapsed()));
    }
    drop(socket);
    echo.await.context("the echo task panicked")??;
    Ok(samples)
}

/// In-process latency, durable, plus the same without sync and the request floor.
pub async fn latency(ctx: &Setup) -> anyhow::Result<(Vec<Figure>, Vec<f64>, Vec<f64>)> {
    let count = ctx.sizes.latency_samples;
    let server = InProcessServer::start(true).await?;
    let (samples, acked, rpc) = latency_samples(&server.addr, count).await?;
    server.stop().await?;
    let server = InProcessServer::start(false).await?;
    let (nosync_samples, _, _) = latency_samples(&server.addr, count / 4).await?;
    server.stop().await?;
    let bare = sorted(&bare_round_trips(1000).await?);

    let rest: Vec<f64> = samples.iter().zip(&acked).map(|(t, a)| t - a).collect();
    let rest = sorted(&rest);
    let all = sorted(&samples);
    let acked = sorted(&acked);
    let nosync = sorted(&nosync_samples);
    let rpc = sorted(&rpc);
    let how = format!(
        "{count} sequential submit + wait of a no-op, one client, one worker loop, server in-process, storage durable"
    );
    let figures = vec![
        Figure::new(
            "latency_p50_us",
            "in-process latency p50",
            percentile(&all, 50.0),
            "µs",
            Goal::AtMost,
            150.0,
        )
        .how(how.clone())
        .detail(format!(
            "submit to durable acknowledgement p50 {:.0} µs, acknowledgement to result p50 {:.0} µs; max {:.0} µs",
            percentile(&acked, 50.0),
            percentile(&rest, 50.0),
            all.last().copied().unwrap_or(0.0)
        )),
        Figure::new(
            "latency_p99_us",
            "in-process latency p99",
            percentile(&all, 99.0),
            "µs",
            Goal::AtMost,
            1000.0,
        )
        .how(how),
        Figure::info(
            "latency_nosync_p50_us",
            "in-process latency p50, unsafe no-sync",
            percentile(&nosync, 50.0),
            "µs",
        )
        .how(format!(
            "as above, {} samples, server with sync off",
            nosync.len()
        ))
        .detail(format!("p99 {:.0} µs", percentile(&nosync, 99.0))),
        Figure::info(
            "rpc_info_p50_us",
            "stage: request round trip (info), p50",
            percentile(&rpc, 50.0),
            "µs",
        )
        .how("1,000 sequential `info` requests on the latency run's client, no storage involved")
        .detail(format!("p99 {:.0} µs", percentile(&rpc, 99.0))),
        Figure::info(
            "tcp_echo_p50_us",
            "stage: bare loopback TCP round trip, p50",
            percentile(&bare, 50.0),
            "µs",
        )
        .how("1,000 sequential 16-byte ping-pongs between two tokio tasks in this process, no buildcat code")
        .detail(format!("p99 {:.0} µs", percentile(&bare, 99.0))),
    ];
    Ok((figures, samples, nosync_samples))
}

/// One throughput run.
pub struct ThroughputRun {
    /// Jobs finished per second, first submit to last finished.
    pub jobs_per_s: f64,
    /// Seconds until every submit was acknowledged.
    pub submit_s: f64,
    /// Seconds until the worker had every result acknowledged.
    pub total_s: f64,
    /// CPU seconds per job by thread name, during the run.
    pub cpu_per_job: Vec<(String, f64)>,
}

impl ThroughputRun {
    /// Where the CPU went, per job, in words.
    pub fn cpu_breakdown(&self) -> String {
        let parts: Vec<String> = self
            .cpu_per_job
            .iter()
            .filter(|(_, t)| *t * 1e6 >= 0.05)
            .map(|(name, t)| format!("{name} {:.1} µs", t * 1e6))
            .collect();
        let total: f64 = self.cpu_per_job.iter().map(|(_, t)| t).sum();
        format!(
            "CPU per job {:.1} µs: {} (threads: bench-server = server runtime, buildcat-store = SQLite writer, bench-client = client and worker loops)",
            total * 1e6,
            parts.join(", ")
        )
    }
}

/// `jobs` no-op jobs through `loops` worker loops on an in-process server.
pub async fn throughput_run(
    loops: usize,
    jobs: usize,
    sync: bool,
) -> anyhow::Result<ThroughputRun> {
    let server = InProcessServer::start(sync).await?;
    let root = tempfile::tempdir()?;
    let (_stop, stopped) = oneshot::channel();
    let worker = spawn_noop_worker(
        &server.addr,
        root.path(),
        "tp",
        loops,
        Some(jobs as u64),
        stopped,
    )?;
    let client = Client::connect(&server.addr).await?;
    let seen = wait_for_workers(&client, loops, Duration::from_secs(30)).await?;
    if seen < loops {
        bail!("only {seen} of {loops} worker loops registered within 30 s");
    }
    let cpu_before = sys::thread_cpu_seconds();
    let start = Instant::now();
    let acknowledged = submit_batched(&client, jobs, 1000, 8).await?;
    let submit_s = start.elapsed().as_secs_f64();
    let stats = tokio::time::timeout(Duration::from_secs(600), worker)
        .await
        .context("the worker did not finish within 600 s")???;
    let total_s = start.elapsed().as_secs_f64();
    let cpu_per_job = sys::thread_cpu_delta(&cpu_before, &sys::thread_cpu_seconds())
        .into_iter()
        .map(|(name, t)| (name, t / jobs as f64))
        .collect();
    if acknowledged != jobs || stats.tasks_completed != jobs as u64 {
        bail!(
            "{acknowledged} of {jobs} jobs acknowledged, {} completed",
            stats.tasks_completed
        );
    }
    drop(client);
    server.stop().await?;
    Ok(ThroughputRun {
        jobs_per_s: jobs as f64 / total_s,
        submit_s,
        total_s,
        cpu_per_job,
    })
}

/// The headline throughput and the chart of throughput against loops.
pub async fn throughput(ctx: &Setup) -> anyhow::Result<(Vec<Figure>, Vec<(usize, f64)>)> {
    let jobs = ctx.sizes.throughput_jobs;
    let repeats = ctx.sizes.repeats.max(1);
    let mut runs = Vec::new();
    for _ in 0..repeats {
        runs.push(throughput_run(4, jobs, true).await?);
    }
    let all = runs
        .iter()
        .map(|r| human(r.jobs_per_s))
        .collect::<Vec<_>>()
        .join(", ");
    runs.sort_by(|a, b| a.jobs_per_s.total_cmp(&b.jobs_per_s));
    let run = &runs[runs.len() / 2];
    let mut figures = vec![
        Figure::new(
            "throughput_jobs_per_s",
            "throughput, 4 worker loops",
            run.jobs_per_s,
            "jobs/s",
            Goal::AtLeast,
            50_000.0,
        )
        .how(format!(
            "{} no-op jobs in batches of 1,000 (8 in flight) from one client, 4 loops, server in-process, storage durable; median of {repeats} runs",
            human(jobs as f64)
        ))
        .detail(format!(
            "runs: {all} jobs/s; median run: all submitted in {:.2} s, all finished in {:.2} s; {}",
            run.submit_s,
            run.total_s,
            run.cpu_breakdown()
        )),
    ];
    let mut points = Vec::new();
    for &loops in &ctx.sizes.chart_loops {
        let run = throughput_run(loops, ctx.sizes.chart_jobs, true).await?;
        points.push((loops, run.jobs_per_s));
    }
    let series = points
        .iter()
        .map(|(loops, rate)| format!("{loops}: {}", human(*rate)))
        .collect::<Vec<_>>()
        .join(", ");
    figures.push(
        Figure::info(
            "throughput_by_loops",
            "throughput against loops (chart)",
            points.iter().map(|p| p.1).fold(0.0, f64::max),
            "jobs/s",
        )
        .how(format!(
            "{} jobs per run, durable; value is the best run",
            human(ctx.sizes.chart_jobs as f64)
        ))
        .detail(format!("loops: jobs/s = {series}")),
    );
    Ok((figures, points))
}

/// Batched submissions per second on a fresh in-process server.
async fn batched_rate(jobs: usize) -> anyhow::Result<f64> {
    let server = InProcessServer::start(true).await?;
    let client = Client::connect(&server.addr).await?;
    let start = Instant::now();
    let acknowledged = submit_batched(&client, jobs, 1000, 8).await?;
    let rate = acknowledged as f64 / start.elapsed().as_secs_f64();
    drop(client);
    server.stop().await?;
    Ok(rate)
}

/// One-job submissions per second, `lanes` in flight on one client, on a fresh server.
async fn single_rate(jobs: usize, lanes: usize) -> anyhow::Result<f64> {
    let server = InProcessServer::start(true).await?;
    let client = Client::connect(&server.addr).await?;
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for lane in 0..lanes {
        let client = client.clone();
        let count = jobs / lanes + usize::from(lane < jobs % lanes);
        tasks.spawn(async move {
            for n in 0..count as u64 {
                client.submit(QUEUE, &Noop { n }).await?;
            }
            Ok::<_, buildcat_client::ClientError>(count)
        });
    }
    let mut acknowledged = 0;
    while let Some(done) = tasks.join_next().await {
        acknowledged += done.context("a submitting task panicked")??;
    }
    let rate = acknowledged as f64 / start.elapsed().as_secs_f64();
    drop(client);
    server.stop().await?;
    Ok(rate)
}

/// The median of `rates` and all of them in words.
fn median_of(mut rates: Vec<f64>) -> (f64, String) {
    let all = rates
        .iter()
        .map(|r| human(*r))
        .collect::<Vec<_>>()
        .join(", ");
    rates.sort_by(f64::total_cmp);
    (percentile(&rates, 50.0), all)
}

/// Acknowledged submissions per second, batched and one per request, no worker.
pub async fn submit_rate(ctx: &Setup) -> anyhow::Result<Vec<Figure>> {
    let batched_jobs = ctx.sizes.submit_batched_jobs;
    let single_jobs = ctx.sizes.submit_single_jobs;
    let lanes = ctx.sizes.single_in_flight;
    let repeats = ctx.sizes.repeats.max(1);
    let mut batched = Vec::new();
    let mut single = Vec::new();
    for _ in 0..repeats {
        batched.push(batched_rate(batched_jobs).await?);
        single.push(single_rate(single_jobs, lanes).await?);
    }
    let (batched, batched_all) = median_of(batched);
    let (single, single_all) = median_of(single);

    Ok(vec![
        Figure::new(
            "submit_batched_per_s",
            "submit rate, batched",
            batched,
            "jobs/s",
            Goal::AtLeast,
            200_000.0,
        )
        .how(format!(
            "{} jobs in batches of 1,000, 8 batches in flight, one client, no worker, server in-process, durable acks; median of {repeats} runs",
            human(batched_jobs as f64)
        ))
        .detail(format!("runs: {batched_all} jobs/s")),
        Figure::new(
            "submit_single_per_s",
            "submit rate, one job per request",
            single,
            "jobs/s",
            Goal::AtLeast,
            30_000.0,
        )
        .how(format!(
            "{} jobs, one per Submit, {lanes} in flight on one client connection, no worker, server in-process, durable acks; median of {repeats} runs",
            human(single_jobs as f64)
        ))
        .detail(format!("runs: {single_all} jobs/s")),
    ])
}

/// Throughput with fsync against the unsafe no-sync mode: pairs of runs, alternating, and
/// the median of their ratios (the machine is shared, so one pair can be skewed).
pub async fn durability(ctx: &Setup) -> anyhow::Result<Vec<Figure>> {
    let jobs = ctx.sizes.durability_jobs;
    let rounds = ctx.sizes.durability_rounds.max(1);
    let mut pairs = Vec::new();
    for _ in 0..rounds {
        let sync = throughput_run(4, jobs, true).await?;
        let nosync = throughput_run(4, jobs, false).await?;
        pairs.push((sync, nosync));
    }
    let mut ratios: Vec<f64> = pairs
        .iter()
        .map(|(sync, nosync)| nosync.jobs_per_s / sync.jobs_per_s)
        .collect();
    ratios.sort_by(f64::total_cmp);
    let ratio = percentile(&ratios, 50.0);
    let (sync, nosync) = pairs
        .iter()
        .min_by(|a, b| {
            let distance = |p: &(ThroughputRun, ThroughputRun)| {
                (p.1.jobs_per_s / p.0.jobs_per_s - ratio).abs()
            };
            distance(a).total_cmp(&distance(b))
        })
        .context("no durability run")?;
    let all = pairs
        .iter()
        .map(|(s, n)| format!("{} / {}", human(n.jobs_per_s), human(s.jobs_per_s)))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(vec![
        Figure::info(
            "durability_ratio",
            "durability cost (no-sync / sync throughput)",
            ratio,
            "x",
        )
        .how(format!(
            "{} no-op jobs, 4 loops, server in-process with sync on, then with ServerConfig.sync = false (= `buildcat server --unsafe-no-sync`); median of {rounds} pairs",
            human(jobs as f64)
        ))
        .detail(format!(
            "pairs (no-sync / sync jobs/s): {all}; median pair: sync run {}; no-sync run {}",
            sync.cpu_breakdown(),
            nosync.cpu_breakdown()
        )),
    ])
}

/// Server memory per queued job, then the restart time with those jobs in storage.
pub async fn memory_and_restart(ctx: &Setup) -> anyhow::Result<Vec<Figure>> {
    let jobs = ctx.sizes.queued_jobs;
    let dir = tempfile::tempdir()?;
    let storage = dir.path().join("queue.db");
    let mut server =
        ChildServer::start(&ctx.buildcat, &storage, &dir.path().join("server.log")).await?;
    let client = Client::connect(&server.addr).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = sys::rss_bytes(server.pid())?;
    let start = Instant::now();
    let acknowledged = submit_batched(&client, jobs, 1000, 8).await?;
    let submit_s = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let full = sys::rss_bytes(server.pid())?;
    let queued: u64 = client
        .info()
        .await?
        .queues
        .iter()
        .map(|q| q.tasks.queued)
        .sum();
    if acknowledged != jobs || queued != jobs as u64 {
        bail!("{acknowledged} of {jobs} submissions acknowledged, {queued} queued");
    }
    drop(client);
    let per_job = full.saturating_sub(idle) as f64 / jobs as f64;
    let db_bytes = file_size(&storage) + file_size(&dir.path().join("queue.db-wal"));

    server.kill();
    let start = Instant::now();
    let mut restarted =
        ChildServer::spawn(&ctx.buildcat, &storage, &dir.path().join("restart.log"))?;
    let client = restarted.wait_serving(Duration::from_secs(300)).await?;
    let restart_s = start.elapsed().as_secs_f64();
    let queued: u64 = client
        .info()
        .await?
        .queues
        .iter()
        .map(|q| q.tasks.queued)
        .sum();
    let loaded_rss = sys::rss_bytes(restarted.pid())?;
    // What holding the jobs costs when nothing happens (timers that scan every job).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before = sys::cpu_seconds(restarted.pid())?;
    let watch = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_cpu =
        (sys::cpu_seconds(restarted.pid())? - cpu_before) / watch.elapsed().as_secs_f64() * 100.0;
    drop(client);
    drop(restarted);
    if queued != jobs as u64 {
        bail!("after the restart {queued} of {jobs} jobs are queued");
    }
    Ok(vec![
        Figure::new(
            "queue_memory_bytes_per_job",
            "queue memory per queued job",
            per_job,
            "bytes",
            Goal::AtMost,
            400.0,
        )
        .how(format!(
            "child-process server (`buildcat server`), VmRSS with {} queued no-op jobs ({} bytes of args each) minus idle VmRSS",
            human(jobs as f64),
            buildcat_proto::codec::encode_value(&Noop { n: jobs as u64 })?.len()
        ))
        .detail(format!(
            "idle {:.1} MB, queued {:.1} MB; submitted at {} jobs/s; storage {:.1} MB on disk",
            idle as f64 / 1e6,
            full as f64 / 1e6,
            human(jobs as f64 / submit_s),
            db_bytes as f64 / 1e6
        )),
        Figure::new(
            "restart_s",
            "restart to serving",
            restart_s,
            "s",
            Goal::AtMost,
            5.0,
        )
        .how(format!(
            "SIGKILL the server above, start `buildcat server` on the same storage, time until `info` answers; {} jobs in storage",
            human(jobs as f64)
        ))
        .detail(format!(
            "VmRSS after loading {:.1} MB ({:.0} bytes per job over the idle server); then idle with the jobs queued and no peer: {idle_cpu:.1}% of a core over 3 s",
            loaded_rss as f64 / 1e6,
            loaded_rss.saturating_sub(idle) as f64 / jobs as f64
        )),
    ])
}

/// Size of a file, 0 if it is missing.
fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Server RSS and CPU with many idle, heartbeating workers connected.
pub async fn many_workers(ctx: &Setup) -> anyhow::Result<Vec<Figure>> {
    let count = ctx.sizes.many_workers;
    let window = ctx.sizes.cpu_window;
    let dir = tempfile::tempdir()?;
    let server = ChildServer::start(
        &ctx.buildcat,
        &dir.path().join("workers.db"),
        &dir.path().join("server.log"),
    )
    .await?;
    let client = Client::connect(&server.addr).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = sys::rss_bytes(server.pid())?;
    let root = tempfile::tempdir()?;
    let (stop, stopped) = oneshot::channel();
    let start = Instant::now();
    let worker = spawn_noop_worker(&server.addr, root.path(), "w", count, None, stopped)?;
    // Counted as connections on the server's port rather than with `info`: an `info` reply
    // listing thousands of workers may not decode (see the detail of the figure).
    let port = server.port();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut seen = 0;
    while Instant::now() < deadline {
        // Every worker's connection plus the bench client's own.
        seen = sys::established_connections(port).saturating_sub(1);
        if seen >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connect_s = start.elapsed().as_secs_f64();
    if seen < count {
        let _ = stop.send(());
        bail!("only {seen} of {count} workers connected within 300 s");
    }
    // Let the registrations and the connection burst settle, then watch a quiet farm.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_before = sys::cpu_seconds(server.pid())?;
    let own_before = sys::own_cpu_seconds()?;
    let watch = Instant::now();
    tokio::time::sleep(window).await;
    let watched = watch.elapsed().as_secs_f64();
    let cpu = (sys::cpu_seconds(server.pid())? - cpu_before) / watched * 100.0;
    let own = (sys::own_cpu_seconds()? - own_before) / watched * 100.0;
    let rss = sys::rss_bytes(server.pid())?;
    let still = sys::established_connections(port).saturating_sub(1);
    let listed = match client.info().await {
        Ok(info) => format!("`info` lists {} workers", info.workers.len()),
        Err(error) => format!("`info` failed: {error}"),
    };
    let _ = stop.send(());
    drop(client);
    tokio::time::timeout(Duration::from_secs(120), worker)
        .await
        .context("the workers did not stop within 120 s")???;
    drop(server);
    let how = format!(
        "child-process server (`buildcat server`), {} idle worker loops (one connection each, heartbeat 5 s) from the bench process",
        human(count as f64)
    );
    Ok(vec![
        Figure::new(
            "many_workers_rss_mb",
            "many workers: server RSS",
            rss as f64 / 1e6,
            "MB",
            Goal::AtMost,
            500.0,
        )
        .how(how.clone())
        .detail(format!(
            "idle server {:.1} MB, {:.1} KB per connected worker; all registered in {connect_s:.1} s",
            idle as f64 / 1e6,
            rss.saturating_sub(idle) as f64 / count as f64 / 1e3
        )),
        Figure::new(
            "many_workers_cpu_pct",
            "many workers: server CPU",
            cpu,
            "% of a core",
            Goal::AtMost,
            10.0,
        )
        .how(how)
        .detail(format!(
            "over {watched:.1} s; {still} workers still connected at the end ({listed}); the bench process (the workers) used {own:.1}% of a core"
        )),
    ])
}
