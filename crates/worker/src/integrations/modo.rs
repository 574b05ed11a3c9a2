//! Modo: `modo_cl` reads commands on stdin, one per line. The version comes from
//! `query platformservice appversion ?`; a render opens the scene, sets the render item's
//! first, last and step channels and renders the animation.
//!
//! The scene's path is the only job value in the script that is text; it is double-quoted
//! with `\` and `"` escaped, and a path holding a line break is refused, since it would
//! end the command early and start another. Jobs' frame ranges are half-open; Modo's
//! `last` is inclusive, so it is `stop - 1`.
//!
//! Paths given to a Windows `modo_cl.exe` (on WSL) use forward slashes (`C:/farm/a.lxo`):
//! Modo takes them on Windows, and a backslash inside a quoted command argument is an
//! escape to Modo's command parser, which `\\` doubling only works around.
//!
//! Which version lines are understood (modo_cl echoes the query, then answers):
//! `> : 1520` (what the original Buildcat read), `> 1520`, `: 1520` and a bare `1520`; the
//! first line that is a number once leading `>`, `:` and spaces are taken off is the
//! version.
//!
//! Success is judged by the exit code alone (issue 19 asked for more; both checks were
//! looked for and neither can be made honestly today):
//! - **The frames' files.** The job names no output: `render.animation {*}` writes through
//!   the scene's own render outputs, each with its file name and format, and Modo names
//!   each frame's file by its *output pattern*, a user preference (by default
//!   `[<pass>][<output>][<LR>]<FFFF>`, applied by Render Animation; described at
//!   polygonote.com/2021_0407_15958, Foundry's Render Item page,
//!   learn.foundry.com/modo/current/content/help/pages/rendering/frame.html, documents
//!   only the first, last and step channels set here). The worker cannot read the outputs'
//!   names from the `.lxo` nor the pattern from the worker's Modo preferences, so it
//!   cannot say which file each frame should be, and checking a guessed name would fail
//!   good renders. The check needs a job that names its output pattern (a later
//!   `modo-render --output`) or a documented query of the render outputs.
//! - **Failed commands.** Foundry's Headless page
//!   (learn.foundry.com/modo/developers/latest/SDK/pages/general/systems/Headless.html,
//!   and the Telnet page beside it: "identical for both telnet and headless") documents
//!   the start banner (`@start  modo [BUILD]  Luxology LLC`, the licensee, the `>`
//!   prompt) and that results come back on stdout, and says a missing licence fails "with
//!   a license not found error", but gives no form for a failed command's result nor that
//!   error's text; no other farm manager's Modo plugin in the sources searched reads one.
//!   No line is matched rather than a guessed one.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use buildcat_proto::dcc::{ModoInfo, ModoRender, RenderReport, ToolInfoReport};
use buildcat_proto::frames::FrameRange;
use buildcat_proto::{Failure, TaskProgress};

use super::quote::modo_string;
use super::tools::Executable;
use super::{count_frames, path_text, scene_file, tool_report, tool_version};
use crate::context::JobContext;
use crate::process::{ProcessSpec, run_process};

/// What `modo_cl` is fed to print its version.
pub(super) const VERSION_SCRIPT: &str = "query platformservice appversion ?\napp.quit\n";

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

/// The script rendering `range` of the scene at `scene` (as the tool should be given it);
/// `None` if the path cannot be written into a Modo command.
pub(super) fn render_script(scene: &str, range: FrameRange) -> Option<String> {
    let scene = modo_string(scene)?;
    let mut script = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        script,
        "log.toConsole true\n\
         log.toConsoleRolling true\n\
         scene.open {scene}\n\
         pref.value render.threads auto\n\
         select.itemType polyRender\n\
         item.channel first {}\n\
         item.channel last {}\n\
         item.channel step {}\n\
         render.animation {{*}}\n\
         app.quit\n",
        range.start,
        range.stop - 1,
        range.step
    );
    Some(script)
}

/// `modo_cl` fed the render script.
pub(super) fn render_spec(
    executable: &Executable,
    root: &Path,
    scene: &str,
    range: FrameRange,
) -> Result<ProcessSpec, Failure> {
    let script = render_script(scene, range).ok_or_else(|| {
        Failure::new(format!(
            "the scene path {scene:?} holds a line break or another control character, \
             which modo_cl's line-by-line command input cannot carry; rename the file"
        ))
    })?;
    Ok(ProcessSpec::new(executable.path(), root).stdin(script))
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
    let spec = render_spec(
        &executable,
        &context.root,
        &modo_path(&executable, &scene)?,
        range,
    )?;
    context.progress(TaskProgress {
        done: 0,
        total,
        outputs: Vec::new(),
        frame_percent: None,
    });
    let report = run_process(spec, &context, |_| {}).await?;
    if let Some(failure) = report.into_failure(&executable.file_name()) {
        return Err(failure);
    }
    Ok(RenderReport {
        frames: total,
        outputs: Vec::new(),
    })
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
    fn the_render_script_sets_first_last_and_step() {
        let range = FrameRange {
            start: 10,
            stop: 21,
            step: 5,
        };
        let spec = render_spec(
            &Executable::new("/opt/modo/modo_cl"),
            Path::new("/farm"),
            "/farm/shots/a \"b\".lxo",
            range,
        )
        .unwrap_or_else(|f| panic!("{f}"));
        assert!(spec.args.is_empty());
        assert_eq!(spec.dir, Path::new("/farm"));
        let expected = "log.toConsole true\n\
            log.toConsoleRolling true\n\
            scene.open \"/farm/shots/a \\\"b\\\".lxo\"\n\
            pref.value render.threads auto\n\
            select.itemType polyRender\n\
            item.channel first 10\n\
            item.channel last 20\n\
            item.channel step 5\n\
            render.animation {*}\n\
            app.quit\n";
        assert_eq!(
            String::from_utf8_lossy(spec.stdin.as_deref().unwrap_or_default()),
            expected
        );
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
        let failure = render_spec(
            &Executable::new("modo_cl"),
            Path::new("/farm"),
            "/farm/a\napp.quit\n.lxo",
            range,
        )
        .err()
        .map(|f| f.reason)
        .unwrap_or_default();
        assert!(failure.contains("line break"), "{failure}");
    }
}
