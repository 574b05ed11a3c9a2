//! Queues nobody serves: after a submission the CLI asks the server's `info` and says at
//! once when no connected worker serves the queue (or none serving it can run the kind),
//! and commands that wait for a job they submitted give up after a short wait with that
//! reason, canceling what they queued, instead of waiting forever.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use buildcat_client::Client;
use buildcat_proto::dcc::tool_for_kind;
use buildcat_proto::{FarmInfo, GpuRequirement, JobId, JobRef, TaskRef, WorkerSummary};

/// How long a command that waits for its own job gives a worker to appear (one starting,
/// reconnecting after a blip) before it decides that none can run the job.
pub const GRACE: Duration = Duration::from_secs(10);

/// Why no connected worker can run a task of `kind` needing `gpus` queued in `queue`, if
/// none can: no worker at all, none serving the queue (naming the queues workers do
/// serve), none serving it with the tool, or none with the GPUs. `kind` is `None` before
/// submitting, when only the queue can be checked. Tasks of other jobs that need other
/// GPUs are not this one's reason.
pub fn reason(
    info: &FarmInfo,
    queue: &str,
    kind: Option<&str>,
    gpus: &GpuRequirement,
) -> Option<String> {
    if info.truncated {
        // A partial picture: better no warning than a wrong one.
        return None;
    }
    if info.workers.is_empty() {
        return Some(format!(
            "no worker is connected to the server, so nothing serves queue `{queue}` (start one with `buildcat worker {queue}`)"
        ));
    }
    let serving = info
        .workers
        .iter()
        .any(|worker| worker.queues.iter().any(|q| q == queue));
    if !serving {
        let served: BTreeSet<&str> = info
            .workers
            .iter()
            .flat_map(|worker| worker.queues.iter().map(String::as_str))
            .collect();
        return Some(format!(
            "no worker serves queue `{queue}`; workers serve: {}",
            served.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let kind = kind?;
    let mut stuck = info
        .unserved
        .iter()
        .filter(|unserved| unserved.queue == queue && unserved.kind == kind)
        .filter(|unserved| unserved.gpus.is_none() || unserved.gpus == *gpus);
    let first = stuck.next()?;
    // No worker with the kind is the reason before any GPU: the server lists it with no
    // GPU requirement.
    let missing_kind = first.gpus.is_none() || stuck.any(|unserved| unserved.gpus.is_none());
    if !missing_kind {
        return Some(gpu_reason(gpus, queue));
    }
    Some(match tool_for_kind(kind) {
        Some(tool) => format!(
            "no worker with {tool} serves queue `{queue}` (workers register a render kind only when they find its tool)"
        ),
        None => format!("no worker serving queue `{queue}` runs tasks of kind {kind}"),
    })
}

/// Why a task of `kind` needing `gpus` in `queue` waits although workers could run it:
/// every connected worker that could (serves the queue, has the kind's tool and the GPUs)
/// is quarantined or paused by a person. Names each with the way out: `worker-enable`
/// (and when the quarantine ends by itself) or `worker-resume`. `None` when one of them
/// can take work, or when none could run it at all ([`reason`] says why then).
pub fn held(info: &FarmInfo, queue: &str, kind: &str, gpus: &GpuRequirement) -> Option<String> {
    if info.truncated {
        return None;
    }
    let tool = tool_for_kind(kind);
    let able: Vec<&WorkerSummary> = info
        .workers
        .iter()
        .filter(|worker| worker.queues.iter().any(|q| q == queue))
        .filter(|worker| tool.is_none_or(|tool| worker.tools.iter().any(|t| t.name == tool)))
        .filter(|worker| gpus.is_met_by(&worker.gpus))
        .collect();
    if able.is_empty()
        || able
            .iter()
            .any(|worker| worker.quarantine.is_none() && !worker.paused)
    {
        return None;
    }
    // A worker of several slots connects once per slot: name it once.
    let mut said = BTreeSet::new();
    let why: Vec<String> = able
        .iter()
        .filter(|worker| said.insert(worker.name.as_str()))
        .map(|worker| match &worker.quarantine {
            Some(quarantine) => format!(
                "{name} is quarantined ({quarantine}); `buildcat worker-enable {name}` lets it take work now",
                name = worker.name
            ),
            None => format!(
                "{name} is paused; `buildcat worker-resume {name}` lets it take work",
                name = worker.name
            ),
        })
        .collect();
    Some(format!(
        "no worker serving queue `{queue}` takes work now: {}",
        why.join("; ")
    ))
}

/// Why nothing runs a task of `kind` needing `gpus` in `queue` now, if nothing does: no
/// worker can ([`reason`]) or every one that can is held ([`held`]).
pub fn waits(
    info: &FarmInfo,
    queue: &str,
    kind: Option<&str>,
    gpus: &GpuRequirement,
) -> Option<String> {
    reason(info, queue, kind, gpus).or_else(|| held(info, queue, kind?, gpus))
}

/// A warning when no job the server holds and no connected worker uses `queue` (likely a
/// mistyped name), naming the queues that are in use; `None` for a known queue, or when
/// the picture is partial.
pub fn unknown_queue(info: &FarmInfo, queue: &str) -> Option<String> {
    if info.truncated {
        return None;
    }
    let known: BTreeSet<&str> = info
        .queues
        .iter()
        .map(|summary| summary.name.as_str())
        .chain(
            info.workers
                .iter()
                .flat_map(|worker| worker.queues.iter().map(String::as_str)),
        )
        .collect();
    if known.contains(queue) {
        return None;
    }
    let listed = if known.is_empty() {
        "none yet".to_owned()
    } else {
        known.into_iter().collect::<Vec<_>>().join(", ")
    };
    Some(format!(
        "no job or worker uses queue `{queue}` (is it mistyped?); queues in use: {listed}"
    ))
}

/// Says on stderr when `queue` is one nothing uses (see [`unknown_queue`]). Asking is a
/// courtesy: a failure to ask says nothing.
pub async fn warn_unknown_queue(client: &Client, queue: &str) {
    if let Ok(info) = client.info().await
        && let Some(warning) = unknown_queue(&info, queue)
    {
        eprintln!("warning: {warning}");
    }
}

/// Why tasks that need `gpus` wait in `queue` when workers serve it but none has them.
pub fn gpu_reason(gpus: &GpuRequirement, queue: &str) -> String {
    format!(
        "no worker with {gpus} serves queue `{queue}` (a worker slot owns the GPUs `worker --gpus`/`--gpus-per-slot` give it; `info` lists each worker's)"
    )
}

/// Says on stderr (once, at once) when nothing can run what was just put in `queue`
/// (needing `gpus`) now: no worker can, or every one that can is quarantined or paused.
/// Returns what it said, so that a command that waits does not say it again. Asking is a
/// courtesy: a failure to ask says nothing.
pub async fn warn(
    client: &Client,
    queue: &str,
    kind: Option<&str>,
    gpus: &GpuRequirement,
) -> Option<String> {
    let info = client.info().await.ok()?;
    let reason = waits(&info, queue, kind, gpus)?;
    eprintln!("warning: {reason}");
    Some(reason)
}

/// How often a command waiting for a queued job asks again whether a worker takes work:
/// often enough that a quarantine's end or a resume is told within seconds, seldom
/// enough to cost the server nothing (two small requests).
const HELD_POLL: Duration = Duration::from_secs(3);

/// While job `job` (number `number`, of `kind` in `queue`) sits queued, says through `say`
/// why no worker takes it whenever that changes from `already` (what was said at submit,
/// see [`waits`]), and that one can once one can.
/// Never resolves (hence [`Infallible`]); the caller drops it when the job starts or ends.
pub async fn tell_while_held(
    client: &Client,
    job: JobId,
    number: u64,
    queue: &str,
    kind: &str,
    already: Option<String>,
    say: impl Fn(&str),
) -> Infallible {
    let mut last = already.filter(|said| !said.is_empty());
    loop {
        tokio::time::sleep(HELD_POLL).await;
        let Ok(status) = client.job(JobRef::Id(job)).await else {
            continue;
        };
        if status.job.state.is_terminal() || status.tasks.iter().any(|t| t.started_at.is_some()) {
            return std::future::pending().await;
        }
        let Ok(info) = client.info().await else {
            continue;
        };
        let now = waits(&info, queue, Some(kind), &status.job.options.gpus);
        if now == last {
            continue;
        }
        match &now {
            Some(reason) => say(&format!("warning: job {number} waits: {reason}")),
            None if last.is_some() => {
                say(&format!("job {number}: a worker can take it now"));
            }
            None => {}
        }
        last = now;
    }
}

/// After [`GRACE`], the reason no worker can run job `job` (of `kind` in `queue`) while
/// none can still; `None` when some worker can (or the job has left the queue).
pub async fn still_unserved(
    client: &Client,
    job: JobId,
    queue: &str,
    kind: &str,
) -> Option<String> {
    let status = client.job(JobRef::Id(job)).await.ok()?;
    if status.job.state.is_terminal() || status.tasks.iter().any(|t| t.started_at.is_some()) {
        return None;
    }
    let info = client.info().await.ok()?;
    reason(&info, queue, Some(kind), &status.job.options.gpus)
}

/// Cancels `job` because nothing can run it, and says why; the caller fails with `reason`.
pub async fn give_up(client: &Client, job: JobId, number: u64, reason: &str) -> anyhow::Error {
    let canceled = client
        .cancel(vec![TaskRef::from(JobRef::Id(job))])
        .await
        .is_ok();
    anyhow::anyhow!(
        "{reason}; job {number} {} (submit it again once a worker serves the queue)",
        if canceled {
            "was canceled"
        } else {
            "could not be canceled: cancel it with `buildcat cancel`"
        }
    )
}

#[cfg(test)]
mod tests {
    use buildcat_proto::{Timestamp, Unserved, WorkerActivity};

    use super::*;

    fn worker(queues: &[&str]) -> WorkerSummary {
        WorkerSummary {
            name: "w".to_owned(),
            host: "h".to_owned(),
            root: "/farm".to_owned(),
            queues: queues.iter().map(|q| (*q).to_owned()).collect(),
            activity: WorkerActivity::Idle,
            task: None,
            connected_at: Timestamp::now(),
            quarantine: None,
            tools: Vec::new(),
            gpus: Vec::new(),
            paused: false,
        }
    }

    #[test]
    fn an_unserved_queue_names_the_queues_that_are_served() {
        let mut info = FarmInfo::default();
        assert!(
            reason(&info, "rendr", None, &GpuRequirement::NONE)
                .is_some_and(|r| r.contains("no worker is connected"))
        );
        info.workers = vec![worker(&["gpu", "default"]), worker(&["default"])];
        assert_eq!(
            reason(&info, "rendr", None, &GpuRequirement::NONE).as_deref(),
            Some("no worker serves queue `rendr`; workers serve: default, gpu")
        );
        assert_eq!(reason(&info, "gpu", None, &GpuRequirement::NONE), None);
        assert_eq!(
            reason(
                &info,
                "gpu",
                Some("buildcat.blender.render"),
                &GpuRequirement::NONE
            ),
            None
        );
        info.unserved = vec![Unserved {
            queue: "gpu".to_owned(),
            kind: "buildcat.blender.render".to_owned(),
            tasks: 3,
            gpus: buildcat_proto::GpuRequirement::NONE,
        }];
        assert!(
            reason(
                &info,
                "gpu",
                Some("buildcat.blender.render"),
                &GpuRequirement::NONE
            )
            .is_some_and(|r| r.contains("no worker with blender serves queue `gpu`"))
        );
    }

    /// Tester finding 4: every worker that could run the job is quarantined or paused, so
    /// a submit says which and the way out of each.
    #[test]
    fn quarantined_and_paused_workers_hold_the_job() {
        let mut sick = worker(&["default"]);
        sick.name = "vm-1".to_owned();
        sick.quarantine = Some("failed 5 different jobs in a row".to_owned());
        let mut resting = worker(&["default"]);
        resting.name = "vm-2".to_owned();
        resting.paused = true;
        let elsewhere = worker(&["other"]);
        let mut info = FarmInfo {
            workers: vec![sick.clone(), resting.clone(), sick.clone(), elsewhere],
            ..FarmInfo::default()
        };
        let why = waits(
            &info,
            "default",
            Some("buildcat.run"),
            &GpuRequirement::NONE,
        )
        .unwrap_or_default();
        assert_eq!(
            why,
            "no worker serving queue `default` takes work now: vm-1 is quarantined (failed 5 \
             different jobs in a row); `buildcat worker-enable vm-1` lets it take work now; \
             vm-2 is paused; `buildcat worker-resume vm-2` lets it take work"
        );
        // Before submitting only the queue is known: a held worker still serves it.
        assert_eq!(waits(&info, "default", None, &GpuRequirement::NONE), None);
        // One able worker is enough.
        info.workers.push(worker(&["default"]));
        assert_eq!(
            held(&info, "default", "buildcat.run", &GpuRequirement::NONE),
            None
        );
        // A worker without the kind's tool could not run it anyway: it is no way out.
        info.workers = vec![sick, worker(&["default"])];
        info.workers[0].tools = vec![buildcat_proto::ToolVersion {
            name: "blender".to_owned(),
            version: "4.2".to_owned(),
        }];
        assert!(
            held(
                &info,
                "default",
                "buildcat.blender.render",
                &GpuRequirement::NONE
            )
            .is_some_and(|why| why.contains("vm-1 is quarantined") && !why.contains("`w`"))
        );
    }

    /// Tester finding 12: a queue nothing uses is named with the queues in use.
    #[test]
    fn a_queue_nothing_uses_is_said_with_the_known_ones() {
        let mut info = FarmInfo {
            workers: vec![worker(&["render", "default"])],
            ..FarmInfo::default()
        };
        info.queues = vec![buildcat_proto::QueueSummary {
            name: "comp".to_owned(),
            jobs: 1,
            tasks: buildcat_proto::TaskCounts::default(),
            paused: false,
        }];
        assert_eq!(
            unknown_queue(&info, "rendr").as_deref(),
            Some(
                "no job or worker uses queue `rendr` (is it mistyped?); queues in use: comp, default, render"
            )
        );
        for known in ["comp", "render", "default"] {
            assert_eq!(unknown_queue(&info, known), None);
        }
        assert!(unknown_queue(&FarmInfo::default(), "x").is_some_and(|w| w.ends_with("none yet")));
    }

    /// Issue 13: workers serve the queue with the kind, but none has the GPUs.
    #[test]
    fn gpus_no_worker_has_are_the_reason() {
        let mut info = FarmInfo {
            workers: vec![worker(&["render"])],
            ..FarmInfo::default()
        };
        info.unserved = vec![Unserved {
            queue: "render".to_owned(),
            kind: "buildcat.blender.render".to_owned(),
            tasks: 2,
            gpus: GpuRequirement {
                count: 2,
                memory_mib: 24 * 1024,
            },
        }];
        let need = GpuRequirement {
            count: 2,
            memory_mib: 24 * 1024,
        };
        let why =
            reason(&info, "render", Some("buildcat.blender.render"), &need).unwrap_or_default();
        assert!(
            why.starts_with("no worker with 2 GPUs of 24 GiB serves queue `render`"),
            "{why}"
        );
        // A job of the same kind needing no GPU (or other GPUs) is not told about that
        // one's: workers can run it.
        assert_eq!(
            reason(
                &info,
                "render",
                Some("buildcat.blender.render"),
                &GpuRequirement::NONE
            ),
            None
        );
        let one = GpuRequirement {
            count: 1,
            memory_mib: 0,
        };
        assert_eq!(
            reason(&info, "render", Some("buildcat.blender.render"), &one),
            None
        );
    }
}
