//! `/metrics`: the farm in Prometheus's text format (OpenMetrics, by `prometheus-client`).
//!
//! Gauges are read from one `Info` request at scrape time, so they cost nothing between
//! scrapes and always agree with `buildcat info`; the bytes of output kept are a running
//! count in the core (`FarmInfo::output_bytes`), never a scan of the store. The storage commit latency is measured in
//! the store writer thread and shared here through [`StoreMetrics`], never through the core.
//! Task run times, queue waits and job ends are counted by the hub from the core's notices
//! into [`TaskMetrics`], as they happen.

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use buildcat_proto::{FarmInfo, Reply, Request, Role, TaskState, Timestamp, WorkerActivity};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::AppState;
use super::api::{ApiError, ask};
use super::throughput::Throughput;
use crate::core::Notice;

/// What Prometheus is told the body is: OpenMetrics text, which `prometheus-client` writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The fastest commit bucket: an unsynced commit of a few rows takes about this long.
const COMMIT_BUCKET_START: f64 = 0.000_5;

/// Buckets double from the first; 14 of them reach about 4 s, past which a disk is failing.
const COMMIT_BUCKETS: u16 = 14;

/// The shortest task time bucket: a command that does next to nothing.
const TASK_BUCKET_START: f64 = 0.1;

/// Buckets double from the first; 18 of them reach about 3.6 hours, a long frame.
const TASK_BUCKETS: u16 = 18;

/// The workers' states, listed even when no worker is in one, so a dashboard's series never
/// vanish.
const WORKER_STATES: [WorkerActivity; 4] = [
    WorkerActivity::Idle,
    WorkerActivity::Busy,
    WorkerActivity::Quarantined,
    WorkerActivity::Paused,
];

/// Measurements the store writer thread makes, shared with the HTTP shell.
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    /// How long each commit took, sync included.
    commit_seconds: Histogram,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            commit_seconds: Histogram::new(exponential_buckets(
                COMMIT_BUCKET_START,
                2.0,
                COMMIT_BUCKETS,
            )),
        }
    }
}

impl StoreMetrics {
    /// Records one commit that took `took`.
    pub(crate) fn observe_commit(&self, took: Duration) {
        self.commit_seconds.observe(took.as_secs_f64());
    }
}

/// A histogram family's constructor: every series gets the task buckets.
type TaskHistograms = Family<Labels, Histogram, fn() -> Histogram>;

/// The task buckets, 0.1 s to about 3.6 h.
fn task_histogram() -> Histogram {
    Histogram::new(exponential_buckets(TASK_BUCKET_START, 2.0, TASK_BUCKETS))
}

/// Measurements the hub makes from the core's notices as tasks start and end and jobs end,
/// shared with the HTTP shell.
#[derive(Debug, Clone)]
pub struct TaskMetrics {
    /// How long attempts ran, by queue and outcome.
    run_seconds: TaskHistograms,
    /// How long tasks waited in their queue before a worker took them, by queue.
    queue_wait_seconds: TaskHistograms,
    /// Jobs that ended, by queue and how.
    jobs_ended: Family<Labels, Counter>,
    /// Tasks finished per minute over the last hour, for the page's chart.
    throughput: Throughput,
}

impl Default for TaskMetrics {
    fn default() -> Self {
        TaskMetrics {
            run_seconds: Family::new_with_constructor(task_histogram),
            queue_wait_seconds: Family::new_with_constructor(task_histogram),
            jobs_ended: Family::default(),
            throughput: Throughput::default(),
        }
    }
}

impl TaskMetrics {
    /// The per-minute count of finished tasks, shared.
    pub(crate) fn throughput(&self) -> Throughput {
        self.throughput.clone()
    }

    /// Counts one notice.
    pub(crate) fn observe(&self, notice: &Notice) {
        match notice {
            Notice::Started { queue, waited } => {
                self.queue_wait_seconds
                    .get_or_create(&vec![("queue", queue.to_string())])
                    .observe(waited.as_secs_f64());
            }
            Notice::AttemptEnded {
                queue,
                outcome,
                ran,
            } => {
                self.run_seconds
                    .get_or_create(&vec![
                        ("queue", queue.to_string()),
                        ("outcome", (*outcome).to_owned()),
                    ])
                    .observe(ran.as_secs_f64());
                if *outcome == "finished" {
                    self.throughput.add(Timestamp::now(), 1);
                }
            }
            Notice::JobEnded(job) => {
                self.jobs_ended
                    .get_or_create(&vec![
                        ("queue", job.queue.clone()),
                        ("state", job.state.as_str().to_owned()),
                    ])
                    .inc();
            }
        }
    }
}

/// Protocol connections open now, by role, counted by the TCP sessions (the HTTP shell's
/// own requests are not protocol peers and are not counted).
#[derive(Debug, Clone, Default)]
pub struct ConnectionCounts {
    /// Open connections of clients.
    clients: Gauge,
    /// Open connections of workers.
    workers: Gauge,
}

/// Counts one connection while it lives.
#[derive(Debug)]
pub(crate) struct Counted(Gauge);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl ConnectionCounts {
    /// Counts a connection of `role` until the guard is dropped.
    pub(crate) fn count(&self, role: Role) -> Counted {
        let gauge = match role {
            Role::Client => self.clients.clone(),
            Role::Worker => self.workers.clone(),
        };
        gauge.inc();
        Counted(gauge)
    }
}

/// `GET /metrics`.
pub(crate) async fn scrape(
    axum::extract::State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let info = match ask(&state, Request::Info).await? {
        Reply::Info(info) => info,
        _ => return Err(ApiError::unavailable("the server did not answer `info`")),
    };
    let text = render(&info, &state.store, &state.connections, &state.tasks)
        .map_err(|e| ApiError::unavailable(format!("could not write the metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// Labels as prometheus-client takes them.
type Labels = Vec<(&'static str, String)>;

/// The metrics text for `info` and the store's measurements.
fn render(
    info: &FarmInfo,
    store: &StoreMetrics,
    connections: &ConnectionCounts,
    task_metrics: &TaskMetrics,
) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("buildcat");

    let tasks = Family::<Labels, Gauge>::default();
    let jobs = Family::<Labels, Gauge>::default();
    for queue in &info.queues {
        for state in TaskState::ALL {
            let labels = vec![
                ("queue", queue.name.clone()),
                ("state", state.as_str().to_owned()),
            ];
            tasks
                .get_or_create(&labels)
                .set(gauge_value(queue.count(state)));
        }
        jobs.get_or_create(&vec![("queue", queue.name.clone())])
            .set(gauge_value(queue.jobs));
    }
    registry.register("tasks", "Tasks kept, by queue and state", tasks);
    registry.register("jobs", "Jobs that have not ended, by queue", jobs);

    let workers = Family::<Labels, Gauge>::default();
    for state in WORKER_STATES {
        let count = info.workers.iter().filter(|w| w.activity == state).count();
        workers
            .get_or_create(&vec![("state", state.as_str().to_owned())])
            .set(gauge_value(count as u64));
    }
    registry.register("workers", "Connected workers, by state", workers);

    let quarantined = Gauge::<i64>::default();
    let names: std::collections::BTreeSet<&str> = info
        .workers
        .iter()
        .filter(|w| w.quarantine.is_some())
        .map(|w| w.name.as_str())
        .collect();
    quarantined.set(gauge_value(names.len() as u64));
    registry.register(
        "quarantined_workers",
        "Worker names the server gives no work until enabled",
        quarantined,
    );

    let output = Gauge::<i64>::default();
    output.set(gauge_value(info.output_bytes));
    registry.register_with_unit(
        "output",
        "Task output (log lines) the server keeps for the jobs on record",
        Unit::Bytes,
        output,
    );

    let open = Family::<Labels, Gauge>::default();
    open.get_or_create(&vec![("role", "client".to_owned())])
        .set(connections.clients.get());
    open.get_or_create(&vec![("role", "worker".to_owned())])
        .set(connections.workers.get());
    registry.register(
        "connections",
        "Protocol connections open now, by role",
        open,
    );

    registry.register(
        "store_commit_seconds",
        "How long each storage commit took, sync included",
        store.commit_seconds.clone(),
    );

    registry.register(
        "task_run_seconds",
        "How long task attempts ran, by queue and outcome (finished, failed, worker_lost, canceled, interrupted)",
        task_metrics.run_seconds.clone(),
    );
    registry.register(
        "task_queue_wait_seconds",
        "How long tasks waited in their queue before a worker took them",
        task_metrics.queue_wait_seconds.clone(),
    );
    registry.register(
        "jobs_ended",
        "Jobs that ended since the server started, by queue and state",
        task_metrics.jobs_ended.clone(),
    );

    let mut text = String::new();
    encode(&mut text, &registry)?;
    Ok(text)
}

/// A count as a gauge holds it (counts never reach `i64::MAX`; saturate if one did).
fn gauge_value(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}
