//! The config file and `buildcat config` (issue 14, item 1): the file's settings are used
//! when no flag or environment variable gives them, `buildcat config` says where each came
//! from, a bad file is refused naming its line and key, TLS is turned on by environment
//! variables alone; and the completions and man page (item 9) that install beside it.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::harness::{
    Farm, PATIENCE, assert_success, buildcat_command, canonical, describe, json, run_command,
    stderr, stdout,
};

/// `buildcat ARGS` with `config` as its config file and `env` set, run to its end.
fn with_config(config: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = buildcat_command(args);
    command.env("BUILDCAT_CONFIG", config);
    for (name, value) in env {
        command.env(name, value);
    }
    run_command(command, PATIENCE)
}

/// One setting of `buildcat config --json`: its value and where it came from.
fn setting(report: &Value, key: &str) -> (String, String) {
    let entry = &report["settings"][key];
    let text = |field: &str| {
        entry[field]
            .as_str()
            .unwrap_or_else(|| panic!("no {field} for {key} in {report}"))
            .to_owned()
    };
    (text("value"), text("source"))
}

#[test]
fn the_config_file_is_used_unless_a_flag_or_the_environment_says_otherwise() {
    let farm = Farm::start();
    let config = farm.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "# a farm's settings\n[server]\nhost = \"127.0.0.1\"\nport = {}\n\n[farm]\nqueue = \"gpu\"\n",
            farm.port
        ),
    )
    .expect("could not write the config file");

    // No --port: the file's port reaches the farm.
    let output = with_config(&config, &[], &["info", "--json"]);
    assert_success(
        &output,
        "`buildcat info` with the port from the config file",
    );

    // A submission goes to the file's queue.
    let output = with_config(&config, &[], &["run", "--json", "--", "true"]);
    assert_success(
        &output,
        "`buildcat run` with the queue from the config file",
    );
    let number = json(&output)["number"].to_string();
    let status = farm.job(&number);
    assert_eq!(status["queue"], "gpu", "{status}");

    // Where each setting came from.
    let file = config.display().to_string();
    let report = json(&with_config(&config, &[], &["config", "--json"]));
    assert_eq!(report["file"], file.as_str(), "{report}");
    assert_eq!(
        setting(&report, "server.port"),
        (farm.port.to_string(), format!("file {file}"))
    );
    assert_eq!(setting(&report, "farm.queue").0, "gpu");
    assert_eq!(
        setting(&report, "tls.enabled"),
        ("false".to_owned(), "default".to_owned())
    );
    // The environment beats the file, and a flag beats both.
    let report = json(&with_config(
        &config,
        &[("BUILDCAT_PORT", "4000")],
        &["config", "--json"],
    ));
    assert_eq!(
        setting(&report, "server.port"),
        ("4000".to_owned(), "env BUILDCAT_PORT".to_owned())
    );
    let report = json(&with_config(
        &config,
        &[("BUILDCAT_PORT", "4000")],
        &["config", "--json", "--port", "5000"],
    ));
    assert_eq!(
        setting(&report, "server.port"),
        ("5000".to_owned(), "flag --port".to_owned())
    );
    // And really: the environment's port is where `info` goes (nothing listens there).
    let output = with_config(&config, &[("BUILDCAT_PORT", "1")], &["info"]);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        stderr(&output).contains("127.0.0.1:1"),
        "{}",
        describe(&output)
    );

    // The text form names the file too.
    let output = with_config(&config, &[], &["config"]);
    assert_success(&output, "`buildcat config`");
    let text = stdout(&output);
    assert!(text.contains(&format!("config file: {file}")), "{text}");
    assert!(text.contains("farm.queue"), "{text}");
}

#[test]
fn a_bad_config_file_is_refused_naming_its_line_and_key() {
    let dir = tempfile::tempdir().expect("could not make a temporary directory");
    let config = canonical(dir.path()).join("config.toml");
    let cases = [
        (
            "[server]\nhost = \"a\"\nhots = \"b\"\n",
            "line 3, key `server.hots`",
        ),
        ("[server]\nport = \"high\"\n", "line 2, key `server.port`"),
        (
            "[farm]\nroot = \"/x\"\n\n[wroker]\nqueues = []\n",
            "line 4, key `wroker`",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&config, text).expect("could not write the config file");
        let output = with_config(&config, &[], &["info"]);
        assert!(!output.status.success(), "{}", describe(&output));
        let message = stderr(&output);
        assert!(
            message.contains(&config.display().to_string()) && message.contains(expected),
            "{text:?} should be refused with {expected:?}\n{}",
            describe(&output)
        );
    }
    // A file BUILDCAT_CONFIG names must exist.
    let missing = canonical(dir.path()).join("missing.toml");
    let output = with_config(&missing, &[], &["info"]);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        stderr(&output).contains("missing.toml") && stderr(&output).contains("BUILDCAT_CONFIG"),
        "{}",
        describe(&output)
    );
}

#[test]
fn tls_is_turned_on_by_the_environment_alone() {
    let keys_dir = tempfile::tempdir().expect("could not make a temporary directory");
    let keys = canonical(keys_dir.path());
    let keygen = |args: &[&str]| {
        let mut command = buildcat_command(args);
        command.current_dir(&keys);
        assert_success(&run_command(command, PATIENCE), "keygen");
    };
    keygen(&["server-keygen", "--name", "127.0.0.1"]);
    keygen(&["client-keygen", "--name", "artist"]);
    let path = |name: &str| keys.join(name).display().to_string();
    let farm = Farm::start_with(&[
        "--tls-cert",
        &path("server.cert"),
        "--tls-key",
        &path("server.key"),
        "--client-ca",
        &path("client.cert"),
    ]);
    // Plain: refused.
    let output = farm.run(&["info"]);
    assert!(!output.status.success(), "{}", describe(&output));
    // The files by environment: served.
    let mut command = farm.client.command(&["info", "--json"]);
    command
        .env("BUILDCAT_TLS_CA", path("server.cert"))
        .env("BUILDCAT_TLS_CERT", path("client.cert"))
        .env("BUILDCAT_TLS_KEY", path("client.key"));
    assert_success(
        &run_command(command, PATIENCE),
        "`info` with TLS files by environment",
    );
    // BUILDCAT_TLS=1 alone takes the files from ~/.buildcat/.
    let home = tempfile::tempdir().expect("could not make a temporary directory");
    let dot = home.path().join(".buildcat");
    std::fs::create_dir_all(&dot).expect("could not make ~/.buildcat");
    for name in ["server.cert", "client.cert", "client.key"] {
        std::fs::copy(keys.join(name), dot.join(name)).expect("could not copy a key");
    }
    let mut command = farm.client.command(&["info", "--json"]);
    command.env("HOME", home.path()).env("BUILDCAT_TLS", "1");
    assert_success(
        &run_command(command, PATIENCE),
        "`info` with BUILDCAT_TLS=1",
    );
}

#[test]
fn bash_completions_parse_and_the_man_page_names_the_commands() {
    let output = run_command(buildcat_command(["completions", "bash"]), PATIENCE);
    assert_success(&output, "`buildcat completions bash`");
    let script = stdout(&output);
    assert!(script.contains("blender-render"), "{script}");
    let dir = tempfile::tempdir().expect("could not make a temporary directory");
    let file = dir.path().join("buildcat.bash");
    std::fs::write(&file, &script).expect("could not write the script");
    let mut bash = Command::new("bash");
    bash.arg("-n").arg(&file).stdin(Stdio::null());
    let checked = run_command(bash, PATIENCE);
    assert_success(&checked, "`bash -n` of the completion script");
    for shell in ["zsh", "fish", "powershell"] {
        let output = run_command(buildcat_command(["completions", shell]), PATIENCE);
        assert_success(&output, &format!("`buildcat completions {shell}`"));
        assert!(stdout(&output).contains("worker-info"), "{shell}");
    }

    let output = run_command(buildcat_command(["man"]), PATIENCE);
    assert_success(&output, "`buildcat man`");
    let page = stdout(&output);
    assert!(page.contains(".TH buildcat 1"), "{page}");
    for command in [
        "server",
        "worker",
        "blender\\-render",
        "completions",
        "config",
    ] {
        assert!(
            page.contains(command),
            "the man page lacks {command}\n{page}"
        );
    }
}
