//! Blender: `blender --version` for the version, and
//! `blender [-y] [-t N] -b FILE -noaudio [-S SCENE] [-o OUTPUT] [-F FORMAT] [-E ENGINE]
//! [--python-expr CODE] [ARGS...] -f LIST [-- --cycles-device DEVICE]` to render.
//!
//! Blender applies its arguments in order, so the scene comes first (loading it resets the
//! output settings), then the settings, then `-f`, which renders; `-y` and `-t` come before
//! the file, and what follows `--` goes to Cycles. The output pattern is made absolute
//! under the root, so the files land there whatever the scene says. Consecutive frames go
//! to `-f` as `a..b`, so a long chunk stays one short argument.
//!
//! Blender runs in a profile of the worker slot's own (HOME, XDG_CONFIG_HOME and
//! XDG_CACHE_HOME: [`ProfileHome`]), made once and kept, so each task after the first finds
//! Blender's caches (compiled Cycles kernels, shaders) where the last left them instead of
//! paying for them again; the person's own preferences and add-ons never reach it.
//! TMPDIR is private to each task and removed afterwards. Since no user preferences reach
//! Blender, what they would give is passed explicitly: `-y` (scenes may run their Python
//! drivers; a worker's `--blender-no-autoexec` forbids it) and the Cycles device.
//!
//! Progress comes from Blender's output, read the same for 3.x, 4.x and 5.x (5.x prints
//! through its logger, with a `TIME  CATEGORY | ` prefix, see [`message`]). A frame is done
//! when a file of it was saved (`Saved: 'PATH'`) or skipped because it exists (`skipping
//! existing frame "PATH"`, a scene with Overwrite off): the frame is read from the path
//! where the `-o` pattern says where it is, so a stereo render's `_L`/`_R` files make one
//! frame and a file of a frame not in the task counts for none. Where the path names no
//! frame, the frame ends at the per-frame ` Time: ... (Saving: ...)` line. A task fails
//! on an `Error:` line (Blender may exit with 0 after one), a Python driver that did not
//! run, missing linked libraries, a file written outside the farm root, and a frame that
//! was never saved; a crash log Blender left in the private folder goes into the task's
//! output and the failure before the folder is removed.
//!
//! Without frames given, a render takes the scene's own range ([`BlenderPlanRange`]): its
//! first task runs `blender -b FILE -noaudio [-S SCENE] --python-expr CODE`, where the code
//! prints the scene's start, end, step and name after [`RANGE_MARK`] ([`range_spec`],
//! read by [`parse_range`]), and adds one render task per chunk of those frames to its job.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use buildcat_proto::dcc::{
    BlenderInfo, BlenderPlanRange, BlenderRender, RenderReport, ToolInfoReport,
    blender_eevee_engine,
};
use buildcat_proto::gpu::{Gpu, GpuVendor};
use buildcat_proto::{Failure, NewTask, TaskProgress, codec};
use tracing::warn;

use super::tools::Executable;
use super::{
    output_path, root_relative, scene_file, task_folder, task_folder_prefix, tool_report,
    tool_version, written,
};
use crate::context::JobContext;
use crate::process::{ProcessEnd, ProcessSpec, run_process};

/// `Error:` lines that say nothing about the render: Blender's report of memory it did not
/// free at exit.
const HARMLESS_ERRORS: &[&str] = &["Not freed memory blocks"];

/// Lines that say a Python driver did not run, so the frame's pixels are wrong: an
/// exception in the driver, or auto-run being off (`BPY_driver_exec` in Blender's
/// `source/blender/python/intern/bpy_driver.cc`).
const DRIVER_FAILURES: &[&str] = &["Error in PyDriver", "Error in Driver", "skipping driver '"];

/// Lines that say the Cycles device asked for is not on this machine.
const DEVICE_FAILURES: &[&str] = &["Found no Cycles device"];

/// The logger's level words that Blender 5.x puts after `| ` on warnings and errors.
const LOG_LEVELS: &[&str] = &[
    "FATAL", "ERROR", "WARNING", "WARN", "INFO", "DEBUG", "TRACE",
];

/// How many missing frames a failure names before it says "...".
const NAMED_FRAMES: usize = 20;

/// How many bytes of a crash log go into the failure's tail (the whole log goes into the
/// task's output).
const CRASH_TAIL_BYTES: usize = 8 * 1024;

/// How a worker runs Blender, for every render it takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlenderOptions {
    /// Whether scenes may not run their Python (no `-y`): for studios that forbid it; a
    /// driver that then does not run fails the task instead of rendering wrong pixels.
    pub no_autoexec: bool,
    /// The Cycles device for tasks that name none: the farm gives Blender no user
    /// preferences, so without it Cycles renders on the CPU.
    pub cycles_device: Option<String>,
    /// Threads Blender renders with (`-t`), so several workers on one host share its
    /// cores instead of each taking all of them.
    pub threads: Option<u32>,
    /// One profile for every slot of the worker (`--blender-profile DIR`), e.g. to share
    /// compiled kernels; `None`: each slot keeps its own under the worker's state
    /// directory.
    pub profile: Option<PathBuf>,
    /// Empty the profiles when the worker starts (`--blender-profile-reset`), e.g. after a
    /// driver update left stale kernels: only folders Buildcat made (holding
    /// [`PROFILE_MARK`]) are removed.
    pub reset_profile: bool,
}

/// The file Buildcat puts in each profile it makes, so that a reset removes only those.
pub const PROFILE_MARK: &str = "BUILDCAT-BLENDER-PROFILE";

/// Where each worker slot's Blender profile is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProfileHome {
    /// One profile for every slot.
    Shared(PathBuf),
    /// Each slot its own, in a folder named after the slot, under this one.
    PerSlot(PathBuf),
}

impl ProfileHome {
    /// The profile home `options` ask for, with per-slot profiles under `state_dir`.
    pub(crate) fn new(options: &BlenderOptions, state_dir: &Path) -> Self {
        match &options.profile {
            Some(dir) => ProfileHome::Shared(dir.clone()),
            None => ProfileHome::PerSlot(state_dir.join("blender")),
        }
    }

    /// The profile of the slot named `slot` (the worker loop's name).
    pub(crate) fn for_slot(&self, slot: &str) -> PathBuf {
        match self {
            ProfileHome::Shared(dir) => dir.clone(),
            ProfileHome::PerSlot(base) => {
                // A name is the server's business, not a path: keep it one plain component.
                let safe: String = slot
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let safe = if safe.trim_matches('.').is_empty() {
                    "slot".to_owned()
                } else {
                    safe
                };
                base.join(safe)
            }
        }
    }

    /// Removes the profile of each slot in `slots`, if Buildcat made it; a folder without
    /// [`PROFILE_MARK`] is left alone with a warning.
    pub(crate) fn reset(&self, slots: &[String]) {
        let mut dirs: Vec<PathBuf> = slots.iter().map(|slot| self.for_slot(slot)).collect();
        dirs.dedup();
        for dir in dirs {
            if !dir.exists() {
                continue;
            }
            if !dir.join(PROFILE_MARK).is_file() {
                warn!(profile = %dir.display(), "not resetting a blender profile buildcat did not make");
                continue;
            }
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => tracing::info!(profile = %dir.display(), "blender profile reset"),
                Err(error) => {
                    warn!(profile = %dir.display(), %error, "could not reset the blender profile")
                }
            }
        }
    }
}
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
    /// HOME: the profile's `home`.
    pub(super) home: PathBuf,
    /// XDG_CACHE_HOME: the profile's `cache`.
    pub(super) cache: PathBuf,
    /// XDG_CONFIG_HOME: the profile's `config`.
    pub(super) config: PathBuf,
    /// TMPDIR: the task's own.
    pub(super) tmp: PathBuf,
}

impl JobFolders {
    /// The folders of `profile` (`home`, `cache`, `config`), with `tmp` as TMPDIR.
    pub(super) fn new(profile: &Path, tmp: &Path) -> Self {
        JobFolders {
            home: profile.join("home"),
            cache: profile.join("cache"),
            config: profile.join("config"),
            tmp: tmp.to_owned(),
        }
    }

    /// Makes the profile's folders if they are not there yet, with the mark that says
    /// Buildcat made them. Blocking: run off the runtime's threads (they may be on a
    /// network mount).
    fn create(&self, profile: &Path) -> std::io::Result<()> {
        for folder in [&self.home, &self.cache, &self.config] {
            std::fs::create_dir_all(folder)?;
        }
        let mark = profile.join(PROFILE_MARK);
        if std::fs::metadata(&mark).is_err() {
            std::fs::write(
                &mark,
                "A Blender profile buildcat made for a worker slot: HOME, configuration and \
                 caches kept between tasks. `buildcat worker --blender-profile-reset` empties it.\n",
            )?;
        }
        Ok(())
    }
}

/// A render, with its paths in the form Blender is given them.
#[derive(Debug, Clone, Default)]
pub(super) struct RenderCommand<'a> {
    /// The scene.
    pub(super) scene: OsString,
    /// Whether to pass `-y`, letting the scene's Python drivers run.
    pub(super) autoexec: bool,
    /// Render threads (`-t`).
    pub(super) threads: Option<u32>,
    /// The scene inside the file (`-S`).
    pub(super) scene_name: Option<&'a str>,
    /// The output pattern (`-o`).
    pub(super) output: Option<OsString>,
    /// The image format (`-F`).
    pub(super) format: Option<&'a str>,
    /// The render engine (`-E`), as this Blender names it.
    pub(super) engine: Option<&'a str>,
    /// Python to run once the file is loaded (`--python-expr`).
    pub(super) python_expr: Option<&'a str>,
    /// More arguments before `-f`.
    pub(super) extra_args: &'a [String],
    /// The frames (`-f`).
    pub(super) frames: &'a [i64],
    /// The Cycles device (`-- --cycles-device`).
    pub(super) cycles_device: Option<&'a str>,
}

/// The full command line, with the job's private folders in its environment.
pub(super) fn render_spec(
    executable: &Executable,
    root: &Path,
    command: RenderCommand<'_>,
    folders: &JobFolders,
) -> ProcessSpec {
    let mut spec = ProcessSpec::new(executable.path(), root);
    if command.autoexec {
        spec = spec.arg("-y");
    }
    if let Some(threads) = command.threads {
        spec = spec.arg("-t").arg(threads.to_string());
    }
    spec = spec.arg("-b").arg(command.scene).arg("-noaudio");
    if let Some(scene) = command.scene_name {
        spec = spec.arg("-S").arg(scene);
    }
    if let Some(output) = command.output {
        spec = spec.arg("-o").arg(output);
    }
    if let Some(format) = command.format {
        spec = spec.arg("-F").arg(format);
    }
    if let Some(engine) = command.engine {
        spec = spec.arg("-E").arg(engine);
    }
    if let Some(code) = command.python_expr {
        spec = spec.arg("--python-expr").arg(code);
    }
    spec = spec
        .args(command.extra_args)
        .arg("-f")
        .arg(frames_arg(command.frames));
    if let Some(device) = command.cycles_device {
        spec = spec.arg("--").arg("--cycles-device").arg(device);
    }
    spec.env("HOME", &folders.home)
        .env("XDG_CACHE_HOME", &folders.cache)
        .env("XDG_CONFIG_HOME", &folders.config)
        .env("TMPDIR", &folders.tmp)
}

/// The Cycles device a task asks for as Blender takes it: `GPU` (a render command's
/// `--gpu`), optionally with `+CPU`, becomes the API of the slot's GPUs, which the process
/// sees through the visible set; any other device passes as it is.
///
/// NVIDIA (and GPUs declared by index, of unknown make): `CUDA`, not `OPTIX`. Blender's
/// manual ("GPU Rendering") supports CUDA on every NVIDIA GPU Cycles supports, while OptiX
/// needs a newer driver and compiles kernels for some features at first use; the pixels
/// are the same, and a studio that wants OptiX's speed on RTX cards names `OPTIX` itself.
/// AMD: `HIP`, Cycles' only AMD API on Linux and Windows. A slot without GPUs fails the
/// task with the reason, rather than render on the CPU what was asked of a GPU.
fn cycles_device(
    requested: Option<&str>,
    gpus: &[Gpu],
    worker: &str,
) -> Result<Option<String>, Failure> {
    let Some(requested) = requested else {
        return Ok(None);
    };
    let (device, with_cpu) = match requested.strip_suffix("+CPU") {
        Some(device) => (device, "+CPU"),
        None => (requested, ""),
    };
    if device != GPU_DEVICE {
        return Ok(Some(requested.to_owned()));
    }
    let Some(first) = gpus.first() else {
        return Err(Failure::new(format!(
            "the task asks Cycles to render on a GPU (`{requested}`), but worker slot \
             `{worker}` has none: give the worker its GPUs (--gpus), or submit without --gpu"
        )));
    };
    let api = match first.vendor {
        GpuVendor::Amd => "HIP",
        GpuVendor::Nvidia | GpuVendor::Unknown => "CUDA",
    };
    Ok(Some(format!("{api}{with_cpu}")))
}

/// The Cycles device a task names to render on its slot's GPUs, whatever their make.
const GPU_DEVICE: &str = "GPU";

/// The `-f` list: runs of consecutive frames as `a..b`, the rest by commas (`1..100,120`).
fn frames_arg(frames: &[i64]) -> String {
    let mut items: Vec<String> = Vec::new();
    let mut rest = frames;
    while let [start, ..] = rest {
        let length = rest
            .iter()
            .zip(*start..)
            .take_while(|(frame, expected)| **frame == *expected)
            .count()
            .max(1);
        items.push(match length {
            1 => start.to_string(),
            _ => format!("{start}..{}", rest[length - 1]),
        });
        rest = &rest[length..];
    }
    items.join(",")
}

/// How Blender 5.x's logger marked a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// `ERROR` or `FATAL`.
    Error,
    /// Any other level word.
    Other,
}

/// A line of Blender's output without the logger prefix Blender 5.x adds, and the level
/// the prefix named. 5.x writes `[TIME  ][MEMORY  ]CATEGORY<padded to 16> | [LEVEL ]MESSAGE`,
/// e.g. `00:01.204  render           | Saved: '/mnt/renders/shot_0001.png'`, the level word
/// (`FATAL`, `ERROR`, `WARNING`) only below INFO: `CLG_logf` with `write_timestamp`
/// (`MM:SS.mmm` or `HH:MM:SS.mmm`), `write_memory` (`NNM`), `write_type` and `write_level`
/// in `intern/clog/clog.cc` (blender/blender, commit 09d2b8ae3bd1). 3.x and 4.x print the
/// message alone (`printf` in `source/blender/render/intern/pipeline.cc`).
fn message(line: &str) -> (Option<Level>, &str) {
    let Some((prefix, rest)) = line.split_once("| ") else {
        return (None, line);
    };
    let mut words = prefix.split_whitespace().peekable();
    let is_time = |word: &str| {
        word.contains(':')
            && word
                .chars()
                .all(|c| c.is_ascii_digit() || c == ':' || c == '.')
    };
    let is_memory = |word: &str| {
        word.strip_suffix('M')
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    };
    words.next_if(|word| is_time(word));
    words.next_if(|word| is_memory(word));
    let category = words.next();
    let is_category = |word: &str| {
        word.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    if !category.is_some_and(is_category) || words.next().is_some() || !prefix.ends_with(' ') {
        return (None, line);
    }
    let word = rest.split_whitespace().next().unwrap_or("");
    let word = word.trim_end_matches(':');
    if LOG_LEVELS.contains(&word) {
        let level = if matches!(word, "ERROR" | "FATAL") {
            Level::Error
        } else {
            Level::Other
        };
        let text = rest.trim_start()[word.len()..]
            .trim_start_matches(':')
            .trim_start();
        return (Some(level), text);
    }
    (None, rest)
}

/// The frame of a `Fra:N ...` line.
fn frame_line(line: &str) -> Option<i64> {
    let rest = line.trim_start().strip_prefix("Fra:")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// How far the frame is, in percent, from the last field of a Cycles `Fra:` status line:
/// `Fra:1 Mem:9.94M (Peak 10.83M) | Time:00:00.06 | Remaining:00:00.01 | Mem:0.78M,
/// Peak:0.78M | Scene, ViewLayer | Sample 1/8` (printed by Blender 3.4.1, Debian's, for a
/// Cycles render: one line per sample, from `Sample 0/8` to `Sample 8/8`, then `Finished`).
/// None for other status lines (Workbench and Eevee print none of this form).
fn sample_percent(line: &str) -> Option<u8> {
    let last = line.rsplit('|').next()?.trim();
    let (done, total) = last.strip_prefix("Sample ")?.split_once('/')?;
    let (done, total): (u64, u64) = (done.trim().parse().ok()?, total.trim().parse().ok()?);
    if total == 0 {
        return None;
    }
    u8::try_from(done.min(total) * 100 / total).ok()
}

/// The text between the first quote after `prefix` and the last quote of the same kind.
fn quoted_after<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = line.trim_start().strip_prefix(prefix)?.trim();
    let quote = rest.chars().next().filter(|c| matches!(c, '\'' | '"'))?;
    let inner = &rest[1..];
    let end = inner.rfind(quote)?;
    Some(&inner[..end]).filter(|path| !path.is_empty())
}

/// The path of a `Saved: 'PATH'` line (Blender 2.8 and later end the line there; earlier
/// ones add ` Time: ...` after the closing quote).
fn saved_line(line: &str) -> Option<&str> {
    quoted_after(line, "Saved:")
}

/// The path of a `skipping existing frame "PATH"[ for view "left"]` line (Overwrite off
/// and the file there); 5.x may capitalize it.
fn skipped_line(line: &str) -> Option<&str> {
    let line = line.trim_start();
    let head = line.get(..23)?;
    if !head.eq_ignore_ascii_case("skipping existing frame") {
        return None;
    }
    let rest = line[23..].trim_start();
    let quote = rest.chars().next().filter(|c| matches!(c, '\'' | '"'))?;
    let inner = &rest[1..];
    let end = inner.find(quote)?;
    Some(&inner[..end]).filter(|path| !path.is_empty())
}

/// Whether `line` is the ` Time: 00:02.41 (Saving: 00:00.25)` line that ends each frame.
fn frame_time_line(line: &str) -> bool {
    line.trim_start().starts_with("Time:") && line.contains("(Saving:")
}

/// The frame of a movie's `Append frame N` line.
fn append_line(line: &str) -> Option<i64> {
    let rest = line.trim_start().strip_prefix("Append frame ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The library path of a `Cannot find lib 'PATH'` line (any prefix: `Info:`, `Warning:`).
fn missing_library_line(line: &str) -> Option<&str> {
    let at = line.find("Cannot find lib ")?;
    quoted_after(&line[at..], "Cannot find lib")
}

/// Whether `line` is Blender's summary of missing linked data (`Warning: 1 libraries and
/// 1 linked data-blocks are missing ...`, `readfile.cc`).
fn missing_libraries_summary(line: &str) -> bool {
    line.contains("libraries and") && line.contains("linked data-blocks are missing")
}

/// Whether `line` is an error Blender reports (which fails the job even if it exits 0).
fn error_line(level: Option<Level>, line: &str) -> Option<String> {
    let line = line.trim();
    let bare = line.strip_prefix("Error:").map_or(line, str::trim_start);
    if HARMLESS_ERRORS.iter().any(|h| bare.starts_with(h)) {
        return None;
    }
    if line.starts_with("Error:") || DEVICE_FAILURES.iter().any(|f| line.contains(f)) {
        return Some(line.to_owned());
    }
    (level == Some(Level::Error)).then(|| format!("Error: {line}"))
}

/// The frame a file of Blender's is of. With the `-o` pattern's file name known: the
/// number where its `#`s are (or at the end of the name, where Blender adds it to a
/// pattern without `#`). Without one: the number at the end of the name, after a stereo
/// view's `_L`/`_R`. `None` where the name holds no number there.
fn frame_of_file(pattern: Option<&str>, path: &str) -> Option<i64> {
    let name = path.rsplit(['/', '\\']).next()?;
    let pattern_name = pattern.and_then(|p| p.rsplit(['/', '\\']).next());
    if let Some(hashes) = pattern_name.and_then(|p| p.find('#').map(|at| (p, at))) {
        let (pattern_name, at) = hashes;
        let rest = name.strip_prefix(&pattern_name[..at])?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        return rest[..digits].parse().ok();
    }
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    let stem = ["_L", "_R"]
        .iter()
        .find_map(|view| stem.strip_suffix(view))
        .unwrap_or(stem);
    let digits = stem.len() - stem.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    stem[stem.len() - digits..].parse().ok()
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
    /// Whether a file was saved whose frame its path does not say, so the frame's
    /// ` Time:` line completes the frame.
    pending: bool,
    /// The `-o` pattern's file name part, to read frames from saved paths.
    pattern: Option<String>,
    /// Whether the task renders a movie, whose frames are `Append frame N` lines.
    movie: bool,
    /// The files written, relative to the root where under it.
    outputs: Vec<String>,
    /// Files written outside the root, as printed.
    outside: Vec<String>,
    /// Linked libraries Blender could not find.
    missing_libraries: Vec<String>,
    /// Whether Blender said linked data is missing (also when it named no library).
    libraries_missing: bool,
    /// The first line saying a Python driver did not run.
    driver_failure: Option<String>,
    /// Whether the scene wrote a movie though the task is not one.
    unexpected_movie: bool,
    /// The first `Error:` line.
    error: Option<String>,
    /// The worker's root.
    root: PathBuf,
    /// The root as Blender is given paths, where that differs (a Windows program on WSL
    /// prints `C:\farm\...`).
    root_arg: Option<String>,
    /// The last file saved (not skipped) and its frame, not yet taken for a preview.
    saved_file: Option<(i64, String)>,
    /// How far the frame being rendered is, in percent, from Cycles' `Sample N/M`; None
    /// once a frame is done until the next says.
    frame_percent: Option<u8>,
}

/// Whether `path` is `root` or under it, comparing `\` as `/`, and ignoring case where
/// `root` is a Windows path (`C:\farm`).
fn within_root(root: &str, path: &str) -> bool {
    let normal = |text: &str| text.replace('\\', "/").trim_end_matches('/').to_owned();
    let (root, path) = (normal(root), normal(path));
    let windows = root.as_bytes().get(1) == Some(&b':');
    let (root, path) = if windows {
        (root.to_ascii_lowercase(), path.to_ascii_lowercase())
    } else {
        (root, path)
    };
    path == root
        || path
            .strip_prefix(&root)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl Tracker {
    /// Nothing done yet of `frames`; files named by `pattern` (the `-o` pattern).
    pub(super) fn new(frames: &[i64], root: &Path, pattern: Option<&str>, movie: bool) -> Self {
        Tracker {
            frames: frames.to_vec(),
            saved: vec![false; frames.len()],
            current: None,
            pending: false,
            pattern: pattern.map(str::to_owned),
            movie,
            outputs: Vec::new(),
            outside: Vec::new(),
            missing_libraries: Vec::new(),
            libraries_missing: false,
            driver_failure: None,
            unexpected_movie: false,
            error: None,
            root: root.to_path_buf(),
            root_arg: None,
            saved_file: None,
            frame_percent: None,
        }
    }

    /// Also takes files under `root_arg` (the root in the form Blender is given paths) as
    /// inside the root.
    pub(super) fn with_root_arg(mut self, root_arg: String) -> Self {
        if Path::new(&root_arg) != self.root {
            self.root_arg = Some(root_arg);
        }
        self
    }

    /// Reads one line of output; true if the progress changed.
    pub(super) fn line(&mut self, line: &str) -> bool {
        let (level, line) = message(line);
        if let Some(frame) = frame_line(line) {
            self.current = Some(frame);
            // One line per sample: only a change of the percentage is news.
            return match sample_percent(line) {
                Some(percent) if self.frame_percent != Some(percent) => {
                    self.frame_percent = Some(percent);
                    true
                }
                _ => false,
            };
        }
        let saved = saved_line(line);
        if let Some(path) = saved.or_else(|| skipped_line(line)) {
            self.file(path);
            if saved.is_some() {
                self.note_saved(path);
            }
            // Before 2.8 the frame's time ends the `Saved:` line itself.
            if line.contains("(Saving:") {
                self.frame_ended();
            }
            return true;
        }
        if frame_time_line(line) {
            return self.frame_ended();
        }
        if let Some(frame) = append_line(line) {
            if !self.movie {
                self.unexpected_movie = true;
                return false;
            }
            return self.credit(frame);
        }
        if let Some(library) = missing_library_line(line) {
            if !self.missing_libraries.iter().any(|known| known == library) {
                self.missing_libraries.push(library.to_owned());
            }
            self.libraries_missing = true;
            return false;
        }
        if missing_libraries_summary(line) {
            self.libraries_missing = true;
            return false;
        }
        if self.driver_failure.is_none() && DRIVER_FAILURES.iter().any(|f| line.contains(f)) {
            self.driver_failure = Some(line.trim().to_owned());
            return false;
        }
        if self.error.is_none() {
            self.error = error_line(level, line);
        }
        false
    }

    /// A file Blender saved or found already there.
    fn file(&mut self, path: &str) {
        let relative = root_relative(&self.root, path);
        let inside = Path::new(path).starts_with(&self.root)
            || self
                .root_arg
                .as_deref()
                .is_some_and(|root| within_root(root, path));
        if !inside && !self.outside.iter().any(|p| p == path) {
            self.outside.push(path.to_owned());
        }
        if !self.outputs.contains(&relative) {
            self.outputs.push(relative);
        }
        match frame_of_file(self.pattern.as_deref(), path) {
            // A file of another frame counts for none (Blender clamps frames it cannot
            // render to ones it can).
            Some(frame) if self.pattern.is_some() || self.frames.contains(&frame) => {
                self.credit(frame);
            }
            _ => self.pending = true,
        }
    }

    /// Notes a file Blender saved for its preview: its frame is the one its name says (as
    /// [`Tracker::file`] reads it), else the one Blender is rendering.
    fn note_saved(&mut self, path: &str) {
        let frame = match frame_of_file(self.pattern.as_deref(), path) {
            Some(frame) if self.pattern.is_some() || self.frames.contains(&frame) => Some(frame),
            _ => self.current,
        };
        if let Some(frame) = frame {
            self.saved_file = Some((frame, path.to_owned()));
        }
    }

    /// The last file saved since the last call and its frame, as printed, for a preview.
    pub(super) fn take_saved(&mut self) -> Option<(i64, String)> {
        self.saved_file.take()
    }

    /// The ` Time:` line after a frame's files: completes the frame if its files did not
    /// say which it was (the `Fra:` frame, else the next unsaved one).
    fn frame_ended(&mut self) -> bool {
        if !std::mem::take(&mut self.pending) {
            return false;
        }
        let slot = self
            .current
            .and_then(|frame| self.unsaved(frame))
            .or_else(|| self.saved.iter().position(|saved| !saved));
        slot.map(|slot| self.mark_saved(slot)).is_some()
    }

    /// Marks the frame in `slot` saved: the next frame's percentage is not known yet.
    fn mark_saved(&mut self, slot: usize) {
        self.saved[slot] = true;
        self.frame_percent = None;
    }

    /// The slot of `frame` if it is one of the job's and not saved yet.
    fn unsaved(&self, frame: i64) -> Option<usize> {
        (0..self.frames.len()).find(|&i| !self.saved[i] && self.frames[i] == frame)
    }

    /// Marks `frame` done; true if it was one of the job's not done yet.
    fn credit(&mut self, frame: i64) -> bool {
        self.unsaved(frame)
            .map(|slot| self.mark_saved(slot))
            .is_some()
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
            frame_percent: self.frame_percent,
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

    /// Why a render that exited with 0 still failed, in order of what matters most;
    /// `allow_missing_libraries` and `allow_outside_root` accept those.
    fn problem(
        &self,
        program: &str,
        allow_missing_libraries: bool,
        allow_outside_root: bool,
    ) -> Option<String> {
        if let Some(error) = &self.error {
            return Some(error.clone());
        }
        if let Some(driver) = &self.driver_failure {
            return Some(format!(
                "a Python driver did not run, so the frames are wrong: {driver} (the worker \
                 runs Blender with -y unless started with --blender-no-autoexec; fix the \
                 driver's expression, or let scenes run their scripts)"
            ));
        }
        if self.libraries_missing && !allow_missing_libraries {
            let named = if self.missing_libraries.is_empty() {
                "(Blender named none)".to_owned()
            } else {
                self.missing_libraries.join(", ")
            };
            return Some(format!(
                "linked libraries are missing, so the frames render without their assets: \
                 {named} (make them reachable from the worker, or submit with \
                 --allow-missing-libraries)"
            ));
        }
        if self.unexpected_movie {
            return Some(
                "the scene writes a movie, which every task would overwrite; render images \
                 (e.g. --format PNG) and encode them afterwards, or submit with --movie"
                    .to_owned(),
            );
        }
        if !self.outside.is_empty() && !allow_outside_root {
            return Some(format!(
                "{program} wrote {} outside the farm root {} (the scene's own output path?); \
                 give --output, or submit with --allow-outside-root",
                self.outside.join(", "),
                self.root.display()
            ));
        }
        None
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

/// The `-E` name: `EEVEE` (or either of Blender's names for it) as the worker's Blender
/// version names it, asked with `--version`; any other engine as given.
async fn engine_name(
    context: &JobContext,
    executable: &Executable,
    engine: Option<&str>,
) -> Result<Option<String>, Failure> {
    match engine {
        Some("EEVEE" | "BLENDER_EEVEE" | "BLENDER_EEVEE_NEXT") => {
            let spec = info_spec(executable, &context.root);
            let version = tool_version(context, executable, spec, parse_version).await?;
            Ok(Some(blender_eevee_engine(&version).to_owned()))
        }
        other => Ok(other.map(str::to_owned)),
    }
}

/// The crash logs (`*.crash.txt`) Blender left in `folder`, with their text.
fn crash_logs(folder: &Path) -> Vec<(PathBuf, String)> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut logs: Vec<(PathBuf, String)> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.to_string_lossy().ends_with(".crash.txt"))
        .filter_map(|path| {
            let bytes = std::fs::read(&path).ok()?;
            Some((path, String::from_utf8_lossy(&bytes).into_owned()))
        })
        .collect();
    logs.sort();
    logs
}

/// The handler of [`BlenderRender`].
pub(super) async fn render(
    task: BlenderRender,
    context: JobContext,
    executable: Arc<Executable>,
    options: Arc<BlenderOptions>,
    profiles: Arc<ProfileHome>,
) -> Result<RenderReport, Failure> {
    check_frames(&task.frames)?;
    let scene = scene_file(&context, &task.blend).await?;
    let output = match &task.output {
        Some(pattern) => Some(output_arg(&context, &executable, pattern)?),
        None => None,
    };
    let engine = engine_name(&context, &executable, task.engine.as_deref()).await?;
    let cycles_device = cycles_device(
        task.cycles_device
            .as_deref()
            .or(options.cycles_device.as_deref()),
        context.gpus(),
        &context.worker,
    )?;
    let command = RenderCommand {
        scene: executable.path_arg(&scene)?,
        autoexec: !options.no_autoexec,
        threads: options.threads,
        scene_name: task.scene.as_deref(),
        output,
        format: task.format.as_deref(),
        engine: engine.as_deref(),
        python_expr: task.python_expr.as_deref(),
        extra_args: &task.extra_args,
        frames: &task.frames,
        cycles_device: cycles_device.as_deref(),
    };

    // Removed when dropped: at the end, on failure, and when the task is abandoned.
    let (folder, folders) = task_folders(&context, &profiles).await?;
    let spec = render_spec(&executable, &context.root, command, &folders);

    let mut tracker = Tracker::new(
        &task.frames,
        &context.root,
        task.output.as_deref(),
        task.movie,
    );
    if let Ok(root_arg) = executable.path_arg(&context.root) {
        tracker = tracker.with_root_arg(root_arg.to_string_lossy().into_owned());
    }
    context.progress(tracker.progress());
    let report = run_process(spec, &context, |line| {
        if tracker.line(line) {
            context.progress(tracker.progress());
        }
        // A preview for the job's page, made off the task's path.
        if let Some((frame, path)) = tracker.take_saved() {
            context.frame_saved(frame, Path::new(&path));
        }
    })
    .await?;

    // A crash log is in the private folder, about to go: keep it in the task's output
    // and the failure.
    let crashes = close_folder(folder).await;
    let mut crash_tail = String::new();
    for (path, text) in &crashes {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        context.log(format!("blender crash log {name}:"));
        context.log(text.clone());
        crash_tail.push_str(&format!("--- {name} ---\n"));
        let start = text.len().saturating_sub(CRASH_TAIL_BYTES);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        crash_tail.push_str(&text[start..]);
    }
    let with_crash = |mut failure: Failure| {
        if !crash_tail.is_empty() {
            failure
                .output_tail
                .extend(crash_tail.lines().map(str::to_owned));
            failure.reason = format!(
                "{} (Blender's crash log is in the task's output)",
                failure.reason
            );
        }
        failure
    };

    // An exit code (not a timeout, a cancel or a crash): Blender's error line says why.
    let exited = matches!(report.end, ProcessEnd::Exited { code: Some(_), .. });
    let tail = report.tail.clone();
    let program = executable.file_name();
    if let Some(mut failure) = report.into_failure(&program) {
        if let (true, Some(error)) = (exited, &tracker.error) {
            failure.reason = error.clone();
        }
        return Err(with_crash(failure));
    }
    if let Some(reason) = tracker.problem(
        &program,
        task.allow_missing_libraries,
        task.allow_outside_root,
    ) {
        return Err(with_crash(Failure {
            reason,
            exit_code: Some(0),
            output_tail: tail,
            gpu_fault: None,
        }));
    }
    if !tracker.outside.is_empty() {
        let files = tracker.outside.join(", ");
        warn!(task = %context.task, files = %files, "blender wrote files outside the root");
        context.log(format!(
            "warning: files written outside the farm root {}: {files}",
            context.root.display()
        ));
    }
    let missing = tracker.missing();
    if !missing.is_empty() {
        return Err(with_crash(Failure {
            reason: format!(
                "{program} exited with 0 but did not write {} ({} of {} written)",
                frame_list(&missing),
                tracker.done(),
                task.frames.len()
            ),
            exit_code: Some(0),
            output_tail: tail,
            gpu_fault: None,
        }));
    }
    written::check_outputs(&context.root, &program, &tracker.outputs).await?;
    Ok(RenderReport {
        frames: tracker.done(),
        outputs: tracker.outputs,
    })
}

/// The task's private temporary folder (removed when the first is dropped) and the
/// folders Blender runs with: the slot's profile, made if need be, and that folder.
///
/// All of it is one trip to a blocking thread: each file system call made from async
/// code is a hand-over to another thread and back, which a busy host pays for in
/// scheduling delays before every task.
async fn task_folders(
    context: &JobContext,
    profiles: &ProfileHome,
) -> Result<(tempfile::TempDir, JobFolders), Failure> {
    let prefix = task_folder_prefix("task", context);
    let profile = profiles.for_slot(&context.worker);
    tokio::task::spawn_blocking(move || {
        let folder = task_folder(&prefix)?;
        let folders = JobFolders::new(&profile, folder.path());
        folders.create(&profile).map_err(|e| {
            Failure::new(format!(
                "cannot make the Blender profile in {}: {e}; give the worker a writable \
                 --state-dir or --blender-profile DIR",
                profile.display()
            ))
        })?;
        Ok((folder, folders))
    })
    .await
    .map_err(|e| Failure::new(format!("could not prepare the task's folders: {e}")))?
}

/// Removes the task's private folder, off the runtime's threads, first taking the crash
/// logs Blender left in it (see [`crash_logs`]); a folder that cannot be removed is
/// logged, not a failure of the render.
async fn close_folder(folder: tempfile::TempDir) -> Vec<(PathBuf, String)> {
    let closed = tokio::task::spawn_blocking(move || {
        let logs = crash_logs(folder.path());
        let path = folder.path().to_owned();
        if let Err(error) = folder.close() {
            warn!(folder = %path.display(), %error, "could not remove the task's temporary folder");
        }
        logs
    })
    .await;
    closed.unwrap_or_default()
}

/// What the range query prints before the scene's start, end, step and name, so that its
/// line is found among Blender's own (which 5.x prefixes: the mark is looked for anywhere).
pub(super) const RANGE_MARK: &str = "BUILDCAT-SCENE-RANGE";

/// The Python that prints the range of the scene Blender has open (`-S`, else the file's
/// active one) on one line, flushed before Blender exits.
const RANGE_CODE: &str = "import bpy, sys\n\
    scene = bpy.context.scene\n\
    print('BUILDCAT-SCENE-RANGE', scene.frame_start, scene.frame_end, scene.frame_step, \
    scene.name)\n\
    sys.stdout.flush()\n";

/// A scene's frame range as Blender reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SceneRange {
    /// The first frame.
    pub(super) start: i64,
    /// The last frame (rendered when the step lands on it).
    pub(super) end: i64,
    /// Frames from one rendered frame to the next, at least 1.
    pub(super) step: i64,
    /// The scene's name, to tell whether `-S` found the scene asked for.
    pub(super) scene: String,
}

impl SceneRange {
    /// Its frames, in order.
    fn frames(&self) -> Vec<i64> {
        let step = usize::try_from(self.step).unwrap_or(1).max(1);
        (self.start..=self.end).step_by(step).collect()
    }
}

/// The range from the query's output line (`BUILDCAT-SCENE-RANGE 1 250 1 Scene`), if the
/// line holds it: three whole numbers after the mark, then the scene's name (which may
/// hold spaces).
pub(super) fn parse_range(line: &str) -> Option<SceneRange> {
    let rest = &line[line.find(RANGE_MARK)? + RANGE_MARK.len()..];
    let mut words = rest.trim_start().splitn(4, ' ');
    let start = words.next()?.trim().parse().ok()?;
    let end = words.next()?.trim().parse().ok()?;
    let step = words.next()?.trim().parse().ok()?;
    let scene = words.next().unwrap_or_default().trim_end().to_owned();
    Some(SceneRange {
        start,
        end,
        step,
        scene,
    })
}

/// `blender [-y] -b FILE -noaudio [-S SCENE] [--python-expr CODE] --python-expr RANGE`:
/// loads the scene as a render would (the studio's code included) and prints its range.
pub(super) fn range_spec(
    executable: &Executable,
    root: &Path,
    command: &RenderCommand<'_>,
    folders: &JobFolders,
) -> ProcessSpec {
    let mut spec = ProcessSpec::new(executable.path(), root);
    if command.autoexec {
        spec = spec.arg("-y");
    }
    spec = spec.arg("-b").arg(&command.scene).arg("-noaudio");
    if let Some(scene) = command.scene_name {
        spec = spec.arg("-S").arg(scene);
    }
    if let Some(code) = command.python_expr {
        spec = spec.arg("--python-expr").arg(code);
    }
    spec.arg("--python-expr")
        .arg(RANGE_CODE)
        .env("HOME", &folders.home)
        .env("XDG_CACHE_HOME", &folders.cache)
        .env("XDG_CONFIG_HOME", &folders.config)
        .env("TMPDIR", &folders.tmp)
}

/// The handler of [`BlenderPlanRange`]: the plan reads the scene's range and adds the
/// render tasks to its job; each added task renders as [`BlenderRender`] does.
pub(super) async fn plan_range(
    task: BlenderPlanRange,
    context: JobContext,
    executable: Arc<Executable>,
    options: Arc<BlenderOptions>,
    profiles: Arc<ProfileHome>,
) -> Result<RenderReport, Failure> {
    let (render_task, chunk) = match task {
        BlenderPlanRange::Render(task) => {
            return render(task, context, executable, options, profiles).await;
        }
        BlenderPlanRange::Plan { render, chunk } => (render, chunk),
    };
    let range = scene_range(&context, &executable, &options, &profiles, &render_task).await?;
    if range.step < 1 {
        return Err(Failure::new(format!(
            "scene `{}` has a frame step of {}; Blender renders with a step of at least 1",
            range.scene, range.step
        )));
    }
    if range.end < range.start {
        return Err(Failure::new(format!(
            "scene `{}` ends at frame {} before it starts at frame {}; set its range, or \
             give --frames",
            range.scene, range.end, range.start
        )));
    }
    let frames = range.frames();
    check_frames(&frames)?;
    let chunk = if render_task.movie {
        frames.len()
    } else {
        usize::try_from(chunk).unwrap_or(1).max(1)
    };
    let mut tasks = Vec::new();
    for frames in frames.chunks(chunk.max(1)) {
        let task = BlenderPlanRange::Render(BlenderRender {
            frames: frames.to_vec(),
            ..render_task.clone()
        });
        let args = codec::encode_value(&task).map_err(|error| {
            Failure::new(format!("the render tasks could not be encoded: {error}"))
        })?;
        tasks.push(NewTask {
            frames: Some(buildcat_client::render::frames_text(frames)),
            args,
        });
    }
    context.log(format!(
        "scene `{}`: frames {}-{} step {}, {} frames in {} tasks",
        range.scene,
        range.start,
        range.end,
        range.step,
        frames.len(),
        tasks.len()
    ));
    context.add_tasks(tasks);
    Ok(RenderReport::default())
}

/// Runs Blender on the scene to read its frame range.
async fn scene_range(
    context: &JobContext,
    executable: &Executable,
    options: &BlenderOptions,
    profiles: &ProfileHome,
    task: &BlenderRender,
) -> Result<SceneRange, Failure> {
    let scene = scene_file(context, &task.blend).await?;
    let command = RenderCommand {
        scene: executable.path_arg(&scene)?,
        autoexec: !options.no_autoexec,
        scene_name: task.scene.as_deref(),
        python_expr: task.python_expr.as_deref(),
        ..RenderCommand::default()
    };
    let (folder, folders) = task_folders(context, profiles).await?;
    let spec = range_spec(executable, &context.root, &command, &folders);
    let mut range = None;
    let mut error = None;
    let report = run_process(spec, context, |line| {
        if range.is_none() {
            range = parse_range(line);
        }
        if error.is_none() {
            let (level, text) = message(line);
            error = error_line(level, text);
        }
    })
    .await?;
    close_folder(folder).await;
    let program = executable.file_name();
    let tail = report.tail.clone();
    let exited = matches!(report.end, ProcessEnd::Exited { code: Some(_), .. });
    if let Some(mut failure) = report.into_failure(&program) {
        // Blender's own error line says why (a file it cannot read, a scene it lacks).
        if let (true, Some(error)) = (exited, error) {
            failure.reason = error;
        }
        return Err(failure);
    }
    let Some(range) = range else {
        return Err(Failure {
            reason: error.unwrap_or_else(|| {
                format!(
                    "{program} printed no frame range for {}; it may not be a .blend file; \
                     give --frames to render without reading it",
                    task.blend
                )
            }),
            exit_code: Some(0),
            output_tail: tail,
            gpu_fault: None,
        });
    };
    if let Some(asked) = &task.scene
        && *asked != range.scene
    {
        return Err(Failure {
            reason: format!(
                "{} has no scene `{asked}` (Blender opened `{}`); name one of its scenes \
                 with --scene",
                task.blend, range.scene
            ),
            exit_code: Some(0),
            output_tail: tail,
            gpu_fault: None,
        });
    }
    Ok(range)
}

/// Fails on no frames and on frames Blender cannot render (negative ones, which `-f`
/// reads as counted back from the scene's end frame, and ones past its last frame).
fn check_frames(frames: &[i64]) -> Result<(), Failure> {
    let (Some(first), Some(last)) = (frames.iter().min(), frames.iter().max()) else {
        return Err(Failure::new("the job names no frames to render"));
    };
    buildcat_proto::dcc::check_blender_frames(*first, *last).map_err(Failure::new)
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
    fn a_gpu_task_renders_with_its_slots_gpu_api() {
        let gpu = |vendor| Gpu {
            index: 1,
            uuid: String::new(),
            name: String::new(),
            memory_mib: 0,
            driver: String::new(),
            vendor,
        };
        let check = |requested: Option<&str>, gpus: &[Gpu], expected: Option<&str>| {
            let device = cycles_device(requested, gpus, "render01-1")
                .unwrap_or_else(|f| panic!("{requested:?}: {f}"));
            assert_eq!(device.as_deref(), expected, "{requested:?} on {gpus:?}");
        };
        check(Some("GPU"), &[gpu(GpuVendor::Nvidia)], Some("CUDA"));
        check(Some("GPU+CPU"), &[gpu(GpuVendor::Nvidia)], Some("CUDA+CPU"));
        check(Some("GPU"), &[gpu(GpuVendor::Unknown)], Some("CUDA"));
        check(Some("GPU"), &[gpu(GpuVendor::Amd)], Some("HIP"));
        // A device named outright is the task's (or the worker's --cycles-device) choice.
        check(Some("OPTIX"), &[gpu(GpuVendor::Nvidia)], Some("OPTIX"));
        check(Some("CUDA+CPU"), &[], Some("CUDA+CPU"));
        check(None, &[gpu(GpuVendor::Nvidia)], None);
        let failure = cycles_device(Some("GPU"), &[], "render01-1").expect_err("no gpu");
        assert!(
            failure.reason.contains("worker slot `render01-1` has none"),
            "{failure}"
        );
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

    #[cfg(unix)]
    fn folders() -> JobFolders {
        JobFolders::new(
            Path::new("/run/buildcat/blender/render01-1"),
            Path::new("/tmp/buildcat-task-x-1-abc"),
        )
    }

    #[cfg(unix)]
    fn args(spec: &ProcessSpec) -> Vec<&str> {
        spec.args.iter().filter_map(|arg| arg.to_str()).collect()
    }

    // Its expected profile paths are Unix paths (`/run/buildcat/...`).
    #[cfg(unix)]
    #[test]
    fn the_command_line_puts_the_scene_first_and_the_frames_last() {
        let blender = Executable::new("/usr/bin/blender");
        let extra = ["--log-level".to_owned(), "0".to_owned()];
        let spec = render_spec(
            &blender,
            Path::new("/farm"),
            RenderCommand {
                scene: "/farm/shots/a.blend".into(),
                autoexec: true,
                threads: Some(4),
                scene_name: Some("Shot"),
                output: Some("/farm/out/a_####".into()),
                format: Some("PNG"),
                engine: Some("CYCLES"),
                python_expr: Some("import bpy"),
                extra_args: &extra,
                frames: &[1, 2, 3, 10, 12, 13],
                cycles_device: Some("OPTIX+CPU"),
            },
            &folders(),
        );
        assert_eq!(spec.program, Path::new("/usr/bin/blender"));
        assert_eq!(spec.dir, Path::new("/farm"));
        assert_eq!(spec.stdin, None);
        assert_eq!(
            args(&spec),
            [
                "-y",
                "-t",
                "4",
                "-b",
                "/farm/shots/a.blend",
                "-noaudio",
                "-S",
                "Shot",
                "-o",
                "/farm/out/a_####",
                "-F",
                "PNG",
                "-E",
                "CYCLES",
                "--python-expr",
                "import bpy",
                "--log-level",
                "0",
                "-f",
                "1..3,10,12..13",
                "--",
                "--cycles-device",
                "OPTIX+CPU",
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
                ("HOME", "/run/buildcat/blender/render01-1/home"),
                ("XDG_CACHE_HOME", "/run/buildcat/blender/render01-1/cache"),
                ("XDG_CONFIG_HOME", "/run/buildcat/blender/render01-1/config"),
                ("TMPDIR", "/tmp/buildcat-task-x-1-abc"),
            ]
        );

        let spec = render_spec(
            &blender,
            Path::new("/farm"),
            RenderCommand {
                scene: "/farm/a.blend".into(),
                frames: &[7],
                ..RenderCommand::default()
            },
            &folders(),
        );
        assert_eq!(args(&spec), ["-b", "/farm/a.blend", "-noaudio", "-f", "7"]);
    }

    #[test]
    fn long_chunks_stay_one_short_frames_argument() {
        let frames: Vec<i64> = (1..=24_000).collect();
        assert_eq!(frames_arg(&frames), "1..24000");
        assert_eq!(frames_arg(&[5, 1, 2, 9]), "5,1..2,9");
        assert_eq!(frames_arg(&[]), "");
    }

    /// Feeds a recorded output to a tracker of `frames` with files named `pattern`.
    fn replay(text: &str, frames: &[i64], pattern: Option<&str>) -> Tracker {
        let mut tracker = Tracker::new(frames, Path::new("/farm"), pattern, false);
        for line in text.lines() {
            tracker.line(line);
        }
        tracker
    }

    #[test]
    fn blender_3_stereo_with_overwrite_off_credits_each_frame_once() {
        // Recorded from Blender 3.4.1 (Debian): a stereo scene whose frame 1 exists, with
        // a Python driver and no -y.
        let text = include_str!("blender_output/3.4-stereo-overwrite-off.txt");
        for pattern in [Some("out/f_####"), None] {
            let tracker = replay(text, &[1, 2], pattern);
            assert_eq!(tracker.missing(), Vec::<i64>::new(), "{pattern:?}");
            assert_eq!(tracker.done(), 2);
            assert_eq!(
                tracker.outputs,
                [
                    "out/f_0001_L.png",
                    "out/f_0001_R.png",
                    "out/f_0002_L.png",
                    "out/f_0002_R.png"
                ]
            );
            assert_eq!(tracker.error, None);
            let problem = tracker.problem("blender", false, false).unwrap_or_default();
            assert!(
                problem.starts_with("a Python driver did not run")
                    && problem.contains("Error in PyDriver: expression failed"),
                "{problem}"
            );
        }
    }

    #[test]
    fn blender_3_missing_libraries_fail_unless_allowed() {
        let text = include_str!("blender_output/3.4-missing-library.txt");
        let tracker = replay(text, &[1], Some("out/u_####"));
        assert_eq!(tracker.done(), 1);
        let problem = tracker.problem("blender", false, false).unwrap_or_default();
        assert!(
            problem.contains("linked libraries are missing")
                && problem.contains("/farm/assets/lib.blend (make them"),
            "{problem}"
        );
        assert_eq!(tracker.problem("blender", true, false), None);
    }

    /// Issue 19's progress within a frame, for Blender: Cycles' `Sample N/M` status lines
    /// give the frame's percentage, reported only when it changes and cleared when the
    /// frame is saved. Recorded from Blender 3.4.1 (Debian), Cycles on the CPU, 8 samples,
    /// `blender -b cyc.blend -o //out/c_#### -f 1` (paths moved under /farm).
    #[test]
    fn cycles_samples_are_the_frame_s_progress() {
        let text = include_str!("blender_output/3.4-cycles-samples.txt");
        let mut tracker = Tracker::new(&[1], Path::new("/farm"), Some("out/c_####"), false);
        let mut reported = Vec::new();
        for line in text.lines() {
            if tracker.line(line) {
                let progress = tracker.progress();
                reported.push((progress.done, progress.frame_percent));
            }
        }
        assert_eq!(
            reported,
            [(0, Some(0)), (0, Some(12)), (0, Some(100)), (1, None)]
        );
        assert_eq!(tracker.problem("blender", false, false), None);
        // Blender 4.2's lines end the same way; a status line of another kind says nothing.
        assert_eq!(
            sample_percent(
                "Fra:1 Mem:41.83M (Peak 42.81M) | Time:00:01.52 | Mem:9.06M, Peak:9.06M | \
                 Scene, ViewLayer | Sample 16/16"
            ),
            Some(100)
        );
        for other in [
            "Fra:1 Mem:9.90M | Scene, ViewLayer | Updating Device | Writing constant memory",
            "Fra:1 Mem:9.90M | Scene, ViewLayer | Sample 3/0",
            "Fra:1 Mem:9.90M | Scene, ViewLayer | Sample x/8",
        ] {
            assert_eq!(sample_percent(other), None, "{other}");
        }
    }

    #[test]
    fn blender_4_frames_come_from_saved_paths() {
        let text = include_str!("blender_output/4.2-cycles.txt");
        let tracker = replay(text, &[1, 2, 3], Some("out/a_####"));
        assert_eq!(tracker.done(), 3);
        assert_eq!(tracker.problem("blender", false, false), None);
        // Without a pattern, by the number at the end of the name.
        let tracker = replay(text, &[1, 2, 3], None);
        assert_eq!(tracker.done(), 3);
    }

    /// Issue 12: each file saved (not one skipped because it exists) is offered for a
    /// preview with its frame, read from its name, else from the `Fra:` line.
    #[test]
    fn saved_files_are_taken_for_previews_with_their_frames() {
        let mut tracker = Tracker::new(&[1, 2], Path::new("/farm"), Some("out/f_####"), false);
        tracker.line("skipping existing frame \"/farm/out/f_0001_L.png\" for view \"left\"");
        assert_eq!(tracker.take_saved(), None);
        tracker.line("Saved: '/farm/out/f_0002_L.png'");
        tracker.line("Saved: '/farm/out/f_0002_R.png'");
        assert_eq!(
            tracker.take_saved(),
            Some((2, "/farm/out/f_0002_R.png".to_owned()))
        );
        assert_eq!(tracker.take_saved(), None);
        let mut tracker = Tracker::new(&[7], Path::new("/farm"), None, false);
        tracker.line("Fra:7 Mem:12.00M | Rendering 1 / 64 samples");
        tracker.line("Saved: '/farm/out/beauty.exr'");
        assert_eq!(
            tracker.take_saved(),
            Some((7, "/farm/out/beauty.exr".to_owned()))
        );
    }

    #[test]
    fn blender_5_logger_lines_are_read_like_the_others() {
        let text = include_str!("blender_output/5.0-logger.txt");
        let tracker = replay(text, &[1, 2, 3], Some("out/a_####"));
        assert_eq!(tracker.missing(), Vec::<i64>::new());
        assert_eq!(tracker.outputs.len(), 6);
        assert_eq!(tracker.outputs[2], "out/a_0002_L.png");
        // The memory report, marked ERROR by the logger, is harmless.
        assert_eq!(tracker.error, None);
        assert_eq!(tracker.problem("blender", false, false), None);
        let tracker = replay(text, &[1, 2, 3], None);
        assert_eq!(tracker.done(), 3);
    }

    #[test]
    fn logger_prefixes_are_taken_off() {
        assert_eq!(
            message("00:01.204  render           | Saved: '/mnt/renders/shot_0001.png'"),
            (None, "Saved: '/mnt/renders/shot_0001.png'")
        );
        assert_eq!(
            message("render           | Saved: '/a.png'"),
            (None, "Saved: '/a.png'")
        );
        // With --log-show-memory, and past an hour.
        assert_eq!(
            message("01:00:01.204  412M   render           | Saved: '/a.png'"),
            (None, "Saved: '/a.png'")
        );
        assert_eq!(
            message("a.very.long.category.name | WARNING x"),
            (Some(Level::Other), "x")
        );
        assert_eq!(
            message("00:00.100  image            | ERROR Format not known"),
            (Some(Level::Error), "Format not known")
        );
        assert_eq!(
            message(
                "00:00.100  blend            | WARNING: 1 libraries and 1 linked data-blocks are missing"
            ),
            (
                Some(Level::Other),
                "1 libraries and 1 linked data-blocks are missing"
            )
        );
        let fra = "Fra:1 Mem:9.04M (Peak 10.83M) | Time:00:00.00 | Syncing";
        assert_eq!(message(fra), (None, fra));
        let mut tracker = Tracker::new(&[1], Path::new("/farm"), None, false);
        tracker.line("00:00.100  render           | ERROR Cannot render, no camera");
        assert_eq!(
            tracker.error.as_deref(),
            Some("Error: Cannot render, no camera")
        );
    }

    #[test]
    fn a_file_of_another_frame_counts_for_none() {
        // Blender clamps frame 1048575 to 1048574 and saves that one.
        let mut tracker = Tracker::new(&[7], Path::new("/farm"), Some("out/a_####"), false);
        tracker.line("Saved: '/farm/out/a_1048574.png'");
        tracker.line(" Time: 00:00.10 (Saving: 00:00.01)");
        assert_eq!(tracker.missing(), [7]);
    }

    #[test]
    fn frames_are_read_from_file_names() {
        let check = |pattern: Option<&str>, path: &str, frame: Option<i64>| {
            assert_eq!(frame_of_file(pattern, path), frame, "{pattern:?} {path}");
        };
        check(Some("out/a_####"), "/farm/out/a_0012.png", Some(12));
        check(Some("out/a_####_v2"), "/farm/out/a_0012_v2_L.exr", Some(12));
        check(Some("out/a_####"), "/farm/out/b_0012.png", None);
        check(Some("out/"), "/farm/out/0012.png", Some(12));
        check(Some("out/a_"), "/farm/out/a_0012_R.png", Some(12));
        check(None, "/farm/out/shot.png", None);
        check(None, "C:\\farm\\out\\x0003.exr", Some(3));
    }

    #[test]
    fn movies_count_appended_frames_and_are_refused_when_not_asked_for() {
        let mut tracker = Tracker::new(&[1, 2], Path::new("/farm"), None, true);
        assert!(tracker.line("Append frame 1"));
        assert!(tracker.line("Append frame 2"));
        assert_eq!(tracker.done(), 2);
        let mut tracker = Tracker::new(&[1], Path::new("/farm"), None, false);
        tracker.line("Append frame 1");
        let problem = tracker.problem("blender", false, false).unwrap_or_default();
        assert!(problem.contains("--movie"), "{problem}");
    }

    #[test]
    fn files_outside_the_root_fail_unless_allowed() {
        let mut tracker = Tracker::new(&[1], Path::new("/farm"), None, false);
        tracker.line("Saved: '/tmp/0001.png'");
        tracker.line(" Time: 00:00.10 (Saving: 00:00.01)");
        assert_eq!(tracker.done(), 1);
        let problem = tracker.problem("blender", false, false).unwrap_or_default();
        assert!(
            problem.starts_with("blender wrote /tmp/0001.png outside the farm root /farm"),
            "{problem}"
        );
        assert_eq!(tracker.problem("blender", false, true), None);
        // A Windows Blender on WSL prints the root in Windows form.
        let mut tracker = Tracker::new(&[1], Path::new("/mnt/c/farm"), None, false)
            .with_root_arg("C:\\farm".to_owned());
        tracker.line("Saved: 'c:\\Farm\\out\\0001.png'");
        tracker.line("Saved: 'C:\\farmhouse\\0001.png'");
        assert_eq!(tracker.outside, ["C:\\farmhouse\\0001.png"]);
        // `/farmhouse` is not under `/farm`.
        let mut tracker = Tracker::new(&[1], Path::new("/farm"), None, false);
        tracker.line("Saved: '/farmhouse/0001.png'");
        assert_eq!(tracker.outside, ["/farmhouse/0001.png"]);
    }

    /// Issue 11 (fault 4): the scene's range is read from the query's line, as 3.x-4.x
    /// print it and behind 5.x's logger prefix; anything else is no range.
    #[test]
    fn the_scene_range_line_is_read_robustly() {
        let range = |start, end, step, scene: &str| {
            Some(SceneRange {
                start,
                end,
                step,
                scene: scene.to_owned(),
            })
        };
        assert_eq!(
            parse_range("BUILDCAT-SCENE-RANGE 1 250 1 Scene"),
            range(1, 250, 1, "Scene")
        );
        assert_eq!(
            parse_range("00:01.204  python           | BUILDCAT-SCENE-RANGE 3 7 2 Shot 010\r"),
            range(3, 7, 2, "Shot 010")
        );
        assert_eq!(
            parse_range("BUILDCAT-SCENE-RANGE -5 10 1 A"),
            range(-5, 10, 1, "A")
        );
        assert_eq!(parse_range("BUILDCAT-SCENE-RANGE 1 x 1 A"), None);
        assert_eq!(parse_range("BUILDCAT-SCENE-RANGE 1 2"), None);
        assert_eq!(
            parse_range("Blender 3.4.1 (hash 55485cb379f7 built 2023-04-01)"),
            None
        );
        assert_eq!(
            range(3, 7, 2, "S").map(|range| range.frames()),
            Some(vec![3, 5, 7])
        );
        assert_eq!(
            range(1, 6, 2, "S").map(|range| range.frames()),
            Some(vec![1, 3, 5])
        );
    }

    /// The query loads the scene as a render does (`-y`, `-S`, the studio's Python) and
    /// then prints the range.
    #[test]
    fn the_range_query_loads_the_scene_like_a_render() {
        let executable = Executable::new(Path::new("/opt/blender/blender"));
        let folders = JobFolders::new(Path::new("/state/p"), Path::new("/tmp/t"));
        let command = RenderCommand {
            scene: OsString::from("/farm/a.blend"),
            autoexec: true,
            scene_name: Some("Shot"),
            python_expr: Some("import studio"),
            ..RenderCommand::default()
        };
        let spec = range_spec(&executable, Path::new("/farm"), &command, &folders);
        let args: Vec<String> = spec
            .args
            .iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-y",
                "-b",
                "/farm/a.blend",
                "-noaudio",
                "-S",
                "Shot",
                "--python-expr",
                "import studio",
                "--python-expr",
                RANGE_CODE,
            ]
        );
        assert!(RANGE_CODE.contains(RANGE_MARK));
    }

    #[test]
    fn error_lines_are_kept_but_memory_reports_are_not_errors() {
        let mut tracker = Tracker::new(&[1], Path::new("/farm"), None, false);
        tracker.line("EGL Error (0x3001): EGL_NOT_INITIALIZED");
        tracker.line("Error: Not freed memory blocks: 2, total unfreed memory 0.001 MB");
        assert_eq!(tracker.error, None);
        tracker.line("Error: Format from '-F / --render-format' not known");
        tracker.line("Error: a later one");
        assert_eq!(
            tracker.error.as_deref(),
            Some("Error: Format from '-F / --render-format' not known")
        );
        let mut tracker = Tracker::new(&[1], Path::new("/farm"), None, false);
        tracker.line("Found no Cycles device of type OPTIX");
        assert!(tracker.error.is_some());
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
        assert_eq!(
            skipped_line("skipping existing frame \"/a/b_L.png\" for view \"left\""),
            Some("/a/b_L.png")
        );
        assert_eq!(frame_line("Fra:12 Mem:1M"), Some(12));
        assert_eq!(frame_line("Fra:x"), None);
        assert_eq!(
            missing_library_line("Info: Cannot find lib '/a/lib.blend'"),
            Some("/a/lib.blend")
        );
    }

    #[test]
    fn frames_must_be_given_and_within_blenders_range() {
        assert!(check_frames(&[0, 1, 2]).is_ok());
        let reason = |frames: &[i64]| check_frames(frames).err().map(|f| f.reason);
        assert_eq!(
            reason(&[]).as_deref(),
            Some("the job names no frames to render")
        );
        assert!(reason(&[1, -2]).is_some_and(|r| r.starts_with("frame -2 cannot be rendered")));
        assert!(reason(&[1_048_575]).is_some_and(|r| r.contains("last frame is 1048574")));
    }

    #[test]
    fn missing_frames_are_named() {
        assert_eq!(frame_list(&[7]), "frame 7");
        assert_eq!(frame_list(&[2, 3]), "frames 2, 3");
        let many: Vec<i64> = (1..=25).collect();
        assert!(frame_list(&many).ends_with("19, 20, ..."));
    }

    #[test]
    fn crash_logs_are_found() {
        let folder = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            folder.path().join("a.crash.txt"),
            "# Blender 3.4.1\nbacktrace",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(folder.path().join("other.txt"), "x").unwrap_or_else(|e| panic!("{e}"));
        let logs = crash_logs(folder.path());
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].1, "# Blender 3.4.1\nbacktrace");
    }
}
