//! Issue 11 (fault 4) with the real Blender: `blender-render` without `--frames` renders
//! the scene's own range. The job's first task reads the range on a worker that has
//! Blender and adds the render tasks to the same job; `--wait` waits for them too.

use std::process::Command;

use crate::harness::{
    Farm, PATIENCE, describe, run_command, stderr, tasks as tasks_of, text, worker,
};
use crate::render::{on_path, png_size, submitted};

/// Blender's own Python: a 64x48 Workbench scene whose range is frames 3 to 7 by 2, saved
/// to the path after `--`.
const MAKE_SCENE: &str = r#"import sys
import bpy

scene = bpy.context.scene
scene.render.engine = 'BLENDER_WORKBENCH'
scene.render.resolution_x = 64
scene.render.resolution_y = 48
scene.render.resolution_percentage = 100
scene.frame_start = 3
scene.frame_end = 7
scene.frame_step = 2
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[sys.argv.index('--') + 1])
"#;

/// Guards fault 4: a scene of range 3-7 step 2, rendered without `--frames` in chunks of
/// 2, is one job: task 0 reads the range, tasks 1 (`3-5:2`) and 2 (`7`) render frames 3,
/// 5 and 7 and nothing else; `--wait` returns once all three have finished, and `status
/// --json` lists them.
#[test]
fn without_frames_blender_renders_the_scenes_own_range_in_one_job() {
    if !on_path("blender") {
        assert!(
            std::env::var_os("BUILDCAT_CI").is_none(),
            "BUILDCAT_CI is set but blender is not on PATH"
        );
        eprintln!("skipped: needs `blender` on PATH");
        return;
    }
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let script = farm.path().join("make.py");
    std::fs::write(&script, MAKE_SCENE).expect("could not write the scene script");
    std::fs::create_dir_all(root.join("scenes")).expect("could not create scenes/");
    let scene = root.join("scenes").join("range.blend");
    let mut make = Command::new("blender");
    make.args([
        "-b",
        "--factory-startup",
        "-noaudio",
        "--python-exit-code",
        "1",
        "--python",
    ])
    .arg(&script)
    .arg("--")
    .arg(&scene)
    .current_dir(farm.path())
    .stdin(std::process::Stdio::null());
    let made = run_command(make, PATIENCE);
    assert!(
        made.status.success() && scene.is_file(),
        "blender could not make the scene\n{}",
        describe(&made)
    );
    let process = farm.worker_in(&root, &["--name", "b1"]);
    farm.wait_for_info("worker b1 idle", |info| {
        worker(info, "b1").is_some_and(|w| w["state"] == "idle")
    });

    let rendered = run_command(
        farm.client.command(&[
            "blender-render",
            "scenes/range.blend",
            "--chunk",
            "2",
            "--output",
            "renders/r_####",
            "--format",
            "PNG",
            "--wait",
            "--json",
        ]),
        PATIENCE * 3,
    );
    let logs = || format!("{}\n{}", farm.server_logs(), process.logs());
    assert!(
        rendered.status.success(),
        "the render failed\n{}\n{}",
        describe(&rendered),
        logs()
    );
    // Submitted as one task; it added the other two to the same job.
    let (job, tasks) = submitted(&rendered);
    assert_eq!(tasks, 1, "{}", describe(&rendered));
    assert!(
        stderr(&rendered).contains("1 of 1 job(s) finished, 3 of 3 task(s)"),
        "{}",
        describe(&rendered)
    );
    for frame in [3, 5, 7] {
        let png = root.join(format!("renders/r_{frame:04}.png"));
        assert!(png.is_file(), "{} is missing\n{}", png.display(), logs());
        assert_eq!(png_size(&png), (64, 48), "{}", png.display());
    }
    for frame in [1, 2, 4, 6, 8] {
        let png = root.join(format!("renders/r_{frame:04}.png"));
        assert!(
            !png.exists(),
            "{} is outside the scene's range",
            png.display()
        );
    }

    let status = farm.job(&job);
    assert_eq!(status["state"], "finished", "{status:#}");
    assert_eq!(status["kind"], "buildcat.blender.plan_range", "{status:#}");
    let listed = tasks_of(&status);
    assert_eq!(listed.len(), 3, "{status:#}");
    for task in listed {
        assert_eq!(task["state"], "finished", "{status:#}");
    }
    assert_eq!(text(&listed[1], "/frames"), "3-5:2", "{status:#}");
    assert_eq!(text(&listed[2], "/frames"), "7", "{status:#}");
}
