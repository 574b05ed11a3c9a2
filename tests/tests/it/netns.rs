//! Linux network namespaces standing in for hosts: one server host holding a bridge, and
//! any number of other hosts each joined to it by a veth pair, on a private subnet that
//! exists only inside the namespaces.
//!
//! ```text
//!   bc-PID-TAG-srv: br0 SUBNET.1 ─┬─ veth ── bc-PID-TAG-HOST1: eth0 SUBNET.11
//!                                 └─ veth ── bc-PID-TAG-HOST2: eth0 SUBNET.12 ...
//! ```
//! The names carry the test process's id and a tag, so tests running at the same time (and
//! concurrent runs) never collide. Needs root and `ip` (see [`missing_prerequisite`]).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::{PATIENCE, buildcat_command, describe, run_command};

/// Why tests in namespaces cannot run here, if they cannot: not root, or a tool missing.
pub fn missing_prerequisite() -> Option<String> {
    // SAFETY: `geteuid` has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root for network namespaces".to_owned());
    }
    for tool in ["ip", "sh"] {
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

/// The namespaces and links of one test; deleted on drop, panic or not.
#[derive(Debug)]
pub struct Network {
    /// The server host's namespace, which also holds the bridge.
    server: String,
    /// The server's address on the bridge.
    server_addr: String,
    /// The other hosts: their names as given and their namespaces.
    hosts: Vec<(String, String)>,
    /// The namespaces made so far, to delete on drop.
    made: Vec<String>,
}

impl Network {
    /// Makes a server host and one host per name in `hosts`, on `subnet` (the first three
    /// octets, e.g. `10.251.0`): the server is `SUBNET.1`, the hosts `SUBNET.11` onwards.
    pub fn new(tag: &str, subnet: &str, hosts: &[&str]) -> Network {
        let prefix = format!("bc-{}-{tag}", std::process::id());
        let mut net = Network {
            server: format!("{prefix}-srv"),
            server_addr: format!("{subnet}.1"),
            hosts: hosts
                .iter()
                .map(|host| ((*host).to_owned(), format!("{prefix}-{host}")))
                .collect(),
            made: Vec::new(),
        };
        let namespaces: Vec<String> = std::iter::once(net.server.clone())
            .chain(net.hosts.iter().map(|(_, namespace)| namespace.clone()))
            .collect();
        for namespace in &namespaces {
            ip(&["netns", "add", namespace]);
            net.made.push(namespace.clone());
            ip(&["-n", namespace, "link", "set", "lo", "up"]);
        }
        let server = net.server.as_str();
        ip(&["-n", server, "link", "add", "br0", "type", "bridge"]);
        let bridge_addr = format!("{}/24", net.server_addr);
        ip(&["-n", server, "addr", "add", &bridge_addr, "dev", "br0"]);
        ip(&["-n", server, "link", "set", "br0", "up"]);
        for (index, (_, namespace)) in net.hosts.iter().enumerate() {
            // The veth is made inside the server namespace with its peer moved straight into
            // the other one, so nothing appears in the namespace the tests run in.
            let port = format!("port{index}");
            ip(&[
                "-n", server, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", namespace,
            ]);
            ip(&["-n", server, "link", "set", &port, "master", "br0"]);
            ip(&["-n", server, "link", "set", &port, "up"]);
            let address = format!("{subnet}.{}/24", 11 + index);
            ip(&["-n", namespace, "addr", "add", &address, "dev", "eth0"]);
            ip(&["-n", namespace, "link", "set", "eth0", "up"]);
        }
        net
    }

    /// The server host's namespace.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The server's address on the bridge.
    pub fn server_addr(&self) -> &str {
        &self.server_addr
    }

    /// The namespace of host `name`; fails the test if there is no such host.
    #[track_caller]
    pub fn host(&self, name: &str) -> &str {
        self.hosts
            .iter()
            .find(|(host, _)| host == name)
            .map(|(_, namespace)| namespace.as_str())
            .unwrap_or_else(|| panic!("no host {name} in {self:?}"))
    }

    /// `ip netns exec NAMESPACE`, ready for the program and its arguments, with the same
    /// hygiene as every other buildcat command.
    pub fn exec(&self, namespace: &str) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", namespace])
            .stdin(Stdio::null());
        let template = buildcat_command(std::iter::empty::<&str>());
        for (name, value) in template.get_envs() {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        command
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for namespace in self.made.drain(..).rev() {
            let status = Command::new("ip")
                .args(["netns", "delete", &namespace])
                .status();
            if !status.is_ok_and(|status| status.success()) {
                eprintln!("could not delete network namespace {namespace}");
            }
        }
    }
}

/// Runs `ip ARGS`; fails the test with its output if it fails.
fn ip(args: &[&str]) {
    let mut command = Command::new("ip");
    command.args(args);
    let output = run_command(command, PATIENCE);
    assert!(
        output.status.success(),
        "ip {}\n{}",
        args.join(" "),
        describe(&output)
    );
}

/// Runs `f` on a thread that has joined network namespace `namespace`, so a probe can
/// connect from there without starting a process.
pub fn in_namespace<T: Send>(namespace: &str, f: impl FnOnce() -> T + Send) -> T {
    // Where `ip netns add` keeps its namespaces.
    let path = Path::new("/var/run/netns").join(namespace);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = File::open(&path)
                    .unwrap_or_else(|error| panic!("could not open {}: {error}", path.display()));
                // SAFETY: `file` is an open network-namespace file that outlives the call;
                // `setns` moves only this (short-lived) thread into the namespace.
                let result = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(
                    result,
                    0,
                    "could not join {namespace}: {}",
                    std::io::Error::last_os_error()
                );
                f()
            })
            .join()
            .expect("the namespace thread panicked")
    })
}
