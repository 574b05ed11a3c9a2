//! The render commands: submit many jobs with a progress bar, and follow them to the end.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, bail};
use buildcat_client::Client;
use buildcat_proto::dcc::{
    BlenderRender, HoudiniRenderHip, HoudiniRenderIfd, ModoRender, RedshiftRender,
};
use buildcat_proto::frames::FrameSpec;
use buildcat_proto::{JobEvent, JobId, JobState, NewJob, Task, codec, paths};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

use crate::args::{
    BlenderRenderArgs, Connection, HoudiniHipArgs, HoudiniIfdArgs, ModoRenderArgs,
    RedshiftRenderArgs, RenderOptions,
};
use crate::jobs::{job_options, print_submitted};

/// Jobs per submit request when submitting many.
const BATCH: usize = 500;

/// Refuses a path that is absolute or climbs out of the root, before anything is sent.
fn check_path(what: &str, path: &str) -> anyhow::Result<()> {
    paths::check_relative(path).with_context(|| format!("the {what} cannot be used"))
}

/// A bar on stderr when it is a terminal, hidden otherwise.
fn bar(len: u64, message: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len).with_message(message);
    let style =
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} [{elapsed_precise}] {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// A task and how many frames it renders (for the progress bar of `--wait`).
struct Planned {
    /// The encoded job.
    job: NewJob,
    /// Frames in it.
    frames: u64,
}

fn plan<T: Task>(render: &RenderOptions, task: &T, frames: u64) -> anyhow::Result<Planned> {
    let options = job_options(&render.submit())?;
    let args = codec::encode_value(task).context("could not encode the job")?;
    Ok(Planned {
        job: NewJob {
            queue: render.queue.clone(),
            kind: T::KIND.to_owned(),
            args,
            options,
        },
        frames,
    })
}

/// Submits the planned jobs in batches (with a bar when there are many), prints their ids,
/// and with `--wait` follows them to the end.
async fn submit_all(
    connection: &Connection,
    render: &RenderOptions,
    planned: Vec<Planned>,
) -> anyhow::Result<ExitCode> {
    if render.queue.trim().is_empty() {
        bail!("--queue is empty; name a queue such as `default`");
    }
    let client = connection.connect().await?;
    let total = planned.len();
    let submitting = if total > BATCH {
        bar(total as u64, "submitting")
    } else {
        ProgressBar::hidden()
    };
    let mut ids: Vec<JobId> = Vec::with_capacity(total);
    let mut frames: HashMap<JobId, u64> = HashMap::with_capacity(total);
    let mut planned = planned.into_iter().peekable();
    while planned.peek().is_some() {
        let chunk: Vec<Planned> = planned.by_ref().take(BATCH).collect();
        let counts: Vec<u64> = chunk.iter().map(|p| p.frames).collect();
        let jobs: Vec<NewJob> = chunk.into_iter().map(|p| p.job).collect();
        let submitted = client.submit_jobs(jobs).await?;
        for (id, count) in submitted.iter().zip(counts) {
            frames.insert(*id, count);
        }
        submitting.inc(submitted.len() as u64);
        ids.extend(submitted);
    }
    submitting.finish_and_clear();
    print_submitted(&ids, render.json);
    if !render.json {
        eprintln!("submitted {} job(s) to queue `{}`", ids.len(), render.queue);
    }
    if !render.wait {
        return Ok(ExitCode::SUCCESS);
    }
    follow(&client, ids, &frames).await
}

/// Follows jobs to their end with a bar of frames done; non-zero exit if any failed.
async fn follow(
    client: &Client,
    ids: Vec<JobId>,
    frames: &HashMap<JobId, u64>,
) -> anyhow::Result<ExitCode> {
    let total_frames: u64 = frames.values().sum();
    let progress = bar(total_frames, "rendering");
    let mut done_per_job: HashMap<JobId, u64> = HashMap::new();
    let mut failed: Vec<String> = Vec::new();
    let mut ended: HashSet<JobId> = HashSet::new();
    let mut handle = |event: JobEvent, ended: &mut HashSet<JobId>| {
        match event {
            JobEvent::Progress { job, progress: p } => {
                done_per_job.insert(job, u64::from(p.done));
            }
            JobEvent::Ended(status) => {
                if !ended.insert(status.id) {
                    return;
                }
                let all = frames.get(&status.id).copied().unwrap_or(0);
                if status.state == JobState::Finished {
                    done_per_job.insert(status.id, all);
                } else {
                    let reason = status
                        .failure
                        .as_ref()
                        .map_or_else(|| status.state.to_string(), ToString::to_string);
                    failed.push(format!("job {} {}: {reason}", status.id, status.state));
                }
            }
            JobEvent::Log { .. } => {}
        }
        progress.set_position(done_per_job.values().sum());
    };
    // Watch the jobs that have not ended; after a lost connection, watch those again on a
    // new one (the server sends the end of any that ended meanwhile).
    loop {
        let remaining: Vec<JobId> = ids
            .iter()
            .filter(|id| !ended.contains(id))
            .copied()
            .collect();
        if remaining.is_empty() {
            break;
        }
        let (events, mut received) = mpsc::channel(crate::watch::EVENT_CAPACITY);
        let watch = client.watch(remaining, events);
        tokio::pin!(watch);
        let result = loop {
            tokio::select! {
                event = received.recv() => match event {
                    Some(event) => handle(event, &mut ended),
                    None => break watch.await,
                },
                result = &mut watch => break result,
            }
        };
        while let Ok(event) = received.try_recv() {
            handle(event, &mut ended);
        }
        match result {
            Ok(()) => break,
            Err(error) => {
                let say = |text: &str| progress.suspend(|| eprintln!("{text}"));
                crate::watch::recover(client, error, &say).await?;
            }
        }
    }
    progress.finish_and_clear();
    let done: u64 = done_per_job.values().sum();
    eprintln!(
        "{} of {} job(s) finished, {done} of {total_frames} frame(s) rendered",
        ids.len() - failed.len(),
        ids.len()
    );
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for line in &failed {
        eprintln!("error: {line}");
    }
    Ok(ExitCode::FAILURE)
}

/// `buildcat houdini-render-hip`: one job for all frames.
pub async fn houdini_hip(args: HoudiniHipArgs) -> anyhow::Result<ExitCode> {
    check_path(".hip file", &args.hip)?;
    let spec: FrameSpec = args.frames.parse()?;
    if args.rop.trim().is_empty() {
        bail!("--rop is empty; give the ROP's node path, e.g. /out/mantra_ipr");
    }
    let count = spec.frames().len() as u64;
    let task = HoudiniRenderHip {
        hip: args.hip.clone(),
        frames: spec.ranges,
        rop: args.rop.clone(),
    };
    let planned = vec![plan(&args.render, &task, count)?];
    submit_all(&args.connection, &args.render, planned).await
}

/// `buildcat houdini-render-ifd`: one job per file.
pub async fn houdini_ifd(args: HoudiniIfdArgs) -> anyhow::Result<ExitCode> {
    for ifd in &args.ifds {
        check_path(".ifd file", ifd)?;
    }
    let planned = args
        .ifds
        .iter()
        .map(|ifd| plan(&args.render, &HoudiniRenderIfd { ifd: ifd.clone() }, 1))
        .collect::<anyhow::Result<Vec<_>>>()?;
    submit_all(&args.connection, &args.render, planned).await
}

/// `buildcat modo-render`: one job per frame.
pub async fn modo(args: ModoRenderArgs) -> anyhow::Result<ExitCode> {
    check_path(".lxo scene", &args.lxo)?;
    if args.step < 1 {
        bail!("--step must be 1 or more");
    }
    if args.stop <= args.start {
        bail!(
            "--stop ({}) must be greater than --start ({}); frames run from start up to but not including stop",
            args.stop,
            args.start
        );
    }
    let step = usize::try_from(args.step).unwrap_or(usize::MAX);
    let planned = (args.start..args.stop)
        .step_by(step)
        .map(|frame| {
            let task = ModoRender {
                lxo: args.lxo.clone(),
                start: frame,
                stop: frame + 1,
                step: 1,
            };
            plan(&args.render, &task, 1)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    submit_all(&args.connection, &args.render, planned).await
}

/// `buildcat redshift-render`: one job.
pub async fn redshift(args: RedshiftRenderArgs) -> anyhow::Result<ExitCode> {
    check_path(".rs archive", &args.rs)?;
    let task = RedshiftRender {
        rs: args.rs.clone(),
    };
    let planned = vec![plan(&args.render, &task, 1)?];
    submit_all(&args.connection, &args.render, planned).await
}

/// `buildcat blender-render`: one job per chunk of frames.
pub async fn blender(args: BlenderRenderArgs) -> anyhow::Result<ExitCode> {
    check_path(".blend file", &args.blend)?;
    if let Some(output) = &args.output {
        check_path("output pattern", output)?;
    }
    if args.chunk == 0 {
        bail!("--chunk must be at least 1 frame per job");
    }
    let spec: FrameSpec = args.frames.parse()?;
    let frames = spec.frames();
    let planned = frames
        .chunks(args.chunk)
        .map(|chunk| {
            let task = BlenderRender {
                blend: args.blend.clone(),
                frames: chunk.to_vec(),
                output: args.output.clone(),
                format: args.format.clone(),
                engine: args.engine.clone(),
            };
            plan(&args.render, &task, chunk.len() as u64)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    submit_all(&args.connection, &args.render, planned).await
}
