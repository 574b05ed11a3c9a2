//! The store writer: one thread that owns the [`Store`] and commits everything queued since
//! its last commit in one transaction (group commit), so durability costs one sync per batch
//! rather than one per job.
//!
//! It reports each commit on a channel of its own that never blocks it (unbounded, but with
//! at most one message per commit, and the hub drains it before anything else). A writer
//! that could wait on the hub while the hub waits on it is the deadlock this shape rules out.

use std::thread::JoinHandle;

use tokio::sync::mpsc;
use tracing::error;

use crate::core::Token;
use crate::store::{Store, StoreError, StoreOp};

/// Store operations from one [`Effect::Persist`](crate::core::Effect::Persist).
#[derive(Debug)]
pub(crate) struct WriteBatch {
    /// The changes, applied in order.
    pub(crate) ops: Vec<StoreOp>,
    /// Reported back once committed, when the core waits for this batch.
    pub(crate) token: Option<Token>,
}

/// One commit's outcome, for the core.
#[derive(Debug)]
pub(crate) struct Committed {
    /// The batches the commit carried that the core waits for.
    pub(crate) tokens: Vec<Token>,
    /// On `Err` none of those batches took effect.
    pub(crate) result: Result<(), StoreError>,
}

/// Starts the writer thread. It ends when every sender of `batches` is gone and what they
/// sent is committed.
pub(crate) fn spawn<S: Store>(
    store: S,
    batches: mpsc::Receiver<WriteBatch>,
    committed: mpsc::UnboundedSender<Committed>,
    max_batch: usize,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("buildcat-store".into())
        .spawn(move || write(store, batches, committed, max_batch))
}

/// The writer thread's loop.
fn write<S: Store>(
    mut store: S,
    mut batches: mpsc::Receiver<WriteBatch>,
    committed: mpsc::UnboundedSender<Committed>,
    max_batch: usize,
) {
    let mut ops: Vec<StoreOp> = Vec::new();
    let mut tokens: Vec<Token> = Vec::new();
    while let Some(first) = batches.blocking_recv() {
        ops.extend(first.ops);
        tokens.extend(first.token);
        while ops.len() < max_batch {
            match batches.try_recv() {
                Ok(more) => {
                    ops.extend(more.ops);
                    tokens.extend(more.token);
                }
                Err(_) => break,
            }
        }
        let result = store.commit(&ops);
        if let Err(e) = &result {
            error!(error = %e, ops = ops.len(), "could not commit to storage");
        }
        ops.clear();
        if !tokens.is_empty() {
            let report = Committed {
                tokens: std::mem::take(&mut tokens),
                result,
            };
            // The hub is gone only at shutdown, when nobody waits for the answer; the data is
            // committed either way.
            let _ = committed.send(report);
        }
    }
}
