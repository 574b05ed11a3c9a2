//! Signals: stopping `worker`, `workers` and `farm` in two steps, and
//! [`shutdown_signal`] for the commands that stop at the first.
//!
//! The first Ctrl-C (or SIGTERM) lets running jobs finish and be reported, and says how
//! many there are and that a second Ctrl-C stops them now; idle workers stop at once. The
//! second stops the running jobs now: their processes are killed and the server puts the
//! jobs back in their queue. A third ends the program at once, for a stop that hangs.
//!
//! [`Stop`] only turns signals into stages and says what happens; the commands decide what
//! each stage does to their workers (see `farm.rs`).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::watch;

/// How far stopping has gone; only ever moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// No signal yet.
    Running,
    /// One signal: finish running jobs, take no new ones.
    Finishing,
    /// Two signals: stop running jobs now.
    Now,
}

/// Counts the jobs running now, or `None` when that cannot be told (the server is out of
/// reach); asked once, when the first signal comes.
pub type CountRunning = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Option<usize>> + Send>> + Send>;

/// How long the first Ctrl-C waits for the count of running jobs before saying what it
/// does without it: the person pressing it should hear back at once.
const COUNT_PATIENCE: Duration = Duration::from_secs(2);

/// The exit status after a second signal stopped running jobs: 128 + SIGINT, as a shell
/// reports a program interrupted by Ctrl-C, so scripts can tell jobs were cut short.
pub const STOPPED_NOW: u8 = 130;

/// The stage a long-running command is in, fed by a task that listens for signals.
#[derive(Debug, Clone)]
pub struct Stop {
    /// Changed by the listening task at each signal.
    stage: watch::Receiver<Stage>,
}

impl Stop {
    /// Starts listening for Ctrl-C and SIGTERM; `count` says how many jobs the first signal
    /// leaves to finish.
    pub fn listen(count: CountRunning) -> Stop {
        let (advance, stage) = watch::channel(Stage::Running);
        // Listen from now on, so a signal that comes while the count is asked is not lost.
        let mut signals = Signals::new();
        tokio::spawn(async move {
            signals.next().await;
            let running = tokio::time::timeout(COUNT_PATIENCE, count())
                .await
                .ok()
                .flatten();
            eprintln!("{}", finishing_message(running));
            let _ = advance.send(Stage::Finishing);
            signals.next().await;
            eprintln!(
                "stopping now: running jobs are killed and the server puts them back in their \
                 queue"
            );
            let _ = advance.send(Stage::Now);
            signals.next().await;
            eprintln!("stopping at once");
            std::process::exit(i32::from(STOPPED_NOW));
        });
        Stop { stage }
    }

    /// Resolves once the first signal has come.
    pub fn finishing(&self) -> impl Future<Output = ()> + Send + 'static {
        self.reached(Stage::Finishing)
    }

    /// Resolves once the second signal has come.
    pub fn now(&self) -> impl Future<Output = ()> + Send + 'static {
        self.reached(Stage::Now)
    }

    /// Resolves once the stage is `stage` or later.
    fn reached(&self, stage: Stage) -> impl Future<Output = ()> + Send + 'static {
        let mut watching = self.stage.clone();
        async move {
            // An error means the listener is gone, which it never is while the runtime
            // runs; waiting forever is then right.
            if watching.wait_for(|now| *now >= stage).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// What Ctrl-C of a command that waits for jobs (`--wait`, `wait`) says: the jobs go on
/// without it, and how to attach again.
pub fn still_running(numbers: &[u64]) -> String {
    let list: Vec<String> = numbers.iter().map(u64::to_string).collect();
    let list = list.join(" ");
    if numbers.len() == 1 {
        format!(
            "stopped waiting; job {list} goes on (`buildcat wait {list}` attaches again, `buildcat cancel {list}` stops it)"
        )
    } else {
        format!(
            "stopped waiting; jobs {list} go on (`buildcat wait {list}` attaches again, `buildcat cancel {list}` stops them)"
        )
    }
}

/// Ctrl-C and SIGTERM, each registered once, so that signals are counted from the start.
struct Signals {
    /// Ctrl-C.
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    /// What a service manager sends to stop a service.
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Registers the handlers; one that cannot be registered is left out (and logged).
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let register = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(signal) => Some(signal),
                Err(error) => {
                    tracing::warn!(signal = name, %error, "cannot listen for the signal");
                    None
                }
            };
            Signals {
                interrupt: register(SignalKind::interrupt(), "SIGINT"),
                terminate: register(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Resolves at the next signal.
    async fn next(&mut self) {
        #[cfg(unix)]
        {
            async fn one(signal: &mut Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        // `None` means the runtime is shutting down; nothing more will come.
                        if signal.recv().await.is_none() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = one(&mut self.interrupt) => {}
                () = one(&mut self.terminate) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// What the first signal says, given how many jobs are running (if that is known).
fn finishing_message(running: Option<usize>) -> String {
    const AGAIN: &str = "press Ctrl-C again to stop them now (they go back to their queue)";
    match running {
        Some(0) => "stopping: no job is running".to_owned(),
        Some(1) => format!("finishing 1 running job; {AGAIN}"),
        Some(count) => format!("finishing {count} running jobs; {AGAIN}"),
        None => format!("finishing the running jobs; {AGAIN}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_signal_says_what_a_second_one_does() {
        assert_eq!(
            finishing_message(Some(2)),
            "finishing 2 running jobs; press Ctrl-C again to stop them now (they go back to \
             their queue)"
        );
        assert!(finishing_message(Some(1)).starts_with("finishing 1 running job;"));
        assert!(finishing_message(None).starts_with("finishing the running jobs;"));
        assert_eq!(finishing_message(Some(0)), "stopping: no job is running");
    }
}
