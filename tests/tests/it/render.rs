//! The render integrations end to end: the render commands of the CLI, through the server,
//! to a worker that runs the DCC tool. Houdini, Modo and Redshift are played by recording
//! stand-ins (`fake_dcc`), so the command lines, scripts and working directories the worker
//! builds are checked exactly; Blender is the real one, rendering real frames on two
//! workers.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::fake_dcc::{self, FakeTools, RECORD_VAR, Run};
use crate::harness::{
    Farm, PATIENCE, Proc, buildcat_command, count, describe, json, queue, run_command, stderr,
    stdout, tasks as tasks_of, text, worker,
};

/// A farm whose only worker (`dcc`) has the fake tools, given by flag, and no PATH at all,
/// so it has no Blender and could only have found the tools through the flags.
#[derive(Debug)]
pub(super) struct ToolFarm {
    /// The worker; declared first so it is killed before the farm's directory goes.
    pub(super) worker: Proc,
    /// The fake tools and their records.
    pub(super) tools: FakeTools,
    /// The worker's root (canonical).
    pub(super) root: PathBuf,
    /// How many tool runs the worker made before it registered (it asks each tool its
    /// version at start), so a test counts only the runs its jobs made.
    pub(super) started_runs: usize,
    /// The server and the directory everything lives in.
    pub(super) farm: Farm,
}

impl ToolFarm {
    /// Starts the farm and waits until the worker is idle with its tools' versions.
    pub(super) fn start() -> ToolFarm {
        let farm = Farm::start();
        let tools = FakeTools::install(&farm.make_dir("tools"));
        let root = farm.make_dir("root");
        let port = farm.port.to_string();
        let mut command = buildcat_command(["worker", "--port", &port, "--name", "dcc"]);
        command
            .args(tools.worker_flags())
            .current_dir(&root)
            .env("PATH", "/nonexistent")
            .env(RECORD_VAR, &tools.records);
        let process = Proc::spawn("worker dcc", command, farm.path());
        // The worker registers at once and asks its tools their versions beside that; once
        // info lists the versions, those questions' runs are all recorded, whole.
        farm.wait_for_info("worker dcc idle with its tools' versions", |info| {
            crate::worker_tools::idle_with_versions(info, "dcc")
        });
        let started_runs = tools.runs().len();
        ToolFarm {
            worker: process,
            tools,
            root,
            started_runs,
            farm,
        }
    }

    /// Runs `buildcat ARGS` and fails the test, with the farm's logs, unless it succeeds.
    #[track_caller]
    fn ok(&mut self, args: &[&str]) -> Output {
        let output = self.farm.run(args);
        if !output.status.success() {
            self.worker.assert_running();
            panic!(
                "`buildcat {}` failed\n{}\n{}\n{}",
                args.join(" "),
                describe(&output),
                self.worker.logs(),
                self.farm.server_logs()
            );
        }
        output
    }

    /// Writes `contents` to `path` under the root, making its folders.
    pub(super) fn scene(&self, path: &str, contents: &str) {
        write_file(&self.root.join(path), contents.as_bytes());
    }

    /// `path` under the root, as the worker hands it to a tool.
    fn under_root(&self, path: &str) -> String {
        self.root.join(path).display().to_string()
    }
}

/// Writes `bytes` to `path`, making its folders.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|error| panic!("could not create {}: {error}", parent.display()));
    }
    std::fs::write(path, bytes)
        .unwrap_or_else(|error| panic!("could not write {}: {error}", path.display()));
}

/// The job number and task count of a render command's `--json` output (`{"job": UUID,
/// "number": N, "tasks": COUNT}`).
#[track_caller]
pub(crate) fn submitted(output: &Output) -> (String, u64) {
    let printed = json(output);
    let number = printed["number"].as_u64();
    let tasks = printed["tasks"].as_u64();
    let id = printed["job"].as_str().unwrap_or_default();
    match (number, tasks) {
        (Some(number), Some(tasks)) if id.len() == 36 => (number.to_string(), tasks),
        _ => panic!(
            "not {{\"job\", \"number\", \"tasks\"}}\n{}",
            describe(output)
        ),
    }
}

/// The one run of `tool` among `runs`; fails the test unless there is exactly one run and
/// it is of `tool`.
#[track_caller]
fn only_run(runs: &[Run], tool: &str) -> Run {
    match runs {
        [run] if run.tool == tool => run.clone(),
        _ => panic!("expected one run of {tool}, got {runs:#?}"),
    }
}

/// Guards the tool integrations as a user drives them: a worker given `--hython`,
/// `--mantra`, `--modo`, `--redshift` (and no PATH) registers those tools; the `*-info`
/// commands print each tool's section under its name with the version read from the tool;
/// `houdini-render-hip` runs `hython -c CODE` with the scene and ROP as Python literals
/// (a name with a quote and a space arrives whole) and every frame range;
/// `houdini-render-ifd` runs `mantra -f FILE` once per file; `modo-render` makes one job
/// per frame, whose modo_cl runs the worker's render script (it opens the scene, sets
/// first, last and step, renders, and finds each frame's file); and
/// `redshift-render` passes the archive and each `--redshift-gpu`. Every tool runs in the
/// worker's root.
#[test]
fn fake_tools_named_by_flags_run_the_command_lines_the_integrations_promise() {
    let mut farm = ToolFarm::start();
    let mut seen = farm.started_runs;

    // The info commands: text, then JSON, for each tool.
    let infos = [
        (
            "houdini-info",
            "houdini",
            "hython",
            fake_dcc::HOUDINI_VERSION,
        ),
        ("modo-info", "modo", "modo_cl", fake_dcc::MODO_VERSION),
        (
            "redshift-info",
            "redshift",
            "redshiftCmdLine",
            fake_dcc::REDSHIFT_VERSION,
        ),
    ];
    for (command, section, tool, version) in infos {
        let executable = farm.tools.tool(tool).display().to_string();
        let printed = stdout(&farm.ok(&[command]));
        let expected = format!("{section}:\n  executable: {executable}\n  version: {version}\n");
        assert!(printed.contains(&expected), "{command}:\n{printed}");
        assert!(printed.contains("\nworker:\n"), "{command}:\n{printed}");
        let report = json(&farm.ok(&[command, "--json"]));
        assert_eq!(text(&report, &format!("/{section}/version")), version);
        assert_eq!(text(&report, &format!("/{section}/executable")), executable);
        assert_eq!(text(&report, "/worker/name"), "dcc");
        assert!(report.get("tool").is_none(), "{report:#}");
    }
    let runs = farm.tools.runs_since(&mut seen);
    assert_eq!(
        runs.iter().map(|run| run.tool.as_str()).collect::<Vec<_>>(),
        [
            "hython",
            "hython",
            "modo_cl",
            "modo_cl",
            "redshiftCmdLine",
            "redshiftCmdLine"
        ],
        "{runs:#?}"
    );
    let root = farm.root.display().to_string();
    for run in &runs {
        assert_eq!(run.cwd, root, "{run:#?}");
        match run.tool.as_str() {
            "hython" => {
                assert_eq!(run.args.len(), 2, "{run:#?}");
                assert_eq!(run.args[0], "-c");
                assert!(run.args[1].contains("hou.applicationVersionString()"));
            }
            "modo_cl" => {
                assert!(run.args.is_empty(), "{run:#?}");
                assert_eq!(run.stdin, "query platformservice appversion ?\napp.quit\n");
            }
            _ => assert_eq!(run.args, ["--version"]),
        }
    }

    // houdini-render-hip: one job, `hython -c CODE`, values as Python literals.
    farm.scene(
        "scenes/shot.hip",
        r#"{"nodes": [{"path": "/out/karma", "class": "rop", "type": "karma"}]}"#,
    );
    let hip = farm.ok(&[
        "houdini-render-hip",
        "scenes/shot.hip",
        "--frames",
        "1-3,10",
        "--rop",
        "/out/karma",
        "--wait",
        "--json",
    ]);
    assert_eq!(submitted(&hip).1, 1, "{}", describe(&hip));
    let run = only_run(&farm.tools.runs_since(&mut seen), "hython");
    assert_eq!(run.cwd, root);
    assert_eq!(run.args.len(), 2, "{run:#?}");
    assert_eq!(run.args[0], "-c");
    let code = &run.args[1];
    for line in [
        format!("hip = u'{}'\n", farm.under_root("scenes/shot.hip")),
        "path = u'/out/karma'\n".to_owned(),
        "ranges = [(1, 3, 1), (10, 10, 1)]\n".to_owned(),
        "node = hou.node(path)\n".to_owned(),
    ] {
        assert!(code.contains(&line), "no {line:?} in:\n{code}");
    }

    // A name with a quote and a space reaches hython as one argument, inside its literal.
    farm.scene(
        "it's here.hip",
        r#"{"nodes": [{"path": "/out/mantra_ipr", "class": "rop", "type": "ifd"}]}"#,
    );
    farm.ok(&["houdini-render-hip", "it's here.hip", "--wait"]);
    let run = only_run(&farm.tools.runs_since(&mut seen), "hython");
    assert_eq!(run.args.len(), 2, "{run:#?}");
    let literal = format!("hip = u'{root}/it\\'s here.hip'\n");
    assert!(
        run.args[1].contains(&literal),
        "no {literal:?} in:\n{}",
        run.args[1]
    );

    // houdini-render-ifd: one job, a task per file, each `mantra -f FILE`.
    farm.scene("ifd/a.ifd", "ifd a");
    farm.scene("ifd/b.ifd", "ifd b");
    let ifd = farm.ok(&[
        "houdini-render-ifd",
        "ifd/a.ifd",
        "ifd/b.ifd",
        "--wait",
        "--json",
    ]);
    assert_eq!(submitted(&ifd).1, 2, "{}", describe(&ifd));
    let runs = farm.tools.runs_since(&mut seen);
    let ran: BTreeSet<Vec<String>> = runs
        .iter()
        .map(|run| {
            assert_eq!(run.tool, "mantra", "{runs:#?}");
            assert_eq!(run.cwd, root, "{run:#?}");
            run.args.clone()
        })
        .collect();
    let expected: BTreeSet<Vec<String>> = ["ifd/a.ifd", "ifd/b.ifd"]
        .into_iter()
        .map(|file| vec!["-f".to_owned(), farm.under_root(file)])
        .collect();
    assert_eq!(ran, expected, "{runs:#?}");
    assert_eq!(runs.len(), 2, "{runs:#?}");

    // modo-render: frames 2 and 4 of [2, 5) by 2, one job of a task each; modo_cl runs
    // the worker's render script, which opens the scene, sets first, last and step and
    // renders; each frame's file is the task's output.
    farm.scene(
        "scene.lxo",
        r#"{"outputs": [{"name": "Final Color Output", "filename": "render/modo",
                         "format": "PNG"}]}"#,
    );
    let modo = farm.ok(&[
        "modo-render",
        "scene.lxo",
        "--start",
        "2",
        "--stop",
        "5",
        "--step",
        "2",
        "--wait",
        "--json",
    ]);
    assert_eq!(submitted(&modo).1, 2, "{}", describe(&modo));
    let mut runs = farm.tools.runs_since(&mut seen);
    assert_eq!(runs.len(), 2, "{runs:#?}");
    runs.sort_by_key(|run| run.calls.clone());
    let open = format!("scene.open \"{}\"\n", farm.under_root("scene.lxo"));
    for (run, frame) in runs.iter().zip([2, 4]) {
        assert_eq!(run.tool, "modo_cl", "{run:#?}");
        assert!(run.args.is_empty(), "{run:#?}");
        assert_eq!(run.cwd, root, "{run:#?}");
        assert!(run.stdin.contains("\n@\""), "{run:#?}");
        assert!(run.stdin.ends_with("app.quit\n"), "{run:#?}");
        assert_eq!(
            run.calls,
            format!(
                "{open}select.itemType polyRender\n\
                 item.channel first {frame}\n\
                 item.channel last {frame}\n\
                 item.channel step 1\n\
                 render.animation {{*}}\n"
            ),
            "{run:#?}"
        );
        let file = format!("render/modo{frame:04}.png");
        assert!(Path::new(&farm.under_root(&file)).is_file(), "no {file}");
    }

    // redshift-render: the archive, then `-gpu I` for each GPU in the order given.
    farm.scene("x.rs", "a redshift archive");
    farm.ok(&["redshift-render", "x.rs", "--wait"]);
    let run = only_run(&farm.tools.runs_since(&mut seen), "redshiftCmdLine");
    assert_eq!(run.cwd, root);
    assert_eq!(
        run.args,
        [
            farm.under_root("x.rs"),
            "-gpu".into(),
            "0".into(),
            "-gpu".into(),
            "2".into()
        ]
    );
    farm.worker.assert_running();
}

/// Guards the client-side path and frame checks of the render commands: an absolute scene
/// path, one that climbs out of the root and a frame range that runs backwards are refused
/// with one line saying so, before anything is submitted; so are Blender frames past
/// `i64` (once wrapped into no frames and a success), past Blender's last frame (once
/// clamped to another frame) or negative, names Blender does not know (with the right one
/// suggested), and a movie format without `--movie`.
#[test]
fn render_commands_refuse_absolute_paths_and_backwards_frames_before_submitting() {
    let farm = Farm::start();
    let cases: [(&[&str], &str); 11] = [
        (&["houdini-render-hip", "/abs/path.hip"], "absolute"),
        (
            &["houdini-render-hip", "shot.hip", "--frames", "10-1"],
            "runs backwards",
        ),
        (&["blender-render", "../up.blend"], "climbs out"),
        (
            &[
                "blender-render",
                "a.blend",
                "--frames",
                "9223372036854775807",
            ],
            "beyond 9223372036854775806",
        ),
        (
            &[
                "blender-render",
                "a.blend",
                "--frames",
                "9223372036854775800-9223372036854775807",
            ],
            "beyond 9223372036854775806",
        ),
        (
            &["blender-render", "a.blend", "--frames", "1048575"],
            "last frame is 1048574",
        ),
        (
            &["blender-render", "a.blend", "--frames=-5"],
            "frame -5 cannot be rendered",
        ),
        (
            &["blender-render", "a.blend", "--format", "JPG"],
            "did you mean `JPEG`?",
        ),
        (
            &["blender-render", "a.blend", "--engine", "cycles"],
            "did you mean `CYCLES`?",
        ),
        (
            &["blender-render", "a.blend", "--format", "FFMPEG"],
            "encode them afterwards",
        ),
        (
            &["blender-render", "a.blend", "--cycles-device", "VULKAN"],
            "CUDA, OPTIX",
        ),
    ];
    for (args, says) in cases {
        let output = farm.run(args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}\n{}",
            describe(&output)
        );
        let message = stderr(&output);
        assert_eq!(message.lines().count(), 1, "{args:?}: {message}");
        assert!(message.contains(says), "{args:?}: {message}");
        assert!(
            stdout(&output).is_empty(),
            "{args:?}\n{}",
            describe(&output)
        );
    }
    let info = farm.info();
    assert!(
        queue(&info, "default").is_none(),
        "a job was submitted: {info:#}"
    );
}

/// Guards routing by capability: a Blender render with only a worker that has no Blender
/// stays queued (while that worker keeps taking the jobs it can run), and `info` says what
/// is missing: `no worker with blender` in text, an `unserved` entry with `"tool":
/// "blender"` in JSON.
#[test]
fn a_blender_render_waits_for_a_worker_with_blender() {
    let mut farm = ToolFarm::start();
    let submitted = farm.ok(&[
        "blender-render",
        "scenes/anim.blend",
        "--frames",
        "1",
        "--json",
    ]);
    let (job, tasks) = self::submitted(&submitted);
    assert_eq!(tasks, 1, "{}", describe(&submitted));
    let info = farm
        .farm
        .wait_for_info("the blender job listed as unserved", |info| {
            info["unserved"]
                .as_array()
                .is_some_and(|unserved| !unserved.is_empty())
        });
    let unserved = info["unserved"].as_array().expect("checked above");
    assert_eq!(unserved.len(), 1, "{info:#}");
    assert_eq!(unserved[0]["tool"], "blender", "{info:#}");
    assert_eq!(unserved[0]["kind"], "buildcat.blender.render", "{info:#}");
    assert_eq!(unserved[0]["queue"], "default", "{info:#}");
    assert_eq!(unserved[0]["tasks"], 1, "{info:#}");

    // The worker is not stuck: it runs a job it can, and the render still waits.
    let report = json(&farm.ok(&["houdini-info", "--json"]));
    assert_eq!(text(&report, "/worker/name"), "dcc");
    let listed = stdout(&farm.ok(&["info"]));
    assert!(listed.contains("no worker with blender"), "{listed}");
    let info = farm.farm.info();
    assert_eq!(count(&info, "default", "queued"), Some(1), "{info:#}");
    assert_eq!(count(&info, "default", "finished"), Some(1), "{info:#}");
    assert_eq!(
        worker(&info, "dcc").map(|w| w["state"].clone()),
        Some(Value::from("idle")),
        "{info:#}"
    );
    let status = json(&farm.ok(&["status", &job, "--json"]));
    assert_eq!(status["state"], "queued", "{status:#}");
    assert_eq!(status["tasks"][0]["state"], "queued", "{status:#}");
    farm.worker.assert_running();
}

/// Blender's own Python: a 64x48 Workbench scene, a cube moving over frames 1-12, saved to
/// the path after `--`.
const MAKE_SCENE: &str = r#"import sys
import bpy

scene = bpy.context.scene
scene.render.engine = 'BLENDER_WORKBENCH'
scene.render.resolution_x = 64
scene.render.resolution_y = 48
scene.render.resolution_percentage = 100
scene.frame_start = 1
scene.frame_end = 12
cube = bpy.data.objects['Cube']
cube.location = (0.0, 0.0, 0.0)
cube.keyframe_insert(data_path='location', frame=1)
cube.location = (2.0, 0.0, 0.0)
cube.keyframe_insert(data_path='location', frame=12)
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[sys.argv.index('--') + 1])
"#;

/// Makes `scenes/anim.blend` under `root` with the real Blender (see [`MAKE_SCENE`]); fails
/// the test if Blender cannot.
pub(crate) fn make_scene(farm: &Farm, root: &Path) {
    let script = farm.path().join("make.py");
    write_file(&script, MAKE_SCENE.as_bytes());
    let scene = root.join("scenes").join("anim.blend");
    std::fs::create_dir_all(root.join("scenes")).expect("could not create scenes/");
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
}

/// Whether `program` is on PATH.
pub(crate) fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", "command -v \"$1\"", "sh", program])
        .output()
        .is_ok_and(|output| output.status.success())
}

/// The width and height in a PNG file's IHDR chunk; fails the test if it is not a PNG.
#[track_caller]
pub(crate) fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path)
        .unwrap_or_else(|error| panic!("could not read {}: {error}", path.display()));
    assert!(
        bytes.len() > 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR",
        "{} is not a PNG file",
        path.display()
    );
    let number =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    (number(16), number(20))
}

/// Bytes that are no file format Blender knows: a fixed pseudo-random sequence.
fn garbage(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// Guards rendering with the real Blender: a 12-frame animation submitted in chunks of 3
/// becomes one job of 4 tasks spread over two idle workers, which write all 12 PNG frames at the size
/// the scene says; and a corrupt .blend fails its job (`--wait` exits non-zero) with
/// Blender's own `Error:` line as the reason.
#[test]
fn blender_renders_an_animation_over_two_workers_and_reports_a_broken_scene() {
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
    make_scene(&farm, &root);
    let workers = [
        farm.worker_in(&root, &["--name", "b1"]),
        farm.worker_in(&root, &["--name", "b2"]),
    ];
    farm.wait_for_info("both workers idle", |info| {
        ["b1", "b2"]
            .iter()
            .all(|name| worker(info, name).is_some_and(|w| w["state"] == "idle"))
    });

    let render = [
        "blender-render",
        "scenes/anim.blend",
        "--frames",
        "1-12",
        "--chunk",
        "3",
        "--output",
        "renders/frame_####",
        "--format",
        "PNG",
        "--wait",
        "--json",
    ];
    // Four Blender runs on two cores shared with the rest of the suite: more than the
    // usual patience.
    let rendered = run_command(farm.client.command(&render), PATIENCE * 3);
    let logs = || {
        let mut logs = farm.server_logs();
        for process in &workers {
            logs.push('\n');
            logs.push_str(&process.logs());
        }
        logs
    };
    assert!(
        rendered.status.success(),
        "the render failed\n{}\n{}",
        describe(&rendered),
        logs()
    );
    let (job, tasks) = submitted(&rendered);
    assert_eq!(tasks, 4, "{}", describe(&rendered));
    assert!(
        stderr(&rendered).contains("1 of 1 job(s) finished, 4 of 4 task(s)"),
        "{}",
        describe(&rendered)
    );
    for frame in 1..=12 {
        let png = root.join(format!("renders/frame_{frame:04}.png"));
        assert!(png.is_file(), "{} is missing\n{}", png.display(), logs());
        assert_eq!(png_size(&png), (64, 48), "{}", png.display());
    }
    let status = farm.job(&job);
    assert_eq!(status["state"], "finished", "{status:#}");
    let mut served = BTreeSet::new();
    for task in tasks_of(&status) {
        assert_eq!(task["state"], "finished", "{status:#}");
        served.insert(text(task, "/worker").to_owned());
    }
    assert_eq!(
        served,
        BTreeSet::from(["b1".to_owned(), "b2".to_owned()]),
        "the tasks did not spread over both workers: {status:#}"
    );

    // A corrupt scene: the job fails with Blender's error line.
    write_file(&root.join("scenes/broken.blend"), &garbage(4096));
    let broken = run_command(
        farm.client.command(&[
            "blender-render",
            "scenes/broken.blend",
            "--output",
            "renders/broken_####",
            "--wait",
            "--json",
        ]),
        PATIENCE * 2,
    );
    assert_eq!(
        broken.status.code(),
        Some(1),
        "{}\n{}",
        describe(&broken),
        logs()
    );
    let (job, tasks) = submitted(&broken);
    assert_eq!(tasks, 1, "{}", describe(&broken));
    let status = farm.status(&job);
    assert_eq!(status["state"], "failed", "{status:#}");
    let reason = text(&status, "/reason");
    assert!(
        reason.starts_with("Error:") && reason.contains("broken.blend"),
        "the reason is not Blender's error line: {status:#}"
    );
    assert!(stderr(&broken).contains(reason), "{}", describe(&broken));
    let shown = stdout(&farm.run(&["status", &format!("{job}.0")]));
    assert!(shown.contains(&format!("reason: {reason}")), "{shown}");
}

/// A stand-in for Blender that records its arguments (NUL-separated, into `argv` beside
/// itself) and saves frames 1 to 3 (the bytes a PNG starts and ends with) under the root
/// written into it (`@ROOT@`, whose `out` folder the test makes); only shell built-ins,
/// since the worker runs it with no PATH.
const FAKE_BLENDER: &str = r#"#!/bin/sh
here="${0%/*}"
if [ "$1" = "--version" ]; then echo 'Blender 4.2.1 LTS'; exit 0; fi
printf '%s\0' "$@" > "$here/argv"
for frame in 1 2 3; do
    printf '\211PNG\r\n\032\n\0\0\0\0IEND\256B`\202' > "@ROOT@/out/f_000$frame.png"
    echo "Saved: '@ROOT@/out/f_000$frame.png'"
    echo " Time: 00:00.10 (Saving: 00:00.01)"
done
"#;

/// Guards the Blender flags from the command line to Blender's: a worker started with
/// `--blender-no-autoexec --blender-threads 2 --cycles-device CUDA` and a render asking for
/// `--cycles-device OPTIX`, a scene, Python, pass-through arguments and EEVEE run `blender
/// -t 2 -b FILE -noaudio -S SCENE -o ... -E BLENDER_EEVEE_NEXT (4.2's name) --python-expr
/// CODE ARGS -f 1..3 -- --cycles-device OPTIX`, with no `-y`.
#[test]
fn blender_flags_reach_blenders_command_line() {
    use std::os::unix::fs::PermissionsExt;
    let farm = Farm::start();
    let tools = farm.make_dir("tools");
    let root = std::fs::canonicalize(farm.make_dir("root")).expect("canonical root");
    let blender = tools.join("blender");
    write_file(
        &blender,
        FAKE_BLENDER
            .replace("@ROOT@", &root.display().to_string())
            .as_bytes(),
    );
    std::fs::set_permissions(&blender, std::fs::Permissions::from_mode(0o755))
        .expect("could not make the fake blender executable");
    write_file(&root.join("shot.blend"), b"scene");
    std::fs::create_dir_all(root.join("out")).expect("could not create out/");
    let port = farm.port.to_string();
    let mut command = buildcat_command(["worker", "--port", &port, "--name", "gpu"]);
    command
        .arg("--blender")
        .arg(&blender)
        .args([
            "--blender-no-autoexec",
            "--blender-threads",
            "2",
            "--cycles-device",
            "CUDA",
        ])
        .current_dir(&root)
        .env("PATH", "/nonexistent");
    let mut worker_process = Proc::spawn("worker gpu", command, farm.path());
    farm.wait_for_info("worker gpu idle", |info| {
        worker(info, "gpu").is_some_and(|w| w["state"] == "idle")
    });
    let output = farm.run(&[
        "blender-render",
        "shot.blend",
        "--frames",
        "1-3",
        "--chunk",
        "3",
        "--output",
        "out/f_####",
        "--engine",
        "EEVEE",
        "-S",
        "Shot",
        "--cycles-device",
        "OPTIX",
        "--python-expr",
        "import studio",
        "--blender-arg",
        "--log-level",
        "--blender-arg",
        "0",
        "--wait",
    ]);
    if !output.status.success() {
        worker_process.assert_running();
        panic!("{}\n{}", describe(&output), worker_process.logs());
    }
    let argv = std::fs::read(tools.join("argv")).unwrap_or_else(|error| {
        panic!(
            "blender did not run: {error}\n{}\n{}",
            describe(&output),
            worker_process.logs()
        )
    });
    let argv: Vec<String> = String::from_utf8_lossy(&argv)
        .split_terminator('\0')
        .map(str::to_owned)
        .collect();
    let expected = [
        "-t",
        "2",
        "-b",
        &root.join("shot.blend").display().to_string(),
        "-noaudio",
        "-S",
        "Shot",
        "-o",
        &root.join("out/f_####").display().to_string(),
        "-E",
        "BLENDER_EEVEE_NEXT",
        "--python-expr",
        "import studio",
        "--log-level",
        "0",
        "-f",
        "1..3",
        "--",
        "--cycles-device",
        "OPTIX",
    ]
    .map(str::to_owned);
    assert_eq!(argv, expected);
}
