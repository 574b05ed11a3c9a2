//! Tidy checks over the workspace's source, run as ordinary tests (STYLE.md, after
//! rust-analyzer).

use std::path::{Path, PathBuf};

/// Guards the house rule that every Rust file opens with a `//!` line saying what it holds.
#[test]
fn every_rust_file_starts_with_a_module_doc_line() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package lives in the workspace");
    let mut files = Vec::new();
    for dir in ["crates", "examples", "tests", "xtask", "bench", "fuzz"] {
        rust_files(&workspace.join(dir), &mut files);
    }
    assert!(
        !files.is_empty(),
        "no Rust files under {}",
        workspace.display()
    );
    let offenders: Vec<String> = files
        .iter()
        .filter(|file| {
            let text = std::fs::read_to_string(file)
                .unwrap_or_else(|error| panic!("could not read {}: {error}", file.display()));
            !text.starts_with("//!")
        })
        .map(|file| {
            file.strip_prefix(workspace)
                .unwrap_or(file)
                .display()
                .to_string()
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "these files do not start with a `//!` line: {offenders:#?}"
    );
}

/// Every `.rs` file under `dir`, skipping build output.
fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && entry.file_name() != "target" {
            rust_files(&path, files);
        } else if kind.is_file() && path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}
