//! Project tasks: `cargo xtask ci` runs every check CI runs; `cargo xtask bench` measures
//! the farm against its performance targets; `cargo xtask fuzz` fuzzes the protocol decoder;
//! `cargo xtask dist` builds the release archives.
//!
//! Kept to the standard library so it compiles in seconds.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod dist;
mod python;

/// The Windows target: `cargo xtask ci` builds `buildcat.exe` for it, which the end-to-end
/// tests run under Wine (issue 16).
const WINDOWS_TARGET: &str = "x86_64-pc-windows-gnu";

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  ci [--postgres]  format check, clippy with warnings denied, build, tests, docs with warnings
                   denied; --postgres: instead, the end-to-end suite with every farm's server
                   on PostgreSQL (BUILDCAT_TEST_STORAGE=postgresql, a private cluster; needs
                   Debian's postgresql package)
  bench [--quick]  build in release mode, then measure a real server, client and worker over
                   loopback: prints a table and writes target/bench/results.json with two SVG
                   charts (--quick: smaller sizes, under a minute; --only GROUPS: a subset,
                   see `target/release/buildcat-bench --help`). Missed targets are reported,
                   never a failure
  python [--debug] [--test]
                   build the Python wheel (maturin; release unless --debug) and the Blender
                   add-on zip into target/python/; --test: then install the wheel into
                   target/python/venv and run pytest on tests/python (as ci does)
  fuzz [SECONDS]   fuzz the frame decoder with libFuzzer (cargo-fuzz, `cargo install
                   cargo-fuzz`) for SECONDS (default 300): every byte string a peer can send,
                   decoded as each side decodes it; a crash leaves its input in
                   fuzz/artifacts/
  windows          what ci does for Windows: the debug buildcat.exe the Wine test runs, a
                   check that the tests compile for Windows, the worker's unit tests under
                   Wine (needs the target, mingw's gcc and wine64)
  dist             release builds for x86_64-unknown-linux-gnu and x86_64-pc-windows-gnu,
                   packed with README.md and the licence into target/dist/ (a .tar.gz and a
                   .zip); needs `rustup target add x86_64-pc-windows-gnu` and mingw's gcc";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    let result = match task.as_deref() {
        Some("ci") if rest.iter().any(|arg| arg == "--postgres") => ci_postgres(),
        Some("ci") => ci(),
        Some("bench") => bench(&rest),
        Some("fuzz") => fuzz(&rest),
        Some("python") => python_task(&rest),
        Some("dist") => dist::dist(),
        Some("windows") => windows_build(),
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn cargo(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .map_err(|e| format!("could not run {cargo}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--check"], &[])?;
    cargo(
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    // The end-to-end tests run the real `buildcat` binary; build it first.
    cargo(&["build", "--workspace", "--bins"], &[])?;
    // The Windows binary the Wine test runs (tests/tests/it/windows.rs), and the Windows
    // check of the tests. A plain Rust toolchain has neither the target nor mingw's linker:
    // then both are skipped with a line (and the Wine test skips too), except under CI,
    // where they must run.
    let strict = std::env::var_os("BUILDCAT_CI").is_some_and(|v| v == "1");
    match windows_toolchain() {
        Err(missing) if !strict => eprintln!(
            "xtask: skipping the Windows build and check ({missing}; `rustup target add {WINDOWS_TARGET}` \
             and mingw's gcc, Debian's gcc-mingw-w64-x86-64, add it)"
        ),
        _ => windows_build()?,
    }
    cargo(&["test", "--workspace", "--no-fail-fast"], &[])?;
    cargo(
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    // After the Rust tests: the package wraps the client they checked, and its tests run
    // the binary built above.
    // A debug wheel: it reuses the dependencies the steps above built, and the tests check
    // behaviour, not speed.
    python::test(&workspace_root(), &target_dir(), true)?;
    eprintln!("xtask: ci passed");
    Ok(())
}

/// The packages whose tests are checked to compile for Windows: the ones a Windows host
/// runs (the worker and the CLI with its client) and the wire types they share. Their tests
/// run on Linux only here (no Windows machine in CI), so this keeps the Windows side of
/// their `cfg` gates compiling.
const WINDOWS_CHECKED: &[&str] = &[
    "buildcat-proto",
    "buildcat-client",
    "buildcat-worker",
    "buildcat-cli",
];

/// How much debug information the Wine test's `buildcat.exe` carries: line tables only,
/// enough for a panic's backtrace to name files and lines. Full debug information made the
/// debug `.exe` 381 MB, written and read again on every CI run for one test.
const WINDOWS_DEBUG: (&str, &str) = ("CARGO_PROFILE_DEV_DEBUG", "line-tables-only");

/// Builds the debug `buildcat.exe` the Wine test runs (tests/tests/it/windows.rs finds it
/// beside the Linux binary, in `target/x86_64-pc-windows-gnu/debug/`), then checks that the
/// tests of [`WINDOWS_CHECKED`] compile for Windows.
fn windows_build() -> Result<(), String> {
    cargo(
        &["build", "-p", "buildcat-cli", "--target", WINDOWS_TARGET],
        &[WINDOWS_DEBUG],
    )?;
    let mut args = vec!["check", "--tests", "--target", WINDOWS_TARGET];
    for package in WINDOWS_CHECKED {
        args.extend(["-p", package]);
    }
    cargo(&args, &[])?;
    windows_unit_tests()
}

/// Runs the worker's unit tests built for Windows under Wine (its job objects, slot locks,
/// tool lookup), in a Wine prefix of their own under `target/` with the test-only
/// `bcryptprimitives.dll` stand-in of `tests/windows/` (Wine 8.0 lacks the real one, see
/// tests/tests/it/windows.rs). Without Wine it is skipped with a line, except under CI.
fn windows_unit_tests() -> Result<(), String> {
    let strict = std::env::var_os("BUILDCAT_CI").is_some_and(|v| v == "1");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let wine = ["wine64", "wine"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    let Some(wine) = wine else {
        let missing = "Wine is not installed (Debian's wine64 adds it)";
        if strict {
            return Err(format!("BUILDCAT_CI=1 but {missing}"));
        }
        eprintln!("xtask: skipping the worker's unit tests under Wine: {missing}");
        return Ok(());
    };
    let prefix = target_dir().join("wine-prefix");
    let wine_env = |command: &mut Command| {
        command
            .env("WINEPREFIX", &prefix)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=");
    };
    let system32 = prefix.join("drive_c/windows/system32");
    if !system32.is_dir() {
        let mut boot = Command::new(&wine);
        boot.args(["wineboot", "--init"]);
        wine_env(&mut boot);
        run_to_success(&mut boot)?;
    }
    let source = workspace_root().join("tests/windows/bcryptprimitives.c");
    run_to_success(
        Command::new("x86_64-w64-mingw32-gcc")
            .args(["-shared", "-O2", "-o"])
            .arg(system32.join("bcryptprimitives.dll"))
            .arg(&source)
            .arg("-ladvapi32"),
    )?;
    let prefix_text = prefix.to_string_lossy();
    let wine_text = wine.to_string_lossy();
    let tested = cargo(
        &[
            "test",
            "--target",
            WINDOWS_TARGET,
            "-p",
            "buildcat-worker",
            "--lib",
        ],
        &[
            WINDOWS_DEBUG,
            ("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER", &wine_text),
            ("WINEPREFIX", &prefix_text),
            ("WINEDEBUG", "-all"),
            ("WINEDLLOVERRIDES", "mscoree,mshtml="),
        ],
    );
    // Wine's server for the prefix stays up a while after its last program; stop it now.
    let mut stop = Command::new("wineserver");
    stop.arg("-k");
    wine_env(&mut stop);
    let _ = stop.status();
    tested
}

/// Runs `command` to success, saying which failed.
pub(crate) fn run_to_success(command: &mut Command) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("could not run {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed ({status})"))
    }
}

/// Whether the Windows target's standard library and mingw's linker are installed, or
/// which is missing.
fn windows_toolchain() -> Result<(), String> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("rustc cannot be run: {e}"))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if !sysroot.join("lib/rustlib").join(WINDOWS_TARGET).is_dir() {
        return Err(format!("the {WINDOWS_TARGET} target is not installed"));
    }
    let linker = Command::new("x86_64-w64-mingw32-gcc")
        .arg("--version")
        .output();
    match linker {
        Ok(output) if output.status.success() => Ok(()),
        _ => Err("mingw's gcc (x86_64-w64-mingw32-gcc) is not installed".to_owned()),
    }
}

/// `cargo xtask ci --postgres`: the end-to-end suite once more with every farm's server on
/// a database of one private PostgreSQL cluster, so the PostgreSQL store is held to every
/// behaviour the SQLite one is. Two test threads: each test's server, workers and the
/// cluster share the machine.
fn ci_postgres() -> Result<(), String> {
    cargo(&["build", "-p", "buildcat-cli"], &[])?;
    cargo(
        &[
            "test",
            "-p",
            "buildcat-tests",
            "--test",
            "it",
            "--no-fail-fast",
            "--",
            "--test-threads",
            "2",
        ],
        &[
            ("BUILDCAT_TEST_STORAGE", "postgresql"),
            ("BUILDCAT_CI", "1"),
        ],
    )?;
    eprintln!("xtask: ci --postgres passed");
    Ok(())
}

/// The workspace root (xtask lives one level below it).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Where cargo builds: `$CARGO_TARGET_DIR`, else `target/` in the workspace.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// `cargo xtask python [--debug] [--test]`: the wheel and the Blender add-on into
/// target/python/, and with `--test` the Python tests.
fn python_task(args: &[String]) -> Result<(), String> {
    let (mut debug, mut test) = (false, false);
    for arg in args {
        match arg.as_str() {
            "--debug" => debug = true,
            "--test" => test = true,
            other => {
                return Err(format!(
                    "python takes --debug and --test, not `{other}`\n\n{USAGE}"
                ));
            }
        }
    }
    if test {
        // The tests run the binary, as ci's build step leaves it.
        cargo(&["build", "-p", "buildcat-cli"], &[])?;
        python::test(&workspace_root(), &target_dir(), debug)
    } else {
        python::build(&workspace_root(), &target_dir(), debug).map(|_| ())
    }
}

/// How long `cargo xtask fuzz` runs by default, in seconds: about 5 M inputs on one core.
const FUZZ_SECONDS: u64 = 300;

/// `cargo xtask fuzz [SECONDS]`: libFuzzer on the frame decoder (`fuzz/`).
fn fuzz(args: &[String]) -> Result<(), String> {
    let seconds = match args {
        [] => FUZZ_SECONDS,
        [seconds] => seconds
            .parse()
            .map_err(|_| format!("`{seconds}` is not a number of seconds\n\n{USAGE}"))?,
        _ => return Err(format!("fuzz takes at most one argument\n\n{USAGE}")),
    };
    let installed = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !installed {
        return Err("cargo-fuzz is not installed; run `cargo install cargo-fuzz`".to_owned());
    }
    let time = format!("-max_total_time={seconds}");
    let fuzz_dir = workspace_root().join("fuzz");
    let fuzz_dir = fuzz_dir.to_string_lossy();
    // libFuzzer's instrumentation needs unstable rustc flags; RUSTC_BOOTSTRAP lets the one
    // stable toolchain take them, for this build only (it stays outside the workspace).
    cargo(
        &[
            "fuzz",
            "run",
            "--fuzz-dir",
            &fuzz_dir,
            "decode_frames",
            "--",
            &time,
        ],
        &[("RUSTC_BOOTSTRAP", "1")],
    )
}

/// `cargo xtask bench [--quick] [--only GROUPS]`: release build, then the bench binary.
fn bench(args: &[String]) -> Result<(), String> {
    cargo(
        &[
            "build",
            "--release",
            "-p",
            "buildcat-cli",
            "-p",
            "buildcat-bench",
        ],
        &[],
    )?;
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let release = target.join("release");
    let bench = release.join("buildcat-bench");
    let out = target.join("bench");
    eprintln!("xtask: {} {}", bench.display(), args.join(" "));
    let status = Command::new(&bench)
        .args(args)
        .arg("--buildcat")
        .arg(release.join("buildcat"))
        .arg("--out")
        .arg(&out)
        .current_dir(&root)
        .status()
        .map_err(|e| format!("could not run {}: {e}", bench.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "the bench could not complete its measurements ({status}); missed targets alone never fail it"
        ))
    }
}
