//! Watching through a server restart (issue 9, item 12): the server keeps every job on
//! disk, so commands that wait on jobs or refresh a view reconnect when it restarts and
//! carry on, saying once on stderr that they lost it and once that they are back.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{Farm, PATIENCE, Streaming};

/// What a watcher says when the connection is lost, and when it is back.
const LOST: &str = "lost the server at";
/// See [`LOST`].
const BACK: &str = "reconnected to the server at";

/// A job that waits for a file named `go` in the worker's root, then prints `after`.
const WAIT_FOR_GO: &str = "echo before; while [ ! -e go ]; do sleep 0.05; done; echo after";

/// How often [`wait_for_stderr`] looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// A path as a command-line argument.
fn arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Creates the file the job waits for.
fn touch(path: &Path) {
    std::fs::write(path, b"")
        .unwrap_or_else(|error| panic!("could not create {}: {error}", path.display()));
}

/// Polls what `watcher` printed until it contains `text`; fails the test after
/// [`PATIENCE`].
#[track_caller]
fn wait_for_stderr(watcher: &Streaming, text: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !watcher.describe().contains(text) {
        assert!(
            Instant::now() < deadline,
            "no `{text}` within {PATIENCE:?}\n{}",
            watcher.describe()
        );
        thread::sleep(POLL_INTERVAL);
    }
}

/// How many times `text` occurs in what `watcher` printed so far.
fn occurrences(watcher: &Streaming, text: &str) -> usize {
    watcher.describe().matches(text).count()
}

/// Kills the farm's server with SIGKILL and starts it again on the same storage and port.
fn restart(farm: &mut Farm) {
    farm.kill_server();
    farm.start_server();
}

/// Guards `run --wait` through a server restart: the server is killed (SIGKILL) while the
/// command follows its running job and started again on the same storage and port; the
/// command says once that it lost the server and once that it reconnected, and exits 0
/// when the job finishes.
#[test]
fn run_wait_carries_on_after_the_server_restarts() {
    let mut farm = Farm::start();
    let root = farm.make_dir("root");
    let _worker = farm.worker(&["--root", arg(&root)]);
    let mut waiting = Streaming::spawn(
        "`buildcat run --wait`",
        farm.client
            .command(&["run", "--wait", "--", "sh", "-c", WAIT_FOR_GO]),
    );
    let id = waiting.next_line(PATIENCE);
    farm.wait_for_status(&id, "started", |status| status["state"] == "started");
    // The program's output comes on stdout (issue 14), after the job's number.
    assert_eq!(
        waiting.next_line(PATIENCE),
        "before",
        "{}",
        waiting.describe()
    );

    restart(&mut farm);
    wait_for_stderr(&waiting, BACK);
    touch(&root.join("go"));
    let (exit, _) = waiting.wait_exit(PATIENCE);
    assert!(
        exit.success(),
        "{exit}\n{}\n{}",
        waiting.describe(),
        farm.server_logs()
    );
    assert_eq!(occurrences(&waiting, LOST), 1, "{}", waiting.describe());
    assert_eq!(occurrences(&waiting, BACK), 1, "{}", waiting.describe());
    let status = farm.status(&id);
    assert_eq!(status["state"], "finished", "{status:#}");
}

/// A stand-in for Blender: answers `--version`, and renders frame 1 by waiting for a file
/// named `go` in its working directory (the worker's root), then writing the frame and
/// saying so as Blender does.
const FAKE_BLENDER: &str = r#"#!/bin/sh
PATH=/usr/bin:/bin
if [ "$1" = "--version" ]; then
    echo "Blender 4.0.0"
    exit 0
fi
while [ ! -e go ]; do sleep 0.05; done
echo "Fra:1 Mem:1M"
printf '\211PNG\r\n\032\n\0\0\0\0IEND\256B`\202' > frame_0001.png
echo "Saved: '$PWD/frame_0001.png'"
"#;

/// Guards a render command's `--wait` through a server restart: it re-watches the job on
/// a new connection, says once that it lost the server and once that it reconnected, and
/// exits 0 when the render finishes.
#[test]
fn render_wait_carries_on_after_the_server_restarts() {
    use std::os::unix::fs::PermissionsExt;

    let mut farm = Farm::start();
    let root = farm.make_dir("root");
    std::fs::write(root.join("scene.blend"), b"").expect("could not write the scene");
    let blender = farm.path().join("blender");
    std::fs::write(&blender, FAKE_BLENDER).expect("could not write the fake blender");
    std::fs::set_permissions(&blender, std::fs::Permissions::from_mode(0o755))
        .expect("could not make the fake blender executable");
    let _worker = farm.worker(&["--root", arg(&root), "--blender", arg(&blender)]);
    let mut waiting = Streaming::spawn(
        "`buildcat blender-render --wait`",
        farm.client
            .command(&["blender-render", "scene.blend", "--frames", "1", "--wait"]),
    );
    let id = waiting.next_line(PATIENCE);
    farm.wait_for_status(&id, "started", |status| status["state"] == "started");

    restart(&mut farm);
    wait_for_stderr(&waiting, BACK);
    touch(&root.join("go"));
    let (exit, _) = waiting.wait_exit(PATIENCE);
    assert!(
        exit.success(),
        "{exit}\n{}\n{}",
        waiting.describe(),
        farm.server_logs()
    );
    assert_eq!(occurrences(&waiting, LOST), 1, "{}", waiting.describe());
    assert!(
        waiting.describe().contains("1 of 1 job(s) finished"),
        "{}",
        waiting.describe()
    );
}

/// Guards `logs --follow` through a server restart: after the restart it goes on with the
/// job's new output (the line printed once the test lets the job go on) and exits 0 when
/// the job ends.
#[test]
fn logs_follow_carries_on_after_the_server_restarts() {
    let mut farm = Farm::start();
    let root = farm.make_dir("root");
    let _worker = farm.worker(&["--root", arg(&root)]);
    let id = farm.submit(&["--", "sh", "-c", WAIT_FOR_GO]);
    let mut follow = Streaming::spawn(
        "`buildcat logs --follow`",
        farm.client.command(&["logs", "--follow", &id]),
    );
    assert_eq!(follow.next_line(PATIENCE), "before");

    restart(&mut farm);
    wait_for_stderr(&follow, BACK);
    touch(&root.join("go"));
    // A job the restarted server handed out again prints `before` once more before it
    // sees the file; whatever comes, it ends with `after`.
    let mut line = follow.next_line(PATIENCE);
    while line == "before" {
        line = follow.next_line(PATIENCE);
    }
    assert_eq!(line, "after", "{}", follow.describe());
    let (exit, rest) = follow.wait_exit(PATIENCE);
    assert!(exit.success(), "{exit}\n{}", follow.describe());
    assert!(rest.is_empty(), "more lines after the job's own: {rest:?}");
    assert_eq!(occurrences(&follow, LOST), 1, "{}", follow.describe());
}

/// Guards `info --interval` through a server restart: it keeps refreshing, and shows a
/// job submitted after the restart.
#[test]
fn info_interval_carries_on_after_the_server_restarts() {
    let mut farm = Farm::start();
    let mut info = Streaming::spawn(
        "`buildcat info --interval`",
        farm.client.command(&["info", "--interval", "0.2"]),
    );
    assert_eq!(
        info.next_line(PATIENCE).split_whitespace().next(),
        Some("queue")
    );

    restart(&mut farm);
    wait_for_stderr(&info, BACK);
    // No job existed before the restart, so a row for queue `default` can only come from a
    // view drawn after it.
    farm.submit(&["--", "true"]);
    let deadline = Instant::now() + PATIENCE;
    while !info.next_line(PATIENCE).starts_with("default ") {
        assert!(Instant::now() < deadline, "{}", info.describe());
    }
    info.kill();
    assert_eq!(occurrences(&info, LOST), 1, "{}", info.describe());
}
