//! Houdini, Redshift and Modo as studios render with them today (issue 19), played by the
//! recording stand-ins of `fake_dcc`: hython renders any node that can render (ROP, LOP,
//! File Cache SOP, a node with an `execute` button) and refuses one that cannot by its
//! type; frames and outputs come from what the tools print; husk renders USD files in
//! chunks; and every tool's failure lines fail the task with that line, whatever its exit
//! code.

use std::process::Output;

use serde_json::Value;

use crate::fake_dcc::{RECORD_VAR, Run};
use crate::harness::{describe, tasks as tasks_of, text};
use crate::render::{ToolFarm, submitted};

impl ToolFarm {
    /// Runs a render command with `--wait --json`; returns the job's number and the
    /// command's output (its exit status says whether the job finished).
    fn render(&mut self, args: &[&str]) -> (String, Output) {
        let mut full = args.to_vec();
        full.extend(["--wait", "--json"]);
        let output = self.farm.run(&full);
        let (job, _) = submitted(&output);
        (job, output)
    }

    /// A render that must finish: the job's view, after checking every task finished.
    #[track_caller]
    fn finished(&mut self, args: &[&str]) -> Value {
        let (job, output) = self.render(args);
        let status = self.farm.job(&job);
        if !output.status.success() || status["state"] != "finished" {
            self.worker.assert_running();
            panic!(
                "`{}` did not finish\n{}\n{status:#}\n{}",
                args.join(" "),
                describe(&output),
                self.worker.logs()
            );
        }
        status
    }

    /// A render of one task that must fail: its failure's reason.
    #[track_caller]
    fn failed(&mut self, args: &[&str]) -> String {
        let (job, output) = self.render(args);
        assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
        let status = self.farm.status(&job);
        assert_eq!(status["state"], "failed", "{status:#}");
        text(&status, "/reason").to_owned()
    }

    /// The one task's status of job `job`.
    fn task(&self, job: &Value) -> Value {
        let number = job["number"].as_u64().map(|n| n.to_string());
        let number = number.unwrap_or_else(|| text(job, "/id").to_owned());
        self.farm.status(&format!("{number}.0"))
    }
}

/// The outputs a task's result lists.
fn outputs(task: &Value) -> Vec<String> {
    task["result"]["outputs"]
        .as_array()
        .map(|outputs| {
            outputs
                .iter()
                .filter_map(|output| output.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The last run of `tool` among `runs`.
#[track_caller]
fn last_run(runs: &[Run], tool: &str) -> Run {
    runs.iter()
        .rev()
        .find(|run| run.tool == tool)
        .cloned()
        .unwrap_or_else(|| panic!("no run of {tool} in {runs:#?}"))
}

/// A scene for the stand-in `hou` (see `tests/fake_dcc/hou.py`): a Mantra ROP, a Karma
/// LOP, a File Cache SOP with its inner ROP, a SOP with only an `execute` button, an
/// object that cannot render, a ROP that reports errors after rendering, and a ROP whose
/// renderer prints a licence failure and still succeeds.
const SCENE: &str = r#"{"nodes": [
  {"path": "/out/mantra1", "class": "rop", "type": "ifd", "renderer": "mantra",
   "image": "render/m.$F4.exr", "output_parm": "vm_picture"},
  {"path": "/stage/karma1", "class": "lop", "type": "karma", "renderer": "karma",
   "image": "render/k.$F4.exr", "output_parm": "picture"},
  {"path": "/obj/geo1", "class": "obj", "type": "geo"},
  {"path": "/obj/geo1/filecache1", "class": "sop", "type": "filecache"},
  {"path": "/obj/geo1/filecache1/render", "class": "rop", "type": "rop_geometry",
   "image": "geo/c.$F4.bgeo.sc", "output_parm": "sopoutput"},
  {"path": "/obj/geo1/cache2", "class": "sop", "type": "filecache::2.0", "execute": true,
   "image": "geo/d.$F4.bgeo.sc", "output_parm": "file"},
  {"path": "/out/camera_missing", "class": "rop", "type": "ifd", "renderer": "mantra",
   "errors": ["Unable to open camera /obj/cam1"]},
  {"path": "/out/unlicensed", "class": "rop", "type": "ifd", "renderer": "mantra",
   "print": ["No licenses could be found to run this application"]},
  {"path": "/out/crashes", "class": "rop", "type": "ifd", "renderer": "mantra",
   "raise_at": 2}
]}"#;

/// Guards issue 19's items 1, 3, 4 and 5 for hython: a Karma LOP, a File Cache SOP (through
/// its inner ROP) and a SOP with only an `execute` button render like a ROP, each frame
/// written; the frames come from the post-frame markers, and the files written (the node's
/// output parameter at each frame, images included) become the task's outputs; `/obj/geo1` is refused as "not a render node (type
/// geo)", a missing node as "no node"; a node's `errors()` after rendering, an exception
/// from `render()`, and a licence line with exit code 0 fail the task with that text.
#[test]
fn hython_renders_any_node_that_can_render_and_fails_on_what_houdini_says() {
    let mut farm = ToolFarm::start();
    farm.scene("shots/a.hip", SCENE);

    let rendered = [
        ("/out/mantra1", "render/m", ".exr"),
        ("/stage/karma1", "render/k", ".exr"),
        ("/obj/geo1/filecache1", "geo/c", ".bgeo.sc"),
        ("/obj/geo1/cache2", "geo/d", ".bgeo.sc"),
    ];
    for (node, stem, extension) in rendered {
        let job = farm.finished(&[
            "houdini-render-hip",
            "shots/a.hip",
            "--rop",
            node,
            "--frames",
            "2-4",
        ]);
        let task = farm.task(&job);
        assert_eq!(task["result"]["frames"], 3, "{node}: {task:#}");
        let expected: Vec<String> = (2..=4)
            .map(|frame| format!("{stem}.{frame:04}{extension}"))
            .collect();
        for file in &expected {
            assert!(
                farm.root.join(file).is_file(),
                "{node}: {file} was not written"
            );
        }
        assert_eq!(outputs(&task), expected, "{node}: {task:#}");
        let run = last_run(&farm.tools.runs(), "hython");
        assert_eq!(run.args[0], "-c", "{run:#?}");
        assert!(
            run.args[1].contains(&format!("path = u'{node}'\n")),
            "{}",
            run.args[1]
        );
        assert!(
            run.args[1].contains("ranges = [(2, 4, 1)]\n"),
            "{}",
            run.args[1]
        );
    }

    let refused = [
        ("/obj/geo1", "`/obj/geo1` is not a render node (type geo)"),
        ("/out/none", "there is no node `/out/none` in `shots/a.hip`"),
        (
            "/out/camera_missing",
            "`/out/camera_missing` failed: Unable to open camera /obj/cam1",
        ),
        (
            "/out/crashes",
            "`/out/crashes` failed: Error: the render of frame 2 failed",
        ),
        (
            "/out/unlicensed",
            "No licenses could be found to run this application",
        ),
    ];
    for (node, expected) in refused {
        let reason = farm.failed(&[
            "houdini-render-hip",
            "shots/a.hip",
            "--rop",
            node,
            "--frames",
            "1-3",
        ]);
        assert!(
            reason.starts_with("`hython` failed: ") && reason.contains(expected),
            "{node}: {reason:?} does not say {expected:?}"
        );
    }
    farm.worker.assert_running();
}

/// Guards issue 19's items 2, 4 and 5 for mantra and husk: `houdini-render-usd` makes a
/// task per chunk, each one husk run with `--frame`, `--frame-count`, `--frame-inc`,
/// `--renderer`, `--make-output-path`, `--verbose a3` and `-o`, whose images become the
/// outputs; husk's `USD ERROR` lines and mantra's licence and file lines fail the task with
/// that line although both exit 0; mantra's `Generating Image:` line is an output.
#[test]
fn husk_renders_usd_in_chunks_and_mantra_and_husk_fail_on_their_lines() {
    let mut farm = ToolFarm::start();
    let root = farm.root.display().to_string();

    farm.scene("usd/shot.usd", "#usda 1.0\n");
    let job = farm.finished(&[
        "houdini-render-usd",
        "usd/shot.usd",
        "--frames",
        "1-5",
        "--chunk",
        "3",
        "--renderer",
        "karma",
        "--output",
        "render/u.$F4.exr",
    ]);
    let tasks = tasks_of(&job);
    assert_eq!(tasks.len(), 2, "{job:#}");
    let mut runs: Vec<Run> = farm
        .tools
        .runs()
        .into_iter()
        .filter(|run| run.tool == "husk")
        .collect();
    runs.sort_by_key(|run| run.args.clone());
    let argv = |start: &str, count: &str| {
        [
            "--verbose",
            "a3",
            "--renderer",
            "BRAY_HdKarma",
            "--frame",
            start,
            "--frame-count",
            count,
            "--frame-inc",
            "1",
            "--make-output-path",
            &format!("{root}/usd/shot.usd"),
            "-o",
            &format!("{root}/render/u.$F4.exr"),
        ]
        .map(str::to_owned)
        .to_vec()
    };
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(runs[0].args, argv("1", "3"), "{runs:#?}");
    assert_eq!(runs[1].args, argv("4", "2"), "{runs:#?}");
    for run in &runs {
        assert_eq!(run.cwd, root, "{run:#?}");
        // The worker's environment reaches husk as it is (its PATH included).
        assert_eq!(
            run.env.get("PATH").map(String::as_str),
            Some("/nonexistent")
        );
        assert!(run.env.contains_key(RECORD_VAR), "{run:#?}");
    }
    let mut written: Vec<String> = Vec::new();
    for index in 0..2 {
        let task = farm.farm.status(&format!("{}.{index}", job["number"]));
        written.extend(outputs(&task));
    }
    written.sort();
    let expected: Vec<String> = (1..=5).map(|f| format!("render/u.{f:04}.exr")).collect();
    assert_eq!(written, expected);

    farm.scene(
        "usd/broken.usd",
        "print USD ERROR: Could not open asset @props/chair.usd@ for reference\n",
    );
    let reason = farm.failed(&["houdini-render-usd", "usd/broken.usd", "--frames", "1"]);
    assert_eq!(
        reason,
        "`husk` failed: USD ERROR: Could not open asset @props/chair.usd@ for reference \
         (it exited 0 all the same)"
    );

    farm.scene("ifd/good.ifd", "image render/i.0001.exr\n");
    let job = farm.finished(&["houdini-render-ifd", "ifd/good.ifd"]);
    assert_eq!(outputs(&farm.task(&job)), ["render/i.0001.exr"]);
    for line in [
        "No licenses could be found to run this application",
        "Failed to create file \"/farm/render/i.0001.exr\"",
    ] {
        farm.scene("ifd/bad.ifd", &format!("print {line}\n"));
        let reason = farm.failed(&["houdini-render-ifd", "ifd/bad.ifd"]);
        assert!(
            reason.starts_with(&format!("`mantra` failed: {line}")),
            "{reason:?}"
        );
    }
    farm.worker.assert_running();
}

/// Guards issue 19's items 4, 5 and 6 for Redshift: `--redshift-arg` values reach
/// `redshiftCmdLine` after the archive and the worker's GPUs, in order; the image of a
/// `Saving:` line is the task's output; a licence error line fails the task with that line
/// although Redshift exits 0.
#[test]
fn redshift_passes_its_arguments_reports_its_image_and_fails_on_a_licence_error() {
    let mut farm = ToolFarm::start();
    let root = farm.root.display().to_string();
    farm.scene("rs/shot.rs", "image render/r.0001.exr\n");
    let job = farm.finished(&[
        "redshift-render",
        "rs/shot.rs",
        "--redshift-arg",
        "-oip",
        "--redshift-arg",
        "render/r.0001.exr",
    ]);
    assert_eq!(outputs(&farm.task(&job)), ["render/r.0001.exr"]);
    let run = last_run(&farm.tools.runs(), "redshiftCmdLine");
    assert_eq!(
        run.args,
        [
            format!("{root}/rs/shot.rs"),
            "-gpu".into(),
            "0".into(),
            "-gpu".into(),
            "2".into(),
            "-oip".into(),
            "render/r.0001.exr".into(),
        ]
    );

    let line = "Error: [Redshift] License error: (RLM) All licenses in use (-22)";
    farm.scene("rs/unlicensed.rs", &format!("print {line}\n"));
    let reason = farm.failed(&["redshift-render", "rs/unlicensed.rs"]);
    assert_eq!(
        reason,
        format!("`redshiftCmdLine` failed: {line} (it exited 0 all the same)")
    );
    farm.worker.assert_running();
}

/// Guards issue 19's progress within a frame: husk's `ALF_PROGRESS` below 100% is how far
/// the frame being rendered is, shown by `status --json` (`frame_percent`) and by `status`
/// (`1/3, frame 2 at 45%`) while the frame renders (the stand-in holds frame 2 at 45%
/// until the test creates a file), and cleared once the frames are done.
#[test]
fn husk_shows_how_far_the_frame_being_rendered_is() {
    let mut farm = ToolFarm::start();
    farm.scene("usd/slow.usd", "hold 2 45 release-frame-2\n");
    let output = farm.farm.ok(&[
        "houdini-render-usd",
        "usd/slow.usd",
        "--frames",
        "1-3",
        "--chunk",
        "3",
        "--json",
    ]);
    let (job, _) = submitted(&output);
    let task = format!("{job}.0");
    let status = farm
        .farm
        .wait_for_status(&task, "frame 2 at 45%", |status| {
            status["progress"]["frame_percent"] == 45
        });
    assert_eq!(status["state"], "started", "{status:#}");
    assert_eq!(status["progress"]["done"], 1, "{status:#}");
    assert_eq!(status["progress"]["total"], 3, "{status:#}");
    let shown = String::from_utf8_lossy(&farm.farm.ok(&["status", &job]).stdout).into_owned();
    assert!(shown.contains("started 1/3, frame 2 at 45%"), "{shown}");
    let shown = String::from_utf8_lossy(&farm.farm.ok(&["status", &task]).stdout).into_owned();
    assert!(shown.contains("progress: 1/3, frame 2 at 45%"), "{shown}");

    farm.scene("release-frame-2", "");
    let status = farm
        .farm
        .wait_for_status(&task, "finished", |status| status["state"] == "finished");
    assert_eq!(status["result"]["frames"], 3, "{status:#}");
    if let Some(progress) = status["progress"].as_object() {
        assert_eq!(progress["frame_percent"], Value::Null, "{status:#}");
    }
    farm.worker.assert_running();
}
