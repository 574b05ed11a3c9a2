//! A store in memory, for the core's tests: it applies the core's changes as the server's
//! writer does, so a test can restart a core from what was stored and serve output reads.
//!
//! It keeps the [`Store`] contract the core relies on: jobs in id order with their tasks,
//! the next number past every number inserted (deleted jobs' too), paused queues, output
//! chunks by byte offset, pages that never span a dropped range and say what was dropped.

use std::collections::{BTreeMap, BTreeSet};

use buildcat_proto::{DroppedOutput, JobId, LogPage, TaskId};

use crate::store::{Loaded, OutputExtent, Store, StoreError, StoreOp, StoredJob};

/// One appended chunk of a task's output.
#[derive(Debug, Clone)]
struct Chunk {
    /// The number of its first line in the task's output.
    line: u64,
    /// Its lines, each followed by a newline.
    text: String,
    /// The indexes of its lines that were stderr.
    stderr: Vec<u32>,
}

/// Everything stored, in memory.
#[derive(Debug, Default, Clone)]
pub(super) struct MemStore {
    /// Jobs on record, by id (which is submission order).
    jobs: BTreeMap<JobId, StoredJob>,
    /// Past every number ever inserted: numbers are never given out again.
    next_number: u64,
    /// Queues a person paused.
    paused: BTreeSet<String>,
    /// Each task's output chunks by the byte offset they start at.
    output: BTreeMap<TaskId, BTreeMap<u64, Chunk>>,
}

impl MemStore {
    /// Applies one change. Changes to a job no longer on record are ignored, as a deleted
    /// job's late updates are by a real store's foreign keys.
    fn apply(&mut self, op: &StoreOp) {
        match op {
            StoreOp::Insert(job) => {
                self.next_number = self.next_number.max(job.job.number + 1);
                let mut job = job.clone();
                for task in &mut job.tasks {
                    task.output = OutputExtent::default();
                }
                self.jobs.insert(job.job.id, job);
            }
            StoreOp::AppendTasks { job, tasks } => {
                if let Some(stored) = self.jobs.get_mut(job) {
                    for task in tasks {
                        let index = u32::try_from(stored.tasks.len()).unwrap_or(u32::MAX);
                        let mut task = task.clone();
                        task.status.id = TaskId::new(*job, index);
                        task.output = OutputExtent::default();
                        stored.tasks.push(task);
                    }
                }
            }
            StoreOp::UpdateJob(record) => {
                if let Some(job) = self.jobs.get_mut(&record.id) {
                    job.job.options.priority = record.options.priority;
                    job.job.paused = record.paused;
                    job.job.ended_at = record.ended_at;
                }
            }
            StoreOp::UpdateTask(status) => {
                let task = self.jobs.get_mut(&status.id.job).and_then(|job| {
                    job.tasks
                        .get_mut(usize::try_from(status.id.index).unwrap_or(usize::MAX))
                });
                if let Some(task) = task {
                    let frames = task.status.frames.clone();
                    task.status = status.clone();
                    task.status.frames = frames;
                    task.status.progress = None;
                }
            }
            StoreOp::Delete(id) => {
                self.jobs.remove(id);
                self.output.retain(|task, _| task.job != *id);
            }
            StoreOp::PauseQueue { queue, paused } => {
                if *paused {
                    self.paused.insert(queue.clone());
                } else {
                    self.paused.remove(queue);
                }
            }
            StoreOp::AppendOutput {
                task,
                offset,
                line,
                lines,
                text,
                stderr,
            } => {
                let Some(stored) = self.jobs.get_mut(&task.job).and_then(|job| {
                    job.tasks
                        .get_mut(usize::try_from(task.index).unwrap_or(usize::MAX))
                }) else {
                    return;
                };
                stored.output = OutputExtent {
                    bytes: offset + text.len() as u64,
                    lines: line + lines,
                };
                self.output.entry(*task).or_default().insert(
                    *offset,
                    Chunk {
                        line: *line,
                        text: text.clone(),
                        stderr: stderr.clone(),
                    },
                );
            }
            StoreOp::DropOutput { task, from, to } => {
                if let Some(chunks) = self.output.get_mut(task) {
                    chunks.retain(|offset, chunk| {
                        !(*offset >= *from && offset + chunk.text.len() as u64 <= *to)
                    });
                }
            }
        }
    }

    /// The bytes of output stored for every task, counted chunk by chunk: what the core's
    /// running count (`FarmInfo::output_bytes`) stands for.
    pub(super) fn output_bytes(&self) -> u64 {
        self.output
            .values()
            .flat_map(|chunks| chunks.values())
            .map(|chunk| chunk.text.len() as u64)
            .sum()
    }

    /// Every stored line of `task` as (offset, line number, text, stderr), in order.
    fn lines(&self, task: TaskId) -> Vec<(u64, u64, &str, bool)> {
        let mut lines = Vec::new();
        for (offset, chunk) in self.output.get(&task).into_iter().flatten() {
            let mut at = *offset;
            for (index, (number, line)) in
                (0u32..).zip((chunk.line..).zip(chunk.text.split_terminator('\n')))
            {
                lines.push((at, number, line, chunk.stderr.contains(&index)));
                at += line.len() as u64 + 1;
            }
        }
        lines
    }
}

impl Store for MemStore {
    fn load(&mut self) -> Result<Loaded, StoreError> {
        Ok(Loaded {
            jobs: self.jobs.values().cloned().collect(),
            next_number: self.next_number.max(1),
            paused_queues: self.paused.iter().cloned().collect(),
        })
    }

    fn commit(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        for op in ops {
            self.apply(op);
        }
        Ok(())
    }

    fn read_output(
        &mut self,
        task: TaskId,
        from: u64,
        max_bytes: usize,
    ) -> Result<LogPage, StoreError> {
        let lines = self.lines(task);
        let start = lines.partition_point(|(offset, _, _, _)| *offset < from);
        let Some(&(first, first_number, _, _)) = lines.get(start) else {
            return Ok(LogPage::empty_at(from));
        };
        let dropped = (first > from).then(|| {
            // The line that would start at `from`: after the last stored line before it.
            let at_from = start
                .checked_sub(1)
                .and_then(|before| lines.get(before))
                .map_or(0, |(_, number, _, _)| number + 1);
            DroppedOutput {
                bytes: first - from,
                lines: first_number.saturating_sub(at_from),
            }
        });
        let mut page = LogPage {
            dropped,
            offset: first,
            lines: Vec::new(),
            next: first,
            more: false,
            stderr: Vec::new(),
        };
        let mut used = 0usize;
        for &(offset, _, line, from_stderr) in &lines[start..] {
            // A page never spans a gap, and holds at least one line.
            if offset != page.next || (!page.lines.is_empty() && used + line.len() + 1 > max_bytes)
            {
                break;
            }
            used += line.len() + 1;
            if from_stderr {
                page.stderr
                    .push(u32::try_from(page.lines.len()).unwrap_or(u32::MAX));
            }
            page.lines.push(line.to_owned());
            page.next = offset + line.len() as u64 + 1;
        }
        Ok(page)
    }
}
