//! Records the toolchain this crate is built with, for the built-in worker-info job.
//!
//! Sets `BUILDCAT_RUSTC_VERSION` (the output of `$RUSTC --version`, or `unknown`) and
//! `BUILDCAT_TARGET` (the target triple) for `env!` in `src/info.rs`.

use std::env;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=RUSTC");

    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    let target = env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());

    println!("cargo::rustc-env=BUILDCAT_RUSTC_VERSION={version}");
    println!("cargo::rustc-env=BUILDCAT_TARGET={target}");
}
