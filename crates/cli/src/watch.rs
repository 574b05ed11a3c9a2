//! Watching jobs through server restarts.
//!
//! The server keeps every job on disk, so `run --wait`, the render commands' `--wait`,
//! `logs --follow`, `info --interval`, `eta` and the info commands carry on when it
//! restarts: a request that fails because the connection was lost is made again on a new
//! connection ([`Client::reconnect`], which retries with backoff for up to ten minutes by
//! default). Each loss is said once on stderr, and so is the reconnection.

use std::io;

use buildcat_client::{Client, ClientError, ErrorKind};
use buildcat_proto::{JobEvent, JobId, JobStatus};
use tokio::sync::mpsc;

/// Events a follow or watch may have waiting to be read before its stream is ended as
/// lagged (and asked for again): a few seconds of a chatty job's output batches, while
/// holding at most a few megabytes.
pub const EVENT_CAPACITY: usize = 1024;

/// After a request failed with `error`: when a new connection may help, says so through
/// `say`, reconnects (with backoff, up to the client's limit) and says so again; when the
/// stream only lagged, returns at once so it is asked for again; otherwise returns the
/// error.
pub async fn recover(
    client: &Client,
    error: ClientError,
    say: &dyn Fn(&str),
) -> anyhow::Result<()> {
    if error.kind() == ErrorKind::Lagged {
        // Events came faster than this program read them (a slow terminal): the stream
        // ended, the connection did not; asking again carries on.
        tracing::debug!(server = %client.addr(), "event stream lagged; asking again");
        return Ok(());
    }
    if !error.is_transient() {
        return Err(error.into());
    }
    tracing::debug!(server = %client.addr(), error = %error, "connection lost");
    say(&format!(
        "lost the server at {}; reconnecting",
        client.addr()
    ));
    client.reconnect().await?;
    say(&format!("reconnected to the server at {}", client.addr()));
    Ok(())
}

/// Says something on stderr; the default for [`recover`].
pub fn to_stderr(text: &str) {
    eprintln!("{text}");
}

/// Waits until job `id` has ended and returns its final record, through server restarts.
pub async fn wait_job(client: &Client, id: JobId) -> anyhow::Result<JobStatus> {
    loop {
        match client.wait_job(id).await {
            Ok(status) => return Ok(status),
            Err(error) => recover(client, error, &to_stderr).await?,
        }
    }
}

/// Passes job `id`'s output to `print`, a batch of lines at a time, until the job has ended,
/// through server restarts.
///
/// After a reconnect the server sends the output it still has again; the lines already
/// printed are skipped, so a dropped connection does not print anything twice. A server
/// that restarted has no output of the job from before (it keeps output in memory), so
/// after a restart only new lines come.
pub async fn follow_output(
    client: &Client,
    id: JobId,
    print: &mut dyn FnMut(Vec<String>) -> io::Result<()>,
) -> anyhow::Result<()> {
    // Lines passed to `print` so far, and how many lines the next stream starts with that
    // were printed already.
    let mut printed: u64 = 0;
    let mut skip: u64 = 0;
    loop {
        let (events, mut received) = mpsc::channel(EVENT_CAPACITY);
        let follow = client.follow_logs(id, events);
        tokio::pin!(follow);
        let mut show = |event: JobEvent| -> io::Result<()> {
            let JobEvent::Log { lines, .. } = event else {
                return Ok(());
            };
            let count = lines.len() as u64;
            let already = skip.min(count);
            skip -= already;
            if already < count {
                printed += count - already;
                print(lines.into_iter().skip(already as usize).collect())?;
            }
            Ok(())
        };
        let result = loop {
            tokio::select! {
                event = received.recv() => match event {
                    Some(event) => show(event)?,
                    None => break follow.await,
                },
                result = &mut follow => break result,
            }
        };
        while let Ok(event) = received.try_recv() {
            show(event)?;
        }
        match result {
            Ok(()) => return Ok(()),
            Err(error) => {
                recover(client, error, &to_stderr).await?;
                skip = still_kept(client, id, printed).await?;
            }
        }
    }
}

/// How many of the `printed` lines of job `id` the server will send again when followed
/// anew: all it still keeps of them if it kept its log, none if it restarted (and so
/// holds fewer lines than were printed).
///
/// Exact while the job's log has dropped no lines; for a longer log, lines that arrive
/// between this question and the new follow may shift it by as many lines.
async fn still_kept(client: &Client, id: JobId, printed: u64) -> anyhow::Result<u64> {
    loop {
        match client.logs(id).await {
            Ok((lines, dropped)) => {
                let total = dropped + lines.len() as u64;
                return Ok(if total >= printed {
                    printed.saturating_sub(dropped)
                } else {
                    0
                });
            }
            Err(error) => recover(client, error, &to_stderr).await?,
        }
    }
}
