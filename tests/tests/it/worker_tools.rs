//! What each worker can do, as `info` shows it (issue 14, item 7): the tools a worker
//! found, each with the version it read from the tool at start.

use std::process::Command;

use serde_json::Value;

use crate::fake_dcc::{self, FakeTools, RECORD_VAR};
use crate::harness::{Farm, Proc, buildcat_command, stdout, worker};
use crate::render::on_path;

/// The `tools` of worker `name` in an `info --json` view, as (name, version) pairs.
#[track_caller]
fn tools_of(info: &Value, name: &str) -> Vec<(String, String)> {
    let listed = worker(info, name)
        .unwrap_or_else(|| panic!("worker {name} is not listed: {info:#}"))["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("worker {name} has no `tools` list: {info:#}"));
    listed
        .iter()
        .map(|tool| {
            let text = |key: &str| {
                tool[key]
                    .as_str()
                    .unwrap_or_else(|| panic!("a tool without a `{key}` string: {tool}"))
                    .to_owned()
            };
            (text("name"), text("version"))
        })
        .collect()
}

/// Whether worker `name` is listed idle with the versions of its tools read (sent after it
/// registered, so as not to hold up its first task); mantra and husk, asked nothing, have
/// none. Once they are listed, every version question has been answered.
pub(super) fn idle_with_versions(info: &Value, name: &str) -> bool {
    worker(info, name).is_some_and(|w| {
        w["state"] == "idle"
            && w["tools"].as_array().is_some_and(|tools| {
                tools.iter().all(|tool| {
                    tool["name"] == "mantra" || tool["name"] == "husk" || tool["version"] != ""
                })
            })
    })
}

/// Guards issue 14 (item 7): a worker given stand-in tools by flag (and no PATH) lists
/// each with the version the tool printed when asked at start; mantra and husk, which are
/// asked nothing, are listed without one. `info --json` lists them per worker and `info` prints
/// them as `hython 20.0.547`.
#[test]
fn a_workers_tools_are_listed_by_info_with_the_versions_they_print() {
    let farm = Farm::start();
    let tools = FakeTools::install(&farm.make_dir("tools"));
    let root = farm.make_dir("root");
    let port = farm.port.to_string();
    let mut command = buildcat_command(["worker", "--port", &port, "--name", "dcc"]);
    command
        .args(tools.worker_flags())
        .current_dir(&root)
        .env("PATH", "/nonexistent")
        .env(RECORD_VAR, &tools.records);
    let _worker = Proc::spawn("worker dcc", command, farm.path());
    let info = farm.wait_for_info("worker dcc idle with its tools' versions", |info| {
        idle_with_versions(info, "dcc")
    });
    let owned = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, version)| ((*name).to_owned(), (*version).to_owned()))
            .collect()
    };
    assert_eq!(
        tools_of(&info, "dcc"),
        owned(&[
            ("hython", fake_dcc::HOUDINI_VERSION),
            ("mantra", ""),
            ("modo_cl", fake_dcc::MODO_VERSION),
            ("redshiftCmdLine", fake_dcc::REDSHIFT_VERSION),
            ("husk", ""),
        ])
    );
    let printed = stdout(&farm.ok(&["info"]));
    let row = printed
        .lines()
        .find(|line| line.starts_with("dcc "))
        .unwrap_or_else(|| panic!("no row for worker dcc:\n{printed}"));
    let expected = format!(
        "hython {}, mantra, modo_cl {}, redshiftCmdLine {}, husk",
        fake_dcc::HOUDINI_VERSION,
        fake_dcc::MODO_VERSION,
        fake_dcc::REDSHIFT_VERSION
    );
    assert!(row.contains(&expected), "{printed}");
    assert!(printed.contains("  tools  "), "a `tools` column: {printed}");
}

/// Guards issue 14 (item 7) with the real Blender: a worker that found it on PATH lists
/// `blender` with the version Blender printed (a number such as `3.4.1`).
#[test]
fn a_worker_with_blender_lists_its_version() {
    if !on_path("blender") {
        assert!(
            std::env::var_os("BUILDCAT_CI").is_none(),
            "BUILDCAT_CI is set but blender is not on PATH"
        );
        eprintln!("skipped: needs `blender` on PATH");
        return;
    }
    let farm = Farm::start();
    let _worker = farm.worker(&["--name", "b1"]);
    let info = farm.wait_for_info("worker b1 idle with its tools' versions", |info| {
        idle_with_versions(info, "b1")
    });
    let tools = tools_of(&info, "b1");
    let blender = tools
        .iter()
        .find(|(name, _)| name == "blender")
        .unwrap_or_else(|| panic!("no blender among {tools:?}"));
    assert!(
        blender.1.starts_with(|c: char| c.is_ascii_digit()),
        "blender's version {:?} does not start with a digit; `blender --version` says:\n{}",
        blender.1,
        Command::new("blender")
            .arg("--version")
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
            .unwrap_or_default()
    );
    let printed = stdout(&farm.ok(&["info"]));
    assert!(
        printed.contains(&format!("blender {}", blender.1)),
        "{printed}"
    );
}
