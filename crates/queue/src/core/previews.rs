//! Frame previews: the latest few small pictures of each job's saved frames, for its page.
//!
//! Workers send them ([`Request::Preview`](buildcat_proto::Request::Preview)); the core
//! keeps them in memory only (a restart forgets them: a preview is replaced within a frame's
//! render anyway) and never decodes them: it checks their sizes and keeps the bytes. What
//! they can cost is bounded three ways: one preview's bytes
//! ([`MAX_PREVIEW_BYTES`](buildcat_proto::MAX_PREVIEW_BYTES)), previews per job
//! ([`CoreConfig::previews_per_job`](super::CoreConfig::previews_per_job), the oldest of the
//! job goes) and bytes for the whole farm
//! ([`CoreConfig::preview_budget`](super::CoreConfig::preview_budget), the oldest on the farm
//! goes). A job's previews go with the job.

use std::collections::{BTreeMap, HashMap, VecDeque};

use buildcat_proto::{
    FramePreview, JobId, JobPreviews, JobRef, PreviewInfo, RequestError, TaskState, Timestamp,
};
use tracing::debug;

use super::{ConnId, Core};

/// Previews kept per job by default: the page shows the newest, and a few before it let a
/// wrangler see a chunk's frames go by without the server holding a whole sequence.
pub const DEFAULT_PREVIEWS_PER_JOB: usize = 4;

/// Bytes of previews the whole farm keeps by default: 32 MiB holds the newest preview of
/// hundreds of jobs (a 512-pixel JPEG is tens of KiB), and stays small beside the server's
/// other bounds however many workers send them.
pub const DEFAULT_PREVIEW_BUDGET: usize = 32 << 20;

/// One preview kept.
#[derive(Debug)]
struct Kept {
    /// When it came, in arrival order over the whole farm: its key in `Previews::order`.
    seq: u64,
    /// What the listing says of it.
    info: PreviewInfo,
    /// The encoded image, served as it came.
    image: Vec<u8>,
}

/// The previews the farm keeps.
#[derive(Debug, Default)]
pub(super) struct Previews {
    /// Each job's previews, oldest first.
    jobs: HashMap<JobId, VecDeque<Kept>>,
    /// Every preview kept, by arrival, with its job: the budget evicts from the front.
    order: BTreeMap<u64, JobId>,
    /// The bytes of every image kept, held within the budget.
    bytes: usize,
    /// The next arrival number.
    next_seq: u64,
}

impl Previews {
    /// Keeps `preview` for its job, received at `at`, then evicts the job's oldest beyond
    /// `per_job` and the farm's oldest beyond `budget` bytes.
    fn keep(&mut self, preview: FramePreview, at: Timestamp, per_job: usize, budget: usize) {
        let job = preview.task.job;
        let seq = self.next_seq;
        self.next_seq += 1;
        let info = PreviewInfo {
            task: preview.task,
            frame: preview.frame,
            width: preview.width,
            height: preview.height,
            format: preview.format,
            bytes: u32::try_from(preview.image.len()).unwrap_or(u32::MAX),
            at,
        };
        self.bytes += preview.image.len();
        self.order.insert(seq, job);
        let kept = self.jobs.entry(job).or_default();
        kept.push_back(Kept {
            seq,
            info,
            image: preview.image,
        });
        while self.jobs.get(&job).is_some_and(|kept| kept.len() > per_job) {
            self.evict_oldest_of(job);
        }
        while self.bytes > budget {
            let Some((_, oldest)) = self.order.first_key_value() else {
                break;
            };
            let oldest = *oldest;
            self.evict_oldest_of(oldest);
        }
    }

    /// Drops `job`'s oldest preview.
    fn evict_oldest_of(&mut self, job: JobId) {
        let Some(kept) = self.jobs.get_mut(&job) else {
            return;
        };
        if let Some(gone) = kept.pop_front() {
            self.order.remove(&gone.seq);
            self.bytes -= gone.image.len();
        }
        if kept.is_empty() {
            self.jobs.remove(&job);
        }
    }

    /// Drops every preview of `job` (it was removed).
    pub(super) fn remove_job(&mut self, job: JobId) {
        for gone in self.jobs.remove(&job).into_iter().flatten() {
            self.order.remove(&gone.seq);
            self.bytes -= gone.image.len();
        }
    }

    /// The bytes of every image kept.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many previews `job` has.
    #[cfg(test)]
    pub(super) fn count(&self, job: JobId) -> usize {
        self.jobs.get(&job).map_or(0, VecDeque::len)
    }

    /// Whether the indexes agree: the arrival order lists exactly the previews kept, each
    /// job's are in arrival order, and `bytes` is their sum.
    #[cfg(test)]
    pub(super) fn check(&self, jobs: &HashMap<JobId, Box<super::job::Job>>) -> Result<(), String> {
        let mut count = 0;
        let mut bytes = 0;
        for (job, kept) in &self.jobs {
            if !jobs.contains_key(job) {
                return Err(format!("previews kept for job {job}, which is gone"));
            }
            if kept.is_empty() {
                return Err(format!("an empty preview list is kept for job {job}"));
            }
            if !kept
                .iter()
                .zip(kept.iter().skip(1))
                .all(|(a, b)| a.seq < b.seq)
            {
                return Err(format!("job {job}'s previews are out of arrival order"));
            }
            for preview in kept {
                if self.order.get(&preview.seq) != Some(job) {
                    return Err(format!(
                        "preview {} of job {job} is not in the order",
                        preview.seq
                    ));
                }
                bytes += preview.image.len();
            }
            count += kept.len();
        }
        if count != self.order.len() || bytes != self.bytes {
            return Err(format!(
                "previews: {count} kept of {} bytes, but {} ordered and {} bytes counted",
                bytes,
                self.order.len(),
                self.bytes
            ));
        }
        Ok(())
    }
}

impl Core {
    /// `Preview`: keeps it if it is within the sizes and comes from the worker of its task's
    /// current attempt (while it runs, or after it ended: the last frame's preview is made
    /// after it was saved, and may come after the task's result); ignores it otherwise, as a
    /// late report is. Within the sizes or not, nothing is decoded.
    pub(super) fn preview(
        &mut self,
        now: Timestamp,
        conn: ConnId,
        preview: FramePreview,
    ) -> Result<(), RequestError> {
        preview.check().map_err(RequestError::Invalid)?;
        let Some(worker) = self.workers.get(&conn) else {
            return Ok(());
        };
        let id = preview.task;
        let Some(task) = self.task(id) else {
            return Ok(());
        };
        let from_its_worker = task.attempts.last().is_some_and(|attempt| {
            attempt.number == preview.attempt && attempt.worker == worker.registration.name
        });
        // Its worker runs it, or reported its end (being stored, or stored).
        let current = match task.state {
            TaskState::Started => self.running.get(&id) == Some(&conn) || task.completing > 0,
            state => state.is_terminal(),
        };
        if !(from_its_worker && current) {
            debug!(task = %id, attempt = preview.attempt, "ignored a preview from a worker not running the task");
            return Ok(());
        }
        let (per_job, budget) = (self.config.previews_per_job, self.config.preview_budget);
        self.previews.keep(preview, now, per_job, budget);
        Ok(())
    }

    /// `Previews`: the job's previews, newest first, with the newest one's image if `image`.
    pub(super) fn job_previews(
        &self,
        job: JobRef,
        image: bool,
    ) -> Result<JobPreviews, RequestError> {
        let id = self.resolve(job)?;
        let number = self
            .jobs
            .get(&id)
            .map(|job| job.number)
            .ok_or(RequestError::UnknownJob(job))?;
        let kept = self.previews.jobs.get(&id);
        let previews = kept
            .into_iter()
            .flat_map(|kept| kept.iter().rev())
            .map(|kept| kept.info)
            .collect();
        let latest = if image {
            kept.and_then(VecDeque::back).map(|kept| kept.image.clone())
        } else {
            None
        };
        Ok(JobPreviews {
            job: id,
            number,
            previews,
            latest,
        })
    }
}
