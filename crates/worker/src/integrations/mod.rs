//! The built-in DCC integrations: the job kinds that run Houdini (hython, mantra, husk),
//! Modo, Redshift and Blender, and the discovery of those tools.
//!
//! How the parts meet: when a worker is built, [`tools`] finds the executables
//! ([`Toolbox`]) and `register` adds the handlers of the kinds whose tool was found, so
//! the registration the server routes on names exactly the kinds this worker can run. Each
//! tool's file turns a task into a [`ProcessSpec`] (pure functions, tested on their own),
//! runs it with [`run_process`] (timeout, cancel, logs and process-tree kill come from
//! there), reads progress from its output lines, and turns the end of the run into a
//! result or a [`Failure`]. `watch` reads a render's output: frames done, files written,
//! and the lines (a table per tool, each cited) that fail a task whatever the exit code.
//!
//! Every path in a task is relative to the worker's root and goes through
//! [`paths::resolve`] here, even though the submitting client checks it too: a client of
//! one's own may not. Values that end up inside code a tool runs (hython's Python, Modo's
//! command script) are written as quoted literals by `quote`.

mod blender;
mod houdini;
mod husk;
mod modo;
mod quote;
mod redshift;
pub mod tools;
mod watch;
mod written;

pub(crate) use blender::ProfileHome;
pub use blender::{BlenderOptions, PROFILE_MARK};

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use buildcat_proto::dcc::{
    BlenderInfo, BlenderPlanRange, BlenderRender, HoudiniInfo, HoudiniRenderHip, HoudiniRenderIfd,
    HoudiniRenderUsd, ModoInfo, ModoRender, RedshiftInfo, RedshiftRender, ToolInfo, ToolInfoReport,
};
use buildcat_proto::frames::FrameRange;
use buildcat_proto::{Failure, JobId, Task, TaskId, ToolVersion, paths};
use tracing::warn;

use crate::context::JobContext;
use crate::info;
use crate::process::{ProcessSpec, run_process};
use crate::registry::Registry;
use tools::{Executable, Tool, Toolbox};

/// The most output lines kept to read a tool's version from.
const VERSION_LINES: usize = 200;

/// Registers the handlers of every kind whose tool is in `toolbox`; a kind that already
/// has a handler (one the embedding program gave) keeps it.
pub(crate) fn register(
    registry: &mut Registry,
    toolbox: &Toolbox,
    redshift_gpus: &[u32],
    blender_options: &BlenderOptions,
    state_dir: &std::path::Path,
) {
    for (tool, executable) in toolbox.iter() {
        let executable = Arc::new(executable.clone());
        match tool {
            Tool::Blender => {
                add::<BlenderInfo, _, _>(registry, &executable, blender::info);
                let options = Arc::new(blender_options.clone());
                let profiles = Arc::new(blender::ProfileHome::new(blender_options, state_dir));
                if registry.get(BlenderRender::KIND).is_none() {
                    let executable = Arc::clone(&executable);
                    let options = Arc::clone(&options);
                    let profiles = Arc::clone(&profiles);
                    registry.insert(move |task: BlenderRender, context| {
                        blender::render(
                            task,
                            context,
                            Arc::clone(&executable),
                            Arc::clone(&options),
                            Arc::clone(&profiles),
                        )
                    });
                }
                if registry.get(BlenderPlanRange::KIND).is_none() {
                    let executable = Arc::clone(&executable);
                    registry.insert(move |task: BlenderPlanRange, context| {
                        blender::plan_range(
                            task,
                            context,
                            Arc::clone(&executable),
                            Arc::clone(&options),
                            Arc::clone(&profiles),
                        )
                    });
                }
            }
            Tool::Hython => {
                add::<HoudiniInfo, _, _>(registry, &executable, houdini::info);
                add::<HoudiniRenderHip, _, _>(registry, &executable, houdini::render_hip);
            }
            Tool::Mantra => {
                add::<HoudiniRenderIfd, _, _>(registry, &executable, houdini::render_ifd);
            }
            Tool::Husk => {
                add::<HoudiniRenderUsd, _, _>(registry, &executable, husk::render);
            }
            Tool::ModoCl => {
                add::<ModoInfo, _, _>(registry, &executable, modo::info);
                add::<ModoRender, _, _>(registry, &executable, modo::render);
            }
            Tool::RedshiftCmdLine => {
                let gpus: Arc<[u32]> = redshift_gpus.into();
                add::<RedshiftInfo, _, _>(registry, &executable, redshift::info);
                if registry.get(RedshiftRender::KIND).is_none() {
                    let executable = Arc::clone(&executable);
                    registry.insert(move |task: RedshiftRender, context| {
                        redshift::render(task, context, Arc::clone(&executable), Arc::clone(&gpus))
                    });
                }
            }
        }
    }
}

/// Registers `handler` for `T`, with the tool's executable, unless `T` has a handler.
fn add<T, F, Fut>(registry: &mut Registry, executable: &Arc<Executable>, handler: F)
where
    T: Task,
    F: Fn(T, JobContext, Arc<Executable>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T::Output, Failure>> + Send + 'static,
{
    if registry.get(T::KIND).is_some() {
        return;
    }
    let executable = Arc::clone(executable);
    registry.insert(move |task: T, context| handler(task, context, Arc::clone(&executable)));
}

/// A scene file a job names, resolved under the root; it must be there, so that a typo
/// fails before the tool starts (and says where the worker looked). Asked through tokio's
/// blocking pool: the root is usually a network mount, and a hung `stat` must not hold a
/// runtime thread.
async fn scene_file(context: &JobContext, path: &str) -> Result<PathBuf, Failure> {
    let resolved = paths::resolve(&context.root, path).map_err(|e| Failure::new(e.to_string()))?;
    match tokio::fs::metadata(&resolved).await {
        Ok(metadata) if metadata.is_dir() => Err(Failure::new(format!(
            "scene file `{path}` is a directory under the worker's root {}",
            context.root.display()
        ))),
        Ok(_) => Ok(resolved),
        Err(_) => Err(Failure::new(format!(
            "scene file `{path}` not found under the worker's root {}",
            context.root.display()
        ))),
    }
}

/// An output path a job names, resolved under the root (it need not exist yet).
fn output_path(context: &JobContext, path: &str) -> Result<PathBuf, Failure> {
    paths::resolve(&context.root, path).map_err(|e| Failure::new(e.to_string()))
}

/// `path` as text for code the tool runs (Python, a Modo script), in the form the tool
/// understands (see [`Executable::path_arg`]).
fn path_text(executable: &Executable, path: &Path) -> Result<String, Failure> {
    executable.path_arg(path)?.into_string().map_err(|path| {
        Failure::new(format!(
            "the path {} is not valid UTF-8, so it cannot be written into a script",
            Path::new(&path).display()
        ))
    })
}

/// What a `*-info` job returns: the worker's info plus the tool's executable and version.
fn tool_report(
    context: &JobContext,
    executable: &Executable,
    version: String,
) -> Result<ToolInfoReport, Failure> {
    let worker = info::report(&context.root, &context.worker, context.gpus())?;
    Ok(ToolInfoReport {
        os: worker.os,
        rust: worker.rust,
        worker: worker.worker,
        tool: ToolInfo {
            executable: executable.path().to_string_lossy().into_owned(),
            version,
        },
    })
}

/// Runs `spec` (a tool asked for its version) and reads the version from its output with
/// `parse`; fails if the tool fails or says nothing `parse` understands.
async fn tool_version(
    context: &JobContext,
    executable: &Executable,
    spec: ProcessSpec,
    parse: fn(&[String]) -> Option<String>,
) -> Result<String, Failure> {
    let mut lines = Vec::new();
    let report = run_process(spec, context, |line| {
        if lines.len() < VERSION_LINES {
            lines.push(line.to_owned());
        }
    })
    .await?;
    let tail = report.tail.clone();
    if let Some(failure) = report.into_failure(&executable.file_name()) {
        return Err(failure);
    }
    parse(&lines).ok_or_else(|| Failure {
        reason: format!(
            "cannot read the version of {} from its output",
            executable.path().display()
        ),
        exit_code: None,
        output_tail: tail,
        gpu_fault: None,
    })
}

/// How long a tool may take to print its version at start: long enough for a cold start
/// from a network install, short enough that a worker with a hung tool still starts soon.
pub(crate) const VERSION_TIMEOUT: Duration = Duration::from_secs(20);

/// The version of every tool in `toolbox`, asked of all of them at once (each within
/// [`VERSION_TIMEOUT`]), for the registration: a tool that fails or hangs is listed with
/// an empty version and a warning, so the worker still starts. Mantra and husk have no version
/// question here, so its version is empty.
pub(crate) async fn tool_versions(toolbox: &Toolbox, root: &Path) -> Vec<ToolVersion> {
    tool_versions_within(toolbox, root, VERSION_TIMEOUT).await
}

/// [`tool_versions`] with each tool given `limit` to answer.
async fn tool_versions_within(toolbox: &Toolbox, root: &Path, limit: Duration) -> Vec<ToolVersion> {
    let asked = toolbox.iter().map(|(tool, executable)| async move {
        let parse_and_spec = match tool {
            Tool::Blender => Some((
                blender::parse_version as fn(&[String]) -> Option<String>,
                blender::info_spec(executable, root),
            )),
            Tool::Hython => Some((
                houdini::parse_version as fn(&[String]) -> Option<String>,
                houdini::info_spec(executable, root),
            )),
            Tool::ModoCl => Some((
                modo::parse_version as fn(&[String]) -> Option<String>,
                modo::info_spec(executable, root),
            )),
            Tool::RedshiftCmdLine => Some((
                redshift::parse_version as fn(&[String]) -> Option<String>,
                redshift::info_spec(executable, root),
            )),
            Tool::Mantra | Tool::Husk => None,
        };
        let version = match parse_and_spec {
            Some((parse, spec)) => {
                // Not a task: a context of its own with a deadline, so `run_process` kills a
                // tool that hangs (and its children) when the time is up.
                let context =
                    JobContext::new(TaskId::new(JobId(Default::default()), 0), 1, "", root, "")
                        .with_timeout(limit);
                match tool_version(&context, executable, spec, parse).await {
                    Ok(version) => version,
                    Err(failure) => {
                        warn!(
                            %tool,
                            executable = %executable.path().display(),
                            reason = %failure.reason,
                            "cannot read the tool's version; it is listed without one"
                        );
                        String::new()
                    }
                }
            }
            None => String::new(),
        };
        ToolVersion {
            name: tool.name().to_owned(),
            version,
        }
    });
    futures_util::future::join_all(asked).await
}

/// How many frames `ranges` hold; fails on a range with no frames or a step below 1, and
/// on no ranges at all.
fn count_frames(ranges: &[FrameRange]) -> Result<u32, Failure> {
    if ranges.is_empty() {
        return Err(Failure::new("the job names no frames to render"));
    }
    let mut total: u64 = 0;
    for range in ranges {
        if range.step < 1 || range.stop <= range.start {
            return Err(Failure::new(format!(
                "the frame range start {} stop {} step {} holds no frames (stop is one past \
                 the last frame; the step must be 1 or more)",
                range.start, range.stop, range.step
            )));
        }
        let span = range.stop.abs_diff(range.start);
        total = total.saturating_add(span.div_ceil(range.step.unsigned_abs()));
    }
    u32::try_from(total)
        .map_err(|_| Failure::new(format!("the job names {total} frames; too many")))
}

/// The name a task's private temporary folder starts with: `buildcat-KIND-TASK-ATTEMPT-`,
/// so a folder left by a crash says whose it was.
fn task_folder_prefix(kind: &str, context: &JobContext) -> String {
    format!("buildcat-{kind}-{}-{}-", context.task, context.attempt)
}

/// Makes a task's private temporary folder (named by `prefix`, see [`task_folder_prefix`])
/// in the system's temporary folder; it is removed when dropped. Blocking: call it off the
/// runtime's threads.
fn task_folder(prefix: &str) -> Result<tempfile::TempDir, Failure> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| {
            Failure::new(format!(
                "cannot make the task's temporary folder in {}: {e}",
                std::env::temp_dir().display()
            ))
        })
}

/// A file a tool says it wrote, relative to the root when it is under it (as outputs are
/// reported), as printed otherwise.
fn root_relative(root: &Path, printed: &str) -> String {
    match Path::new(printed).strip_prefix(root) {
        Ok(relative) if !relative.as_os_str().is_empty() => relative.to_string_lossy().into_owned(),
        _ => printed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes an executable `sh` script `name` into `dir`.
    #[cfg(unix)]
    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Each tool's version is read from what it prints; one that hangs is stopped at the
    /// limit and listed without a version, and the others are read all the same; mantra,
    /// which is asked nothing, has none.
    #[cfg(unix)]
    #[tokio::test]
    async fn tool_versions_are_read_and_a_hung_tool_gets_none() {
        let dir = tempfile::tempdir().unwrap();
        let given = std::collections::BTreeMap::from([
            (
                Tool::Blender,
                script(dir.path(), "blender", "echo 'Blender 4.2.1 LTS'"),
            ),
            // Hangs (as a tool waiting on a license server would) until it is killed.
            (Tool::Hython, script(dir.path(), "hython", "exec sleep 600")),
            (Tool::Mantra, script(dir.path(), "mantra", "exit 0")),
        ]);
        let toolbox = Toolbox::discover(&given, false).unwrap();
        let versions = tool_versions_within(&toolbox, dir.path(), Duration::from_secs(1)).await;
        let tool = |name: &str, version: &str| ToolVersion {
            name: name.to_owned(),
            version: version.to_owned(),
        };
        assert_eq!(
            versions,
            [
                tool("blender", "4.2.1"),
                tool("hython", ""),
                tool("mantra", "")
            ]
        );
    }

    #[test]
    fn frames_are_counted_over_half_open_ranges() {
        let range = |start, stop, step| FrameRange { start, stop, step };
        assert_eq!(count_frames(&[range(1, 2, 1)]).ok(), Some(1));
        assert_eq!(
            count_frames(&[range(1, 11, 3), range(-5, 0, 1)]).ok(),
            Some(4 + 5)
        );
        assert_eq!(count_frames(&[range(75, 101, 2)]).ok(), Some(13));
        for bad in [
            range(1, 1, 1),
            range(5, 1, 1),
            range(1, 5, 0),
            range(1, 5, -1),
        ] {
            let reason = count_frames(&[bad]).err().map(|f| f.reason);
            assert!(
                reason
                    .as_deref()
                    .is_some_and(|r| r.contains("holds no frames")),
                "{bad:?}: {reason:?}"
            );
        }
        assert!(count_frames(&[]).is_err());
    }

    #[test]
    fn outputs_under_the_root_are_made_relative() {
        let root = Path::new("/mnt/farm");
        assert_eq!(
            root_relative(root, "/mnt/farm/out/a_0001.png"),
            "out/a_0001.png"
        );
        assert_eq!(root_relative(root, "/tmp/0001.png"), "/tmp/0001.png");
        assert_eq!(
            root_relative(root, "/mnt/farmhouse/x.png"),
            "/mnt/farmhouse/x.png"
        );
        assert_eq!(root_relative(root, "/mnt/farm"), "/mnt/farm");
        assert_eq!(root_relative(root, "C:\\farm\\x.png"), "C:\\farm\\x.png");
    }
}
