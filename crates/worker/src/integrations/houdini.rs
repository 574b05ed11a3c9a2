//! Houdini: `hython -c CODE` for the version and for rendering a `.hip` through a ROP, and
//! `mantra -f FILE` for `.ifd` files.
//!
//! The code given to hython is generated here with every job value (the scene's path, the
//! ROP's path, the frames) written as a Python literal, so no file or node name can end a
//! string early or add code. Frame ranges in jobs are half-open; Houdini's are inclusive,
//! so a range renders `(start, stop - 1, step)`.
//!
//! Progress: mantra prints `ALF_PROGRESS N%` lines (Alfred-style progress) when it renders
//! with progress output on, which a ROP rendered with `output_progress=True` asks for; each
//! `100%` is one frame done. Houdini says nothing reliable about the files it writes, so
//! the outputs of a Houdini job are left empty.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use buildcat_proto::dcc::{
    HoudiniInfo, HoudiniRenderHip, HoudiniRenderIfd, RenderReport, ToolInfoReport,
};
use buildcat_proto::frames::FrameRange;
use buildcat_proto::{Failure, TaskProgress};

use super::quote::python_literal;
use super::tools::Executable;
use super::{count_frames, path_text, scene_file, tool_report, tool_version};
use crate::context::JobContext;
use crate::process::{ProcessSpec, run_process};

/// What the version code prints before the version, so that the line is found among
/// whatever else hython prints (licensing chatter).
const VERSION_MARKER: &str = "buildcat-houdini-version ";

/// What the render code prints to stderr when the ROP is missing, before exiting with 2.
const NO_ROP_MARKER: &str = "buildcat: no ROP node at the given path";

/// The code that prints Houdini's version after [`VERSION_MARKER`].
pub(super) fn version_code() -> String {
    format!(
        "import hou\nprint({} + hou.applicationVersionString())\n",
        python_literal(VERSION_MARKER)
    )
}

/// `hython -c CODE` printing the version.
pub(super) fn info_spec(executable: &Executable, root: &Path) -> ProcessSpec {
    ProcessSpec::new(executable.path(), root)
        .arg("-c")
        .arg(version_code())
}

/// The version in hython's output: the text after [`VERSION_MARKER`].
pub(super) fn parse_version(lines: &[String]) -> Option<String> {
    lines.iter().find_map(|line| {
        let version = line.trim().strip_prefix(VERSION_MARKER.trim_end())?.trim();
        (!version.is_empty()).then(|| version.to_owned())
    })
}

/// The code that loads `hip`, finds the ROP `rop` (exiting with 2 and [`NO_ROP_MARKER`] if
/// there is none) and renders each range.
pub(super) fn hip_code(hip: &str, rop: &str, ranges: &[FrameRange]) -> String {
    let mut code = String::from("import sys\nimport hou\n");
    // Writing to a String cannot fail.
    let _ = writeln!(code, "hip = {}", python_literal(hip));
    let _ = writeln!(code, "rop = {}", python_literal(rop));
    code.push_str(
        "hou.hipFile.load(hip, suppress_save_prompt=True, ignore_load_warnings=True)\n\
         node = hou.node(rop)\n\
         if node is None or not isinstance(node, hou.RopNode):\n",
    );
    let _ = writeln!(
        code,
        "    sys.stderr.write({})\n    sys.exit(2)",
        python_literal(&format!("{NO_ROP_MARKER}\n"))
    );
    for range in ranges {
        let _ = writeln!(
            code,
            "node.render(frame_range=({}, {}, {}), verbose=True, output_progress=True)",
            range.start,
            range.stop - 1,
            range.step
        );
    }
    code
}

/// `hython -c CODE` rendering `ranges` of `hip` (as the tool should be given it) with `rop`.
pub(super) fn hip_spec(
    executable: &Executable,
    root: &Path,
    hip: &str,
    rop: &str,
    ranges: &[FrameRange],
) -> ProcessSpec {
    ProcessSpec::new(executable.path(), root)
        .arg("-c")
        .arg(hip_code(hip, rop, ranges))
}

/// `mantra -f FILE`.
pub(super) fn ifd_spec(
    executable: &Executable,
    root: &Path,
    ifd: &Path,
) -> Result<ProcessSpec, Failure> {
    Ok(ProcessSpec::new(executable.path(), root)
        .arg("-f")
        .arg(executable.path_arg(ifd)?))
}

/// The percentage of an `ALF_PROGRESS N%` line.
pub(super) fn alf_progress(line: &str) -> Option<u32> {
    let rest = line.trim().strip_prefix("ALF_PROGRESS")?;
    rest.trim().strip_suffix('%')?.trim().parse().ok()
}

/// The handler of [`HoudiniInfo`].
pub(super) async fn info(
    _task: HoudiniInfo,
    context: JobContext,
    executable: Arc<Executable>,
) -> Result<ToolInfoReport, Failure> {
    let spec = info_spec(&executable, &context.root);
    let version = tool_version(&context, &executable, spec, parse_version).await?;
    tool_report(&context, &executable, version)
}

/// The handler of [`HoudiniRenderHip`].
pub(super) async fn render_hip(
    task: HoudiniRenderHip,
    context: JobContext,
    executable: Arc<Executable>,
) -> Result<RenderReport, Failure> {
    let total = count_frames(&task.frames)?;
    if task.rop.trim().is_empty() {
        return Err(Failure::new("the ROP path is empty"));
    }
    let hip = scene_file(&context, &task.hip).await?;
    let spec = hip_spec(
        &executable,
        &context.root,
        &path_text(&executable, &hip)?,
        &task.rop,
        &task.frames,
    );
    let mut frames = FrameCounter::new(total, &context);
    let mut no_rop = false;
    let report = run_process(spec, &context, |line| {
        no_rop |= line.trim() == NO_ROP_MARKER;
        frames.line(line);
    })
    .await?;
    if let Some(mut failure) = report.into_failure(&executable.file_name()) {
        if no_rop {
            failure.reason = format!("there is no ROP node `{}` in `{}`", task.rop, task.hip);
        }
        return Err(failure);
    }
    Ok(RenderReport {
        frames: total,
        outputs: Vec::new(),
    })
}

/// The handler of [`HoudiniRenderIfd`].
pub(super) async fn render_ifd(
    task: HoudiniRenderIfd,
    context: JobContext,
    executable: Arc<Executable>,
) -> Result<RenderReport, Failure> {
    let ifd = scene_file(&context, &task.ifd).await?;
    let spec = ifd_spec(&executable, &context.root, &ifd)?;
    let mut frames = FrameCounter::new(1, &context);
    let report = run_process(spec, &context, |line| frames.line(line)).await?;
    if let Some(failure) = report.into_failure(&executable.file_name()) {
        return Err(failure);
    }
    Ok(RenderReport {
        frames: 1,
        outputs: Vec::new(),
    })
}

/// Counts frames done from `ALF_PROGRESS 100%` lines and reports them.
struct FrameCounter<'a> {
    /// Frames done.
    done: u32,
    /// Frames in the job.
    total: u32,
    /// Where progress goes.
    context: &'a JobContext,
}

impl<'a> FrameCounter<'a> {
    /// A counter at 0 of `total`, reported as such.
    fn new(total: u32, context: &'a JobContext) -> Self {
        context.progress(TaskProgress {
            done: 0,
            total,
            outputs: Vec::new(),
        });
        FrameCounter {
            done: 0,
            total,
            context,
        }
    }

    /// Reads one output line.
    fn line(&mut self, line: &str) {
        if alf_progress(line) == Some(100) && self.done < self.total {
            self.done += 1;
            self.context.progress(TaskProgress {
                done: self.done,
                total: self.total,
                outputs: Vec::new(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;

    fn hython() -> Executable {
        Executable::new("/opt/hfs/bin/hython")
    }

    fn args(spec: &ProcessSpec) -> Vec<&str> {
        spec.args.iter().filter_map(|arg| arg.to_str()).collect()
    }

    #[test]
    fn the_hip_code_renders_each_range_inclusively() {
        let ranges = [
            FrameRange {
                start: 1,
                stop: 11,
                step: 1,
            },
            FrameRange {
                start: 75,
                stop: 101,
                step: 2,
            },
            FrameRange {
                start: -5,
                stop: -4,
                step: 1,
            },
        ];
        let spec = hip_spec(
            &hython(),
            Path::new("/farm"),
            "/farm/a.hip",
            "/out/beauty",
            &ranges,
        );
        assert_eq!(spec.program, Path::new("/opt/hfs/bin/hython"));
        assert_eq!(spec.dir, Path::new("/farm"));
        assert_eq!(spec.stdin, None);
        assert!(spec.env.is_empty());
        let expected = "import sys\n\
            import hou\n\
            hip = u'/farm/a.hip'\n\
            rop = u'/out/beauty'\n\
            hou.hipFile.load(hip, suppress_save_prompt=True, ignore_load_warnings=True)\n\
            node = hou.node(rop)\n\
            if node is None or not isinstance(node, hou.RopNode):\n    \
            sys.stderr.write(u'buildcat: no ROP node at the given path\\n')\n    \
            sys.exit(2)\n\
            node.render(frame_range=(1, 10, 1), verbose=True, output_progress=True)\n\
            node.render(frame_range=(75, 100, 2), verbose=True, output_progress=True)\n\
            node.render(frame_range=(-5, -5, 1), verbose=True, output_progress=True)\n";
        assert_eq!(args(&spec), ["-c", expected]);
    }

    #[test]
    fn nasty_names_stay_inside_their_literals() {
        let code = hip_code("/farm/it's\n$(x).hip", "/out/a')\nimport os#", &[]);
        assert!(
            code.contains("hip = u'/farm/it\\'s\\n$(x).hip'\n"),
            "{code}"
        );
        assert!(
            code.contains("rop = u'/out/a\\')\\nimport os#'\n"),
            "{code}"
        );
        assert_eq!(code.lines().count(), 9, "{code}");
    }

    #[test]
    fn info_runs_the_version_code() {
        let spec = info_spec(&hython(), Path::new("/farm"));
        assert_eq!(
            args(&spec),
            [
                "-c",
                "import hou\nprint(u'buildcat-houdini-version ' + hou.applicationVersionString())\n"
            ]
        );
    }

    #[test]
    fn versions_are_read_after_the_marker() {
        let check = |lines: &[&str], expected: Option<&str>| {
            let lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
            assert_eq!(parse_version(&lines).as_deref(), expected, "{lines:?}");
        };
        check(&["buildcat-houdini-version 20.5.332"], Some("20.5.332"));
        check(
            &[
                "Houdini Core license checked out",
                "buildcat-houdini-version 19.0.720\r",
            ],
            Some("19.0.720"),
        );
        check(&["20.5.332"], None);
        check(&["buildcat-houdini-version "], None);
        check(&[], None);
    }

    #[test]
    fn mantra_gets_the_file_after_dash_f() {
        let mantra = Executable::new("/opt/hfs/bin/mantra");
        let spec = ifd_spec(
            &mantra,
            Path::new("/farm"),
            Path::new("/farm/ifd/a.0001.ifd"),
        )
        .unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(spec.program, Path::new("/opt/hfs/bin/mantra"));
        assert_eq!(
            spec.args,
            [OsString::from("-f"), OsString::from("/farm/ifd/a.0001.ifd")]
        );
        let windows = Executable::windows("/mnt/c/hfs/bin/mantra.exe");
        let spec = ifd_spec(
            &windows,
            Path::new("/mnt/c/farm"),
            Path::new("/mnt/c/farm/a.ifd"),
        )
        .unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(
            spec.args,
            [OsString::from("-f"), OsString::from("C:\\farm\\a.ifd")]
        );
    }

    #[test]
    fn alf_progress_lines() {
        assert_eq!(alf_progress("ALF_PROGRESS 45%"), Some(45));
        assert_eq!(alf_progress("  ALF_PROGRESS 100%\r"), Some(100));
        assert_eq!(alf_progress("ALF_PROGRESS 7 %"), Some(7));
        assert_eq!(alf_progress("ALF_PROGRESS"), None);
        assert_eq!(alf_progress("ALF_PROGRESS x%"), None);
        assert_eq!(alf_progress("mantra: ALF_PROGRESS 5%"), None);
    }
}
