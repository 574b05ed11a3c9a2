//! The multi-host guide (multiple-workers.rst) for real: Linux network namespaces joined by
//! a bridge stand in for a server host, two worker hosts and a client host.
//!
//! ```text
//!   bc-PID-guide-srv: br0 10.250.0.1 ─┬─ veth ── bc-PID-guide-w1:  eth0 10.250.0.11 (worker-1)
//!                                     ├─ veth ── bc-PID-guide-w2:  eth0 10.250.0.12 (worker-2)
//!                                     └─ veth ── bc-PID-guide-cli: eth0 10.250.0.13
//! ```
//! Each worker also gets its own hostname (a UTS namespace) and its own path to the one
//! shared directory (a bind mount in a private mount namespace), so that, as on real hosts,
//! each reports its own host and its own root. Needs root and `ip`; skipped otherwise,
//! except under CI (`BUILDCAT_CI`), where a skip would hide a regression.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::process::Command;

use serde_json::Value;

use crate::harness::{Client, Farm, Proc, buildcat, describe, json, stderr, text, worker};
use crate::netns::{self, Network, in_namespace};

/// The server's address on the bridge (a private range that exists only inside the
/// namespaces).
const SERVER_ADDR: &str = "10.250.0.1";

/// The port of the second server, which listens on loopback only. The namespaces are
/// fresh, so any port is free there but 2229, where the first server serves its HTTP API.
const LOOPBACK_ONLY_PORT: u16 = 2230;

/// Guards the multi-host guide: `buildcat server --bind ADDR` on one host, `cd ROOT &&
/// buildcat worker --host ADDR` on two others, `buildcat worker-info --host ADDR` from a
/// fourth, all on the default port; each worker answers with its own host name and its own
/// root. Also guards the loopback default: a server started without `--bind` cannot be
/// reached from another host.
#[test]
fn the_multi_host_guide_works_across_network_namespaces() {
    if let Some(reason) = missing_prerequisite() {
        assert!(
            std::env::var_os("BUILDCAT_CI").is_none(),
            "BUILDCAT_CI is set but the multi-host test cannot run: {reason}"
        );
        eprintln!("skipped: {reason}");
        return;
    }
    let farm = Farm::without_server();
    // Declared before the processes, so it is dropped after them: namespaces go last.
    let net = Network::new("guide", "10.250.0", &["w1", "w2", "cli"]);
    let shared = farm.make_dir("shared");
    std::fs::write(shared.join("scene.hip"), b"shared storage").expect("could not write");

    let storage = farm.path().join("multihost.db");
    let mut server_command = net.exec(net.server());
    server_command
        .arg(buildcat())
        .args(["server", "--bind", SERVER_ADDR, "--storage"])
        .arg(&storage);
    let mut server = Proc::spawn("server on the bridge", server_command, farm.path());
    let on_bridge = format!("{SERVER_ADDR}:{}", buildcat_proto::DEFAULT_PORT);
    let reached = server.wait_until("accepting connections on the bridge", || {
        in_namespace(net.host("cli"), || TcpStream::connect(&on_bridge).is_ok())
    });
    if let Err(logs) = reached {
        panic!("the server exited during startup\n{logs}");
    }

    let hosts = [
        ("w1", "worker-1", net.host("w1")),
        ("w2", "worker-2", net.host("w2")),
    ];
    let mut workers = Vec::new();
    let mut roots = BTreeMap::new();
    for (name, host, namespace) in hosts {
        let root = farm.make_dir(&format!("{host}-mount"));
        roots.insert(name, (host, root.display().to_string()));
        let mut command = net.exec(namespace);
        // The mount and the host name exist only in the worker's own namespaces; arguments
        // go through "$@", never pasted into the script.
        command
            .args(["unshare", "--uts", "--mount", "sh", "-c"])
            .arg(concat!(
                "hostname \"$1\" && mount --bind \"$2\" \"$3\" && cd \"$3\" && ",
                "exec \"$4\" worker --host \"$5\" --name \"$6\""
            ))
            .arg("sh")
            .args([host.as_ref(), shared.as_os_str(), root.as_os_str()])
            .arg(buildcat())
            .args([SERVER_ADDR, name]);
        workers.push(Proc::spawn(&format!("worker {name}"), command, farm.path()));
    }

    let client = Client::wrapped(
        &["ip", "netns", "exec", net.host("cli")],
        SERVER_ADDR,
        buildcat_proto::DEFAULT_PORT,
    );
    client.wait_for_info(&server, "both workers registered", |info| {
        roots.keys().all(|name| worker(info, name).is_some())
    });
    let info = client.info(&server);
    for (name, (host, root)) in &roots {
        let listed = worker(&info, name).expect("listed");
        assert_eq!(listed["host"], *host, "{info:#}");
        assert_eq!(listed["root"], *root, "{info:#}");
    }

    let mut answered: BTreeMap<String, Value> = BTreeMap::new();
    for _ in 0..20 {
        if answered.len() == roots.len() {
            break;
        }
        for process in &mut workers {
            process.assert_running();
        }
        let output = client.run(&["worker-info", "--json"]);
        assert!(
            output.status.success(),
            "worker-info from the client host failed\n{}\n{}",
            describe(&output),
            server.logs()
        );
        let report = json(&output);
        answered.insert(text(&report, "/worker/name").to_owned(), report);
    }
    assert_eq!(
        answered.keys().map(String::as_str).collect::<Vec<_>>(),
        roots.keys().copied().collect::<Vec<_>>(),
        "not every worker answered in 20 jobs"
    );
    for (name, (host, root)) in &roots {
        let report = &answered[*name];
        assert_eq!(text(report, "/os/host"), *host, "{report:#}");
        assert_eq!(text(report, "/worker/root"), root, "{report:#}");
    }

    // A server started without `--bind` listens on loopback only: reachable on its own host,
    // refused from another.
    let loopback_storage = farm.path().join("loopback.db");
    let port = LOOPBACK_ONLY_PORT.to_string();
    let mut loopback_command = net.exec(net.server());
    loopback_command
        .arg(buildcat())
        .args(["server", "--port", &port, "--storage"])
        .arg(&loopback_storage);
    let mut loopback = Proc::spawn("server on loopback", loopback_command, farm.path());
    let reached = loopback.wait_until("accepting connections on loopback", || {
        in_namespace(net.server(), || {
            TcpStream::connect(("127.0.0.1", LOOPBACK_ONLY_PORT)).is_ok()
        })
    });
    if let Err(logs) = reached {
        panic!("the loopback server exited during startup\n{logs}");
    }
    let on_its_host = Client::wrapped(
        &["ip", "netns", "exec", net.server()],
        "127.0.0.1",
        LOOPBACK_ONLY_PORT,
    );
    let output = on_its_host.run(&["info", "--json"]);
    assert!(output.status.success(), "{}", describe(&output));
    let from_elsewhere = Client::wrapped(
        &["ip", "netns", "exec", net.host("cli")],
        SERVER_ADDR,
        LOOPBACK_ONLY_PORT,
    );
    let output = from_elsewhere.run(&["worker-info", "--timeout", "5"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "could not connect to the buildcat server at {SERVER_ADDR}:{LOOPBACK_ONLY_PORT}: connection refused"
        )),
        "{message}"
    );
    loopback.assert_running();
    server.assert_running();
}

/// Why this test cannot run here, if it cannot: the namespaces' own needs, plus the tools
/// that give each worker host its own name and mount.
fn missing_prerequisite() -> Option<String> {
    if let Some(reason) = netns::missing_prerequisite() {
        return Some(reason);
    }
    for tool in ["unshare", "mount", "hostname"] {
        let found = Command::new("sh")
            .args(["-c", "command -v \"$1\"", "sh", tool])
            .output()
            .is_ok_and(|output| output.status.success());
        if !found {
            return Some(format!("needs `{tool}` on PATH"));
        }
    }
    None
}
