//! Finding the programs under test: the `buildcat` binary and the examples, built once per
//! test process with this test binary's profile unless the environment names them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::describe;

/// The `buildcat` binary under test: `BUILDCAT_BIN` if set, otherwise built once per test
/// process with the profile of this test binary. A failed build is remembered, so every
/// test reports the same failure instead of building again.
pub fn buildcat() -> &'static Path {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let binary = BINARY.get_or_init(|| match std::env::var_os("BUILDCAT_BIN") {
        Some(path) => Ok(PathBuf::from(path)),
        None => build_buildcat(),
    });
    match binary {
        Ok(path) => path,
        Err(reason) => panic!("{reason}"),
    }
}

/// Runs `cargo build -p buildcat-cli --bin buildcat` into this test binary's target
/// directory and returns the binary's path, or why there is none.
fn build_buildcat() -> Result<PathBuf, String> {
    let profile_dir = cargo_build(&["-p", "buildcat-cli", "--bin", "buildcat"])?;
    let binary = profile_dir.join(format!("buildcat{}", std::env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        return Err(format!(
            "building buildcat succeeded but {} does not exist",
            binary.display()
        ));
    }
    Ok(binary)
}

/// An example program of the `buildcat-examples` package (`submit_batch`, `custom_worker`):
/// from `BUILDCAT_EXAMPLES_DIR` if set, otherwise built once per test process (`cargo build
/// -p buildcat-examples --examples`) with the profile of this test binary.
pub fn example(name: &str) -> PathBuf {
    static EXAMPLES: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = EXAMPLES.get_or_init(|| match std::env::var_os("BUILDCAT_EXAMPLES_DIR") {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => cargo_build(&["-p", "buildcat-examples", "--examples"])
            .map(|profile_dir| profile_dir.join("examples")),
    });
    let dir = match dir {
        Ok(dir) => dir,
        Err(reason) => panic!("{reason}"),
    };
    let program = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        program.is_file(),
        "the example {name} was built but {} does not exist",
        program.display()
    );
    program
}

/// Runs `cargo build --quiet ARGS` in the workspace, into this test binary's target
/// directory and with its profile; returns the profile directory (`target/debug`), or why
/// the build failed.
fn cargo_build(args: &[&str]) -> Result<PathBuf, String> {
    let profile_dir = profile_dir();
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("{} has no parent", profile_dir.display()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package lives in the workspace");
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--quiet"])
        .args(args)
        .arg("--target-dir")
        .arg(target_dir);
    match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
    }
    let output = command
        .output()
        .map_err(|error| format!("could not run {command:?}: {error}"))?;
    if !output.status.success() {
        return Err(format!("{command:?} failed:\n{}", describe(&output)));
    }
    Ok(profile_dir)
}

/// `target/<profile>`: two levels up from this test binary (`target/debug/deps/it-xxxx`),
/// or `$CARGO_TARGET_DIR/debug` when the binary is somewhere unexpected.
fn profile_dir() -> PathBuf {
    let from_exe = std::env::current_exe().ok().and_then(|exe| {
        let deps = exe.parent()?;
        (deps.file_name()? == "deps").then(|| deps.parent().map(Path::to_path_buf))?
    });
    from_exe.unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
        PathBuf::from(target).join("debug")
    })
}
