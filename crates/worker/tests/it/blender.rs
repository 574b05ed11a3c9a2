//! The Blender integration with the real Blender: a tiny scene made by Blender's own
//! Python, rendered through a worker loop, and Blender's own failures.
//!
//! Skipped (with a note) where `blender` is not on PATH, except on CI (`BUILDCAT_CI` set),
//! which must have it. Ten Blender runs in all (~2-4 s each), all of 64x48 Workbench
//! scenes.

use std::path::{Path, PathBuf};

use buildcat_proto::TaskProgress;
use buildcat_proto::dcc::{BlenderRender, RenderReport};
use buildcat_worker::{BlenderOptions, Tool};

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

/// Makes two 64x48 Workbench scenes, after `--`: OUTSIDE STEREO LIBRARY USES.
/// STEREO renders both eyes with Overwrite off, its cube moved by a Python driver that
/// needs auto-run (`__import__`), its own output in the folder OUTSIDE. USES links the
/// cube of LIBRARY (which the test then deletes).
const MAKE_PRODUCTION_SCENES: &str = r#"
import sys
import bpy

outside, stereo, library, uses = sys.argv[sys.argv.index('--') + 1:]

def small(scene):
    scene.render.engine = 'BLENDER_WORKBENCH'
    scene.render.resolution_x = 64
    scene.render.resolution_y = 48
    scene.render.resolution_percentage = 100

scene = bpy.context.scene
small(scene)
curve = bpy.data.objects['Cube'].driver_add('location', 0)
curve.driver.type = 'SCRIPTED'
curve.driver.expression = 'frame * 0.1 + __import__("math").sqrt(4)'
scene.render.use_multiview = True
scene.render.views_format = 'STEREO_3D'
scene.render.image_settings.views_format = 'INDIVIDUAL'
scene.render.use_overwrite = False
scene.render.filepath = outside + '/shot_'
bpy.ops.wm.save_as_mainfile(filepath=stereo)
bpy.ops.wm.save_as_mainfile(filepath=library)

bpy.ops.wm.read_factory_settings(use_empty=True)
with bpy.data.libraries.load(library, link=True) as (source, target):
    target.objects = ['Cube']
scene = bpy.context.scene
small(scene)
scene.collection.objects.link(bpy.data.objects['Cube'])
camera = bpy.data.objects.new('Camera', bpy.data.cameras.new('Camera'))
camera.location = (7, -7, 5)
camera.rotation_euler = (1.1, 0, 0.8)
scene.collection.objects.link(camera)
scene.camera = camera
bpy.ops.wm.save_as_mainfile(filepath=uses)
"#;

/// Runs Blender's Python `script` with `args` after `--`; fails the test if it fails.
async fn blender_python(blender: &Path, script_path: &Path, script: &str, args: &[&Path]) {
    std::fs::write(script_path, script).unwrap_or_else(|e| panic!("{e}"));
    let made = within(
        "blender to make the scenes",
        tokio::process::Command::new(blender)
            .args([
                "-b",
                "--factory-startup",
                "-noaudio",
                "--python-exit-code",
                "1",
            ])
            .arg("--python")
            .arg(script_path)
            .arg("--")
            .args(args)
            .output(),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot run blender: {e}"));
    assert!(
        made.status.success(),
        "blender could not make the scenes: {}{}",
        String::from_utf8_lossy(&made.stdout),
        String::from_utf8_lossy(&made.stderr)
    );
}

/// A worker with `blender`, connected to a fake server.
async fn worker(
    blender: &Path,
    root: &tempfile::TempDir,
) -> (RunningWorker, crate::fake::FakeConnection, FakeServer) {
    worker_with(blender, root, BlenderOptions::default()).await
}

/// [`worker`] with Blender options.
async fn worker_with(
    blender: &Path,
    root: &tempfile::TempDir,
    options: BlenderOptions,
) -> (RunningWorker, crate::fake::FakeConnection, FakeServer) {
    let server = FakeServer::bind().await;
    let worker = start(
        builder(&server, root)
            .tool_path(Tool::Blender, blender)
            .blender_options(options),
    );
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
            frame_percent: None,
        })
    );
    for file in &outputs {
        assert_eq!(png_size(&canonical.join(file)), (64, 48), "{file}");
    }

    // A disk that takes none of the frame's bytes (every write fails with ENOSPC, as
    // /dev/full answers; a full disk does the same): Blender 3.4 still prints `Saved:` for
    // the frame and exits 0. The task fails naming the file instead of passing it as done.
    #[cfg(target_os = "linux")]
    {
        std::os::unix::fs::symlink("/dev/full", canonical.join("out/frame_0004.png"))
            .unwrap_or_else(|e| panic!("{e}"));
        let full = BlenderRender {
            frames: vec![4],
            ..task
        };
        connection.assign(assignment(&full)).await;
        let report = connection.expect_report().await;
        assert!(
            report.lines().iter().any(|line| line.contains("Saved:")),
            "{:?}",
            report.lines()
        );
        let reason = failure(report.completion()).reason;
        assert!(
            reason.starts_with(
                "out/frame_0004.png is empty (0 bytes), though `blender` said it wrote it"
            ),
            "{reason}"
        );
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

#[tokio::test]
async fn blender_in_production_drivers_stereo_skipped_frames_libraries_and_outside_output() {
    let Some(blender) = blender() else { return };
    let root = temp_root();
    let canonical = std::fs::canonicalize(root.path()).unwrap_or_else(|e| panic!("{e}"));
    let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let outside = std::fs::canonicalize(outside.path()).unwrap_or_else(|e| panic!("{e}"));
    let library = canonical.join("lib.blend");
    blender_python(
        &blender,
        &canonical.join("make.py"),
        MAKE_PRODUCTION_SCENES,
        &[
            &outside,
            &canonical.join("stereo.blend"),
            &library,
            &canonical.join("uses.blend"),
        ],
    )
    .await;
    std::fs::remove_file(&library).unwrap_or_else(|e| panic!("{e}"));
    // Frame 1 is there already (whole PNGs, as far as their ends show): with Overwrite off
    // Blender skips it, and it is done.
    std::fs::create_dir(canonical.join("out")).unwrap_or_else(|e| panic!("{e}"));
    let old_png = b"\x89PNG\r\n\x1a\n(an older render)\0\0\0\0IEND\xaeB`\x82";
    for eye in ["L", "R"] {
        std::fs::write(canonical.join(format!("out/f_0001_{eye}.png")), old_png)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    let (worker, mut connection, _server) = worker(&blender, &root).await;
    let stereo = |output: Option<&str>| BlenderRender {
        blend: "stereo.blend".to_owned(),
        frames: vec![1, 2],
        output: output.map(str::to_owned),
        format: Some("PNG".to_owned()),
        ..BlenderRender::default()
    };
    // -y: the driver runs; two eyes make one frame each.
    connection
        .assign(assignment(&stereo(Some("out/f_####"))))
        .await;
    let report = connection.expect_report().await;
    let done = output::<BlenderRender>(report.completion());
    assert_eq!(done.frames, 2, "{:?}", report.lines());
    assert_eq!(
        done.outputs,
        [
            "out/f_0001_L.png",
            "out/f_0001_R.png",
            "out/f_0002_L.png",
            "out/f_0002_R.png"
        ]
    );
    assert!(
        report.progress.iter().all(|progress| progress.done <= 2),
        "{:?}",
        report.progress
    );
    for eye in ["L", "R"] {
        assert_eq!(
            png_size(&canonical.join(format!("out/f_0002_{eye}.png"))),
            (64, 48)
        );
    }

    // The scene's own output is outside the root: the task fails, naming the file.
    connection.assign(assignment(&stereo(None))).await;
    let reason = failure(connection.expect_report().await.completion()).reason;
    let written = outside.join("shot_0001_L.png");
    assert!(
        reason.starts_with(&format!("blender wrote {}", written.display()))
            && reason.contains("outside the farm root"),
        "{reason}"
    );

    // The linked library is gone: the task fails, naming it.
    let uses = BlenderRender {
        blend: "uses.blend".to_owned(),
        frames: vec![1],
        output: Some("out/u_####".to_owned()),
        format: Some("PNG".to_owned()),
        ..BlenderRender::default()
    };
    connection.assign(assignment(&uses)).await;
    let reason = failure(connection.expect_report().await.completion()).reason;
    assert!(
        reason.starts_with("linked libraries are missing")
            && reason.contains(&library.display().to_string()),
        "{reason}"
    );
    worker.stop().await;

    // A worker that forbids auto-run: the driver does not run, and the task fails.
    let (worker, mut connection, _server) = worker_with(
        &blender,
        &root,
        BlenderOptions {
            no_autoexec: true,
            ..BlenderOptions::default()
        },
    )
    .await;
    let mut task = stereo(Some("out/n_####"));
    task.frames = vec![3];
    connection.assign(assignment(&task)).await;
    let reason = failure(connection.expect_report().await.completion()).reason;
    assert!(
        reason.starts_with("a Python driver did not run"),
        "{reason}"
    );
    worker.stop().await;
}
