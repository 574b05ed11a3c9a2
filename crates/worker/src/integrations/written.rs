//! The files a render says it wrote, checked before the task counts as done: each must
//! hold data. A tool that cannot write all of a file (a full disk, a quota, a share that
//! dropped) may still print its "saved" line and exit 0: Blender 3.4 saved 0-byte PNGs and
//! said `Saved:` for each on a full disk (found by trying). Such a frame is lost work
//! reported as finished, so the task fails naming the file.
//!
//! What is checked, per file: it exists and is not empty; a PNG ends with its `IEND` chunk
//! and a JPEG with its end-of-image marker (a file cut short lacks them: PNG, W3C
//! Recommendation section 5.6 and 11.2.5, the IEND chunk is last; JPEG, ITU T.81 B.2.1, a
//! compressed image ends with EOI, `FF D9`). Other formats are checked for size only
//! (an OpenEXR, a TIFF or a geometry cache has no fixed ending to check cheaply).
//! A path this system cannot open as given (a Windows tool's `C:\...` seen from WSL) and a
//! folder (USD outputs can be folders) are not checked.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use buildcat_proto::Failure;

/// The last bytes of a whole PNG: the `IEND` chunk's type and its CRC (the chunk has no
/// data, so its CRC is fixed).
const PNG_END: [u8; 8] = [b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82];

/// The last bytes of a whole JPEG: the end-of-image marker.
const JPEG_END: [u8; 2] = [0xFF, 0xD9];

/// What is wrong with the file at `path`, if anything.
fn fault(path: &Path) -> Option<String> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Some("is not there".to_owned());
        }
        Err(error) => return Some(format!("cannot be read: {error}")),
    };
    if metadata.is_dir() {
        return None;
    }
    if metadata.len() == 0 {
        return Some("is empty (0 bytes)".to_owned());
    }
    let extension = path
        .extension()
        .and_then(|extension| extension.to_str())
        .map(str::to_ascii_lowercase);
    let end: &[u8] = match extension.as_deref() {
        Some("png") => &PNG_END,
        Some("jpg" | "jpeg") => &JPEG_END,
        _ => return None,
    };
    match ends_with(path, end) {
        Ok(true) => None,
        Ok(false) => Some(format!(
            "is cut short ({} bytes, without the end every {} file has)",
            metadata.len(),
            if end.len() == PNG_END.len() {
                "PNG"
            } else {
                "JPEG"
            }
        )),
        Err(error) => Some(format!("cannot be read: {error}")),
    }
}

/// Whether the file at `path` ends with `end`.
fn ends_with(path: &Path, end: &[u8]) -> std::io::Result<bool> {
    let mut file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    let size = u64::try_from(end.len()).unwrap_or(u64::MAX);
    if length < size {
        return Ok(false);
    }
    file.seek(SeekFrom::Start(length - size))?;
    let mut last = vec![0; end.len()];
    file.read_exact(&mut last)?;
    Ok(last == end)
}

/// Where `output` (as a task lists it: relative to `root` when under it) is on this
/// system, if it can be opened as given.
fn location(root: &Path, output: &str) -> Option<PathBuf> {
    let path = Path::new(output);
    if path.is_absolute() {
        Some(path.to_path_buf())
    } else if path.has_root() || output.contains(":\\") || output.starts_with("\\\\") {
        // `\farm\x` or `C:\farm\x` on Unix: a Windows tool's path, not this system's.
        None
    } else {
        Some(root.join(path))
    }
}

/// Checks each of `outputs` (see [`location`]); the first file at fault fails the task,
/// naming it and what `program` said.
pub(super) fn check(root: &Path, program: &str, outputs: &[String]) -> Result<(), Failure> {
    for output in outputs {
        let Some(path) = location(root, output) else {
            continue;
        };
        if let Some(fault) = fault(&path) {
            return Err(Failure::new(format!(
                "{output} {fault}, though `{program}` said it wrote it: is the disk that holds \
                 it full, or out of quota? Free space, delete the file, and requeue the task"
            )));
        }
    }
    Ok(())
}

/// [`check`] off the runtime's threads.
pub(super) async fn check_outputs(
    root: &Path,
    program: &str,
    outputs: &[String],
) -> Result<(), Failure> {
    let (root, program, outputs) = (root.to_path_buf(), program.to_owned(), outputs.to_vec());
    tokio::task::spawn_blocking(move || check(&root, &program, &outputs))
        .await
        .map_err(|e| Failure::new(format!("could not check the files written: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
        name.to_owned()
    }

    fn png(cut: usize) -> Vec<u8> {
        let mut bytes = b"\x89PNG\r\n\x1a\n....IHDR....pixels....".to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        bytes.extend_from_slice(&PNG_END);
        bytes.truncate(bytes.len() - cut);
        bytes
    }

    #[test]
    fn whole_files_pass_and_empty_or_cut_ones_are_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        let good = [
            write(root, "out/a_0001.png", &png(0)),
            write(root, "out/a_0001.JPG", &[0xFF, 0xD8, 1, 2, 0xFF, 0xD9]),
            write(root, "out/a_0001.exr", b"v/1\x01 any bytes"),
            write(root, "geo/a.bgeo.sc", b"x"),
        ];
        std::fs::create_dir_all(root.join("usd/layers")).unwrap_or_else(|e| panic!("{e}"));
        let mut outputs = good.to_vec();
        outputs.push("usd/layers".to_owned());
        // A Windows tool's path seen from Unix is not this system's to open.
        #[cfg(unix)]
        outputs.push("C:\\farm\\out\\a_0001.png".to_owned());
        assert_eq!(check(root, "blender", &outputs), Ok(()));

        let bad = [
            (write(root, "out/empty.png", b""), "is empty (0 bytes)"),
            (write(root, "out/cut.png", &png(5)), "is cut short"),
            (
                write(root, "out/cut.jpeg", &[0xFF, 0xD8, 1, 2]),
                "is cut short",
            ),
            ("out/never.png".to_owned(), "is not there"),
        ];
        for (output, fault) in bad {
            let reason = check(root, "blender", &[good[0].clone(), output.clone()])
                .err()
                .map(|failure| failure.reason)
                .unwrap_or_default();
            assert!(
                reason.starts_with(&format!("{output} {fault}")),
                "{output}: {reason}"
            );
            assert!(reason.contains("`blender` said it wrote it"), "{reason}");
        }
        // An absolute path (outside the root) is checked where it is.
        let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let empty = outside.path().join("x.png");
        std::fs::write(&empty, b"").unwrap_or_else(|e| panic!("{e}"));
        let empty = empty.to_string_lossy().into_owned();
        assert!(check(root, "husk", &[empty]).is_err());
    }
}
