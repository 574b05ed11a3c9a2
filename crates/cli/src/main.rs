//! `buildcat`: the command-line program of the buildcat render farm.
//!
//! This binary only parses arguments, calls the libraries and prints; the farm itself lives
//! in `buildcat-queue` (server), `buildcat-worker` and `buildcat-client`.

#[macro_use]
mod macros;
mod args;
mod certs;
mod config;
mod farm;
mod info;
mod jobs;
mod migrate;
mod output;
mod paths;
mod preview;
mod render;
mod steer;
mod stop;
mod submit;
mod time;
mod unserved;
mod watch;

use std::process::ExitCode;

use buildcat_proto::dcc;
use clap::{CommandFactory, FromArgMatches};

use crate::args::{Cli, Command};

/// mimalloc rather than the system allocator: a server lives for months through bursts
/// (a flood of listings, a hostile peer, a 200 MB log) and glibc's malloc keeps what a burst
/// freed; mimalloc hands freed memory back to the system soon after, so the server's size
/// follows its load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_t`, the same in mimalloc 2 and
/// 3; the `libmimalloc-sys` crate names no constant for it).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// The purge delay the binary runs with, in milliseconds: none. mimalloc's default (1 s in
/// version 3) only schedules the purge; it is carried out when a thread next allocates or
/// frees, and a server that has gone quiet after a burst (hostile peers gone, a 200 MB output
/// stored) has idle tokio threads that do neither, so it kept 20-70 MiB of freed memory for
/// as long as it stayed quiet. Purging at once costs a `madvise` per freed span, a small
/// price next to the frames and replies that span them.
const PURGE_DELAY_MS: std::ffi::c_long = 0;

/// The environment variable with which an operator sets the purge delay (read by mimalloc
/// itself): when it is set, it wins over [`PURGE_DELAY_MS`].
const PURGE_DELAY_VARIABLE: &str = "MIMALLOC_PURGE_DELAY";

unsafe extern "C" {
    /// Sets a mimalloc option (in the static library the `mimalloc` crate links).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// Makes mimalloc hand freed memory back to the system at once rather than when a thread
/// next allocates (see [`PURGE_DELAY_MS`]).
fn configure_allocator() {
    if std::env::var_os(PURGE_DELAY_VARIABLE).is_none() {
        // SAFETY: mimalloc reads its options atomically and allows setting them at any time;
        // the option index is a valid `mi_option_t`.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

fn main() -> ExitCode {
    configure_allocator();
    let loaded = match config::load() {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // The file's values are the defaults: flags and environment variables still win.
    let matches = config::with_defaults(Cli::command(), &loaded).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Command::Config(args) = &cli.command {
        let sub = matches.subcommand_matches("config").unwrap_or(&matches);
        return report(config::show(args, sub, &loaded));
    }
    init_logging(cli.debug, cli.command.is_service());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    report(runtime.block_on(run(cli.command)))
}

/// The exit code of a command's result, saying the error on stderr.
fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mut command: Command) -> anyhow::Result<ExitCode> {
    // Scene paths typed from where the user stands become root-relative first.
    paths::place_render_paths(&mut command)?;
    let render = command.render_target();
    let result = dispatch(command).await;
    // A render submitted to a queue (or without a tool) nobody serves is said once it is
    // queued; with `--wait`, following it says so (and gives up).
    if let (Ok(_), Some((connection, queue, kind, gpus, false))) = (&result, &render)
        && let Ok(client) = connection.connect().await
    {
        unserved::warn(&client, queue, Some(kind), gpus).await;
    }
    result
}

/// Runs one command.
async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Server(args) => farm::server(args).await,
        Command::Worker(args) => farm::worker(args, 1).await,
        Command::Workers(args) => {
            let count = args.count;
            farm::worker(args.worker, count).await
        }
        Command::Farm(args) => farm::farm(args).await,
        Command::WorkerInfo(args) => submit::worker_info(args).await,
        Command::Info(args) => info::info(args).await,
        Command::Run(args) => jobs::run(args).await,
        Command::Logs(args) => jobs::logs(args).await,
        Command::Status(args) => jobs::status(args).await,
        Command::Jobs(args) => jobs::list(args).await,
        Command::Cancel(args) => steer::cancel(args).await,
        Command::WorkerEnable(args) => jobs::worker_enable(args).await,
        Command::WorkerPause(args) => steer::pause_workers(args, true).await,
        Command::WorkerResume(args) => steer::pause_workers(args, false).await,
        Command::Preview(args) => preview::preview(args).await,
        Command::Requeue(args) => steer::requeue(args).await,
        Command::Pause(args) => steer::pause(args).await,
        Command::Resume(args) => steer::resume(args).await,
        Command::Priority(args) => steer::priority(args).await,
        Command::Wait(args) => steer::wait(args).await,
        Command::Delete(args) => steer::delete(args).await,
        Command::Eta(args) => jobs::eta(args).await,
        Command::HoudiniInfo(args) => {
            submit::info_task(args, dcc::HoudiniInfo, Some("houdini")).await
        }
        Command::ModoInfo(args) => submit::info_task(args, dcc::ModoInfo, Some("modo")).await,
        Command::RedshiftInfo(args) => {
            submit::info_task(args, dcc::RedshiftInfo, Some("redshift")).await
        }
        Command::BlenderInfo(args) => {
            submit::info_task(args, dcc::BlenderInfo, Some("blender")).await
        }
        Command::HoudiniRenderHip(args) => render::houdini_hip(args).await,
        Command::HoudiniRenderIfd(args) => render::houdini_ifd(args).await,
        Command::HoudiniRenderUsd(args) => render::houdini_usd(args).await,
        Command::ModoRender(args) => render::modo(args).await,
        Command::RedshiftRender(args) => render::redshift(args).await,
        Command::BlenderRender(args) => render::blender(args).await,
        Command::ServerKeygen(args) => certs::keygen(certs::Side::Server, args),
        Command::ClientKeygen(args) => certs::keygen(certs::Side::Client, args),
        Command::CertificateInfo(args) => certs::certificate_info(args),
        Command::ServerTunnel(_) | Command::ClientTunnel(_) => {
            eprintln!("{TUNNEL_REPLACED}");
            Ok(ExitCode::FAILURE)
        }
        Command::Config(_) => Ok(ExitCode::SUCCESS),
        Command::Completions(args) => {
            let mut command = Cli::command();
            let mut out = Vec::new();
            clap_complete::generate(args.shell, &mut command, "buildcat", &mut out);
            print_raw(&out)
        }
        Command::Migrate(args) => migrate::migrate(args).await,
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            print_raw(&out)
        }
        Command::Version => {
            outln!("buildcat {}", buildcat_proto::SOFTWARE_VERSION);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes generated text to stdout as it is; a closed pipe ends quietly.
fn print_raw(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(anyhow::anyhow!("could not write to stdout: {e}")),
    }
}

/// What `server-tunnel` and `client-tunnel` print now that TLS is built in.
const TUNNEL_REPLACED: &str = "buildcat no longer needs socat tunnels: TLS with mutual \
certificates is built in. Make keys with `buildcat server-keygen --name HOST` (on the server) and \
`buildcat client-keygen` (once per client or worker host); start the server with \
`buildcat server --bind ADDR --tls-cert server.cert --tls-key server.key --client-ca clients.pem` \
(clients.pem: the client certificates it accepts, concatenated), and give every client and \
worker `--tls-ca server.cert --tls-cert client.cert --tls-key client.key`. See README.md, \
\"A secure farm\".";

/// Logs go to stderr. Services log at `info`, one-shot commands only warnings, `--debug`
/// shows everything; `RUST_LOG` overrides all of it.
fn init_logging(debug: bool, service: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (debug, service) {
        (true, _) => "debug",
        (false, true) => "info",
        (false, false) => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .with_target(debug)
        .init();
}
