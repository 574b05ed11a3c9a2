//! What a running task says while it runs: its log lines and its latest progress, held in a
//! bounded buffer between the handler (which writes through its [`JobContext`]) and whoever
//! sends them on (the worker loop, or a [`JobMonitor`] in a handler's tests).
//!
//! Writing never blocks and never fails: past [`MAX_BUFFERED_LINES`] lines (or
//! [`MAX_BUFFERED_BYTES`]), the oldest lines are dropped, and the next batch taken starts with
//! a line saying how many. A writer that can wait (the process runner, reading a program's
//! pipes) asks [`TaskOutput::is_filling`] first and waits for [`TaskOutput::taken`] while the
//! buffer fills, so a program printing faster than the server takes its output is slowed by
//! its pipe rather than losing lines; only when nothing is taken for a while (the worker is
//! cut off) does it read on and the oldest lines go. Progress is not queued at all: only the
//! latest report matters.
//!
//! [`JobContext`]: crate::JobContext
//! [`JobMonitor`]: crate::JobMonitor

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use buildcat_proto::TaskProgress;
use tokio::sync::Notify;

/// The most lines held for one task before the oldest are dropped (e.g. while the worker is
/// disconnected from the server).
pub(crate) const MAX_BUFFERED_LINES: usize = 1_000;

/// The most bytes of lines held for one task before the oldest are dropped.
pub(crate) const MAX_BUFFERED_BYTES: usize = 4 << 20;

/// The longest line kept whole; longer lines are cut (the process runner splits them).
pub(crate) const MAX_LINE_BYTES: usize = 16 << 10;

/// The bytes a line is counted as beyond its text, for its length prefix in a frame.
const LINE_OVERHEAD: usize = 8;

/// A task's output on its way out.
#[derive(Default)]
pub(crate) struct TaskOutput {
    /// The lines and progress not yet taken.
    buffered: Mutex<Buffered>,
    /// Woken whenever something is written, for the single reader.
    changed: Notify,
    /// Woken whenever lines are taken, for a writer waiting for room.
    taken: Notify,
}

impl fmt::Debug for TaskOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Counts only: the lines themselves could fill a log.
        let buffered = self.lock();
        f.debug_struct("TaskOutput")
            .field("lines", &buffered.lines.len())
            .field("bytes", &buffered.bytes)
            .field("dropped", &buffered.dropped)
            .field("progress", &buffered.progress.is_some())
            .field("closed", &buffered.closed)
            .finish()
    }
}

/// One line not yet taken.
#[derive(Debug)]
struct Line {
    /// The text, without a line break.
    text: String,
    /// Whether the program wrote it to stderr, so the server can keep it apart.
    stderr: bool,
}

/// The part of [`TaskOutput`] behind its lock.
#[derive(Debug, Default)]
struct Buffered {
    /// Lines not yet taken, oldest first.
    lines: VecDeque<Line>,
    /// The bytes in `lines`, counted as [`line_cost`] does.
    bytes: usize,
    /// Lines dropped since the last batch was taken.
    dropped: u64,
    /// The latest progress not yet taken.
    progress: Option<TaskProgress>,
    /// The task has been reported: later writes are discarded.
    closed: bool,
}

/// What [`TaskOutput::pending`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputReady {
    /// Nothing to send.
    Nothing,
    /// Something to send, less than a full frame.
    Some,
    /// At least one full frame's worth of lines.
    Full,
}

/// Lines taken for one frame.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// The lines, oldest first; the first says how many were dropped, when some were.
    pub(crate) lines: Vec<String>,
    /// Which of `lines` were written to stderr: indexes into `lines`, ascending, as
    /// `Request::Log` carries them.
    pub(crate) stderr: Vec<u32>,
    /// How many lines were dropped before these.
    pub(crate) dropped: u64,
}

impl Batch {
    /// Adds a line, noting its stream.
    fn push(&mut self, line: Line) {
        if line.stderr
            && let Ok(index) = u32::try_from(self.lines.len())
        {
            self.stderr.push(index);
        }
        self.lines.push(line.text);
    }
}

impl TaskOutput {
    /// Adds output lines of stdout (or of the handler itself). Text holding line breaks is
    /// split at them (one final line break ends the last line rather than starting an empty
    /// one); `\r` before a `\n` is removed; an over-long line is cut at [`MAX_LINE_BYTES`].
    #[cfg(test)]
    pub(crate) fn log(&self, text: String) {
        self.log_from(text, false);
    }

    /// Adds output lines as [`TaskOutput::log`] does, noting whether they came from
    /// stderr.
    pub(crate) fn log_from(&self, mut text: String, stderr: bool) {
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        {
            let mut buffered = self.lock();
            if buffered.closed {
                return;
            }
            if text.contains('\n') {
                for line in text.split('\n') {
                    buffered.push(line.strip_suffix('\r').unwrap_or(line).to_owned(), stderr);
                }
            } else {
                buffered.push(text, stderr);
            }
        }
        self.changed.notify_one();
    }

    /// Replaces the progress to send.
    pub(crate) fn progress(&self, progress: TaskProgress) {
        {
            let mut buffered = self.lock();
            if buffered.closed {
                return;
            }
            buffered.progress = Some(progress);
        }
        self.changed.notify_one();
    }

    /// Discards whatever is written from now on; what is buffered can still be taken.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
    }

    /// Whether anything waits to be taken, and whether it fills a frame of `max_lines` lines
    /// or `max_bytes` bytes.
    pub(crate) fn pending(&self, max_lines: usize, max_bytes: usize) -> OutputReady {
        let buffered = self.lock();
        if buffered.lines.len() >= max_lines || buffered.bytes >= max_bytes {
            OutputReady::Full
        } else if buffered.lines.is_empty() && buffered.progress.is_none() {
            OutputReady::Nothing
        } else {
            OutputReady::Some
        }
    }

    /// Waits until something is written after the last wait returned (or was dropped).
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Whether the buffer is past half its bound: a writer that can wait should, rather
    /// than make it drop lines.
    pub(crate) fn is_filling(&self) -> bool {
        let buffered = self.lock();
        !buffered.closed
            && (buffered.lines.len() >= MAX_BUFFERED_LINES / 2
                || buffered.bytes >= MAX_BUFFERED_BYTES / 2)
    }

    /// Waits until lines are taken after the last wait returned (or at once if they were).
    pub(crate) async fn taken(&self) {
        self.taken.notified().await;
    }

    /// Takes up to `max_lines` lines, or fewer adding up to at most `max_bytes`; a first line
    /// longer than `max_bytes` is cut to fit. When lines were dropped, the batch starts with
    /// a line saying how many.
    pub(crate) fn take_batch(&self, max_lines: usize, max_bytes: usize) -> Batch {
        let mut buffered = self.lock();
        let mut batch = Batch {
            lines: Vec::new(),
            stderr: Vec::new(),
            dropped: std::mem::take(&mut buffered.dropped),
        };
        let mut bytes = 0;
        if batch.dropped > 0 {
            let notice = dropped_notice(batch.dropped);
            bytes += line_cost(&notice);
            batch.lines.push(notice);
        }
        while batch.lines.len() < max_lines.max(1) {
            let Some(line) = buffered.lines.front() else {
                break;
            };
            let cost = line_cost(&line.text);
            if bytes + cost > max_bytes {
                if !batch.lines.is_empty() {
                    break;
                }
                // A line bigger than a whole frame: send what fits rather than nothing.
                if let Some(mut line) = buffered.lines.pop_front() {
                    buffered.bytes -= cost;
                    truncate(&mut line.text, max_bytes.saturating_sub(LINE_OVERHEAD));
                    batch.push(line);
                }
                break;
            }
            bytes += cost;
            buffered.bytes -= cost;
            if let Some(line) = buffered.lines.pop_front() {
                batch.push(line);
            }
        }
        drop(buffered);
        if !batch.lines.is_empty() {
            // One stored wake-up: a writer that checks, then waits, never misses it.
            self.taken.notify_one();
        }
        batch
    }

    /// Puts back a batch that could not be sent, in front of anything written since.
    pub(crate) fn put_back(&self, batch: Batch) {
        let mut buffered = self.lock();
        let stderr = batch.stderr;
        let mut lines = (0u32..).zip(batch.lines);
        if batch.dropped > 0 {
            // The notice is rebuilt when the batch is taken again.
            lines.next();
            buffered.dropped += batch.dropped;
        }
        let lines: Vec<(u32, String)> = lines.collect();
        for (index, text) in lines.into_iter().rev() {
            buffered.bytes += line_cost(&text);
            buffered.lines.push_front(Line {
                text,
                stderr: stderr.binary_search(&index).is_ok(),
            });
        }
        buffered.trim();
    }

    /// Takes the progress to send, if it changed since the last take.
    pub(crate) fn take_progress(&self) -> Option<TaskProgress> {
        self.lock().progress.take()
    }

    /// Puts back progress that could not be sent, unless newer progress arrived meanwhile.
    pub(crate) fn put_back_progress(&self, progress: TaskProgress) {
        let mut buffered = self.lock();
        if buffered.progress.is_none() {
            buffered.progress = Some(progress);
        }
    }

    /// The buffer, whatever a panicking writer left in it (it is always consistent).
    fn lock(&self) -> MutexGuard<'_, Buffered> {
        self.buffered.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Buffered {
    /// Appends one line without line breaks, dropping the oldest past the bounds.
    fn push(&mut self, mut text: String, stderr: bool) {
        truncate(&mut text, MAX_LINE_BYTES);
        self.bytes += line_cost(&text);
        self.lines.push_back(Line { text, stderr });
        self.trim();
    }

    /// Drops the oldest lines until the bounds hold.
    fn trim(&mut self) {
        while self.lines.len() > MAX_BUFFERED_LINES || self.bytes > MAX_BUFFERED_BYTES {
            let Some(oldest) = self.lines.pop_front() else {
                break;
            };
            self.bytes -= line_cost(&oldest.text);
            self.dropped += 1;
        }
    }
}

/// The bytes a line is counted as in a frame.
fn line_cost(line: &str) -> usize {
    line.len() + LINE_OVERHEAD
}

/// Cuts `line` to at most `max` bytes, at a character boundary, marking the cut.
fn truncate(line: &mut String, max: usize) {
    const MARK: &str = "…";
    if line.len() <= max {
        return;
    }
    let mut end = max.saturating_sub(MARK.len());
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line.truncate(end);
    if max >= MARK.len() {
        line.push_str(MARK);
    }
}

/// The line that stands for `dropped` lines that were never sent.
fn dropped_notice(dropped: u64) -> String {
    let lines = if dropped == 1 { "line" } else { "lines" };
    format!(
        "[buildcat] {dropped} earlier {lines} of output dropped here: the worker holds at most \
         {MAX_BUFFERED_LINES} lines it has not sent (e.g. while the server is unreachable)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(batch: &Batch) -> Vec<&str> {
        batch.lines.iter().map(String::as_str).collect()
    }

    #[test]
    fn lines_come_out_in_order_and_text_is_split_at_line_breaks() {
        let output = TaskOutput::default();
        output.log("one".to_owned());
        output.log("two\r\nthree\n".to_owned());
        let batch = output.take_batch(100, 1 << 20);
        assert_eq!(lines(&batch), ["one", "two", "three"]);
        assert_eq!(output.pending(100, 1 << 20), OutputReady::Nothing);
    }

    #[test]
    fn batches_respect_line_and_byte_limits() {
        let output = TaskOutput::default();
        for index in 0..10 {
            output.log(format!("line {index}"));
        }
        assert_eq!(output.pending(10, 1 << 20), OutputReady::Full);
        assert_eq!(output.pending(11, 1 << 20), OutputReady::Some);
        assert_eq!(lines(&output.take_batch(4, 1 << 20)).len(), 4);
        // "line N" costs 6 + 8 bytes: two fit in 30.
        assert_eq!(lines(&output.take_batch(100, 30)), ["line 4", "line 5"]);
        assert_eq!(output.take_batch(100, 1 << 20).lines.len(), 4);
    }

    #[test]
    fn a_line_bigger_than_a_frame_is_cut_to_fit() {
        let output = TaskOutput::default();
        output.log("é".repeat(100));
        let batch = output.take_batch(100, 50);
        let line = &batch.lines[0];
        assert!(line.len() + LINE_OVERHEAD <= 50, "{line}");
        assert!(line.ends_with('…'), "{line}");
    }

    #[test]
    fn the_oldest_lines_are_dropped_and_counted() {
        let output = TaskOutput::default();
        for index in 0..MAX_BUFFERED_LINES + 5 {
            output.log(format!("{index}"));
        }
        let batch = output.take_batch(3, 1 << 20);
        assert_eq!(batch.dropped, 5);
        assert!(
            batch.lines[0].contains("5 earlier lines"),
            "{}",
            batch.lines[0]
        );
        assert_eq!(&batch.lines[1..], ["5", "6"]);
        // The count is reported once.
        assert_eq!(output.take_batch(1, 1 << 20).lines, ["7"]);
    }

    #[test]
    fn a_batch_put_back_comes_out_first_with_its_notice() {
        let output = TaskOutput::default();
        for index in 0..MAX_BUFFERED_LINES + 1 {
            output.log(format!("{index}"));
        }
        let batch = output.take_batch(3, 1 << 20);
        output.put_back(batch);
        let again = output.take_batch(3, 1 << 20);
        assert_eq!(again.dropped, 1);
        assert!(
            again.lines[0].contains("1 earlier line of"),
            "{}",
            again.lines[0]
        );
        assert_eq!(&again.lines[1..], ["1", "2"]);

        let output = TaskOutput::default();
        output.log("old".to_owned());
        let batch = output.take_batch(10, 1 << 20);
        output.log("new".to_owned());
        output.put_back(batch);
        assert_eq!(lines(&output.take_batch(10, 1 << 20)), ["old", "new"]);
    }

    /// Issue 14: each line keeps its stream through batches, a batch put back, and text
    /// split at line breaks.
    #[test]
    fn lines_keep_their_stream() {
        let output = TaskOutput::default();
        output.log_from("out 1".to_owned(), false);
        output.log_from("err 1\nerr 2\n".to_owned(), true);
        output.log_from("out 2".to_owned(), false);
        let batch = output.take_batch(3, 1 << 20);
        assert_eq!(lines(&batch), ["out 1", "err 1", "err 2"]);
        assert_eq!(batch.stderr, [1, 2]);
        output.put_back(batch);
        let first = output.take_batch(2, 1 << 20);
        assert_eq!(lines(&first), ["out 1", "err 1"]);
        assert_eq!(first.stderr, [1]);
        let rest = output.take_batch(10, 1 << 20);
        assert_eq!(lines(&rest), ["err 2", "out 2"]);
        assert_eq!(rest.stderr, [0]);
    }

    #[test]
    fn only_the_latest_progress_is_kept_and_nothing_after_closing() {
        let output = TaskOutput::default();
        for done in 1..=3 {
            output.progress(TaskProgress {
                done,
                total: 3,
                outputs: Vec::new(),
                frame_percent: None,
            });
        }
        assert_eq!(output.pending(10, 100), OutputReady::Some);
        assert_eq!(output.take_progress().map(|p| p.done), Some(3));
        assert_eq!(output.take_progress(), None);
        output.close();
        output.log("late".to_owned());
        output.progress(TaskProgress::default());
        assert_eq!(output.pending(10, 100), OutputReady::Nothing);
    }

    #[test]
    fn long_lines_are_cut() {
        let output = TaskOutput::default();
        output.log("x".repeat(MAX_LINE_BYTES * 2));
        let batch = output.take_batch(10, 1 << 20);
        assert!(batch.lines[0].len() <= MAX_LINE_BYTES);
    }
}
