//! Redshift: `redshiftCmdLine FILE [-gpu I]...` renders a `.rs` archive (one frame) on the
//! GPUs the worker was given (`--redshift-gpu`, in the order given; none means Redshift's
//! own choice), and `redshiftCmdLine --version` tells the version.
//!
//! The version is the first `N.N.N` token of the output, which Redshift prints as
//! `Redshift Command-Line Renderer (version 3.5.16 - API: 3.5.16)`.

use std::path::Path;
use std::sync::Arc;

use buildcat_proto::dcc::{RedshiftInfo, RedshiftRender, RenderReport, ToolInfoReport};
use buildcat_proto::{Failure, TaskProgress};

use super::tools::Executable;
use super::{scene_file, tool_report, tool_version};
use crate::context::JobContext;
use crate::process::{ProcessSpec, run_process};

/// `redshiftCmdLine --version`.
pub(super) fn info_spec(executable: &Executable, root: &Path) -> ProcessSpec {
    ProcessSpec::new(executable.path(), root).arg("--version")
}

/// The first token of the form `N.N.N` (or with more parts) in the output.
pub(super) fn parse_version(lines: &[String]) -> Option<String> {
    lines.iter().find_map(|line| {
        line.split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .map(|token| token.trim_matches('.'))
            .find(|token| {
                let parts: Vec<&str> = token.split('.').collect();
                parts.len() >= 3 && parts.iter().all(|part| !part.is_empty())
            })
            .map(str::to_owned)
    })
}

/// `redshiftCmdLine ARCHIVE -gpu I...`.
pub(super) fn render_spec(
    executable: &Executable,
    root: &Path,
    archive: &Path,
    gpus: &[u32],
) -> Result<ProcessSpec, Failure> {
    let mut spec = ProcessSpec::new(executable.path(), root).arg(executable.path_arg(archive)?);
    for gpu in gpus {
        spec = spec.arg("-gpu").arg(gpu.to_string());
    }
    Ok(spec)
}

/// The handler of [`RedshiftInfo`].
pub(super) async fn info(
    _task: RedshiftInfo,
    context: JobContext,
    executable: Arc<Executable>,
) -> Result<ToolInfoReport, Failure> {
    let spec = info_spec(&executable, &context.root);
    let version = tool_version(&context, &executable, spec, parse_version).await?;
    tool_report(&context, &executable, version)
}

/// The handler of [`RedshiftRender`], rendering on `gpus`.
pub(super) async fn render(
    task: RedshiftRender,
    context: JobContext,
    executable: Arc<Executable>,
    gpus: Arc<[u32]>,
) -> Result<RenderReport, Failure> {
    let archive = scene_file(&context, &task.rs).await?;
    let spec = render_spec(&executable, &context.root, &archive, &gpus)?;
    context.progress(TaskProgress {
        done: 0,
        total: 1,
        outputs: Vec::new(),
    });
    let report = run_process(spec, &context, |_| {}).await?;
    if let Some(failure) = report.into_failure(&executable.file_name()) {
        return Err(failure);
    }
    Ok(RenderReport {
        frames: 1,
        outputs: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;

    #[test]
    fn versions_are_the_first_dotted_triple() {
        let check = |line: &str, expected: Option<&str>| {
            assert_eq!(
                parse_version(&[line.to_owned()]).as_deref(),
                expected,
                "{line}"
            );
        };
        check(
            "Redshift Command-Line Renderer (version 3.5.16 - API: 3.5.16)",
            Some("3.5.16"),
        );
        check("Redshift 2025.1.0.1 (build 42)", Some("2025.1.0.1"));
        check("version 3.5.", None);
        check("build 1.2 of 2024", None);
        check("", None);
        assert_eq!(
            parse_version(&["Loading...".to_owned(), "v3.0.45.".to_owned()]).as_deref(),
            Some("3.0.45")
        );
    }

    #[test]
    fn each_gpu_gets_its_own_flag() {
        let redshift = Executable::new("/usr/redshift/bin/redshiftCmdLine");
        let spec = render_spec(
            &redshift,
            Path::new("/farm"),
            Path::new("/farm/a.rs"),
            &[0, 2],
        )
        .unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(spec.program, Path::new("/usr/redshift/bin/redshiftCmdLine"));
        assert_eq!(
            spec.args,
            ["/farm/a.rs", "-gpu", "0", "-gpu", "2"].map(OsString::from)
        );
        let spec = render_spec(&redshift, Path::new("/farm"), Path::new("/farm/a.rs"), &[])
            .unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(spec.args, [OsString::from("/farm/a.rs")]);
        let spec = info_spec(&redshift, Path::new("/farm"));
        assert_eq!(spec.args, [OsString::from("--version")]);
    }
}
