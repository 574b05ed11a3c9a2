//! The store writer: one thread that owns the [`Store`] and commits everything queued since
//! its last commit in one transaction (group commit), so durability costs one sync per batch
//! rather than one per job.
//!
//! It reports each commit, and each page of task output it was asked to read, on a channel of
//! its own that never blocks it (unbounded, but with at most one message per commit or read,
//! and the hub drains it before anything else). A writer that could wait on the hub while the
//! hub waits on it is the deadlock this shape rules out.

use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

use crate::core::{OutputRead, Token};
use crate::http::StoreMetrics;
use buildcat_proto::LogPage;

use crate::store::{Store, StoreError, StoreOp};

/// Store operations from one [`Effect::Persist`](crate::core::Effect::Persist), or a read
/// from one [`Effect::ReadOutput`](crate::core::Effect::ReadOutput).
#[derive(Debug)]
pub(crate) struct WriteBatch {
    /// The changes, applied in order.
    pub(crate) ops: Vec<StoreOp>,
    /// Reported back once committed, when the core waits for this batch.
    pub(crate) token: Option<Token>,
    /// A page of task output to read once everything before it is committed, so that it
    /// sees every change sent before it.
    pub(crate) read: Option<OutputRead>,
    /// The ops' [`StoreOp::size_hint`]s: what the batch holds in memory until committed,
    /// reported back so the hub counts what the writer holds.
    pub(crate) bytes: usize,
}

/// What the writer reports to the core.
#[derive(Debug)]
pub(crate) enum Report {
    /// One commit's outcome.
    Committed {
        /// The batches the commit carried that the core waits for.
        tokens: Vec<Token>,
        /// On `Err` none of those batches took effect.
        result: Result<(), StoreError>,
        /// The `bytes` of the batches it carried, no longer held.
        bytes: usize,
    },
    /// A page of job output read, for the request in `read`.
    Read {
        /// The read, handed back unchanged.
        read: OutputRead,
        /// The page.
        result: Result<LogPage, StoreError>,
    },
}

/// Starts the writer thread. It ends when every sender of `batches` is gone and what they
/// sent is committed.
pub(crate) fn spawn<S: Store>(
    store: S,
    batches: mpsc::Receiver<WriteBatch>,
    committed: mpsc::UnboundedSender<Report>,
    superseded: oneshot::Sender<StoreError>,
    max_batch: usize,
    metrics: StoreMetrics,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("buildcat-store".into())
        .spawn(move || write(store, batches, committed, superseded, max_batch, metrics))
}

/// The writer thread's loop.
fn write<S: Store>(
    mut store: S,
    mut batches: mpsc::Receiver<WriteBatch>,
    reports: mpsc::UnboundedSender<Report>,
    superseded: oneshot::Sender<StoreError>,
    max_batch: usize,
    metrics: StoreMetrics,
) {
    // Taken at the first commit another server refused: the server steps down once.
    let mut superseded = Some(superseded);
    let mut ops: Vec<StoreOp> = Vec::new();
    let mut tokens: Vec<Token> = Vec::new();
    while let Some(first) = batches.blocking_recv() {
        let mut next = Some(first);
        let mut read = None;
        let mut bytes = 0;
        while let Some(batch) = next.take() {
            bytes += batch.bytes;
            ops.extend(batch.ops);
            tokens.extend(batch.token);
            if batch.read.is_some() {
                read = batch.read;
                break;
            }
            if ops.len() >= max_batch {
                break;
            }
            next = batches.try_recv().ok();
        }
        if !ops.is_empty() || !tokens.is_empty() {
            let started = Instant::now();
            let result = store.commit(&ops);
            metrics.observe_commit(started.elapsed());
            if let Err(e) = &result {
                error!(error = %e, ops = ops.len(), "could not commit to storage");
                if matches!(e, StoreError::Superseded { .. })
                    && let Some(superseded) = superseded.take()
                {
                    // The server is gone only when it is stopping anyway.
                    let _ = superseded.send(e.clone());
                }
            }
            ops.clear();
            if !tokens.is_empty() || bytes > 0 {
                let report = Report::Committed {
                    tokens: std::mem::take(&mut tokens),
                    result,
                    bytes,
                };
                // The hub is gone only at shutdown, when nobody waits for the answer; the
                // data is committed either way.
                let _ = reports.send(report);
            }
        }
        if let Some(read) = read {
            let result = store.read_output(read.task, read.from, read.max_bytes);
            if let Err(e) = &result {
                warn!(error = %e, task = %read.task, "could not read task output");
            }
            let _ = reports.send(Report::Read { read, result });
        }
    }
}
