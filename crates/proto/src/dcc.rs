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

/// Renders a `.rs` archive with `redshiftCmdLine FILE [-gpu I]...`, the GPUs being the
/// worker's `--redshift-gpu` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedshiftRender {
    /// The archive, relative to the root.
    pub rs: String,
}

impl Task for RedshiftRender {
    const KIND: &'static str = "buildcat.redshift.render";
    type Output = RenderReport;
}

/// Blender's version and executable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BlenderInfo;

impl Task for BlenderInfo {
    const KIND: &'static str = "buildcat.blender.info";
    type Output = ToolInfoReport;
}

/// Renders frames of a `.blend` file:
/// `blender -b FILE [-o OUTPUT] [-F FORMAT] [-E ENGINE] -f LIST`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlenderRender {
    /// The scene, relative to the root.
    pub blend: String,
    /// The frames of this job.
    pub frames: Vec<i64>,
    /// Blender's output pattern (`-o`), relative to the root, e.g. `renders/shot_####`.
    pub output: Option<String>,
    /// The image format (`-F`), e.g. `PNG`.
    pub format: Option<String>,
    /// The render engine (`-E`), e.g. `CYCLES`.
    pub engine: Option<String>,
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
}

/// The tools a worker may have, with the job kinds each one enables.
pub const TOOLS: &[(&str, &[&str])] = &[
    ("houdini", &[HoudiniInfo::KIND, HoudiniRenderHip::KIND]),
    ("mantra", &[HoudiniRenderIfd::KIND]),
    ("modo", &[ModoInfo::KIND, ModoRender::KIND]),
    ("redshift", &[RedshiftInfo::KIND, RedshiftRender::KIND]),
    ("blender", &[BlenderInfo::KIND, BlenderRender::KIND]),
];

/// The tool a job kind needs, for messages such as "no worker with blender".
pub fn tool_for_kind(kind: &str) -> Option<&'static str> {
    TOOLS
        .iter()
        .find(|(_, kinds)| kinds.contains(&kind))
        .map(|(tool, _)| *tool)
}
