//! Windows hosts (issue 16): the Windows `buildcat.exe`, cross-built for
//! `x86_64-pc-windows-gnu`, run under Wine as a worker and as a client against the Linux
//! server on loopback.
//!
//! Wine runs every Windows process as a Linux process, so what a job left running is seen
//! from here in `/proc` by its command line. Wine 8.0 lacks `bcryptprimitives.dll`, which
//! Rust's standard library needs; the test builds the stand-in of `tests/windows/` (test
//! scaffolding only) into its own Wine prefix. The prefix is made once, in the test's
//! temporary directory, and its `wineserver` is stopped at the end.
//!
//! Skipped, with a note, where `wine64` (or `wine`), mingw's gcc or the built `.exe` is
//! missing, except under `BUILDCAT_CI=1`, where that fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{
    Farm, Later, PATIENCE, Proc, assert_success, buildcat, describe, job_number, json, poll_within,
    run_command, stdout, text, worker,
};

/// How long Wine may take to make its prefix (the first start): slow on a loaded two-core
/// machine, and done once per run.
const PREFIX_LIMIT: Duration = Duration::from_secs(180);

/// How long a command run under Wine may take (Wine's start included).
const WINE_COMMAND_LIMIT: Duration = Duration::from_secs(90);

/// What is needed to run Windows programs here.
struct Wine {
    /// The Wine loader (`wine64`, or `wine` where that is how it is installed).
    loader: PathBuf,
    /// The Windows `buildcat.exe`.
    exe: PathBuf,
    /// The test's own Wine prefix.
    prefix: PathBuf,
}

/// Stops the prefix's `wineserver` (and with it every process Wine still runs there).
struct ServerStop(PathBuf);

impl Drop for ServerStop {
    fn drop(&mut self) {
        let _ = Command::new("wineserver")
            .arg("-k")
            .env("WINEPREFIX", &self.0)
            .status();
    }
}

/// The first of `names` on PATH, or one of `fixed` that exists.
fn find_program(names: &[&str], fixed: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names
        .iter()
        .find_map(|name| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|candidate| candidate.is_file())
        })
        .or_else(|| fixed.iter().map(PathBuf::from).find(|path| path.is_file()))
}

/// The Windows `buildcat.exe`: `BUILDCAT_WINDOWS_BIN`, or the cross build beside the
/// Linux binary under test (`target/x86_64-pc-windows-gnu/PROFILE/buildcat.exe`).
fn windows_exe() -> PathBuf {
    if let Some(path) = std::env::var_os("BUILDCAT_WINDOWS_BIN") {
        return PathBuf::from(path);
    }
    let linux = buildcat();
    let profile = linux
        .parent()
        .and_then(Path::file_name)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("debug"));
    let target = linux
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| Path::new("target"));
    target
        .join("x86_64-pc-windows-gnu")
        .join(profile)
        .join("buildcat.exe")
}

/// Whether a missing piece fails the test rather than skipping it.
fn required() -> bool {
    std::env::var_os("BUILDCAT_CI").is_some_and(|value| value == "1")
}

/// Skips (returns `None`) or, under `BUILDCAT_CI=1`, fails, saying what is missing.
fn missing<T>(what: &str) -> Option<T> {
    assert!(!required(), "BUILDCAT_CI=1 but {what}");
    eprintln!("skipping the Windows test: {what}");
    None
}

impl Wine {
    /// Finds Wine and the `.exe`, makes a prefix under `dir` and puts the stand-in DLL in
    /// it; `None` (skip) where something is missing.
    fn prepare(dir: &Path) -> Option<(Wine, ServerStop)> {
        let Some(loader) = find_program(&["wine64", "wine"], &["/usr/lib/wine/wine64"]) else {
            return missing("wine64 is not installed (apt-get install wine64)");
        };
        let exe = windows_exe();
        if !exe.is_file() {
            return missing(&format!(
                "{} is not built (`cargo xtask ci` builds it; by hand: \
                 CARGO_PROFILE_DEV_DEBUG=line-tables-only \
                 cargo build -p buildcat-cli --target x86_64-pc-windows-gnu)",
                exe.display()
            ));
        }
        let Some(gcc) = find_program(&["x86_64-w64-mingw32-gcc"], &[]) else {
            return missing("mingw's gcc is not installed (apt-get install gcc-mingw-w64-x86-64)");
        };
        let prefix = dir.join("wineprefix");
        let stop = ServerStop(prefix.clone());
        let wine = Wine {
            loader,
            exe,
            prefix,
        };
        let output = run_command(wine.command(&["wineboot", "--init"]), PREFIX_LIMIT);
        assert_success(&output, "making the Wine prefix (wineboot --init)");
        let system32 = wine.prefix.join("drive_c/windows/system32");
        assert!(system32.is_dir(), "wineboot made no {}", system32.display());
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("windows/bcryptprimitives.c");
        let mut build = Command::new(gcc);
        build
            .args(["-shared", "-O2", "-o"])
            .arg(system32.join("bcryptprimitives.dll"))
            .arg(&source)
            .arg("-ladvapi32");
        assert_success(
            &run_command(build, PATIENCE),
            "building the bcryptprimitives.dll stand-in",
        );
        Some((wine, stop))
    }

    /// `LOADER ARGS` in the test's prefix, quiet, without the Mono and Gecko installers.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.loader);
        command
            .args(args)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=");
        command
    }

    /// `buildcat.exe ARGS` under Wine.
    fn buildcat(&self, args: &[&str]) -> Command {
        let mut command = self.command(&[]);
        command.arg(&self.exe).args(args);
        command
    }
}

/// A Linux path as a Windows program under Wine sees it: on drive `Z:`, Wine's view of `/`.
fn on_z(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// The live Wine processes of a job's `cmd /c ping -n COUNT 127.0.0.1` (its `cmd` and its
/// `ping`), by pid with their command lines: Wine's processes show their Windows command
/// lines in `/proc`, the program first.
fn job_processes(count: &str) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let zombie = stat
                .rfind(')')
                .and_then(|end| stat.get(end + 1..))
                .is_some_and(|rest| rest.trim_start().starts_with('Z'));
            let line = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let line = String::from_utf8_lossy(&line).to_ascii_lowercase();
            let arguments: Vec<&str> = line
                .split(['\0', ' '])
                .filter(|part| !part.is_empty())
                .collect();
            let program = arguments.first()?.rsplit(['\\', '/']).next()?;
            let ours = matches!(program, "cmd" | "cmd.exe" | "ping" | "ping.exe")
                && arguments.windows(2).any(|pair| pair == ["-n", count]);
            (ours && !zombie).then(|| (pid, arguments.join(" ")))
        })
        .collect()
}

/// Waits until the job's `ping -n COUNT` runs under Wine.
fn wait_running(count: &str, farm: &Farm, worker: &Proc) {
    poll_within(
        PATIENCE * 2,
        &format!("`ping -n {count}` to run under Wine"),
        || {
            let running = job_processes(count);
            let ping = running.iter().any(|(_, line)| {
                let program = line.split(' ').next().unwrap_or_default();
                program.ends_with("ping") || program.ends_with("ping.exe")
            });
            if ping {
                Ok(())
            } else {
                Err(Later(move || {
                    format!("{running:?}\n{}\n{}", worker.logs(), farm.server_logs())
                }))
            }
        },
    );
}

/// Waits until no process of the job's `ping -n COUNT` (neither `cmd` nor `ping`) is left.
fn wait_gone(count: &str, what: &str) {
    poll_within(PATIENCE * 2, what, || {
        let left = job_processes(count);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("still running: {left:?}"))
        }
    });
}

/// Guards issue 16: a Windows worker under Wine reports a Windows system with a real
/// version and a plain root, runs a `cmd /c` job with its output, stops the whole process
/// tree of a canceled and a timed-out job (no process left), takes its job's processes
/// with it when killed, and the Windows CLI reads the farm.
#[test]
fn a_windows_worker_and_client_under_wine() {
    let farm = Farm::start();
    let Some((wine, _stop)) = Wine::prepare(farm.path()) else {
        return;
    };
    let root = farm.make_dir("root");
    let port = farm.port.to_string();
    let root_arg = on_z(&root);
    let command = wine.buildcat(&[
        "worker", "--port", &port, "--root", &root_arg, "--name", "win1",
    ]);
    let mut win_worker = Proc::spawn("windows worker", command, farm.path());
    let starting = &win_worker;
    poll_within(PATIENCE * 2, "the Windows worker to register", || {
        let info = farm.info();
        match worker(&info, "win1") {
            Some(_) => Ok(()),
            None => Err(Later(move || format!("{info:#}\n{}", starting.logs()))),
        }
    });

    // worker-info: Windows, a real version, the root as written.
    let output = farm.ok(&["worker-info", "--json"]);
    let report = json(&output);
    assert_eq!(text(&report, "/os/system"), "Windows", "{report:#}");
    let version = text(&report, "/os/version");
    let parts: Vec<&str> = version.split('.').collect();
    assert!(
        parts.len() == 3 && parts.iter().all(|part| part.parse::<u32>().is_ok()),
        "not a Windows version: {report:#}"
    );
    assert_eq!(text(&report, "/worker/root"), root_arg, "{report:#}");

    // A `cmd /c` job and its output.
    let marker = "hello-from-windows";
    let output = farm.run(&["run", "--wait", "--", "cmd", "/c", "echo", marker]);
    assert!(output.status.success(), "{}", describe(&output));
    let echoed = job_number(&output);
    let status = farm.status(&echoed);
    assert_eq!(status["state"], "finished", "{status:#}");
    assert!(
        stdout(&output).contains(marker) || status.to_string().contains(marker),
        "the job's output lacks {marker}\n{}\n{status:#}",
        describe(&output)
    );

    // The Windows CLI as a client.
    let output = run_command(
        wine.buildcat(&["info", "--port", &port, "--json"]),
        WINE_COMMAND_LIMIT,
    );
    assert_success(&output, "`buildcat.exe info --json` under Wine");
    assert!(
        worker(&json(&output), "win1").is_some(),
        "{}",
        describe(&output)
    );

    // Cancel: the job's `cmd` and `ping` are gone.
    let canceled = farm.submit(&["--", "cmd", "/c", "ping", "-n", "31", "127.0.0.1"]);
    wait_running("31", &farm, &win_worker);
    farm.ok(&["cancel", &canceled]);
    farm.wait_for_status(&canceled, "canceled", |status| {
        status["state"] == "canceled"
    });
    wait_gone("31", "the canceled job's processes to be gone");

    // Timeout: the job fails as timed out, and nothing of it is left.
    let output = farm.run(&[
        "run",
        "--wait",
        "--timeout",
        "3",
        "--",
        "cmd",
        "/c",
        "ping",
        "-n",
        "32",
        "127.0.0.1",
    ]);
    assert!(!output.status.success(), "{}", describe(&output));
    let timed_out = job_number(&output);
    let status = farm.status(&timed_out);
    assert_eq!(status["state"], "failed", "{status:#}");
    let reason = status["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("timed out"), "{status:#}");
    wait_gone("32", "the timed-out job's processes to be gone");

    // The worker killed (SIGKILL of its Wine process): its job's processes die with it.
    farm.submit(&["--", "cmd", "/c", "ping", "-n", "33", "127.0.0.1"]);
    wait_running("33", &farm, &win_worker);
    win_worker.kill();
    wait_gone("33", "the killed worker's job's processes to be gone");
}
