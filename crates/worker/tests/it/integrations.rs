//! The DCC integrations through a worker loop, with fake tools: small `sh` scripts named
//! like the real executables that record how they were run and print what the real ones
//! print. The fake `hython` runs the generated code with the real `python3` against a stub
//! `hou` module that records each call, so the code itself is tested, not only its text.
//!
//! Each script records into `record-NAME/` beside itself (not a directory named by an
//! environment variable: tests run in parallel in one process): `argv` (NUL-separated),
//! `cwd`, `stdin`, `env` (the variables a render's private folders set) and, for hython,
//! `calls` (one JSON array per `hou` call).

use std::path::{Path, PathBuf};

use buildcat_proto::dcc::{
    BlenderInfo, BlenderRender, HoudiniInfo, HoudiniRenderHip, HoudiniRenderIfd, ModoInfo,
    ModoRender, RedshiftInfo, RedshiftRender, RenderReport, ToolInfo,
};
use buildcat_proto::frames::FrameRange;
use buildcat_proto::{RunCommand, RunCommandIn, Task, TaskProgress, WorkerInfo};
use buildcat_worker::{BlenderOptions, Tool, Worker, WorkerBuilder, WorkerError};
use tempfile::TempDir;

use crate::fake::{
    FakeConnection, FakeServer, QUIET_HEARTBEAT_MS, RunningWorker, TaskReport, assignment, builder,
    failure, output, start, temp_root,
};

/// What every fake tool does first: record how it was run.
const PRELUDE: &str = r#"#!/bin/sh
here=$(cd "$(dirname "$0")" && pwd)
record="$here/record-$(basename "$0")"
mkdir -p "$record"
: > "$record/argv"
[ $# -eq 0 ] || printf '%s\0' "$@" > "$record/argv"
pwd > "$record/cwd"
cat > "$record/stdin"
printf '%s\n' "HOME=$HOME" "XDG_CACHE_HOME=$XDG_CACHE_HOME" \
    "XDG_CONFIG_HOME=$XDG_CONFIG_HOME" "TMPDIR=$TMPDIR" > "$record/env"
"#;

/// The fake hython: runs `-c CODE` with python3 and the stub `hou`.
const HYTHON: &str = r#"
[ "$1" = "-c" ] || { echo "usage: hython -c CODE" >&2; exit 64; }
PYTHONPATH="$here/stub" exec python3 -c "$2"
"#;

/// The stub `hou` module: records calls; renders print mantra's progress per frame.
const HOU: &str = r#"
import json, os, sys

_calls = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      'record-hython', 'calls')

def _record(*call):
    with open(_calls, 'a') as f:
        f.write(json.dumps(call) + '\n')

class Error(Exception):
    pass

class ropRenderEventType(object):
    PreFrame = 'PreFrame'
    PostFrame = 'PostFrame'

def timeToFrame(time):
    return time * 24.0 + 1.0

class RopNode(object):
    def __init__(self, path):
        self._path = path
        self._callbacks = []

    def path(self):
        return self._path

    def parm(self, name):
        return None

    def errors(self):
        return ()

    def addRenderEventCallback(self, callback, run_before_script=False):
        _record('addRenderEventCallback', self._path)
        self._callbacks.append(callback)

    def render(self, frame_range=(), verbose=False, output_progress=False):
        _record('render', self._path, list(frame_range), verbose, output_progress)
        start, end, step = frame_range
        for frame in range(start, end + 1, step):
            print('Rendering frame %d' % frame)
            print('ALF_PROGRESS 50%')
            print('ALF_PROGRESS 100%')
            sys.stdout.flush()
            for callback in self._callbacks:
                callback(self, ropRenderEventType.PostFrame, (frame - 1) / 24.0)
        sys.stdout.flush()

class hipFile(object):
    @staticmethod
    def load(path, suppress_save_prompt=False, ignore_load_warnings=False):
        _record('load', path, suppress_save_prompt, ignore_load_warnings)

def node(path):
    _record('node', path)
    return None if path.startswith('/missing') else RopNode(path)

def applicationVersionString():
    return '20.5.332'
"#;

/// The fake mantra.
const MANTRA: &str = "echo 'ALF_PROGRESS 50%'\necho 'ALF_PROGRESS 100%'\n";

/// The fake modo_cl: the stand-in of `tests/fake_dcc/modo_cl.py` (shared with the
/// end-to-end tests: it runs the worker's render script with stand-in `lx` and `modo`
/// modules) fed what the worker gave it; Modo 15.2's version; `modo-no-license` beside it
/// makes it fail as if no licence were found; each `lx.eval` command goes to `calls`.
const MODO_CL: &str = r#"
BUILDCAT_FAKE_MODO_VERSION=1520 BUILDCAT_FAKE_MODO_BIN="$here" \
    BUILDCAT_FAKE_MODO_CALLS="$record/calls" \
    exec python3 "@FAKE_DCC@/modo_cl.py" < "$record/stdin"
"#;

/// Where the stand-ins written in Python for the end-to-end tests are.
const FAKE_DCC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fake_dcc");

/// The fake redshiftCmdLine.
const REDSHIFT: &str = r#"
if [ "$1" = "--version" ]; then
    echo 'Redshift Command-Line Renderer (version 3.5.16 - API: 3.5.16)'
    exit 0
fi
echo "Rendering $1"
"#;

/// The fake blender: prints `blender-says` (written by the test) and exits with the code
/// in `blender-exit`, if any; its private folders must exist while it runs.
const BLENDER: &str = r#"
if [ "$1" = "--version" ]; then
    echo 'Blender 3.4.1'
    exit 0
fi
[ -d "$HOME" ] && [ -d "$XDG_CACHE_HOME" ] && [ -d "$XDG_CONFIG_HOME" ] && [ -d "$TMPDIR" ] \
    || { echo 'Error: private folders missing'; exit 70; }
cat "$here/blender-says"
# Each file it says it saved under the working directory is there, a whole (tiny) PNG.
sed -n "s/^Saved: '\(.*\)'.*$/\1/p" "$here/blender-says" | while IFS= read -r saved; do
    case "$saved" in "$PWD"/*)
        mkdir -p "${saved%/*}"
        printf '\211PNG\r\n\032\n\000\000\000\000IEND\256\102\140\202' > "$saved" ;;
    esac
done
[ -f "$here/blender-crash" ] && { cp "$here/blender-crash" "$TMPDIR/scene.crash.txt"; kill -SEGV $$; }
[ -f "$here/blender-exit" ] && exit "$(cat "$here/blender-exit")"
exit 0
"#;

/// A worker with fake tools, connected to a fake server.
struct Rig {
    /// The worker's root.
    root: TempDir,
    /// The fake tools and their records.
    tools: TempDir,
    /// The worker, running.
    worker: RunningWorker,
    /// The server's end of the worker's connection.
    connection: FakeConnection,
    /// Keeps the listener open.
    _server: FakeServer,
}

/// The script of each fake tool.
fn script(tool: Tool) -> &'static str {
    match tool {
        Tool::Blender => BLENDER,
        Tool::Hython => HYTHON,
        Tool::Mantra => MANTRA,
        Tool::ModoCl => MODO_CL,
        Tool::RedshiftCmdLine => REDSHIFT,
        _ => panic!("no fake for {tool}"),
    }
}

/// Writes an executable script.
fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Writes the fake `tools` into a new folder.
fn fake_tools(tools: &[Tool]) -> TempDir {
    let folder = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for &tool in tools {
        write_script(
            &folder.path().join(tool.name()),
            &format!("{PRELUDE}{}", script(tool)).replace("@FAKE_DCC@", FAKE_DCC),
        );
    }
    let stub = folder.path().join("stub");
    std::fs::create_dir(&stub).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(stub.join("hou.py"), HOU).unwrap_or_else(|e| panic!("{e}"));
    folder
}

impl Rig {
    /// A worker given the fake `tools` (and no others), registered with a fake server.
    async fn start(tools: &[Tool]) -> Rig {
        Rig::start_with(tools, &[]).await
    }

    /// [`Rig::start`] with Redshift GPUs.
    async fn start_with(tools: &[Tool], gpus: &[u32]) -> Rig {
        let gpus = gpus.to_vec();
        Rig::start_built(tools, move |worker| worker.redshift_gpus(gpus)).await
    }

    /// [`Rig::start`] with the builder's settings changed by `configure`.
    async fn start_built(
        tools: &[Tool],
        configure: impl FnOnce(WorkerBuilder) -> WorkerBuilder,
    ) -> Rig {
        let server = FakeServer::bind().await;
        let root = temp_root();
        let folder = fake_tools(tools);
        let mut worker = configure(builder(&server, &root));
        for &tool in tools {
            worker = worker.tool_path(tool, folder.path().join(tool.name()));
        }
        let worker = start(worker);
        let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;
        // Once the versions are read, the worker has asked each tool its version: those runs
        // are not the ones a test checks, so their records go.
        versions(&mut connection).await;
        for &tool in tools {
            let record = folder.path().join(format!("record-{}", tool.name()));
            if record.exists() {
                std::fs::remove_dir_all(&record).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        Rig {
            root,
            tools: folder,
            worker,
            connection,
            _server: server,
        }
    }

    /// Runs `task` on the worker; everything it sent about it.
    async fn run<T: Task>(&mut self, task: &T) -> TaskReport {
        self.connection.assign(assignment(task)).await;
        self.connection.expect_report().await
    }

    /// The root, canonical (as the worker sees it).
    fn root(&self) -> PathBuf {
        std::fs::canonicalize(self.root.path()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates a file under the root.
    fn file(&self, path: &str) -> PathBuf {
        let path = self.root().join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(&path, "scene").unwrap_or_else(|e| panic!("{e}"));
        path
    }

    /// A record of `tool`'s last run, if it ran.
    fn record(&self, tool: Tool, what: &str) -> Option<String> {
        let path = self
            .tools
            .path()
            .join(format!("record-{}", tool.name()))
            .join(what);
        std::fs::read(path)
            .ok()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The arguments of `tool`'s last run.
    fn argv(&self, tool: Tool) -> Vec<String> {
        let argv = self
            .record(tool, "argv")
            .unwrap_or_else(|| panic!("{tool} did not run"));
        argv.split_terminator('\0').map(str::to_owned).collect()
    }

    /// The path of a fake tool.
    fn tool(&self, tool: Tool) -> String {
        self.tools
            .path()
            .join(tool.name())
            .to_string_lossy()
            .into_owned()
    }

    /// Stops the worker.
    async fn stop(self) {
        self.worker.stop().await;
    }
}

/// The last progress reported.
fn last_progress(report: &TaskReport) -> TaskProgress {
    report
        .progress
        .last()
        .cloned()
        .unwrap_or_else(|| panic!("no progress in {report:?}"))
}

fn range(start: i64, stop: i64, step: i64) -> FrameRange {
    FrameRange { start, stop, step }
}

#[tokio::test]
async fn a_worker_registers_the_kinds_of_the_tools_it_was_given() {
    let rig = Rig::start(&[Tool::Hython, Tool::RedshiftCmdLine]).await;
    assert_eq!(
        rig.connection.registration.kinds,
        [
            RunCommand::KIND,
            RunCommandIn::KIND,
            HoudiniInfo::KIND,
            HoudiniRenderHip::KIND,
            RedshiftInfo::KIND,
            RedshiftRender::KIND,
            WorkerInfo::KIND,
        ]
    );
    rig.stop().await;
}

#[test]
fn a_given_tool_path_that_does_not_exist_fails_the_build_naming_flag_and_path() {
    let root = temp_root();
    let missing = root.path().join("opt/blender/blender");
    let error = Worker::builder()
        .root(root.path())
        .detect_tools(false)
        .tool_path(Tool::Blender, &missing)
        .build()
        .err();
    match error {
        Some(error @ WorkerError::ToolPath { .. }) => {
            assert_eq!(
                error.to_string(),
                format!(
                    "cannot use {} as blender (given with --blender): no such file",
                    missing.display()
                )
            );
        }
        other => panic!("expected a tool path error, got {other:?}"),
    }
}

#[test]
fn without_detection_a_worker_has_only_the_built_in_kinds_and_the_tools_given() {
    let root = temp_root();
    let worker = Worker::builder()
        .root(root.path())
        .detect_tools(false)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        worker.kinds().collect::<Vec<_>>(),
        [RunCommand::KIND, RunCommandIn::KIND, WorkerInfo::KIND]
    );
    assert!(worker.tools().is_empty());

    let tools = fake_tools(&[Tool::Mantra]);
    let mantra = tools.path().join("mantra");
    let worker = Worker::builder()
        .root(root.path())
        .detect_tools(false)
        .tool_path(Tool::Mantra, &mantra)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        worker.kinds().collect::<Vec<_>>(),
        [
            RunCommand::KIND,
            RunCommandIn::KIND,
            HoudiniRenderIfd::KIND,
            WorkerInfo::KIND
        ]
    );
    let found: Vec<(Tool, &Path)> = worker
        .tools()
        .iter()
        .map(|(tool, executable)| (tool, executable.path()))
        .collect();
    assert_eq!(found, [(Tool::Mantra, mantra.as_path())]);
}

#[tokio::test]
async fn houdini_info_reports_worker_info_and_the_version() {
    let mut rig = Rig::start(&[Tool::Hython]).await;
    let report = rig.run(&HoudiniInfo).await;
    let info = output::<HoudiniInfo>(report.completion());
    assert_eq!(
        info.tool,
        ToolInfo {
            executable: rig.tool(Tool::Hython),
            version: "20.5.332".to_owned(),
        }
    );
    assert_eq!(info.worker.root, rig.root().to_string_lossy());
    assert_eq!(info.worker.name, "test-worker");
    assert!(!info.os.system.is_empty());
    assert_eq!(rig.argv(Tool::Hython)[0], "-c");
    rig.stop().await;
}

#[tokio::test]
async fn a_hip_renders_each_range_through_its_rop() {
    let mut rig = Rig::start(&[Tool::Hython]).await;
    let hip = rig.file("shots/010/scene.hip");
    let task = HoudiniRenderHip {
        hip: "shots/010/scene.hip".to_owned(),
        frames: vec![range(1, 4, 1), range(10, 20, 5)],
        rop: "/out/custom_rop".to_owned(),
    };
    let report = rig.run(&task).await;
    assert_eq!(
        output::<HoudiniRenderHip>(report.completion()),
        RenderReport {
            frames: 5,
            outputs: Vec::new()
        }
    );
    let hip = hip.to_string_lossy();
    let calls = rig.record(Tool::Hython, "calls").unwrap_or_default();
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        [
            format!("[\"load\", \"{hip}\", true, true]"),
            "[\"node\", \"/out/custom_rop\"]".to_owned(),
            "[\"addRenderEventCallback\", \"/out/custom_rop\"]".to_owned(),
            "[\"render\", \"/out/custom_rop\", [1, 3, 1], true, true]".to_owned(),
            "[\"addRenderEventCallback\", \"/out/custom_rop\"]".to_owned(),
            "[\"render\", \"/out/custom_rop\", [10, 19, 5], true, true]".to_owned(),
        ]
    );
    assert_eq!(
        last_progress(&report),
        TaskProgress {
            done: 5,
            total: 5,
            outputs: Vec::new(),
            frame_percent: None,
        }
    );
    assert!(report.lines().contains(&"Rendering frame 15".to_owned()));
    assert!(
        report
            .lines()
            .contains(&"buildcat-frame-done 15".to_owned())
    );
    assert_eq!(
        rig.record(Tool::Hython, "cwd")
            .as_deref()
            .map(str::trim_end),
        Some(rig.root().to_string_lossy().as_ref())
    );
    rig.stop().await;
}

/// Guards the issue's "a file name with quotes or newlines must not break or inject code".
#[tokio::test]
async fn a_hip_name_with_quotes_newlines_and_shell_syntax_reaches_houdini_intact() {
    let mut rig = Rig::start(&[Tool::Hython]).await;
    // No backslash: job paths take it as a separator, as Windows submitters write them.
    let name =
        "it's \"q\" '''\n$(touch pwned) `touch pwned`'); import os; os.system('touch pwned') #.hip";
    let hip = rig.file(name);
    let rop = "/out/r\\'); import os; os.system('touch pwned') #\n";
    let task = HoudiniRenderHip {
        hip: name.to_owned(),
        frames: vec![range(1, 2, 1)],
        rop: rop.to_owned(),
    };
    let report = rig.run(&task).await;
    output::<HoudiniRenderHip>(report.completion());
    let calls = rig.record(Tool::Hython, "calls").unwrap_or_default();
    let calls: Vec<&str> = calls.lines().collect();
    let quoted = |text: &str| {
        text.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    assert_eq!(
        calls[0],
        format!(
            "[\"load\", \"{}\", true, true]",
            quoted(&hip.to_string_lossy())
        )
    );
    assert_eq!(calls[1], format!("[\"node\", \"{}\"]", quoted(rop)));
    assert_eq!(calls.len(), 4, "{calls:?}");
    for folder in [rig.root(), rig.tools.path().to_path_buf()] {
        assert!(!folder.join("pwned").exists(), "code was injected");
    }
    rig.stop().await;
}

#[tokio::test]
async fn a_missing_rop_fails_naming_it() {
    let mut rig = Rig::start(&[Tool::Hython]).await;
    rig.file("scene.hip");
    let task = HoudiniRenderHip {
        hip: "scene.hip".to_owned(),
        frames: vec![range(1, 2, 1)],
        rop: "/missing/rop".to_owned(),
    };
    let failure = failure(rig.run(&task).await.completion());
    assert_eq!(
        failure.reason,
        "`hython` failed: there is no node `/missing/rop` in `scene.hip`"
    );
    assert_eq!(failure.exit_code, Some(3));
    rig.stop().await;
}

#[tokio::test]
async fn an_ifd_is_rendered_by_mantra_with_its_progress() {
    let mut rig = Rig::start(&[Tool::Mantra]).await;
    let ifd = rig.file("ifd/shot.0001.ifd");
    let report = rig
        .run(&HoudiniRenderIfd {
            ifd: "ifd/./shot.0001.ifd".to_owned(),
        })
        .await;
    assert_eq!(output::<HoudiniRenderIfd>(report.completion()).frames, 1);
    assert_eq!(
        rig.argv(Tool::Mantra),
        ["-f", ifd.to_string_lossy().as_ref()]
    );
    assert_eq!(
        last_progress(&report),
        TaskProgress {
            done: 1,
            total: 1,
            outputs: Vec::new(),
            frame_percent: None,
        }
    );
    rig.stop().await;
}

#[tokio::test]
async fn modo_info_reads_the_version_from_the_query() {
    let mut rig = Rig::start(&[Tool::ModoCl]).await;
    let info = output::<ModoInfo>(rig.run(&ModoInfo).await.completion());
    assert_eq!(
        info.tool,
        ToolInfo {
            executable: rig.tool(Tool::ModoCl),
            version: "1520".to_owned(),
        }
    );
    assert_eq!(
        rig.record(Tool::ModoCl, "stdin").as_deref(),
        Some("query platformservice appversion ?\napp.quit\n")
    );
    assert_eq!(rig.argv(Tool::ModoCl), Vec::<String>::new());
    rig.stop().await;
}

/// A Modo scene for the stand-in (see `tests/fake_dcc/lx.py`): one render output writing
/// `render/shot` under the working directory, then `extra` JSON members.
fn modo_scene(extra: &str) -> String {
    format!(
        r#"{{"outputs": [{{"name": "Final Color Output", "filename": "render/shot",
                        "format": "openexr"}},
                       {{"name": "Alpha Output", "filename": ""}},
                       {{"name": "Depth", "filename": "render/depth", "enable": false}}]
           {extra}}}"#
    )
}

impl Rig {
    /// Writes `text` into `path` under the root.
    fn write(&self, path: &str, text: &str) -> PathBuf {
        let path = self.file(path);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        path
    }
}

/// Guards issue 19's Modo item: the worker runs its render script through modo_cl, the
/// script sets the range and renders it in one `render.animation`, and each frame counts
/// once its file is there; the files are the task's outputs.
#[tokio::test]
async fn modo_renders_through_a_script_and_counts_the_frames_whose_files_exist() {
    let mut rig = Rig::start(&[Tool::ModoCl]).await;
    let lxo = rig.write("shots/a \"b\".lxo", &modo_scene(""));
    let task = ModoRender {
        lxo: "shots/a \"b\".lxo".to_owned(),
        start: 10,
        stop: 21,
        step: 5,
    };
    let report = rig.run(&task).await;
    let last = last_progress(&report);
    let result = output::<ModoRender>(report.completion());
    let files = [
        "render/shot0010.exr",
        "render/shot0015.exr",
        "render/shot0020.exr",
    ];
    assert_eq!(result.frames, 3);
    assert_eq!(result.outputs, files);
    assert_eq!((last.done, last.total), (3, 3), "{last:?}");
    for file in files {
        assert!(rig.root().join(file).is_file(), "{file} not written");
    }
    let stdin = rig.record(Tool::ModoCl, "stdin").unwrap_or_default();
    let lines: Vec<&str> = stdin.lines().collect();
    assert_eq!(lines.len(), 5, "{stdin}");
    assert_eq!(
        lines[..3],
        [
            "log.toConsole true",
            "log.toConsoleRolling true",
            "pref.value render.threads auto"
        ]
    );
    assert!(
        lines[3].starts_with("@\"") && lines[3].ends_with("/buildcat_render.py\""),
        "{stdin}"
    );
    assert_eq!(lines[4], "app.quit");
    // The script is the task's: gone once it ran.
    let script = lines[3].trim_start_matches("@\"").trim_end_matches('"');
    assert!(!Path::new(script).exists(), "{script} left behind");
    let lxo = lxo.to_string_lossy().replace('"', "\\\"");
    assert_eq!(
        rig.record(Tool::ModoCl, "calls"),
        Some(format!(
            "scene.open \"{lxo}\"\n\
             select.itemType polyRender\n\
             item.channel first 10\n\
             item.channel last 20\n\
             item.channel step 5\n\
             render.animation {{*}}\n"
        ))
    );
    rig.stop().await;
}

/// Guards issue 19's Modo item: modo_cl exits 0 whatever went wrong, so the task fails
/// on what the script found, with that as the reason: a command Modo refused (its
/// message), a frame whose file is missing, a scene whose outputs name no file, and a
/// modo_cl that never ran the script (no licence, whatever it prints).
#[tokio::test]
async fn modo_fails_the_task_on_what_the_script_finds_though_modo_cl_exits_0() {
    let mut rig = Rig::start(&[Tool::ModoCl]).await;
    let task = |lxo: &str| ModoRender {
        lxo: lxo.to_owned(),
        start: 1,
        stop: 4,
        step: 1,
    };
    let cases = [
        (
            "refused.lxo",
            modo_scene(r#", "fail": {"render.animation": "Render aborted: out of memory"}"#),
            "`render.animation {*}` failed: Render aborted: out of memory",
        ),
        (
            "missing.lxo",
            modo_scene(r#", "skip_frames": [2]"#),
            "frame 2: render output `Final Color Output` wrote no file numbered 2",
        ),
        (
            "unwritten.lxo",
            r#"{"outputs": [{"name": "Final Color Output", "filename": "render/x",
                             "write": false}]}"#
                .to_owned(),
            "render output `Final Color Output` wrote no file: nothing new at",
        ),
        (
            "nothing.lxo",
            r#"{"outputs": [{"name": "Final Color Output", "filename": ""}]}"#.to_owned(),
            "the scene has no enabled render output with a file name",
        ),
        ("corrupt.lxo", "not a scene".to_owned(), "`scene.open \""),
    ];
    for (lxo, scene, reason) in cases {
        rig.write(lxo, &scene);
        let failure = failure(rig.run(&task(lxo)).await.completion());
        assert!(
            failure.reason.contains(reason)
                && failure.reason.ends_with("(it exited 0 all the same)"),
            "{lxo}: {}",
            failure.reason
        );
        assert_eq!(failure.exit_code, Some(0), "{lxo}");
    }
    // A frame missing fails the task, but the frames before it were rendered and count.
    rig.write("partial.lxo", &modo_scene(r#", "skip_frames": [3]"#));
    let report = rig.run(&task("partial.lxo")).await;
    assert_eq!(last_progress(&report).done, 2, "{report:?}");
    assert!(failure(report.completion()).reason.contains("frame 3:"));

    std::fs::write(
        rig.tools.path().join("modo-no-license"),
        "License error: no license available\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    rig.write("ok.lxo", &modo_scene(""));
    let failure = failure(rig.run(&task("ok.lxo")).await.completion());
    assert!(
        failure
            .reason
            .contains("modo_cl ended before Buildcat's render script finished"),
        "{}",
        failure.reason
    );
    assert!(
        failure
            .output_tail
            .iter()
            .any(|line| line.contains("no license")),
        "{failure:?}"
    );
    rig.stop().await;
}

#[tokio::test]
async fn modo_refuses_a_scene_name_with_a_line_break() {
    let mut rig = Rig::start(&[Tool::ModoCl]).await;
    rig.file("a\napp.quit\n.lxo");
    let task = ModoRender {
        lxo: "a\napp.quit\n.lxo".to_owned(),
        start: 1,
        stop: 2,
        step: 1,
    };
    let reason = failure(rig.run(&task).await.completion()).reason;
    assert!(reason.contains("line break"), "{reason}");
    assert_eq!(rig.record(Tool::ModoCl, "argv"), None, "modo_cl ran");
    rig.stop().await;
}

#[tokio::test]
async fn redshift_renders_on_the_workers_gpus() {
    let mut rig = Rig::start_with(&[Tool::RedshiftCmdLine], &[0, 2]).await;
    let archive = rig.file("rs/shot.0001.rs");
    let report = rig
        .run(&RedshiftRender {
            rs: "rs/shot.0001.rs".to_owned(),
            extra_args: vec!["-ores".to_owned(), "64".to_owned(), "48".to_owned()],
        })
        .await;
    assert_eq!(output::<RedshiftRender>(report.completion()).frames, 1);
    assert_eq!(
        rig.argv(Tool::RedshiftCmdLine),
        [
            archive.to_string_lossy().as_ref(),
            "-gpu",
            "0",
            "-gpu",
            "2",
            "-ores",
            "64",
            "48"
        ]
    );

    let info = output::<RedshiftInfo>(rig.run(&RedshiftInfo).await.completion());
    assert_eq!(info.tool.version, "3.5.16");
    assert_eq!(rig.argv(Tool::RedshiftCmdLine), ["--version"]);
    rig.stop().await;
}

#[tokio::test]
async fn scene_paths_outside_the_root_or_missing_fail_before_the_tool_runs() {
    let mut rig = Rig::start(&[Tool::Hython, Tool::Mantra, Tool::RedshiftCmdLine]).await;
    let hip = |path: &str| HoudiniRenderHip {
        hip: path.to_owned(),
        frames: vec![range(1, 2, 1)],
        rop: "/out/mantra_ipr".to_owned(),
    };
    let reason = failure(rig.run(&hip("/etc/scene.hip")).await.completion()).reason;
    assert!(
        reason.starts_with("`/etc/scene.hip` is an absolute path"),
        "{reason}"
    );
    let reason = failure(rig.run(&hip("shots/../../x.hip")).await.completion()).reason;
    assert!(
        reason.starts_with("`shots/../../x.hip` climbs out"),
        "{reason}"
    );
    let reason = failure(
        rig.run(&HoudiniRenderIfd {
            ifd: "nope.ifd".to_owned(),
        })
        .await
        .completion(),
    )
    .reason;
    assert_eq!(
        reason,
        format!(
            "scene file `nope.ifd` not found under the worker's root {}",
            rig.root().display()
        )
    );
    let reason = failure(
        rig.run(&RedshiftRender {
            rs: "..\\x.rs".to_owned(),
            extra_args: Vec::new(),
        })
        .await
        .completion(),
    )
    .reason;
    assert!(reason.contains("climbs out"), "{reason}");
    for tool in [Tool::Hython, Tool::Mantra, Tool::RedshiftCmdLine] {
        assert_eq!(rig.record(tool, "argv"), None, "{tool} ran");
    }
    rig.stop().await;
}

#[tokio::test]
async fn blender_info_reads_the_first_line() {
    let mut rig = Rig::start(&[Tool::Blender]).await;
    let info = output::<BlenderInfo>(rig.run(&BlenderInfo).await.completion());
    assert_eq!(info.tool.version, "3.4.1");
    assert_eq!(info.tool.executable, rig.tool(Tool::Blender));
    rig.stop().await;
}

/// A Blender render of `frames` of `scene.blend` into `out/f_####` as PNG.
fn blender_task(frames: &[i64]) -> BlenderRender {
    BlenderRender {
        blend: "scene.blend".to_owned(),
        frames: frames.to_vec(),
        output: Some("out/f_####".to_owned()),
        format: Some("PNG".to_owned()),
        ..BlenderRender::default()
    }
}

/// Makes the fake blender print `text` and exit with `code`.
fn blender_says(rig: &Rig, text: &str, code: i32) {
    let folder = rig.tools.path();
    std::fs::write(folder.join("blender-says"), text).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(folder.join("blender-exit"), code.to_string()).unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn blender_runs_with_its_options_in_order_and_private_folders() {
    let mut rig = Rig::start(&[Tool::Blender]).await;
    let scene = rig.file("scene.blend");
    let root = rig.root();
    let root_text = root.to_string_lossy();
    blender_says(
        &rig,
        &format!(
            "Blender 3.4.1\nFra:2 Mem:9M\nSaved: '{root_text}/out/f_0002.png'\n\
             Fra:1 Mem:9M\nSaved: '{root_text}/out/f_0001.png'\n"
        ),
        0,
    );
    let report = rig.run(&blender_task(&[1, 2])).await;
    assert_eq!(
        output::<BlenderRender>(report.completion()),
        RenderReport {
            frames: 2,
            outputs: vec!["out/f_0002.png".to_owned(), "out/f_0001.png".to_owned()],
        }
    );
    assert_eq!(
        rig.argv(Tool::Blender),
        [
            "-y",
            "-b",
            scene.to_string_lossy().as_ref(),
            "-noaudio",
            "-o",
            &format!("{root_text}/out/f_####"),
            "-F",
            "PNG",
            "-f",
            "1..2",
        ]
    );
    assert_eq!(
        last_progress(&report),
        TaskProgress {
            done: 2,
            total: 2,
            outputs: vec!["out/f_0002.png".to_owned(), "out/f_0001.png".to_owned()],
            frame_percent: None,
        }
    );

    // HOME and the XDG folders are the slot's profile, kept after the task (with the mark
    // that lets a reset remove it); TMPDIR is the task's own, gone after it.
    let env = rig.record(Tool::Blender, "env").unwrap_or_default();
    let folders: Vec<(&str, &str)> = env.lines().filter_map(|l| l.split_once('=')).collect();
    let names: Vec<&str> = folders.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        ["HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "TMPDIR"]
    );
    let profile = Path::new(folders[0].1)
        .parent()
        .unwrap_or_else(|| panic!("{env}"));
    for (_, folder) in &folders[..3] {
        assert_eq!(Path::new(folder).parent(), Some(profile), "{env}");
        assert!(Path::new(folder).is_dir(), "{folder} was not kept");
    }
    assert!(
        profile.join(buildcat_worker::PROFILE_MARK).is_file(),
        "{env}"
    );
    let tmp = Path::new(folders[3].1);
    let tmp_name = tmp
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Named for the task and attempt, so that two tasks of one job never share one.
    let task_folder = format!("buildcat-task-{}-1-", report.completion().task);
    assert!(tmp_name.starts_with(&task_folder), "{env}");
    assert!(!tmp.exists(), "{} was left behind", tmp.display());
    rig.stop().await;
}

#[tokio::test]
async fn blender_exiting_0_after_an_error_line_fails_with_that_line() {
    let mut rig = Rig::start(&[Tool::Blender]).await;
    rig.file("scene.blend");
    blender_says(
        &rig,
        "Error: Format from '-F / --render-format' not known or not compiled in this release.\n\
         Saved: '/tmp/0001.png'\n",
        0,
    );
    let failure = failure(rig.run(&blender_task(&[1])).await.completion());
    assert_eq!(
        failure.reason,
        "Error: Format from '-F / --render-format' not known or not compiled in this release."
    );
    assert_eq!(failure.exit_code, Some(0));
    rig.stop().await;
}

#[tokio::test]
async fn blender_exiting_0_without_saving_every_frame_fails_naming_the_missing_ones() {
    let mut rig = Rig::start(&[Tool::Blender]).await;
    rig.file("scene.blend");
    let root = rig.root();
    blender_says(
        &rig,
        &format!("Fra:1 Mem:9M\nSaved: '{}/out/f_0001.png'\n", root.display()),
        0,
    );
    let failure = failure(rig.run(&blender_task(&[1, 2, 3])).await.completion());
    assert_eq!(
        failure.reason,
        "blender exited with 0 but did not write frames 2, 3 (1 of 3 written)"
    );
    rig.stop().await;
}

#[tokio::test]
async fn blender_paths_and_frames_are_checked_before_it_runs() {
    let mut rig = Rig::start(&[Tool::Blender]).await;
    rig.file("scene.blend");
    let mut escaping = blender_task(&[1]);
    escaping.output = Some("../elsewhere/f_####".to_owned());
    let reason = failure(rig.run(&escaping).await.completion()).reason;
    assert!(
        reason.starts_with("`../elsewhere/f_####` climbs out"),
        "{reason}"
    );
    let reason = failure(rig.run(&blender_task(&[-1])).await.completion()).reason;
    assert!(
        reason.starts_with("frame -1 cannot be rendered"),
        "{reason}"
    );
    let mut missing = blender_task(&[1]);
    missing.blend = "missing.blend".to_owned();
    let reason = failure(rig.run(&missing).await.completion()).reason;
    assert_eq!(
        reason,
        format!(
            "scene file `missing.blend` not found under the worker's root {}",
            rig.root().display()
        )
    );
    assert_eq!(rig.record(Tool::Blender, "argv"), None, "blender ran");
    rig.stop().await;
}

#[tokio::test]
async fn blender_gets_the_workers_options_and_the_tasks_cycles_device() {
    let mut rig = Rig::start_built(&[Tool::Blender], |worker| {
        worker.blender_options(BlenderOptions {
            no_autoexec: true,
            cycles_device: Some("CUDA".to_owned()),
            threads: Some(2),
            ..BlenderOptions::default()
        })
    })
    .await;
    let scene = rig.file("scene.blend");
    let root = rig.root();
    let root_text = root.to_string_lossy();
    blender_says(
        &rig,
        &format!("Saved: '{root_text}/out/f_0001.png'\n Time: 00:00.10 (Saving: 00:00.01)\n"),
        0,
    );
    let mut task = blender_task(&[1]);
    task.engine = Some("EEVEE".to_owned());
    task.scene = Some("Shot".to_owned());
    task.python_expr = Some("import studio".to_owned());
    task.extra_args = vec!["--log-level".to_owned(), "0".to_owned()];
    let report = rig.run(&task).await;
    assert_eq!(output::<BlenderRender>(report.completion()).frames, 1);
    let worker_device = [
        "-t",
        "2",
        "-b",
        scene.to_string_lossy().as_ref(),
        "-noaudio",
        "-S",
        "Shot",
        "-o",
        &format!("{root_text}/out/f_####"),
        "-F",
        "PNG",
        // EEVEE as Blender 3.4 (the fake's version) names it.
        "-E",
        "BLENDER_EEVEE",
        "--python-expr",
        "import studio",
        "--log-level",
        "0",
        "-f",
        "1",
        "--",
        "--cycles-device",
        "CUDA",
    ]
    .map(str::to_owned);
    assert_eq!(rig.argv(Tool::Blender), worker_device);

    // The task's device wins over the worker's.
    task.cycles_device = Some("OPTIX+CPU".to_owned());
    rig.run(&task).await;
    let argv = rig.argv(Tool::Blender);
    assert_eq!(
        argv[argv.len() - 3..],
        ["--", "--cycles-device", "OPTIX+CPU"]
    );

    // Without -y, a Python driver that did not run fails the task.
    blender_says(
        &rig,
        &format!(
            "skipping driver 'frame * 2', automatic scripts are disabled\n\
             Saved: '{root_text}/out/f_0001.png'\n"
        ),
        0,
    );
    let reason = failure(rig.run(&blender_task(&[1])).await.completion()).reason;
    assert!(
        reason.starts_with("a Python driver did not run") && reason.contains("skipping driver"),
        "{reason}"
    );
    rig.stop().await;
}

#[tokio::test]
async fn a_blender_crash_log_reaches_the_output_and_the_failure() {
    let mut rig = Rig::start(&[Tool::Blender]).await;
    rig.file("scene.blend");
    blender_says(&rig, "Fra:1 Mem:9M\n", 0);
    std::fs::write(
        rig.tools.path().join("blender-crash"),
        "# Blender 3.4.1, Commit date: 2022-12-19\n# backtrace\n./blender(BLI_system_backtrace)\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let report = rig.run(&blender_task(&[1])).await;
    let lines = report.lines();
    let failure = failure(report.completion());
    assert!(
        failure.reason.contains("crash log is in the task's output"),
        "{}",
        failure.reason
    );
    assert!(
        failure
            .output_tail
            .iter()
            .any(|line| line.contains("BLI_system_backtrace")),
        "{:?}",
        failure.output_tail
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains("BLI_system_backtrace")),
        "{lines:?}"
    );
    rig.stop().await;
}

/// The worker's tools with their versions once it has read them: as it registered if it
/// had read them by then (every fake tool but mantra, which is asked nothing, answers with
/// one), else as it sends them after registering.
async fn versions(connection: &mut FakeConnection) -> Vec<buildcat_proto::ToolVersion> {
    let unread = connection
        .registration
        .tools
        .iter()
        .any(|tool| tool.version.is_empty() && tool.name != Tool::Mantra.name());
    if unread {
        connection.expect_tools().await
    } else {
        connection.registration.tools.clone()
    }
}

/// The tools as (name, version) pairs, to compare.
fn named(tools: &[buildcat_proto::ToolVersion]) -> Vec<(String, String)> {
    tools
        .iter()
        .map(|tool| (tool.name.clone(), tool.version.clone()))
        .collect()
}

/// Guards issue 14 (item 7): the worker tells the server each tool it was given with the
/// version the tool printed when asked at start (mantra, asked nothing, has none).
#[tokio::test]
async fn the_worker_sends_each_tool_with_its_version() {
    let mut rig = Rig::start(&[Tool::Blender, Tool::Mantra, Tool::RedshiftCmdLine]).await;
    let names: Vec<&str> = rig
        .connection
        .registration
        .tools
        .iter()
        .map(|tool| tool.name.as_str())
        .collect();
    assert_eq!(names, ["blender", "mantra", "redshiftCmdLine"]);
    let expected = [
        ("blender", "3.4.1"),
        ("mantra", ""),
        ("redshiftCmdLine", "3.5.16"),
    ]
    .map(|(name, version)| (name.to_owned(), version.to_owned()));
    assert_eq!(named(&versions(&mut rig.connection).await), expected);
    rig.stop().await;
}

/// Guards the regression that kept protocol 6 off main: a slow `blender --version` held up
/// the worker's first registration (and so its first task) for up to the version limit.
/// A tool that hangs when asked its version delays neither: the worker registers with the
/// tool's name at once, runs a task meanwhile, and sends the versions only once read.
#[tokio::test]
async fn a_tool_hanging_on_its_version_question_does_not_delay_the_first_task() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let folder = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let blender = folder.path().join("blender");
    write_script(&blender, "#!/bin/sh\nexec sleep 600\n");
    let worker = start(builder(&server, &root).tool_path(Tool::Blender, &blender));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;
    assert_eq!(
        named(&connection.registration.tools),
        [("blender".to_owned(), String::new())]
    );
    let task = RunCommand {
        program: "true".to_owned(),
        args: Vec::new(),
    };
    connection.assign(assignment(&task)).await;
    let report = connection.expect_report().await;
    assert!(
        matches!(
            report.completion().outcome,
            buildcat_proto::Outcome::Finished(_)
        ),
        "{:?}",
        report.completion()
    );
    // The version question is still running (it is given far longer than this task took).
    assert_eq!(
        connection.tools, None,
        "the task waited for the version question"
    );
    worker.stop().await;
}
