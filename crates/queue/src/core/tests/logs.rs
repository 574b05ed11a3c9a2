//! Task output: stored in chunks by offset, bounded in bytes (head and tail kept), read in
//! pages that fit a reply, followed from any offset, and still there after a restart.
//!
//! The core asks for pages through `Effect::ReadOutput`; these tests serve them from the
//! farm's store, fed with every change the core made, as the server's writer thread does.
//! (The SQLite store states the same reads in its conformance suite.)

use buildcat_proto::{
    DroppedOutput, JobEvent, JobQuery, LogPage, Outcome, Reply, Request, RequestError, Requeue,
    ServerFrame, TaskId, TaskRef, TaskState,
};

use super::{CLIENT, Farm, INFO, replies, whole};
use crate::core::follow::MAX_LINE_BYTES;
use crate::core::{ConnId, CoreConfig, Input};
use crate::store::{Store, StoreOp};

/// A farm whose output reads are served by its store, with one worker.
struct Stored {
    /// The core under test, with its store.
    farm: Farm,
}

impl Stored {
    fn new(config: CoreConfig) -> Stored {
        let mut stored = Stored {
            farm: Farm::with(config),
        };
        stored.farm.worker(10, "w1", &["default"]);
        stored
    }

    /// Handles `input`, then serves every output read it leads to; returns every frame.
    fn handle(&mut self, input: Input) -> Vec<(ConnId, ServerFrame)> {
        let mut frames = self.farm.handle(input);
        while !self.farm.reads.is_empty() {
            for read in std::mem::take(&mut self.farm.reads) {
                let result = self
                    .farm
                    .store
                    .read_output(read.task, read.from, read.max_bytes);
                frames.extend(self.farm.handle(Input::OutputRead { read, result }));
            }
        }
        frames
    }

    fn request(&mut self, conn: ConnId, request: Request) -> (u64, Vec<(ConnId, ServerFrame)>) {
        self.farm.next_request += 1;
        let id = self.farm.next_request;
        (id, self.handle(Input::Request { conn, id, request }))
    }

    /// The worker prints `lines` for attempt 1 of `task`.
    fn print(&mut self, task: TaskId, lines: Vec<String>) -> Vec<(ConnId, ServerFrame)> {
        let request = Request::Log {
            task,
            attempt: 1,
            lines,
            stderr: Vec::new(),
        };
        self.request(10, request).1
    }

    /// One page of `task`'s output from `from`.
    fn page(&mut self, task: impl Into<TaskRef>, from: u64) -> LogPage {
        let request = Request::Logs {
            task: task.into(),
            from,
            follow: false,
        };
        let (_, frames) = self.request(CLIENT, request);
        match replies(&frames, CLIENT).pop() {
            Some(Ok(Reply::Log(page))) => page,
            other => panic!("expected a page, got {other:?}"),
        }
    }

    /// Every page of `task`'s output from `from`, as `logs` reads them.
    fn pages(&mut self, task: TaskId, from: u64) -> Vec<LogPage> {
        let mut pages = vec![self.page(task, from)];
        while let Some(last) = pages.last().filter(|page| page.more) {
            let next = last.next;
            pages.push(self.page(task, next));
        }
        pages
    }
}

/// `count` numbered lines of `width` bytes each (newline not counted).
fn numbered(start: usize, count: usize, width: usize) -> Vec<String> {
    (start..start + count)
        .map(|index| format!("{index:0width$}"))
        .collect()
}

/// The lines of `pages`, in order.
fn lines_of(pages: &[LogPage]) -> Vec<String> {
    pages.iter().flat_map(|page| page.lines.clone()).collect()
}

/// The pages and live lines sent to `request` as log events.
fn events(frames: &[(ConnId, ServerFrame)], request: u64) -> Vec<LogPage> {
    frames
        .iter()
        .filter_map(|(_, frame)| match frame {
            ServerFrame::Event {
                id,
                event: JobEvent::Log { page, .. },
            } if *id == request => Some(page.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn output_is_stored_in_chunks_at_their_byte_offsets() {
    let mut stored = Stored::new(CoreConfig::default());
    let (id, _) = stored.farm.submit_one("default", INFO);
    stored.print(id, vec!["one".into(), "two".into()]);
    stored.print(id, vec!["three".into()]);
    let appended: Vec<(u64, u64, u64, &str)> = stored
        .farm
        .stored
        .iter()
        .filter_map(|op| match op {
            StoreOp::AppendOutput {
                offset,
                line,
                lines,
                text,
                ..
            } => Some((*offset, *line, *lines, text.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        appended,
        vec![(0, 0, 2, "one\ntwo\n"), (8, 2, 1, "three\n")]
    );
    let page = stored.page(id, 0);
    assert_eq!(page.lines, ["one", "two", "three"]);
    assert_eq!((page.offset, page.next, page.more), (0, 14, false));
    // From a page's `next` (here, after "one\n") exactly the rest comes.
    let page = stored.page(id, 4);
    assert_eq!(page.lines, ["two", "three"]);
    // From the end: an empty page that says where the end is.
    let page = stored.page(id, 14);
    assert!(page.lines.is_empty() && !page.more && page.next == 14);
}

#[test]
fn pages_stay_within_the_reply_budget_and_together_hold_everything() {
    let config = CoreConfig {
        max_reply_bytes: 2_000,
        ..CoreConfig::default()
    };
    let mut stored = Stored::new(config);
    let (id, _) = stored.farm.submit_one("default", INFO);
    let printed: Vec<String> = (0..20)
        .flat_map(|batch| numbered(batch * 50, 50, 9))
        .collect();
    for batch in printed.chunks(50) {
        stored.print(id, batch.to_vec());
    }
    let pages = stored.pages(id, 0);
    assert!(pages.len() >= 10, "{} pages", pages.len());
    for page in &pages {
        let bytes: usize = page.lines.iter().map(|line| line.len() + 1).sum();
        assert!(bytes <= 1_000, "a page of {bytes} bytes");
        assert!(page.dropped.is_none());
    }
    assert_eq!(lines_of(&pages), printed);
    let last = pages.last().map(|page| page.next);
    assert_eq!(last, Some(printed.len() as u64 * 10));
}

/// Regression (issue 9 item 8): output was bounded by lines only, so a job printing long
/// lines held hundreds of megabytes, and `logs` answered with a frame over the limit.
#[test]
fn a_long_output_keeps_its_head_and_tail_and_says_what_was_dropped() {
    let max_log_bytes = 16_000;
    let config = CoreConfig {
        max_log_bytes,
        ..CoreConfig::default()
    };
    let mut stored = Stored::new(config);
    let (id, _) = stored.farm.submit_one("default", INFO);
    // 100 batches of 10 lines of 100 bytes each (with the newline): 100,000 bytes.
    let printed: Vec<String> = (0..1_000).map(|index| format!("{index:099}")).collect();
    for batch in printed.chunks(10) {
        stored.print(id, batch.to_vec());
    }
    let pages = stored.pages(id, 0);
    let gaps: Vec<(usize, DroppedOutput)> = pages
        .iter()
        .enumerate()
        .filter_map(|(index, page)| Some((index, page.dropped?)))
        .collect();
    assert_eq!(gaps.len(), 1, "one gap: {gaps:?}");
    let (at, dropped) = gaps[0];
    let kept = lines_of(&pages);
    let head = lines_of(&pages[..at]);
    let tail = lines_of(&pages[at..]);
    // The head is the first quarter of the bound, the tail the newest three quarters (give
    // or take one drop step and one chunk).
    assert_eq!(head, printed[..head.len()]);
    assert_eq!(tail, printed[printed.len() - tail.len()..]);
    assert!((40..=60).contains(&head.len()), "{} head lines", head.len());
    assert!(
        (120..=160).contains(&tail.len()),
        "{} tail lines",
        tail.len()
    );
    assert_eq!(dropped.lines as usize, printed.len() - kept.len());
    assert_eq!(dropped.bytes, dropped.lines * 100);
    assert_eq!(pages[at].offset, head.len() as u64 * 100 + dropped.bytes);
    let kept_bytes = kept.len() as u64 * 100;
    assert!(
        kept_bytes <= max_log_bytes + max_log_bytes / 16 + 1_000,
        "{kept_bytes} bytes kept"
    );
}

#[test]
fn a_follower_gets_the_output_from_its_offset_then_new_lines_then_the_end() {
    let config = CoreConfig {
        max_reply_bytes: 200,
        ..CoreConfig::default()
    };
    let mut stored = Stored::new(config);
    let (id, _) = stored.farm.submit_one("default", INFO);
    let printed = numbered(0, 30, 9);
    stored.print(id, printed[..20].to_vec());
    // Follow from the sixth line on: the stored pages come first, as events.
    let (follow, frames) = stored.request(
        CLIENT,
        Request::Logs {
            task: id.into(),
            from: 50,
            follow: true,
        },
    );
    let pages = events(&frames, follow);
    assert!(pages.len() >= 2, "read in several pages: {pages:?}");
    assert_eq!(lines_of(&pages), printed[5..20]);
    assert!(replies(&frames, CLIENT).is_empty(), "still following");
    // New lines come as they are printed, with their offsets.
    let frames = stored.print(id, printed[20..].to_vec());
    let live = events(&frames, follow);
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].lines, printed[20..]);
    assert_eq!((live[0].offset, live[0].next), (200, 300));
    // The job ends: the follower's answer is the end of the output.
    let frames = stored.farm.complete(10, id, 1, Outcome::Finished(vec![]));
    let ends: Vec<_> = frames
        .iter()
        .filter_map(|(_, frame)| match frame {
            ServerFrame::Reply {
                id,
                reply: Ok(Reply::Log(page)),
            } if *id == follow => Some(page.next),
            _ => None,
        })
        .collect();
    assert_eq!(ends, vec![300]);
    assert!(stored.farm.core.log_followers.is_empty());
}

#[test]
fn following_an_ended_job_reads_its_stored_output_and_ends() {
    let mut stored = Stored::new(CoreConfig::default());
    let (id, _) = stored.farm.submit_one("default", INFO);
    stored.print(id, vec!["done".into()]);
    stored.farm.complete(10, id, 1, Outcome::Finished(vec![]));
    let (follow, frames) = stored.request(
        CLIENT,
        Request::Logs {
            task: id.into(),
            from: 0,
            follow: true,
        },
    );
    assert_eq!(lines_of(&events(&frames, follow)), ["done"]);
    assert!(matches!(
        replies(&frames, CLIENT).as_slice(),
        [Ok(Reply::Log(LogPage {
            next: 5,
            more: false,
            ..
        }))]
    ));
}

#[test]
fn a_restarted_core_serves_the_stored_output_and_appends_after_it() {
    let mut stored = Stored::new(CoreConfig::default());
    let (id, _) = stored.farm.submit_one("default", INFO);
    stored.print(id, vec!["before".into()]);
    let loaded = stored.farm.store.load().expect("load");
    assert_eq!(loaded.jobs[0].tasks[0].output.bytes, 7);
    assert_eq!(loaded.jobs[0].tasks[0].output.lines, 1);
    // A new core from the store, as after a restart; the worker reclaims its task.
    let mut restarted = Stored {
        farm: stored.farm.restart(CoreConfig::default()),
    };
    restarted
        .farm
        .worker_with(20, "w1", &["default"], &[INFO], vec![(id, 1)]);
    restarted.farm.handle(Input::Request {
        conn: 20,
        id: 1,
        request: Request::Log {
            task: id,
            attempt: 1,
            lines: vec!["after".into()],
            stderr: Vec::new(),
        },
    });
    let page = restarted.page(id, 0);
    assert_eq!(page.lines, ["before", "after"]);
    assert_eq!(page.next, 13);
}

#[test]
fn lines_are_stored_one_per_newline_and_cut_when_too_long() {
    let mut stored = Stored::new(CoreConfig::default());
    let (id, _) = stored.farm.submit_one("default", INFO);
    let long = "é".repeat(MAX_LINE_BYTES);
    stored.print(id, vec!["a\nb".into(), long.clone()]);
    let pages = stored.pages(id, 0);
    let lines = lines_of(&pages);
    assert_eq!(lines[..2], ["a", "b"]);
    assert_eq!(lines.len(), 4, "the long line in two");
    assert!(lines.iter().all(|line| line.len() <= MAX_LINE_BYTES));
    assert_eq!(lines[2..].concat(), long);
}

#[test]
fn lines_of_a_stale_attempt_are_not_stored() {
    let mut stored = Stored::new(CoreConfig::default());
    let (id, _) = stored.farm.submit_one("default", INFO);
    stored.farm.complete(10, id, 1, Outcome::Finished(vec![]));
    stored.print(id, vec!["late".into()]);
    assert!(
        !stored
            .farm
            .stored
            .iter()
            .any(|op| matches!(op, StoreOp::AppendOutput { .. }))
    );
    let page = stored.page(id, 0);
    assert!(page.lines.is_empty());
}

#[test]
fn deleting_a_job_deletes_its_output() {
    let mut stored = Stored::new(CoreConfig::default());
    let (id, _) = stored.farm.submit_one("default", INFO);
    stored.print(id, vec!["kept until the job goes".into()]);
    stored.farm.complete(10, id, 1, Outcome::Finished(vec![]));
    let changes = stored.farm.changes(Request::Delete(vec![id.job.into()]));
    assert!(changes[0].result.is_ok(), "{changes:?}");
    assert!(stored.farm.stored.contains(&StoreOp::Delete(id.job)));
    let page = stored.farm.store.read_output(id, 0, 1_000).expect("read");
    assert!(page.lines.is_empty());
}

/// Regression (issue 9 item 8): a listing of many jobs with long failures could exceed the
/// frame limit and end the connection.
#[test]
fn a_listing_stops_before_its_reply_would_pass_the_budget() {
    let config = CoreConfig {
        max_reply_bytes: 4_000,
        ..CoreConfig::default()
    };
    let mut stored = Stored::new(config);
    for _ in 0..100 {
        stored.farm.submit_one("other", INFO);
    }
    let (_, frames) = stored.request(
        CLIENT,
        Request::Jobs(JobQuery {
            limit: 1_000,
            ..JobQuery::default()
        }),
    );
    let Some(Ok(Reply::Jobs { jobs, more })) = replies(&frames, CLIENT).pop() else {
        panic!("expected a listing");
    };
    assert!(more, "told that the list was cut");
    assert!(!jobs.is_empty() && jobs.len() < 100, "{} jobs", jobs.len());
    let reply = ServerFrame::Reply {
        id: 1,
        reply: Ok(Reply::Jobs { jobs, more }),
    };
    let size = buildcat_proto::encoded_len(&reply).expect("encodes");
    assert!(size <= 4_000, "a reply of {size} bytes");
    // A listing that fits says nothing more matched.
    let (_, frames) = stored.request(
        CLIENT,
        Request::Jobs(JobQuery {
            limit: 3,
            ..JobQuery::default()
        }),
    );
    assert!(matches!(
        replies(&frames, CLIENT).pop(),
        Some(Ok(Reply::Jobs { more: true, ref jobs })) if jobs.len() == 3
    ));
}

/// Regression (issue 9 item 8): a job's status grows with every attempt's failure; with
/// worker-sized reasons and tails on every one of its attempts, and its result, it must
/// still fit in one reply.
#[test]
fn a_status_with_every_attempt_failed_at_length_fits_in_a_reply() {
    let config = CoreConfig {
        retry_backoff: std::time::Duration::ZERO,
        quarantine_after: 0,
        ..CoreConfig::default()
    };
    let budget = config.max_reply_bytes;
    let mut stored = Stored::new(config);
    let options = buildcat_proto::JobOptions {
        max_attempts: 101,
        ..Default::default()
    };
    let (_, frames) = stored.request(
        CLIENT,
        Request::Submit(vec![super::job("default", INFO, options)]),
    );
    assert!(
        matches!(
            replies(&frames, CLIENT).as_slice(),
            [Err(buildcat_proto::RequestError::Invalid(message))] if message.contains("at most 100 attempts")
        ),
        "{frames:?}"
    );
    let options = buildcat_proto::JobOptions {
        max_attempts: 100,
        ..Default::default()
    };
    let (ids, _) = stored
        .farm
        .submit(vec![super::job("default", INFO, options)]);
    let id = ids[0];
    let failure = buildcat_proto::Failure {
        reason: "r".repeat(1 << 20),
        exit_code: Some(1),
        output_tail: vec!["t".repeat(16 << 10); 200],
        gpu_fault: None,
    };
    for attempt in 1..=100 {
        let outcome = Outcome::Failed(failure.clone());
        stored.farm.complete(10, id, attempt, outcome);
    }
    assert_eq!(stored.farm.state(id), TaskState::Failed);
    assert_eq!(stored.farm.task(id).attempts.len(), 100);
    for request in [Request::Job(id.job.into()), Request::Task(id.into())] {
        let (request, frames) = stored.request(CLIENT, request);
        let reply = frames
            .into_iter()
            .find(|(_, frame)| matches!(frame, ServerFrame::Reply { id, .. } if *id == request))
            .map(|(_, frame)| frame)
            .expect("a reply");
        assert!(
            matches!(reply, ServerFrame::Reply { reply: Ok(_), .. }),
            "{reply:?}"
        );
        let size = buildcat_proto::encoded_len(&reply).expect("encodes");
        assert!(size <= budget, "a status reply of {size} bytes");
    }
    // A result too large to keep fails the attempt with a reason that says so.
    let (other, _) = stored.farm.submit_one("default", INFO);
    let huge = vec![0u8; (4 << 20) + 1];
    stored.farm.complete(10, other, 1, Outcome::Finished(huge));
    let task = stored.farm.task(other);
    assert_eq!(task.state, TaskState::Failed);
    let reason = task
        .failure
        .as_ref()
        .map(|f| f.reason.clone())
        .unwrap_or_default();
    assert!(reason.contains("over the server's limit"), "{reason}");
}

/// No reply may pass the frame limit, `info` included: a farm of more queues than fit is
/// shown cut, and says so.
#[test]
fn info_of_a_farm_too_large_for_one_reply_is_cut_and_says_so() {
    let config = CoreConfig {
        max_reply_bytes: 2_000,
        ..CoreConfig::default()
    };
    let mut stored = Stored::new(config);
    let jobs = (0..200)
        .map(|index| {
            super::job(
                &format!("queue-{index:04}"),
                INFO,
                buildcat_proto::JobOptions::default(),
            )
        })
        .collect();
    stored.farm.submit(jobs);
    let (request, frames) = stored.request(CLIENT, Request::Info);
    let reply = frames
        .into_iter()
        .find(|(_, frame)| matches!(frame, ServerFrame::Reply { id, .. } if *id == request))
        .map(|(_, frame)| frame)
        .expect("a reply");
    let size = buildcat_proto::encoded_len(&reply).expect("encodes");
    assert!(size <= 2_000, "an info reply of {size} bytes");
    let ServerFrame::Reply {
        reply: Ok(Reply::Info(info)),
        ..
    } = reply
    else {
        panic!("expected info, got {reply:?}");
    };
    assert!(info.truncated);
    assert!(!info.queues.is_empty() && info.queues.len() < 200);
    assert_eq!(info.workers.len(), 1, "the short list is kept");
    // A name longer than any reply should carry is refused at submit.
    let long = super::job(
        &"q".repeat(2_000),
        INFO,
        buildcat_proto::JobOptions::default(),
    );
    let (_, frames) = stored.request(CLIENT, Request::Submit(vec![long]));
    assert!(matches!(
        replies(&frames, CLIENT).as_slice(),
        [Err(buildcat_proto::RequestError::Invalid(message))] if message.contains("at most 1024 bytes")
    ));
}

/// A cancel or requeue has an entry per job in its reply: naming more jobs than one reply
/// carries is refused, with the limit.
#[test]
fn a_cancel_of_more_jobs_than_one_reply_carries_is_refused() {
    let mut stored = Stored::new(CoreConfig::default());
    let (id, _) = stored.farm.submit_one("default", INFO);
    let many = vec![whole(id); buildcat_proto::MAX_CHANGES_PER_REQUEST + 1];
    let jobs = vec![id.job.into(); buildcat_proto::MAX_CHANGES_PER_REQUEST + 1];
    for request in [
        Request::Cancel(many.clone()),
        Request::Requeue(Requeue::Tasks {
            targets: many,
            all: false,
        }),
        Request::Pause(jobs.clone()),
        Request::Resume(jobs.clone()),
        Request::Delete(jobs),
    ] {
        let (_, frames) = stored.request(CLIENT, request);
        assert!(matches!(
            replies(&frames, CLIENT).as_slice(),
            [Err(RequestError::Invalid(message))] if message.contains("at most 10000")
        ));
    }
    assert_eq!(stored.farm.state(id), TaskState::Started);
}

/// Guards the `logs --follow` restart race (the e2e test
/// `watching::logs_follow_carries_on_after_the_server_restarts` failed 4 runs in 10): lines
/// went to followers as they came, before their commit. A server killed in between
/// restarted without them, the follower followed again from past the restarted server's
/// end, and took the lines printed next (at lower offsets) for ones it had seen: it lost
/// them and ended without them. Lines now reach followers once stored, so a follower's
/// offset is never past what a restart finds.
#[test]
fn a_follower_gets_only_lines_a_restart_would_find() {
    let mut stored = Stored::new(CoreConfig::default());
    let (id, _) = stored.farm.submit_one("default", INFO);
    let (follow, _) = stored.request(
        CLIENT,
        Request::Logs {
            task: id.into(),
            from: 0,
            follow: true,
        },
    );
    // The server is killed before the lines' commit: as a commit that does not happen.
    let frames = stored.farm.handle_with(
        Input::Request {
            conn: 10,
            id: 1,
            request: Request::Log {
                task: id,
                attempt: 1,
                lines: vec!["lost".into()],
                stderr: Vec::new(),
            },
        },
        Some("killed before the commit"),
    );
    assert!(
        events(&frames, follow).is_empty(),
        "a follower got lines that were not stored: {frames:?}"
    );
    // Stored lines reach it.
    let frames = stored.print(id, vec!["kept".into()]);
    let live = events(&frames, follow);
    assert_eq!(lines_of(&live), ["kept"]);

    // After a restart the follower follows again from the last `next` it got, and gets
    // what the worker prints next, at the offset the restarted server gives it.
    let next = live[0].next;
    let mut restarted = Stored {
        farm: stored.farm.restart(CoreConfig::default()),
    };
    let (follow, frames) = restarted.request(
        CLIENT,
        Request::Logs {
            task: id.into(),
            from: next,
            follow: true,
        },
    );
    assert!(events(&frames, follow).is_empty(), "{frames:?}");
    restarted
        .farm
        .worker_with(20, "w1", &["default"], &[INFO], vec![(id, 1)]);
    let frames = restarted.farm.handle(Input::Request {
        conn: 20,
        id: 1,
        request: Request::Log {
            task: id,
            attempt: 1,
            lines: vec!["after".into()],
            stderr: Vec::new(),
        },
    });
    let live = events(&frames, follow);
    assert_eq!(lines_of(&live), ["after"]);
    assert!(live[0].offset == next && live[0].next > next, "{live:?}");
    // The end comes after every line, and ends the follow.
    let frames = restarted
        .farm
        .complete(20, id, 1, Outcome::Finished(vec![]));
    assert!(
        matches!(replies(&frames, CLIENT).as_slice(), [Ok(Reply::Log(page))] if page.next == live[0].next),
        "{frames:?}"
    );
}

/// Issue 14: which lines were stderr reaches followers and pages; a line holding newlines
/// keeps its stream in each piece, and indexes past the lines, repeated or out of order
/// (a worker may send anything) are ignored.
#[test]
fn lines_keep_their_stream_through_follows_and_pages() {
    let mut stored = Stored::new(CoreConfig::default());
    let (id, _) = stored.farm.submit_one("default", INFO);
    let (follow, _) = stored.request(
        CLIENT,
        Request::Logs {
            task: id.into(),
            from: 0,
            follow: true,
        },
    );
    let (_, frames) = stored.request(
        10,
        Request::Log {
            task: id,
            attempt: 1,
            lines: vec!["out".into(), "err a\nerr b".into(), "out again".into()],
            stderr: vec![7, 1, 1, u32::MAX],
        },
    );
    let live = events(&frames, follow);
    assert_eq!(lines_of(&live), ["out", "err a", "err b", "out again"]);
    assert_eq!(live[0].stderr, [1, 2]);
    let page = stored.page(id, 0);
    assert_eq!(page.stderr, [1, 2]);
    let streams: Vec<(&str, bool)> = page.lines_with_streams().collect();
    assert_eq!(
        streams,
        [
            ("out", false),
            ("err a", true),
            ("err b", true),
            ("out again", false)
        ]
    );
    // From the third line: indexes count from the page's first line.
    let page = stored.page(id, 10);
    assert_eq!(page.lines, ["err b", "out again"]);
    assert_eq!(page.stderr, [0]);
}

/// Tester finding 8: a timeout or GPU memory no store can keep is refused at submission as
/// bad input (not a storage error after the job took a number), and takes no job number.
#[test]
fn a_submission_no_store_could_keep_is_refused_before_it_takes_a_number() {
    let mut stored = Stored::new(CoreConfig::default());
    let (first, _) = stored.farm.submit_one("default", INFO);
    let absurd = [
        buildcat_proto::JobOptions {
            timeout_ms: Some(u64::MAX),
            ..Default::default()
        },
        buildcat_proto::JobOptions {
            gpus: buildcat_proto::GpuRequirement {
                count: 1,
                memory_mib: u64::MAX,
            },
            ..Default::default()
        },
    ];
    for (options, expected) in absurd.into_iter().zip(["at most 31536000000 ms", "MiB"]) {
        let (_, frames) = stored.request(
            CLIENT,
            Request::Submit(vec![super::job("default", INFO, options)]),
        );
        assert!(
            matches!(
                replies(&frames, CLIENT).as_slice(),
                [Err(RequestError::Invalid(message))] if message.contains(expected)
            ),
            "{frames:?}"
        );
    }
    let longest = buildcat_proto::JobOptions {
        timeout_ms: Some(365 * 24 * 3600 * 1000),
        ..Default::default()
    };
    let (ids, _) = stored
        .farm
        .submit(vec![super::job("default", INFO, longest)]);
    let number = |id: buildcat_proto::TaskId| {
        stored
            .farm
            .core
            .jobs
            .get(&id.job)
            .map(|job| job.number)
            .expect("the job")
    };
    assert_eq!(
        number(ids[0]),
        number(first) + 1,
        "a refused submission took a job number"
    );
}
