//! Redshift: `redshiftCmdLine FILE [-gpu I]... [ARGS...]` renders a `.rs` archive (one
//! frame) on the GPUs the worker was given (`--redshift-gpu`, in the order given; none means
//! Redshift's own choice), with the job's own arguments last (`-oip PATH`, `-ores W H`),
//! and `redshiftCmdLine --version` tells the version.
//!
//! GPUs per slot: a slot that owns GPUs (`--gpus-per-slot`) renders on exactly those and
//! the worker-wide `--redshift-gpu` list is not used ([`device_flags`]); a slot that shares
//! the host's GPUs keeps that list.
//!
//! The version is the first `N.N.N` token of the output, which Redshift prints as
//! `Redshift Command-Line Renderer (version 3.5.16 - API: 3.5.16)`.
//!
//! Outputs: Redshift's `Saving: PATH` lines. Failures: [`REDSHIFT_FAILURES`], whatever the
//! exit code (some versions print a licence error, abort, and exit 0).

use std::path::Path;
use std::sync::Arc;

use buildcat_proto::Failure;
use buildcat_proto::dcc::{RedshiftInfo, RedshiftRender, RenderReport, ToolInfoReport};
use buildcat_proto::gpu::Gpu;

use super::tools::Executable;
use super::watch::RenderWatch;
use super::{scene_file, tool_report, tool_version};
use crate::context::JobContext;
use crate::process::{ProcessSpec, run_process};

/// Lines Redshift prints when a render failed, whatever its exit code; each is in CGRU
/// Afanasy's Redshift parser (`afanasy/python/parsers/redshift.py`, `str_error`), whose
/// example output shows the licence line as
/// `Error: [Redshift] License error: (RLM) All licenses in use (-22)`.
pub(super) const REDSHIFT_FAILURES: &[&str] = &[
    // No licence (RLM or Maxon's), whether none is installed or all are in use.
    "License error",
    // No GPU Redshift can use (none, or all taken, or the driver is too old).
    "No devices found. Aborting rendering.",
    // Redshift gave up inside the render (out of memory, a shader it cannot compile).
    "Rendering was internally aborted",
    // A CUDA fault on the GPU.
    "Error an illegal memory access was encountered",
];

/// The file of Redshift's `Saving: PATH` line (CGRU's `parsers/redshift.py`: `Saving:\s(.+)`).
pub(super) fn saving_line(line: &str) -> Option<&str> {
    let path = line.split_once("Saving: ")?.1.trim();
    (!path.is_empty()).then_some(path)
}

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

/// The devices Redshift is told to render on (`-gpu I` each).
///
/// A slot with its own share runs Redshift with only that share visible
/// (`CUDA_VISIBLE_DEVICES` by UUID, or `HIP_VISIBLE_DEVICES`): the CUDA driver then shows
/// the process the visible GPUs renumbered from 0 in the order listed (NVIDIA, CUDA C++
/// Programming Guide, "CUDA Environment Variables"; HIP does the same, ROCm's "GPU isolation
/// techniques"). Redshift calls its device numbers "GPU ordinals" (Maxon, "Redshift
/// Environment Variables", `REDSHIFT_GPUDEVICES`: "a comma-separated list of GPU
/// ordinals") and finds its devices through that driver, so its `-gpu` ordinals count
/// within the visible set: the share's K GPUs are `-gpu 0` to `-gpu K-1`, whatever their
/// host indices. Host indices would name GPUs the process cannot see, or another of the
/// slot's. No Redshift document says in so many words which enumeration `-gpu` counts in
/// (Maxon's pages, and Deadline's and CGRU's Redshift plugins, were searched): that it is
/// the driver's, as for every CUDA program, is the inference this rests on, and even if it
/// were wrong the visible-device variable still keeps the render on the slot's GPUs.
/// Without a share, the worker-wide list (host numbering, nothing hidden).
pub(super) fn device_flags(worker_gpus: &[u32], share: Option<&[Gpu]>) -> Vec<u32> {
    match share {
        Some(share) => (0..share.len() as u32).collect(),
        None => worker_gpus.to_vec(),
    }
}

/// `redshiftCmdLine ARCHIVE -gpu I... ARGS...`.
pub(super) fn render_spec(
    executable: &Executable,
    root: &Path,
    archive: &Path,
    gpus: &[u32],
    extra_args: &[String],
) -> Result<ProcessSpec, Failure> {
    let mut spec = ProcessSpec::new(executable.path(), root).arg(executable.path_arg(archive)?);
    for gpu in gpus {
        spec = spec.arg("-gpu").arg(gpu.to_string());
    }
    Ok(spec.args(extra_args))
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

/// The handler of [`RedshiftRender`], rendering on the slot's own GPUs, else on `gpus`.
pub(super) async fn render(
    task: RedshiftRender,
    context: JobContext,
    executable: Arc<Executable>,
    gpus: Arc<[u32]>,
) -> Result<RenderReport, Failure> {
    let archive = scene_file(&context, &task.rs).await?;
    let devices = device_flags(&gpus, context.gpu_share());
    let spec = render_spec(
        &executable,
        &context.root,
        &archive,
        &devices,
        &task.extra_args,
    )?;
    let mut watch = RenderWatch::new(&context, 1, Vec::new(), REDSHIFT_FAILURES);
    let report = run_process(spec, &context, |line| {
        if let Some(path) = saving_line(line) {
            watch.output(path);
        }
        watch.check(line);
    })
    .await?;
    watch.conclude(report, &executable.file_name()).await
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
        let extra = ["-oip".to_owned(), "/farm/out/a.exr".to_owned()];
        let spec = render_spec(
            &redshift,
            Path::new("/farm"),
            Path::new("/farm/a.rs"),
            &[0, 2],
            &extra,
        )
        .unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(spec.program, Path::new("/usr/redshift/bin/redshiftCmdLine"));
        assert_eq!(
            spec.args,
            [
                "/farm/a.rs",
                "-gpu",
                "0",
                "-gpu",
                "2",
                "-oip",
                "/farm/out/a.exr"
            ]
            .map(OsString::from)
        );
        let spec = render_spec(
            &redshift,
            Path::new("/farm"),
            Path::new("/farm/a.rs"),
            &[],
            &[],
        )
        .unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(spec.args, [OsString::from("/farm/a.rs")]);
        let spec = info_spec(&redshift, Path::new("/farm"));
        assert_eq!(spec.args, [OsString::from("--version")]);
    }

    #[test]
    fn a_slot_share_replaces_the_worker_list_with_visible_ordinals() {
        let gpu = |index| Gpu {
            index,
            uuid: format!("GPU-{index}"),
            name: String::new(),
            memory_mib: 0,
            driver: String::new(),
            vendor: buildcat_proto::gpu::GpuVendor::Nvidia,
        };
        // The slot owns host GPUs 2 and 3: they are the process's devices 0 and 1.
        assert_eq!(device_flags(&[0, 1, 2, 3], Some(&[gpu(2), gpu(3)])), [0, 1]);
        assert_eq!(device_flags(&[], Some(&[gpu(5)])), [0]);
        // No share: the worker-wide --redshift-gpu list, as before.
        assert_eq!(device_flags(&[0, 2], None), [0, 2]);
        assert_eq!(device_flags(&[], None), Vec::<u32>::new());
    }

    #[test]
    fn saving_lines_name_the_image() {
        assert_eq!(
            saving_line("Saving: /farm/render/a.0001.exr"),
            Some("/farm/render/a.0001.exr")
        );
        assert_eq!(
            saving_line("    [Redshift] Saving: C:\\farm\\a.png"),
            Some("C:\\farm\\a.png")
        );
        assert_eq!(saving_line("Saving: "), None);
        assert_eq!(saving_line("Saved file"), None);
    }
}
