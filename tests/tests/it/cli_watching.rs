//! Watching and queues nobody serves (issue 14, items 3 and 5): a submission to a queue no
//! worker serves is said at once, and the commands that wait for what they submitted give
//! up after a short wait with that reason, leaving nothing queued; `info --interval` shows
//! when each view was drawn; the `wait` bar's elapsed time advances during a long task (in a
//! real terminal, under tmux), and Ctrl-C of it says the job goes on and how to attach again.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::{
    Farm, PATIENCE, Streaming, buildcat, count, describe, job_number, poll_until, run_command,
    stderr, stdout, worker_count,
};

/// A path as an argument.
fn arg(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

#[test]
fn a_queue_nobody_serves_is_said_at_once_and_waiting_on_it_gives_up() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let _worker = farm.worker(&["--root", arg(&root), "gpu", "default"]);
    farm.wait_for_info("the worker", |info| worker_count(info) == 1);
    let said = "no worker serves queue `rendr`; workers serve: default, gpu";

    let output = farm.run(&["run", "--queue", "rendr", "--", "true"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(stderr(&output).contains(said), "{}", describe(&output));
    let queued = job_number(&output);
    // `info` names the reason too.
    let shown = stdout(&farm.ok(&["info"]));
    assert!(shown.contains(said), "{shown}");

    let output = farm.run(&["run", "--wait", "--queue", "rendr", "--", "true"]);
    assert!(!output.status.success(), "{}", describe(&output));
    let message = stderr(&output);
    assert!(
        message.contains(said) && message.contains("was canceled"),
        "{}",
        describe(&output)
    );
    let gave_up = job_number(&output);
    assert_eq!(farm.job(&gave_up)["state"], "canceled");

    let output = farm.run(&["worker-info", "--queue", "rendr"]);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(stderr(&output).contains(said), "{}", describe(&output));
    // Only the job submitted without waiting is left queued.
    let info = farm.info();
    assert_eq!(count(&info, "rendr", "queued"), Some(1), "{info:#}");
    farm.ok(&["cancel", &queued]);
}

#[test]
fn info_interval_shows_when_each_view_was_drawn() {
    let farm = Farm::start();
    let mut info = Streaming::spawn(
        "`buildcat info --interval`",
        farm.client.command(&["info", "--interval", "0.2"]),
    );
    let mut refreshes = Vec::new();
    while refreshes.len() < 2 {
        let line = info.next_line(PATIENCE);
        if let Some(rest) = line.strip_prefix("refreshed ") {
            assert!(rest.contains("every 0.2s"), "{line}");
            refreshes.push(
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    assert!(refreshes[0].ends_with('Z'), "{refreshes:?}");
    info.kill();
}

/// A tmux server of its own, killed on drop.
struct Tmux {
    /// The socket name (`tmux -L`), unique to the test.
    socket: String,
}

impl Tmux {
    /// `tmux -L SOCKET ARGS...`, run to its end.
    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut command = Command::new("tmux");
        command
            .args(["-L", &self.socket])
            .args(args)
            .stdin(Stdio::null());
        run_command(command, PATIENCE)
    }

    /// What the window shows now.
    fn screen(&self) -> String {
        stdout(&self.run(&["capture-pane", "-p", "-t", "watch"]))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The elapsed time the bar shows (`[00:00:03]`), in seconds.
fn elapsed(screen: &str) -> Option<u32> {
    let start = screen.find("[00:")?;
    let text = screen.get(start + 1..start + 9)?;
    let mut parts = text.split(':').map(|part| part.parse::<u32>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    Some(h * 3600 + m * 60 + s)
}

#[test]
fn the_wait_bar_keeps_ticking_during_a_long_task_and_ctrl_c_leaves_the_job_running() {
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            std::env::var_os("BUILDCAT_CI").is_none(),
            "BUILDCAT_CI is set but tmux, which this test drives, is not on PATH"
        );
        eprintln!("skipped: needs tmux on PATH");
        return;
    }
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let _worker = farm.worker(&["--root", arg(&root)]);
    let number = farm.submit(&["--", "sh", "-c", "while [ ! -e go ]; do sleep 0.05; done"]);
    farm.wait_for_job(&number, "the task started", |status| {
        status["state"] == "running"
    });
    let tmux = Tmux {
        socket: format!("buildcat-it-{}-{}", std::process::id(), farm.port),
    };
    let program: PathBuf = buildcat().to_owned();
    let line = format!(
        "env BUILDCAT_CONFIG= NO_COLOR=1 {} wait {number} --port {}; echo exited $?; sleep 600",
        arg(&program),
        farm.port
    );
    let started = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "watch",
        "-x",
        "150",
        "-y",
        "10",
        &line,
    ]);
    assert!(started.status.success(), "{}", describe(&started));
    // The elapsed time moves on while the task runs and nothing else happens.
    let first = poll_until("the bar with its elapsed time", || {
        let screen = tmux.screen();
        elapsed(&screen).ok_or(screen)
    });
    poll_until("the elapsed time to advance", || {
        let screen = tmux.screen();
        match elapsed(&screen) {
            Some(now) if now > first => Ok(()),
            _ => Err(screen),
        }
    });
    // Ctrl-C: the job goes on, and the way back is named.
    let sent = tmux.run(&["send-keys", "-t", "watch", "C-c"]);
    assert!(sent.status.success(), "{}", describe(&sent));
    let expected = format!("`buildcat wait {number}` attaches again");
    poll_until("the message of Ctrl-C", || {
        let screen = tmux.screen();
        if screen.contains(&expected) && screen.contains("exited 130") {
            Ok(())
        } else {
            Err(screen)
        }
    });
    assert_eq!(farm.job(&number)["state"], "running");
    std::fs::write(root.join("go"), "").expect("could not let the job end");
    farm.wait_for_job(&number, "the job to finish", |status| {
        status["state"] == "finished"
    });
}
