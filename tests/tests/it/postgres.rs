//! Servers sharing a PostgreSQL store (issue 17): one active, one standing by; the standby
//! takes over when the active one dies, losing no acknowledged job and running none twice;
//! a server that lost its place and comes back has its writes refused and steps down; a
//! database written by a newer buildcat is refused.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use crate::harness::{
    Client, PATIENCE, Postgres, Proc, Sleeper, TestCa, buildcat_command, describe, free_port,
    job_number, poll_until, stderr, task_handle,
};

/// Starts `buildcat server` on `port` with `url` as its storage.
fn server(name: &str, port: u16, url: &str, dir: &Path) -> Proc {
    let command = buildcat_command([
        "server",
        "--port",
        &port.to_string(),
        "--storage",
        url,
        "--no-http",
    ]);
    Proc::spawn(name, command, dir)
}

/// The view of `handle` (`status HANDLE --json`) through `client`, if it answers.
fn job(client: &Client, handle: &str) -> Option<Value> {
    let output = client.run(&["status", handle, "--json"]);
    output
        .status
        .success()
        .then(|| serde_json::from_slice(&output.stdout).ok())
        .flatten()
}

/// Guards issue 17's takeover: with a worker running a job and a submitter submitting,
/// the active server is killed with SIGKILL; the standby serves within the harness's
/// patience, every acknowledged job is there and finishes, each task with one attempt (the
/// running one reclaimed by its worker, not run again).
#[test]
fn the_standby_takes_over_from_a_killed_active_server_losing_and_repeating_nothing() {
    let Some(cluster) = Postgres::start_or_skip("standby takeover") else {
        return;
    };
    let url = cluster.create_database("takeover");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (port_a, port_b) = (free_port(), free_port());
    let mut active = server("server a", port_a, &url, dir.path());
    active.wait_for_log("active server of the database");
    let mut standby = server("server b", port_b, &url, dir.path());
    standby.wait_for_log("standby: waiting for the active server");

    // The standby refuses clients, naming the active server.
    let only_b = Client::local(port_b);
    let refused = poll_until("the standby to refuse a client", || {
        let output = only_b.run(&["info", "--json"]);
        let text = stderr(&output);
        if !output.status.success() && text.contains("standby") {
            Ok(text)
        } else {
            Err(describe(&output))
        }
    });
    assert!(
        refused.contains(&format!("127.0.0.1:{port_a}")),
        "the refusal names the active server: {refused}"
    );

    let hosts = format!("127.0.0.1:{port_a},127.0.0.1:{port_b}");
    let both = Client::wrapped(&[], &hosts, port_a);
    let state = dir.path().join("worker-state");
    let mut worker_command = buildcat_command(["workers", "--host", &hosts, "-n", "2"]);
    worker_command
        .arg("--state-dir")
        .arg(&state)
        .current_dir(dir.path());
    let mut worker = Proc::spawn("worker", worker_command, dir.path());

    // A job that runs through the takeover.
    let sleeper = Sleeper::new();
    let long = job_number(&both.run(&["run", "--", "sleep", sleeper.arg()]));
    poll_until("the long job to start", || {
        if sleeper.pids().len() == 1 {
            Ok(())
        } else {
            Err(format!("{}\n{}", worker.logs(), active.logs()))
        }
    });

    // A submitter that keeps submitting through the takeover; only what it was told was
    // accepted counts.
    let acknowledged = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let output = both.run(&["run", "--", "true"]);
                if output.status.success() {
                    let number = job_number(&output);
                    acknowledged.lock().expect("not poisoned").push(number);
                }
            }
        });
        poll_until("a few jobs acknowledged before the kill", || {
            let count = acknowledged.lock().expect("not poisoned").len();
            if count >= 3 {
                Ok(())
            } else {
                Err(format!("{count} so far"))
            }
        });
        active.kill();
        standby.wait_for_log("standby: taking over as the active server");
        let before = acknowledged.lock().expect("not poisoned").len();
        poll_until("jobs acknowledged by the new active server", || {
            let count = acknowledged.lock().expect("not poisoned").len();
            if count >= before + 3 {
                Ok(())
            } else {
                Err(format!("{count} so far\n{}", standby.logs()))
            }
        });
        stop.store(true, Ordering::Relaxed);
    });

    // The long job still runs on its worker and finishes there, once.
    let sleeper_pids = sleeper.pids();
    assert_eq!(
        sleeper_pids.len(),
        1,
        "the long job's process ran on through the takeover"
    );
    let pid = libc::pid_t::try_from(sleeper_pids[0]).expect("a pid");
    // SAFETY: `kill` has no memory-safety preconditions; the pid runs this test's marker.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let numbers = acknowledged.into_inner().expect("not poisoned");
    for number in numbers.iter().chain([&long]) {
        let task = task_handle(number);
        let view = poll_until(&format!("task {task} to end"), || {
            let view = job(&both, &task);
            match view {
                Some(view) if view["state"] != "queued" && view["state"] != "started" => Ok(view),
                other => Err(format!("{other:?}\n{}\n{}", standby.logs(), worker.logs())),
            }
        });
        if number != &long {
            assert_eq!(view["state"], "finished", "task {task}: {view:#}");
        }
        let attempts = view["attempts"].as_array().map_or(0, Vec::len);
        assert_eq!(
            attempts,
            1,
            "task {task} ran once: {view:#}\n{}",
            standby.logs()
        );
    }
    worker.assert_running();
    standby.assert_running();
}

/// Guards fencing (issue 17): the active server is stopped (SIGSTOP) and its lock's
/// session ended, the standby takes over; continued (SIGCONT), the old server's next write
/// is refused by the database, it steps down with a non-zero status, and what it was asked
/// to store is not there.
#[test]
fn a_paused_active_server_that_lost_its_place_steps_down_and_writes_nothing() {
    let Some(cluster) = Postgres::start_or_skip("fencing") else {
        return;
    };
    let url = cluster.create_database("fencing");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (port_a, port_b) = (free_port(), free_port());
    let mut old = server("server a", port_a, &url, dir.path());
    old.wait_for_log("active server of the database");
    let mut standby = server("server b", port_b, &url, dir.path());
    standby.wait_for_log("standby: waiting for the active server");
    let to_old = Client::local(port_a);
    let first = job_number(&to_old.run(&["run", "--", "true"]));

    let pid = libc::pid_t::try_from(old.id()).expect("a pid");
    // SAFETY: `kill` has no memory-safety preconditions; `pid` is the server this test
    // started.
    unsafe {
        libc::kill(pid, libc::SIGSTOP);
    }
    cluster.sql(
        "fencing",
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'buildcat-lock-{}'",
            old.id()
        ),
    );
    standby.wait_for_log("standby: taking over as the active server");
    // SAFETY: as above.
    unsafe {
        libc::kill(pid, libc::SIGCONT);
    }
    let refused = to_old.run(&["run", "--", "true"]);
    assert!(
        !refused.status.success(),
        "the old server acknowledged a job\n{}",
        describe(&refused)
    );
    let status = old.wait_exit(PATIENCE);
    assert!(
        !status.success(),
        "the old server stepped down with an error\n{}",
        old.logs()
    );
    assert!(
        old.log().contains("taken over by another server"),
        "the old server says why it stopped\n{}",
        old.logs()
    );
    let to_new = Client::local(port_b);
    let listed = to_new.run(&["jobs", "--json"]);
    let jobs: Value = serde_json::from_slice(&listed.stdout).unwrap_or_default();
    let numbers: Vec<String> = jobs["jobs"]
        .as_array()
        .or_else(|| jobs.as_array())
        .map(|jobs| jobs.iter().map(|job| job["number"].to_string()).collect())
        .unwrap_or_default();
    assert_eq!(
        numbers,
        vec![first],
        "only the job acknowledged before: {jobs:#}"
    );
    standby.assert_running();
}

/// A database whose layout a newer buildcat wrote is refused, naming the version to run.
#[test]
fn a_database_of_a_newer_buildcat_is_refused() {
    let Some(cluster) = Postgres::start_or_skip("newer schema") else {
        return;
    };
    let url = cluster.create_database("newer");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut first = server("server", free_port(), &url, dir.path());
    first.wait_for_log("active server of the database");
    first.kill();
    cluster.sql(
        "newer",
        "INSERT INTO buildcat.migrations (version, software) VALUES (1000, '99.0.0')",
    );
    let mut again = server("server again", free_port(), &url, dir.path());
    let status = again.wait_exit(PATIENCE);
    assert!(!status.success(), "{}", again.logs());
    assert!(
        again.log().contains("run buildcat 99.0.0 or later"),
        "{}",
        again.logs()
    );
}

/// `GET path` on `127.0.0.1:port` over plain HTTP/1.1: the status code and the body.
fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(PATIENCE))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {response}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or_else(String::new, |(_, body)| body.to_owned());
    Ok((status, body))
}

/// Guards issue 17's standby visibility: a standby's HTTP port answers `/api/v1/` and
/// `/metrics` with 503 and a body naming the active server, and `info` against it exits
/// non-zero saying it is a standby and where the active server is; once the active server
/// stops, the standby logs that it took over and its HTTP port serves the API.
#[test]
fn a_standby_says_where_the_active_server_is_over_http_and_to_info() {
    let Some(cluster) = Postgres::start_or_skip("standby visibility") else {
        return;
    };
    let url = cluster.create_database("visible");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (port_a, port_b) = (free_port(), free_port());
    let (http_a, http_b) = (free_port(), free_port());
    let with_http = |name: &str, port: u16, http: u16| {
        let command = buildcat_command([
            "server",
            "--port",
            &port.to_string(),
            "--storage",
            &url,
            "--http",
            &format!("127.0.0.1:{http}"),
        ]);
        Proc::spawn(name, command, dir.path())
    };
    let mut active = with_http("server a", port_a, http_a);
    active.wait_for_log("active server of the database");
    let mut standby = with_http("server b", port_b, http_b);
    standby.wait_for_log("standby: waiting for the active server");

    let active_address = format!("127.0.0.1:{port_a}");
    for path in ["/api/v1/info", "/metrics"] {
        let (status, body) = poll_until(&format!("the standby to answer {path}"), || {
            http_get(http_b, path)
        });
        assert_eq!(status, 503, "{path}: {body}");
        assert!(
            body.contains("standby") && body.contains(&active_address),
            "{path} names the active server: {body}"
        );
    }
    let (_, api) = http_get(http_b, "/api/v1/jobs").expect("an answer");
    let api: Value = serde_json::from_str(&api).expect("the standby's API answers JSON");
    assert_eq!(api["active"], active_address.as_str(), "{api:#}");

    let info = Client::local(port_b).run(&["info"]);
    assert!(
        !info.status.success()
            && stderr(&info).contains("standby")
            && stderr(&info).contains(&active_address),
        "info against the standby fails naming the active server\n{}",
        describe(&info)
    );

    active.kill();
    standby.wait_for_log("standby: taking over as the active server");
    standby.wait_for_log("active server of the database");
    let (status, body) = poll_until("the new active server to serve its API", || match http_get(
        http_b, "/metrics",
    ) {
        Ok((200, body)) => Ok((200, body)),
        Ok((status, body)) => Err(format!("{status}: {body}")),
        Err(error) => Err(error),
    });
    assert_eq!(status, 200, "{body}");
}

/// Guards issue 17's TLS to the database: a cluster with TLS on and a certificate signed by
/// a test CA; a server given `sslmode=verify-full` and that CA connects, over TLS (both of
/// its sessions), and serves; one given another CA is refused with a message that names
/// the certificate check and `sslrootcert`.
#[test]
fn tls_to_the_database_checks_its_certificate_against_the_given_ca() {
    let ca = TestCa::new("buildcat test ca");
    let Some(cluster) = Postgres::start_tls_or_skip("database tls", &ca.issue("127.0.0.1")) else {
        return;
    };
    let url = cluster.create_database("secure");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let good_ca = dir.path().join("ca.pem");
    let wrong_ca = dir.path().join("wrong.pem");
    std::fs::write(&good_ca, ca.pem()).expect("the CA written");
    std::fs::write(&wrong_ca, TestCa::new("another ca").pem()).expect("the CA written");

    let port = free_port();
    let verified = format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        good_ca.display()
    );
    let mut active = server("server", port, &verified, dir.path());
    active.wait_for_log("active server of the database");
    let encrypted = cluster.sql(
        "postgres",
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
         WHERE application_name LIKE 'buildcat%' AND ssl",
    );
    assert_eq!(encrypted, "2", "the lock's and the data's sessions use TLS");
    let client = Client::local(port);
    poll_until("the server to answer", || {
        let output = client.run(&["info", "--json"]);
        if output.status.success() {
            Ok(())
        } else {
            Err(describe(&output))
        }
    });
    drop(active);

    let refused_url = format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        wrong_ca.display()
    );
    let mut refused = server("refused server", free_port(), &refused_url, dir.path());
    let status = refused.wait_exit(PATIENCE);
    let log = refused.log();
    assert!(!status.success(), "a wrong CA is refused\n{log}");
    assert!(
        log.contains("certificate") && log.contains("sslrootcert"),
        "the refusal says what to check\n{log}"
    );
}

/// Guards the standby's HTTP port on a TLS server: it answers over HTTPS with the server's
/// certificate (a client trusting `server.cert` gets the 503 naming the active server), as
/// the HTTP shell does once the standby takes over.
#[test]
fn a_tls_standby_answers_over_https_naming_the_active_server() {
    let Some(cluster) = Postgres::start_or_skip("standby visibility over TLS") else {
        return;
    };
    let url = cluster.create_database("visible_tls");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let keys_dir = tempfile::tempdir().expect("a temporary directory");
    let keys = crate::tls::Keys::make(
        crate::harness::canonical(keys_dir.path()),
        "127.0.0.1",
        &["artist"],
    );
    let tls_flags = keys.server_flags(&["artist"]);
    let ca = keys.dir.join("server.cert");
    let (port_a, port_b) = (free_port(), free_port());
    let (http_a, http_b) = (free_port(), free_port());
    let start = |name: &str, port: u16, http: u16| {
        let port = port.to_string();
        let http = format!("127.0.0.1:{http}");
        let mut args = vec![
            "server",
            "--port",
            &port,
            "--storage",
            &url,
            "--http",
            &http,
        ];
        args.extend(tls_flags.iter().map(String::as_str));
        Proc::spawn(name, buildcat_command(args), dir.path())
    };
    let mut active = start("server a", port_a, http_a);
    active.wait_for_log("active server of the database");
    let mut standby = start("server b", port_b, http_b);
    standby.wait_for_log("standby: waiting for the active server");

    let active_address = format!("127.0.0.1:{port_a}");
    let (status, body) = poll_until("the standby to answer over HTTPS", || {
        crate::tls::https_get(http_b, &ca, "/api/v1/info")
    });
    assert_eq!(status, 503, "{body}");
    let body: Value = serde_json::from_str(&body).expect("the standby's API answers JSON");
    assert_eq!(body["active"], active_address.as_str(), "{body:#}");

    active.kill();
    standby.wait_for_log("active server of the database");
    let (status, body) =
        poll_until(
            "the new active server to serve HTTPS",
            || match crate::tls::https_get(http_b, &ca, "/metrics") {
                Ok((200, body)) => Ok((200, body)),
                Ok((status, body)) => Err(format!("{status}: {body}")),
                Err(error) => Err(error),
            },
        );
    assert_eq!(status, 200, "{body}");
}
