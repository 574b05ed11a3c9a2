//! The Blender integration with the real Blender: a tiny scene made by Blender's own
//! Python, rendered through a worker loop, and Blender's own failures.
//!
//! Skipped (with a note) where `blender` is not on PATH, except on CI (`BUILDCAT_CI` set),
//! which must have it. Three Blender runs in all (~2 s each).

use std::path::{Path, PathBuf};

use buildcat_proto::TaskProgress;
use buildcat_proto::dcc::{BlenderRender, RenderReport};
use buildcat_worker::Tool;

use crate::fake::{
    FakeServer, QUIET_HEARTBEAT_MS, RunningWorker, assignment, builder, failure, output, start,
    temp_root, within,
};

/// Makes a 64x48 Workbench scene with frames 1 to 3 at the path after `--`.
const MAKE_SCENE: &str = r#"
import sys
import bpy

scene = bpy.context.scene
scene.render.engine = 'BLENDER_WORKBENCH'
scene.render.resolution_x = 64
scene.render.resolution_y = 48
scene.render.resolution_percentage = 100
scene.frame_start = 1
scene.frame_end = 3
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[sys.argv.index('--') + 1])
"#;

/// Blender on PATH, or `None` (with a note) where it is not installed.
fn blender() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|directory| directory.join("blender"))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("BUILDCAT_CI").is_none(),
            "CI must have blender on PATH for the Blender tests"
        );
        println!("skipped: blender not installed");
    }
    found
}

/// A worker with `blender`, connected to a fake server.
async fn worker(
    blender: &Path,
    root: &tempfile::TempDir,
) -> (RunningWorker, crate::fake::FakeConnection, FakeServer) {
    let server = FakeServer::bind().await;
    let worker = start(builder(&server, root).tool_path(Tool::Blender, blender));
    let connection = server.accept(QUIET_HEARTBEAT_MS).await;
    (worker, connection, server)
}

/// The width and height in a PNG's header; fails the test if it is not a PNG.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len() > 24, "{} is too short", path.display());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    assert_eq!(&bytes[12..16], b"IHDR", "{}", path.display());
    let number =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    (number(16), number(20))
}

#[tokio::test]
async fn blender_renders_frames_of_a_scene_into_the_root() {
    let Some(blender) = blender() else { return };
    let root = temp_root();
    let canonical = std::fs::canonicalize(root.path()).unwrap_or_else(|e| panic!("{e}"));
    let scene = canonical.join("shots").join("tiny.blend");
    std::fs::create_dir(canonical.join("shots")).unwrap_or_else(|e| panic!("{e}"));
    let make = canonical.join("make.py");
    std::fs::write(&make, MAKE_SCENE).unwrap_or_else(|e| panic!("{e}"));
    let made = within(
        "blender to make the scene",
        tokio::process::Command::new(&blender)
            .args([
                "-b",
                "--factory-startup",
                "-noaudio",
                "--python-exit-code",
                "1",
            ])
            .arg("--python")
            .arg(&make)
            .arg("--")
            .arg(&scene)
            .output(),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot run blender: {e}"));
    assert!(
        made.status.success() && scene.is_file(),
        "blender could not make the scene: {}{}",
        String::from_utf8_lossy(&made.stdout),
        String::from_utf8_lossy(&made.stderr)
    );

    let (worker, mut connection, _server) = worker(&blender, &root).await;
    let task = BlenderRender {
        blend: "shots/tiny.blend".to_owned(),
        frames: vec![1, 2, 3],
        output: Some("out/frame_####".to_owned()),
        format: Some("PNG".to_owned()),
        ..BlenderRender::default()
    };
    connection.assign(assignment(&task)).await;
    let report = connection.expect_report().await;
    let outputs: Vec<String> = (1..=3).map(|n| format!("out/frame_{n:04}.png")).collect();
    assert_eq!(
        output::<BlenderRender>(report.completion()),
        RenderReport {
            frames: 3,
            outputs: outputs.clone(),
        }
    );
    assert_eq!(
        report.progress.last(),
        Some(&TaskProgress {
            done: 3,
            total: 3,
            outputs: outputs.clone(),
        })
    );
    for file in &outputs {
        assert_eq!(png_size(&canonical.join(file)), (64, 48), "{file}");
    }
    worker.stop().await;
}

#[tokio::test]
async fn blender_failures_give_blenders_error_line_or_stop_before_it_runs() {
    let Some(blender) = blender() else { return };
    let root = temp_root();
    // Not a .blend: Blender says so (and exits with 1 in 3.4; some versions exit with 0).
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(root.path().join("corrupt.blend"), junk).unwrap_or_else(|e| panic!("{e}"));
    let (worker, mut connection, _server) = worker(&blender, &root).await;
    let render = |blend: &str| BlenderRender {
        blend: blend.to_owned(),
        frames: vec![1],
        output: Some("out/frame_####".to_owned()),
        format: Some("PNG".to_owned()),
        ..BlenderRender::default()
    };

    connection
        .assign(assignment(&render("corrupt.blend")))
        .await;
    let reason = failure(connection.expect_report().await.completion()).reason;
    assert!(
        reason.starts_with("Error: File format is not supported in file '")
            && reason.contains("corrupt.blend"),
        "{reason}"
    );

    connection
        .assign(assignment(&render("missing.blend")))
        .await;
    let report = connection.expect_report().await;
    let canonical = std::fs::canonicalize(root.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        failure(report.completion()).reason,
        format!(
            "scene file `missing.blend` not found under the worker's root {}",
            canonical.display()
        )
    );
    // Blender never started: nothing of it was logged.
    assert!(report.lines().is_empty(), "{:?}", report.lines());
    worker.stop().await;
}
