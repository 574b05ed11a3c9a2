//! `cargo xtask dist`: release archives of the `buildcat` binary for Linux and Windows.
//!
//! For each target, a release build, then a folder `buildcat-VERSION-TARGET/` with the
//! binary, README.md and LICENSE (the Apache License 2.0), packed as
//! `target/dist/buildcat-VERSION-TARGET.tar.gz` (Linux, by the system's `tar`) or `.zip`
//! (Windows, by Python's `zipfile`, as the Blender add-on is): standard library only, so
//! xtask stays quick to compile. macOS is not built: it cannot be built or tested here
//! (README says so).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, target_dir, workspace_root};

/// The targets released, and how each is packed.
const TARGETS: &[(&str, Archive)] = &[
    ("x86_64-unknown-linux-gnu", Archive::TarGz),
    ("x86_64-pc-windows-gnu", Archive::Zip),
];

/// How a target's folder is packed.
#[derive(Clone, Copy)]
enum Archive {
    /// `.tar.gz`: what Linux users unpack with `tar`, keeping the executable bit.
    TarGz,
    /// `.zip`: what Windows opens by itself.
    Zip,
}

/// The licence text at the repository's root (the Apache License 2.0, as Cargo.toml's
/// `license` says): every archive carries it unchanged, because the licence asks that
/// redistributions include a copy.
const LICENCE_FILE: &str = "LICENSE";

/// Builds every target's archive into `target/dist/`.
pub fn dist() -> Result<(), String> {
    let root = workspace_root();
    let version = workspace_version(&root)?;
    let out = target_dir().join("dist");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    for &(target, archive) in TARGETS {
        cargo(
            &[
                "build",
                "--release",
                "-p",
                "buildcat-cli",
                "--target",
                target,
            ],
            &[],
        )?;
        let exe = if target.contains("windows") {
            "buildcat.exe"
        } else {
            "buildcat"
        };
        let binary = target_dir().join(target).join("release").join(exe);
        let name = format!("buildcat-{version}-{target}");
        let folder = out.join(&name);
        if folder.exists() {
            std::fs::remove_dir_all(&folder)
                .map_err(|e| format!("cannot clear {}: {e}", folder.display()))?;
        }
        std::fs::create_dir_all(&folder)
            .map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
        copy(&binary, &folder.join(exe))?;
        copy(&root.join("README.md"), &folder.join("README.md"))?;
        licence(&root, &folder)?;
        let path = match archive {
            Archive::TarGz => {
                let path = out.join(format!("{name}.tar.gz"));
                crate::run_to_success(
                    Command::new("tar")
                        .arg("-czf")
                        .arg(&path)
                        .arg("-C")
                        .arg(&out)
                        .arg(&name),
                )?;
                path
            }
            Archive::Zip => {
                let path = out.join(format!("{name}.zip"));
                let _ = std::fs::remove_file(&path);
                crate::run_to_success(
                    Command::new("python3")
                        .args(["-m", "zipfile", "-c"])
                        .arg(&path)
                        .arg(&name)
                        .current_dir(&out),
                )?;
                path
            }
        };
        eprintln!("xtask: wrote {}", path.display());
    }
    Ok(())
}

/// The workspace's version, from `[workspace.package]` in Cargo.toml.
fn workspace_version(root: &Path) -> Result<String, String> {
    let manifest = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    let section = text
        .split("[workspace.package]")
        .nth(1)
        .ok_or_else(|| format!("{} has no [workspace.package]", manifest.display()))?;
    section
        .lines()
        .take_while(|line| !line.starts_with('['))
        .find_map(|line| {
            let value = line
                .strip_prefix("version")?
                .trim_start()
                .strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_owned())
        })
        .ok_or_else(|| {
            format!(
                "no version in [workspace.package] of {}",
                manifest.display()
            )
        })
}

/// Copies the repository's licence text (`LICENSE` at its root) into `folder`; a checkout
/// without it is an error, so no archive ships without the licence.
fn licence(root: &Path, folder: &Path) -> Result<(), String> {
    let from = root.join(LICENCE_FILE);
    if !from.is_file() {
        return Err(format!(
            "{} is missing; restore it (`git checkout -- {LICENCE_FILE}`) before packing, \
             since every archive must carry the licence text",
            from.display()
        ));
    }
    copy(&from, &folder.join(LICENCE_FILE))
}

/// Copies one file, saying which on failure.
fn copy(from: &Path, to: &PathBuf) -> Result<(), String> {
    std::fs::copy(from, to)
        .map(drop)
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_read_from_the_workspace_manifest() {
        let version = workspace_version(&workspace_root()).unwrap_or_else(|e| panic!("{e}"));
        let parts: Vec<&str> = version.split('.').collect();
        assert_eq!(parts.len(), 3, "{version}");
        assert!(
            parts.iter().all(|part| part.parse::<u32>().is_ok()),
            "{version}"
        );
    }

    #[test]
    fn the_repository_licence_is_the_apache_text_and_is_packed() {
        let root = workspace_root();
        let text =
            std::fs::read_to_string(root.join(LICENCE_FILE)).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains("Apache License"), "{text}");
        assert!(text.contains("Version 2.0, January 2004"), "{text}");
        assert!(text.contains("END OF TERMS AND CONDITIONS"), "{text}");
        let folder = std::env::temp_dir().join(format!("xtask-dist-{}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap_or_else(|e| panic!("{e}"));
        licence(&root, &folder).unwrap_or_else(|e| panic!("{e}"));
        let packed =
            std::fs::read_to_string(folder.join(LICENCE_FILE)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(packed, text);
        std::fs::remove_dir_all(&folder).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn a_checkout_without_the_licence_is_refused() {
        let root = std::env::temp_dir().join(format!("xtask-dist-bare-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("{e}"));
        let error = licence(&root, &root).err().unwrap_or_default();
        assert!(error.contains("LICENSE is missing"), "{error}");
        std::fs::remove_dir_all(&root).unwrap_or_else(|e| panic!("{e}"));
    }
}
