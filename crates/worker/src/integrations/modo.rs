//! Modo: `modo_cl` reads commands on stdin, one per line. The version comes from
//! `query platformservice appversion ?`; a render runs a Python script the worker writes
//! for the task ([`RENDER_PROGRAM`] after the job's values) with Modo's `@` syntax, which
//! runs a script file (Foundry's SDK, "Command System: Executing Scripts").
//!
//! Why a script rather than bare commands (issue 19): success judged by the exit code alone
//! passed renders that failed. modo_cl is a command interpreter: after a command fails it
//! prints the result and runs the next one, so its exit code says nothing of the commands'
//! results; and Foundry documents no form for a failed command's result in headless output
//! (its Headless page says only that results come back on stdout, and that a missing licence
//! fails "with a license not found error", without its text). In Python, Modo reports a
//! failed command as an exception ("Error handling is performed with exceptions instead of
//! result codes", Foundry's SDK page on Python), so the script runs each command through
//! `lx.eval`, and turns a failure into [`FAILURE_MARKER`] with the command and Modo's
//! message. Other farm
//! managers' Modo scripts work the same way (Conductor's Modo render script catches the
//! exception of `lx.eval` and exits with `LXe_FAILED`).
//!
//! What the script does, in order: opens the scene; lists the enabled render outputs that
//! name a file (`sICHAN_TEXTURELAYER_ENABLE`, `sICHAN_RENDEROUTPUT_FILENAME` of each
//! `sITYPE_RENDEROUTPUT` item, the channels Modo batch scripts read) and fails at once
//! when there is none, since the render would save nothing; sets the render item's `first`,
//! `last` and `step`; notes the files already beside each output's file name; runs
//! `render.animation {*}` (the whole range in one render, as before: the scene renders as
//! an animation, not as separate stills); then checks the frames' files:
//! - each output must have written (made or changed) at least one file whose name starts
//!   with its file name's stem, in the folder the name points to (a relative name is looked
//!   for beside the scene and under the working directory). Modo names each frame's file
//!   by the render item's *output pattern* (`outPat`, by default
//!   `[<pass>][<output>][<LR>]<FFFF>`) and the format's extension, neither of which is
//!   needed to find it this way;
//! - when the output pattern numbers frames (holds `<F`, or is empty and so the default),
//!   every frame of the range must be the number in one of each output's new files (after
//!   the stem: `shot010.0012.exr` is frame 12, not 10), else the task fails naming the frame
//!   and the output;
//! - each new file is printed after [`OUTPUT_MARKER`] (the task's outputs, previews), each
//!   frame checked after [`FRAME_MARKER`], and [`DONE_MARKER`] last.
//!
//! The worker fails the task on a [`FAILURE_MARKER`] line (its text is the reason, whatever
//! the exit code), and also when modo_cl ends without [`DONE_MARKER`]: a missing licence,
//! a script that did not run, or a Modo that stopped all end that way, whatever they print.
//!
//! Markers reach stdout two ways, since Foundry does not say which a script's output
//! takes in headless mode: `lx.out` writes to the event log, which `log.toConsole true`
//! sends to stdout (Foundry's Headless page, "Logging to the Console"), and `print` writes
//! to the script's stdout. A marker may sit after a prefix the event log adds; the worker
//! reads each once (a frame by its number, an output by its path).
//!
//! Every job value is in the script as a Python literal (see [`python_literal`]); the
//! scene's path is also passed to `scene.open` as a Modo command argument, double-quoted
//! with `\` and `"` escaped, and a path holding a line break is refused, since Modo's
//! command line could not carry it. Jobs' frame ranges are half-open; Modo's `last` is
//! inclusive, so it is `stop - 1`.
//!
//! Paths given to a Windows `modo_cl.exe` (on WSL) use forward slashes (`C:/farm/a.lxo`):
//! Modo takes them on Windows, and a backslash inside a quoted command argument is an
//! escape to Modo's command parser, which `\\` doubling only works around.
//!
//! Which version lines are understood (modo_cl echoes the query, then answers):
//! `> : 1520` (what the original Buildcat read), `> 1520`, `: 1520` and a bare `1520`; the
//! first line that is a number once leading `>`, `:` and spaces are taken off is the
//! version.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use buildcat_proto::Failure;
use buildcat_proto::dcc::{ModoInfo, ModoRender, RenderReport, ToolInfoReport};
use buildcat_proto::frames::FrameRange;

use super::quote::{modo_string, python_literal};
use super::tools::Executable;
use super::watch::RenderWatch;
use super::{
    count_frames, path_text, scene_file, task_folder, task_folder_prefix, tool_report, tool_version,
};
use crate::context::JobContext;
use crate::process::{ProcessSpec, run_process};

/// What `modo_cl` is fed to print its version.
pub(super) const VERSION_SCRIPT: &str = "query platformservice appversion ?\napp.quit\n";

/// What the render script prints (stdout) before each file the render wrote.
pub(super) const OUTPUT_MARKER: &str = "buildcat-output ";

/// What the render script prints after each frame whose files it checked, then the frame.
pub(super) const FRAME_MARKER: &str = "buildcat-frame-done ";

/// What the render script prints before the reason it gives up (a command failed, no
/// render output names a file, a frame's file is missing).
pub(super) const FAILURE_MARKER: &str = "buildcat-failure:";

/// What the render script prints last, once every check passed.
pub(super) const DONE_MARKER: &str = "buildcat-modo-done";

/// Lines modo_cl prints that mean a render failed whatever follows: none. Foundry
/// documents none (see the module docs); the script's markers and [`DONE_MARKER`] carry
/// every failure instead of guessed text.
const MODO_FAILURES: &[&str] = &[];

/// `modo_cl` fed [`VERSION_SCRIPT`].
pub(super) fn info_spec(executable: &Executable, root: &Path) -> ProcessSpec {
    ProcessSpec::new(executable.path(), root).stdin(VERSION_SCRIPT)
}

/// The version in `modo_cl`'s answer (see the module docs for the forms understood).
pub(super) fn parse_version(lines: &[String]) -> Option<String> {
    lines.iter().find_map(|line| {
        let value = line
            .trim_start_matches(|c: char| c == '>' || c == ':' || c.is_whitespace())
            .trim_end();
        let numeric = value.starts_with(|c: char| c.is_ascii_digit())
            && value.chars().all(|c| c.is_ascii_digit() || c == '.');
        numeric.then(|| value.to_owned())
    })
}

/// The program of the render script, after the job's values are assigned (`scene`, the
/// scene's path as Modo is given it; `scene_arg`, the same as a Modo command argument;
/// `first`, `last`, `step`, Modo's inclusive range). Python 2.7 (Modo up to 14) and 3.
pub(super) const RENDER_PROGRAM: &str = r#"import os
import stat
import sys

import lx
import modo

OUTPUT_MARKER = 'buildcat-output '
FRAME_MARKER = 'buildcat-frame-done '
FAILURE_MARKER = 'buildcat-failure:'
DONE_MARKER = 'buildcat-modo-done'
DIGITS = '0123456789'


class Stop(Exception):
    pass


def say(text):
    try:
        lx.out(text)
    except Exception:
        pass
    sys.stdout.write(text + '\n')
    sys.stdout.flush()


def fail(reason):
    say(FAILURE_MARKER + ' ' + reason)
    raise Stop()


def run(command):
    try:
        return lx.eval(command)
    except Exception as error:
        fail('`%s` failed: %s' % (command, error))


def outputs():
    found = []
    for item in modo.Scene().items(lx.symbol.sITYPE_RENDEROUTPUT):
        if not item.channel(lx.symbol.sICHAN_TEXTURELAYER_ENABLE).get():
            continue
        filename = item.channel(lx.symbol.sICHAN_RENDEROUTPUT_FILENAME).get()
        if filename:
            found.append((item.name, filename))
    return found


def places(filename):
    folder, base = os.path.split(filename)
    stem = os.path.splitext(base)[0] or base
    if os.path.isabs(filename):
        folders = [folder]
    else:
        folders = [os.path.join(os.path.dirname(scene), folder),
                   os.path.join(os.getcwd(), folder)]
    spots = []
    for each in folders:
        spot = (os.path.normpath(each), stem)
        if spot not in spots:
            spots.append(spot)
    return spots


def snapshot(spots):
    seen = {}
    for folder, stem in spots:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if not name.startswith(stem):
                continue
            path = os.path.join(folder, name)
            try:
                state = os.stat(path)
            except OSError:
                continue
            if stat.S_ISREG(state.st_mode):
                seen[path] = (state.st_size, state.st_mtime)
    return seen


def numbers(text):
    found = set()
    digits = ''
    for c in text + ' ':
        if c in DIGITS:
            digits += c
        elif digits:
            found.add(int(digits))
            digits = ''
    return found


def numbered():
    try:
        pattern = modo.Scene().renderItem.channel(lx.symbol.sICHAN_POLYRENDER_OUTPAT).get()
    except Exception:
        return True
    return not pattern or '<F' in pattern.upper()


def where(spots):
    return ' or '.join(os.path.join(folder, stem + '*') for folder, stem in spots)


def main():
    run('scene.open ' + scene_arg)
    wanted = outputs()
    if not wanted:
        fail('the scene has no enabled render output with a file name, so the render '
             'would save nothing; set the filename of a render output (Shader Tree) '
             'and save the scene')
    run('select.itemType polyRender')
    run('item.channel first %d' % first)
    run('item.channel last %d' % last)
    run('item.channel step %d' % step)
    spots = [places(filename) for name, filename in wanted]
    before = [snapshot(each) for each in spots]
    run('render.animation {*}')
    new = []
    shown = set()
    for each, old in zip(spots, before):
        files = sorted(path for path, state in snapshot(each).items()
                       if old.get(path) != state)
        new.append(files)
        for path in files:
            if path not in shown:
                shown.add(path)
                say(OUTPUT_MARKER + path)
    for (name, filename), each, files in zip(wanted, spots, new):
        if not files:
            fail('render output `%s` wrote no file: nothing new at %s'
                 % (name, where(each)))
    check = numbered()
    for frame in range(first, last + 1, step):
        for (name, filename), each, files in zip(wanted, spots, new):
            if not check:
                continue
            stem = each[0][1]
            if not [path for path in files
                    if abs(frame) in numbers(os.path.basename(path)[len(stem):])]:
                fail('frame %d: render output `%s` wrote no file numbered %d at %s'
                     % (frame, name, frame, where(each)))
        say(FRAME_MARKER + '%d' % frame)
    say(DONE_MARKER)


try:
    main()
except Stop:
    pass
except Exception as error:
    say(FAILURE_MARKER + " Buildcat's render script stopped: %s: %s"
        % (type(error).__name__, error))
"#;

/// The render script for `range` of the scene at `scene` (as Modo is given it), or `None`
/// if the path cannot be written into a Modo command.
pub(super) fn render_code(scene: &str, range: FrameRange) -> Option<String> {
    let scene_arg = modo_string(scene)?;
    let mut code = String::from("# python\n");
    // Writing to a String cannot fail.
    let _ = writeln!(code, "scene = {}", python_literal(scene));
    let _ = writeln!(code, "scene_arg = {}", python_literal(&scene_arg));
    let _ = writeln!(code, "first = {}", range.start);
    let _ = writeln!(code, "last = {}", range.stop - 1);
    let _ = writeln!(code, "step = {}", range.step);
    code.push_str(RENDER_PROGRAM);
    Some(code)
}

/// The commands fed to `modo_cl` to run the render script at `script` (as Modo is given
/// it); `None` if the path cannot be written into a Modo command.
pub(super) fn render_commands(script: &str) -> Option<String> {
    let script = modo_string(script)?;
    Some(format!(
        "log.toConsole true\n\
         log.toConsoleRolling true\n\
         pref.value render.threads auto\n\
         @{script}\n\
         app.quit\n"
    ))
}

/// The refusal of a path modo_cl's command line cannot carry.
fn unwritable(what: &str, path: &str) -> Failure {
    Failure::new(format!(
        "the {what} path {path:?} holds a line break or another control character, which \
         modo_cl's line-by-line command input cannot carry; rename the file"
    ))
}

/// `modo_cl` fed the commands that run the script at `script`.
pub(super) fn render_spec(
    executable: &Executable,
    root: &Path,
    script: &str,
) -> Result<ProcessSpec, Failure> {
    let commands = render_commands(script).ok_or_else(|| unwritable("render script", script))?;
    Ok(ProcessSpec::new(executable.path(), root).stdin(commands))
}

/// `path` as Modo is given it: as [`path_text`] writes it, with forward slashes for a
/// Windows program (a native one keeps its path as it is: a backslash is a legal character
/// in a Linux file name).
pub(super) fn modo_path(executable: &Executable, path: &Path) -> Result<String, Failure> {
    let text = path_text(executable, path)?;
    Ok(if executable.is_windows_program() {
        text.replace('\\', "/")
    } else {
        text
    })
}

/// The text after `marker` in `line`, wherever it starts (the event log may prefix it).
fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|at| &line[at + marker.len()..])
}

/// What one line of a render says.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Said<'a> {
    /// The script gave up, with this reason.
    Failed(&'a str),
    /// The render wrote this file.
    Output(&'a str),
    /// This frame's files were checked.
    Frame(i64),
    /// Every check passed.
    Done,
    /// Anything else (Modo's own lines).
    Other,
}

/// Reads a line of the render's output for the script's markers.
pub(super) fn read_line(line: &str) -> Said<'_> {
    let line = line.trim_end();
    if let Some(reason) = after(line, FAILURE_MARKER) {
        Said::Failed(reason.trim())
    } else if let Some(path) = after(line, OUTPUT_MARKER) {
        if path.trim().is_empty() {
            Said::Other
        } else {
            Said::Output(path)
        }
    } else if let Some(frame) = after(line, FRAME_MARKER) {
        frame.trim().parse().map_or(Said::Other, Said::Frame)
    } else if after(line, DONE_MARKER).is_some() {
        Said::Done
    } else {
        Said::Other
    }
}

/// A render's lines read into the task's progress: each frame once (the script's lines may
/// come twice, see the module docs), the files written, the first failure, the end.
struct ModoWatch<'a> {
    /// Frames, outputs and the failure.
    watch: RenderWatch<'a>,
    /// The last frame counted: frames come in increasing order, so a repeat is not.
    last_frame: Option<i64>,
    /// Whether the script said it finished.
    done: bool,
}

impl ModoWatch<'_> {
    /// Takes in one line of output.
    fn line(&mut self, line: &str) {
        match read_line(line) {
            Said::Failed(reason) => self.watch.fail(reason.to_owned()),
            Said::Output(path) => self.watch.output(path),
            Said::Frame(frame) => {
                if self.last_frame.is_none_or(|last| frame > last) {
                    self.last_frame = Some(frame);
                    self.watch.frame_done();
                }
            }
            Said::Done => self.done = true,
            Said::Other => {}
        }
        self.watch.check(line);
    }
}

/// Writes the render script into a new private folder (removed when the folder is
/// dropped), off the runtime's threads.
async fn write_script(
    context: &JobContext,
    code: String,
) -> Result<(tempfile::TempDir, PathBuf), Failure> {
    let prefix = task_folder_prefix("modo", context);
    tokio::task::spawn_blocking(move || {
        let folder = task_folder(&prefix)?;
        let script = folder.path().join("buildcat_render.py");
        std::fs::write(&script, code).map_err(|e| {
            Failure::new(format!(
                "cannot write the render script {}: {e}",
                script.display()
            ))
        })?;
        Ok((folder, script))
    })
    .await
    .map_err(|e| Failure::new(format!("could not write the render script: {e}")))?
}

/// The handler of [`ModoInfo`].
pub(super) async fn info(
    _task: ModoInfo,
    context: JobContext,
    executable: Arc<Executable>,
) -> Result<ToolInfoReport, Failure> {
    let spec = info_spec(&executable, &context.root);
    let version = tool_version(&context, &executable, spec, parse_version).await?;
    tool_report(&context, &executable, version)
}

/// The handler of [`ModoRender`].
pub(super) async fn render(
    task: ModoRender,
    context: JobContext,
    executable: Arc<Executable>,
) -> Result<RenderReport, Failure> {
    let range = FrameRange {
        start: task.start,
        stop: task.stop,
        step: task.step,
    };
    let total = count_frames(&[range])?;
    let scene = scene_file(&context, &task.lxo).await?;
    let scene_text = modo_path(&executable, &scene)?;
    let code = render_code(&scene_text, range).ok_or_else(|| unwritable("scene", &task.lxo))?;
    let (folder, script) = write_script(&context, code).await?;
    let spec = render_spec(
        &executable,
        &context.root,
        &modo_path(&executable, &script)?,
    )?;
    let mut modo = ModoWatch {
        watch: RenderWatch::new(&context, total, vec![range], MODO_FAILURES),
        last_frame: None,
        done: false,
    };
    let report = run_process(spec, &context, |line| modo.line(line)).await;
    // A folder of one small file; removed off the runtime's threads all the same.
    let _ = tokio::task::spawn_blocking(move || drop(folder)).await;
    let report = report?;
    let ModoWatch {
        mut watch, done, ..
    } = modo;
    if !done {
        watch.fail(
            "modo_cl ended before Buildcat's render script finished (no licence, the \
             script did not run, or Modo stopped); see the output's last lines"
                .to_owned(),
        );
    }
    watch.conclude(report, &executable.file_name()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_in_the_forms_modo_cl_prints() {
        let check = |lines: &[&str], expected: Option<&str>| {
            let lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
            assert_eq!(parse_version(&lines).as_deref(), expected, "{lines:?}");
        };
        check(
            &[": query platformservice appversion ?", "> : 1520"],
            Some("1520"),
        );
        check(&["> 1520"], Some("1520"));
        check(&[": 1700"], Some("1700"));
        check(&["Modo 15.2v1 starting", "1520\r"], Some("1520"));
        check(&["> : 16.1"], Some("16.1"));
        check(&[": query platformservice appversion ?", "> : ?"], None);
        check(&["Modo 15.2v1"], None);
        check(&[], None);
    }

    #[test]
    fn the_info_script_queries_the_version() {
        let spec = info_spec(&Executable::new("/opt/modo/modo_cl"), Path::new("/farm"));
        assert_eq!(spec.program, Path::new("/opt/modo/modo_cl"));
        assert!(spec.args.is_empty());
        assert_eq!(
            spec.stdin.as_deref(),
            Some(&b"query platformservice appversion ?\napp.quit\n"[..])
        );
    }

    #[test]
    fn the_render_script_assigns_the_values_then_runs_the_program() {
        let range = FrameRange {
            start: 10,
            stop: 21,
            step: 5,
        };
        let code = render_code("/farm/shots/a \"b\".lxo", range).unwrap_or_default();
        let expected = format!(
            "# python\n\
             scene = u'/farm/shots/a \"b\".lxo'\n\
             scene_arg = u'\"/farm/shots/a \\\\\"b\\\\\".lxo\"'\n\
             first = 10\n\
             last = 20\n\
             step = 5\n\
             {RENDER_PROGRAM}"
        );
        assert_eq!(code, expected);
    }

    #[test]
    fn the_program_prints_the_markers_the_worker_reads() {
        for (name, marker) in [
            ("OUTPUT_MARKER", OUTPUT_MARKER),
            ("FRAME_MARKER", FRAME_MARKER),
            ("FAILURE_MARKER", FAILURE_MARKER),
            ("DONE_MARKER", DONE_MARKER),
        ] {
            let line = format!("{name} = '{marker}'\n");
            assert!(RENDER_PROGRAM.contains(&line), "no {line:?}");
        }
    }

    #[test]
    fn modo_cl_runs_the_script_then_quits() {
        let spec = render_spec(
            &Executable::new("/opt/modo/modo_cl"),
            Path::new("/farm"),
            "/tmp/buildcat-modo-7-1-x/buildcat_render.py",
        )
        .unwrap_or_else(|f| panic!("{f}"));
        assert!(spec.args.is_empty());
        assert_eq!(spec.dir, Path::new("/farm"));
        let expected = "log.toConsole true\n\
            log.toConsoleRolling true\n\
            pref.value render.threads auto\n\
            @\"/tmp/buildcat-modo-7-1-x/buildcat_render.py\"\n\
            app.quit\n";
        assert_eq!(
            String::from_utf8_lossy(spec.stdin.as_deref().unwrap_or_default()),
            expected
        );
    }

    #[test]
    fn lines_are_read_for_the_markers_wherever_they_start() {
        assert_eq!(
            read_line("buildcat-output /farm/render/a0001.exr\r"),
            Said::Output("/farm/render/a0001.exr")
        );
        assert_eq!(
            read_line("(script) buildcat-output C:/farm/render/a b0001.exr"),
            Said::Output("C:/farm/render/a b0001.exr")
        );
        assert_eq!(read_line("buildcat-output "), Said::Other);
        assert_eq!(read_line("buildcat-frame-done 12"), Said::Frame(12));
        assert_eq!(read_line("buildcat-frame-done -3"), Said::Frame(-3));
        assert_eq!(read_line("buildcat-frame-done x"), Said::Other);
        assert_eq!(
            read_line("buildcat-failure: `scene.open \"/a.lxo\"` failed: bad file"),
            Said::Failed("`scene.open \"/a.lxo\"` failed: bad file")
        );
        assert_eq!(read_line("  buildcat-modo-done"), Said::Done);
        assert_eq!(read_line("@start  modo [1610]  Luxology LLC"), Said::Other);
        assert_eq!(read_line(""), Said::Other);
    }

    #[test]
    fn a_windows_modo_gets_forward_slashes() {
        let windows = Executable::windows("/mnt/c/Program Files/Modo/modo_cl.exe");
        let path = modo_path(&windows, Path::new("/mnt/c/farm/shots/a b.lxo"))
            .unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(path, "C:/farm/shots/a b.lxo");
        let native = Executable::new("/opt/modo/modo_cl");
        let path =
            modo_path(&native, Path::new("/farm/odd\\name.lxo")).unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(path, "/farm/odd\\name.lxo");
    }

    #[test]
    fn a_path_with_a_line_break_is_refused() {
        let range = FrameRange {
            start: 1,
            stop: 2,
            step: 1,
        };
        assert_eq!(render_code("/farm/a\napp.quit\n.lxo", range), None);
        assert_eq!(render_commands("/tmp/a\rb/buildcat_render.py"), None);
        let failure = render_spec(
            &Executable::new("modo_cl"),
            Path::new("/farm"),
            "/tmp/a\nb.py",
        )
        .err()
        .map(|f| f.reason)
        .unwrap_or_default();
        assert!(failure.contains("line break"), "{failure}");
    }
}
