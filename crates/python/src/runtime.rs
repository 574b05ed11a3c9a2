//! The module's tokio runtime, and blocking on it from Python without holding the GIL.

use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use tokio::runtime::Runtime;

use crate::errors;

/// Threads of the runtime: a client is one connection with a reader and a writer task, so
/// two threads keep both moving while a third party (Blender's UI) holds the GIL.
const RUNTIME_THREADS: usize = 2;

/// How long one slice of a wait blocks before Python's signal handlers get to run: short
/// enough that Ctrl-C feels immediate, long enough that a waiting script costs nothing.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// The runtime every client of the process shares; made on first use.
static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The shared runtime, or why it could not be started.
pub fn runtime() -> PyResult<&'static Runtime> {
    let made = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("buildcat")
            .enable_all()
            .build()
            .map_err(|error| error.to_string())
    });
    made.as_ref().map_err(|error| {
        PyRuntimeError::new_err(format!(
            "buildcat could not start its async runtime: {error}"
        ))
    })
}

/// Runs `future` to its end on the runtime with the GIL released, for requests answered
/// at once (a submission, a status).
pub fn block<F>(py: Python<'_>, future: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let runtime = runtime()?;
    Ok(py.allow_threads(|| runtime.block_on(future)))
}

/// Runs `future` on the runtime until it ends, `timeout` runs out (`Timeout`, with
/// `what` in the message) or Python has a signal to raise (Ctrl-C raises
/// `KeyboardInterrupt`); the future is dropped on either of the last two.
pub fn wait_for<F>(
    py: Python<'_>,
    future: F,
    timeout: Option<Duration>,
    what: &str,
) -> PyResult<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let runtime = runtime()?;
    let mut task = runtime.spawn(future);
    let deadline = timeout.map(|timeout| Instant::now() + timeout);
    loop {
        if let Err(interrupted) = py.check_signals() {
            task.abort();
            return Err(interrupted);
        }
        let slice = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    task.abort();
                    let after = timeout.unwrap_or_default();
                    return Err(errors::raise(
                        py,
                        "Timeout",
                        format!("{what} did not end within {after:?}"),
                        None,
                    ));
                }
                left.min(SIGNAL_CHECK)
            }
            None => SIGNAL_CHECK,
        };
        let ended = py.allow_threads(|| {
            runtime.block_on(async { tokio::time::timeout(slice, &mut task).await })
        });
        match ended {
            Ok(Ok(output)) => return Ok(output),
            Ok(Err(join)) => {
                return Err(PyRuntimeError::new_err(format!(
                    "buildcat's wait ended without an answer: {join}"
                )));
            }
            Err(_elapsed) => {}
        }
    }
}

/// Seconds from Python (`None`: no limit), refused when negative or not a number.
pub fn seconds(py: Python<'_>, value: Option<f64>, what: &str) -> PyResult<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(seconds) => Duration::try_from_secs_f64(seconds).map(Some).map_err(|_| {
            errors::raise(
                py,
                "InvalidRequest",
                format!("{what} must be a positive number of seconds, not {seconds}"),
                None,
            )
        }),
    }
}
