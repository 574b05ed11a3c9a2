//! `cargo xtask python`: the Python wheel (maturin) and the Blender add-on zip, into
//! `target/python/`; and the Python step of `cargo xtask ci` (the wheel installed into a
//! virtual environment under `target/`, then pytest on `tests/python`).
//!
//! Standard library only: it shells out to maturin, and to Python's own `zipfile` and
//! `venv` modules.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The maturin version CI installs (`.ci/run`), named in the message when it is missing.
pub const MATURIN_VERSION: &str = "1.7.4";

/// The add-on's folder inside its zip, which is also its Python module name.
const ADDON: &str = "buildcat_blender";

/// What `cargo xtask python` made.
pub struct Built {
    /// The wheel, `target/python/buildcat-VERSION-cp39-abi3-PLATFORM.whl`.
    pub wheel: PathBuf,
    /// The Blender add-on, `target/python/buildcat_blender-VERSION.zip`.
    pub addon: PathBuf,
}

/// Runs a command in `dir`, saying it first, failing with what it was when it fails.
fn run(command: &mut Command, dir: &Path) -> Result<(), String> {
    eprintln!("xtask: {command:?}");
    crate::run_to_success(command.current_dir(dir))
}

/// Whether `program --version` runs.
fn runs(program: &Path) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// The tools virtual environment `.ci/run` makes (`target/python/venv`, with maturin).
fn tools_venv(target: &Path) -> PathBuf {
    target.join("python").join("venv")
}

/// maturin: `$MATURIN`, the tools environment's, or the one on PATH.
fn maturin(target: &Path) -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("MATURIN").map(PathBuf::from),
        Some(tools_venv(target).join("bin").join("maturin")),
        Some(PathBuf::from("maturin")),
    ];
    candidates.into_iter().flatten().find(|path| runs(path))
}

/// A Python 3 to zip with and to make environments from: the tools environment's, else
/// `python3` on PATH.
fn python(target: &Path) -> Option<PathBuf> {
    let candidates = [
        tools_venv(target).join("bin").join("python3"),
        PathBuf::from("python3"),
    ];
    candidates.into_iter().find(|path| runs(path))
}

/// How to get what is missing.
fn install_hint() -> String {
    format!(
        "install Python 3 with venv and pytest (Debian: apt-get install python3 python3-venv \
         python3-pytest), then `/usr/bin/python3 -m venv --system-site-packages target/python/venv && \
         target/python/venv/bin/pip install maturin=={MATURIN_VERSION}` (what .ci/run does)"
    )
}

/// Whether the tools the Python step needs are here; `Err` says which is missing.
pub fn tools(target: &Path) -> Result<(), String> {
    if python(target).is_none() {
        return Err(format!("python3 is missing; {}", install_hint()));
    }
    if maturin(target).is_none() {
        return Err(format!("maturin is missing; {}", install_hint()));
    }
    Ok(())
}

/// Builds the wheel (release unless `debug`) and the add-on zip into `target/python/`.
pub fn build(root: &Path, target: &Path, debug: bool) -> Result<Built, String> {
    tools(target)?;
    let maturin = maturin(target).ok_or_else(install_hint)?;
    let python = python(target).ok_or_else(install_hint)?;
    let out = target.join("python");
    std::fs::create_dir_all(&out)
        .map_err(|e| format!("could not create {}: {e}", out.display()))?;
    // One wheel in the folder afterwards, so the newest build is the one installed.
    for entry in std::fs::read_dir(&out).map_err(|e| format!("{}: {e}", out.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let stale = name.is_some_and(|name| {
            (name.starts_with("buildcat-") && name.ends_with(".whl"))
                || (name.starts_with(ADDON) && name.ends_with(".zip"))
        });
        if stale {
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let mut command = Command::new(&maturin);
    command
        .args(["build", "--manifest-path"])
        .arg(root.join("crates/python/Cargo.toml"))
        .arg("--out")
        .arg(&out);
    if !debug {
        command.arg("--release");
    }
    run(&mut command, root)?;
    let wheel = find(&out, "buildcat-", ".whl")?;
    let addon = addon(root, &out, &python, &wheel)?;
    eprintln!("xtask: built {} and {}", wheel.display(), addon.display());
    Ok(Built { wheel, addon })
}

/// The one file in `dir` named `prefix...suffix`.
fn find(dir: &Path, prefix: &str, suffix: &str) -> Result<PathBuf, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .map(|name| name.to_string_lossy())
                .is_some_and(|name| name.starts_with(prefix) && name.ends_with(suffix))
        })
        .ok_or_else(|| format!("maturin made no {prefix}*{suffix} in {}", dir.display()))
}

/// The add-on zip: `buildcat_blender/` holding the add-on's sources and the package from
/// the wheel, so the artist installs one file.
fn addon(root: &Path, out: &Path, python: &Path, wheel: &Path) -> Result<PathBuf, String> {
    let staging = out.join("addon");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| format!("{}: {e}", staging.display()))?;
    }
    let folder = staging.join(ADDON);
    std::fs::create_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    let sources = root.join("crates/python/blender_addon");
    for name in ["__init__.py", "blender_manifest.toml"] {
        std::fs::copy(sources.join(name), folder.join(name))
            .map_err(|e| format!("could not copy {}: {e}", sources.join(name).display()))?;
    }
    // The wheel is a zip: its `buildcat/` folder is the package.
    let unpacked = staging.join("wheel");
    run(
        Command::new(python)
            .args(["-m", "zipfile", "-e"])
            .arg(wheel)
            .arg(&unpacked),
        root,
    )?;
    std::fs::rename(unpacked.join("buildcat"), folder.join("buildcat"))
        .map_err(|e| format!("the wheel {} holds no buildcat/: {e}", wheel.display()))?;
    let version = workspace_version(root)?;
    let zip = out.join(format!("{ADDON}-{version}.zip"));
    run(
        Command::new(python)
            .args(["-m", "zipfile", "-c"])
            .arg(&zip)
            .arg(ADDON),
        &staging,
    )?;
    Ok(zip)
}

/// The workspace's version, from the root `Cargo.toml` (xtask's own is 0.0.0).
fn workspace_version(root: &Path) -> Result<String, String> {
    let manifest = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| format!("could not read {}: {e}", manifest.display()))?;
    let section = text
        .split("[workspace.package]")
        .nth(1)
        .ok_or("Cargo.toml has no [workspace.package]")?;
    section
        .lines()
        .find_map(|line| {
            let value = line
                .trim()
                .strip_prefix("version")?
                .trim()
                .strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_owned())
        })
        .ok_or_else(|| "[workspace.package] names no version".to_owned())
}

/// The Python step of CI: builds the wheel (release unless `debug`) and add-on, installs the
/// wheel into the tools environment (`target/python/venv`, made here with the system's site
/// packages when `.ci/run` did not make it) and runs pytest on `tests/python` against
/// `target/debug/buildcat`. Without the tools it fails under `BUILDCAT_CI=1` and says it
/// skipped otherwise.
pub fn test(root: &Path, target: &Path, debug: bool) -> Result<(), String> {
    let strict = std::env::var_os("BUILDCAT_CI").is_some_and(|v| v == "1");
    let skip = |missing: String| {
        if strict {
            Err(missing)
        } else {
            eprintln!("xtask: skipped the Python tests: {missing}");
            Ok(())
        }
    };
    if let Err(missing) = tools(target) {
        return skip(missing);
    }
    let built = build(root, target, debug)?;
    let venv = tools_venv(target);
    let venv_python = venv.join("bin").join("python3");
    if !venv_python.exists() {
        // The distribution's own Python first: its site packages hold the packaged pytest,
        // which a `python3` found earlier on PATH (pyenv, /usr/local) does not see.
        let system = PathBuf::from("/usr/bin/python3");
        let python = if runs(&system) {
            system
        } else {
            python(target).ok_or_else(install_hint)?
        };
        run(
            Command::new(&python)
                .args(["-m", "venv", "--system-site-packages"])
                .arg(&venv),
            root,
        )?;
    }
    run(
        Command::new(&venv_python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-index",
                "--force-reinstall",
            ])
            .arg(&built.wheel),
        root,
    )?;
    let has_pytest = Command::new(&venv_python)
        .args(["-c", "import pytest"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !has_pytest {
        return skip(format!("pytest is missing; {}", install_hint()));
    }
    run(
        Command::new(&venv_python)
            .args([
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/python",
            ])
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("BUILDCAT_BIN", target.join("debug").join("buildcat"))
            .env("BUILDCAT_ADDON_ZIP", &built.addon),
        root,
    )
}
