//! The stall probe (issue 18, review R1): many clients keep single submissions in flight
//! against an in-process server. Before the fix the core task and the store writer waited on
//! each other through full channels and the server stopped for good within seconds at
//! 50 clients x 400 in flight. Each run reports its acknowledgements; a run in which no
//! submission was acknowledged for [`STALL_AFTER`] is reported as a failure line.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use buildcat_client::Client;
use tokio::task::JoinSet;

use crate::farm::{InProcessServer, Noop, QUEUE};
use crate::report::{Figure, Goal, human};

/// No acknowledgement for this long counts as a stall: a healthy server acknowledges
/// thousands per second under this load.
const STALL_AFTER: Duration = Duration::from_secs(5);

/// How often progress is looked at.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// How big the probe is.
#[derive(Debug, Clone)]
pub struct StallSizes {
    /// Client connections.
    pub clients: usize,
    /// Single submissions each client keeps in flight.
    pub in_flight: usize,
    /// How long each run lasts.
    pub run: Duration,
    /// Runs, each against a fresh server.
    pub runs: usize,
}

/// One figure per run: acknowledgements, or a failure line for a stall.
pub async fn probe(sizes: &StallSizes) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    for run in 1..=sizes.runs {
        let key = format!("stall_run_{run}");
        let name = format!("stall probe run {run}, acknowledgements");
        let how = format!(
            "{} clients x {} single submissions in flight for {:?}, server in-process, durable acks; a stall is {:?} without an ack",
            sizes.clients, sizes.in_flight, sizes.run, STALL_AFTER
        );
        let figure = match one_run(sizes).await? {
            Ok(acknowledged) => {
                Figure::new(&key, &name, acknowledged as f64, "acks", Goal::None, 0.0).detail(
                    format!(
                        "{} acks/s, no stall",
                        human(acknowledged as f64 / sizes.run.as_secs_f64())
                    ),
                )
            }
            Err(stall) => Figure::failed(&key, &name, "acks", &anyhow!(stall)),
        }
        .how(how);
        figures.push(figure);
    }
    Ok(figures)
}

/// One run against a fresh server: `Ok(acknowledgements)`, or `Err` describing the stall.
async fn one_run(sizes: &StallSizes) -> anyhow::Result<Result<u64, String>> {
    let server = InProcessServer::start(true).await?;
    let acknowledged = Arc::new(AtomicU64::new(0));
    let mut submitters = JoinSet::new();
    for _ in 0..sizes.clients {
        let client = Client::connect(&server.addr).await?;
        for lane in 0..sizes.in_flight {
            let client = client.clone();
            let acknowledged = Arc::clone(&acknowledged);
            submitters.spawn(async move {
                let mut n = lane as u64;
                loop {
                    client.submit(QUEUE, &Noop { n }).await?;
                    acknowledged.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
                #[allow(unreachable_code, reason = "names the loop's error type")]
                Ok::<(), buildcat_client::ClientError>(())
            });
        }
    }
    let start = Instant::now();
    let mut last = 0;
    let mut last_progress = Instant::now();
    let mut outcome = Ok(0);
    let mut ticker = tokio::time::interval(SAMPLE_EVERY);
    ticker.tick().await;
    while start.elapsed() < sizes.run {
        tokio::select! {
            _ = ticker.tick() => {}
            Some(ended) = submitters.join_next() => {
                // A submitter only ends on an error: the server refused or dropped it.
                let error = match ended {
                    Ok(Err(error)) => error.to_string(),
                    Ok(Ok(())) => "a submitter ended".to_owned(),
                    Err(error) => format!("a submitter panicked: {error}"),
                };
                outcome = Err(format!("a submission failed after {:?}: {error}", start.elapsed()));
                break;
            }
        }
        let now = acknowledged.load(Ordering::Relaxed);
        if now != last {
            last = now;
            last_progress = Instant::now();
        } else if last_progress.elapsed() >= STALL_AFTER {
            outcome = Err(format!(
                "stalled: no submission acknowledged for {STALL_AFTER:?}, {now} acknowledged before, at {:?}",
                start.elapsed()
            ));
            break;
        }
    }
    submitters.abort_all();
    while submitters.join_next().await.is_some() {}
    server.stop().await?;
    Ok(outcome.map(|_: u64| acknowledged.load(Ordering::Relaxed)))
}
