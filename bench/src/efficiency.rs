//! Farm efficiency with real Blender (issue 20): the same frames rendered directly, one
//! `blender -b -f N` after another in a warm profile, and through a local farm (a `buildcat
//! server`, `buildcat worker`s, the `buildcat blender-render` command), one frame per task
//! with one worker, then chunks of three with two workers. Efficiency is the direct time
//! over the farm's time per worker (wall time times workers): 100% means the farm adds
//! nothing to what Blender costs. From the farm's own records (`status --json`, the
//! server's clock, milliseconds): submit to first task started, and the idle gap a worker
//! has between the end of one task and the start of its next.
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
        .env("RUST_LOG", "warn")
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
    let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
    let mut date = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (date.next()??, date.next()??, date.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut hms = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (hms.next()??, hms.next()??, hms.next()??);
    let ms: i64 = format!("{fraction:0<3}")[..3].parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm, proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
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

    // Directly: a warm-up frame (the profile's first start), then each frame on its own.
    let direct_profile = dir.path().join("direct-profile");
    let direct_out = root.join("direct");
    direct(&scene, &direct_out, &direct_profile, "1")?;
    let started = Instant::now();
    for frame in 1..=FRAMES {
        direct(&scene, &direct_out, &direct_profile, &frame.to_string())?;
    }
    let direct_frames = started.elapsed();
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
    let _first = worker(
        setup,
        &root,
        port,
        "eff-1",
        &state,
        &dir.path().join("w1.log"),
    )?;
    wait_for_idle_workers(&client, 1, dir.path()).await?;
    // A warm-up render, so the slot's profile is as warm as the direct one.
    farm_render(setup, &root, port, FRAMES, "warm/w_####")?;
    let (one, status) = farm_render(setup, &root, port, 1, "one/f_####")?;
    let (to_first, gaps) = timings(&status)?;
    let one_efficiency = direct_frames.as_secs_f64() / one.as_secs_f64() * 100.0;

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

    let mut sorted_gaps = gaps.clone();
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
            "directly {:.1} s (blender -b -f N, one run per frame), through the farm {:.1} s",
            direct_frames.as_secs_f64(),
            one.as_secs_f64()
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
        .detail("from the job's creation to its first attempt's start, both stored in ms"),
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
    use super::millis;

    #[test]
    fn rfc3339_times_become_unix_milliseconds() {
        assert_eq!(millis("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(millis("2026-11-30T10:01:19.859Z"), Some(1_796_032_879_859));
        assert_eq!(millis("2000-03-01T00:00:01Z"), Some(951_868_801_000));
        assert_eq!(millis("garbage"), None);
    }
}
