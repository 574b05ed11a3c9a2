//! A secure farm (README.md, "A secure farm"): keys and certificates made by `buildcat`
//! itself, a server that requires TLS with client certificates, workers and clients that
//! present theirs, and a clear one-line refusal for every peer that does not belong: a
//! stranger's certificate, no certificate, an expired one, a name the server's certificate
//! does not carry, and TLS spoken to a server without it; the web page and HTTP API served
//! over HTTPS with the server's certificate. Also the multi-host guide in network namespaces
//! with TLS on.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::{
    Client, Farm, PATIENCE, Proc, assert_success, buildcat_command, canonical, describe, free_port,
    json, run_command, stderr, stdout, text, worker,
};

/// Runs `buildcat ARGS` in `dir` with umask 022, so the modes of the files it makes are
/// the ones it asks for, whatever the umask of the shell running the tests.
fn buildcat_in(dir: &Path, args: &[&str]) -> Output {
    let mut command = buildcat_command(args);
    command.current_dir(dir);
    // SAFETY: the closure runs in the child between fork and exec and only calls `umask`,
    // which is async-signal-safe and cannot fail.
    unsafe {
        command.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    run_command(command, PATIENCE)
}

/// Runs `buildcat ARGS` in `dir`; fails the test unless it succeeds.
#[track_caller]
fn keygen(dir: &Path, args: &[&str]) {
    let output = buildcat_in(dir, args);
    assert_success(&output, &format!("`buildcat {}`", args.join(" ")));
}

/// The permission bits of `path`.
#[track_caller]
fn mode(path: &Path) -> u32 {
    let metadata = std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("could not stat {}: {error}", path.display()));
    metadata.permissions().mode() & 0o777
}

/// Reads `path` as bytes; fails the test if it cannot.
#[track_caller]
fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|error| panic!("could not read {}: {error}", path.display()))
}

/// The keys of one farm, in one directory: `server.*` at the top, each client's
/// `client.*` in a folder of its own.
#[derive(Debug)]
pub(crate) struct Keys {
    /// Where they are.
    pub(crate) dir: PathBuf,
}

impl Keys {
    /// A server key pair named `server_name` and a client key pair for each of `clients`
    /// (each in its folder, with the folder's name as its certificate's name), made with
    /// `server-keygen` and `client-keygen`.
    pub(crate) fn make(dir: PathBuf, server_name: &str, clients: &[&str]) -> Keys {
        keygen(&dir, &["server-keygen", "--name", server_name]);
        for client in clients {
            std::fs::create_dir_all(dir.join(client)).expect("could not create a key folder");
            keygen(&dir, &["client-keygen", "--dir", client, "--name", client]);
        }
        Keys { dir }
    }

    /// A file of the keys, as text for a command line.
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The server's `--tls-cert`, `--tls-key` and `--client-ca` flags, with `clients.pem`
    /// holding the certificates of `clients` (folders under the keys' directory).
    pub(crate) fn server_flags(&self, clients: &[&str]) -> Vec<String> {
        let mut pem = Vec::new();
        for client in clients {
            pem.extend(read(&self.dir.join(client).join("client.cert")));
        }
        std::fs::write(self.dir.join("clients.pem"), pem).expect("could not write clients.pem");
        [
            "--tls-cert",
            &self.path("server.cert"),
            "--tls-key",
            &self.path("server.key"),
            "--client-ca",
            &self.path("clients.pem"),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// The `--tls-ca`, `--tls-cert` and `--tls-key` flags of client `client`.
    fn client_flags(&self, client: &str) -> Vec<String> {
        [
            "--tls-ca",
            &self.path("server.cert"),
            "--tls-cert",
            &self.path(&format!("{client}/client.cert")),
            "--tls-key",
            &self.path(&format!("{client}/client.key")),
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

/// `args` followed by `flags`, as a command line for [`Client::run`].
fn with<'a>(args: &[&'a str], flags: &'a [String]) -> Vec<&'a str> {
    args.iter()
        .copied()
        .chain(flags.iter().map(String::as_str))
        .collect()
}

/// Fails the test unless `output` is a failure (exit code 1) with one line on stderr, and
/// returns that line.
#[track_caller]
fn one_line_failure(output: &Output, what: &str) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "{what}\n{}",
        describe(output)
    );
    let message = stderr(output);
    assert_eq!(
        message.lines().count(),
        1,
        "{what}: not one line\n{message}"
    );
    assert!(message.starts_with("error: "), "{what}: {message}");
    message
}

/// Guards `server-keygen`, `client-keygen` and `certificate-info`: the three files each,
/// private ones (`.key`, and `.pem` which holds the key too) readable by their owner only,
/// certificates by all; an existing key is kept unless `--force` is given (the refusal
/// names the file), and replaced with it; `certificate-info` shows the subject, the name as
/// a subject alternative name, the validity and the SHA-256 fingerprint.
#[test]
fn keygen_makes_owner_only_keys_keeps_existing_ones_and_certificate_info_reads_them() {
    let farm = Farm::without_server();
    let dir = farm.make_dir("keys");
    keygen(&dir, &["server-keygen", "--name", "127.0.0.1"]);
    for client in ["alice", "bob"] {
        std::fs::create_dir(dir.join(client)).expect("could not create a key folder");
        let name = format!("{client}-workstation");
        keygen(&dir, &["client-keygen", "--dir", client, "--name", &name]);
    }
    for (folder, stem) in [(".", "server"), ("alice", "client"), ("bob", "client")] {
        for (extension, expected) in [("key", 0o600), ("pem", 0o600), ("cert", 0o644)] {
            let path = dir.join(folder).join(format!("{stem}.{extension}"));
            assert_eq!(mode(&path), expected, "{}", path.display());
        }
    }
    assert_ne!(
        read(&dir.join("alice/client.cert")),
        read(&dir.join("bob/client.cert"))
    );

    let files = ["server.key", "server.cert", "server.pem"].map(|name| dir.join(name));
    let before: Vec<Vec<u8>> = files.iter().map(|path| read(path)).collect();
    let again = buildcat_in(&dir, &["server-keygen", "--name", "127.0.0.1"]);
    let message = one_line_failure(&again, "a second server-keygen");
    assert!(
        message.contains("server.key already exists") && message.contains("--force"),
        "{message}"
    );
    let after: Vec<Vec<u8>> = files.iter().map(|path| read(path)).collect();
    assert!(before == after, "a refused server-keygen changed the files");

    keygen(&dir, &["server-keygen", "--name", "127.0.0.1", "--force"]);
    for (path, old) in files.iter().zip(&before) {
        assert_ne!(&read(path), old, "{} was not replaced", path.display());
    }
    assert_eq!(mode(&files[0]), 0o600);
    assert_eq!(mode(&files[2]), 0o600);

    let info = buildcat_in(&dir, &["certificate-info", "server.cert"]);
    assert_success(&info, "`buildcat certificate-info server.cert`");
    let shown = stdout(&info);
    for line in [
        "subject: CN=127.0.0.1\n",
        "subject alternative names: IP:127.0.0.1\n",
        "validity: valid now\n",
    ] {
        assert!(shown.contains(line), "no {line:?} in:\n{shown}");
    }
    let field = |name: &str| {
        shown
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name:?} line in:\n{shown}"))
            .to_owned()
    };
    let year = |date: &str| {
        date.split_whitespace()
            .find_map(|word| word.parse::<u32>().ok().filter(|&year| year > 1999))
            .unwrap_or_else(|| panic!("no year in {date:?}"))
    };
    let (not_before, not_after) = (field("not before: "), field("not after: "));
    assert_eq!(year(&not_after), year(&not_before) + 1, "{shown}");
    let fingerprint = field("sha256 fingerprint: ");
    let pairs: Vec<&str> = fingerprint.split(':').collect();
    assert!(
        pairs.len() == 32
            && pairs
                .iter()
                .all(|pair| pair.len() == 2 && pair.chars().all(|c| c.is_ascii_hexdigit())),
        "{fingerprint}"
    );
    // The fingerprint is the certificate's, as openssl computes it, where openssl is.
    if on_path("openssl") {
        let mut command = Command::new("openssl");
        command.args(["x509", "-noout", "-fingerprint", "-sha256", "-in"]);
        command.arg(&files[1]);
        let output = run_command(command, PATIENCE);
        assert_success(&output, "openssl x509 -fingerprint");
        assert!(
            stdout(&output)
                .trim_end()
                .ends_with(&format!("={fingerprint}")),
            "openssl says {}, buildcat {fingerprint}",
            stdout(&output)
        );
    }
}

/// Whether `program` is on PATH.
fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", "command -v \"$1\"", "sh", program])
        .output()
        .is_ok_and(|output| output.status.success())
}

/// The openssl configuration for [`expired_client`]: a self-signed end-entity certificate
/// (not a CA) named `expired`, with validity dates given on the command line.
const EXPIRED_CONFIG: &str = "\
[ca]
default_ca = expired_ca
[expired_ca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any_name
unique_subject = no
copy_extensions = none
[any_name]
commonName = supplied
[client]
basicConstraints = critical,CA:FALSE
subjectAltName = DNS:expired
[req]
distinguished_name = subject
prompt = no
[subject]
CN = expired
";

/// Makes `dir/client.cert` and `dir/client.key`: a client certificate that expired in
/// 2020, which `client-keygen` cannot make (it refuses `--days 0`). Made with `openssl ca
/// -selfsign -startdate -enddate`, which every openssl since 1.1 has; `false` when openssl
/// is not installed (`.ci/run` installs it).
fn expired_client(dir: &Path) -> bool {
    if !on_path("openssl") {
        return false;
    }
    std::fs::create_dir_all(dir).expect("could not create the expired key's folder");
    std::fs::write(dir.join("openssl.cnf"), EXPIRED_CONFIG).expect("could not write");
    std::fs::write(dir.join("index.txt"), "").expect("could not write");
    std::fs::write(dir.join("serial"), "01\n").expect("could not write");
    let steps: [&[&str]; 2] = [
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-config",
            "openssl.cnf",
        ],
        &[
            "ca",
            "-batch",
            "-config",
            "openssl.cnf",
            "-selfsign",
            "-keyfile",
            "client.key",
            "-in",
            "client.csr",
            "-out",
            "client.cert",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200102000000Z",
            "-extensions",
            "client",
            "-notext",
        ],
    ];
    for args in steps {
        let mut command = Command::new("openssl");
        command.args(args).current_dir(dir);
        let output = run_command(command, PATIENCE);
        assert_success(&output, &format!("openssl {}", args.join(" ")));
    }
    true
}

/// `worker-info --json` with a trusted client's `flags`: answered by worker `render-node`;
/// fails the test, with the logs, otherwise.
#[track_caller]
fn trusted_worker_info(farm: &Farm, flags: &[String], render_node: &Proc) {
    let output = farm.run(&with(&["worker-info", "--json"], flags));
    assert!(
        output.status.success(),
        "worker-info with a trusted certificate failed\n{}\n{}\n{}",
        describe(&output),
        render_node.logs(),
        farm.server_logs()
    );
    assert_eq!(text(&json(&output), "/worker/name"), "render-node");
}

/// Guards TLS with mutual certificates on one host: a server started with `--tls-cert`,
/// `--tls-key` and `--client-ca` serves a worker and a client that present certificates in
/// `--client-ca`, and refuses, each with one line saying why: a certificate not in
/// `--client-ca`, no certificate at all (a plain client, and a plain worker, which exits),
/// an expired certificate, and a client that dials a name the server's certificate does not
/// carry. The trusted worker and client keep working throughout.
#[test]
fn a_tls_farm_serves_its_certificates_and_refuses_every_other_peer_with_one_line() {
    let keys_dir = tempfile::Builder::new()
        .prefix("buildcat-it-keys-")
        .tempdir()
        .expect("could not make a temporary directory");
    let keys = Keys::make(
        canonical(keys_dir.path()),
        "127.0.0.1",
        &["render-node", "artist", "stranger"],
    );
    let expired = expired_client(&keys.dir.join("expired"));
    if !expired {
        assert!(
            std::env::var_os("BUILDCAT_CI").is_none(),
            "BUILDCAT_CI is set but openssl, which makes the expired certificate, is not on PATH"
        );
        eprintln!("the expired-certificate case is skipped: needs `openssl` on PATH");
    }
    // The expired certificate is trusted, so it is refused for its dates alone.
    let mut trusted = vec!["render-node", "artist"];
    if expired {
        trusted.push("expired");
    }
    let server_flags = keys.server_flags(&trusted);
    let mut farm = Farm::start_with(&with(&[], &server_flags));

    let node_flags = keys.client_flags("render-node");
    let mut render_node = farm.worker(&with(&["--name", "render-node"], &node_flags));
    let artist = keys.client_flags("artist");
    trusted_worker_info(&farm, &artist, &render_node);

    // A certificate that is not in --client-ca.
    let stranger = keys.client_flags("stranger");
    let output = farm.run(&with(&["worker-info"], &stranger));
    let message = one_line_failure(&output, "a stranger's certificate");
    assert!(
        message.contains("refused this program's certificate") && message.contains("--client-ca"),
        "{message}"
    );

    // No certificate: a plain client, and a plain worker, which gives up at once.
    let output = farm.run(&["worker-info"]);
    let message = one_line_failure(&output, "a plain client");
    assert!(message.contains("the server requires TLS"), "{message}");
    let mut plain = farm.worker(&["--name", "plain"]);
    let status = plain.wait_exit(PATIENCE);
    assert!(!status.success(), "{}", plain.logs());
    let log = plain.log();
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("the server requires TLS"),
        "{}",
        plain.logs()
    );

    // An expired certificate, although --client-ca has it.
    if expired {
        let output = farm.run(&with(&["worker-info"], &keys.client_flags("expired")));
        let message = one_line_failure(&output, "an expired certificate");
        assert!(message.contains("has expired"), "{message}");
    }

    // A name the server's certificate does not carry: it says IP 127.0.0.1.
    let by_name = Client::wrapped(&[], "localhost", farm.port);
    let output = by_name.run(&with(&["worker-info"], &artist));
    let message = one_line_failure(&output, "dialing localhost");
    assert!(
        message.contains("localhost") && message.contains("not valid for the name"),
        "{message}"
    );

    render_node.assert_running();
    farm.server().assert_running();
    trusted_worker_info(&farm, &artist, &render_node);
    let info = farm.run(&with(&["info", "--json"], &artist));
    assert_success(&info, "`buildcat info --json` with a trusted certificate");
    let info = json(&info);
    assert!(worker(&info, "plain").is_none(), "{info:#}");
    assert!(worker(&info, "render-node").is_some(), "{info:#}");
}

/// One HTTPS request to `127.0.0.1:port` trusting only `ca`: the status and body, or
/// what went wrong at the TLS or socket level.
pub(crate) fn https_get(port: u16, ca: &Path, path: &str) -> Result<(u16, String), String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use std::io::{Read, Write};

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| e.to_string())? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
        .map_err(|e| e.to_string())?;
    let socket = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(PATIENCE))
        .map_err(|e| e.to_string())?;
    let mut stream = rustls::StreamOwned::new(connection, socket);
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    if let Err(error) = stream.read_to_end(&mut answer) {
        // A peer that closes without TLS's close_notify still sent the whole answer.
        if error.kind() != std::io::ErrorKind::UnexpectedEof || answer.is_empty() {
            return Err(error.to_string());
        }
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {answer:?}"))?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let body = if head.to_lowercase().contains("transfer-encoding: chunked") {
        crate::http::unchunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

/// Guards the HTTP shell of a TLS server (issue 12): the web page, the API and the metrics
/// are served over HTTPS with the server's own certificate, which a client that trusts
/// `server.cert` accepts for the address; the start line names `https://`; plain HTTP on
/// that port gets no answer.
#[test]
fn a_tls_server_serves_its_web_page_and_api_over_https_with_its_certificate() {
    let keys_dir = tempfile::Builder::new()
        .prefix("buildcat-it-keys-")
        .tempdir()
        .expect("could not make a temporary directory");
    let keys = Keys::make(canonical(keys_dir.path()), "127.0.0.1", &["artist"]);
    let server_flags = keys.server_flags(&["artist"]);
    let http = free_port();
    let addr = format!("127.0.0.1:{http}");
    let mut farm = Farm::start_with(&with(&["--http", &addr], &server_flags));
    let ca = keys.dir.join("server.cert");

    let (status, body) = https_get(http, &ca, "/api/v1/info")
        .unwrap_or_else(|error| panic!("HTTPS to the API failed: {error}\n{}", farm.server_logs()));
    assert_eq!(status, 200, "{body}");
    let info: serde_json::Value = serde_json::from_str(body.trim())
        .unwrap_or_else(|error| panic!("not JSON ({error}): {body}"));
    assert!(info["workers"].is_array(), "{info:#}");
    let (status, page) = https_get(http, &ca, "/").expect("HTTPS to the page failed");
    assert_eq!(status, 200);
    assert!(page.contains("<html"), "{page}");
    let (status, metrics) = https_get(http, &ca, "/metrics").expect("HTTPS to /metrics failed");
    assert_eq!(status, 200);
    assert!(metrics.contains("buildcat_"), "{metrics}");

    // Plain HTTP to the HTTPS port is not served.
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", http)).expect("could not connect");
    socket
        .set_read_timeout(Some(PATIENCE))
        .expect("a read timeout");
    std::io::Write::write_all(
        &mut socket,
        b"GET /api/v1/info HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .expect("could not send");
    let mut plain = Vec::new();
    let _ = std::io::Read::read_to_end(&mut socket, &mut plain);
    assert!(
        !plain.starts_with(b"HTTP/"),
        "plain HTTP was answered: {}",
        String::from_utf8_lossy(&plain)
    );

    let logs = farm.server_logs();
    assert!(
        logs.contains(&format!("web page on https://{addr}/")),
        "the start line does not name https\n{logs}"
    );
    farm.server().assert_running();
}

/// Guards the message of a TLS client dialing a server that runs without TLS: one line
/// that says the server is running without TLS and to leave out the `--tls` flags.
#[test]
fn a_tls_client_is_told_when_the_server_does_not_speak_tls() {
    let mut farm = Farm::start();
    let keys = Keys::make(farm.make_dir("keys"), "127.0.0.1", &["artist"]);
    let output = farm.run(&with(&["worker-info"], &keys.client_flags("artist")));
    let message = one_line_failure(&output, "TLS to a plain server");
    assert!(
        message.contains("without TLS") && message.contains("leave out the --tls flags"),
        "{message}"
    );
    farm.server().assert_running();
}

/// The multi-host guide with TLS on, in network namespaces (Linux only).
#[cfg(target_os = "linux")]
mod multi_host {
    use std::collections::BTreeSet;
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use serde_json::Value;

    use super::{Keys, with};
    use crate::harness::{Client, Farm, PATIENCE, Proc, buildcat, describe, json, text, worker};
    use crate::netns::{self, Network, in_namespace};

    /// Polls `buildcat info --json` (through `client`, with `flags`) until `condition` holds;
    /// fails the test with the last output and the server's logs after [`PATIENCE`].
    fn wait_for_info(
        client: &Client,
        flags: &[String],
        server: &Proc,
        what: &str,
        condition: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let output = client.run(&with(&["info", "--json"], flags));
            let info = output
                .status
                .success()
                .then(|| serde_json::from_slice::<Value>(&output.stdout).ok())
                .flatten();
            if let Some(info) = info.filter(|info| condition(info)) {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "the farm did not reach `{what}` within {PATIENCE:?}\n{}\n{}",
                describe(&output),
                server.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Guards the multi-host guide with TLS on: a server bound to its bridge address with a
    /// certificate for that address, two workers on other hosts and a client on a fourth, each
    /// with its own client certificate; both workers register and answer `worker-info`, and
    /// the server does not warn about listening beyond loopback without TLS. Needs root
    /// (skipped otherwise, except under `BUILDCAT_CI`).
    #[test]
    fn the_multi_host_guide_works_with_tls() {
        if let Some(reason) = netns::missing_prerequisite() {
            assert!(
                std::env::var_os("BUILDCAT_CI").is_none(),
                "BUILDCAT_CI is set but the multi-host TLS test cannot run: {reason}"
            );
            eprintln!("skipped: {reason}");
            return;
        }
        let mut farm = Farm::without_server();
        // SQLite even under the PostgreSQL switch: the server runs in a network namespace
        // of its own, where the shared cluster's loopback address is not reachable.
        farm.set_storage(&farm.path().join("buildcat.db"));
        // Declared before the processes, so it is dropped after them: namespaces go last.
        let net = Network::new("tls", "10.251.0", &["w1", "w2", "cli"]);
        let addr = net.server_addr().to_owned();
        let keys = Keys::make(farm.make_dir("keys"), &addr, &["w1", "w2", "cli"]);

        let mut server_command = net.exec(net.server());
        server_command
            .arg(buildcat())
            .args(["server", "--bind", &addr, "--storage"])
            .arg(farm.storage())
            .args(keys.server_flags(&["w1", "w2", "cli"]));
        let mut server = Proc::spawn("server on the bridge with tls", server_command, farm.path());
        let on_bridge = format!("{addr}:{}", buildcat_proto::DEFAULT_PORT);
        let reached = server.wait_until("accepting connections on the bridge", || {
            in_namespace(net.host("cli"), || TcpStream::connect(&on_bridge).is_ok())
        });
        if let Err(logs) = reached {
            panic!("the server exited during startup\n{logs}");
        }

        let root = farm.make_dir("shared");
        let mut workers = Vec::new();
        for name in ["w1", "w2"] {
            let mut command = net.exec(net.host(name));
            command
                .arg(buildcat())
                .args(["worker", "--host", &addr, "--name", name])
                .args(keys.client_flags(name))
                .current_dir(&root);
            workers.push(Proc::spawn(
                &format!("worker {name} with tls"),
                command,
                farm.path(),
            ));
        }

        let client = Client::wrapped(
            &["ip", "netns", "exec", net.host("cli")],
            &addr,
            buildcat_proto::DEFAULT_PORT,
        );
        let flags = keys.client_flags("cli");
        wait_for_info(
            &client,
            &flags,
            &server,
            "both workers registered",
            |info| ["w1", "w2"].iter().all(|name| worker(info, name).is_some()),
        );

        let mut answered = BTreeSet::new();
        for _ in 0..20 {
            if answered.len() == 2 {
                break;
            }
            for process in &mut workers {
                process.assert_running();
            }
            let output = client.run(&with(&["worker-info", "--json"], &flags));
            assert!(
                output.status.success(),
                "worker-info from the client host failed\n{}\n{}",
                describe(&output),
                server.logs()
            );
            answered.insert(text(&json(&output), "/worker/name").to_owned());
        }
        assert_eq!(
            answered,
            BTreeSet::from(["w1".to_owned(), "w2".to_owned()]),
            "not every worker answered in 20 jobs"
        );
        server.assert_running();
        assert!(
            !server
                .log()
                .contains("listening beyond this host without TLS"),
            "the server warned about TLS although it has it\n{}",
            server.logs()
        );
    }
}
