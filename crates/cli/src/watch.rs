//! Watching jobs through server restarts.
//!
//! The server keeps every job on disk, so `run --wait`, the render commands' `--wait`,
//! `logs --follow`, `info --interval`, `eta` and the info commands carry on when it
//! restarts: a request that fails because the connection was lost is made again on a new
//! connection ([`Client::reconnect`], which retries with backoff for up to ten minutes by
//! default). Each loss is said once on stderr, and so is the reconnection.

use std::io;

use buildcat_client::{Client, ClientError, ErrorKind};
use buildcat_proto::{JobEvent, JobId, JobStatus, LogPage};
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

/// Passes job `id`'s output from byte offset `from` to `print`, a page at a time, until the
/// job has ended, through server restarts.
///
/// Every page says where it ends; after a lost connection (or a stream that lagged) the
/// output is followed again from there, so nothing is printed twice or skipped. The server
/// keeps output on disk, so this holds across its restarts too.
pub async fn follow_output(
    client: &Client,
    id: JobId,
    from: u64,
    print: &mut dyn FnMut(&LogPage) -> io::Result<()>,
) -> anyhow::Result<()> {
    // Where the output not yet printed starts.
    let mut next = from;
    loop {
        let (events, mut received) = mpsc::channel(EVENT_CAPACITY);
        let follow = client.follow_logs(id, next, events);
        tokio::pin!(follow);
        let mut show = |event: JobEvent| -> io::Result<()> {
            let JobEvent::Log { page, .. } = event else {
                return Ok(());
            };
            // A page the server sent before the connection dropped may come again.
            if page.next <= next {
                return Ok(());
            }
            next = page.next;
            print(&page)
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
            Ok(_) => return Ok(()),
            Err(error) => recover(client, error, &to_stderr).await?,
        }
    }
}
