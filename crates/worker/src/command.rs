//! The built-in [`RunCommand`] task (`buildcat run -- PROGRAM ARGS...`): a program run
//! without a shell, in the worker's root, through the process runner.

use std::path::{Path, PathBuf};

use buildcat_proto::{CommandResult, Failure, RunCommand, RunCommandIn, paths};

use crate::context::JobContext;
use crate::process::{ProcessSpec, run_process};

/// The handler of the built-in [`RunCommand`] task.
///
/// The program runs in the root with `BUILDCAT_JOB_ID` (its job's id), `BUILDCAT_TASK`
/// (the task as people name it, `42.3`), `BUILDCAT_TASK_INDEX` (its index in the job),
/// `BUILDCAT_ATTEMPT` and `BUILDCAT_ROOT` set. Exit code 0 finishes the task; anything else
/// fails it with the exit code (or signal) and the last lines of output.
pub(crate) async fn handle(
    task: RunCommand,
    context: JobContext,
) -> Result<CommandResult, Failure> {
    run(task, Vec::new(), None, context).await
}

/// The handler of [`RunCommandIn`]: as [`handle`], with the task's variables set and in its
/// working directory (relative to the root, which it may not climb out of).
pub(crate) async fn handle_in(
    task: RunCommandIn,
    context: JobContext,
) -> Result<CommandResult, Failure> {
    let RunCommandIn { command, env, cwd } = task;
    run(command, env, cwd, context).await
}

/// Runs the program with `env` set, in `cwd` under the root (the root itself if `None`).
async fn run(
    task: RunCommand,
    env: Vec<(String, String)>,
    cwd: Option<String>,
    context: JobContext,
) -> Result<CommandResult, Failure> {
    let program = resolve_program(&context.root, &task.program)?;
    let dir = match &cwd {
        None => context.root.clone(),
        Some(dir) => paths::resolve(&context.root, dir).map_err(|error| {
            Failure::new(format!("cannot run in the directory `{dir}`: {error}"))
        })?,
    };
    let mut spec = ProcessSpec::new(program, dir).args(task.args);
    for (key, value) in env {
        spec = spec.env(key, value);
    }
    let spec = spec
        .env("BUILDCAT_JOB_ID", context.task.job.to_string())
        .env("BUILDCAT_TASK", &context.label)
        .env("BUILDCAT_TASK_INDEX", context.task.index.to_string())
        .env("BUILDCAT_ATTEMPT", context.attempt.to_string())
        .env("BUILDCAT_ROOT", &context.root);
    let report = run_process(spec, &context, |_| {}).await?;
    match report.into_failure(&task.program) {
        None => Ok(CommandResult { exit_code: 0 }),
        Some(failure) => Err(failure),
    }
}

/// Where to find `program`: a bare name is looked up on PATH when it is started, an absolute
/// path is used as it is, and any other path is relative to the root and may not climb out
/// of it.
pub(crate) fn resolve_program(root: &Path, program: &str) -> Result<PathBuf, Failure> {
    if program.is_empty() {
        return Err(Failure::new("the program to run is empty"));
    }
    if Path::new(program).is_absolute() || !program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    paths::resolve(root, program)
        .map_err(|error| Failure::new(format!("cannot run `{program}`: {error}")))
}

// Unix paths: `/usr/bin/env` is absolute there, not on Windows (it has no drive).
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn check(program: &str, expected: Result<&str, &str>) {
        let resolved = resolve_program(Path::new("/farm"), program);
        match (resolved, expected) {
            (Ok(path), Ok(expected)) => assert_eq!(path, Path::new(expected), "{program}"),
            (Err(failure), Err(expected)) => {
                assert!(failure.reason.contains(expected), "{program}: {failure}");
            }
            (other, expected) => panic!("{program}: got {other:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn programs_resolve_against_path_root_or_themselves() {
        check("blender", Ok("blender"));
        check("/usr/bin/env", Ok("/usr/bin/env"));
        check("./tools/render.sh", Ok("/farm/tools/render.sh"));
        check("tools/../bin/x", Ok("/farm/bin/x"));
        check("../outside", Err("climbs out of the farm root"));
        check("tools/../../x", Err("climbs out of the farm root"));
        check("", Err("empty"));
    }
}
