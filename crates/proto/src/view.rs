//! Serializable views: the JSON shapes front ends show people and scripts.
//!
//! The wire types ([`message`](crate::message)) are for the protocol and may change with
//! it; a view is what `buildcat info --json` prints (and the HTTP API will serve), so a
//! script reading it keeps working when the protocol changes. Each view is built from its
//! wire type with `From`, in one place, instead of by hand in every front end.
//!
//! Fields are declared in alphabetical order: the JSON shape was first written through a
//! sorted map, and end-to-end tests pin its bytes.

use serde::Serialize;

use crate::dcc::tool_for_kind;
use crate::message::{FarmInfo, QueueSummary, Unserved, WorkerSummary};
use crate::job::TaskState;

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
    /// The host it runs on, to find the machine.
    pub host: String,
    /// The id of the job whose task it runs, `null` when idle.
    pub job: Option<String>,
    /// Its name, unique on the farm, as jobs' attempts record it.
    pub name: String,
    /// Why it gets no work, while quarantined; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<String>,
    /// The queues it serves, highest priority first.
    pub queues: Vec<String>,
    /// Its root as that host sees it, where job paths resolve.
    pub root: String,
    /// `idle`, `busy` or `quarantined`.
    pub state: String,
    /// The task it runs as people name it (`42.3`), `null` when idle.
    pub task: Option<String>,
}

/// Queued tasks of one kind in one queue that no connected worker can run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnservedView {
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
            host: worker.host.clone(),
            job: worker.task.map(|task| task.id.job.to_string()),
            name: worker.name.clone(),
            quarantine: worker.quarantine.clone(),
            queues: worker.queues.clone(),
            root: worker.root.clone(),
            state: worker.activity.as_str().to_owned(),
            task: worker.task.map(|task| task.to_string()),
        }
    }
}

impl From<&Unserved> for UnservedView {
    fn from(unserved: &Unserved) -> Self {
        UnservedView {
            kind: unserved.kind.clone(),
            queue: unserved.queue.clone(),
            tasks: unserved.tasks,
            tool: tool_for_kind(&unserved.kind).map(str::to_owned),
        }
    }
}
