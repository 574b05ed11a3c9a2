//! Notifications: a JSON POST to each `--notify` URL when a job ends, for chat webhooks and
//! a studio's own tools.
//!
//! The core says a job ended ([`Notice::JobEnded`](crate::core::Notice::JobEnded)); the hub
//! hands the summary to this task without waiting (a full channel drops it with a warning:
//! the core never waits for a web server). Each URL has its own queue, delivered in order:
//! a receiver that is down or answers an error gets the same POST again after a backoff
//! (1 s, doubling to 5 minutes) until it takes it or the notification is a day old. Queues
//! are bounded; past the bound the oldest is dropped with a warning. Pending notifications
//! live in memory: a server restart loses those not yet delivered (the jobs themselves are
//! stored; `buildcat jobs` still shows them).
//!
//! The body (`Content-Type: application/json`):
//! ```json
//! {"event": "job_ended", "job": { ...as `buildcat jobs --json` lists it... },
//!  "ended": "2026-11-30T10:00:00Z", "url": "http://127.0.0.1:2229/#/job/42",
//!  "text": "Job 42 `shot.blend 1-240` finished: 240 of 240 tasks (ana@ws01)"}
//! ```
//! `text` is what Slack and Mattermost incoming webhooks show; `url` is present when the
//! server serves its web page.

use std::collections::VecDeque;
use std::time::Duration;

use buildcat_proto::view::{JobView, rfc3339};
use buildcat_proto::{JobState, JobSummary};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Ended jobs the hub may hand over before the notifier takes them; the notifier takes
/// them at once, so this only absorbs a burst of thousands of jobs ending together.
pub(crate) const HANDOVER: usize = 4096;

/// Notifications waiting for one URL at most; past this the oldest is dropped. A day of a
/// busy farm's job ends against a receiver that is down, a few MiB.
const MAX_PENDING: usize = 10_000;

/// The first wait before a failed delivery is tried again.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The longest wait between tries: a receiver back up is reached within this.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How long a notification is tried at most: news of a job older than a day helps nobody.
const MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// How long one POST may take, connecting included: webhooks answer in milliseconds, and
/// a stuck one must not hold the queue behind it for long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and when to notify.
#[derive(Debug, Clone, Default)]
pub struct NotifyOptions {
    /// Each URL gets a POST per ended job (`http://` or `https://`).
    pub urls: Vec<String>,
    /// The job states worth a notification; empty means every end (finished, failed,
    /// canceled).
    pub on: Vec<JobState>,
    /// The web page's base address (`http://127.0.0.1:2229`), for a link to the job.
    pub page: Option<String>,
}

impl NotifyOptions {
    /// Whether a job that ended in `state` is notified.
    fn wanted(&self, state: JobState) -> bool {
        self.on.is_empty() || self.on.contains(&state)
    }
}

/// Refuses a URL that is not `http://` or `https://` with a host, with a message that says
/// what is expected.
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        format!("`{url}` is not a URL ({e}); give one such as http://chat:8065/hooks/KEY")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "`{url}` is not an http:// or https:// URL with a host; give one such as http://chat:8065/hooks/KEY"
        ));
    }
    Ok(())
}

/// The body of one notification.
#[derive(Debug, Serialize)]
struct Body {
    /// Always `job_ended`, so a receiver can tell it from future kinds.
    event: &'static str,
    /// The job as `buildcat jobs --json` lists it.
    job: JobView,
    /// When its last task ended (RFC 3339).
    ended: Option<String>,
    /// The job's page, when the server serves one.
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// One line for people (chat webhooks show it).
    text: String,
}

impl Body {
    fn new(job: &JobSummary, page: Option<&str>) -> Body {
        let done = job.tasks.finished;
        let text = format!(
            "Job {} `{}` {}: {done} of {} tasks finished ({})",
            job.number,
            job.name,
            job.state.as_str(),
            job.tasks.total,
            job.submitter
        );
        Body {
            event: "job_ended",
            job: JobView::from(job),
            ended: job.ended_at.map(rfc3339),
            url: page.map(|page| format!("{}/#/job/{}", page.trim_end_matches('/'), job.number)),
            text,
        }
    }
}

/// One notification waiting for one URL.
#[derive(Debug)]
struct Pending {
    /// The encoded body.
    body: bytes::Bytes,
    /// Its job's number, for logs.
    number: u64,
    /// When it was made, for [`MAX_AGE`].
    made: Instant,
}

/// One URL's queue and where its delivery stands.
#[derive(Debug)]
struct Target {
    url: String,
    queue: VecDeque<Pending>,
    /// The wait after the next failure.
    backoff: Duration,
    /// When the head may be tried again (after a failure).
    retry_at: Option<Instant>,
    /// Failures in a row, to log the first and then only now and then.
    failures: u32,
}

/// Delivers notifications until `ended` closes (the hub ended: the server is stopping).
pub(crate) async fn run(options: NotifyOptions, mut ended: mpsc::Receiver<Box<JobSummary>>) {
    let client = match reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("buildcat/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            warn!(%error, "notifications are off: could not set up an HTTP client");
            return;
        }
    };
    let mut targets: Vec<Target> = options
        .urls
        .iter()
        .map(|url| Target {
            url: url.clone(),
            queue: VecDeque::new(),
            backoff: FIRST_BACKOFF,
            retry_at: None,
            failures: 0,
        })
        .collect();
    loop {
        // Deliver what is due, one POST at a time per URL; new ends keep coming meanwhile
        // only through the channel, which the hub never waits on.
        let now = Instant::now();
        for target in &mut targets {
            while target.retry_at.is_none_or(|at| at <= now)
                && let Some(head) = target.queue.front()
            {
                if head.made.elapsed() > MAX_AGE {
                    warn!(url = %target.url, job = head.number, "notification given up after a day of failed deliveries");
                    target.queue.pop_front();
                    continue;
                }
                match deliver(&client, &target.url, head.body.clone()).await {
                    Ok(()) => {
                        if target.failures > 0 {
                            info!(url = %target.url, failures = target.failures, "notifications delivered again");
                        }
                        debug!(url = %target.url, job = head.number, "notification delivered");
                        target.queue.pop_front();
                        target.backoff = FIRST_BACKOFF;
                        target.retry_at = None;
                        target.failures = 0;
                    }
                    Err(error) => {
                        target.failures += 1;
                        if target.failures == 1 || target.failures.is_power_of_two() {
                            warn!(url = %target.url, job = head.number, failures = target.failures,
                                retry_in_s = target.backoff.as_secs(), %error,
                                "notification not delivered; will try again");
                        }
                        target.retry_at = Some(Instant::now() + target.backoff);
                        target.backoff = (target.backoff * 2).min(MAX_BACKOFF);
                        break;
                    }
                }
            }
        }
        let next_retry = targets
            .iter()
            .filter(|t| !t.queue.is_empty())
            .filter_map(|t| t.retry_at)
            .min();
        tokio::select! {
            job = ended.recv() => match job {
                Some(job) => enqueue(&options, &mut targets, &job),
                None => {
                    // The server is stopping: what is still undelivered is lost with it.
                    let left: usize = targets.iter().map(|t| t.queue.len()).sum();
                    if left > 0 {
                        warn!(left, "server stopping with notifications undelivered");
                    }
                    return;
                }
            },
            () = sleep_until(next_retry) => {}
        }
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Queues `job`'s notification for every URL, if its end is one to notify.
fn enqueue(options: &NotifyOptions, targets: &mut [Target], job: &JobSummary) {
    if !options.wanted(job.state) {
        return;
    }
    let body = match serde_json::to_vec(&Body::new(job, options.page.as_deref())) {
        Ok(body) => bytes::Bytes::from(body),
        Err(error) => {
            warn!(job = job.number, %error, "could not encode a notification");
            return;
        }
    };
    for target in targets {
        if target.queue.len() >= MAX_PENDING {
            let dropped = target.queue.pop_front();
            warn!(url = %target.url, job = dropped.map(|p| p.number), "too many notifications undelivered; dropped the oldest");
        }
        target.queue.push_back(Pending {
            body: body.clone(),
            number: job.number,
            made: Instant::now(),
        });
    }
}

/// POSTs `body` to `url`; any status but 2xx is a failure.
async fn deliver(client: &reqwest::Client, url: &str, body: bytes::Bytes) -> Result<(), String> {
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {status}"))
    }
}

/// An error with its causes, as one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert!(check_url("http://127.0.0.1:9/hook").is_ok());
        assert!(check_url("https://chat.example/hooks/abc").is_ok());
        let error = check_url("ftp://host/x").unwrap_err();
        assert!(error.contains("http://"), "{error}");
        assert!(check_url("not a url").unwrap_err().contains("not a URL"));
    }
}
