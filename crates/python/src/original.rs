//! The original Python Buildcat's command names, for `buildcat.submit(queue, command,
//! *args)`: each becomes the job the `buildcat` command would submit for it.
//!
//! | original command | job |
//! |---|---|
//! | `buildcat.worker.info` | `buildcat.worker.info` |
//! | `buildcat.hou.info`, `.modo.info`, `.redshift.info`, `.blender.info` | the tool's info |
//! | `buildcat.hou.render_ifd(ifdfile)` | `buildcat.hou.render_ifd`, one task |
//! | `buildcat.hou.render_hip(hipfile=, rop=, frames=[(start, stop, step)])` | `buildcat.hou.render_hip` |
//! | `buildcat.modo.split_frames(lxofile, (start, stop, step))` | `buildcat.modo.render`, a task per frame |
//! | `buildcat.modo.render_frames(lxofile, (start, stop, step))` | `buildcat.modo.render`, one task |
//! | `buildcat.redshift.render(rsfile)` | `buildcat.redshift.render` |

use buildcat_client::proto::dcc::{BlenderInfo, HoudiniInfo, ModoInfo, ModoRender, RedshiftInfo};
use buildcat_client::render::{
    HoudiniHipPlan, HoudiniIfdPlan, ModoRenderPlan, RedshiftRenderPlan, check_path, file_name,
    frames_text,
};
use buildcat_client::{Task, WorkerInfo};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::client::{Client, Submit, one_task};
use crate::errors::{self, OrRaise};
use crate::job::Job;

/// The command names `submit` knows, for the message naming an unknown one.
const COMMANDS: &[&str] = &[
    "buildcat.worker.info",
    "buildcat.hou.info",
    "buildcat.hou.render_hip",
    "buildcat.hou.render_ifd",
    "buildcat.modo.info",
    "buildcat.modo.split_frames",
    "buildcat.modo.render_frames",
    "buildcat.redshift.info",
    "buildcat.redshift.render",
    "buildcat.blender.info",
];

/// The original's ROP when none is named.
const DEFAULT_ROP: &str = "/out/mantra_ipr";

/// The arguments of one command: positional, then by keyword.
struct Arguments<'a, 'py> {
    /// The command, for messages.
    command: &'a str,
    /// Positional arguments.
    args: &'a Bound<'py, PyTuple>,
    /// Keyword arguments.
    kwargs: Option<&'a Bound<'py, PyDict>>,
}

impl<'py> Arguments<'_, 'py> {
    /// Argument `index`, or the keyword `name`; `None` when neither was given.
    fn optional(&self, index: usize, name: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        if let Ok(value) = self.args.get_item(index) {
            return Ok(Some(value));
        }
        match self.kwargs {
            Some(kwargs) => kwargs.get_item(name),
            None => Ok(None),
        }
    }

    /// Argument `index` or keyword `name`, which the command needs.
    fn required(&self, py: Python<'py>, index: usize, name: &str) -> PyResult<Bound<'py, PyAny>> {
        self.optional(index, name)?.ok_or_else(|| {
            errors::raise(
                py,
                "InvalidRequest",
                format!("{} needs its argument `{name}`", self.command),
                None,
            )
        })
    }
}

/// A `(start, stop, step)` range (stop not included) from Python.
fn range(py: Python<'_>, value: &Bound<'_, PyAny>, command: &str) -> PyResult<(i64, i64, i64)> {
    value.extract().map_err(|_| {
        errors::raise(
            py,
            "InvalidRequest",
            format!(
                "{command} takes frames as (start, stop, step) with stop not included, e.g. \
                 (1, 11, 1) for frames 1 to 10"
            ),
            None,
        )
    })
}

/// Half-open `(start, stop, step)` ranges as a frame spec (`1-10:1`).
fn ranges_spec(py: Python<'_>, ranges: &[(i64, i64, i64)]) -> PyResult<String> {
    let mut items = Vec::with_capacity(ranges.len());
    for &(start, stop, step) in ranges {
        if stop <= start || step < 1 {
            return Err(errors::raise(
                py,
                "InvalidRequest",
                format!(
                    "the frame range ({start}, {stop}, {step}) is empty: stop must be greater \
                     than start and step at least 1"
                ),
                None,
            ));
        }
        items.push(format!("{start}-{}:{step}", stop - 1));
    }
    Ok(items.join(","))
}

/// Submits `command` with its arguments to `queue`; `job_timeout` in seconds.
pub fn submit(
    client: &Client,
    py: Python<'_>,
    queue: String,
    command: &str,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
    job_timeout: Option<f64>,
) -> PyResult<Job> {
    let given = Arguments {
        command,
        args,
        kwargs,
    };
    let submit = Submit {
        queue,
        name: None,
        priority: None,
        timeout: job_timeout,
        attempts: None,
        gpus: None,
        gpu_memory: None,
    };
    /// A job of one task of a kind without arguments.
    fn info<T: Task>(task: T) -> buildcat_client::render::RenderPlan<T> {
        let name = T::KIND.trim_start_matches("buildcat.").to_owned();
        one_task(name.clone(), name, task)
    }
    match command {
        "buildcat.worker.info" => client.submit_plan(py, info(WorkerInfo), submit),
        "buildcat.hou.info" => client.submit_plan(py, info(HoudiniInfo), submit),
        "buildcat.modo.info" => client.submit_plan(py, info(ModoInfo), submit),
        "buildcat.redshift.info" => client.submit_plan(py, info(RedshiftInfo), submit),
        "buildcat.blender.info" => client.submit_plan(py, info(BlenderInfo), submit),
        "buildcat.hou.render_ifd" => {
            let ifd: String = given.required(py, 0, "ifdfile")?.extract()?;
            let plan = HoudiniIfdPlan { ifds: vec![ifd] }.plan().or_raise(py)?;
            client.submit_plan(py, plan, submit)
        }
        "buildcat.hou.render_hip" => {
            let hip: String = given.required(py, 0, "hipfile")?.extract()?;
            let rop = match given.optional(1, "rop")? {
                Some(rop) => rop.extract()?,
                None => DEFAULT_ROP.to_owned(),
            };
            let frames = match given.optional(2, "frames")? {
                Some(frames) => {
                    let mut ranges = Vec::new();
                    for item in frames.try_iter()? {
                        ranges.push(range(py, &item?, command)?);
                    }
                    ranges_spec(py, &ranges)?
                }
                None => "1".to_owned(),
            };
            let plan = HoudiniHipPlan { hip, frames, rop }.plan().or_raise(py)?;
            client.submit_plan(py, plan, submit)
        }
        "buildcat.modo.split_frames" => {
            let lxo: String = given.required(py, 0, "lxofile")?.extract()?;
            let (start, stop, step) = range(py, &given.required(py, 1, "frames")?, command)?;
            let plan = ModoRenderPlan {
                lxo,
                start,
                stop,
                step,
            }
            .plan()
            .or_raise(py)?;
            client.submit_plan(py, plan, submit)
        }
        "buildcat.modo.render_frames" => {
            let lxo: String = given.required(py, 0, "lxofile")?.extract()?;
            let (start, stop, step) = range(py, &given.required(py, 1, "frames")?, command)?;
            check_path(".lxo scene", &lxo).or_raise(py)?;
            ranges_spec(py, &[(start, stop, step)])?;
            let frames: Vec<i64> = (start..stop)
                .step_by(usize::try_from(step).unwrap_or(usize::MAX))
                .collect();
            let name = format!("{} {}", file_name(&lxo), frames_text(&frames));
            let runs = format!("modo.render_frames {lxo} ({start}, {stop}, {step})");
            let task = ModoRender {
                lxo,
                start,
                stop,
                step,
            };
            client.submit_plan(py, one_task(name, runs, task), submit)
        }
        "buildcat.redshift.render" => {
            let rs: String = given.required(py, 0, "rsfile")?.extract()?;
            let plan = RedshiftRenderPlan {
                rs,
                redshift_args: Vec::new(),
            }
            .plan()
            .or_raise(py)?;
            client.submit_plan(py, plan, submit)
        }
        other => Err(errors::raise(
            py,
            "InvalidRequest",
            format!(
                "unknown command `{other}`; the commands are {}",
                COMMANDS.join(", ")
            ),
            None,
        )),
    }
}
