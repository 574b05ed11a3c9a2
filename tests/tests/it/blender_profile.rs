//! Each worker slot keeps one Blender profile between tasks (issue 20): a second task of
//! the same slot finds what the first left in its cache folder; another slot has its own
//! unless `--blender-profile DIR` shares one; the person's own Blender settings are never
//! read; `--blender-profile-reset` empties the profiles.

use std::path::Path;

use crate::harness::{Farm, PATIENCE, Proc, buildcat_command, describe, run_command, stdout};
use crate::render::{make_scene, on_path, submitted, write_file};

/// Blender's Python, run after the scene loads in every task: prints the cache folder and
/// whether an earlier task left its mark there, then leaves one.
const PROBE: &str = "import os; cache = os.environ['XDG_CACHE_HOME']; \
    mark = os.path.join(cache, 'probe-mark'); \
    print('PROBE', cache, 'FOUND' if os.path.exists(mark) else 'NEW'); \
    open(mark, 'a').close()";

/// A user startup script in the person's own Blender folder: a render must never run it.
const LEAK: &str = "print('USER STARTUP SCRIPT RAN')\n";

/// Starts a worker in `root` named `name` with `args`, whose HOME holds a Blender user
/// folder with a startup script ([`LEAK`]).
fn worker(farm: &Farm, root: &Path, home: &Path, name: &str, args: &[&str]) -> Proc {
    let mut command = buildcat_command(["worker", "--port", &farm.port.to_string()]);
    command
        .args(["--name", name])
        .args(args)
        .current_dir(root)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"));
    Proc::spawn(&format!("worker {name}"), command, farm.path())
}

/// Renders `frames` of the scene one frame per task and returns each task's probe line
/// (`PROBE CACHE FOUND|NEW`), in task order.
fn render(farm: &Farm, frames: &str) -> Vec<(String, String)> {
    let output = run_command(
        farm.client.command(&[
            "blender-render",
            "scenes/anim.blend",
            "--frames",
            frames,
            "--chunk",
            "1",
            "--output",
            "renders/p_####",
            "--python-expr",
            PROBE,
            "--wait",
            "--json",
        ]),
        PATIENCE * 3,
    );
    assert!(
        output.status.success(),
        "{}\n{}",
        describe(&output),
        farm.server_logs()
    );
    let (job, tasks) = submitted(&output);
    (0..tasks)
        .map(|index| {
            let logs = farm.ok(&["logs", &format!("{job}.{index}")]);
            let text = stdout(&logs);
            assert!(
                !text.contains("USER STARTUP SCRIPT RAN"),
                "the person's own Blender folder was read:\n{text}"
            );
            let probe = text
                .lines()
                .find_map(|line| line.strip_prefix("PROBE "))
                .unwrap_or_else(|| panic!("no probe line in task {job}.{index}:\n{text}"));
            let (cache, seen) = probe.rsplit_once(' ').expect("PROBE CACHE SEEN");
            (cache.to_owned(), seen.to_owned())
        })
        .collect()
}

#[test]
fn a_slot_keeps_its_blender_profile_between_tasks_and_slots_do_not_share_unless_asked() {
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
    let home = farm.make_dir("home");
    write_file(
        &home.join(".config/blender/3.4/scripts/startup/leak.py"),
        LEAK.as_bytes(),
    );
    let state = farm.make_dir("state");
    let state_arg = state.to_str().expect("a UTF-8 path");

    // One slot, two tasks: the second finds the first's mark in the same cache folder,
    // which is under the worker's state directory and kept after the tasks.
    let mut first = worker(&farm, &root, &home, "p1", &["--state-dir", state_arg]);
    let probes = render(&farm, "1-2");
    assert_eq!(probes.len(), 2);
    assert_eq!(probes[0].1, "NEW", "{probes:?}");
    assert_eq!(
        probes[1],
        (probes[0].0.clone(), "FOUND".to_owned()),
        "{probes:?}"
    );
    let slot_cache = Path::new(&probes[0].0);
    assert!(
        slot_cache.starts_with(&state),
        "{probes:?} is not under {}",
        state.display()
    );
    assert!(slot_cache.join("probe-mark").is_file());
    first.kill();

    // Another slot: its own profile.
    let mut second = worker(&farm, &root, &home, "p2", &["--state-dir", state_arg]);
    let probes = render(&farm, "3");
    assert_eq!(probes[0].1, "NEW", "{probes:?}");
    assert_ne!(Path::new(&probes[0].0), slot_cache);
    second.kill();

    // The first slot again, after a restart: its profile is still there; reset, it is not.
    let mut again = worker(&farm, &root, &home, "p1", &["--state-dir", state_arg]);
    let probes = render(&farm, "4");
    assert_eq!(
        probes[0],
        (slot_cache.display().to_string(), "FOUND".to_owned())
    );
    again.kill();
    let mut reset = worker(
        &farm,
        &root,
        &home,
        "p1",
        &["--state-dir", state_arg, "--blender-profile-reset"],
    );
    let probes = render(&farm, "5");
    assert_eq!(
        probes[0],
        (slot_cache.display().to_string(), "NEW".to_owned())
    );
    reset.kill();

    // Two slots given one profile share it.
    let shared = farm.make_dir("shared-profile");
    let shared_arg = shared.to_str().expect("a UTF-8 path");
    let mut third = worker(
        &farm,
        &root,
        &home,
        "p3",
        &["--blender-profile", shared_arg],
    );
    let probes = render(&farm, "6");
    assert_eq!(probes[0].1, "NEW", "{probes:?}");
    assert!(Path::new(&probes[0].0).starts_with(&shared), "{probes:?}");
    third.kill();
    let mut fourth = worker(
        &farm,
        &root,
        &home,
        "p4",
        &["--blender-profile", shared_arg],
    );
    let probes = render(&farm, "7");
    assert_eq!(
        probes[0].1, "FOUND",
        "the second slot shares the first's profile: {probes:?}"
    );
    fourth.kill();
}

#[test]
fn a_reset_leaves_a_folder_buildcat_did_not_make() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let mine = farm.make_dir("my-own-profile");
    write_file(&mine.join("precious.txt"), b"keep me");
    let mut worker = farm.worker_in(
        &root,
        &[
            "--name",
            "r1",
            "--blender-profile",
            mine.to_str().expect("a UTF-8 path"),
            "--blender-profile-reset",
        ],
    );
    worker.wait_for_log("not resetting a blender profile buildcat did not make");
    assert!(mine.join("precious.txt").is_file());
    worker.kill();
}
