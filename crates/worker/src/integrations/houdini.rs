//! Houdini: `hython -c CODE` for the version and for rendering a `.hip` through any node
//! that renders, and `mantra -f FILE` for `.ifd` files (`husk` for USD is in `husk.rs`).
//!
//! The code given to hython is a fixed program ([`HIP_PROGRAM`]) after a few assignments
//! that carry every job value (the scene's path, the node's path, the frames) as Python
//! literals, so no file or node name can end a string early or add code. Frame ranges in
//! jobs are half-open; Houdini's are inclusive, so a range renders `(start, stop - 1, step)`.
//!
//! Which node renders (issue 19): a ROP (`hou.RopNode`); any other node with a `render()`
//! method (the render LOPs of Solaris); a node holding a render node named `render` (the
//! File Cache SOP writes through the ROP inside it); else a node with an `execute` button,
//! whose frame range is set and the button pressed frame by frame. Anything else fails the
//! task with "`/obj/geo1` is not a render node (type geo)", and a missing node with "there
//! is no node".
//!
//! Progress: frames are counted from [`FRAME_MARKER`] lines, printed by a post-frame render
//! event callback (`hou.RopNode.addRenderEventCallback`, SideFX: hom/hou/RopNode.html) the
//! code registers, or after each frame where the node renders frame by frame. mantra's and
//! Karma's `ALF_PROGRESS N%` lines (Alfred-style progress, asked for with
//! `output_progress=True`) are progress within the current frame (the task's
//! `frame_percent`, cleared when a frame ends), not frames.
//!
//! Failures the exit code hides: after each render the code checks `node.errors()` and
//! prints [`FAILURE_MARKER`] with them before exiting with 3; and the lines of
//! [`HYTHON_FAILURES`] and [`MANTRA_FAILURES`] fail the task with that line as the reason,
//! whatever the exit code. Outputs: the file the node's output parameter names at each
//! frame (carried by the frame marker, see [`frame_marker`]), the `Generating Image: PATH
//! (WxH)` lines mantra prints and the `Image: PATH` lines of Karma (see [`image_line`]).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use buildcat_proto::Failure;
use buildcat_proto::dcc::{
    HoudiniInfo, HoudiniRenderHip, HoudiniRenderIfd, RenderReport, ToolInfoReport,
};
use buildcat_proto::frames::FrameRange;

use super::quote::python_literal;
use super::tools::Executable;
use super::watch::RenderWatch;
use super::{count_frames, path_text, scene_file, tool_report, tool_version};
use crate::context::JobContext;
use crate::process::{ProcessSpec, run_process};

/// What the version code prints before the version, so that the line is found among
/// whatever else hython prints (licensing chatter).
const VERSION_MARKER: &str = "buildcat-houdini-version ";

/// What the render code prints (stdout) after each frame, then the frame number.
pub(super) const FRAME_MARKER: &str = "buildcat-frame-done";

/// What the render code prints (stdout) before the reason it gives up (no such node, not
/// a render node, the node's errors after rendering), then exits with 3.
pub(super) const FAILURE_MARKER: &str = "buildcat-failure:";

/// Lines mantra prints when it failed, whatever its exit code; Karma (through husk or a
/// ROP) prints the same licence and file lines. Each is in CGRU's Afanasy parsers
/// (`afanasy/python/parsers/mantra.py` and `karma.py`, `str_error`), and the licence line
/// in Thinkbox Deadline's Houdini plugin's stdout handlers.
pub(super) const MANTRA_FAILURES: &[&str] = &[
    // Licensing: no licence was granted (hserver found none, or none is free).
    "No licenses could be found to run this application",
    // Licensing: the licence server named in hserver's settings does not answer.
    "Please check for a valid license server host",
    // The image (or a deep or extra image) could not be opened for writing.
    "Failed to create file",
];

/// Lines hython's output holds when a render failed: [`MANTRA_FAILURES`], since a ROP's
/// renderer (mantra, Karma) prints through hython and hython takes its licence the same
/// way. A Python traceback is not among them: scenes' own scripts print some and carry on,
/// and an error in our code ends hython with a non-zero exit code anyway.
pub(super) const HYTHON_FAILURES: &[&str] = MANTRA_FAILURES;

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

/// The program hython runs after the job's values are assigned (`hip`, `shown`, `path`,
/// `ranges`); written for Python 2.7 and 3 alike (Houdini 17 to 21).
pub(super) const HIP_PROGRAM: &str = r#"FRAME_MARKER = 'buildcat-frame-done'
FAILURE_MARKER = 'buildcat-failure:'
OUTPUT_PARMS = ('vm_picture', 'picture', 'outputimage', 'ar_picture',
                'RS_outputFileNamePrefix', 'sopoutput', 'lopoutput', 'file')


def say(text):
    sys.stdout.write(text + '\n')
    sys.stdout.flush()


def fail(reason):
    say(FAILURE_MARKER + ' ' + reason)
    sys.exit(3)


def message(error):
    try:
        return error.instanceMessage()
    except Exception:
        return str(error)


def output_of(node, frame):
    for name in OUTPUT_PARMS:
        parm = node.parm(name)
        if parm is None:
            continue
        try:
            value = parm.evalAtFrame(frame)
        except Exception:
            continue
        if value:
            return value
    return ''


def frame_done(node, frame):
    say(('%s %g %s' % (FRAME_MARKER, frame, output_of(node, frame))).rstrip())


def on_render_event(rop, event, time):
    if event == hou.ropRenderEventType.PostFrame:
        frame_done(rop, hou.timeToFrame(time))


def check(node):
    errors = node.errors()
    if errors:
        fail('`%s` failed: %s' % (node.path(), '; '.join(errors)))


def renders(node):
    return isinstance(node, hou.RopNode) or callable(getattr(node, 'render', None))


def render_node(node):
    if renders(node):
        return node
    inner = node.node('render')
    if inner is not None and renders(inner):
        return inner
    if node.parm('execute') is not None:
        return node
    return None


def frames(start, stop, step):
    frame = start
    while frame <= stop:
        yield frame
        frame += step


def press_execute(node, frame):
    if node.parm('trange') is not None:
        node.parm('trange').set(1)
    node.parmTuple('f').set((frame, frame, 1))
    node.parm('execute').pressButton()


def render(node, start, stop, step):
    if renders(node) and callable(getattr(node, 'addRenderEventCallback', None)):
        node.addRenderEventCallback(on_render_event)
        node.render(frame_range=(start, stop, step), verbose=True, output_progress=True)
        check(node)
        return
    for frame in frames(start, stop, step):
        if renders(node):
            node.render(frame_range=(frame, frame, 1), verbose=True, output_progress=True)
        else:
            press_execute(node, frame)
        check(node)
        frame_done(node, frame)


hou.hipFile.load(hip, suppress_save_prompt=True, ignore_load_warnings=True)
node = hou.node(path)
if node is None:
    fail('there is no node `%s` in `%s`' % (path, shown))
target = render_node(node)
if target is None:
    fail('`%s` is not a render node (type %s)' % (path, node.type().name()))
for start, stop, step in ranges:
    try:
        render(target, start, stop, step)
    except hou.Error as error:
        fail('`%s` failed: %s' % (target.path(), message(error)))
"#;

/// The code that loads `hip` (shown in messages as `shown`, the job's path), finds the
/// node at `path` and renders each range with it ([`HIP_PROGRAM`]).
pub(super) fn hip_code(hip: &str, shown: &str, path: &str, ranges: &[FrameRange]) -> String {
    let mut code = String::from("import sys\nimport hou\n");
    // Writing to a String cannot fail.
    let _ = writeln!(code, "hip = {}", python_literal(hip));
    let _ = writeln!(code, "shown = {}", python_literal(shown));
    let _ = writeln!(code, "path = {}", python_literal(path));
    let inclusive: Vec<String> = ranges
        .iter()
        .map(|range| format!("({}, {}, {})", range.start, range.stop - 1, range.step))
        .collect();
    let _ = writeln!(code, "ranges = [{}]", inclusive.join(", "));
    code.push_str(HIP_PROGRAM);
    code
}

/// `hython -c CODE` rendering `ranges` of `hip` (as the tool should be given it; `shown`
/// in messages) with the node at `path`.
pub(super) fn hip_spec(
    executable: &Executable,
    root: &Path,
    hip: &str,
    shown: &str,
    path: &str,
    ranges: &[FrameRange],
) -> ProcessSpec {
    ProcessSpec::new(executable.path(), root)
        .arg("-c")
        .arg(hip_code(hip, shown, path, ranges))
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

/// Reads an `ALF_PROGRESS N%` line of a tool that reports each frame from 0 to 100%
/// (`mantra -f`, husk): 100% ends the frame, anything below is how far the frame is.
/// Whether `line` was such a line.
pub(super) fn frame_alf_progress(watch: &mut RenderWatch<'_>, line: &str) -> bool {
    match alf_progress(line) {
        Some(percent) if percent >= 100 => watch.frame_done(),
        Some(percent) => watch.frame_progress(percent),
        None => return false,
    }
    true
}

/// The file of a line saying an image is written: mantra's `Generating Image: PATH (WxH)`
/// and Karma's `... Image: PATH`, as CGRU's Afanasy parsers read them (`mantra.py`: the
/// text after `Generating Image:` up to ` (`; `karma.py`: `.*Image: (.+)`). The size in
/// parentheses is taken off.
pub(super) fn image_line(line: &str) -> Option<&str> {
    let (_, rest) = line.split_once("Image: ")?;
    let path = match rest.rfind(" (") {
        Some(size) if rest.trim_end().ends_with(')') => &rest[..size],
        _ => rest,
    };
    let path = path.trim();
    (!path.is_empty()).then_some(path)
}

/// The frame of a [`FRAME_MARKER`] line, and the file the node wrote for it when its
/// output parameter names one (the first of `OUTPUT_PARMS` in [`HIP_PROGRAM`] it has:
/// Mantra's `vm_picture`, Karma's `picture`, the USD Render ROP's `outputimage`, Arnold's
/// `ar_picture`, Redshift's `RS_outputFileNamePrefix`, geometry's `sopoutput`, USD's
/// `lopoutput`, the File Cache SOP's `file`), evaluated at that frame.
pub(super) fn frame_marker(line: &str) -> Option<(f64, Option<&str>)> {
    let rest = line.trim().strip_prefix(FRAME_MARKER)?.trim_start();
    let (frame, path) = match rest.split_once(' ') {
        Some((frame, path)) => (frame, Some(path.trim()).filter(|path| !path.is_empty())),
        None => (rest, None),
    };
    Some((frame.parse().ok()?, path))
}

/// The reason of a [`FAILURE_MARKER`] line.
pub(super) fn failure_marker(line: &str) -> Option<&str> {
    Some(line.trim().strip_prefix(FAILURE_MARKER)?.trim())
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
        return Err(Failure::new("the render node's path is empty"));
    }
    let hip = scene_file(&context, &task.hip).await?;
    let spec = hip_spec(
        &executable,
        &context.root,
        &path_text(&executable, &hip)?,
        &task.hip,
        &task.rop,
        &task.frames,
    );
    let mut watch = RenderWatch::new(&context, total, task.frames.clone(), HYTHON_FAILURES);
    let report = run_process(spec, &context, |line| hython_line(&mut watch, line)).await?;
    watch.conclude(report, &executable.file_name()).await
}

/// Reads one line of a hip render: our code's markers (a frame done, a failure), images
/// written, failure lines. `ALF_PROGRESS` is progress within the frame and counts no frame:
/// the frame marker does (a ROP's 100% may come before its post-frame callback).
fn hython_line(watch: &mut RenderWatch<'_>, line: &str) {
    if let Some(percent) = alf_progress(line) {
        watch.frame_progress(percent);
    } else if let Some(reason) = failure_marker(line) {
        watch.fail(reason.to_owned());
    } else if let Some((_, written)) = frame_marker(line) {
        if let Some(path) = written {
            watch.output(path);
        }
        watch.frame_done();
    } else if let Some(path) = image_line(line) {
        watch.output(path);
    }
    watch.check(line);
}

/// The handler of [`HoudiniRenderIfd`]: one frame, done at `ALF_PROGRESS 100%`.
pub(super) async fn render_ifd(
    task: HoudiniRenderIfd,
    context: JobContext,
    executable: Arc<Executable>,
) -> Result<RenderReport, Failure> {
    let ifd = scene_file(&context, &task.ifd).await?;
    let spec = ifd_spec(&executable, &context.root, &ifd)?;
    let mut watch = RenderWatch::new(&context, 1, Vec::new(), MANTRA_FAILURES);
    let report = run_process(spec, &context, |line| {
        if let Some(path) = image_line(line) {
            watch.output(path);
        }
        // One file is one frame: its progress reaching 100% ends it.
        frame_alf_progress(&mut watch, line);
        watch.check(line);
    })
    .await?;
    watch.conclude(report, &executable.file_name()).await
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
    fn the_hip_code_assigns_the_values_then_runs_the_program() {
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
            "a.hip",
            "/stage/karma1",
            &ranges,
        );
        assert_eq!(spec.program, Path::new("/opt/hfs/bin/hython"));
        assert_eq!(spec.dir, Path::new("/farm"));
        assert_eq!(spec.stdin, None);
        assert!(spec.env.is_empty());
        let expected = format!(
            "import sys\n\
             import hou\n\
             hip = u'/farm/a.hip'\n\
             shown = u'a.hip'\n\
             path = u'/stage/karma1'\n\
             ranges = [(1, 10, 1), (75, 100, 2), (-5, -5, 1)]\n\
             {HIP_PROGRAM}"
        );
        assert_eq!(args(&spec), ["-c", expected.as_str()]);
    }

    #[test]
    fn the_program_prints_the_markers_the_worker_reads() {
        assert!(HIP_PROGRAM.contains(&format!("FRAME_MARKER = '{FRAME_MARKER}'\n")));
        assert!(HIP_PROGRAM.contains(&format!("FAILURE_MARKER = '{FAILURE_MARKER}'\n")));
        assert!(HIP_PROGRAM.contains("addRenderEventCallback(on_render_event)"));
        assert!(HIP_PROGRAM.contains("hou.ropRenderEventType.PostFrame"));
        assert!(HIP_PROGRAM.contains("node.errors()"));
        assert!(HIP_PROGRAM.contains("is not a render node (type %s)"));
        assert_eq!(frame_marker("buildcat-frame-done 12"), Some((12.0, None)));
        assert_eq!(frame_marker("buildcat-frame-done 1.5\r"), Some((1.5, None)));
        assert_eq!(
            frame_marker("buildcat-frame-done 3 /farm/geo/a b.0003.bgeo.sc"),
            Some((3.0, Some("/farm/geo/a b.0003.bgeo.sc")))
        );
        assert_eq!(frame_marker("buildcat-frame-done"), None);
        assert_eq!(frame_marker("buildcat-frame-done x /a"), None);
        assert_eq!(
            failure_marker("buildcat-failure: `/obj/geo1` is not a render node (type geo)"),
            Some("`/obj/geo1` is not a render node (type geo)")
        );
        assert_eq!(failure_marker("failure: x"), None);
    }

    #[test]
    fn image_lines_name_the_file() {
        assert_eq!(
            image_line("Generating Image: /farm/render/a.0001.exr (1920x1080)"),
            Some("/farm/render/a.0001.exr")
        );
        assert_eq!(
            image_line("[12:00:01] karma: Image: /farm/out/beauty.0003.exr"),
            Some("/farm/out/beauty.0003.exr")
        );
        assert_eq!(
            image_line("Generating Image: /farm/a (copy).exr (64x64)"),
            Some("/farm/a (copy).exr")
        );
        assert_eq!(image_line("Generating Image: "), None);
        assert_eq!(image_line("ALF_PROGRESS 100%"), None);
    }

    #[test]
    fn nasty_names_stay_inside_their_literals() {
        let code = hip_code("/farm/it's\n$(x).hip", "it's", "/out/a')\nimport os#", &[]);
        assert!(
            code.contains("hip = u'/farm/it\\'s\\n$(x).hip'\n"),
            "{code}"
        );
        assert!(
            code.contains("path = u'/out/a\\')\\nimport os#'\n"),
            "{code}"
        );
        assert!(code.contains("ranges = []\n"), "{code}");
        assert_eq!(
            code.lines().count(),
            6 + HIP_PROGRAM.lines().count(),
            "{code}"
        );
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

    fn monitored() -> (JobContext, crate::context::JobMonitor) {
        let job: buildcat_proto::JobId = "019000c7-9c00-7c4e-8f00-123456789abc"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let task = buildcat_proto::TaskId::new(job, 0);
        JobContext::new(task, 1, "default", "/farm", "w").monitored()
    }

    /// Guards issue 19's frames: a range of three frames reports a frame per marker of the
    /// post-frame callback, never per `ALF_PROGRESS 100%`, which is only how far the frame
    /// is (`frame_percent`, cleared by the marker); the images become outputs relative to
    /// the root; a failure marker or line fails the task with its text, also after an exit
    /// code of 0.
    #[test]
    fn frames_come_from_markers_and_failures_from_lines() {
        let (context, monitor) = monitored();
        let ranges = vec![FrameRange {
            start: 1,
            stop: 4,
            step: 1,
        }];
        let mut watch = RenderWatch::new(&context, 3, ranges, HYTHON_FAILURES);
        let done = |monitor: &crate::context::JobMonitor| {
            monitor
                .take_progress()
                .map(|progress| (progress.done, progress.total, progress.outputs.len()))
        };
        let percent = |monitor: &crate::context::JobMonitor| {
            monitor
                .take_progress()
                .map(|progress| (progress.done, progress.frame_percent))
        };
        assert_eq!(done(&monitor), Some((0, 3, 0)));
        hython_line(&mut watch, "ALF_PROGRESS 45%");
        assert_eq!(percent(&monitor), Some((0, Some(45))));
        hython_line(&mut watch, "ALF_PROGRESS 45%");
        assert_eq!(
            percent(&monitor),
            None,
            "an unchanged percentage was sent again"
        );
        for line in ["ALF_PROGRESS 50%", "ALF_PROGRESS 100%"] {
            hython_line(&mut watch, line);
        }
        assert_eq!(
            percent(&monitor),
            Some((0, Some(100))),
            "ALF_PROGRESS counted as a frame"
        );
        hython_line(
            &mut watch,
            "Generating Image: /farm/render/a.0001.exr (64x64)",
        );
        assert_eq!(done(&monitor), Some((0, 3, 1)));
        hython_line(&mut watch, "buildcat-frame-done 1");
        assert_eq!(percent(&monitor), Some((1, None)));
        hython_line(&mut watch, "buildcat-frame-done 2 /farm/render/a.0002.exr");
        hython_line(&mut watch, "buildcat-frame-done 3");
        hython_line(&mut watch, "buildcat-frame-done 4");
        assert_eq!(done(&monitor), Some((3, 3, 2)));
        let finished = watch.finish(exited(0), "hython");
        assert_eq!(
            finished.ok(),
            Some(RenderReport {
                frames: 3,
                outputs: vec![
                    "render/a.0001.exr".to_owned(),
                    "render/a.0002.exr".to_owned()
                ],
            })
        );

        let failing = |lines: &[&str], code: i32| {
            let (context, _monitor) = monitored();
            let mut watch = RenderWatch::new(&context, 1, Vec::new(), HYTHON_FAILURES);
            for line in lines {
                hython_line(&mut watch, line);
            }
            watch
                .finish(exited(code), "hython")
                .err()
                .map(|failure| (failure.reason, failure.exit_code))
        };
        assert_eq!(
            failing(
                &["mantra: No licenses could be found to run this application"],
                0
            ),
            Some((
                "`hython` failed: mantra: No licenses could be found to run this application \
                 (it exited 0 all the same)"
                    .to_owned(),
                Some(0)
            ))
        );
        assert_eq!(
            failing(
                &["buildcat-failure: `/obj/geo1` is not a render node (type geo)"],
                3
            ),
            Some((
                "`hython` failed: `/obj/geo1` is not a render node (type geo)".to_owned(),
                Some(3)
            ))
        );
        assert_eq!(
            failing(&["ALF_PROGRESS 100%"], 1),
            Some(("`hython` failed".to_owned(), Some(1)))
        );
        assert_eq!(
            failing(&["Failed to create file"], 0).map(|f| f.1),
            Some(Some(0))
        );
    }

    fn exited(code: i32) -> crate::process::ProcessReport {
        crate::process::ProcessReport {
            end: crate::process::ProcessEnd::Exited {
                code: Some(code),
                signal: None,
            },
            tail: Vec::new(),
            elapsed: std::time::Duration::ZERO,
        }
    }

    /// Guards issue 19's item 8: mantra's licence helper (`hserver`) is started by the
    /// first tool of a session and outlives it, in a session of its own, holding the
    /// output the tool gave it. The task ends without waiting out the kill grace (600 s
    /// here) for it, and the helper is left running, as the service it is.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_licence_helper_that_outlives_the_task_does_not_hold_it_up() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        std::fs::write(root.join("a.ifd"), "ifd").unwrap_or_else(|e| panic!("{e}"));
        let mantra = root.join("mantra");
        std::fs::write(
            &mantra,
            "#!/bin/sh
             setsid sleep 300 &
             echo $! > hserver.pid
             echo image > a.exr
             echo \"Generating Image: $PWD/a.exr (64x64)\"
             echo 'ALF_PROGRESS 100%'
",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&mantra, std::fs::Permissions::from_mode(0o755))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let job: buildcat_proto::JobId = "019000c7-9c00-7c4e-8f00-123456789abc"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let context = JobContext::new(buildcat_proto::TaskId::new(job, 0), 1, "q", root, "w")
            .with_kill_grace(std::time::Duration::from_secs(600));
        let task = HoudiniRenderIfd {
            ifd: "a.ifd".to_owned(),
        };
        let rendered = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            render_ifd(task, context, Arc::new(Executable::new(&mantra))),
        )
        .await;
        let pid: Option<libc::pid_t> = std::fs::read_to_string(root.join("hserver.pid"))
            .ok()
            .and_then(|text| text.trim().parse().ok());
        // SAFETY: `kill` has no memory-safety preconditions; signal 0 only asks whether the
        // process is there.
        let alive = pid.is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0);
        if let Some(pid) = pid {
            // SAFETY: as above; the process is the `sleep` this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let report = rendered
            .unwrap_or_else(|_| panic!("the task waited on the helper"))
            .unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(report.outputs, ["a.exr"]);
        assert!(alive, "the helper did not outlive the task");
    }

    /// Guards issue 19's progress within a frame for the tools that report each frame to
    /// 100% (`mantra -f`, husk): below 100% is the frame's percentage, 100% ends the frame
    /// and clears it; other lines are not progress.
    #[test]
    fn alf_progress_is_the_frame_and_its_end() {
        let (context, monitor) = monitored();
        let mut watch = RenderWatch::new(&context, 2, Vec::new(), MANTRA_FAILURES);
        let seen = |monitor: &crate::context::JobMonitor| {
            monitor
                .take_progress()
                .map(|progress| (progress.done, progress.frame_percent))
        };
        assert_eq!(seen(&monitor), Some((0, None)));
        let check = |watch: &mut RenderWatch<'_>, line: &str, expected| {
            let read = frame_alf_progress(watch, line);
            assert_eq!(seen(&monitor).filter(|_| read), expected, "{line}");
        };
        check(&mut watch, "ALF_PROGRESS 0%", Some((0, Some(0))));
        check(&mut watch, "ALF_PROGRESS 45%", Some((0, Some(45))));
        check(&mut watch, "ALF_PROGRESS 100%", Some((1, None)));
        check(&mut watch, "ALF_PROGRESS 7%", Some((1, Some(7))));
        check(&mut watch, "Image: /farm/a.exr", None);
        check(&mut watch, "ALF_PROGRESS 120%", Some((2, None)));
        // The task's frames are all done: more is no frame and no percentage.
        check(&mut watch, "ALF_PROGRESS 100%", None);
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
