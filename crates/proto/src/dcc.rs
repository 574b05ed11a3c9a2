//! Render tasks: the job kinds of the DCC integrations, shared by the commands that submit
//! them and the workers that run them.
//!
//! Every path in them is relative to the farm root (see [`crate::paths`]).

use serde::{Deserialize, Serialize};

use crate::frames::FrameRange;
use crate::task::{OsInfo, RuntimeInfo, Task, WorkerDetails};

/// A DCC tool as a worker found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// The executable the worker runs (a path, or a name found on PATH).
    pub executable: String,
    /// The version the tool reports.
    pub version: String,
}

/// What the `*-info` tasks return: the worker info plus one section for the tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInfoReport {
    /// The operating system.
    pub os: OsInfo,
    /// The runtime the worker was built with.
    pub rust: RuntimeInfo,
    /// The worker process.
    pub worker: WorkerDetails,
    /// The tool.
    pub tool: ToolInfo,
}

/// What a render task returns.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RenderReport {
    /// Frames rendered.
    pub frames: u32,
    /// Files written, as the tool reported them.
    pub outputs: Vec<String>,
}

/// Houdini's version and executable (`hython`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HoudiniInfo;

impl Task for HoudiniInfo {
    const KIND: &'static str = "buildcat.hou.info";
    type Output = ToolInfoReport;
}

/// Renders frames of a `.hip` file through a ROP with `hython`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoudiniRenderHip {
    /// The scene, relative to the root.
    pub hip: String,
    /// Half-open frame ranges.
    pub frames: Vec<FrameRange>,
    /// The ROP's node path, e.g. `/out/mantra_ipr`.
    pub rop: String,
}

impl Task for HoudiniRenderHip {
    const KIND: &'static str = "buildcat.hou.render_hip";
    type Output = RenderReport;
}

/// Renders one `.ifd` file with `mantra -f FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoudiniRenderIfd {
    /// The file, relative to the root.
    pub ifd: String,
}

impl Task for HoudiniRenderIfd {
    const KIND: &'static str = "buildcat.hou.render_ifd";
    type Output = RenderReport;
}

/// Modo's version and executable (`modo_cl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ModoInfo;

impl Task for ModoInfo {
    const KIND: &'static str = "buildcat.modo.info";
    type Output = ToolInfoReport;
}

/// Renders frames `start..stop` by `step` of a `.lxo` scene with `modo_cl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModoRender {
    /// The scene, relative to the root.
    pub lxo: String,
    /// The first frame.
    pub start: i64,
    /// One past the last frame.
    pub stop: i64,
    /// The distance between frames.
    pub step: i64,
}

impl Task for ModoRender {
    const KIND: &'static str = "buildcat.modo.render";
    type Output = RenderReport;
}

/// Redshift's version and executable (`redshiftCmdLine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RedshiftInfo;

impl Task for RedshiftInfo {
    const KIND: &'static str = "buildcat.redshift.info";
    type Output = ToolInfoReport;
}

/// Renders a `.rs` archive with `redshiftCmdLine FILE [-gpu I]... [ARGS...]`, the GPUs
/// being the worker's `--redshift-gpu` list.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RedshiftRender {
    /// The archive, relative to the root.
    pub rs: String,
    /// More arguments, after the GPUs: the archive's overrides such as `-oip PATH` (the
    /// image's path) or `-ores W H` (its resolution).
    pub extra_args: Vec<String>,
}

impl Task for RedshiftRender {
    const KIND: &'static str = "buildcat.redshift.render";
    type Output = RenderReport;

    /// The current layout, else the layout before `extra_args` (the archive alone), so a
    /// render queued before an upgrade still runs after it.
    fn decode_args(bytes: &[u8]) -> Result<Self, crate::CodecError> {
        crate::codec::decode_value::<RedshiftRender>(bytes).or_else(|error| {
            match crate::codec::decode_value::<RedshiftRenderV0>(bytes) {
                Ok(old) => Ok(RedshiftRender {
                    rs: old.rs,
                    extra_args: Vec::new(),
                }),
                Err(_) => Err(error),
            }
        })
    }
}

/// [`RedshiftRender`] before `extra_args`.
#[derive(Deserialize)]
struct RedshiftRenderV0 {
    /// The archive, relative to the root.
    rs: String,
}

/// Blender's version and executable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BlenderInfo;

impl Task for BlenderInfo {
    const KIND: &'static str = "buildcat.blender.info";
    type Output = ToolInfoReport;
}

/// Renders frames of a `.blend` file:
/// `blender [-y] [-t N] -b FILE -noaudio [-S SCENE] [-o OUTPUT] [-F FORMAT] [-E ENGINE]
/// [--python-expr CODE] [ARGS...] -f LIST [-- --cycles-device DEVICE]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BlenderRender {
    /// The scene, relative to the root.
    pub blend: String,
    /// The frames of this task, each once, in order.
    pub frames: Vec<i64>,
    /// Blender's output pattern (`-o`), relative to the root, e.g. `renders/shot_####`.
    pub output: Option<String>,
    /// The image format (`-F`), e.g. `PNG`.
    pub format: Option<String>,
    /// The render engine (`-E`), e.g. `CYCLES`; `EEVEE` is given the name the worker's
    /// Blender version uses.
    pub engine: Option<String>,
    /// The scene inside the file (`-S`), when it holds several.
    pub scene: Option<String>,
    /// The Cycles device (`-- --cycles-device X`), overriding the worker's; a GPU scene
    /// otherwise renders on the CPU, since the farm gives Blender no user preferences.
    pub cycles_device: Option<String>,
    /// Python run after the file is loaded (`--python-expr`), for studio set-up scripts.
    pub python_expr: Option<String>,
    /// More arguments, given after the scene's settings and before `-f`.
    pub extra_args: Vec<String>,
    /// Whether a scene whose linked libraries are missing may render without them.
    pub allow_missing_libraries: bool,
    /// Whether a file written outside the farm root only warns (it fails otherwise: nobody
    /// can collect it from a worker's local disk).
    pub allow_outside_root: bool,
    /// Whether the output is a movie (FFMPEG): then one task renders the whole range and
    /// progress comes from Blender's `Append frame N` lines.
    pub movie: bool,
}

impl Task for BlenderRender {
    const KIND: &'static str = "buildcat.blender.render";
    type Output = RenderReport;

    fn default_options(&self) -> crate::JobOptions {
        crate::JobOptions {
            timeout_ms: Some(900_000),
            ..crate::JobOptions::default()
        }
    }

    /// The current layout, else the layout of buildcat 0.6 and earlier (scene, frames,
    /// output, format, engine), read with the newer settings at their defaults.
    fn decode_args(bytes: &[u8]) -> Result<Self, crate::CodecError> {
        crate::codec::decode_value::<BlenderRender>(bytes).or_else(|error| {
            match crate::codec::decode_value::<BlenderRenderV0>(bytes) {
                Ok(old) => Ok(BlenderRender {
                    blend: old.blend,
                    frames: old.frames,
                    output: old.output,
                    format: old.format,
                    engine: old.engine,
                    ..BlenderRender::default()
                }),
                Err(_) => Err(error),
            }
        })
    }
}

/// A Blender render of the scene's own frame range: the job's first task reads the range
/// (start, end and step of the scene given by `scene`, or the file's active one) with
/// Blender on a worker that has it, and adds the render tasks to its own job
/// ([`Outcome::FinishedWithTasks`](crate::Outcome::FinishedWithTasks)), one per `chunk`
/// frames. A job has one kind, so the tasks it adds are of this kind too: each renders its
/// frames as a [`BlenderRender`] does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlenderPlanRange {
    /// The first task: read the range and add the render tasks. `render` holds every
    /// setting but the frames (its `frames` are not read).
    Plan {
        /// The render's settings, given to every task it adds.
        render: BlenderRender,
        /// Frames per added task (all frames in one task for a movie).
        chunk: u32,
    },
    /// A task the plan added: renders its frames.
    Render(BlenderRender),
}

impl Task for BlenderPlanRange {
    const KIND: &'static str = "buildcat.blender.plan_range";
    type Output = RenderReport;

    fn default_options(&self) -> crate::JobOptions {
        match self {
            BlenderPlanRange::Plan { render, .. } | BlenderPlanRange::Render(render) => {
                render.default_options()
            }
        }
    }
}

/// [`BlenderRender`] as buildcat 0.6 and earlier encoded it, so that a render queued before
/// an upgrade still runs after it.
#[derive(Deserialize)]
struct BlenderRenderV0 {
    /// The scene, relative to the root.
    blend: String,
    /// The frames of the job.
    frames: Vec<i64>,
    /// Blender's output pattern.
    output: Option<String>,
    /// The image format.
    format: Option<String>,
    /// The render engine.
    engine: Option<String>,
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    /// The layout 0.6 wrote, to encode one as an old server stored it.
    #[derive(Serialize)]
    struct Old {
        blend: String,
        frames: Vec<i64>,
        output: Option<String>,
        format: Option<String>,
        engine: Option<String>,
    }

    #[test]
    fn a_redshift_render_queued_before_its_extra_args_still_decodes() {
        #[derive(Serialize)]
        struct Old {
            rs: String,
        }
        let bytes = crate::codec::encode_value(&Old {
            rs: "rs/a.rs".to_owned(),
        })
        .expect("encodes");
        let read = RedshiftRender::decode_args(&bytes).expect("the old layout is read");
        assert_eq!(
            read,
            RedshiftRender {
                rs: "rs/a.rs".to_owned(),
                extra_args: Vec::new()
            }
        );
        let new = RedshiftRender {
            rs: "rs/a.rs".to_owned(),
            extra_args: vec!["-oip".to_owned(), "out/a.exr".to_owned()],
        };
        let bytes = crate::codec::encode_value(&new).expect("encodes");
        assert_eq!(RedshiftRender::decode_args(&bytes).expect("decodes"), new);
    }

    #[test]
    fn a_render_queued_by_an_older_buildcat_still_decodes() {
        let old = Old {
            blend: "shots/a.blend".to_owned(),
            frames: vec![1, 2, 3],
            output: Some("renders/a_####".to_owned()),
            format: Some("PNG".to_owned()),
            engine: None,
        };
        let bytes = crate::codec::encode_value(&old).expect("encodes");
        let read = BlenderRender::decode_args(&bytes).expect("the old layout is read");
        assert_eq!(read.blend, "shots/a.blend");
        assert_eq!(read.frames, vec![1, 2, 3]);
        assert_eq!(read.output.as_deref(), Some("renders/a_####"));
        assert_eq!(read.format.as_deref(), Some("PNG"));
        assert!(!read.movie && read.extra_args.is_empty() && read.scene.is_none());

        let new = BlenderRender {
            movie: true,
            ..read.clone()
        };
        let bytes = crate::codec::encode_value(&new).expect("encodes");
        assert_eq!(BlenderRender::decode_args(&bytes).expect("decodes"), new);
        assert!(BlenderRender::decode_args(b"\x01garbage").is_err());
    }
}

/// The largest frame Blender renders (`MAXFRAME` in Blender's `DNA_scene_types.h`); it
/// clamps any larger `-f` frame to this one and renders that instead.
pub const BLENDER_MAX_FRAME: i64 = 1_048_574;

/// Blender's still image formats for `-F` (`creator/creator_args.cc`, `--render-format`).
pub const BLENDER_IMAGE_FORMATS: &[&str] = &[
    "TGA",
    "RAWTGA",
    "JPEG",
    "IRIS",
    "PNG",
    "BMP",
    "HDR",
    "TIFF",
    "OPEN_EXR",
    "OPEN_EXR_MULTILAYER",
    "CINEON",
    "DPX",
    "JP2",
    "WEBP",
];

/// Blender's movie formats for `-F`: one file for all frames (`AVIRAW` and `AVIJPEG` exist
/// up to 4.x).
pub const BLENDER_MOVIE_FORMATS: &[&str] = &["FFMPEG", "AVIRAW", "AVIJPEG"];

/// Names people write for Blender's formats, and Blender's name for each.
const FORMAT_ALIASES: &[(&str, &str)] = &[
    ("JPG", "JPEG"),
    ("EXR", "OPEN_EXR"),
    ("OPENEXR", "OPEN_EXR"),
    ("MULTILAYER", "OPEN_EXR_MULTILAYER"),
    ("EXR_MULTILAYER", "OPEN_EXR_MULTILAYER"),
    ("TIF", "TIFF"),
    ("JPEG2000", "JP2"),
    ("TARGA", "TGA"),
    ("MP4", "FFMPEG"),
    ("MOV", "FFMPEG"),
];

/// Blender's built-in render engines for `-E`, plus `EEVEE`, which the worker maps to its
/// Blender's name for EEVEE (see [`blender_eevee_engine`]).
pub const BLENDER_ENGINES: &[&str] = &[
    "CYCLES",
    "BLENDER_WORKBENCH",
    "BLENDER_EEVEE",
    "BLENDER_EEVEE_NEXT",
    "EEVEE",
];

/// Names people write for Blender's engines, and the name to give.
const ENGINE_ALIASES: &[(&str, &str)] =
    &[("WORKBENCH", "BLENDER_WORKBENCH"), ("EEVEE_NEXT", "EEVEE")];

/// Cycles' devices for `--cycles-device` (`intern/cycles/blender/python.cpp`); each may be
/// followed by `+CPU` to render on the CPU as well.
pub const CYCLES_DEVICES: &[&str] = &["CPU", "CUDA", "OPTIX", "HIP", "ONEAPI", "METAL"];

/// `name` if it is in `names`; otherwise a message that suggests the right one (case or
/// an alias) or lists them.
fn known_name(
    what: &str,
    name: &str,
    names: &[&str],
    aliases: &[(&str, &str)],
) -> Result<(), String> {
    if names.contains(&name) {
        return Ok(());
    }
    let upper = name.trim().to_ascii_uppercase();
    let suggestion = names
        .iter()
        .copied()
        .find(|known| **known == upper)
        .or_else(|| {
            aliases
                .iter()
                .find(|(alias, _)| *alias == upper)
                .map(|(_, known)| *known)
        });
    Err(match suggestion {
        Some(known) => {
            format!("{what} `{name}` is not one of Blender's names; did you mean `{known}`?")
        }
        None => format!(
            "{what} `{name}` is not one of Blender's names; use one of {}",
            names.join(", ")
        ),
    })
}

/// Checks a `-F` name; true if it is a movie format.
pub fn check_blender_format(format: &str) -> Result<bool, String> {
    let all: Vec<&str> = BLENDER_IMAGE_FORMATS
        .iter()
        .chain(BLENDER_MOVIE_FORMATS)
        .copied()
        .collect();
    known_name("format", format, &all, FORMAT_ALIASES)?;
    Ok(BLENDER_MOVIE_FORMATS.contains(&format))
}

/// Checks a `-E` name.
pub fn check_blender_engine(engine: &str) -> Result<(), String> {
    known_name("engine", engine, BLENDER_ENGINES, ENGINE_ALIASES)
}

/// Checks a `--cycles-device` value: a device or `GPU`, optionally with `+CPU`.
pub fn check_cycles_device(device: &str) -> Result<(), String> {
    let gpu = device.strip_suffix("+CPU").unwrap_or(device);
    // `GPU` (what `--gpu` asks for, issue 13): whichever GPU API the worker slot's GPUs
    // have (CUDA on NVIDIA, HIP on AMD), chosen by the worker.
    if gpu == "GPU" {
        return Ok(());
    }
    known_name("Cycles device", gpu, CYCLES_DEVICES, &[]).map_err(|e| {
        format!("{e} (optionally with `+CPU`), or `GPU` for the worker slot's own GPU")
    })
}

/// Checks frames for Blender: none negative (`-f` reads those as counted back from the
/// scene's end) and none past [`BLENDER_MAX_FRAME`] (Blender would render another frame).
pub fn check_blender_frames(first: i64, last: i64) -> Result<(), String> {
    if first < 0 {
        return Err(format!(
            "frame {first} cannot be rendered: Blender has no negative frames (its -f reads them \
             as counted back from the scene's end frame)"
        ));
    }
    if last > BLENDER_MAX_FRAME {
        return Err(format!(
            "frame {last} cannot be rendered: Blender's last frame is {BLENDER_MAX_FRAME}, and it \
             would render that one instead"
        ));
    }
    Ok(())
}

/// The name of EEVEE for `-E` in a Blender `version` (`4.2.1`): `BLENDER_EEVEE_NEXT` from
/// 4.2 to 4.5, `BLENDER_EEVEE` before and after.
pub fn blender_eevee_engine(version: &str) -> &'static str {
    let mut parts = version.split('.').map(|part| {
        part.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .unwrap_or(0)
    });
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    if major == 4 && minor >= 2 {
        "BLENDER_EEVEE_NEXT"
    } else {
        "BLENDER_EEVEE"
    }
}

/// The tools a worker may have, with the job kinds each one enables.
pub const TOOLS: &[(&str, &[&str])] = &[
    ("houdini", &[HoudiniInfo::KIND, HoudiniRenderHip::KIND]),
    ("mantra", &[HoudiniRenderIfd::KIND]),
    ("modo", &[ModoInfo::KIND, ModoRender::KIND]),
    ("redshift", &[RedshiftInfo::KIND, RedshiftRender::KIND]),
    (
        "blender",
        &[
            BlenderInfo::KIND,
            BlenderRender::KIND,
            BlenderPlanRange::KIND,
        ],
    ),
    ("husk", &[HoudiniRenderUsd::KIND]),
];

/// The tool a job kind needs, for messages such as "no worker with blender".
pub fn tool_for_kind(kind: &str) -> Option<&'static str> {
    TOOLS
        .iter()
        .find(|(_, kinds)| kinds.contains(&kind))
        .map(|(tool, _)| *tool)
}

/// Renders frames of a USD file with Houdini's `husk` (Karma, or another Hydra delegate):
/// `husk --verbose a3 [--renderer NAME] [--frame S --frame-count N --frame-inc I]
/// --make-output-path FILE [-o PATTERN]`. This is to Karma what `mantra -f` is to Mantra.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoudiniRenderUsd {
    /// The USD file, relative to the root.
    pub usd: String,
    /// The frames of this task, half-open; `None` renders the one frame husk picks (the
    /// stage's start time), for a file that holds no animation.
    pub frames: Option<FrameRange>,
    /// The Hydra render delegate (`--renderer`): `karma` and `karmaxpu` name Karma's CPU
    /// and XPU delegates, any other name is given to husk as it is; `None` is the file's
    /// render settings' choice.
    pub renderer: Option<String>,
    /// The image pattern (`-o`), relative to the root, `$F4` standing for the frame; `None`
    /// writes where the file's render products say.
    pub output: Option<String>,
}

impl Task for HoudiniRenderUsd {
    const KIND: &'static str = "buildcat.hou.render_usd";
    type Output = RenderReport;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_engines_suggest_blenders_names() {
        assert_eq!(check_blender_format("PNG"), Ok(false));
        assert_eq!(check_blender_format("FFMPEG"), Ok(true));
        let jpg = check_blender_format("JPG").unwrap_err();
        assert!(jpg.contains("did you mean `JPEG`?"), "{jpg}");
        assert!(check_blender_format("png").unwrap_err().contains("`PNG`"));
        assert!(
            check_blender_format("exr")
                .unwrap_err()
                .contains("`OPEN_EXR`")
        );
        let gif = check_blender_format("GIF").unwrap_err();
        assert!(gif.contains("use one of TGA"), "{gif}");
        assert_eq!(check_blender_engine("CYCLES"), Ok(()));
        assert_eq!(check_blender_engine("EEVEE"), Ok(()));
        assert!(
            check_blender_engine("cycles")
                .unwrap_err()
                .contains("`CYCLES`")
        );
        assert!(
            check_blender_engine("workbench")
                .unwrap_err()
                .contains("`BLENDER_WORKBENCH`")
        );
        assert_eq!(check_cycles_device("OPTIX+CPU"), Ok(()));
        assert!(check_cycles_device("cuda").unwrap_err().contains("`CUDA`"));
    }

    #[test]
    fn blender_frames_are_bounded() {
        assert_eq!(check_blender_frames(0, BLENDER_MAX_FRAME), Ok(()));
        assert!(
            check_blender_frames(-5, 1)
                .unwrap_err()
                .contains("frame -5")
        );
        assert!(
            check_blender_frames(1, 1_048_575)
                .unwrap_err()
                .contains("1048574")
        );
    }

    #[test]
    fn eevee_is_named_by_version() {
        assert_eq!(blender_eevee_engine("3.4.1"), "BLENDER_EEVEE");
        assert_eq!(blender_eevee_engine("4.1.0"), "BLENDER_EEVEE");
        assert_eq!(blender_eevee_engine("4.2.0"), "BLENDER_EEVEE_NEXT");
        assert_eq!(blender_eevee_engine("4.5.3"), "BLENDER_EEVEE_NEXT");
        assert_eq!(blender_eevee_engine("5.0.0"), "BLENDER_EEVEE");
    }
}
