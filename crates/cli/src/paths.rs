//! Paths as the user types them, turned into the root-relative paths jobs carry.
//!
//! With the farm root known on this host (`--root`, `BUILDCAT_ROOT` or `root` under `[farm]`
//! in the config file), a path relative to the current directory inside the root, or an
//! absolute path inside it, becomes relative to the root; a path outside it is refused,
//! naming the root and how to set it. When the root exists here, a scene that is not there
//! is refused before anything is submitted. Without a root, paths are taken as relative to
//! the root already (and checked as before).

use std::path::{Component, Path, PathBuf};

use anyhow::bail;

use crate::args::Command;

/// How to set the root, for the messages that need one.
const SET_ROOT: &str = "set it with --root DIR, BUILDCAT_ROOT, or `root` under [farm] in the config file (`buildcat config` shows which is used)";

/// Whether the path names an input that must exist (a scene) or something the job writes
/// (an output pattern).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Read by the job: refused when missing and the root is visible.
    Input,
    /// Written by the job: only placed.
    Output,
}

/// The farm root as this host sees it, and where the user stands.
#[derive(Debug)]
pub struct Here {
    /// The root, made absolute (canonical when it exists here).
    root: PathBuf,
    /// Whether the root exists on this host, so files under it can be checked.
    visible: bool,
    /// The current directory, canonical.
    cwd: PathBuf,
}

impl Here {
    /// The root `root` seen from the current directory.
    pub fn new(root: &Path) -> anyhow::Result<Here> {
        let cwd = std::env::current_dir()
            .and_then(dunce::canonicalize)
            .map_err(|e| anyhow::anyhow!("could not read the current directory: {e}"))?;
        let absolute = if root.is_absolute() {
            root.to_owned()
        } else {
            cwd.join(root)
        };
        let (root, visible) = match dunce::canonicalize(&absolute) {
            Ok(root) => (root, true),
            Err(_) => (normalize(&absolute), false),
        };
        Ok(Here { root, visible, cwd })
    }

    /// `typed` (the `what` of the command) as a path relative to the root.
    pub fn place(&self, what: &str, typed: &str, kind: Kind) -> anyhow::Result<String> {
        let path = Path::new(typed);
        let root = &self.root;
        let relative = if path.is_absolute() {
            let Some(relative) = self.inside(path) else {
                bail!(
                    "the {what} {typed} is outside the farm root {}; jobs can only use files under it (move it there, or if the root is elsewhere {SET_ROOT})",
                    root.display()
                );
            };
            relative
        } else if let Ok(from_root) = self.cwd.strip_prefix(root) {
            // Typed from inside the root: relative to where the user stands, unless only the
            // root-relative reading names an existing file (an old habit).
            let here = normalize(&from_root.join(path));
            if here.starts_with("..") {
                bail!(
                    "the {what} {typed} climbs out of the farm root {}; jobs can only use files under it",
                    root.display()
                );
            }
            let legacy = kind == Kind::Input
                && self.visible
                && !root.join(&here).exists()
                && root.join(path).exists();
            if legacy { path.to_owned() } else { here }
        } else {
            // Typed from outside the root: taken as relative to the root, as always.
            path.to_owned()
        };
        let text = relative.to_string_lossy().into_owned();
        if kind == Kind::Input && self.visible && !root.join(&relative).exists() {
            bail!(
                "the {what} {typed} does not exist (looked for {} under the farm root {})",
                if text.is_empty() { "." } else { &text },
                root.display()
            );
        }
        Ok(text)
    }

    /// `path` relative to the root, if it is inside it (following symbolic links when the
    /// file exists, so `/mnt/farm` reached through a link still counts).
    fn inside(&self, path: &Path) -> Option<PathBuf> {
        let resolved = dunce::canonicalize(path).unwrap_or_else(|_| normalize(path));
        resolved
            .strip_prefix(&self.root)
            .ok()
            .map(Path::to_owned)
            .or_else(|| {
                normalize(path)
                    .strip_prefix(&self.root)
                    .ok()
                    .map(Path::to_owned)
            })
    }
}

/// `path` with `.` and `a/..` taken out, without touching the disk; a leading `..` stays.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else if !out.has_root() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Where a path typed without a root goes wrong in a way the root would fix: an absolute
/// path, which the worker cannot take.
fn without_root(what: &str, typed: &str) -> anyhow::Result<()> {
    if Path::new(typed).is_absolute() {
        bail!(
            "the {what} {typed} is absolute, but job paths are relative to the farm root and no root is known on this host; {SET_ROOT}, and absolute paths inside it are accepted"
        );
    }
    Ok(())
}

/// Places one path of a command, with or without a root.
fn one(here: Option<&Here>, what: &str, typed: &mut String, kind: Kind) -> anyhow::Result<()> {
    match here {
        Some(here) => *typed = here.place(what, typed, kind)?,
        None => without_root(what, typed)?,
    }
    Ok(())
}

/// Turns the paths a render command was given into root-relative ones, before it plans
/// its job; other commands are left as they are.
pub fn place_render_paths(command: &mut Command) -> anyhow::Result<()> {
    let root = match command {
        Command::BlenderRender(args) => args.render.root.clone(),
        Command::HoudiniRenderHip(args) => args.render.root.clone(),
        Command::HoudiniRenderIfd(args) => args.render.root.clone(),
        Command::HoudiniRenderUsd(args) => args.render.root.clone(),
        Command::ModoRender(args) => args.render.root.clone(),
        Command::RedshiftRender(args) => args.render.root.clone(),
        _ => return Ok(()),
    };
    let here = root.as_deref().map(Here::new).transpose()?;
    let here = here.as_ref();
    match command {
        Command::BlenderRender(args) => {
            one(here, ".blend file", &mut args.blend, Kind::Input)?;
            if let Some(output) = &mut args.output {
                one(here, "output pattern", output, Kind::Output)?;
            }
        }
        Command::HoudiniRenderHip(args) => one(here, ".hip file", &mut args.hip, Kind::Input)?,
        Command::HoudiniRenderIfd(args) => {
            for ifd in &mut args.ifds {
                one(here, ".ifd file", ifd, Kind::Input)?;
            }
        }
        Command::HoudiniRenderUsd(args) => {
            one(here, "USD file", &mut args.usd, Kind::Input)?;
            if let Some(output) = &mut args.output {
                one(here, "output pattern", output, Kind::Output)?;
            }
        }
        Command::ModoRender(args) => one(here, ".lxo scene", &mut args.lxo, Kind::Input)?,
        Command::RedshiftRender(args) => one(here, ".rs archive", &mut args.rs, Kind::Input)?,
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizing_keeps_what_climbs_out() {
        assert_eq!(normalize(Path::new("a/./b/../c")), Path::new("a/c"));
        assert_eq!(normalize(Path::new("../a")), Path::new("../a"));
        assert_eq!(normalize(Path::new("a/../../b")), Path::new("../b"));
        assert_eq!(normalize(Path::new("/a/../../b")), Path::new("/b"));
    }

    fn here(root: &str, cwd: &str) -> Here {
        Here {
            root: PathBuf::from(root),
            visible: false,
            cwd: PathBuf::from(cwd),
        }
    }

    #[test]
    fn paths_are_placed_under_the_root() {
        let inside = here("/no/farm", "/no/farm/shots");
        let place = |here: &Here, typed| here.place("scene", typed, Kind::Input);
        assert_eq!(
            place(&inside, "a.blend").ok().as_deref(),
            Some("shots/a.blend")
        );
        assert_eq!(
            place(&inside, "../x/a.blend").ok().as_deref(),
            Some("x/a.blend")
        );
        assert_eq!(
            place(&inside, "/no/farm/x/a.blend").ok().as_deref(),
            Some("x/a.blend")
        );
        let error = place(&inside, "/elsewhere/a.blend").map_err(|e| e.to_string());
        assert!(
            error
                .as_ref()
                .is_err_and(|e| e.contains("outside the farm root /no/farm")),
            "{error:?}"
        );
        let error = place(&inside, "../../a.blend").map_err(|e| e.to_string());
        assert!(error.is_err_and(|e| e.contains("climbs out")));
        let outside = here("/no/farm", "/home/me");
        assert_eq!(
            place(&outside, "x/a.blend").ok().as_deref(),
            Some("x/a.blend")
        );
    }
}
