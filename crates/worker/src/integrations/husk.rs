//! husk: Houdini's renderer of USD files (Karma, or another Hydra delegate), for
//! [`HoudiniRenderUsd`]; to Karma what `mantra -f` is to Mantra.
//!
//! The command line, from SideFX's husk page (docs/houdini/ref/utils/husk.html,
//! `husk [options] usd_file [-o image_file]`):
//! `husk --verbose a3 [--renderer NAME] [--frame S --frame-count N --frame-inc I]
//! --make-output-path FILE [-o PATTERN]`. `--verbose a3` asks for Alfred-style progress
//! (`ALF_PROGRESS N%`) with the frame's messages; `--make-output-path` makes the image's
//! folder, which a farm's fresh output folder lacks; no viewer is asked for (`--mplay`
//! is not given), since nobody sits at a worker. A job's range is half-open, husk's a
//! start, a count and an increment.
//!
//! Progress: husk reports each frame from `ALF_PROGRESS 0%` to `100%`; 100% ends a frame,
//! and a lower percentage is the task's `frame_percent` (how far the current frame is). Outputs: the `Image: PATH` lines Karma prints (see `houdini::image_line`).
//! Failures: [`HUSK_FAILURES`], whatever the exit code.

use std::path::Path;
use std::sync::Arc;

use buildcat_proto::Failure;
use buildcat_proto::dcc::{HoudiniRenderUsd, RenderReport};

use super::houdini::{frame_alf_progress, image_line};
use super::tools::Executable;
use super::watch::RenderWatch;
use super::{count_frames, output_path, scene_file};
use crate::context::JobContext;
use crate::process::{ProcessSpec, run_process};

/// The verbosity husk is given: `a` for Alfred-style progress lines, 3 for the frame's
/// messages (the images it writes among them).
const VERBOSITY: &str = "a3";

/// Lines husk prints when it failed, whatever its exit code: Karma's licence and file
/// lines are mantra's (CGRU Afanasy's `parsers/karma.py`, `str_error`); `USD ERROR` starts
/// the errors USD itself reports while husk composes the stage (issue 19, checked against
/// other farm managers' husk parsers), after which husk may still exit 0.
pub(super) const HUSK_FAILURES: &[&str] = &[
    "No licenses could be found to run this application",
    "Please check for a valid license server host",
    "Failed to create file",
    "USD ERROR",
];

/// Karma's delegates by the names people use (`karma`, `karmaxpu`), as husk's
/// `--renderer` takes them; other names are given as they are. Karma ships as two Hydra
/// render delegates, Karma CPU and Karma XPU (SideFX, Karma user guide,
/// docs/houdini/solaris/kug/start.html, "Render Delegates"); their Hydra plugin names are
/// `BRAY_HdKarma` and `BRAY_HdKarmaXPU`, as Houdini lists them in
/// `hou.lop.availableRendererInfo()` and the USD Render ROP's `renderer` parameter holds
/// them (AYON's Houdini integration, ynput/ayon-houdini,
/// `client/ayon_houdini/plugins/publish/validate_usd_render_tiles.py`, which reads that
/// parameter for the husk renders it sends to Deadline).
const RENDERER_NAMES: &[(&str, &str)] =
    &[("karma", "BRAY_HdKarma"), ("karmaxpu", "BRAY_HdKarmaXPU")];

/// The delegate name husk is given for `name`.
pub(super) fn renderer_name(name: &str) -> &str {
    RENDERER_NAMES
        .iter()
        .find(|(short, _)| short.eq_ignore_ascii_case(name.trim()))
        .map_or(name, |(_, delegate)| delegate)
}

/// husk's command line for `task`, the USD file and the output pattern being given as the
/// tool should be given them.
pub(super) fn render_spec(
    executable: &Executable,
    root: &Path,
    usd: &Path,
    output: Option<&Path>,
    task: &HoudiniRenderUsd,
) -> Result<ProcessSpec, Failure> {
    let mut spec = ProcessSpec::new(executable.path(), root).args(["--verbose", VERBOSITY]);
    if let Some(renderer) = &task.renderer {
        spec = spec.arg("--renderer").arg(renderer_name(renderer));
    }
    if let Some(range) = task.frames {
        let count = count_frames(&[range])?;
        spec = spec
            .arg("--frame")
            .arg(range.start.to_string())
            .arg("--frame-count")
            .arg(count.to_string())
            .arg("--frame-inc")
            .arg(range.step.to_string());
    }
    spec = spec
        .arg("--make-output-path")
        .arg(executable.path_arg(usd)?);
    if let Some(output) = output {
        spec = spec.arg("-o").arg(executable.path_arg(output)?);
    }
    Ok(spec)
}

/// The handler of [`HoudiniRenderUsd`].
pub(super) async fn render(
    task: HoudiniRenderUsd,
    context: JobContext,
    executable: Arc<Executable>,
) -> Result<RenderReport, Failure> {
    let (total, ranges) = match task.frames {
        Some(range) => (count_frames(&[range])?, vec![range]),
        None => (1, Vec::new()),
    };
    let usd = scene_file(&context, &task.usd).await?;
    let output = match &task.output {
        Some(pattern) => Some(output_path(&context, pattern)?),
        None => None,
    };
    let spec = render_spec(&executable, &context.root, &usd, output.as_deref(), &task)?;
    let mut watch = RenderWatch::new(&context, total, ranges, HUSK_FAILURES);
    let report = run_process(spec, &context, |line| {
        if let Some(path) = image_line(line) {
            watch.output(path);
        }
        frame_alf_progress(&mut watch, line);
        watch.check(line);
    })
    .await?;
    watch.conclude(report, &executable.file_name()).await
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use buildcat_proto::frames::FrameRange;

    use super::*;

    fn task(frames: Option<FrameRange>, renderer: Option<&str>) -> HoudiniRenderUsd {
        HoudiniRenderUsd {
            usd: "shots/a.usd".to_owned(),
            frames,
            renderer: renderer.map(str::to_owned),
            output: None,
        }
    }

    fn args(spec: &ProcessSpec) -> Vec<&str> {
        spec.args.iter().filter_map(|arg| arg.to_str()).collect()
    }

    #[test]
    fn frames_become_a_start_a_count_and_an_increment() {
        let husk = Executable::new("/opt/hfs/bin/husk");
        let range = FrameRange {
            start: 10,
            stop: 21,
            step: 5,
        };
        let spec = render_spec(
            &husk,
            Path::new("/farm"),
            Path::new("/farm/shots/a.usd"),
            Some(Path::new("/farm/render/a.$F4.exr")),
            &task(Some(range), Some("KarmaXPU")),
        )
        .unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(spec.program, Path::new("/opt/hfs/bin/husk"));
        assert_eq!(spec.dir, Path::new("/farm"));
        assert_eq!(
            args(&spec),
            [
                "--verbose",
                "a3",
                "--renderer",
                "BRAY_HdKarmaXPU",
                "--frame",
                "10",
                "--frame-count",
                "3",
                "--frame-inc",
                "5",
                "--make-output-path",
                "/farm/shots/a.usd",
                "-o",
                "/farm/render/a.$F4.exr"
            ]
        );
        let spec = render_spec(
            &husk,
            Path::new("/farm"),
            Path::new("/farm/shots/a.usd"),
            None,
            &task(None, Some("HdStormRendererPlugin")),
        )
        .unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(
            spec.args,
            [
                "--verbose",
                "a3",
                "--renderer",
                "HdStormRendererPlugin",
                "--make-output-path",
                "/farm/shots/a.usd"
            ]
            .map(OsString::from)
        );
        let backwards = FrameRange {
            start: 5,
            stop: 1,
            step: 1,
        };
        assert!(
            render_spec(
                &husk,
                Path::new("/farm"),
                Path::new("/farm/a.usd"),
                None,
                &task(Some(backwards), None)
            )
            .is_err()
        );
    }

    #[test]
    fn karma_names_its_delegates() {
        assert_eq!(renderer_name("karma"), "BRAY_HdKarma");
        assert_eq!(renderer_name("Karma"), "BRAY_HdKarma");
        assert_eq!(renderer_name("karmaxpu"), "BRAY_HdKarmaXPU");
        assert_eq!(renderer_name("BRAY_HdKarma"), "BRAY_HdKarma");
    }
}
