//! Following jobs and tasks: their output, their progress and their end, pushed to the
//! clients that asked.

use buildcat_proto::{
    JobEvent, JobRef, LogPage, Reply, RequestError, RequestId, ServerFrame, TaskId, TaskProgress,
    TaskState,
};

use super::lifecycle::AwaitingCommit;
use super::{ConnId, Core, Effect, OutputRead};
use crate::store::{StoreError, StoreOp};

/// Bytes of lines in one page of stored output, unless the reply budget is smaller: a
/// frame's sixteenth, so a page never comes near the frame limit and a follower's backlog
/// moves in steps the connection's outbox carries easily.
pub(crate) const LOG_PAGE_BYTES: usize = 1 << 20;

/// The longest line kept whole; a longer one (from a worker that does not cut its lines)
/// is cut into lines of at most this many bytes, so that every page holds whole lines and
/// stays within its size.
pub(crate) const MAX_LINE_BYTES: usize = 64 << 10;

/// `lines` as stored: one line per newline (a line holding newlines becomes several) and
/// none longer than [`MAX_LINE_BYTES`], so offsets and line counts agree with the text;
/// with the indexes of the stored lines that came from stderr (a line split in pieces
/// keeps its stream in each). `stderr` as the worker sent it may be anything: indexes past
/// the lines, repeated or out of order are ignored.
fn bounded_lines(lines: Vec<String>, stderr: &[u32]) -> (Vec<String>, Vec<u32>) {
    // One flag per line sent, so that a long list costs one pass, not a search per line.
    let mut sent_flags = vec![false; if stderr.is_empty() { 0 } else { lines.len() }];
    for index in stderr {
        if let Some(flag) = usize::try_from(*index)
            .ok()
            .and_then(|index| sent_flags.get_mut(index))
        {
            *flag = true;
        }
    }
    let is_stderr = |index: usize| sent_flags.get(index).copied().unwrap_or(false);
    let fits = |line: &String| line.len() <= MAX_LINE_BYTES && !line.contains('\n');
    if lines.iter().all(fits) {
        let streams = stderr_indexes((0..lines.len()).map(is_stderr));
        return (lines, streams);
    }
    let mut bounded = Vec::with_capacity(lines.len());
    let mut flags = Vec::with_capacity(lines.len());
    for (index, line) in lines.into_iter().enumerate() {
        let from_stderr = is_stderr(index);
        if fits(&line) {
            bounded.push(line);
            flags.push(from_stderr);
            continue;
        }
        for piece in line.split('\n') {
            let mut rest = piece;
            loop {
                let mut cut = rest.len().min(MAX_LINE_BYTES);
                while !rest.is_char_boundary(cut) {
                    cut -= 1;
                }
                bounded.push(rest[..cut].to_owned());
                flags.push(from_stderr);
                rest = &rest[cut..];
                if rest.is_empty() {
                    break;
                }
            }
        }
    }
    (bounded, stderr_indexes(flags.into_iter()))
}

/// The indexes of the `true` flags, ascending (an index past `u32` cannot occur: a frame
/// holds far fewer lines).
fn stderr_indexes(flags: impl Iterator<Item = bool>) -> Vec<u32> {
    flags
        .enumerate()
        .filter(|(_, from_stderr)| *from_stderr)
        .filter_map(|(index, _)| u32::try_from(index).ok())
        .collect()
}

impl Core {
    /// Sends an event for a streaming request.
    pub(super) fn event(&mut self, conn: ConnId, request: RequestId, event: JobEvent) {
        self.effects.push(Effect::Send(
            conn,
            ServerFrame::Event { id: request, event },
        ));
    }

    /// Output lines from the worker running `id`: stored as one chunk after what the task
    /// printed before, the middle dropped past the bound, and pushed to its followers once
    /// stored (see [`AwaitingCommit::Output`]).
    ///
    /// The lines' commit is asked for at once, behind everything before it: commits are
    /// reported in order, so followers get the lines in order, and before the answer that
    /// ends their follow.
    pub(super) fn append_log(
        &mut self,
        id: TaskId,
        attempt: u32,
        lines: Vec<String>,
        stderr: &[u32],
    ) {
        let max_bytes = self.config.max_log_bytes;
        let Some(task) = self.task_mut(id) else {
            return;
        };
        if task.current_attempt() != attempt || task.state.is_terminal() {
            return;
        }
        let (lines, stderr) = bounded_lines(lines, stderr);
        if lines.is_empty() {
            return;
        }
        let mut text = String::with_capacity(lines.iter().map(|line| line.len() + 1).sum());
        for line in &lines {
            text.push_str(line);
            text.push('\n');
        }
        let output = task.output.get_or_insert_with(Box::default);
        let kept_before = output.kept(max_bytes);
        let start = output.extent;
        output.extent.bytes += text.len() as u64;
        output.extent.lines += lines.len() as u64;
        let next = output.extent.bytes;
        let dropped = output.due_drop(max_bytes);
        let kept_after = output.kept(max_bytes);
        self.output_bytes = (self.output_bytes + kept_after).saturating_sub(kept_before);
        self.ops.push(StoreOp::AppendOutput {
            task: id,
            offset: start.bytes,
            line: start.lines,
            lines: lines.len() as u64,
            text,
            stderr: stderr.clone(),
        });
        if let Some((from, to)) = dropped {
            self.ops.push(StoreOp::DropOutput { task: id, from, to });
        }
        let followers: Vec<(ConnId, RequestId)> = self
            .log_followers
            .get(&id.job)
            .map(|list| {
                list.iter()
                    .filter(|(_, _, index)| *index == id.index)
                    .map(|(conn, request, _)| (*conn, *request))
                    .collect()
            })
            .unwrap_or_default();
        if followers.is_empty() {
            return;
        }
        let page = LogPage {
            dropped: None,
            offset: start.bytes,
            lines,
            next,
            more: false,
            stderr,
        };
        let event = JobEvent::Log { task: id, page };
        let token = self.next_token();
        self.pending
            .insert(token, AwaitingCommit::Output { event, followers });
        self.flush_ops(Some(token));
    }

    /// Lines of a task's output are stored: its followers of then that are still
    /// connected get them.
    pub(super) fn output_stored(&mut self, event: &JobEvent, followers: Vec<(ConnId, RequestId)>) {
        for (conn, request) in followers {
            if self.connections.contains_key(&conn) {
                self.event(conn, request, event.clone());
            }
        }
    }

    /// Answers follows of a task that ended with the end of its output, once the lines
    /// before it were pushed.
    pub(super) fn follows_ended(&mut self, end: u64, followers: Vec<(ConnId, RequestId)>) {
        for (conn, request) in followers {
            if self.connections.contains_key(&conn) {
                let page = LogPage::empty_at(end);
                self.reply(conn, request, Ok(Reply::Log(page)));
            }
        }
    }

    /// Progress from the worker running `id`.
    pub(super) fn record_progress(&mut self, id: TaskId, attempt: u32, progress: TaskProgress) {
        let Some(task) = self.task_mut(id) else {
            return;
        };
        if task.current_attempt() != attempt || task.state.is_terminal() {
            return;
        }
        task.progress = Some(Box::new(progress.clone()));
        let watchers = self.watchers.get(&id.job).cloned().unwrap_or_default();
        for (conn, request) in watchers {
            let event = JobEvent::Progress {
                task: id,
                progress: progress.clone(),
            };
            self.event(conn, request, event);
        }
    }

    /// `Logs`: a page of what the task printed from `from` on; with `follow`, every page
    /// from there and then new lines until the task ends.
    pub(super) fn logs(
        &mut self,
        conn: ConnId,
        request: RequestId,
        id: TaskId,
        from: u64,
        follow: bool,
    ) {
        let Some(task) = self.task(id) else {
            self.reply(
                conn,
                request,
                Err(RequestError::UnknownJob(JobRef::Id(id.job))),
            );
            return;
        };
        let end = task.output_extent().bytes;
        if from < end {
            self.read_output(conn, request, id, from, follow);
        } else {
            self.caught_up(conn, request, id, follow);
        }
    }

    /// Asks the store for the page of `id`'s output at `from`.
    fn read_output(
        &mut self,
        conn: ConnId,
        request: RequestId,
        id: TaskId,
        from: u64,
        follow: bool,
    ) {
        // Output appended before this read must reach the store first: the read is served
        // after every change sent before it.
        self.flush_ops(None);
        let max_bytes = LOG_PAGE_BYTES.min(self.config.max_reply_bytes / 2).max(1);
        self.reading.insert((conn, request), id);
        self.effects.push(Effect::ReadOutput(OutputRead {
            task: id,
            from,
            max_bytes,
            conn,
            request,
            follow,
        }));
    }

    /// A `Logs` request reached the end of the task's output: a plain one gets an empty
    /// page; a follower waits for new lines, or gets the end if the task has ended.
    fn caught_up(&mut self, conn: ConnId, request: RequestId, id: TaskId, follow: bool) {
        let Some(task) = self.task(id) else {
            self.reply(
                conn,
                request,
                Err(RequestError::UnknownJob(JobRef::Id(id.job))),
            );
            return;
        };
        let end = task.output_extent().bytes;
        if follow && !task.state.is_terminal() {
            self.log_followers
                .entry(id.job)
                .or_default()
                .push((conn, request, id.index));
            self.subscribe(conn, id.job);
            return;
        }
        let page = LogPage::empty_at(end);
        self.reply(conn, request, Ok(Reply::Log(page)));
    }

    /// A page read from the store: the answer to a plain `Logs`, or one event of a follow,
    /// which then reads on until it has caught up.
    pub(super) fn output_read(&mut self, read: OutputRead, result: Result<LogPage, StoreError>) {
        let OutputRead {
            task: id,
            from,
            conn,
            request,
            follow,
            ..
        } = read;
        if self.reading.remove(&(conn, request)).is_none() || !self.connections.contains_key(&conn)
        {
            return;
        }
        let mut page = match result {
            Ok(page) => page,
            Err(error) => {
                let error = RequestError::Storage(format!(
                    "could not read the output of task {id}: {error}"
                ));
                self.reply(conn, request, Err(error));
                return;
            }
        };
        let Some(task) = self.task(id) else {
            self.reply(
                conn,
                request,
                Err(RequestError::UnknownJob(JobRef::Id(id.job))),
            );
            return;
        };
        let end = task.output_extent().bytes;
        page.more = page.next < end;
        if !follow {
            self.reply(conn, request, Ok(Reply::Log(page)));
            return;
        }
        let next = page.next;
        // Output counted but not found (a commit of it failed) cannot be read on: the
        // follower carries on with what comes next.
        let stuck = next <= from && page.lines.is_empty();
        if !page.lines.is_empty() || page.dropped.is_some() {
            self.event(conn, request, JobEvent::Log { task: id, page });
        }
        if next < end && !stuck {
            self.read_output(conn, request, id, next, true);
        } else {
            self.caught_up(conn, request, id, true);
        }
    }

    /// Answers the followers of task `id`, which has ended, with the end of its output.
    pub(super) fn end_log_followers(&mut self, id: TaskId) {
        let Some(list) = self.log_followers.get_mut(&id.job) else {
            return;
        };
        let mut ended = Vec::new();
        list.retain(|(conn, request, index)| {
            let this = *index == id.index;
            if this {
                ended.push((*conn, *request));
            }
            !this
        });
        if list.is_empty() {
            self.log_followers.remove(&id.job);
        }
        if ended.is_empty() {
            return;
        }
        let end = self.task(id).map_or(0, |task| task.output_extent().bytes);
        // After the commits of the lines pushed before: those are reported first.
        let token = self.next_token();
        self.pending.insert(
            token,
            AwaitingCommit::FollowsEnded {
                end,
                followers: ended,
            },
        );
        self.flush_ops(Some(token));
    }

    /// `Watch`: task, progress and end events for each job; the reply once all have ended.
    pub(super) fn watch(&mut self, conn: ConnId, request: RequestId, jobs: Vec<JobRef>) {
        let mut ids = Vec::with_capacity(jobs.len());
        for job in jobs {
            match self.resolve(job) {
                Ok(id) => ids.push(id),
                Err(error) => {
                    self.reply(conn, request, Err(error));
                    return;
                }
            }
        }
        let mut remaining = 0;
        for id in ids {
            if let Some(status) = self.ended_status(id) {
                self.event(conn, request, JobEvent::Ended(status));
                continue;
            }
            let Some(job) = self.jobs.get(&id) else {
                continue;
            };
            let progress: Vec<(TaskId, TaskProgress)> = job
                .indexed()
                .filter(|(_, task)| task.state == TaskState::Started)
                .filter_map(|(task_id, task)| Some((task_id, task.progress.as_deref()?.clone())))
                .collect();
            for (task, progress) in progress {
                self.event(conn, request, JobEvent::Progress { task, progress });
            }
            self.watchers.entry(id).or_default().push((conn, request));
            self.subscribe(conn, id);
            remaining += 1;
        }
        if remaining == 0 {
            self.reply(conn, request, Ok(Reply::Ack));
        } else {
            self.watches.insert((conn, request), remaining);
        }
    }

    /// One job of a watch ended; reply when it was the last.
    pub(super) fn watch_done(&mut self, conn: ConnId, request: RequestId) {
        let Some(remaining) = self.watches.get_mut(&(conn, request)) else {
            return;
        };
        *remaining = remaining.saturating_sub(1);
        if *remaining == 0 {
            self.watches.remove(&(conn, request));
            self.reply(conn, request, Ok(Reply::Ack));
        }
    }
}
