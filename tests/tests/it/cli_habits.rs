//! The command line fits a person's habits (issue 14): `run --wait` behaves like the
//! program (its output on stdout, its exit code, 128+N for a signal), scene paths are taken
//! from where the user stands inside the farm root, and the small mistakes get errors that
//! point the right way.

use std::path::Path;
use std::process::Output;

use crate::harness::{Farm, PATIENCE, describe, job_number, run_command, stderr, stdout, text};

/// A path as an argument.
fn arg(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// `buildcat ARGS` against `farm`, run in `dir` with `env` set.
fn run_in(farm: &Farm, dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = farm.client.command(args);
    command.current_dir(dir);
    for (name, value) in env {
        command.env(name, value);
    }
    run_command(command, PATIENCE)
}

#[test]
fn run_wait_prints_the_programs_output_on_stdout_and_exits_as_it_did() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let _worker = farm.worker(&["--root", arg(&root)]);

    let output = farm.run(&[
        "run",
        "--wait",
        "--",
        "sh",
        "-c",
        "echo to-stdout; echo to-stderr >&2; exit 3",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let number = job_number(&output);
    let printed: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    assert_eq!(printed[0], number, "{}", describe(&output));
    assert!(
        printed.contains(&"to-stdout".to_owned()) && printed.contains(&"to-stderr".to_owned()),
        "the program's output is not on stdout\n{}",
        describe(&output)
    );
    assert!(
        stderr(&output).contains("exit code 3"),
        "{}",
        describe(&output)
    );

    // Killed by a signal: 128+N, as a shell says.
    let output = farm.run(&["run", "--wait", "--", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(output.status.code(), Some(137), "{}", describe(&output));
    let output = farm.run(&["run", "--wait", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(output.status.code(), Some(143), "{}", describe(&output));

    let output = farm.run(&["run", "--wait", "--", "echo", "fine"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        stdout(&output).lines().any(|line| line == "fine"),
        "{}",
        describe(&output)
    );
}

#[test]
fn scene_paths_are_taken_from_where_the_user_stands_inside_the_root() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let shots = farm.make_dir("root/shots");
    std::fs::write(shots.join("a.blend"), "").expect("could not write the scene");
    let elsewhere = farm.make_dir("elsewhere");
    std::fs::write(elsewhere.join("b.blend"), "").expect("could not write the scene");
    let runs = |output: &Output| {
        assert!(output.status.success(), "{}", describe(output));
        let number = job_number(output);
        text(&farm.job(&number), "/runs").to_owned()
    };

    // Relative to the current directory inside the root, the root given by flag.
    let output = run_in(
        &farm,
        &shots,
        &[],
        &["blender-render", "--root", arg(&root), "a.blend"],
    );
    assert!(
        runs(&output).contains("shots/a.blend"),
        "{}",
        describe(&output)
    );
    // Absolute inside the root, the root given by the environment, typed from elsewhere.
    let absolute = shots.join("a.blend");
    let output = run_in(
        &farm,
        &elsewhere,
        &[("BUILDCAT_ROOT", arg(&root))],
        &["blender-render", arg(&absolute)],
    );
    let shown = runs(&output);
    assert!(
        shown.contains("shots/a.blend") && !shown.contains(arg(&root)),
        "{shown}"
    );
    // The root from the config file.
    let config = farm.path().join("config.toml");
    std::fs::write(&config, format!("[farm]\nroot = \"{}\"\n", root.display()))
        .expect("could not write the config file");
    let output = run_in(
        &farm,
        &shots,
        &[("BUILDCAT_CONFIG", arg(&config))],
        &["blender-render", "a.blend"],
    );
    assert!(
        runs(&output).contains("shots/a.blend"),
        "{}",
        describe(&output)
    );

    // Outside the root: the error names the root and how to set it.
    let output = run_in(
        &farm,
        &elsewhere,
        &[("BUILDCAT_ROOT", arg(&root))],
        &["blender-render", arg(&elsewhere.join("b.blend"))],
    );
    assert!(!output.status.success(), "{}", describe(&output));
    let message = stderr(&output);
    assert!(
        message.contains(&format!("outside the farm root {}", root.display()))
            && message.contains("--root")
            && message.contains("BUILDCAT_ROOT"),
        "{}",
        describe(&output)
    );
    // A missing scene is refused at submit when the root is visible.
    let output = run_in(
        &farm,
        &shots,
        &[],
        &["blender-render", "--root", arg(&root), "c.blend"],
    );
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        stderr(&output).contains("does not exist") && stderr(&output).contains("shots/c.blend"),
        "{}",
        describe(&output)
    );
    // Without a root, an absolute path says how to set one.
    let output = run_in(&farm, &shots, &[], &["blender-render", arg(&absolute)]);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(stderr(&output).contains("--root"), "{}", describe(&output));
    // Nothing of the refused ones was submitted.
    let listing = farm.jobs(&[]);
    assert_eq!(
        listing["jobs"].as_array().map(Vec::len),
        Some(3),
        "{listing:#}"
    );
}
