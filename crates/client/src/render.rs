//! Render planning shared by every front end (the `buildcat` command, the Python package,
//! the Blender add-on): a render's checks, its job name from the scene and frames, and its
//! tasks (chunks of frames, one per file or frame), made before anything is sent.
//!
//! ```
//! use buildcat_client::render::BlenderRenderPlan;
//!
//! let mut plan = BlenderRenderPlan::new("shots/a.blend", "1-10");
//! plan.chunk = 4;
//! let planned = plan.plan().unwrap();
//! assert_eq!(planned.name, "a.blend 1-10");
//! let chunks: Vec<_> = planned.tasks.iter().map(|(frames, _)| frames.clone()).collect();
//! assert_eq!(chunks, [Some("1-4".into()), Some("5-8".into()), Some("9-10".into())]);
//! ```

use buildcat_proto::dcc::{
    BlenderPlanRange, BlenderRender, HoudiniRenderHip, HoudiniRenderIfd, HoudiniRenderUsd,
    ModoRender, RedshiftRender, check_blender_engine, check_blender_format, check_blender_frames,
    check_cycles_device,
};
use buildcat_proto::frames::{FrameRange, FrameSpec, FrameSpecError};
use buildcat_proto::paths::{self, PathError};
use buildcat_proto::{JobOptions, Task};

use crate::builder::JobBuilder;
use crate::client::Client;

/// Why a render was refused before anything was sent; the message says what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A path is absolute, empty or climbs out of the farm root.
    #[error("the {what} cannot be used: {error}")]
    Path {
        /// What the path names, e.g. `.blend file`.
        what: &'static str,
        /// What is wrong with it.
        error: PathError,
    },
    /// The frame spec does not parse.
    #[error(transparent)]
    Frames(#[from] FrameSpecError),
    /// A setting is out of range or unknown to the tool.
    #[error("{0}")]
    Invalid(String),
}

/// A render job before it is sent: its name, what it runs, and its tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderPlan<T> {
    /// The name derived from the scene and frames (`a.blend 1-10`), unless the submitter
    /// names the job itself.
    pub name: String,
    /// The command that renders it, as a person reads it, for `buildcat status`.
    pub runs: String,
    /// Each task's frames as a frame spec (for people; `None` where a task has no frames of
    /// its own, e.g. one `.ifd` file) and what the worker gets.
    pub tasks: Vec<(Option<String>, T)>,
    /// Frames the spec named more than once (each renders once), for a warning.
    pub repeated: Vec<i64>,
}

impl<T: Task> RenderPlan<T> {
    /// The job on `client` for `queue`, named (by `name`, else the planned name), with its
    /// tasks and `options`; ready to [`JobBuilder::submit`].
    pub fn into_job(
        self,
        client: &Client,
        queue: &str,
        name: Option<String>,
        options: JobOptions,
    ) -> JobBuilder<T> {
        let mut job = client
            .new_job::<T>(queue)
            .name(name.unwrap_or(self.name))
            .runs(self.runs)
            .options(options);
        for (frames, task) in &self.tasks {
            job = job.task(frames.as_deref(), task);
        }
        job
    }
}

/// Refuses a path that is absolute or climbs out of the root, before anything is sent.
pub fn check_path(what: &'static str, path: &str) -> Result<(), PlanError> {
    paths::check_relative(path).map_err(|error| PlanError::Path { what, error })
}

/// Refuses a render of more tasks than a job may have ([`crate::MAX_TASKS`]), before its
/// tasks are built: a million one-frame tasks would otherwise be built and encoded only to
/// be refused. `fix` says what to change.
fn check_task_count(tasks: u128, fix: &str) -> Result<(), PlanError> {
    if tasks > crate::MAX_TASKS as u128 {
        return Err(PlanError::Invalid(format!(
            "this render would be {tasks} tasks, and a job may have at most {}; {fix}",
            crate::MAX_TASKS
        )));
    }
    Ok(())
}

/// What to change when chunks of frames are too many: the chunk that makes `frames` fit.
fn larger_chunk(frames: u128) -> String {
    format!(
        "give each task more frames with a larger chunk (--chunk {} or more) or submit \
         several jobs",
        frames.div_ceil(crate::MAX_TASKS as u128)
    )
}

/// How many frames `range` names, without listing them.
fn range_len(range: &FrameRange) -> u128 {
    let span = i128::from(range.stop) - i128::from(range.start);
    let step = i128::from(range.step.max(1));
    u128::try_from((span + step - 1) / step).unwrap_or(0)
}

/// How many chunks of `chunk` frames `range` is cut into (as [`chunks`] cuts it).
fn range_chunks(range: &FrameRange, chunk: usize) -> u128 {
    range_len(range).div_ceil(chunk.max(1) as u128)
}

/// The last part of a path, for a job's name (`scenes/shot.blend` is `shot.blend`).
pub fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\'])
        .find(|part| !part.is_empty())
        .unwrap_or(path)
}

/// A command line as a person would type it: arguments with spaces or quotes quoted.
pub fn command_line<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    words
        .into_iter()
        .map(|word| {
            let plain = !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
            if plain {
                word.to_owned()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Frames as a spec a person reads: `1-10`, `1-9:2`, or a list of runs `1-3,7`.
pub fn frames_text(frames: &[i64]) -> String {
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

/// The frames of a Blender render, each once, and those the spec repeats; refused when one
/// is negative or past Blender's last frame.
pub fn blender_frames(spec: &FrameSpec) -> Result<(Vec<i64>, Vec<i64>), PlanError> {
    let (frames, repeated) = spec.unique_frames();
    if let Some((first, last)) = spec.bounds() {
        check_blender_frames(first, last).map_err(PlanError::Invalid)?;
    }
    Ok((frames, repeated))
}

/// A Blender render as its submitter describes it: one task per `chunk` frames (one task
/// for all frames with `movie`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlenderRenderPlan {
    /// The `.blend` file, relative to the farm root.
    pub blend: String,
    /// The frame spec, e.g. `1-240` or `1,5,10-20:2`.
    pub frames: String,
    /// Frames per task: a worker renders a chunk in one Blender run, so the scene loads
    /// once per chunk.
    pub chunk: usize,
    /// Blender's output pattern (`-o`), relative to the root.
    pub output: Option<String>,
    /// The image format (`-F`), e.g. `PNG`.
    pub format: Option<String>,
    /// The render engine (`-E`).
    pub engine: Option<String>,
    /// The scene inside the file (`-S`).
    pub scene: Option<String>,
    /// The Cycles device, overriding the worker's.
    pub cycles_device: Option<String>,
    /// Render on the worker slot's GPU (`--gpu`): the Cycles device is `GPU` unless
    /// `cycles_device` names a GPU API; a CPU device is refused. (The job's GPU
    /// requirement is its options', set by the submitter.)
    pub gpu: bool,
    /// Python run after the file is loaded.
    pub python_expr: Option<String>,
    /// More arguments for Blender, before `-f`.
    pub blender_args: Vec<String>,
    /// Whether missing linked libraries may be left out.
    pub allow_missing_libraries: bool,
    /// Whether a file written outside the root only warns.
    pub allow_outside_root: bool,
    /// Whether the output is one movie file, rendered by one task.
    pub movie: bool,
}

impl BlenderRenderPlan {
    /// A render of `frames` of `blend`, one frame per task, Blender's settings as the scene
    /// has them.
    pub fn new(blend: impl Into<String>, frames: impl Into<String>) -> BlenderRenderPlan {
        BlenderRenderPlan {
            blend: blend.into(),
            frames: frames.into(),
            chunk: 1,
            output: None,
            format: None,
            engine: None,
            scene: None,
            cycles_device: None,
            gpu: false,
            python_expr: None,
            blender_args: Vec::new(),
            allow_missing_libraries: false,
            allow_outside_root: false,
            movie: false,
        }
    }

    /// Checks `format`, `engine` and `cycles_device` against Blender's names; a movie
    /// format needs `movie`.
    fn check_names(&self) -> Result<(), PlanError> {
        if let Some(format) = &self.format {
            let movie = check_blender_format(format).map_err(PlanError::Invalid)?;
            if movie && !self.movie {
                return Err(PlanError::Invalid(format!(
                    "--format {format} writes one movie file, which every task of the job \
                     would overwrite; render images (e.g. --format PNG) and encode them \
                     afterwards, or pass --movie to render the whole range as one task"
                )));
            }
        }
        if let Some(engine) = &self.engine {
            check_blender_engine(engine).map_err(PlanError::Invalid)?;
        }
        if let Some(device) = &self.cycles_device {
            check_cycles_device(device).map_err(PlanError::Invalid)?;
            if self.gpu && device.eq_ignore_ascii_case("CPU") {
                return Err(PlanError::Invalid(
                    "--gpu renders on a GPU, but --cycles-device CPU asks for the CPU; leave \
                     out one of them"
                        .to_owned(),
                ));
            }
        }
        Ok(())
    }

    /// The checks every Blender plan makes before sending: paths, chunk and names.
    fn check(&self) -> Result<(), PlanError> {
        check_path(".blend file", &self.blend)?;
        if let Some(output) = &self.output {
            check_path("output pattern", output)?;
        }
        if self.chunk == 0 {
            return Err(PlanError::Invalid(
                "--chunk must be at least 1 frame per task".to_owned(),
            ));
        }
        self.check_names()
    }

    /// The Cycles device the tasks ask for: the one named, or `GPU` (the worker slot's GPU
    /// API) when rendering on a GPU without one named.
    fn device(&self) -> Option<String> {
        match &self.cycles_device {
            Some(device) => Some(device.clone()),
            None if self.gpu => Some("GPU".to_owned()),
            None => None,
        }
    }

    /// The command line that submits this render, for `status`; `frames` as shown, or
    /// none for the scene's own range.
    fn runs(&self, frames: Option<&str>) -> String {
        let chunk = self.chunk.to_string();
        let mut words = vec!["blender-render", self.blend.as_str()];
        if let Some(frames) = frames {
            words.extend(["--frames", frames]);
        }
        words.extend(["--chunk", chunk.as_str()]);
        for (flag, value) in [
            ("--output", &self.output),
            ("--format", &self.format),
            ("--engine", &self.engine),
            ("--scene", &self.scene),
            ("--cycles-device", &self.cycles_device),
            ("--python-expr", &self.python_expr),
        ] {
            if let Some(value) = value {
                words.extend([flag, value.as_str()]);
            }
        }
        for arg in &self.blender_args {
            words.extend(["--blender-arg", arg.as_str()]);
        }
        for (flag, on) in [
            ("--allow-missing-libraries", self.allow_missing_libraries),
            ("--allow-outside-root", self.allow_outside_root),
            ("--movie", self.movie),
            ("--gpu", self.gpu),
        ] {
            if on {
                words.push(flag);
            }
        }
        command_line(words)
    }

    /// A task rendering `frames` with this plan's settings.
    fn task(&self, frames: Vec<i64>) -> BlenderRender {
        BlenderRender {
            blend: self.blend.clone(),
            frames,
            output: self.output.clone(),
            format: self.format.clone(),
            engine: self.engine.clone(),
            scene: self.scene.clone(),
            cycles_device: self.device(),
            python_expr: self.python_expr.clone(),
            extra_args: self.blender_args.clone(),
            allow_missing_libraries: self.allow_missing_libraries,
            allow_outside_root: self.allow_outside_root,
            movie: self.movie,
        }
    }

    /// The job, after every check that can be made before sending.
    ///
    /// # Errors
    /// [`PlanError`] for a path outside the root, a chunk of 0, a bad frame spec, a frame
    /// Blender cannot render, an unknown format, engine or device, or a movie format
    /// without `movie`.
    pub fn plan(&self) -> Result<RenderPlan<BlenderRender>, PlanError> {
        self.check()?;
        let spec: FrameSpec = self.frames.parse()?;
        let (frames, repeated) = blender_frames(&spec)?;
        let shown = spec.to_string();
        // A movie is one file: every chunk would write it anew.
        let chunk_size = if self.movie {
            frames.len().max(1)
        } else {
            self.chunk
        };
        check_task_count(
            frames.len().div_ceil(chunk_size.max(1)) as u128,
            &larger_chunk(frames.len() as u128),
        )?;
        Ok(RenderPlan {
            name: format!("{} {shown}", file_name(&self.blend)),
            runs: self.runs(Some(&shown)),
            tasks: frames
                .chunks(chunk_size)
                .map(|chunk| (Some(frames_text(chunk)), self.task(chunk.to_vec())))
                .collect(),
            repeated,
        })
    }

    /// The job of a render of the scene's own frame range (`frames` is not read): one
    /// task, which reads the range (start, end, step) with Blender on a worker and adds
    /// one render task per `chunk` frames to the same job (issue 11). Named
    /// `a.blend scene range`.
    ///
    /// # Errors
    /// [`PlanError`] as [`BlenderRenderPlan::plan`], frames aside.
    pub fn plan_scene_range(&self) -> Result<RenderPlan<BlenderPlanRange>, PlanError> {
        self.check()?;
        let task = BlenderPlanRange::Plan {
            render: self.task(Vec::new()),
            chunk: u32::try_from(self.chunk).unwrap_or(u32::MAX),
        };
        Ok(RenderPlan {
            name: format!("{} scene range", file_name(&self.blend)),
            runs: self.runs(None),
            tasks: vec![(None, task)],
            repeated: Vec::new(),
        })
    }
}

/// A Houdini render of a `.hip` file through a ROP: one job of one task for all frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoudiniHipPlan {
    /// The `.hip` file, relative to the farm root.
    pub hip: String,
    /// The frame spec.
    pub frames: String,
    /// The ROP's node path, e.g. `/out/mantra_ipr`.
    pub rop: String,
}

impl HoudiniHipPlan {
    /// The job, after every check that can be made before sending.
    ///
    /// # Errors
    /// [`PlanError`] for a path outside the root, a bad frame spec or an empty ROP.
    pub fn plan(&self) -> Result<RenderPlan<HoudiniRenderHip>, PlanError> {
        check_path(".hip file", &self.hip)?;
        let spec: FrameSpec = self.frames.parse()?;
        if self.rop.trim().is_empty() {
            return Err(PlanError::Invalid(
                "--rop is empty; give the ROP's node path, e.g. /out/mantra_ipr".to_owned(),
            ));
        }
        let shown = spec.to_string();
        let task = HoudiniRenderHip {
            hip: self.hip.clone(),
            frames: spec.ranges,
            rop: self.rop.clone(),
        };
        Ok(RenderPlan {
            name: format!("{} {} {shown}", file_name(&self.hip), self.rop),
            runs: command_line([
                "houdini-render-hip",
                self.hip.as_str(),
                "--frames",
                shown.as_str(),
                "--rop",
                self.rop.as_str(),
            ]),
            tasks: vec![(Some(shown.clone()), task)],
            repeated: Vec::new(),
        })
    }
}

/// Houdini `.ifd` files rendered by `mantra`: one job of one task per file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoudiniIfdPlan {
    /// The files, relative to the farm root.
    pub ifds: Vec<String>,
}

impl HoudiniIfdPlan {
    /// The job, after every path is checked.
    ///
    /// # Errors
    /// [`PlanError::Path`] for a path outside the root; [`PlanError::Invalid`] for no files.
    pub fn plan(&self) -> Result<RenderPlan<HoudiniRenderIfd>, PlanError> {
        for ifd in &self.ifds {
            check_path(".ifd file", ifd)?;
        }
        check_task_count(
            self.ifds.len() as u128,
            "one task renders one file: submit the files as several jobs",
        )?;
        let name = match self.ifds.as_slice() {
            [] => return Err(PlanError::Invalid("give at least one .ifd file".to_owned())),
            [one] => file_name(one).to_owned(),
            many => format!("{} ifd files", many.len()),
        };
        Ok(RenderPlan {
            name,
            runs: command_line(
                ["houdini-render-ifd"]
                    .into_iter()
                    .chain(self.ifds.iter().map(String::as_str)),
            ),
            tasks: self
                .ifds
                .iter()
                .map(|ifd| (None, HoudiniRenderIfd { ifd: ifd.clone() }))
                .collect(),
            repeated: Vec::new(),
        })
    }
}

/// A Modo render of frames `start..stop` by `step`: one job of one task per frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModoRenderPlan {
    /// The `.lxo` scene, relative to the farm root.
    pub lxo: String,
    /// The first frame.
    pub start: i64,
    /// One past the last frame (the original's half-open ranges).
    pub stop: i64,
    /// The distance between frames.
    pub step: i64,
}

impl ModoRenderPlan {
    /// The job, after every check that can be made before sending.
    ///
    /// # Errors
    /// [`PlanError`] for a path outside the root, a step under 1 or no frames.
    pub fn plan(&self) -> Result<RenderPlan<ModoRender>, PlanError> {
        check_path(".lxo scene", &self.lxo)?;
        if self.step < 1 {
            return Err(PlanError::Invalid("--step must be 1 or more".to_owned()));
        }
        if self.stop <= self.start {
            return Err(PlanError::Invalid(format!(
                "--stop ({}) must be greater than --start ({}); frames run from start up to \
                 but not including stop",
                self.stop, self.start
            )));
        }
        let range = FrameRange {
            start: self.start,
            stop: self.stop,
            step: self.step,
        };
        check_task_count(
            range_len(&range),
            "one task renders one frame: render fewer frames per job (a larger --step, or \
             several jobs)",
        )?;
        let step = usize::try_from(self.step).unwrap_or(usize::MAX);
        let frames: Vec<i64> = (self.start..self.stop).step_by(step).collect();
        let (start, stop, step_text) = (
            self.start.to_string(),
            self.stop.to_string(),
            self.step.to_string(),
        );
        Ok(RenderPlan {
            name: format!("{} {}", file_name(&self.lxo), frames_text(&frames)),
            runs: command_line([
                "modo-render",
                self.lxo.as_str(),
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
                        lxo: self.lxo.clone(),
                        start: frame,
                        stop: frame + 1,
                        step: 1,
                    };
                    (Some(frame.to_string()), task)
                })
                .collect(),
            repeated: Vec::new(),
        })
    }
}

/// A Redshift archive render: one job of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedshiftRenderPlan {
    /// The `.rs` archive, relative to the farm root.
    pub rs: String,
    /// More arguments for `redshiftCmdLine`, after the GPUs (`-oip PATH`, `-ores W H`).
    pub redshift_args: Vec<String>,
}

impl RedshiftRenderPlan {
    /// The job, after its path is checked.
    ///
    /// # Errors
    /// [`PlanError::Path`] for a path outside the root.
    pub fn plan(&self) -> Result<RenderPlan<RedshiftRender>, PlanError> {
        check_path(".rs archive", &self.rs)?;
        let mut words = vec!["redshift-render", self.rs.as_str()];
        for arg in &self.redshift_args {
            words.extend(["--redshift-arg", arg.as_str()]);
        }
        Ok(RenderPlan {
            name: file_name(&self.rs).to_owned(),
            runs: command_line(words),
            tasks: vec![(
                None,
                RedshiftRender {
                    rs: self.rs.clone(),
                    extra_args: self.redshift_args.clone(),
                },
            )],
            repeated: Vec::new(),
        })
    }
}

/// A USD render with Houdini's `husk`: one job of one task per `chunk` frames (each task
/// is one husk run over a start, a count and an increment, so the stage loads once per
/// chunk), or one task of the frame husk picks when no frames are given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoudiniUsdPlan {
    /// The USD file, relative to the farm root.
    pub usd: String,
    /// The frame spec; `None` renders the one frame husk picks (the stage's start).
    pub frames: Option<String>,
    /// Frames per task.
    pub chunk: usize,
    /// The Hydra delegate (`karma`, `karmaxpu`, or a delegate's own name).
    pub renderer: Option<String>,
    /// The image pattern (`-o`), relative to the root, `$F4` standing for the frame.
    pub output: Option<String>,
}

impl HoudiniUsdPlan {
    /// The job, after every check that can be made before sending.
    ///
    /// # Errors
    /// [`PlanError`] for a path outside the root, a chunk of 0, a bad frame spec or an
    /// empty renderer.
    pub fn plan(&self) -> Result<RenderPlan<HoudiniRenderUsd>, PlanError> {
        check_path("USD file", &self.usd)?;
        if let Some(output) = &self.output {
            check_path("output pattern", output)?;
        }
        if self.chunk == 0 {
            return Err(PlanError::Invalid(
                "--chunk must be at least 1 frame per task".to_owned(),
            ));
        }
        if self
            .renderer
            .as_deref()
            .is_some_and(|r| r.trim().is_empty())
        {
            return Err(PlanError::Invalid(
                "--renderer is empty; name a Hydra delegate such as karma or karmaxpu".to_owned(),
            ));
        }
        let spec: Option<FrameSpec> = self.frames.as_deref().map(str::parse).transpose()?;
        if let Some(spec) = &spec {
            check_task_count(
                spec.ranges
                    .iter()
                    .map(|range| range_chunks(range, self.chunk))
                    .sum(),
                &larger_chunk(spec.ranges.iter().map(range_len).sum()),
            )?;
        }
        let shown = spec.as_ref().map(ToString::to_string);
        let chunk = self.chunk.to_string();
        let mut words = vec!["houdini-render-usd", self.usd.as_str()];
        if let Some(shown) = &shown {
            words.extend(["--frames", shown.as_str(), "--chunk", chunk.as_str()]);
        }
        for (flag, value) in [("--renderer", &self.renderer), ("--output", &self.output)] {
            if let Some(value) = value {
                words.extend([flag, value.as_str()]);
            }
        }
        let task = |frames| HoudiniRenderUsd {
            usd: self.usd.clone(),
            frames,
            renderer: self.renderer.clone(),
            output: self.output.clone(),
        };
        let tasks = match &spec {
            None => vec![(None, task(None))],
            Some(spec) => spec
                .ranges
                .iter()
                .flat_map(|range| chunks(*range, self.chunk))
                .map(|range| {
                    let frames: Vec<i64> = (range.start..range.stop)
                        .step_by(usize::try_from(range.step).unwrap_or(1))
                        .collect();
                    (Some(frames_text(&frames)), task(Some(range)))
                })
                .collect(),
        };
        let name = match &shown {
            Some(shown) => format!("{} {shown}", file_name(&self.usd)),
            None => file_name(&self.usd).to_owned(),
        };
        Ok(RenderPlan {
            name,
            runs: command_line(words),
            tasks,
            repeated: Vec::new(),
        })
    }
}

/// `range` cut into ranges of at most `chunk` frames, in order.
fn chunks(range: FrameRange, chunk: usize) -> Vec<FrameRange> {
    let step = range.step.max(1);
    let frames: Vec<i64> = (range.start..range.stop)
        .step_by(usize::try_from(step).unwrap_or(1))
        .collect();
    frames
        .chunks(chunk.max(1))
        .filter_map(|part| {
            let (first, last) = (part.first()?, part.last()?);
            Some(FrameRange {
                start: *first,
                stop: last + 1,
                step,
            })
        })
        .collect()
}

#[cfg(test)]
mod usd_tests {
    use super::*;

    #[test]
    fn a_usd_render_is_a_task_per_chunk_of_each_range() {
        let plan = HoudiniUsdPlan {
            usd: "shots/a.usd".to_owned(),
            frames: Some("1-5,10-20:5".to_owned()),
            chunk: 2,
            renderer: Some("karma".to_owned()),
            output: Some("render/a.$F4.exr".to_owned()),
        }
        .plan()
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.name, "a.usd 1-5,10-20:5");
        type Range = (i64, i64, i64);
        let tasks: Vec<(Option<&str>, Option<Range>)> = plan
            .tasks
            .iter()
            .map(|(frames, task)| {
                (
                    frames.as_deref(),
                    task.frames.map(|r| (r.start, r.stop, r.step)),
                )
            })
            .collect();
        assert_eq!(
            tasks,
            [
                (Some("1-2"), Some((1, 3, 1))),
                (Some("3-4"), Some((3, 5, 1))),
                (Some("5"), Some((5, 6, 1))),
                (Some("10-15:5"), Some((10, 16, 5))),
                (Some("20"), Some((20, 21, 5))),
            ]
        );
        assert!(plan.runs.contains("--renderer karma"), "{}", plan.runs);

        let whole = HoudiniUsdPlan {
            usd: "a.usd".to_owned(),
            frames: None,
            chunk: 1,
            renderer: None,
            output: None,
        }
        .plan()
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(whole.tasks.len(), 1);
        assert_eq!(whole.tasks[0].1.frames, None);
        assert_eq!(whole.runs, "houdini-render-usd a.usd");

        let refused = |usd: &str, output: Option<&str>, chunk: usize| {
            HoudiniUsdPlan {
                usd: usd.to_owned(),
                frames: Some("1".to_owned()),
                chunk,
                renderer: None,
                output: output.map(str::to_owned),
            }
            .plan()
            .err()
            .map(|e| e.to_string())
        };
        assert!(refused("/abs/a.usd", None, 1).is_some());
        assert!(refused("a.usd", Some("../out.exr"), 1).is_some());
        assert!(refused("a.usd", None, 0).is_some_and(|e| e.contains("--chunk")));
    }

    /// Issue 13: `--gpu` renders Cycles on the worker slot's GPU unless a GPU device is
    /// named, and refuses the CPU.
    #[test]
    fn a_gpu_render_asks_for_the_slots_gpu_and_refuses_the_cpu() {
        let mut plan = BlenderRenderPlan::new("shot.blend", "1-2");
        plan.gpu = true;
        let planned = plan.plan().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            planned
                .tasks
                .iter()
                .all(|(_, task)| task.cycles_device.as_deref() == Some("GPU"))
        );
        assert!(planned.runs.contains("--gpu"), "{}", planned.runs);
        plan.cycles_device = Some("OPTIX".to_owned());
        let planned = plan.plan().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(planned.tasks[0].1.cycles_device.as_deref(), Some("OPTIX"));
        plan.cycles_device = Some("CPU".to_owned());
        let refused = plan.plan().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.contains("--gpu renders on a GPU"), "{refused}");
    }
}

#[cfg(test)]
mod task_count_tests {
    use super::*;

    fn refusal<T>(planned: Result<RenderPlan<T>, PlanError>) -> String {
        match planned {
            Err(PlanError::Invalid(message)) => message,
            Err(other) => panic!("expected a refusal of the task count, got {other}"),
            Ok(_) => panic!("expected a refusal of the task count, got a plan"),
        }
    }

    /// Tester finding 9: every render kind that makes a task per chunk, frame or file
    /// refuses more tasks than a job may have before building them, naming the limit and
    /// the chunk that fits.
    #[test]
    fn renders_of_more_tasks_than_a_job_may_have_are_refused_before_they_are_built() {
        let mut blender = BlenderRenderPlan::new("cube.blend", "1-1000000");
        blender.chunk = 1;
        let message = refusal(blender.plan());
        assert!(
            message.contains("1000000 tasks") && message.contains("at most 10000"),
            "{message}"
        );
        assert!(message.contains("--chunk 100 or more"), "{message}");
        blender.chunk = 100;
        assert_eq!(
            blender.plan().map(|plan| plan.tasks.len()).ok(),
            Some(10_000)
        );

        let usd = HoudiniUsdPlan {
            usd: "a.usd".to_owned(),
            frames: Some("1-20000,30001-40000:2".to_owned()),
            chunk: 1,
            renderer: None,
            output: None,
        };
        let message = refusal(usd.plan());
        assert!(
            message.contains("25000 tasks") && message.contains("--chunk 3 or more"),
            "{message}"
        );
        let usd = HoudiniUsdPlan { chunk: 3, ..usd };
        assert!(usd.plan().is_ok());

        let modo = ModoRenderPlan {
            lxo: "a.lxo".to_owned(),
            start: 0,
            stop: i64::MAX,
            step: 1,
        };
        assert!(refusal(modo.plan()).contains("at most 10000"));

        let ifd = HoudiniIfdPlan {
            ifds: vec!["a.ifd".to_owned(); crate::MAX_TASKS + 1],
        };
        assert!(refusal(ifd.plan()).contains("several jobs"));
    }
}
