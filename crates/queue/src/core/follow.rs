//! Following jobs: their output, their progress and their end, pushed to the clients that
//! asked.

use buildcat_proto::{JobEvent, JobId, JobProgress, Reply, RequestError, RequestId, ServerFrame};

use super::job::JobLog;
use super::{ConnId, Core, Effect};

impl Core {
    /// Sends an event for a streaming request.
    pub(super) fn event(&mut self, conn: ConnId, request: RequestId, event: JobEvent) {
        self.effects.push(Effect::Send(
            conn,
            ServerFrame::Event { id: request, event },
        ));
    }

    /// Output lines from the worker running `id`.
    pub(super) fn append_log(&mut self, id: JobId, attempt: u32, lines: Vec<String>) {
        let limit = self.config.max_log_lines.max(1);
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if job.current_attempt() != attempt || job.state.is_terminal() || lines.is_empty() {
            return;
        }
        let log = job.log.get_or_insert_with(Box::default);
        for line in &lines {
            if log.lines.len() >= limit {
                log.lines.pop_front();
                log.dropped += 1;
            }
            log.lines.push_back(line.clone());
        }
        let followers = self.log_followers.get(&id).cloned().unwrap_or_default();
        for (conn, request) in followers {
            let event = JobEvent::Log {
                job: id,
                lines: lines.clone(),
            };
            self.event(conn, request, event);
        }
    }

    /// Progress from the worker running `id`.
    pub(super) fn record_progress(&mut self, id: JobId, attempt: u32, progress: JobProgress) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if job.current_attempt() != attempt || job.state.is_terminal() {
            return;
        }
        job.progress = Some(Box::new(progress.clone()));
        let watchers = self.watchers.get(&id).cloned().unwrap_or_default();
        for (conn, request) in watchers {
            let event = JobEvent::Progress {
                job: id,
                progress: progress.clone(),
            };
            self.event(conn, request, event);
        }
    }

    /// `Logs`: what the job printed; with `follow`, new lines until it ends.
    pub(super) fn logs(&mut self, conn: ConnId, request: RequestId, id: JobId, follow: bool) {
        let Some(job) = self.jobs.get(&id) else {
            self.reply(conn, request, Err(RequestError::UnknownJob(id)));
            return;
        };
        let log = job.log.as_deref().cloned().unwrap_or_else(JobLog::default);
        let lines: Vec<String> = log.lines.into_iter().collect();
        if !follow || job.state.is_terminal() {
            let reply = Reply::Log {
                lines,
                dropped: log.dropped,
            };
            self.reply(conn, request, Ok(reply));
            return;
        }
        if !lines.is_empty() {
            self.event(conn, request, JobEvent::Log { job: id, lines });
        }
        self.log_followers
            .entry(id)
            .or_default()
            .push((conn, request));
        self.subscribe(conn, id);
    }

    /// `Watch`: progress and end events for each job; the reply once all have ended.
    pub(super) fn watch(&mut self, conn: ConnId, request: RequestId, ids: Vec<JobId>) {
        if let Some(unknown) = ids.iter().find(|id| !self.jobs.contains_key(id)) {
            self.reply(conn, request, Err(RequestError::UnknownJob(*unknown)));
            return;
        }
        let mut remaining = 0;
        for id in ids {
            let Some(job) = self.jobs.get(&id) else {
                continue;
            };
            if job.state.is_terminal() {
                let status = job.status();
                self.event(conn, request, JobEvent::Ended(status));
                continue;
            }
            if let Some(progress) = job.progress.as_deref().cloned() {
                self.event(conn, request, JobEvent::Progress { job: id, progress });
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
