//! Farm efficiency with real Blender (issue 20): the same frames rendered directly, one
//! `blender -b -f N` after another in a warm profile, and through a local farm (a `buildcat
//! server`, `buildcat worker`s, the `buildcat blender-render` command), one frame per task
//! with one worker, then chunks of three with two workers. Efficiency is the direct time
//! over the farm's time per worker (wall time times workers): 100% means the farm adds
//! nothing to what Blender costs. From the farm's own records (`status --json`, the
//! server's clock, milliseconds): submit to first task started, and the idle gap a worker
//! has between the end of one task and the start of its next.
//!
//! A loaded machine moves the direct and the farm times by more than the farm costs, so the
//! one-worker figures are taken in [`ROUNDS`] rounds that alternate which of the two goes
//! first, and the farm's own share is measured beside them in ways a busy machine hardly
//! moves: the farm's wall time less the lifetimes of its Blender processes (from the
//! worker's debug lines `process started` and `process ended`), per task; and the CPU the
//! worker and the server use per task (`/proc`).
//!
//! Skipped, with a line saying so, where `blender` is not on PATH.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::farm::ChildServer;
use crate::figures::{KillOnDrop, Setup};
use crate::report::{Figure, Goal, percentile};

/// The scene: 64x48 Workbench, a cube moving over frames 1-12, as the issue measured it.
const MAKE_SCENE: &str = r#"import sys
import bpy

scene = bpy.context.scene
scene.render.engine = 'BLENDER_WORKBENCH'
scene.render.resolution_x = 64
scene.render.resolution_y = 48
scene.render.resolution_percentage = 100
scene.frame_start = 1
scene.frame_end = 12
cube = bpy.data.objects['Cube']
cube.location = (0.0, 0.0, 0.0)
cube.keyframe_insert(data_path='location', frame=1)
cube.location = (2.0, 0.0, 0.0)
cube.keyframe_insert(data_path='location', frame=12)
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[sys.argv.index('--') + 1])
"#;

/// Frames rendered each way.
const FRAMES: i64 = 12;

/// Frames per task in the two-worker run.
const CHUNK: i64 = 3;

/// Rounds of the one-worker comparison, direct and farm alternating which goes first.
const ROUNDS: usize = 3;

/// The worker's log filter: warnings, and the process runner's debug lines, whose times
/// give each Blender process's lifetime.
const WORKER_LOG: &str = "warn,buildcat_worker::process=debug";

/// The longest a render through the farm may take before the bench gives up.
const RENDER_LIMIT: Duration = Duration::from_secs(600);

/// Whether `program` is on PATH.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Runs `command` to the end; fails with its output if it fails.
fn run(command: &mut Command, what: &str) -> anyhow::Result<std::process::Output> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not run {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

/// A Blender profile (HOME, configuration, caches) under `dir`, as a worker slot keeps one.
fn profile(command: &mut Command, dir: &Path) -> anyhow::Result<()> {
    for sub in ["home", "config", "cache", "tmp"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    command
        .env("HOME", dir.join("home"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("TMPDIR", dir.join("tmp"));
    Ok(())
}

/// Renders `frames` (`7`, or `1..3`) directly in one Blender run, as a person would on the
/// worker's host.
fn direct(scene: &Path, out: &Path, profile_dir: &Path, frames: &str) -> anyhow::Result<()> {
    let mut command = Command::new("blender");
    command
        .arg("-b")
        .arg(scene)
        .arg("-noaudio")
        .arg("-o")
        .arg(out.join("d_####"))
        .args(["-F", "PNG", "-f", frames])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    profile(&mut command, profile_dir)?;
    run(&mut command, &format!("blender -f {frames}"))?;
    Ok(())
}

/// A `buildcat` command against the server on `port`, in `root`.
fn buildcat(setup: &Setup, root: &Path, port: u16, args: &[&str]) -> Command {
    let mut command = Command::new(&setup.buildcat);
    command
        .args(args)
        .args(["--port", &port.to_string()])
        .current_dir(root)
        .env_remove("BUILDCAT_PORT")
        .env("BUILDCAT_CONFIG", "");
    command
}

/// Starts `buildcat worker NAME` rooted at `root`, logging to `log`.
fn worker(
    setup: &Setup,
    root: &Path,
    port: u16,
    name: &str,
    state: &Path,
    log: &Path,
) -> anyhow::Result<KillOnDrop> {
    let log = std::fs::File::create(log)?;
    let child = Command::new(&setup.buildcat)
        .args(["worker", "--port", &port.to_string(), "--name", name])
        .arg("--state-dir")
        .arg(state)
        .current_dir(root)
        .env_remove("BUILDCAT_PORT")
        .env("BUILDCAT_CONFIG", "")
        .env("RUST_LOG", WORKER_LOG)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting a buildcat worker")?;
    Ok(KillOnDrop(child))
}

/// Waits until `count` workers are connected and idle; fails with the `*.log` files in
/// `logs` if they do not come within a minute.
async fn wait_for_idle_workers(
    client: &buildcat_client::Client,
    count: usize,
    logs: &Path,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = client.info().await?;
        let idle = info
            .workers
            .iter()
            .filter(|w| w.activity == buildcat_proto::WorkerActivity::Idle)
            .count();
        if idle >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            let mut said = String::new();
            for entry in std::fs::read_dir(logs)?.flatten() {
                if entry.path().extension().is_some_and(|e| e == "log") {
                    said.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
                }
            }
            bail!("{count} idle workers did not come within a minute ({idle} did); logs:\n{said}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Renders frames 1-12 through the farm in tasks of `chunk` frames; the wall time of the
/// `blender-render --wait` command and the job's `status --json`.
fn farm_render(
    setup: &Setup,
    root: &Path,
    port: u16,
    chunk: i64,
    out: &str,
) -> anyhow::Result<(Duration, Value)> {
    let frames = format!("1-{FRAMES}");
    let chunk = chunk.to_string();
    let started = Instant::now();
    let output = run(
        buildcat(
            setup,
            root,
            port,
            &[
                "blender-render",
                "scenes/anim.blend",
                "--frames",
                &frames,
                "--chunk",
                &chunk,
                "--output",
                out,
                "--format",
                "PNG",
                "--wait",
                "--json",
            ],
        )
        .stderr(Stdio::null()),
        "buildcat blender-render --wait",
    )?;
    let took = started.elapsed();
    if took > RENDER_LIMIT {
        bail!("the render took {took:?}");
    }
    let printed: Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("not JSON: {}", String::from_utf8_lossy(&output.stdout)))?;
    let number = printed["number"]
        .as_u64()
        .with_context(|| format!("no job number in {printed}"))?;
    let status = run(
        buildcat(
            setup,
            root,
            port,
            &["status", &number.to_string(), "--json"],
        )
        .stderr(Stdio::null()),
        "buildcat status --json",
    )?;
    let status: Value = serde_json::from_slice(&status.stdout)?;
    if status["state"] != "finished" {
        bail!("the render did not finish: {status:#}");
    }
    // Attempts are in each task's own status.
    let tasks = status["tasks"].as_array().map_or(0, Vec::len);
    let mut details = Vec::with_capacity(tasks);
    for index in 0..tasks {
        let task = run(
            buildcat(
                setup,
                root,
                port,
                &["status", &format!("{number}.{index}"), "--json"],
            )
            .stderr(Stdio::null()),
            "buildcat status TASK --json",
        )?;
        details.push(serde_json::from_slice::<Value>(&task.stdout)?);
    }
    let mut status = status;
    status["task_details"] = Value::Array(details);
    Ok((took, status))
}

/// Milliseconds since the Unix epoch of an RFC 3339 time in UTC as the views print it
/// (`2026-11-30T10:01:19.859Z`).
fn millis(text: &str) -> Option<i64> {
    unix_micros(text).map(|us| us.div_euclid(1000))
}

/// Microseconds since the Unix epoch of an RFC 3339 time in UTC, as the views and the
/// logs print it (`2026-11-30T10:01:19.859Z`, `2026-11-30T17:56:48.593480Z`); digits past
/// the sixth are dropped.
fn unix_micros(text: &str) -> Option<i64> {
    let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
    let mut date = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (date.next()??, date.next()??, date.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut hms = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (hms.next()??, hms.next()??, hms.next()??);
    if !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let us: i64 = format!("{fraction:0<6}")[..6].parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm, proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((((days * 24 + hh) * 60 + mm) * 60 + ss) * 1_000_000 + us)
}

/// From a job's status (with each task's own, under `task_details`): submit to first task started (ms), and each worker's idle gaps
/// between one task's end and its next task's start (ms).
fn timings(status: &Value) -> anyhow::Result<(f64, Vec<f64>)> {
    let created = status["created"]
        .as_str()
        .and_then(millis)
        .with_context(|| format!("no creation time in {status}"))?;
    let mut runs: Vec<(String, i64, i64)> = Vec::new();
    for task in status["task_details"].as_array().context("no tasks")? {
        for attempt in task["attempts"].as_array().context("no attempts")? {
            let worker = attempt["worker"].as_str().unwrap_or_default().to_owned();
            let started = attempt["started"].as_str().and_then(millis);
            let ended = attempt["ended"].as_str().and_then(millis);
            if let (Some(started), Some(ended)) = (started, ended) {
                runs.push((worker, started, ended));
            }
        }
    }
    let first = runs
        .iter()
        .map(|(_, started, _)| *started)
        .min()
        .context("no attempt ran")?;
    runs.sort();
    let gaps = runs
        .windows(2)
        .filter(|pair| pair[0].0 == pair[1].0)
        .map(|pair| (pair[1].1 - pair[0].2) as f64)
        .collect();
    Ok(((first - created) as f64, gaps))
}

/// The time at the start of a log line (`2026-11-30T17:56:48.593480Z DEBUG ...`), in
/// microseconds since the Unix epoch.
fn line_time(line: &str) -> Option<i64> {
    unix_micros(line.split_whitespace().next()?)
}

/// The lifetimes of the Blender processes the worker's log `text` tells of: from each
/// `process started` line's time to the next `process ended` line's time.
fn process_lifetimes(text: &str) -> Vec<Duration> {
    let mut started = None;
    let mut lifetimes = Vec::new();
    for line in text.lines() {
        if line.contains("process started") {
            started = line_time(line);
        } else if line.contains("process ended")
            && let (Some(from), Some(to)) = (started.take(), line_time(line))
        {
            lifetimes.push(Duration::from_micros(u64::try_from(to - from).unwrap_or(0)));
        }
    }
    lifetimes
}

/// The log's bytes from `from` on, as text.
fn log_since(log: &Path, from: usize) -> anyhow::Result<String> {
    let bytes = std::fs::read(log).with_context(|| format!("reading {}", log.display()))?;
    Ok(String::from_utf8_lossy(bytes.get(from..).unwrap_or_default()).into_owned())
}

/// The log's length, where the next run's lines will start.
fn log_length(log: &Path) -> usize {
    std::fs::metadata(log).map_or(0, |m| usize::try_from(m.len()).unwrap_or(0))
}

/// One round of the one-worker comparison.
struct Round {
    /// The frames rendered directly, one `blender -f N` after another.
    direct: Duration,
    /// The same frames through the farm, one per task: the `blender-render --wait`
    /// command's wall time.
    farm: Duration,
    /// The lifetimes of the farm's Blender processes, added up.
    blender: Duration,
    /// How many Blender processes the worker's log told of (one per task).
    processes: usize,
    /// CPU seconds the worker and the server used for the farm's render.
    cpu: f64,
    /// Submit to first task started, ms (server clock).
    to_first: f64,
    /// The worker's idle gaps between tasks, ms (server clock).
    gaps: Vec<f64>,
}

impl Round {
    /// What the farm adds to each task: its wall time less its Blender processes' lives
    /// (the submit, the wait for the end, and between each Blender's exit and the next's
    /// start: the report, the next assignment, the spawn), per task.
    fn own_per_task(&self) -> Duration {
        self.farm.saturating_sub(self.blender) / u32::try_from(self.processes.max(1)).unwrap_or(1)
    }
}

/// The frames rendered directly, one run each, in `profile_dir`; the time they took.
fn direct_frames(scene: &Path, out: &Path, profile_dir: &Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for frame in 1..=FRAMES {
        direct(scene, out, profile_dir, &frame.to_string())?;
    }
    Ok(started.elapsed())
}

/// Everything one farm run of the comparison needs.
struct FarmRun<'a> {
    /// The bench's setup.
    setup: &'a Setup,
    /// The farm's root.
    root: &'a Path,
    /// The server's port.
    port: u16,
    /// The worker's log.
    log: &'a Path,
    /// The worker's and the server's process ids, for their CPU time.
    pids: [u32; 2],
}

impl FarmRun<'_> {
    /// The frames through the farm, one per task, writing to `out`.
    fn run(&self, out: &str) -> anyhow::Result<Round> {
        let from = log_length(self.log);
        let cpu = || -> anyhow::Result<f64> {
            Ok(crate::sys::cpu_seconds(self.pids[0])? + crate::sys::cpu_seconds(self.pids[1])?)
        };
        let cpu_before = cpu()?;
        let (farm, status) = farm_render(self.setup, self.root, self.port, 1, out)?;
        let cpu = cpu()? - cpu_before;
        let lifetimes = process_lifetimes(&log_since(self.log, from)?);
        if lifetimes.len() != FRAMES as usize {
            bail!(
                "the worker's log at {} tells of {} Blender processes for {FRAMES} tasks: \
                 are its `process started`/`process ended` debug lines still logged under {WORKER_LOG}?",
                self.log.display(),
                lifetimes.len()
            );
        }
        let (to_first, gaps) = timings(&status)?;
        Ok(Round {
            direct: Duration::ZERO,
            farm,
            blender: lifetimes.iter().sum(),
            processes: lifetimes.len(),
            cpu,
            to_first,
            gaps,
        })
    }
}

/// The median of `values` (0 for none).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile(&sorted, 50.0)
}

/// The efficiency group's figures.
pub async fn measure(setup: &Setup) -> anyhow::Result<Vec<Figure>> {
    if !on_path("blender") {
        eprintln!("buildcat-bench: efficiency skipped: `blender` is not on PATH");
        return Ok(Vec::new());
    }
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("scenes"))?;
    let scene = root.join("scenes").join("anim.blend");
    let script = dir.path().join("make.py");
    std::fs::write(&script, MAKE_SCENE)?;
    run(
        Command::new("blender")
            .args([
                "-b",
                "--factory-startup",
                "-noaudio",
                "--python-exit-code",
                "1",
                "--python",
            ])
            .arg(&script)
            .arg("--")
            .arg(&scene),
        "blender (making the scene)",
    )?;

    // Directly: a warm-up frame (the profile's first start) before any timing.
    let direct_profile = dir.path().join("direct-profile");
    let direct_out = root.join("direct");
    direct(&scene, &direct_out, &direct_profile, "1")?;

    let server = ChildServer::start(
        &setup.buildcat,
        &dir.path().join("farm.db"),
        &dir.path().join("server.log"),
    )
    .await?;
    let port = server.port();
    let state = dir.path().join("state");
    let mut server = server;
    let client = server.wait_serving(Duration::from_secs(60)).await?;
    let first_log = dir.path().join("w1.log");
    let first_worker = worker(setup, &root, port, "eff-1", &state, &first_log)?;
    wait_for_idle_workers(&client, 1, dir.path()).await?;
    // A warm-up render, so the slot's profile is as warm as the direct one.
    farm_render(setup, &root, port, FRAMES, "warm/w_####")?;

    let farm = FarmRun {
        setup,
        root: &root,
        port,
        log: &first_log,
        pids: [first_worker.0.id(), server.pid()],
    };
    let mut rounds = Vec::with_capacity(ROUNDS);
    for index in 0..ROUNDS {
        let out = format!("one{index}/f_####");
        // Alternating which goes first, so a machine getting busier or quieter weighs on
        // both alike.
        let round = if index % 2 == 0 {
            let direct = direct_frames(&scene, &direct_out, &direct_profile)?;
            Round {
                direct,
                ..farm.run(&out)?
            }
        } else {
            let round = farm.run(&out)?;
            Round {
                direct: direct_frames(&scene, &direct_out, &direct_profile)?,
                ..round
            }
        };
        rounds.push(round);
    }

    // The same chunks of three as the two workers get, one after another.
    let started = Instant::now();
    for first in (1..=FRAMES).step_by(CHUNK as usize) {
        let last = (first + CHUNK - 1).min(FRAMES);
        direct(
            &scene,
            &direct_out,
            &direct_profile,
            &format!("{first}..{last}"),
        )?;
    }
    let direct_chunks = started.elapsed();
    let _second = worker(
        setup,
        &root,
        port,
        "eff-2",
        &state,
        &dir.path().join("w2.log"),
    )?;
    wait_for_idle_workers(&client, 2, dir.path()).await?;
    farm_render(setup, &root, port, 1, "warm2/w_####")?;
    let (two, _) = farm_render(setup, &root, port, CHUNK, "two/f_####")?;
    let two_efficiency = direct_chunks.as_secs_f64() / (two.as_secs_f64() * 2.0) * 100.0;

    let direct_total: Duration = rounds.iter().map(|r| r.direct).sum();
    let farm_total: Duration = rounds.iter().map(|r| r.farm).sum();
    let blender_total: Duration = rounds.iter().map(|r| r.blender).sum();
    let one_efficiency = direct_total.as_secs_f64() / farm_total.as_secs_f64() * 100.0;
    let per_round: Vec<String> = rounds
        .iter()
        .map(|r| {
            format!(
                "{:.1} s / {:.1} s",
                r.direct.as_secs_f64(),
                r.farm.as_secs_f64()
            )
        })
        .collect();
    let own: Vec<f64> = rounds
        .iter()
        .map(|r| r.own_per_task().as_secs_f64() * 1000.0)
        .collect();
    let cpu: Vec<f64> = rounds
        .iter()
        .map(|r| r.cpu * 1000.0 / FRAMES as f64)
        .collect();
    let direct_frame = direct_total.as_secs_f64() / (FRAMES as f64 * ROUNDS as f64) * 1000.0;
    let blender_frame = blender_total.as_secs_f64() / (FRAMES as f64 * ROUNDS as f64) * 1000.0;
    let to_first = median(&rounds.iter().map(|r| r.to_first).collect::<Vec<_>>());
    let mut sorted_gaps: Vec<f64> = rounds.iter().flat_map(|r| r.gaps.clone()).collect();
    sorted_gaps.sort_by(f64::total_cmp);
    let how = format!("real Blender, {FRAMES} frames 64x48 Workbench, warm profiles");
    Ok(vec![
        Figure::new(
            "efficiency_one_worker",
            "farm efficiency, 1 worker, 1 frame per task",
            one_efficiency,
            "%",
            Goal::AtLeast,
            95.0,
        )
        .how(how.clone())
        .detail(format!(
            "directly {:.1} s (blender -b -f N, one run per frame), through the farm {:.1} s, \
             over {ROUNDS} rounds alternating which went first (direct / farm: {})",
            direct_total.as_secs_f64(),
            farm_total.as_secs_f64(),
            per_round.join(", ")
        )),
        Figure::info(
            "farm_own_per_task",
            "the farm's own time per task, 1 worker",
            median(&own),
            "ms",
        )
        .how(how.clone())
        .detail(format!(
            "the farm's wall time less its Blender processes' lifetimes (the worker's \
             debug lines), per task, median of {ROUNDS} rounds ({}); a Blender process \
             lived {blender_frame:.0} ms on average in the farm against {direct_frame:.0} ms \
             per direct run",
            own.iter()
                .map(|ms| format!("{ms:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Figure::info(
            "farm_cpu_per_task",
            "worker and server CPU per task, 1 worker",
            median(&cpu),
            "ms",
        )
        .how(how.clone())
        .detail(format!(
            "user + system time of the `buildcat worker` and `buildcat server` processes \
             (not Blender's) over a render, per task, median of {ROUNDS} rounds ({})",
            cpu.iter()
                .map(|ms| format!("{ms:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Figure::new(
            "efficiency_two_workers",
            "farm efficiency, 2 workers, 3 frames per task",
            two_efficiency,
            "%",
            Goal::AtLeast,
            95.0,
        )
        .how(how)
        .detail(format!(
            "directly {:.1} s (the same chunks one after another), through the farm {:.1} s \
             on 2 workers; efficiency = direct / (wall x workers)",
            direct_chunks.as_secs_f64(),
            two.as_secs_f64()
        )),
        Figure::new(
            "submit_to_first_start",
            "submit to first task started (server clock)",
            to_first,
            "ms",
            Goal::AtMost,
            10.0,
        )
        .detail(format!(
            "from the job's creation to its first attempt's start, both stored in ms; \
             median of {ROUNDS} rounds"
        )),
        Figure::new(
            "idle_gap_p50",
            "idle gap between a worker's tasks, median",
            percentile(&sorted_gaps, 50.0),
            "ms",
            Goal::AtMost,
            5.0,
        )
        .detail(format!(
            "from an attempt's end to the same worker's next start, by the server's clock: \
             {} gaps, max {} ms",
            sorted_gaps.len(),
            sorted_gaps.last().copied().unwrap_or(0.0)
        )),
    ])
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{millis, process_lifetimes, unix_micros};

    #[test]
    fn rfc3339_times_become_unix_milliseconds() {
        assert_eq!(millis("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(millis("2026-11-30T10:01:19.859Z"), Some(1_796_032_879_859));
        assert_eq!(millis("2000-03-01T00:00:01Z"), Some(951_868_801_000));
        assert_eq!(millis("garbage"), None);
        assert_eq!(
            unix_micros("2026-11-30T17:56:48.593480Z"),
            Some(1_796_061_408_593_480)
        );
        assert_eq!(unix_micros("2026-11-30T17:56:48.5x3Z"), None);
    }

    #[test]
    fn lifetimes_pair_each_start_with_the_next_end() {
        let log = "\
2026-11-30T17:56:48.593480Z DEBUG worker{name=eff-1}: process started program=/usr/bin/blender pid=Some(22141)
2026-11-30T17:56:52.250701Z DEBUG made a frame preview task=2.6 frame=7 bytes=916
2026-11-30T17:56:52.412680Z DEBUG worker{name=eff-1}: process ended program=/usr/bin/blender end=Exited elapsed=3.8s
2026-11-30T17:56:52.453560Z DEBUG worker{name=eff-1}: process started program=/usr/bin/blender pid=Some(22239)
2026-11-30T17:56:56.308899Z DEBUG worker{name=eff-1}: process ended program=/usr/bin/blender end=Exited elapsed=3.8s
2026-11-30T17:56:57.000000Z DEBUG worker{name=eff-1}: process ended program=/usr/bin/blender end=Exited elapsed=3.8s
";
        assert_eq!(
            process_lifetimes(log),
            vec![
                Duration::from_micros(3_819_200),
                Duration::from_micros(3_855_339)
            ]
        );
    }
}
