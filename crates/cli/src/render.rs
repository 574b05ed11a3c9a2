//! The render commands: each submits one job whose tasks are its chunks, files or frames,
//! and with `--wait` follows it to the end with a bar of tasks done. The planning (checks,
//! names, chunks) is `buildcat_client::render`, shared with the Python package.

use std::process::ExitCode;

use anyhow::bail;
use buildcat_client::render::{
    BlenderRenderPlan, HoudiniHipPlan, HoudiniIfdPlan, HoudiniUsdPlan, ModoRenderPlan,
    RedshiftRenderPlan, RenderPlan as Planned,
};
use buildcat_proto::dcc::BlenderRender;
use buildcat_proto::{JobRef, Task};

// Re-used by the tests below, which pin the shared planning as this command uses it.
#[cfg(test)]
use buildcat_client::render::frames_text;
#[cfg(test)]
use buildcat_proto::frames::FrameSpec;

use crate::args::{
    BlenderRenderArgs, Connection, HoudiniHipArgs, HoudiniIfdArgs, HoudiniUsdArgs, ModoRenderArgs,
    RedshiftRenderArgs, RenderOptions,
};
use crate::jobs::{job_options, print_submitted, resolve_after};

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
    let handle = planned
        .into_job(&client, &render.queue, render.name.clone(), options)
        .submit()
        .await?;
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

/// `buildcat houdini-render-hip`: one job of one task for all frames.
pub async fn houdini_hip(args: HoudiniHipArgs) -> anyhow::Result<ExitCode> {
    let planned = HoudiniHipPlan {
        hip: args.hip.clone(),
        frames: args.frames.clone(),
        rop: args.rop.clone(),
    }
    .plan()?;
    submit_render(&args.connection, &args.render, planned).await
}

/// `buildcat houdini-render-ifd`: one job of one task per file.
pub async fn houdini_ifd(args: HoudiniIfdArgs) -> anyhow::Result<ExitCode> {
    let planned = HoudiniIfdPlan {
        ifds: args.ifds.clone(),
    }
    .plan()?;
    submit_render(&args.connection, &args.render, planned).await
}

/// `buildcat houdini-render-usd`: one job of one task per chunk of frames.
pub async fn houdini_usd(args: HoudiniUsdArgs) -> anyhow::Result<ExitCode> {
    let planned = HoudiniUsdPlan {
        usd: args.usd.clone(),
        frames: args.frames.clone(),
        chunk: args.chunk,
        renderer: args.renderer.clone(),
        output: args.output.clone(),
    }
    .plan()?;
    submit_render(&args.connection, &args.render, planned).await
}

/// `buildcat modo-render`: one job of one task per frame.
pub async fn modo(args: ModoRenderArgs) -> anyhow::Result<ExitCode> {
    let planned = ModoRenderPlan {
        lxo: args.lxo.clone(),
        start: args.start,
        stop: args.stop,
        step: args.step,
    }
    .plan()?;
    submit_render(&args.connection, &args.render, planned).await
}

/// `buildcat redshift-render`: one job of one task.
pub async fn redshift(args: RedshiftRenderArgs) -> anyhow::Result<ExitCode> {
    let planned = RedshiftRenderPlan {
        rs: args.rs.clone(),
        redshift_args: args.redshift_args.clone(),
    }
    .plan()?;
    submit_render(&args.connection, &args.render, planned).await
}

/// The frames of a Blender render, checked for Blender: each once (a warning names the
/// repeated ones), none negative or past Blender's last frame.
#[cfg(test)]
fn blender_frames(spec: &FrameSpec) -> anyhow::Result<Vec<i64>> {
    let (frames, repeated) = buildcat_client::render::blender_frames(spec)?;
    warn_repeated(&repeated);
    Ok(frames)
}

/// Says which frames the spec listed more than once.
fn warn_repeated(repeated: &[i64]) {
    if let Some(warning) = repeated_warning(repeated) {
        eprintln!("warning: {warning}");
    }
}

/// How many repeated frames the warning names one by one; more are summed up as a frame
/// spec, so that `1-500,1-500` does not print 500 numbers.
const REPEATED_NAMED: usize = 8;

/// `frames 1 and 3 are listed more than once; ...` (tester finding 14: it read `1-3:2
/// listed more than once`, a spec to decode rather than the frames).
fn repeated_warning(repeated: &[i64]) -> Option<String> {
    let (last, before) = repeated.split_last()?;
    if before.is_empty() {
        return Some(format!(
            "frame {last} is listed more than once; it renders once"
        ));
    }
    let named = if repeated.len() <= REPEATED_NAMED {
        let before: Vec<String> = before.iter().map(i64::to_string).collect();
        format!("{} and {last}", before.join(", "))
    } else {
        let shown: Vec<String> = repeated[..REPEATED_NAMED]
            .iter()
            .map(i64::to_string)
            .collect();
        format!(
            "{} and {} more ({})",
            shown.join(", "),
            repeated.len() - REPEATED_NAMED,
            buildcat_client::render::frames_text(repeated)
        )
    };
    Some(format!(
        "frames {named} are listed more than once; each renders once"
    ))
}

/// `buildcat blender-render`: one job of one task per chunk of frames (one task for all
/// frames with `--movie`).
pub async fn blender(args: BlenderRenderArgs) -> anyhow::Result<ExitCode> {
    if args.frames.is_none() {
        let planned = blender_request(&args).plan_scene_range()?;
        return submit_render(&args.connection, &args.render, planned).await;
    }
    let planned = blender_plan(&args)?;
    submit_render(&args.connection, &args.render, planned).await
}

/// The job `blender-render --frames` submits, after every check that can be made before
/// sending.
fn blender_plan(args: &BlenderRenderArgs) -> anyhow::Result<Planned<BlenderRender>> {
    let planned = blender_request(args).plan()?;
    warn_repeated(&planned.repeated);
    Ok(planned)
}

/// The render `blender-render` describes; without `--frames`, the scene's own range.
fn blender_request(args: &BlenderRenderArgs) -> BlenderRenderPlan {
    BlenderRenderPlan {
        blend: args.blend.clone(),
        frames: args.frames.clone().unwrap_or_default(),
        chunk: args.chunk,
        output: args.output.clone(),
        format: args.format.clone(),
        engine: args.engine.clone(),
        scene: args.scene.clone(),
        cycles_device: args.cycles_device.clone(),
        gpu: args.render.gpu,
        python_expr: args.python_expr.clone(),
        blender_args: args.blender_args.clone(),
        allow_missing_libraries: args.allow_missing_libraries,
        allow_outside_root: args.allow_outside_root,
        movie: args.movie,
    }
}

#[cfg(test)]
mod tests {
    use super::{blender_frames, blender_plan, frames_text, repeated_warning};

    /// Tester finding 14: the warning names the repeated frames, not a spec of them.
    #[test]
    fn repeated_frames_are_named() {
        assert_eq!(repeated_warning(&[]), None);
        assert_eq!(
            repeated_warning(&[4]).as_deref(),
            Some("frame 4 is listed more than once; it renders once")
        );
        assert_eq!(
            repeated_warning(&[1, 3]).as_deref(),
            Some("frames 1 and 3 are listed more than once; each renders once")
        );
        assert_eq!(
            repeated_warning(&[1, 2, 5]).as_deref(),
            Some("frames 1, 2 and 5 are listed more than once; each renders once")
        );
        let many: Vec<i64> = (1..=20).collect();
        assert_eq!(
            repeated_warning(&many).as_deref(),
            Some(
                "frames 1, 2, 3, 4, 5, 6, 7, 8 and 12 more (1-20) are listed more than once; each renders once"
            )
        );
    }
    use crate::args::{Cli, Command};
    use buildcat_proto::dcc::{BlenderPlanRange, BlenderRender};
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

    /// Issue 11 (fault 4): without `--frames`, the scene's own range: one task that reads
    /// it on a worker and adds the render tasks, carrying the chunk and every setting.
    #[test]
    fn without_frames_the_job_plans_the_scenes_own_range() {
        let words = [
            "buildcat",
            "blender-render",
            "shots/a.blend",
            "--chunk",
            "4",
            "-S",
            "Shot",
            "--format",
            "PNG",
        ];
        let cli = Cli::try_parse_from(words).unwrap_or_else(|e| panic!("{e}"));
        let Command::BlenderRender(args) = cli.command else {
            panic!("not blender-render");
        };
        assert_eq!(args.frames, None);
        let planned = super::blender_request(&args)
            .plan_scene_range()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(planned.name, "a.blend scene range");
        assert!(!planned.runs.contains("--frames"), "{}", planned.runs);
        let [(None, BlenderPlanRange::Plan { render, chunk })] = planned.tasks.as_slice() else {
            panic!("one plan task: {:?}", planned.tasks);
        };
        assert_eq!(*chunk, 4);
        assert_eq!(render.blend, "shots/a.blend");
        assert_eq!(render.scene.as_deref(), Some("Shot"));
        assert_eq!(render.format.as_deref(), Some("PNG"));
        assert!(render.frames.is_empty());
        // The same checks as with frames.
        let mut bad = super::blender_request(&args);
        bad.chunk = 0;
        assert!(bad.plan_scene_range().is_err());
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
