//! `buildcat-bench`: measures a real buildcat server, client and worker over loopback
//! against the performance targets, prints a table and writes `results.json` and two SVG
//! charts. Run it through `cargo xtask bench [--quick]`, which builds it in release mode.
//!
//! A missed target is reported, never an error: the exit status is non-zero only when a
//! measurement could not be made.

mod efficiency;
mod farm;
mod figures;
mod postgres;
mod report;
mod stages;
mod stall;
mod svg;
mod sys;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::figures::{Setup, Sizes};
use crate::report::{Figure, Results, percentile};
use crate::stages::StageSizes;

const USAGE: &str = "usage: buildcat-bench [--quick] [--buildcat PATH] [--out DIR] [--only GROUPS]

  --quick         small sizes, under a minute
  --buildcat PATH the `buildcat` binary [default: next to this program]
  --out DIR       where results.json and the charts go [default: target/bench]
  --only GROUPS   comma-separated subset of: stages, cli, latency, throughput, submit,
                  durability, memory, workers, stall, efficiency (real Blender, where on
                  PATH)
  --server-threads N
                  worker threads of the in-process server's runtime [default: 2, like
                  `buildcat server` on this machine]; 0 for a current-thread runtime";

/// Every group of figures, in the order they run.
const GROUPS: [&str; 10] = [
    "stages",
    "cli",
    "latency",
    "throughput",
    "submit",
    "durability",
    "memory",
    "workers",
    "stall",
    "efficiency",
];

/// The command line.
struct Options {
    quick: bool,
    buildcat: PathBuf,
    out: PathBuf,
    only: Vec<String>,
}

fn parse_options() -> anyhow::Result<Option<Options>> {
    let mut args = std::env::args().skip(1);
    let mut quick = false;
    let mut buildcat = None;
    let mut out = PathBuf::from("target/bench");
    let mut only: Vec<String> = GROUPS.iter().map(|g| (*g).to_owned()).collect();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--buildcat" => {
                buildcat = Some(PathBuf::from(
                    args.next().context("--buildcat needs a path")?,
                ))
            }
            "--out" => out = PathBuf::from(args.next().context("--out needs a directory")?),
            "--only" => {
                let list = args.next().context("--only needs a list")?;
                only = list.split(',').map(|g| g.trim().to_owned()).collect();
                if let Some(unknown) = only.iter().find(|g| !GROUPS.contains(&g.as_str())) {
                    bail!("unknown group `{unknown}`\n\n{USAGE}");
                }
            }
            "--server-threads" => {
                let threads: usize = args
                    .next()
                    .context("--server-threads needs a number")?
                    .parse()
                    .context("--server-threads needs a number")?;
                farm::SERVER_THREADS.store(threads, std::sync::atomic::Ordering::Relaxed);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => bail!("unknown argument `{other}`\n\n{USAGE}"),
        }
    }
    let buildcat = match buildcat {
        Some(path) => path,
        None => std::env::current_exe()
            .context("finding this program")?
            .with_file_name("buildcat"),
    };
    if !buildcat.is_file() {
        bail!(
            "no buildcat binary at {} (build it with `cargo build --release -p buildcat-cli`, or give --buildcat)",
            buildcat.display()
        );
    }
    Ok(Some(Options {
        quick,
        buildcat,
        out,
        only,
    }))
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(Some(options)) => options,
        Ok(None) => return ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("buildcat-bench: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    match run(options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("buildcat-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the groups asked for; `Ok(false)` when some measurement failed.
fn run(options: Options) -> anyhow::Result<bool> {
    let started = Instant::now();
    // Many workers need many sockets, in this process and in the server it spawns.
    let nofile = sys::raise_nofile_limit()?;
    let machine = sys::Machine::detect();
    let mode = if options.quick { "quick" } else { "full" };
    let mut command = "cargo xtask bench".to_owned();
    if options.quick {
        command.push_str(" --quick");
    }
    if options.only.len() < GROUPS.len() {
        command.push_str(&format!(" --only {}", options.only.join(",")));
    }
    let server_threads = farm::SERVER_THREADS.load(std::sync::atomic::Ordering::Relaxed);
    if server_threads != 2 {
        command.push_str(&format!(" --server-threads {server_threads}"));
    }
    let mut sizes = if options.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    if sizes.many_workers as u64 + 256 > nofile {
        eprintln!(
            "buildcat-bench: the open-file limit is {nofile}; measuring {} workers instead of {}",
            nofile.saturating_sub(256),
            sizes.many_workers
        );
        sizes.many_workers = usize::try_from(nofile.saturating_sub(256)).unwrap_or(0);
    }
    let ctx = Setup {
        buildcat: options.buildcat.clone(),
        sizes,
    };
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    eprintln!(
        "buildcat-bench: {mode} run on {} cores ({}), {}",
        machine.cores, machine.cpu, machine.date
    );
    // The client and the worker loops run here; in-process servers get a runtime of their
    // own (see `farm::InProcessServer`).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("bench-client")
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;

    let mut figures: Vec<Figure> = Vec::new();
    let mut throughput_by_loops = Vec::new();
    let mut latency_samples = Vec::new();
    let mut latency_nosync_samples = Vec::new();
    let wants = |group: &str| options.only.iter().any(|g| g == group);
    let mut failed = false;
    let mut record = |group: &str,
                      result: anyhow::Result<Vec<Figure>>,
                      figures: &mut Vec<Figure>| {
        match result {
            Ok(mut more) => {
                for figure in &more {
                    eprintln!(
                        "  {:<45} {}",
                        figure.name,
                        figure.value.map_or_else(
                            || "failed".to_owned(),
                            |v| format!("{} {}", report::human(v), figure.unit)
                        )
                    );
                }
                figures.append(&mut more);
            }
            Err(error) => {
                eprintln!("buildcat-bench: {group} failed: {error:#}");
                failed = true;
                figures.push(Figure::failed(group, group, "", &error));
            }
        }
    };
    let announce = |group: &str| {
        eprintln!("buildcat-bench: measuring {group}...");
    };

    if wants("stages") {
        announce("stages");
        let sizes = StageSizes {
            fsyncs: if options.quick { 100 } else { 500 },
            single_commits: if options.quick { 100 } else { 500 },
            batch_commits: if options.quick { 10 } else { 30 },
        };
        record("stages", stages::measure(&sizes), &mut figures);
    }
    if wants("cli") {
        announce("cli round trip");
        record(
            "cli",
            runtime.block_on(figures::cli_round_trip(&ctx)),
            &mut figures,
        );
    }
    if wants("latency") {
        announce("latency");
        let result = runtime
            .block_on(figures::latency(&ctx))
            .map(|(f, samples, nosync)| {
                latency_samples = samples;
                latency_nosync_samples = nosync;
                f
            });
        record("latency", result, &mut figures);
    }
    if wants("throughput") {
        announce("throughput");
        let result = runtime
            .block_on(figures::throughput(&ctx))
            .map(|(f, points)| {
                throughput_by_loops = points;
                f
            });
        record("throughput", result, &mut figures);
    }
    if wants("submit") {
        announce("submit rate");
        record(
            "submit",
            runtime.block_on(figures::submit_rate(&ctx)),
            &mut figures,
        );
    }
    if wants("durability") {
        announce("durability cost");
        record(
            "durability",
            runtime.block_on(figures::durability(&ctx)),
            &mut figures,
        );
    }
    if wants("memory") {
        announce("queue memory and restart");
        record(
            "memory",
            runtime.block_on(figures::memory_and_restart(&ctx)),
            &mut figures,
        );
    }
    if wants("workers") {
        announce("many workers");
        record(
            "workers",
            runtime.block_on(figures::many_workers(&ctx)),
            &mut figures,
        );
    }
    if wants("stall") {
        announce("stall probe");
        let sizes = if options.quick {
            stall::StallSizes {
                clients: 10,
                in_flight: 100,
                run: std::time::Duration::from_secs(5),
                runs: 1,
            }
        } else {
            stall::StallSizes {
                clients: 50,
                in_flight: 400,
                run: std::time::Duration::from_secs(30),
                runs: 3,
            }
        };
        record(
            "stall",
            runtime.block_on(stall::probe(&sizes)),
            &mut figures,
        );
    }
    if wants("efficiency") {
        announce("farm efficiency with real Blender");
        record(
            "efficiency",
            runtime.block_on(efficiency::measure(&ctx)),
            &mut figures,
        );
    }
    drop(runtime);

    let revision = source_revision();
    let results = Results {
        command,
        revision,
        mode: mode.to_owned(),
        machine,
        server_threads: farm::SERVER_THREADS.load(std::sync::atomic::Ordering::Relaxed),
        duration_s: started.elapsed().as_secs_f64(),
        figures,
        throughput_by_loops,
        latency_samples_us: latency_samples,
        latency_nosync_samples_us: latency_nosync_samples,
    };
    write_charts(&results, &options.out)?;
    results.write_json(&options.out)?;
    println!();
    print!("{}", results.table());
    println!(
        "results: {}, charts: throughput.svg, latency.svg",
        options.out.join("results.json").display()
    );
    Ok(!failed)
}

/// The commit measured, and whether tracked files differ from it. Read-only git plumbing
/// (no index refresh), so a file only touched may count as changed.
fn source_revision() -> String {
    let git = |args: &[&str]| std::process::Command::new("git").args(args).output().ok();
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]).filter(|out| out.status.success())
    else {
        return "unknown (not a git checkout)".to_owned();
    };
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    match git(&["diff-index", "--quiet", "HEAD", "--"]).map(|out| out.status.code()) {
        Some(Some(0)) => head,
        Some(Some(1)) => format!("{head} with uncommitted changes"),
        _ => format!("{head} (changes unknown)"),
    }
}

/// Writes the two charts, when their data was measured.
fn write_charts(results: &Results, out: &std::path::Path) -> anyhow::Result<()> {
    let subtitle = format!(
        "{} cores, {}; {}; {} mode",
        results.machine.cores, results.machine.cpu, results.machine.date, results.mode
    );
    if !results.throughput_by_loops.is_empty() {
        let chart = svg::throughput_chart(&results.throughput_by_loops, 50_000.0, &subtitle);
        let path = out.join("throughput.svg");
        std::fs::write(&path, chart).with_context(|| format!("writing {}", path.display()))?;
    }
    if !results.latency_samples_us.is_empty() {
        let mut sorted = results.latency_samples_us.clone();
        sorted.sort_by(f64::total_cmp);
        let p50 = percentile(&sorted, 50.0);
        let p99 = percentile(&sorted, 99.0);
        let marks = [
            (format!("p50 {p50:.0} µs"), p50, "#1e8449"),
            (format!("p99 {p99:.0} µs"), p99, "#b9770e"),
            ("target p50 150 µs".to_owned(), 150.0, "#c0392b"),
            ("target p99 1 ms".to_owned(), 1000.0, "#943126"),
        ];
        let marks: Vec<(&str, f64, &str)> =
            marks.iter().map(|(l, v, c)| (l.as_str(), *v, *c)).collect();
        let chart = svg::latency_chart(
            &results.latency_samples_us,
            Some((
                "unsafe no-sync (outline)",
                &results.latency_nosync_samples_us,
            )),
            &marks,
            &format!("{} samples; {subtitle}", sorted.len()),
        );
        let path = out.join("latency.svg");
        std::fs::write(&path, chart).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
