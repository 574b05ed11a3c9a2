//! Paths in job arguments: always relative to the worker's root, never climbing out of it.
//!
//! Each worker sees the shared storage at its own place (`/mnt/farm`, `/Volumes/Farm`,
//! `//Aurora/Farm`), so a job names files relative to the root and each worker joins them to
//! its own. The check is lexical: symbolic links inside the root are the studio's business.

use std::path::{Component, Path, PathBuf};

/// Why a path in a job was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is empty.
    #[error("the path is empty; give a path relative to the farm root")]
    Empty,
    /// The path is absolute.
    #[error(
        "`{0}` is an absolute path; give it relative to the farm root (BUILDCAT_ROOT), since \
         each worker mounts the shared storage at its own place"
    )]
    Absolute(String),
    /// The path climbs out of the root with `..`.
    #[error("`{0}` climbs out of the farm root with `..`; give a path inside the root")]
    OutsideRoot(String),
    /// The path holds a NUL byte.
    #[error("the path {0:?} holds a NUL byte")]
    Nul(String),
}

/// Checks that `path` is relative and stays inside the root.
pub fn check_relative(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.contains('\0') {
        return Err(PathError::Nul(path.to_owned()));
    }
    // Windows forms are refused on every platform: a job may come from any host.
    let bytes = path.as_bytes();
    let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    if path.starts_with('/') || path.starts_with('\\') || drive {
        return Err(PathError::Absolute(path.to_owned()));
    }
    let mut depth: usize = 0;
    for part in path.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| PathError::OutsideRoot(path.to_owned()))?;
            }
            _ => depth += 1,
        }
    }
    Ok(())
}

/// Joins a checked relative `path` to `root`; `/` and `\` both separate its parts, on every
/// platform.
pub fn resolve(root: &Path, path: &str) -> Result<PathBuf, PathError> {
    check_relative(path)?;
    let mut resolved = root.to_path_buf();
    for part in path.split(['/', '\\']) {
        // One part is one name, except where the platform reads more into it: on Windows a
        // `C:` inside the path is a drive, and pushing it would replace the root.
        let mut components = Path::new(part).components();
        match (components.next(), components.next()) {
            (None, _) | (Some(Component::CurDir), None) => {}
            (Some(Component::Normal(name)), None) => resolved.push(name),
            (Some(Component::ParentDir), None) => {
                resolved.pop();
            }
            _ => return Err(PathError::Absolute(path.to_owned())),
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, expected: Result<(), PathError>) {
        assert_eq!(check_relative(path), expected, "{path:?}");
    }

    #[test]
    fn relative_paths_inside_the_root_pass() {
        for path in [
            "scene.blend",
            "shots/010/scene.hip",
            "./a/../b.ifd",
            "a/b/../../c",
        ] {
            check(path, Ok(()));
        }
    }

    #[test]
    fn absolute_and_escaping_paths_are_refused() {
        let absolute = |p: &str| Err(PathError::Absolute(p.to_owned()));
        let outside = |p: &str| Err(PathError::OutsideRoot(p.to_owned()));
        check("/mnt/farm/scene.blend", absolute("/mnt/farm/scene.blend"));
        check("C:\\farm\\scene.blend", absolute("C:\\farm\\scene.blend"));
        check("\\\\Aurora\\Farm\\x", absolute("\\\\Aurora\\Farm\\x"));
        check("../secrets", outside("../secrets"));
        check("a/../../b", outside("a/../../b"));
        check("a\\..\\..\\b", outside("a\\..\\..\\b"));
        check("", Err(PathError::Empty));
        check("a\0b", Err(PathError::Nul("a\0b".to_owned())));
    }

    #[test]
    fn resolve_joins_to_the_root() {
        let root = Path::new("/mnt/farm");
        assert_eq!(
            resolve(root, "shots/../scene.blend").unwrap(),
            Path::new("/mnt/farm/scene.blend")
        );
        assert_eq!(
            resolve(root, "a\\b.ifd").unwrap(),
            Path::new("/mnt/farm/a/b.ifd")
        );
        assert!(resolve(root, "/etc/passwd").is_err());
    }

    /// Windows forms of absolute paths are refused on every platform, with the message a
    /// Linux path gets (issue 16).
    #[test]
    fn windows_absolute_forms_are_refused_everywhere() {
        for path in [
            "C:/farm/scene.blend",
            "c:scene.blend",
            "Z:\\farm",
            "\\\\Aurora\\Farm\\scene.blend",
            "//Aurora/Farm/scene.blend",
            "\\\\?\\C:\\farm",
            "\\farm\\scene.blend",
        ] {
            check(path, Err(PathError::Absolute(path.to_owned())));
            let message = check_relative(path).err().map(|error| error.to_string());
            assert_eq!(
                message,
                Some(format!(
                    "`{path}` is an absolute path; give it relative to the farm root \
                     (BUILDCAT_ROOT), since each worker mounts the shared storage at its own place"
                ))
            );
        }
    }

    #[test]
    fn either_separator_resolves_under_the_root() {
        let root = Path::new("farm");
        let expected = root.join("shots").join("010").join("scene.hip");
        for path in [
            "shots/010/scene.hip",
            "shots\\010\\scene.hip",
            "shots/010\\scene.hip",
            "./shots//010/./scene.hip",
            "shots\\x\\..\\010/scene.hip",
        ] {
            assert_eq!(resolve(root, path), Ok(expected.clone()), "{path}");
        }
    }

    /// Where a drive inside a path would replace the root (Windows), it is refused; on
    /// Linux it is an ordinary name, as it always was.
    #[test]
    fn a_drive_inside_a_path_never_replaces_the_root() {
        let root = Path::new("farm");
        let resolved = resolve(root, "a/C:/b");
        if cfg!(windows) {
            assert_eq!(resolved, Err(PathError::Absolute("a/C:/b".to_owned())));
        } else {
            assert_eq!(resolved, Ok(root.join("a").join("C:").join("b")));
        }
    }
}
