//! Serializable views: the JSON shapes front ends show people and scripts.
//!
//! The wire types ([`message`](crate::message)) are for the protocol and may change with
//! it; a view is what `buildcat info --json` prints (and the HTTP API will serve), so a
//! script reading it keeps working when the protocol changes. Each view is built from its
//! wire type with `From`, in one place, instead of by hand in every front end.
//!
//! Times are RFC 3339 strings in UTC with milliseconds (`2026-11-28T14:38:04.123Z`,
//! [`rfc3339`]); what has not happened yet is `null`.
//!
//! Fields are declared in alphabetical order: the JSON shape was first written through a
//! sorted map, and end-to-end tests pin its bytes.

use serde::Serialize;

use crate::codec;
use crate::dcc::{RenderReport, ToolInfoReport, tool_for_kind};
use crate::gpu::{Gpu, GpuRequirement};
use crate::job::{
    AttemptOutcome, JobStatus, JobSummary, TaskCounts, TaskProgress, TaskState, TaskStatus,
    TaskSummary, Timestamp,
};
use crate::message::{
    Change, DroppedOutput, FarmInfo, LogPage, QueueSummary, Unserved, WorkerSummary,
};
use crate::preview::{JobPreviews, PreviewInfo};
use crate::task::{CommandResult, RunCommand, RunCommandIn, Task, WorkerInfo, WorkerInfoReport};

/// The farm at a glance: `buildcat info --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FarmView {
    /// Task counts by state and jobs not ended for every queue on record, so a script can
    /// see what waits.
    pub queues: Vec<QueueView>,
    /// Queued tasks no connected worker can run, so a script can tell a stuck queue from a
    /// slow one.
    pub unserved: Vec<UnservedView>,
    /// Every connected worker and what it runs.
    pub workers: Vec<WorkerView>,
}

/// One queue: its task counts, one field per task state, and its jobs not ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueView {
    /// Canceled tasks still kept (until their job's retention ends).
    pub canceled: u64,
    /// Tasks waiting for the jobs or tasks they run after.
    pub deferred: u64,
    /// Failed tasks still kept, which `requeue` would put back.
    pub failed: u64,
    /// Finished tasks still kept.
    pub finished: u64,
    /// Whether the whole queue is paused (`buildcat pause --queue`).
    pub held: bool,
    /// Jobs in it that have not ended.
    pub jobs: u64,
    /// The queue, as jobs and workers name it.
    pub name: String,
    /// Queued tasks held by a pause of their job or of the queue.
    pub paused: u64,
    /// Tasks waiting for a worker: the backlog.
    pub queued: u64,
    /// Tasks running now.
    pub started: u64,
}

/// A connected worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerView {
    /// The GPUs its slot owns (an empty list without), so a script can see which workers
    /// take GPU jobs.
    pub gpus: Vec<GpuView>,
    /// The host it runs on, to find the machine.
    pub host: String,
    /// The id of the job whose task it runs, `null` when idle.
    pub job: Option<String>,
    /// Its name, unique on the farm, as jobs' attempts record it.
    pub name: String,
    /// A person paused it (`buildcat worker-pause`): it finishes its task and takes no
    /// new one until resumed; `state` stays `busy` while that task runs.
    pub paused: bool,
    /// Why it gets no work, while quarantined; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<String>,
    /// The queues it serves, highest priority first.
    pub queues: Vec<String>,
    /// Its root as that host sees it, where job paths resolve.
    pub root: String,
    /// `idle`, `busy`, `quarantined` or `paused` (paused and running nothing).
    pub state: String,
    /// The task it runs as people name it (`42.3`), `null` when idle.
    pub task: Option<String>,
    /// The tools it found with their versions, so a script can pick or check workers by
    /// what they render with.
    pub tools: Vec<ToolView>,
}

/// A GPU of a worker slot, with the keys `worker-info --json` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuView {
    /// The driver version, empty when not known: old drivers explain odd failures.
    pub driver: String,
    /// Its index on the host, as `nvidia-smi` numbers it.
    pub index: u32,
    /// Its memory in MiB, which memory requirements are checked against.
    pub memory_mib: u64,
    /// Its product name (`NVIDIA H200`), empty when not known.
    pub name: String,
    /// Its UUID (`GPU-5f3c...`), which tells GPUs apart across hosts and reboots.
    pub uuid: String,
    /// `nvidia`, `amd` or `unknown`: which API runs on it.
    pub vendor: String,
}

impl From<&Gpu> for GpuView {
    fn from(gpu: &Gpu) -> Self {
        GpuView {
            driver: gpu.driver.clone(),
            index: gpu.index,
            memory_mib: gpu.memory_mib,
            name: gpu.name.clone(),
            uuid: gpu.uuid.clone(),
            vendor: gpu.vendor.as_str().to_owned(),
        }
    }
}

/// What a job needs of a GPU, as `status --json` and `info --json` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuRequirementView {
    /// How many GPUs each task needs on its slot.
    pub count: u32,
    /// The least memory of each, in MiB; 0 for any.
    pub memory_mib: u64,
    /// The same in words (`2 GPUs of 24 GiB`), as `info` says it.
    pub text: String,
}

impl GpuRequirementView {
    /// The view of `need`; `None` when it asks for nothing, so jobs without a GPU
    /// requirement keep their JSON shape.
    pub fn of(need: &GpuRequirement) -> Option<GpuRequirementView> {
        (!need.is_none()).then(|| GpuRequirementView {
            count: need.gpus_needed(),
            memory_mib: need.memory_mib,
            text: need.to_string(),
        })
    }
}

/// A tool a worker found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolView {
    /// The tool as the worker names it (`blender`, `hython`).
    pub name: String,
    /// The version it reported (`3.4.1`), empty when it could not be read.
    pub version: String,
}

/// Queued tasks of one kind in one queue that no connected worker can run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnservedView {
    /// The GPUs their jobs need, when workers serve the queue with the kind but none has
    /// them; absent when the kind is what is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpus: Option<GpuRequirementView>,
    /// Their kind, which names the task.
    pub kind: String,
    /// Their queue.
    pub queue: String,
    /// How many such tasks wait.
    pub tasks: u64,
    /// The tool a worker needs for the kind (`blender`, `houdini`, ...), `null` when the
    /// kind needs none: the fix to suggest.
    pub tool: Option<String>,
}

impl From<&FarmInfo> for FarmView {
    fn from(info: &FarmInfo) -> Self {
        FarmView {
            queues: info.queues.iter().map(QueueView::from).collect(),
            unserved: info.unserved.iter().map(UnservedView::from).collect(),
            workers: info.workers.iter().map(WorkerView::from).collect(),
        }
    }
}

impl From<&QueueSummary> for QueueView {
    fn from(queue: &QueueSummary) -> Self {
        QueueView {
            canceled: queue.count(TaskState::Canceled),
            deferred: queue.count(TaskState::Deferred),
            failed: queue.count(TaskState::Failed),
            finished: queue.count(TaskState::Finished),
            held: queue.paused,
            jobs: queue.jobs,
            name: queue.name.clone(),
            paused: queue.count(TaskState::Paused),
            queued: queue.count(TaskState::Queued),
            started: queue.count(TaskState::Started),
        }
    }
}

impl From<&WorkerSummary> for WorkerView {
    fn from(worker: &WorkerSummary) -> Self {
        WorkerView {
            gpus: worker.gpus.iter().map(GpuView::from).collect(),
            host: worker.host.clone(),
            job: worker.task.map(|task| task.id.job.to_string()),
            name: worker.name.clone(),
            paused: worker.paused,
            quarantine: worker.quarantine.clone(),
            queues: worker.queues.clone(),
            root: worker.root.clone(),
            state: worker.activity.as_str().to_owned(),
            task: worker.task.map(|task| task.to_string()),
            tools: worker
                .tools
                .iter()
                .map(|tool| ToolView {
                    name: tool.name.clone(),
                    version: tool.version.clone(),
                })
                .collect(),
        }
    }
}

impl From<&Unserved> for UnservedView {
    fn from(unserved: &Unserved) -> Self {
        UnservedView {
            gpus: GpuRequirementView::of(&unserved.gpus),
            kind: unserved.kind.clone(),
            queue: unserved.queue.clone(),
            tasks: unserved.tasks,
            tool: tool_for_kind(&unserved.kind).map(str::to_owned),
        }
    }
}

/// A job as `buildcat jobs --json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobView {
    /// When it was submitted (RFC 3339), to tell old jobs from new.
    pub created: String,
    /// Its stable id (a UUID), for programs.
    pub id: String,
    /// Its name for people (`shot.blend 1-240`).
    pub name: String,
    /// Its farm-wide number, as people name it (`buildcat status 42`).
    pub number: u64,
    /// Its priority now (higher runs first in its queue).
    pub priority: i32,
    /// Its queue.
    pub queue: String,
    /// Derived from its tasks: queued, running, paused, finished, failed, canceled.
    pub state: String,
    /// Who submitted it, `user@host`, to find one's own jobs.
    pub submitter: String,
    /// Its tasks by state, for a bar of tasks done.
    pub tasks: TaskCountsView,
}

/// A job's tasks counted by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TaskCountsView {
    /// Canceled tasks.
    pub canceled: u64,
    /// Tasks waiting for the jobs or tasks they run after (counted in `total` too, so the
    /// counts add up).
    pub deferred: u64,
    /// Failed tasks, which `requeue` puts back.
    pub failed: u64,
    /// Finished tasks: the work done.
    pub finished: u64,
    /// Queued tasks held by a pause of the job or its queue.
    pub paused: u64,
    /// Tasks waiting for a worker.
    pub queued: u64,
    /// Tasks running now.
    pub started: u64,
    /// Tasks in all.
    pub total: u64,
}

/// A job with its tasks, as `buildcat status JOB --json` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobStatusView {
    /// When it was submitted (RFC 3339).
    pub created: String,
    /// When its last task ended (RFC 3339), `null` while any has not: retention counts
    /// from here.
    pub ended: Option<String>,
    /// What each of its tasks needs of a GPU (`--gpus`, `--gpu-memory`, `--gpu`); absent
    /// when nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpus: Option<GpuRequirementView>,
    /// Its stable id (a UUID), for programs.
    pub id: String,
    /// Its tasks' kind (`buildcat.blender.render`), which says what tool runs it.
    pub kind: String,
    /// Its name for people.
    pub name: String,
    /// Its farm-wide number.
    pub number: u64,
    /// Its priority now.
    pub priority: i32,
    /// Its queue.
    pub queue: String,
    /// What it runs, in words (the scene and frames, the command line).
    pub runs: String,
    /// Derived from its tasks.
    pub state: String,
    /// Who submitted it, `user@host`.
    pub submitter: String,
    /// Its tasks in index order.
    pub tasks: Vec<TaskView>,
}

/// One task of a job, as `buildcat status JOB --json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskView {
    /// How many attempts it has had, to spot retries.
    pub attempts: u32,
    /// When it ended (RFC 3339), `null` while it has not.
    pub ended: Option<String>,
    /// The frames it renders (`1-10`), `null` for tasks that are not renders.
    pub frames: Option<String>,
    /// Its index in the job: the `3` of `42.3`.
    pub index: u32,
    /// Why it failed or was canceled, `null` otherwise.
    pub reason: Option<String>,
    /// When its latest attempt started (RFC 3339), `null` before the first.
    pub started: Option<String>,
    /// queued, started, finished, failed, canceled, deferred or paused.
    pub state: String,
    /// The worker of its latest attempt, `null` before the first.
    pub worker: Option<String>,
}

impl From<&JobSummary> for JobView {
    fn from(job: &JobSummary) -> Self {
        JobView {
            created: rfc3339(job.created_at),
            id: job.id.to_string(),
            name: job.name.clone(),
            number: job.number,
            priority: job.options.priority,
            queue: job.queue.clone(),
            state: job.state.as_str().to_owned(),
            submitter: job.submitter.clone(),
            tasks: TaskCountsView::from(&job.tasks),
        }
    }
}

impl From<&TaskCounts> for TaskCountsView {
    fn from(counts: &TaskCounts) -> Self {
        TaskCountsView {
            canceled: counts.canceled,
            deferred: counts.deferred,
            failed: counts.failed,
            finished: counts.finished,
            paused: counts.paused,
            queued: counts.queued,
            started: counts.started,
            total: counts.total,
        }
    }
}

impl From<&JobStatus> for JobStatusView {
    fn from(status: &JobStatus) -> Self {
        let job = &status.job;
        JobStatusView {
            created: rfc3339(job.created_at),
            ended: job.ended_at.map(rfc3339),
            gpus: GpuRequirementView::of(&job.options.gpus),
            id: job.id.to_string(),
            kind: job.kind.clone(),
            name: job.name.clone(),
            number: job.number,
            priority: job.options.priority,
            queue: job.queue.clone(),
            runs: job.runs.clone(),
            state: job.state.as_str().to_owned(),
            submitter: job.submitter.clone(),
            tasks: status.tasks.iter().map(TaskView::from).collect(),
        }
    }
}

impl From<&TaskSummary> for TaskView {
    fn from(task: &TaskSummary) -> Self {
        TaskView {
            attempts: task.attempts,
            ended: task.ended_at.map(rfc3339),
            frames: task.frames.clone(),
            index: task.index,
            reason: task.reason.clone(),
            started: task.started_at.map(rfc3339),
            state: task.state.as_str().to_owned(),
            worker: task.worker.clone(),
        }
    }
}

/// What a cancel, requeue, pause, resume, priority or delete did to one job or task it
/// named: `buildcat cancel --json` and its siblings print `{"jobs": [...]}` of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeView {
    /// Why nothing was done (an unknown job, a job in the wrong state); absent when done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The job's id; absent when nothing was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The job's number; absent when nothing was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<u64>,
    /// The job's state after the change; absent when nothing was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The job or task as the command named it (`42`, `42.3`, an id).
    pub target: String,
    /// How many of its tasks changed (0: there was nothing to do); absent when nothing
    /// was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<u32>,
}

impl From<&Change> for ChangeView {
    fn from(change: &Change) -> Self {
        let target = change.target.to_string();
        match &change.result {
            Ok(changed) => ChangeView {
                error: None,
                job: Some(changed.job.to_string()),
                number: Some(changed.number),
                state: Some(changed.state.as_str().to_owned()),
                target,
                tasks: Some(changed.tasks),
            },
            Err(error) => ChangeView {
                error: Some(error.to_string()),
                job: None,
                number: None,
                state: None,
                target,
                tasks: None,
            },
        }
    }
}

/// One task with its attempts and result, as `buildcat status JOB.TASK --json` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskStatusView {
    /// Its attempts, oldest first, to see where and why it ran more than once.
    pub attempts: Vec<AttemptView>,
    /// When it ended (RFC 3339), `null` while it has not.
    pub ended: Option<String>,
    /// The tool's exit code when it failed with one, to tell a crash from an error.
    pub exit_code: Option<i32>,
    /// The frames it renders, `null` for tasks that are not renders.
    pub frames: Option<String>,
    /// Its index in the job.
    pub index: u32,
    /// Its job's id (a UUID), for programs.
    pub job: String,
    /// Its kind, which says what tool runs it.
    pub kind: String,
    /// How many attempts it may have, to see how many are left.
    pub max_attempts: u32,
    /// Its job's number.
    pub number: u64,
    /// What went wrong with a GPU when it failed on one (a CUDA out-of-memory or device-lost
    /// line, a GPU NVML reports lost), e.g. `GPU 0 (NVIDIA H200): CUDA out of memory`;
    /// `null` otherwise. Such a failure may be the worker's, not the job's: it counts toward
    /// the worker's quarantine.
    pub gpu_fault: Option<String>,
    /// The last lines of the tool's output when it failed, to see why without the log.
    pub output_tail: Option<Vec<String>>,
    /// How far its latest attempt got, `null` before it reported any.
    pub progress: Option<ProgressView>,
    /// Why it failed, `null` otherwise.
    pub reason: Option<String>,
    /// What it produced: decoded where the kind is known, else `{"bytes": N}`; `null`
    /// before it finished.
    pub result: Option<ResultView>,
    /// When its latest attempt started (RFC 3339), `null` before the first.
    pub started: Option<String>,
    /// Its state.
    pub state: String,
    /// As people name it (`42.3`).
    pub task: String,
    /// The worker of its latest attempt, `null` before the first.
    pub worker: Option<String>,
}

/// One attempt at a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptView {
    /// When it ended (RFC 3339), `null` while it runs.
    pub ended: Option<String>,
    /// What went wrong with a GPU when it failed on one, `null` otherwise (see
    /// [`TaskStatusView::gpu_fault`]): to see which worker's GPUs fault.
    pub gpu_fault: Option<String>,
    /// Its number, from 1.
    pub number: u32,
    /// How it ended in a word (`running` while it runs), to count losses and failures.
    pub outcome: String,
    /// Why it failed, `null` unless it did.
    pub reason: Option<String>,
    /// When it started (RFC 3339).
    pub started: String,
    /// The worker that ran it.
    pub worker: String,
}

/// How far a task got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgressView {
    /// Frames (or steps) done.
    pub done: u32,
    /// How far the frame being rendered is, 0 to 100, where the tool says; `null` when it
    /// says nothing (and between frames), so a long frame is seen to move.
    pub frame_percent: Option<u8>,
    /// The files it wrote so far, to find its frames.
    pub outputs: Vec<String>,
    /// Frames (or steps) in all.
    pub total: u32,
}

impl From<&TaskProgress> for ProgressView {
    fn from(progress: &TaskProgress) -> Self {
        ProgressView {
            done: progress.done,
            frame_percent: progress.frame_percent,
            outputs: progress.outputs.clone(),
            total: progress.total,
        }
    }
}

/// A task's result, decoded where its kind is known.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ResultView {
    /// `buildcat.worker.info`.
    WorkerInfo(WorkerInfoReport),
    /// `buildcat.command.run`.
    Command(CommandResult),
    /// A tool's `*.info` task.
    ToolInfo(ToolInfoReport),
    /// A render.
    Render(RenderReport),
    /// A kind the views do not know: only its size.
    Opaque {
        /// The encoded result's size.
        bytes: usize,
    },
}

impl ResultView {
    /// Decodes `bytes` as the result of a task of `kind`.
    fn decode(kind: &str, bytes: &[u8]) -> ResultView {
        let decoded = match kind {
            WorkerInfo::KIND => codec::decode_value::<<WorkerInfo as Task>::Output>(bytes)
                .ok()
                .map(ResultView::WorkerInfo),
            RunCommand::KIND | RunCommandIn::KIND => codec::decode_value::<CommandResult>(bytes)
                .ok()
                .map(ResultView::Command),
            kind if kind.starts_with("buildcat.") && kind.ends_with(".info") => {
                codec::decode_value::<ToolInfoReport>(bytes)
                    .ok()
                    .map(ResultView::ToolInfo)
            }
            kind if tool_for_kind(kind).is_some() => codec::decode_value::<RenderReport>(bytes)
                .ok()
                .map(ResultView::Render),
            _ => None,
        };
        decoded.unwrap_or(ResultView::Opaque { bytes: bytes.len() })
    }
}

/// How an attempt ended, in a word, and the failure's reason when it failed.
fn outcome_words(outcome: Option<&AttemptOutcome>) -> (&'static str, Option<String>) {
    match outcome {
        None => ("running", None),
        Some(AttemptOutcome::Finished) => ("finished", None),
        Some(AttemptOutcome::Failed(failure)) => ("failed", Some(failure.to_string())),
        Some(AttemptOutcome::WorkerLost) => ("worker lost", None),
        Some(AttemptOutcome::Canceled) => ("canceled", None),
        Some(AttemptOutcome::Interrupted) => ("interrupted", None),
    }
}

impl From<&TaskStatus> for TaskStatusView {
    fn from(task: &TaskStatus) -> Self {
        TaskStatusView {
            attempts: task
                .attempts
                .iter()
                .map(|attempt| {
                    let (outcome, reason) = outcome_words(attempt.outcome.as_ref());
                    AttemptView {
                        ended: attempt.ended_at.map(rfc3339),
                        gpu_fault: match &attempt.outcome {
                            Some(AttemptOutcome::Failed(failure)) => failure.gpu_fault.clone(),
                            _ => None,
                        },
                        number: attempt.number,
                        outcome: outcome.to_owned(),
                        reason,
                        started: rfc3339(attempt.started_at),
                        worker: attempt.worker.clone(),
                    }
                })
                .collect(),
            ended: task.ended_at.map(rfc3339),
            exit_code: task.failure.as_ref().and_then(|f| f.exit_code),
            frames: task.frames.clone(),
            index: task.id.index,
            job: task.id.job.to_string(),
            kind: task.kind.clone(),
            max_attempts: task.max_attempts,
            number: task.number,
            gpu_fault: task.failure.as_ref().and_then(|f| f.gpu_fault.clone()),
            output_tail: task.failure.as_ref().map(|f| f.output_tail.clone()),
            progress: task.progress.as_ref().map(ProgressView::from),
            reason: task.failure.as_ref().map(|f| f.reason.clone()),
            result: task
                .result
                .as_ref()
                .map(|bytes| ResultView::decode(&task.kind, bytes)),
            started: task.started_at().map(rfc3339),
            state: task.state.as_str().to_owned(),
            task: task.label(),
            worker: task.worker().map(str::to_owned),
        }
    }
}

/// One page of a task's output, as the HTTP API serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogPageView {
    /// What the server dropped just before `lines` to keep the job within its bound,
    /// `null` when nothing was.
    pub dropped: Option<DroppedView>,
    /// The lines, without line endings.
    pub lines: Vec<String>,
    /// Whether more output is stored after `next`: ask again from there.
    pub more: bool,
    /// Where the next page starts: the `from` to ask for.
    pub next: u64,
    /// Where the first line starts, in bytes of the output as printed.
    pub offset: u64,
    /// Which of `lines` the program wrote to stderr (indexes into `lines`, ascending); the
    /// others are stdout, so a page can show them apart.
    pub stderr: Vec<u32>,
}

/// Output dropped from the middle of a long log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DroppedView {
    /// Bytes dropped, each line counted with its newline.
    pub bytes: u64,
    /// Lines dropped.
    pub lines: u64,
}

impl From<&LogPage> for LogPageView {
    fn from(page: &LogPage) -> Self {
        LogPageView {
            dropped: page.dropped.as_ref().map(|d: &DroppedOutput| DroppedView {
                bytes: d.bytes,
                lines: d.lines,
            }),
            lines: page.lines.clone(),
            more: page.more,
            next: page.next,
            offset: page.offset,
            stderr: page.stderr.clone(),
        }
    }
}

/// A frame preview a job's page shows: `GET /api/v1/jobs/{job}/previews` lists them,
/// newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreviewView {
    /// When the server received it, to show how fresh the picture is.
    pub at: String,
    /// The image's size in bytes.
    pub bytes: u32,
    /// `jpeg` or `png`: the content type the image is served with.
    pub format: String,
    /// The frame number, for the caption.
    pub frame: i64,
    /// Height in pixels, so the page can lay it out before it loads.
    pub height: u32,
    /// The task that saved the frame, as people name it (`42.3`).
    pub task: String,
    /// Width in pixels.
    pub width: u32,
}

impl PreviewView {
    /// The view of `preview`, a preview of job number `number`.
    pub fn new(number: u64, preview: &PreviewInfo) -> Self {
        PreviewView {
            at: rfc3339(preview.at),
            bytes: preview.bytes,
            format: preview.format.as_str().to_owned(),
            frame: preview.frame,
            height: preview.height,
            task: format!("{number}.{}", preview.task.index),
            width: preview.width,
        }
    }

    /// The views of a job's previews, newest first.
    pub fn list(previews: &JobPreviews) -> Vec<PreviewView> {
        previews
            .previews
            .iter()
            .map(|preview| PreviewView::new(previews.number, preview))
            .collect()
    }
}

/// A time as the views write it: RFC 3339 in UTC with milliseconds,
/// `2026-11-28T14:38:04.123Z`.
pub fn rfc3339(at: Timestamp) -> String {
    const MILLIS_PER_DAY: u64 = 86_400_000;
    let millis = at.0 % 1000;
    let days = i64::try_from(at.0 / MILLIS_PER_DAY).unwrap_or(i64::MAX);
    let secs = (at.0 % MILLIS_PER_DAY) / 1000;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(Timestamp(951_782_400_000)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339(Timestamp(1_795_876_684_123)),
            "2026-11-28T14:38:04.123Z"
        );
    }

    /// The frame's percentage is named `frame_percent`, `null` where the tool says nothing,
    /// so scripts find the key whatever the tool.
    #[test]
    fn progress_shows_the_frame_percent() {
        let progress = |frame_percent| TaskProgress {
            done: 3,
            total: 10,
            outputs: vec!["render/a.0003.exr".to_owned()],
            frame_percent,
        };
        let json = |progress: &TaskProgress| {
            serde_json::to_string(&ProgressView::from(progress)).unwrap_or_default()
        };
        assert_eq!(
            json(&progress(Some(45))),
            r#"{"done":3,"frame_percent":45,"outputs":["render/a.0003.exr"],"total":10}"#
        );
        assert_eq!(
            json(&progress(None)),
            r#"{"done":3,"frame_percent":null,"outputs":["render/a.0003.exr"],"total":10}"#
        );
    }
}
