//! The render commands: each submits one job whose tasks are its chunks, files or frames,
//! and with `--wait` follows it to the end with a bar of tasks done.

use std::process::ExitCode;

use anyhow::{Context, bail};
use buildcat_proto::dcc::{
    BlenderRender, HoudiniRenderHip, HoudiniRenderIfd, ModoRender, RedshiftRender,
    check_blender_engine, check_blender_format, check_blender_frames, check_cycles_device,
};
use buildcat_proto::frames::FrameSpec;
use buildcat_proto::{JobRef, Task, paths};

use crate::args::{
    BlenderRenderArgs, Connection, HoudiniHipArgs, HoudiniIfdArgs, ModoRenderArgs,
    RedshiftRenderArgs, RenderOptions,
};
use crate::jobs::{command_line, file_name, job_options, print_submitted, resolve_after};

/// Refuses a path that is absolute or climbs out of the root, before anything is sent.
fn check_path(what: &str, path: &str) -> anyhow::Result<()> {
    paths::check_relative(path).with_context(|| format!("the {what} cannot be used"))
}

/// A render job before it is sent: its name, what it runs, and its tasks.
struct Planned<T> {
    /// The name derived from the scene and frames, unless `--name` says otherwise.
    name: String,
    /// The command that made it, as a person reads it.
    runs: String,
    /// Each task's frames (as a frame spec, for people) and what the worker gets.
    tasks: Vec<(Option<String>, T)>,
}

/// Submits the planned job, prints its number (or JSON), and with `--wait` follows it to
/// the end.
async fn submit_render<T: Task>(
    connection: &Connection,
    render: &RenderOptions,
    planned: Planned<T>,
) -> anyhow::Result<ExitCode> {
    if render.queue.trim().is_empty() {
        bail!("--queue is empty; name a queue such as `default`");
    }
    let submit = render.submit();
    let mut options = job_options(&submit)?;
    let client = connection.connect().await?;
    options.after = resolve_after(&client, &submit.after).await?;
    let mut job = client
        .new_job::<T>(&render.queue)
        .name(render.name.clone().unwrap_or(planned.name))
        .runs(planned.runs)
        .options(options);
    for (frames, task) in &planned.tasks {
        job = job.task(frames.as_deref(), task);
    }
    let handle = job.submit().await?;
    print_submitted(handle.submitted(), render.json);
    if !render.json {
        eprintln!(
            "submitted job {} of {} task(s) to queue `{}`",
            handle.number(),
            handle.tasks(),
            render.queue
        );
    }
    if !render.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let status = crate::watch::job_record(&client, JobRef::Id(handle.id())).await?;
    crate::watch::follow_jobs(&client, vec![status]).await
}

/// Frames as a spec a person reads: `1-10`, `1-9:2`, or a list of runs `1-3,7`.
fn frames_text(frames: &[i64]) -> String {
    if let [first, second, ..] = frames {
        let step = second - first;
        let evenly = step > 1 && frames.windows(2).all(|pair| pair[1] - pair[0] == step);
        if evenly {
            let last = frames[frames.len() - 1];
            return format!("{first}-{last}:{step}");
        }
    }
    let mut runs: Vec<String> = Vec::new();
    let mut rest = frames;
    while let [start, ..] = rest {
        let length = rest
            .iter()
            .zip(*start..)
            .take_while(|(frame, expected)| **frame == *expected)
            .count();
        runs.push(match length {
            1 => start.to_string(),
            _ => format!("{start}-{}", rest[length - 1]),
        });
        rest = &rest[length..];
    }
    runs.join(",")
}

/// `buildcat houdini-render-hip`: one job of one task for all frames.
pub async fn houdini_hip(args: HoudiniHipArgs) -> anyhow::Result<ExitCode> {
    check_path(".hip file", &args.hip)?;
    let spec: FrameSpec = args.frames.parse()?;
    if args.rop.trim().is_empty() {
        bail!("--rop is empty; give the ROP's node path, e.g. /out/mantra_ipr");
    }
    let shown = spec.to_string();
    let task = HoudiniRenderHip {
        hip: args.hip.clone(),
        frames: spec.ranges,
        rop: args.rop.clone(),
    };
    let planned = Planned {
        name: format!("{} {} {shown}", file_name(&args.hip), args.rop),
        runs: command_line([
            "houdini-render-hip",
            args.hip.as_str(),
            "--frames",
            shown.as_str(),
            "--rop",
            args.rop.as_str(),
        ]),
        tasks: vec![(Some(shown.clone()), task)],
    };
    submit_render(&args.connection, &args.render, planned).await
}

/// `buildcat houdini-render-ifd`: one job of one task per file.
pub async fn houdini_ifd(args: HoudiniIfdArgs) -> anyhow::Result<ExitCode> {
    for ifd in &args.ifds {
        check_path(".ifd file", ifd)?;
    }
    let name = match args.ifds.as_slice() {
        [one] => file_name(one).to_owned(),
        many => format!("{} ifd files", many.len()),
    };
    let planned = Planned {
        name,
        runs: command_line(
            ["houdini-render-ifd"]
                .into_iter()
                .chain(args.ifds.iter().map(String::as_str)),
        ),
        tasks: args
            .ifds
            .iter()
            .map(|ifd| (None, HoudiniRenderIfd { ifd: ifd.clone() }))
            .collect(),
    };
    submit_render(&args.connection, &args.render, planned).await
}

/// `buildcat modo-render`: one job of one task per frame.
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
    let frames: Vec<i64> = (args.start..args.stop).step_by(step).collect();
    let (start, stop, step_text) = (
        args.start.to_string(),
        args.stop.to_string(),
        args.step.to_string(),
    );
    let planned = Planned {
        name: format!("{} {}", file_name(&args.lxo), frames_text(&frames)),
        runs: command_line([
            "modo-render",
            args.lxo.as_str(),
            "--start",
            start.as_str(),
            "--stop",
            stop.as_str(),
            "--step",
            step_text.as_str(),
        ]),
        tasks: frames
            .iter()
            .map(|&frame| {
                let task = ModoRender {
                    lxo: args.lxo.clone(),
                    start: frame,
                    stop: frame + 1,
                    step: 1,
                };
                (Some(frame.to_string()), task)
            })
            .collect(),
    };
    submit_render(&args.connection, &args.render, planned).await
}

/// `buildcat redshift-render`: one job of one task.
pub async fn redshift(args: RedshiftRenderArgs) -> anyhow::Result<ExitCode> {
    check_path(".rs archive", &args.rs)?;
    let planned = Planned {
        name: file_name(&args.rs).to_owned(),
        runs: command_line(["redshift-render", args.rs.as_str()]),
        tasks: vec![(
            None,
            RedshiftRender {
                rs: args.rs.clone(),
            },
        )],
    };
    submit_render(&args.connection, &args.render, planned).await
}

/// The frames of a Blender render, checked for Blender: each once (a warning names the
/// repeated ones), none negative or past Blender's last frame.
fn blender_frames(spec: &FrameSpec) -> anyhow::Result<Vec<i64>> {
    let (frames, repeated) = spec.unique_frames();
    if let Some((first, last)) = spec.bounds() {
        check_blender_frames(first, last).map_err(anyhow::Error::msg)?;
    }
    if !repeated.is_empty() {
        eprintln!(
            "warning: {} listed more than once; each renders once",
            frames_text(&repeated)
        );
    }
    Ok(frames)
}

/// Checks `--format`, `--engine` and `--cycles-device` against Blender's names; a movie
/// format needs `--movie`.
fn check_blender_names(args: &BlenderRenderArgs) -> anyhow::Result<()> {
    if let Some(format) = &args.format {
        let movie = check_blender_format(format).map_err(anyhow::Error::msg)?;
        if movie && !args.movie {
            bail!(
                "--format {format} writes one movie file, which every task of the job would \
                 overwrite; render images (e.g. --format PNG) and encode them afterwards, or \
                 pass --movie to render the whole range as one task"
            );
        }
    }
    if let Some(engine) = &args.engine {
        check_blender_engine(engine).map_err(anyhow::Error::msg)?;
    }
    if let Some(device) = &args.cycles_device {
        check_cycles_device(device).map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

/// `buildcat blender-render`: one job of one task per chunk of frames (one task for all
/// frames with `--movie`).
pub async fn blender(args: BlenderRenderArgs) -> anyhow::Result<ExitCode> {
    let planned = blender_plan(&args)?;
    submit_render(&args.connection, &args.render, planned).await
}

/// The job `blender-render` submits, after every check that can be made before sending.
fn blender_plan(args: &BlenderRenderArgs) -> anyhow::Result<Planned<BlenderRender>> {
    check_path(".blend file", &args.blend)?;
    if let Some(output) = &args.output {
        check_path("output pattern", output)?;
    }
    if args.chunk == 0 {
        bail!("--chunk must be at least 1 frame per task");
    }
    let spec: FrameSpec = args.frames.parse()?;
    let frames = blender_frames(&spec)?;
    check_blender_names(args)?;
    let shown = spec.to_string();
    let chunk = args.chunk.to_string();
    let mut words = vec![
        "blender-render",
        args.blend.as_str(),
        "--frames",
        shown.as_str(),
        "--chunk",
        chunk.as_str(),
    ];
    for (flag, value) in [
        ("--output", &args.output),
        ("--format", &args.format),
        ("--engine", &args.engine),
        ("--scene", &args.scene),
        ("--cycles-device", &args.cycles_device),
        ("--python-expr", &args.python_expr),
    ] {
        if let Some(value) = value {
            words.extend([flag, value.as_str()]);
        }
    }
    for arg in &args.blender_args {
        words.extend(["--blender-arg", arg.as_str()]);
    }
    for (flag, on) in [
        ("--allow-missing-libraries", args.allow_missing_libraries),
        ("--allow-outside-root", args.allow_outside_root),
        ("--movie", args.movie),
    ] {
        if on {
            words.push(flag);
        }
    }
    // A movie is one file: every chunk would write it anew.
    let chunk_size = if args.movie {
        frames.len().max(1)
    } else {
        args.chunk
    };
    Ok(Planned {
        name: format!("{} {shown}", file_name(&args.blend)),
        runs: command_line(words),
        tasks: frames
            .chunks(chunk_size)
            .map(|chunk| {
                let task = BlenderRender {
                    blend: args.blend.clone(),
                    frames: chunk.to_vec(),
                    output: args.output.clone(),
                    format: args.format.clone(),
                    engine: args.engine.clone(),
                    scene: args.scene.clone(),
                    cycles_device: args.cycles_device.clone(),
                    python_expr: args.python_expr.clone(),
                    extra_args: args.blender_args.clone(),
                    allow_missing_libraries: args.allow_missing_libraries,
                    allow_outside_root: args.allow_outside_root,
                    movie: args.movie,
                };
                (Some(frames_text(chunk)), task)
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::{blender_frames, blender_plan, frames_text};
    use crate::args::{Cli, Command};
    use buildcat_proto::dcc::BlenderRender;
    use buildcat_proto::frames::FrameSpec;
    use clap::Parser;

    /// The tasks `buildcat blender-render ARGS` would submit, or why it refuses.
    fn plan(args: &[&str]) -> Result<Vec<(Option<String>, BlenderRender)>, String> {
        let words = ["buildcat", "blender-render"].iter().chain(args);
        let cli = Cli::try_parse_from(words).map_err(|e| e.to_string())?;
        let Command::BlenderRender(args) = cli.command else {
            panic!("not blender-render");
        };
        blender_plan(&args)
            .map(|planned| planned.tasks)
            .map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn a_movie_is_one_task_of_the_whole_range_and_only_with_movie() {
        let refused = plan(&["a.blend", "--frames", "1-100", "--format", "FFMPEG"]);
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("encode them afterwards") && e.contains("--movie")),
            "{refused:?}"
        );
        let tasks = plan(&[
            "a.blend", "--frames", "1-100", "--chunk", "10", "--format", "FFMPEG", "--movie",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].0.as_deref(), Some("1-100"));
        assert_eq!(tasks[0].1.frames.len(), 100);
        assert!(tasks[0].1.movie);
    }

    #[test]
    fn chunks_hold_each_frame_once_and_carry_the_blender_flags() {
        let tasks = plan(&[
            "a.blend",
            "--frames",
            "1-4, 3, 10-20x5",
            "--chunk",
            "3",
            "-S",
            "Shot",
            "--cycles-device",
            "HIP+CPU",
            "--blender-arg",
            "--log-level",
            "--blender-arg",
            "0",
            "--allow-missing-libraries",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let frames: Vec<&[i64]> = tasks.iter().map(|(_, t)| t.frames.as_slice()).collect();
        assert_eq!(frames, [&[1, 2, 3][..], &[4, 10, 15], &[20]]);
        let task = &tasks[0].1;
        assert_eq!(task.scene.as_deref(), Some("Shot"));
        assert_eq!(task.cycles_device.as_deref(), Some("HIP+CPU"));
        assert_eq!(task.extra_args, ["--log-level", "0"]);
        assert!(task.allow_missing_libraries && !task.allow_outside_root && !task.movie);
    }

    #[test]
    fn chunks_read_as_frame_specs() {
        assert_eq!(frames_text(&[1, 2, 3]), "1-3");
        assert_eq!(frames_text(&[7]), "7");
        assert_eq!(frames_text(&[1, 3, 5]), "1-5:2");
        assert_eq!(frames_text(&[1, 2, 3, 7, 9]), "1-3,7,9");
        assert_eq!(frames_text(&[]), "");
    }

    #[test]
    fn blender_frames_are_bounded_and_each_comes_once() {
        let frames = |spec: &str| {
            let spec: FrameSpec = spec.parse().unwrap_or_else(|e| panic!("{e}"));
            blender_frames(&spec).map_err(|e| e.to_string())
        };
        assert_eq!(frames("1-3,2,5"), Ok(vec![1, 2, 3, 5]));
        assert_eq!(frames("0,1048574"), Ok(vec![0, 1_048_574]));
        assert!(frames("1048575").is_err_and(|e| e.contains("last frame is 1048574")));
        assert!(frames("-5").is_err_and(|e| e.contains("frame -5 cannot be rendered")));
    }
}
