//! The command line: every command, flag and default.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A render farm: a server that queues jobs, workers that run them, and this command to
/// start them and submit work.
#[derive(Debug, Parser)]
#[command(name = "buildcat", version = buildcat_proto::SOFTWARE_VERSION, propagate_version = true)]
pub struct Cli {
    /// Verbose logs (same as RUST_LOG=debug).
    #[arg(long, global = true)]
    pub debug: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: queues jobs and hands them to workers.
    Server(ServerArgs),
    /// Run one worker, serving QUEUEs in the order given, rooted at the current directory.
    Worker(WorkerArgs),
    /// Run N workers in one process.
    Workers(WorkersArgs),
    /// Run a whole single-host farm: a server and local workers rooted here.
    Farm(FarmArgs),
    /// Submit a worker-info job, wait for it and print what the worker reports.
    WorkerInfo(WorkerInfoArgs),
    /// Show the farm at a glance: queues with job counts, and workers.
    Info(InfoArgs),
    /// Run a program on a worker, in its root, without a shell.
    Run(RunArgs),
    /// Print a task's output (the only task of a job of one).
    Logs(LogsArgs),
    /// Show a job and its tasks, or one task: state, attempts, worker, times, reason, result.
    Status(StatusArgs),
    /// List jobs, newest first: number, name, submitter, state, tasks done, age.
    Jobs(JobsArgs),
    /// Cancel jobs or single tasks: queued tasks end at once, running ones are killed.
    Cancel(CancelArgs),
    /// Put failed or canceled tasks back in their queue (finished ones too with --all).
    Requeue(RequeueArgs),
    /// Hold jobs (or a whole queue): queued tasks wait, running ones finish.
    Pause(PauseArgs),
    /// Let paused jobs (or a paused queue) go on.
    Resume(PauseArgs),
    /// Change a job's priority: higher runs first within its queue.
    Priority(PriorityArgs),
    /// Follow jobs to their end with a progress bar; exit non-zero if one fails.
    Wait(WaitArgs),
    /// Remove ended jobs now, with their output and results.
    Delete(DeleteArgs),
    /// Let quarantined workers take work again (`info` shows which are, and why).
    WorkerEnable(WorkerEnableArgs),
    /// Pause workers: each finishes the task it runs and takes no new one until resumed
    /// (held while it reconnects; a server restart forgets it).
    WorkerPause(WorkerPauseArgs),
    /// Let paused workers take work again, at once.
    WorkerResume(WorkerPauseArgs),
    /// Save a job's newest frame preview (the last frame a task saved, 512 px) to a file.
    Preview(PreviewArgs),
    /// Watch a queue drain: its length, drain rate and when it will be empty.
    Eta(EtaArgs),
    /// Worker info plus Houdini's version (runs `hython` on a worker).
    HoudiniInfo(WorkerInfoArgs),
    /// Render frames of a .hip file with `hython` through any node that renders (a ROP, a
    /// Karma LOP, a File Cache SOP), as one job.
    HoudiniRenderHip(HoudiniHipArgs),
    /// Render .ifd files with `mantra -f FILE`, as one job of one task per file.
    HoudiniRenderIfd(HoudiniIfdArgs),
    /// Render frames of a USD file with `husk` (Karma or another Hydra delegate), as one
    /// job of one task per chunk of frames.
    HoudiniRenderUsd(HoudiniUsdArgs),
    /// Worker info plus Modo's version (runs `modo_cl` on a worker).
    ModoInfo(WorkerInfoArgs),
    /// Render frames start..stop (half-open) by step of a .lxo scene, as one job of one task
    /// per frame.
    ModoRender(ModoRenderArgs),
    /// Worker info plus Redshift's version (runs `redshiftCmdLine --version` on a worker).
    RedshiftInfo(WorkerInfoArgs),
    /// Render a .rs archive with `redshiftCmdLine`, on the worker's GPUs.
    RedshiftRender(RedshiftRenderArgs),
    /// Worker info plus Blender's version (runs `blender --version` on a worker).
    BlenderInfo(WorkerInfoArgs),
    /// Render frames of a .blend file with Blender, as one job of one task per chunk of
    /// frames.
    BlenderRender(BlenderRenderArgs),
    /// Make the server's private key and self-signed certificate (server.key, server.cert,
    /// server.pem).
    ServerKeygen(KeygenArgs),
    /// Make a client's (or worker's) private key and self-signed certificate (client.key,
    /// client.cert, client.pem).
    ClientKeygen(KeygenArgs),
    /// Print a certificate's subject, issuer, validity, names and fingerprint.
    CertificateInfo(CertificateInfoArgs),
    /// Replaced by built-in TLS (see `--tls-*`); prints how to get the same.
    ServerTunnel(TunnelArgs),
    /// Replaced by built-in TLS (see `--tls-*`); prints how to get the same.
    ClientTunnel(TunnelArgs),
    /// Print the version.
    Version,
    /// Print the effective settings and where each came from: a flag, an environment
    /// variable, the config file (~/.config/buildcat/config.toml or BUILDCAT_CONFIG), or the
    /// default.
    Config(ConfigArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(CompletionsArgs),
    /// Print the man page (roff), e.g. `buildcat man > ~/.local/share/man/man1/buildcat.1`.
    Man,
    /// Copy a farm's whole state from one storage to another, new one (e.g. from SQLite to
    /// PostgreSQL), while no server runs on either.
    Migrate(MigrateArgs),
}

/// `buildcat migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The storage to copy from: a SQLite file (a path, or `sqlite:PATH`) or a PostgreSQL
    /// database (`postgresql://USER@HOST:PORT/DATABASE`); it is not changed.
    #[arg(long, value_name = "PATH_OR_URL")]
    pub from: String,
    /// The storage to copy into, as for --from; it must be empty (a new file or database).
    #[arg(long, value_name = "PATH_OR_URL")]
    pub to: String,
    /// Print what was copied as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Command {
    /// Where a render command submits: its connection, queue, task kind, and whether it
    /// waits (and so checks for itself that a worker can run it).
    pub fn render_target(
        &self,
    ) -> Option<(
        Connection,
        String,
        &'static str,
        buildcat_proto::GpuRequirement,
        bool,
    )> {
        use buildcat_proto::Task;
        use buildcat_proto::dcc::{
            BlenderRender, HoudiniRenderHip, HoudiniRenderIfd, HoudiniRenderUsd, ModoRender,
            RedshiftRender,
        };
        let (connection, render, kind) = match self {
            Command::BlenderRender(args) => (&args.connection, &args.render, BlenderRender::KIND),
            Command::HoudiniRenderHip(args) => {
                (&args.connection, &args.render, HoudiniRenderHip::KIND)
            }
            Command::HoudiniRenderIfd(args) => {
                (&args.connection, &args.render, HoudiniRenderIfd::KIND)
            }
            Command::HoudiniRenderUsd(args) => {
                (&args.connection, &args.render, HoudiniRenderUsd::KIND)
            }
            Command::ModoRender(args) => (&args.connection, &args.render, ModoRender::KIND),
            Command::RedshiftRender(args) => (&args.connection, &args.render, RedshiftRender::KIND),
            _ => return None,
        };
        Some((
            connection.clone(),
            render.queue.clone(),
            kind,
            render.submit().gpu_requirement(),
            render.wait,
        ))
    }

    /// Long-running commands log at info by default.
    pub fn is_service(&self) -> bool {
        matches!(
            self,
            Command::Server(_) | Command::Worker(_) | Command::Workers(_) | Command::Farm(_)
        )
    }
}

/// Where the server is.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The server's host name or address; servers sharing a PostgreSQL store as a
    /// comma-separated list (`db1,db2:2230`), tried in order.
    #[arg(long, env = "BUILDCAT_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// The server's port.
    #[arg(long, env = "BUILDCAT_PORT", default_value_t = buildcat_proto::DEFAULT_PORT)]
    pub port: u16,
    /// The largest message accepted, in bytes.
    #[arg(long, default_value_t = buildcat_proto::DEFAULT_MAX_FRAME, hide = true)]
    pub max_frame: usize,
    /// Use TLS, with the files under ~/.buildcat/ unless the flags below name others
    /// (BUILDCAT_TLS takes 1/0, true/false, yes/no, on/off).
    #[arg(long, env = "BUILDCAT_TLS", value_parser = clap::builder::BoolishValueParser::new())]
    pub tls: bool,
    /// The server's certificate to trust (turns TLS on) [default: ~/.buildcat/server.cert].
    #[arg(long, value_name = "PATH", env = "BUILDCAT_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// This host's certificate (turns TLS on) [default: ~/.buildcat/client.cert].
    #[arg(long, value_name = "PATH", env = "BUILDCAT_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// This host's private key (turns TLS on) [default: ~/.buildcat/client.key].
    #[arg(long, value_name = "PATH", env = "BUILDCAT_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

impl Connection {
    /// The TLS files, when TLS is asked for.
    pub fn tls(&self) -> anyhow::Result<Option<buildcat_client::TlsOptions>> {
        if !self.tls && self.tls_ca.is_none() && self.tls_cert.is_none() && self.tls_key.is_none() {
            return Ok(None);
        }
        let home = buildcat_client::TlsOptions::in_home();
        Ok(Some(buildcat_client::TlsOptions {
            ca: pick(
                &self.tls_ca,
                home.as_ref().map(|h| h.ca.clone()),
                "--tls-ca",
            )?,
            cert: pick(
                &self.tls_cert,
                home.as_ref().map(|h| h.cert.clone()),
                "--tls-cert",
            )?,
            key: pick(
                &self.tls_key,
                home.as_ref().map(|h| h.key.clone()),
                "--tls-key",
            )?,
        }))
    }

    /// `host:port`, with brackets around an IPv6 address; for a comma-separated list of
    /// hosts (servers sharing a PostgreSQL store, tried in order), each with its own port
    /// or `--port`, joined by commas.
    pub fn addr(&self) -> String {
        if !self.host.contains(',') {
            return join_host_port(&self.host, self.port);
        }
        self.host
            .split(',')
            .map(str::trim)
            .filter(|host| !host.is_empty())
            .map(|host| with_port(host, self.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Connects to the server named on the command line.
    pub async fn connect(&self) -> anyhow::Result<buildcat_client::Client> {
        let options = buildcat_client::ClientOptions {
            max_frame: self.max_frame,
            tls: self.tls()?,
            ..buildcat_client::ClientOptions::default()
        };
        Ok(buildcat_client::Client::connect_with(&self.addr(), options).await?)
    }
}

/// A TLS file: the one given with its flag, else the default under ~/.buildcat/.
fn pick(given: &Option<PathBuf>, default: Option<PathBuf>, flag: &str) -> anyhow::Result<PathBuf> {
    given.clone().or(default).ok_or_else(|| {
        anyhow::anyhow!("{flag} is needed (HOME is not set, so ~/.buildcat cannot be used)")
    })
}

/// `host:port`, with brackets around an IPv6 address.
/// `host` if it names its port (`db1:2228`, `[::1]:2228`), else `host` with `port`.
fn with_port(host: &str, port: u16) -> String {
    let has_port = match host.rsplit_once(':') {
        Some((name, given)) => {
            given.parse::<u16>().is_ok() && (!name.contains(':') || name.ends_with(']'))
        }
        None => false,
    };
    if has_port {
        host.to_owned()
    } else {
        join_host_port(host, port)
    }
}

pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `buildcat server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The address to listen on; 0.0.0.0 (or ::) accepts every host.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// The port to listen on.
    #[arg(long, env = "BUILDCAT_PORT", default_value_t = buildcat_proto::DEFAULT_PORT)]
    pub port: u16,
    /// Where the jobs are kept: a SQLite file (a path, or `sqlite:PATH`), or a PostgreSQL
    /// database (`postgresql://USER@HOST:PORT/DATABASE`; password from PGPASSWORD or
    /// ~/.pgpass), which any number of servers share: one is active, the others stand by.
    #[arg(long, default_value = "buildcat.db")]
    pub storage: PathBuf,
    /// Where clients reach this server (`HOST:PORT`), which standbys of a PostgreSQL store
    /// tell the clients that reach them [default: this host's name and --port when bound
    /// to every interface, else --bind and --port].
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    #[command(flatten)]
    pub tuning: ServerTuning,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub notify: NotifyArgs,
    /// Require TLS with client certificates, with the files under ~/.buildcat/ unless the
    /// flags below name others.
    #[arg(long)]
    pub tls: bool,
    /// The server's certificate (turns TLS on) [default: ~/.buildcat/server.cert].
    #[arg(long, value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,
    /// The server's private key (turns TLS on) [default: ~/.buildcat/server.key].
    #[arg(long, value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
    /// The certificates of the clients and workers it accepts, concatenated (turns TLS on)
    /// [default: ~/.buildcat/clients.pem].
    #[arg(long, value_name = "PATH")]
    pub client_ca: Option<PathBuf>,
}

impl ServerArgs {
    /// The TLS files, when TLS is asked for.
    pub fn tls(&self) -> anyhow::Result<Option<buildcat_queue::ServerTls>> {
        if !self.tls
            && self.tls_cert.is_none()
            && self.tls_key.is_none()
            && self.client_ca.is_none()
        {
            return Ok(None);
        }
        let home = buildcat_queue::ServerTls::in_home();
        Ok(Some(buildcat_queue::ServerTls {
            cert: pick(
                &self.tls_cert,
                home.as_ref().map(|h| h.cert.clone()),
                "--tls-cert",
            )?,
            key: pick(
                &self.tls_key,
                home.as_ref().map(|h| h.key.clone()),
                "--tls-key",
            )?,
            client_ca: pick(
                &self.client_ca,
                home.as_ref().map(|h| h.client_ca.clone()),
                "--client-ca",
            )?,
        }))
    }
}

/// The HTTP API and metrics, for `server` and `farm`.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Where to serve the web page, the HTTP API (`/api/v1/`) and Prometheus metrics
    /// (`/metrics`); over HTTPS with the server's certificate when TLS is on
    /// [default: 127.0.0.1:2229, skipped with a warning when that port is taken].
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "no_http")]
    pub http: Option<String>,
    /// Serve no HTTP API or metrics.
    #[arg(long)]
    pub no_http: bool,
    /// A file holding the token HTTP requests must carry (`Authorization: Bearer TOKEN`);
    /// required when --http is beyond loopback, and required of every request once given.
    #[arg(long, value_name = "PATH", conflicts_with = "no_http")]
    pub http_token_file: Option<PathBuf>,
}

/// Notifications of ended jobs, for `server` and `farm`.
#[derive(Debug, Clone, Args)]
pub struct NotifyArgs {
    /// POST a JSON notification to URL when a job ends (repeatable): its name, submitter,
    /// task counts, times, a line of text for chat webhooks and a link to its page; retried
    /// with backoff while the receiver is down.
    #[arg(long, value_name = "URL")]
    pub notify: Vec<String>,
    /// Only for jobs that ended so (comma-separated) [default: every end].
    #[arg(
        long,
        value_name = "STATES",
        value_delimiter = ',',
        requires = "notify"
    )]
    pub notify_on: Vec<JobEnd>,
}

/// How a job may end, for `--notify-on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JobEnd {
    /// Every task finished.
    Finished,
    /// A task failed.
    Failed,
    /// Canceled by a person.
    Canceled,
}

impl NotifyArgs {
    /// The server's notification settings; `None` without `--notify`.
    pub fn options(&self) -> anyhow::Result<Option<buildcat_queue::notify::NotifyOptions>> {
        if self.notify.is_empty() {
            return Ok(None);
        }
        for url in &self.notify {
            buildcat_queue::notify::check_url(url).map_err(|e| anyhow::anyhow!("--notify {e}"))?;
        }
        let on = self
            .notify_on
            .iter()
            .map(|end| match end {
                JobEnd::Finished => buildcat_proto::JobState::Finished,
                JobEnd::Failed => buildcat_proto::JobState::Failed,
                JobEnd::Canceled => buildcat_proto::JobState::Canceled,
            })
            .collect();
        Ok(Some(buildcat_queue::notify::NotifyOptions {
            urls: self.notify.clone(),
            on,
            page: None,
        }))
    }
}

/// Server settings shared by `server` and `farm`. Each is bounded where it is parsed (the
/// parsers under [`ServerTuning`]'s impl): zero or absurd values would start a server no
/// one can use, or one that fails later with a message about something else.
#[derive(Debug, Clone, Args)]
pub struct ServerTuning {
    /// How long a finished or canceled job (its tasks, output and results) is kept after it
    /// ended, in hours (7 days by default; at most 87600, ten years); failed jobs are kept
    /// until `buildcat delete`.
    #[arg(
        long = "retention",
        visible_alias = "retention-hours",
        value_name = "HOURS",
        default_value_t = 168.0,
        value_parser = retention_hours
    )]
    pub retention_hours: f64,
    /// How often workers heartbeat, in seconds (0.1 to 600); three missed heartbeats lose a
    /// worker.
    #[arg(long, default_value_t = 5.0, value_parser = heartbeat)]
    pub heartbeat: f64,
    /// The largest message accepted, in bytes (512 KiB to 1 GiB).
    #[arg(long, default_value_t = buildcat_proto::DEFAULT_MAX_FRAME, value_parser = max_frame)]
    pub max_frame: usize,
    /// Connections beyond this many are refused (1 to 1000000).
    #[arg(long, default_value_t = 20_000, value_parser = max_connections)]
    pub max_connections: usize,
    /// How long a worker whose connection dropped has to come back and keep its job, in
    /// seconds (at most a day; workers stop a job themselves before this, so it never runs
    /// twice).
    #[arg(long, default_value_t = 60.0, value_parser = reconnect_grace)]
    pub reconnect_grace: f64,
    /// Different jobs a worker may fail in a row before it is quarantined (gets no work);
    /// 0 turns quarantine off.
    #[arg(long, default_value_t = 5)]
    pub quarantine_after: u32,
    /// How long a quarantine lasts, in seconds (at most a week); 0: until `buildcat
    /// worker-enable NAME`.
    #[arg(long, default_value_t = 900.0, value_parser = quarantine_cooldown)]
    pub quarantine_cooldown: f64,
    /// Bytes of output the server keeps per job (on disk, beside the jobs; 1 MiB to 1 TiB);
    /// past it, the first quarter and the newest three quarters are kept and `logs` says
    /// what was dropped between them.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = buildcat_queue::core::DEFAULT_MAX_LOG_BYTES,
        value_parser = max_log_bytes
    )]
    pub max_log_bytes: u64,
    /// Do not wait for the disk on commit (UNSAFE: a power loss can lose acknowledged
    /// jobs; for measuring what durability costs).
    #[arg(long, hide = true)]
    pub unsafe_no_sync: bool,
}

/// The smallest `--max-frame`: the largest messages whose size the protocol bounds are a
/// frame preview and a worker's batch of output lines (256 KiB each, plus their fields);
/// below this, workers and clients would fail with a frame error on ordinary messages.
const MIN_MAX_FRAME: usize = 512 << 10;

/// The most `--max-connections`: beyond any farm, and within what a hello's refusal can
/// name.
const MAX_CONNECTIONS: usize = 1_000_000;

/// The fastest heartbeat, in seconds: faster only loads the server with heartbeats.
const MIN_HEARTBEAT: f64 = 0.1;

/// The slowest heartbeat, in seconds: three missed lose a worker, and a dead worker
/// noticed after more than half an hour holds its task for nothing.
const MAX_HEARTBEAT: f64 = 600.0;

/// The longest `--retention`, in hours (ten years): longer is forever in practice, and
/// far larger values overflow the server's clock.
const MAX_RETENTION_HOURS: f64 = 87_600.0;

/// The longest `--reconnect-grace`, in seconds (a day): a lost worker's task waits that
/// long before it runs elsewhere.
const MAX_RECONNECT_GRACE: f64 = 86_400.0;

/// The longest `--quarantine-cooldown`, in seconds (a week); 0 already means "until
/// enabled by hand".
const MAX_QUARANTINE_COOLDOWN: f64 = 604_800.0;

/// The smallest `--max-log-bytes`: one page of output, so a job keeps the start and the
/// end of what it printed rather than almost nothing.
const MIN_MAX_LOG_BYTES: u64 = 1 << 20;

/// The largest `--max-log-bytes` (1 TiB): beyond any disk meant for job output.
const MAX_MAX_LOG_BYTES: u64 = 1 << 40;

/// A whole number of `what` from `text`, within `range`; outside it, the error says the
/// range and `why` it is bounded.
fn whole_in<T>(
    text: &str,
    range: std::ops::RangeInclusive<T>,
    what: &str,
    why: &str,
) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let value: T = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number of {what}"))?;
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{value} is outside {}..={} {what}: {why}",
            range.start(),
            range.end()
        ))
    }
}

/// A number of seconds or hours from `text`, within `range`.
fn number_in(text: &str, range: std::ops::RangeInclusive<f64>, unit: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of {unit}"))?;
    if value.is_finite() && range.contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "must be from {} to {} {unit}",
            range.start(),
            range.end()
        ))
    }
}

/// `--max-frame`.
fn max_frame(text: &str) -> Result<usize, String> {
    whole_in(
        text,
        MIN_MAX_FRAME..=buildcat_proto::codec::MAX_FRAME_LIMIT,
        "bytes",
        "smaller frames cannot carry a worker's output or a frame preview (512 KiB at least), \
         larger ones no codec takes (1 GiB at most)",
    )
}

/// `--max-connections`.
fn max_connections(text: &str) -> Result<usize, String> {
    whole_in(
        text,
        1..=MAX_CONNECTIONS,
        "connections",
        "with none the server would refuse everyone",
    )
}

/// `--heartbeat`.
fn heartbeat(text: &str) -> Result<f64, String> {
    number_in(text, MIN_HEARTBEAT..=MAX_HEARTBEAT, "seconds")
}

/// `--retention`.
fn retention_hours(text: &str) -> Result<f64, String> {
    number_in(text, 0.0..=MAX_RETENTION_HOURS, "hours")
}

/// `--reconnect-grace`.
fn reconnect_grace(text: &str) -> Result<f64, String> {
    number_in(text, 0.0..=MAX_RECONNECT_GRACE, "seconds")
}

/// `--quarantine-cooldown`.
fn quarantine_cooldown(text: &str) -> Result<f64, String> {
    number_in(text, 0.0..=MAX_QUARANTINE_COOLDOWN, "seconds")
}

/// `--max-log-bytes`.
fn max_log_bytes(text: &str) -> Result<u64, String> {
    whole_in(
        text,
        MIN_MAX_LOG_BYTES..=MAX_MAX_LOG_BYTES,
        "bytes",
        "a job keeps at least a page of output (1 MiB), and at most 1 TiB",
    )
}

/// `buildcat worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The shared storage root; job paths are relative to it [default: current directory].
    #[arg(long, env = "BUILDCAT_ROOT")]
    pub root: Option<PathBuf>,
    /// Exit after running this many tasks.
    #[arg(long, visible_alias = "max-jobs", value_name = "N")]
    pub max_tasks: Option<u64>,
    /// The worker's name on the farm [default: HOST-SLOT, e.g. render01-1: the lowest slot
    /// no other worker on this host holds, so the same on every start].
    #[arg(long)]
    pub name: Option<String>,
    /// Where the worker records its jobs' processes, so the next worker of the same name
    /// kills what it left running [default: $XDG_RUNTIME_DIR/buildcat, else
    /// $TMPDIR/buildcat-UID].
    #[arg(long, value_name = "DIR", env = "BUILDCAT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub tools: ToolArgs,
    #[command(flatten)]
    pub gpus: GpuArgs,
    /// Queues to serve, highest priority first.
    #[arg(default_value = "default")]
    pub queues: Vec<String>,
}

/// Which GPUs a worker uses and how its slots share them (issue 13).
#[derive(Debug, Clone, Default, Args)]
pub struct GpuArgs {
    /// The GPUs to use, by index as nvidia-smi numbers them (`0,2`), or `none`; an index
    /// not detected is still used, as a GPU of unknown make (with a warning) [default:
    /// every GPU detected].
    #[arg(long, value_name = "LIST")]
    pub gpus: Option<buildcat_worker::gpu::GpuSelection>,
    /// Give each worker slot K GPUs of its own, which its jobs alone see (slot i gets the
    /// GPUs i*K..i*K+K), or `auto`: one slot per GPU [default: every slot sees every GPU].
    #[arg(long, value_name = "K|auto")]
    pub gpus_per_slot: Option<buildcat_worker::gpu::GpusPerSlot>,
}

/// Where a worker finds its DCC tools.
#[derive(Debug, Clone, Default, Args)]
pub struct ToolArgs {
    /// A GPU index Redshift renders on (repeatable; `-gpu I` for each).
    #[arg(long = "redshift-gpu", value_name = "I")]
    pub redshift_gpus: Vec<u32>,
    /// The Blender executable [default: `blender` on PATH].
    #[arg(long, value_name = "PATH")]
    pub blender: Option<PathBuf>,
    /// Forbid scenes' Python (no `-y`): a render whose Python driver then does not run
    /// fails instead of rendering wrong pixels.
    #[arg(long)]
    pub blender_no_autoexec: bool,
    /// Blender's render threads (`-t`), so several workers on one host share its cores
    /// [default: all cores].
    #[arg(long, value_name = "N")]
    pub blender_threads: Option<u32>,
    /// The Cycles device for Blender renders that name none: CUDA, OPTIX, HIP, ONEAPI or
    /// METAL, optionally with +CPU [default: the CPU].
    #[arg(long, value_name = "DEVICE")]
    pub cycles_device: Option<String>,
    /// One Blender profile (HOME, configuration, caches such as compiled Cycles kernels)
    /// for every slot of this worker [default: each slot its own, under --state-dir,
    /// kept between tasks and restarts].
    #[arg(long, value_name = "DIR")]
    pub blender_profile: Option<PathBuf>,
    /// Empty the Blender profiles at start (e.g. after a driver update); only folders
    /// buildcat made are removed.
    #[arg(long)]
    pub blender_profile_reset: bool,
    /// The hython executable [default: `hython` on PATH].
    #[arg(long, value_name = "PATH")]
    pub hython: Option<PathBuf>,
    /// The mantra executable [default: `mantra` on PATH].
    #[arg(long, value_name = "PATH")]
    pub mantra: Option<PathBuf>,
    /// The husk executable, for USD renders [default: `husk` on PATH].
    #[arg(long, value_name = "PATH")]
    pub husk: Option<PathBuf>,
    /// The modo_cl executable [default: `modo_cl` on PATH].
    #[arg(long = "modo", value_name = "PATH")]
    pub modo_cl: Option<PathBuf>,
    /// The redshiftCmdLine executable [default: `redshiftCmdLine` on PATH].
    #[arg(long = "redshift", value_name = "PATH")]
    pub redshift: Option<PathBuf>,
}

/// `buildcat workers`.
#[derive(Debug, Args)]
pub struct WorkersArgs {
    /// How many workers to run [default with `--gpus-per-slot auto`: one per GPU].
    #[arg(short = 'n', long, required_unless_present = "gpus_per_slot")]
    pub count: Option<usize>,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

/// `buildcat farm`.
#[derive(Debug, Args)]
pub struct FarmArgs {
    /// How many local workers [default: one per core; with `--gpus-per-slot`, as many as
    /// the GPUs fill].
    #[arg(long)]
    pub workers: Option<usize>,
    /// The local workers' name on the farm: NAME, or NAME.1, NAME.2, ... for several
    /// [default: HOST-1, HOST-2, ...].
    #[arg(long)]
    pub name: Option<String>,
    /// Where the local workers record their jobs' processes and hold their name slots
    /// [default: $XDG_RUNTIME_DIR/buildcat, else $TMPDIR/buildcat-UID].
    #[arg(long, value_name = "DIR", env = "BUILDCAT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Where the jobs are kept: a SQLite file (a path, or `sqlite:PATH`), or a PostgreSQL
    /// database (`postgresql://USER@HOST:PORT/DATABASE`), as for `server`.
    #[arg(long, default_value = "buildcat.db")]
    pub storage: PathBuf,
    /// The port to listen on (loopback only).
    #[arg(long, env = "BUILDCAT_PORT", default_value_t = buildcat_proto::DEFAULT_PORT)]
    pub port: u16,
    /// Queues the local workers serve, highest priority first.
    #[arg(default_value = "default")]
    pub queues: Vec<String>,
    #[command(flatten)]
    pub tools: ToolArgs,
    #[command(flatten)]
    pub gpus: GpuArgs,
    #[command(flatten)]
    pub tuning: ServerTuning,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub notify: NotifyArgs,
}

/// `buildcat worker-info`.
#[derive(Debug, Args)]
pub struct WorkerInfoArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The queue to submit to.
    #[arg(long, default_value = "default")]
    pub queue: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Give up waiting after this many seconds (the job stays queued).
    #[arg(long)]
    pub timeout: Option<f64>,
}

/// `buildcat info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Refresh every this many seconds until Ctrl-C, through server restarts (reconnecting
    /// for up to 10 minutes).
    #[arg(long)]
    pub interval: Option<f64>,
}

/// Options shared by commands that submit jobs.
#[derive(Debug, Args)]
pub struct SubmitOptions {
    /// The job's name, shown in every listing [default: the program's file name].
    #[arg(long)]
    pub name: Option<String>,
    /// The queue to submit to.
    #[arg(long, default_value = "default")]
    pub queue: String,
    /// Kill an attempt after this many seconds.
    #[arg(long)]
    pub timeout: Option<f64>,
    /// How many times the job may be tried in all.
    #[arg(long, default_value_t = 1)]
    pub attempts: u32,
    /// Higher runs first within the queue.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,
    /// Start only after this job (every task of it, `42`) or task (`42.3`) has finished
    /// (repeatable).
    #[arg(long = "after", value_name = "JOB[.TASK]")]
    pub after: Vec<String>,
    /// Run each task only on a worker slot with this many GPUs (`info` shows each
    /// worker's; a slot owns its share with `worker --gpus-per-slot`).
    #[arg(long = "gpus", value_name = "N", default_value_t = 0)]
    pub gpus: u32,
    /// Run each task only on GPUs with at least this much memory, in MiB (needs a GPU even
    /// without `--gpus`).
    #[arg(long = "gpu-memory", value_name = "MIB")]
    pub gpu_memory: Option<u64>,
    /// Follow the job to its end; exit non-zero if it fails. Carries on through server
    /// restarts (reconnecting for up to 10 minutes).
    #[arg(long)]
    pub wait: bool,
    /// Print the submitted job as JSON (`job`, `number`, `tasks`). With `run --wait`,
    /// stdout holds only that JSON: everything the program prints goes to stderr.
    #[arg(long)]
    pub json: bool,
}

/// `buildcat run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub submit: SubmitOptions,
    /// A variable set for the program (repeatable). Needs workers of this version or later
    /// (older ones do not run such jobs; `info` says so).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// The directory to run in, relative to the farm root [default: the root].
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// The program and its arguments (after `--`).
    #[arg(required = true, last = true, value_name = "PROGRAM")]
    pub command: Vec<String>,
}

/// `buildcat logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The task, `42.3`; a job's number alone for its only task.
    #[arg(value_name = "JOB[.TASK]")]
    pub task: String,
    /// Keep printing new output until the task ends, through server restarts (reconnecting
    /// for up to 10 minutes).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Start at this byte of the output (as printed, a newline after each line) instead
    /// of its beginning.
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    pub from: u64,
}

/// `buildcat status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The job (`42`: it and its tasks) or one task (`42.3`: its attempts and result).
    #[arg(value_name = "JOB[.TASK]")]
    pub target: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `buildcat jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Only this queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// Only jobs in this state (queued, running, paused, finished, failed, canceled).
    #[arg(long)]
    pub state: Option<String>,
    /// Only jobs of this submitter: `user@host`, or `user` on any host.
    #[arg(long)]
    pub user: Option<String>,
    /// As many as the server lists in one reply (up to 1000), not only the newest 50.
    #[arg(long, conflicts_with = "limit")]
    pub all: bool,
    /// At most this many, newest first (1 to 1000; 0 is refused).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `buildcat cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Jobs (`42`: every task not ended) or single tasks (`42.3`).
    #[arg(required = true, value_name = "JOB[.TASK]")]
    pub targets: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `buildcat worker-enable`.
#[derive(Debug, Args)]
pub struct WorkerEnableArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The workers' names, as `buildcat info` shows them.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
}

/// `buildcat worker-pause` and `buildcat worker-resume`.
#[derive(Debug, Args)]
pub struct WorkerPauseArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The workers' names, as `buildcat info` shows them.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    /// Print JSON: `{"workers": [{"worker": NAME, "paused": BOOL}, ...]}`, with `error`
    /// in place of `paused` for a name the server refused.
    #[arg(long)]
    pub json: bool,
}

/// `buildcat preview`.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The job: its number (`42`) or id.
    #[arg(value_name = "JOB")]
    pub job: String,
    /// Where to save the image (default: `preview-JOB.jpg` or `.png` in the current
    /// directory). It is saved as the worker made it, never converted: a name ending in
    /// another format's extension (`.png` for a JPEG preview) is refused.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `buildcat requeue`.
#[derive(Debug, Args)]
pub struct RequeueArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Jobs (`42`: their failed and canceled tasks) or single tasks (`42.3`).
    #[arg(required_unless_present = "failed", value_name = "JOB[.TASK]")]
    pub targets: Vec<String>,
    /// Failed and canceled tasks (the default with JOBs); without JOBs, those of every
    /// failed job of yours (or `--user`'s), in `--queue` if given.
    #[arg(long, conflicts_with = "all")]
    pub failed: bool,
    /// Finished tasks too, to render again after a fix (running tasks are left alone).
    #[arg(long, requires = "targets")]
    pub all: bool,
    /// With `--failed` and no JOBs: only this queue.
    #[arg(long, requires = "failed", conflicts_with = "targets")]
    pub queue: Option<String>,
    /// With `--failed` and no JOBs: this submitter's jobs (`user@host`, or `user` on any
    /// host) instead of your own.
    #[arg(long, requires = "failed", conflicts_with = "targets")]
    pub user: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `buildcat pause` and `buildcat resume`.
#[derive(Debug, Args)]
pub struct PauseArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The jobs.
    #[arg(required_unless_present = "queue", value_name = "JOB")]
    pub jobs: Vec<String>,
    /// The whole queue instead (held until resumed, across server restarts); a queue no
    /// job or worker uses gets a warning naming the queues in use.
    #[arg(long, conflicts_with = "jobs")]
    pub queue: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `buildcat priority`.
#[derive(Debug, Args)]
pub struct PriorityArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The job.
    pub job: String,
    /// Its new priority: higher runs first within its queue.
    #[arg(allow_negative_numbers = true)]
    pub priority: i32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `buildcat wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The jobs.
    #[arg(required = true, value_name = "JOB")]
    pub jobs: Vec<String>,
}

/// `buildcat delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The jobs; each must have ended (cancel it first).
    #[arg(required = true, value_name = "JOB")]
    pub jobs: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `buildcat eta`.
#[derive(Debug, Args)]
pub struct EtaArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The queue to watch (a queue no job or worker uses gets a warning).
    #[arg(long, default_value = "default")]
    pub queue: String,
    /// Seconds between samples.
    #[arg(long, default_value_t = 5.0)]
    pub interval: f64,
    /// Samples in the moving average of the drain rate.
    #[arg(long, default_value_t = 60)]
    pub count: usize,
}

/// Options of the render commands (the original's defaults: timeout 900 s).
#[derive(Debug, Args)]
pub struct RenderOptions {
    /// The farm root as this host sees it: scene paths typed relative to the current
    /// directory inside it, or absolute inside it, are made relative to it, and a missing
    /// scene is refused before submitting [default: none; paths are root-relative as typed].
    #[arg(long, env = "BUILDCAT_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// The job's name, shown in every listing [default: the scene's file name and frames].
    #[arg(long)]
    pub name: Option<String>,
    /// The queue to submit to.
    #[arg(long, default_value = "default")]
    pub queue: String,
    /// Kill an attempt after this many seconds.
    #[arg(long, default_value_t = 900.0)]
    pub timeout: f64,
    /// How many times each task may be tried in all.
    #[arg(long, default_value_t = 1)]
    pub attempts: u32,
    /// Higher runs first within the queue.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,
    /// Start only after this job (every task of it, `42`) or task (`42.3`) has finished
    /// (repeatable).
    #[arg(long = "after", value_name = "JOB[.TASK]")]
    pub after: Vec<String>,
    /// Run each task only on a worker slot with this many GPUs (`info` shows each
    /// worker's; a slot owns its share with `worker --gpus-per-slot`).
    #[arg(long = "gpus", value_name = "N", default_value_t = 0)]
    pub gpus: u32,
    /// Run each task only on GPUs with at least this much memory, in MiB (needs a GPU even
    /// without `--gpus`).
    #[arg(long = "gpu-memory", value_name = "MIB")]
    pub gpu_memory: Option<u64>,
    /// Render on a GPU: each task needs a worker slot with one (with `--gpus N`, N), and
    /// blender-render renders Cycles on it (`--cycles-device GPU`: the slot's GPU API).
    #[arg(long)]
    pub gpu: bool,
    /// Follow the job to its end with a progress bar of tasks done; exit non-zero if it
    /// fails.
    /// Carries on through server restarts (reconnecting for up to 10 minutes).
    #[arg(long)]
    pub wait: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

impl SubmitOptions {
    /// What each task needs of a GPU, as `--gpus` and `--gpu-memory` say (checked by
    /// [`crate::jobs::job_options`]).
    pub fn gpu_requirement(&self) -> buildcat_proto::GpuRequirement {
        buildcat_proto::GpuRequirement {
            count: self.gpus,
            memory_mib: self.gpu_memory.unwrap_or(0),
        }
    }
}

impl RenderOptions {
    /// As the generic submit options.
    pub fn submit(&self) -> SubmitOptions {
        SubmitOptions {
            name: self.name.clone(),
            queue: self.queue.clone(),
            timeout: Some(self.timeout),
            attempts: self.attempts,
            priority: self.priority,
            after: self.after.clone(),
            gpus: if self.gpu {
                self.gpus.max(1)
            } else {
                self.gpus
            },
            gpu_memory: self.gpu_memory,
            wait: self.wait,
            json: self.json,
        }
    }
}

/// `buildcat houdini-render-hip`.
#[derive(Debug, Args)]
pub struct HoudiniHipArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub render: RenderOptions,
    /// The .hip file, relative to the farm root.
    pub hip: String,
    /// Frames to render, e.g. `1,7,9,10-25,75-100:2`.
    #[arg(long, default_value = "1")]
    pub frames: String,
    /// The node to render: a ROP, a render LOP (Karma), a File Cache SOP, or any node
    /// with an `execute` button.
    #[arg(long, default_value = "/out/mantra_ipr")]
    pub rop: String,
}

/// `buildcat houdini-render-ifd`.
#[derive(Debug, Args)]
pub struct HoudiniIfdArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub render: RenderOptions,
    /// The .ifd files, relative to the farm root.
    #[arg(required = true)]
    pub ifds: Vec<String>,
}

/// `buildcat houdini-render-usd`.
#[derive(Debug, Args)]
pub struct HoudiniUsdArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub render: RenderOptions,
    /// The USD file, relative to the farm root.
    pub usd: String,
    /// Frames to render, e.g. `1-100` or `1,7,10-25:5` [default: the one frame husk
    /// picks, the stage's start].
    #[arg(long)]
    pub frames: Option<String>,
    /// Frames per task: each task is one husk run, loading the stage once.
    #[arg(long, default_value_t = 1)]
    pub chunk: usize,
    /// The Hydra delegate: `karma`, `karmaxpu`, or a delegate's own name [default: the
    /// file's render settings].
    #[arg(long, value_name = "NAME")]
    pub renderer: Option<String>,
    /// The image pattern (husk's `-o`), relative to the farm root, `$F4` for the frame
    /// [default: the file's render products].
    #[arg(long, value_name = "PATTERN")]
    pub output: Option<String>,
}

/// `buildcat modo-render`.
#[derive(Debug, Args)]
pub struct ModoRenderArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub render: RenderOptions,
    /// The .lxo scene, relative to the farm root.
    pub lxo: String,
    /// The first frame.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub start: i64,
    /// One past the last frame.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub stop: i64,
    /// The distance between frames.
    #[arg(long, default_value_t = 1)]
    pub step: i64,
}

/// `buildcat redshift-render`.
#[derive(Debug, Args)]
pub struct RedshiftRenderArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub render: RenderOptions,
    /// The .rs archive, relative to the farm root.
    pub rs: String,
    /// An argument for `redshiftCmdLine`, after the GPUs (repeatable, in order), e.g.
    /// `--redshift-arg -oip --redshift-arg renders/a.exr` to override the image's path.
    #[arg(long = "redshift-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub redshift_args: Vec<String>,
}

/// `buildcat blender-render`.
#[derive(Debug, Args)]
pub struct BlenderRenderArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub render: RenderOptions,
    /// The .blend file, relative to the farm root.
    pub blend: String,
    /// Frames to render, e.g. `1-250`, `1,7,10-25:5` or `1-100x2` (see the README)
    /// [default: the scene's own range, read from the file on a worker].
    #[arg(long, allow_hyphen_values = true)]
    pub frames: Option<String>,
    /// Frames per task.
    #[arg(long, default_value_t = 1)]
    pub chunk: usize,
    /// The scene inside the .blend file to render (Blender's `-S`).
    #[arg(long, short = 'S', value_name = "NAME")]
    pub scene: Option<String>,
    /// The Cycles device: CUDA, OPTIX, HIP, ONEAPI, METAL or GPU (the worker slot's GPU
    /// API), optionally with +CPU [default: the worker's `--cycles-device`; GPU with
    /// `--gpu`].
    #[arg(long, value_name = "DEVICE")]
    pub cycles_device: Option<String>,
    /// Python to run once the scene is loaded (Blender's `--python-expr`).
    #[arg(long, value_name = "CODE")]
    pub python_expr: Option<String>,
    /// An argument passed to Blender before `-f` (repeatable, in order).
    #[arg(long = "blender-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub blender_args: Vec<String>,
    /// Render even when linked libraries are missing (the frames lack their assets).
    #[arg(long)]
    pub allow_missing_libraries: bool,
    /// Only warn when Blender writes a file outside the farm root.
    #[arg(long)]
    pub allow_outside_root: bool,
    /// Render a movie format (FFMPEG) anyway, as one task of the whole range.
    #[arg(long)]
    pub movie: bool,
    /// Output pattern, relative to the root, e.g. `renders/shot_####` (Blender's `-o`).
    #[arg(long)]
    pub output: Option<String>,
    /// Image format, e.g. PNG, JPEG, OPEN_EXR (Blender's `-F`; movies need `--movie`).
    #[arg(long)]
    pub format: Option<String>,
    /// Render engine: CYCLES, EEVEE (named for the worker's Blender version) or
    /// BLENDER_WORKBENCH (Blender's `-E`).
    #[arg(long)]
    pub engine: Option<String>,
}

/// `server-keygen` and `client-keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The name in the certificate: for a server, the host name or IP address clients use
    /// to reach it [default: localhost for a server, this host's name for a client].
    #[arg(long)]
    pub name: Option<String>,
    /// How many days the certificate is valid.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Country (C).
    #[arg(long)]
    pub country: Option<String>,
    /// State or province (ST).
    #[arg(long)]
    pub state: Option<String>,
    /// Locality (L).
    #[arg(long)]
    pub locality: Option<String>,
    /// Organization (O).
    #[arg(long)]
    pub organization: Option<String>,
    /// Organizational unit (OU).
    #[arg(long)]
    pub unit: Option<String>,
    /// Email address.
    #[arg(long)]
    pub email: Option<String>,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
    /// Where to write the files [default: the current directory].
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// `certificate-info`.
#[derive(Debug, Args)]
pub struct CertificateInfoArgs {
    /// A PEM file holding one or more certificates.
    pub path: PathBuf,
}

/// `buildcat config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The shared storage root as this host sees it.
    #[arg(long, env = "BUILDCAT_ROOT")]
    pub root: Option<PathBuf>,
    /// The queue jobs are submitted to.
    #[arg(long, default_value = "default")]
    pub queue: String,
    /// Print JSON: `{"file", "settings": {KEY: {"value", "source"}}}`.
    #[arg(long)]
    pub json: bool,
}

/// `buildcat completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// `server-tunnel` and `client-tunnel` (kept so old scripts get an explanation).
#[derive(Debug, Args)]
pub struct TunnelArgs {
    /// Whatever the old command took; ignored.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tester finding 11: values that start a server nobody can use are refused at start.
    #[test]
    fn server_flags_refuse_values_that_make_the_server_useless() {
        assert!(max_frame("1").is_err_and(|e| e.contains("512 KiB")));
        assert_eq!(max_frame("1000000"), Ok(1_000_000));
        assert!(max_frame("2000000000").is_err());
        assert!(max_connections("0").is_err_and(|e| e.contains("refuse everyone")));
        assert_eq!(max_connections("1"), Ok(1));
        assert!(heartbeat("0").is_err());
        assert!(heartbeat("1e300").is_err());
        assert!(heartbeat("NaN").is_err());
        assert_eq!(heartbeat("0.5"), Ok(0.5));
        assert!(retention_hours("-1").is_err());
        assert!(retention_hours("inf").is_err());
        assert_eq!(retention_hours("0.0005"), Ok(0.0005));
        assert!(reconnect_grace("1e20").is_err());
        assert!(quarantine_cooldown("1e20").is_err());
        assert!(max_log_bytes("0").is_err());
        assert!(max_log_bytes("ten").is_err_and(|e| e.contains("not a whole number")));
        let parsed = Cli::try_parse_from(["buildcat", "server", "--max-connections", "0"]);
        assert!(parsed.is_err_and(|e| e.to_string().contains("--max-connections")));
    }
}
