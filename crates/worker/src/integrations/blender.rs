//! Blender: `blender --version` for the version, and
//! `blender -b FILE -noaudio [-o OUTPUT] [-F FORMAT] [-E ENGINE] -f LIST` to render.
//!
//! Blender applies its arguments in order, so the scene comes first (loading it resets the
//! output settings), then the settings, then `-f`, which renders. The output pattern is
//! made absolute under the root, so the files land there whatever the scene says.
//!
//! Each render gets a private folder for HOME, XDG_CACHE_HOME, XDG_CONFIG_HOME and
//! TMPDIR, removed afterwards: nothing one job leaves (preferences, add-ons, caches, temp
//! files) reaches the next, and a scene cannot rely on a user's preferences (such as
//! running the scripts it holds) that the farm does not give every job.
//!
//! Progress comes from Blender's output: `Fra:N ...` says frame N is being rendered,
//! `Saved: 'PATH'` that a file was written, which marks a frame done (the current frame if
//! a `Fra:` line named one of the job's frames, otherwise the next frame in order: the
//! Workbench engine prints no `Fra:` lines). Blender may print `Error: ...` and still exit
//! with 0 (an unknown `-F` format, for one); such a line fails the job, as does a frame
//! that was never saved.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use buildcat_proto::dcc::{BlenderInfo, BlenderRender, RenderReport, ToolInfoReport};
use buildcat_proto::{Failure, TaskProgress};

use super::tools::Executable;
use super::{output_path, root_relative, scene_file, tool_report, tool_version};
use crate::context::JobContext;
use crate::process::{ProcessEnd, ProcessSpec, run_process};

/// `Error:` lines that say nothing about the render: Blender's report of memory it did not
/// free at exit.
const HARMLESS_ERRORS: &[&str] = &["Error: Not freed memory blocks"];

/// How many missing frames a failure names before it says "...".
const NAMED_FRAMES: usize = 20;

/// `blender --version`.
pub(super) fn info_spec(executable: &Executable, root: &Path) -> ProcessSpec {
    ProcessSpec::new(executable.path(), root).arg("--version")
}

/// The version from the `Blender 3.4.1` line `--version` starts with.
pub(super) fn parse_version(lines: &[String]) -> Option<String> {
    lines.iter().find_map(|line| {
        let version = line
            .trim()
            .strip_prefix("Blender ")?
            .split_whitespace()
            .next()?;
        version
            .starts_with(|c: char| c.is_ascii_digit())
            .then(|| version.to_owned())
    })
}

/// The folders a render's HOME, caches, configuration and temporary files go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct JobFolders {
    /// HOME.
    pub(super) home: PathBuf,
    /// XDG_CACHE_HOME.
    pub(super) cache: PathBuf,
    /// XDG_CONFIG_HOME.
    pub(super) config: PathBuf,
    /// TMPDIR.
    pub(super) tmp: PathBuf,
}

impl JobFolders {
    /// The folders under `base`: `home`, `cache`, `config` and `tmp`.
    pub(super) fn under(base: &Path) -> Self {
        JobFolders {
            home: base.join("home"),
            cache: base.join("cache"),
            config: base.join("config"),
            tmp: base.join("tmp"),
        }
    }

    /// Makes the folders (off the runtime's threads: they may be on a network mount).
    async fn create(&self) -> std::io::Result<()> {
        for folder in [&self.home, &self.cache, &self.config, &self.tmp] {
            tokio::fs::create_dir(folder).await?;
        }
        Ok(())
    }
}

/// A render, with its paths in the form Blender is given them.
#[derive(Debug, Clone)]
pub(super) struct RenderCommand<'a> {
    /// The scene.
    pub(super) scene: OsString,
    /// The output pattern (`-o`).
    pub(super) output: Option<OsString>,
    /// The image format (`-F`).
    pub(super) format: Option<&'a str>,
    /// The render engine (`-E`).
    pub(super) engine: Option<&'a str>,
    /// The frames (`-f`).
    pub(super) frames: &'a [i64],
}

/// `blender -b FILE -noaudio [-o OUTPUT] [-F FORMAT] [-E ENGINE] -f LIST` with the job's
/// private folders in its environment.
pub(super) fn render_spec(
    executable: &Executable,
    root: &Path,
    command: RenderCommand<'_>,
    folders: &JobFolders,
) -> ProcessSpec {
    let mut spec = ProcessSpec::new(executable.path(), root)
        .arg("-b")
        .arg(command.scene)
        .arg("-noaudio");
    if let Some(output) = command.output {
        spec = spec.arg("-o").arg(output);
    }
    if let Some(format) = command.format {
        spec = spec.arg("-F").arg(format);
    }
    if let Some(engine) = command.engine {
        spec = spec.arg("-E").arg(engine);
    }
    let frames: Vec<String> = command.frames.iter().map(i64::to_string).collect();
    spec.arg("-f")
        .arg(frames.join(","))
        .env("HOME", &folders.home)
        .env("XDG_CACHE_HOME", &folders.cache)
        .env("XDG_CONFIG_HOME", &folders.config)
        .env("TMPDIR", &folders.tmp)
}

/// The frame of a `Fra:N ...` line.
fn frame_line(line: &str) -> Option<i64> {
    let rest = line.strip_prefix("Fra:")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The path of a `Saved: 'PATH'` line (Blender 2.8 and later end the line there; earlier
/// ones add ` Time: ...` after the closing quote).
fn saved_line(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix("Saved:")?.trim();
    let quote = rest.chars().next().filter(|c| matches!(c, '\'' | '"'))?;
    let inner = &rest[1..];
    let end = inner.rfind(quote)?;
    Some(&inner[..end]).filter(|path| !path.is_empty())
}

/// Whether `line` is an error Blender reports (which fails the job even if it exits 0).
fn error_line(line: &str) -> Option<&str> {
    let line = line.trim();
    (line.starts_with("Error:") && !HARMLESS_ERRORS.iter().any(|h| line.starts_with(h)))
        .then_some(line)
}

/// What Blender's output says about the render so far.
#[derive(Debug)]
pub(super) struct Tracker {
    /// The job's frames, in order.
    frames: Vec<i64>,
    /// Whether each of `frames` was saved.
    saved: Vec<bool>,
    /// The frame the last `Fra:` line named.
    current: Option<i64>,
    /// The files written, relative to the root where under it.
    outputs: Vec<String>,
    /// The first `Error:` line.
    error: Option<String>,
    /// The worker's root.
    root: PathBuf,
}

impl Tracker {
    /// Nothing done yet of `frames`.
    pub(super) fn new(frames: &[i64], root: &Path) -> Self {
        Tracker {
            frames: frames.to_vec(),
            saved: vec![false; frames.len()],
            current: None,
            outputs: Vec::new(),
            error: None,
            root: root.to_path_buf(),
        }
    }

    /// Reads one line of output; true if the progress changed.
    pub(super) fn line(&mut self, line: &str) -> bool {
        if let Some(frame) = frame_line(line) {
            self.current = Some(frame);
            return false;
        }
        if let Some(path) = saved_line(line) {
            self.outputs.push(root_relative(&self.root, path));
            if let Some(slot) = self.slot_saved() {
                self.saved[slot] = true;
            }
            return true;
        }
        if self.error.is_none() {
            self.error = error_line(line).map(str::to_owned);
        }
        false
    }

    /// Which frame a `Saved:` line completes: the current frame's first unsaved slot; none
    /// if that frame is saved already (a second file of it, e.g. another view); the next
    /// unsaved frame when no `Fra:` line named one of the job's frames.
    fn slot_saved(&self) -> Option<usize> {
        let unsaved = |frame: Option<i64>| {
            (0..self.frames.len())
                .find(|&i| !self.saved[i] && frame.is_none_or(|f| self.frames[i] == f))
        };
        match self.current {
            Some(frame) if self.frames.contains(&frame) => unsaved(Some(frame)),
            _ => unsaved(None),
        }
    }

    /// Frames saved.
    pub(super) fn done(&self) -> u32 {
        let done = self.saved.iter().filter(|&&saved| saved).count();
        u32::try_from(done).unwrap_or(u32::MAX)
    }

    /// The progress to report.
    pub(super) fn progress(&self) -> TaskProgress {
        TaskProgress {
            done: self.done(),
            total: u32::try_from(self.frames.len()).unwrap_or(u32::MAX),
            outputs: self.outputs.clone(),
        }
    }

    /// The frames not saved, in order.
    pub(super) fn missing(&self) -> Vec<i64> {
        self.frames
            .iter()
            .zip(&self.saved)
            .filter(|&(_, &saved)| !saved)
            .map(|(&frame, _)| frame)
            .collect()
    }
}

/// The handler of [`BlenderInfo`].
pub(super) async fn info(
    _task: BlenderInfo,
    context: JobContext,
    executable: Arc<Executable>,
) -> Result<ToolInfoReport, Failure> {
    let spec = info_spec(&executable, &context.root);
    let version = tool_version(&context, &executable, spec, parse_version).await?;
    tool_report(&context, &executable, version)
}

/// The handler of [`BlenderRender`].
pub(super) async fn render(
    task: BlenderRender,
    context: JobContext,
    executable: Arc<Executable>,
) -> Result<RenderReport, Failure> {
    check_frames(&task.frames)?;
    let scene = scene_file(&context, &task.blend).await?;
    let output = match &task.output {
        Some(pattern) => Some(output_arg(&context, &executable, pattern)?),
        None => None,
    };
    let command = RenderCommand {
        scene: executable.path_arg(&scene)?,
        output,
        format: task.format.as_deref(),
        engine: task.engine.as_deref(),
        frames: &task.frames,
    };

    // Removed when dropped: at the end, on failure, and when the task is abandoned.
    let folder = tempfile::Builder::new()
        .prefix(&format!(
            "buildcat-task-{}-{}-",
            context.task, context.attempt
        ))
        .tempdir()
        .map_err(|e| {
            Failure::new(format!(
                "cannot make the task's private folder in {}: {e}",
                std::env::temp_dir().display()
            ))
        })?;
    let folders = JobFolders::under(folder.path());
    folders.create().await.map_err(|e| {
        Failure::new(format!(
            "cannot make the task's private folders in {}: {e}",
            folder.path().display()
        ))
    })?;
    let spec = render_spec(&executable, &context.root, command, &folders);

    let mut tracker = Tracker::new(&task.frames, &context.root);
    context.progress(tracker.progress());
    let report = run_process(spec, &context, |line| {
        if tracker.line(line) {
            context.progress(tracker.progress());
        }
    })
    .await?;
    drop(folder);

    // An exit code (not a timeout, a cancel or a crash): Blender's error line says why.
    let exited = matches!(report.end, ProcessEnd::Exited { code: Some(_), .. });
    let tail = report.tail.clone();
    if let Some(mut failure) = report.into_failure(&executable.file_name()) {
        if let (true, Some(error)) = (exited, tracker.error) {
            failure.reason = error;
        }
        return Err(failure);
    }
    if let Some(error) = tracker.error {
        return Err(Failure {
            reason: error,
            exit_code: Some(0),
            output_tail: tail,
        });
    }
    let missing = tracker.missing();
    if !missing.is_empty() {
        return Err(Failure {
            reason: format!(
                "{} exited with 0 but did not write {} ({} of {} written)",
                executable.file_name(),
                frame_list(&missing),
                tracker.done(),
                task.frames.len()
            ),
            exit_code: Some(0),
            output_tail: tail,
        });
    }
    Ok(RenderReport {
        frames: tracker.done(),
        outputs: tracker.outputs,
    })
}

/// Fails on no frames and on negative frames, which Blender's `-f` reads as counted back
/// from the scene's end frame.
fn check_frames(frames: &[i64]) -> Result<(), Failure> {
    if frames.is_empty() {
        return Err(Failure::new("the job names no frames to render"));
    }
    if let Some(frame) = frames.iter().find(|&&frame| frame < 0) {
        return Err(Failure::new(format!(
            "frame {frame} cannot be rendered: Blender's -f reads a negative frame as counted \
             back from the scene's end frame"
        )));
    }
    Ok(())
}

/// The `-o` argument: the pattern resolved under the root, keeping a trailing separator
/// (Blender then names the files by frame number inside that folder).
fn output_arg(
    context: &JobContext,
    executable: &Executable,
    pattern: &str,
) -> Result<OsString, Failure> {
    let mut argument = executable.path_arg(&output_path(context, pattern)?)?;
    if pattern.ends_with(['/', '\\']) {
        argument.push(if executable.is_windows_program() {
            "\\"
        } else {
            "/"
        });
    }
    Ok(argument)
}

/// `frame 7` or `frames 2, 3, 5`, naming at most [`NAMED_FRAMES`].
fn frame_list(frames: &[i64]) -> String {
    let mut named: Vec<String> = frames
        .iter()
        .take(NAMED_FRAMES)
        .map(i64::to_string)
        .collect();
    if frames.len() > NAMED_FRAMES {
        named.push("...".to_owned());
    }
    let noun = if frames.len() == 1 { "frame" } else { "frames" };
    format!("{noun} {}", named.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[&str]) -> Vec<String> {
        text.iter().map(|line| (*line).to_owned()).collect()
    }

    #[test]
    fn versions() {
        let check = |text: &[&str], expected: Option<&str>| {
            assert_eq!(parse_version(&lines(text)).as_deref(), expected, "{text:?}");
        };
        check(&["Blender 3.4.1"], Some("3.4.1"));
        check(
            &["Blender 2.93.18 (hash 4ebaf5d8d9b1 built 2023-06-19)"],
            Some("2.93.18"),
        );
        check(
            &["Color management: ...", "Blender 4.2.0 LTS"],
            Some("4.2.0"),
        );
        check(&["Blender quit"], None);
        check(&[], None);
    }

    fn folders() -> JobFolders {
        JobFolders::under(Path::new("/tmp/buildcat-job-x-1-abc"))
    }

    fn args(spec: &ProcessSpec) -> Vec<&str> {
        spec.args.iter().filter_map(|arg| arg.to_str()).collect()
    }

    #[test]
    fn the_command_line_puts_the_scene_first_and_the_frames_last() {
        let blender = Executable::new("/usr/bin/blender");
        let spec = render_spec(
            &blender,
            Path::new("/farm"),
            RenderCommand {
                scene: "/farm/shots/a.blend".into(),
                output: Some("/farm/out/a_####".into()),
                format: Some("PNG"),
                engine: Some("CYCLES"),
                frames: &[1, 2, 10],
            },
            &folders(),
        );
        assert_eq!(spec.program, Path::new("/usr/bin/blender"));
        assert_eq!(spec.dir, Path::new("/farm"));
        assert_eq!(spec.stdin, None);
        assert_eq!(
            args(&spec),
            [
                "-b",
                "/farm/shots/a.blend",
                "-noaudio",
                "-o",
                "/farm/out/a_####",
                "-F",
                "PNG",
                "-E",
                "CYCLES",
                "-f",
                "1,2,10"
            ]
        );
        let env: Vec<(&str, &str)> = spec
            .env
            .iter()
            .filter_map(|(key, value)| Some((key.to_str()?, value.to_str()?)))
            .collect();
        assert_eq!(
            env,
            [
                ("HOME", "/tmp/buildcat-job-x-1-abc/home"),
                ("XDG_CACHE_HOME", "/tmp/buildcat-job-x-1-abc/cache"),
                ("XDG_CONFIG_HOME", "/tmp/buildcat-job-x-1-abc/config"),
                ("TMPDIR", "/tmp/buildcat-job-x-1-abc/tmp"),
            ]
        );

        let spec = render_spec(
            &blender,
            Path::new("/farm"),
            RenderCommand {
                scene: "/farm/a.blend".into(),
                output: None,
                format: None,
                engine: None,
                frames: &[7],
            },
            &folders(),
        );
        assert_eq!(args(&spec), ["-b", "/farm/a.blend", "-noaudio", "-f", "7"]);
    }

    #[test]
    fn frames_are_tracked_from_fra_and_saved_lines() {
        let mut tracker = Tracker::new(&[1, 2, 3], Path::new("/farm"));
        assert!(!tracker.line("Blender 3.4.1"));
        assert!(!tracker.line("Fra:2 Mem:9.04M (Peak 10.83M) | Time:00:00.00 | Syncing"));
        assert!(tracker.line("Saved: '/farm/out/a_0002.png'"));
        assert_eq!(tracker.missing(), [1, 3]);
        // A second file of the same frame (another view) completes no other frame.
        assert!(tracker.line("Saved: '/farm/out/a_0002_R.png'"));
        assert_eq!(tracker.done(), 1);
        assert!(!tracker.line("Fra:1 Mem:9.04M"));
        assert!(tracker.line(" Saved: \"/elsewhere/a_0001.png\" Time: 00:00.55"));
        assert_eq!(
            tracker.progress(),
            TaskProgress {
                done: 2,
                total: 3,
                outputs: vec![
                    "out/a_0002.png".to_owned(),
                    "out/a_0002_R.png".to_owned(),
                    "/elsewhere/a_0001.png".to_owned(),
                ],
            }
        );
        assert_eq!(tracker.missing(), [3]);
        assert_eq!(tracker.error, None);
    }

    #[test]
    fn without_fra_lines_frames_are_saved_in_order() {
        // The Workbench engine prints no `Fra:` lines; neither does a frame the scene's
        // time remapping renumbers.
        let mut tracker = Tracker::new(&[5, 1, 5], Path::new("/farm"));
        assert!(tracker.line("Saved: '/farm/0005.png'"));
        assert!(!tracker.line("Fra:99 Mem:1M"));
        assert!(tracker.line("Saved: '/farm/0099.png'"));
        assert_eq!(tracker.missing(), [5]);
        assert!(tracker.line("Saved: '/farm/0005.png'"));
        assert_eq!(tracker.done(), 3);
        assert!(tracker.missing().is_empty());
    }

    #[test]
    fn error_lines_are_kept_but_memory_reports_are_not_errors() {
        let mut tracker = Tracker::new(&[1], Path::new("/farm"));
        tracker.line("EGL Error (0x3001): EGL_NOT_INITIALIZED");
        tracker.line("Error: Not freed memory blocks: 2, total unfreed memory 0.001 MB");
        assert_eq!(tracker.error, None);
        tracker.line("Error: Format from '-F / --render-format' not known");
        tracker.line("Error: a later one");
        assert_eq!(
            tracker.error.as_deref(),
            Some("Error: Format from '-F / --render-format' not known")
        );
    }

    #[test]
    fn saved_lines() {
        assert_eq!(saved_line("Saved: '/a/b.png'"), Some("/a/b.png"));
        assert_eq!(saved_line("Saved: '/a/it's.png'"), Some("/a/it's.png"));
        assert_eq!(
            saved_line("Saved: '/a/b.png' Time: 00:00.55 (Saving: 00:00.01)"),
            Some("/a/b.png")
        );
        assert_eq!(saved_line("Saved: ''"), None);
        assert_eq!(saved_line("Saved \"x\""), None);
        assert_eq!(saved_line("Info: Saved \"scene.blend\""), None);
        assert_eq!(frame_line("Fra:12 Mem:1M"), Some(12));
        assert_eq!(frame_line("Fra:x"), None);
    }

    #[test]
    fn frames_must_be_given_and_not_negative() {
        assert!(check_frames(&[0, 1, 2]).is_ok());
        let reason = |frames: &[i64]| check_frames(frames).err().map(|f| f.reason);
        assert_eq!(
            reason(&[]).as_deref(),
            Some("the job names no frames to render")
        );
        assert!(reason(&[1, -2]).is_some_and(|r| r.starts_with("frame -2 cannot be rendered")));
    }

    #[test]
    fn missing_frames_are_named() {
        assert_eq!(frame_list(&[7]), "frame 7");
        assert_eq!(frame_list(&[2, 3]), "frames 2, 3");
        let many: Vec<i64> = (1..=25).collect();
        assert!(frame_list(&many).ends_with("19, 20, ..."));
    }
}
