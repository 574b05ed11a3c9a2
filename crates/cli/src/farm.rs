//! The long-running commands: `server`, `worker`, `workers` and `farm`.

use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use buildcat_queue::ServerConfig;
use buildcat_worker::{Tool, Worker};
use tokio::net::TcpListener;

use crate::args::{
    Connection, FarmArgs, HttpArgs, ServerArgs, ServerTuning, WorkerArgs, join_host_port,
};
use crate::stop::{CountRunning, STOPPED_NOW, Stop, shutdown_signal};

/// The server's settings from its flags, which their parsers bounded (`args::ServerTuning`).
fn server_config(storage: &Path, tuning: &ServerTuning) -> anyhow::Result<ServerConfig> {
    let mut config = ServerConfig::new(storage);
    config.sync = !tuning.unsafe_no_sync;
    config.max_frame = tuning.max_frame;
    config.max_connections = tuning.max_connections;
    config.core.heartbeat = Duration::from_secs_f64(tuning.heartbeat);
    config.core.retention = Duration::from_secs_f64(tuning.retention_hours * 3600.0);
    config.core.reconnect_grace = Duration::from_secs_f64(tuning.reconnect_grace);
    config.core.quarantine_after = tuning.quarantine_after;
    config.core.quarantine_cooldown = Duration::from_secs_f64(tuning.quarantine_cooldown);
    config.core.max_log_bytes = tuning.max_log_bytes;
    Ok(config)
}

async fn bind(host: &str, port: u16) -> anyhow::Result<TcpListener> {
    let addr = join_host_port(host, port);
    TcpListener::bind(&addr).await.map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "the port is in use (is another server running? try --port)".to_owned()
            }
            std::io::ErrorKind::AddrNotAvailable => {
                "no interface of this host has that address (check --bind)".to_owned()
            }
            std::io::ErrorKind::PermissionDenied => {
                "permission denied (ports below 1024 need privileges)".to_owned()
            }
            _ => e.to_string().to_lowercase(),
        };
        anyhow::anyhow!("could not listen on {addr}: {why}")
    })
}

/// Where the HTTP API listens unless told: loopback, the port after the protocol's.
const DEFAULT_HTTP: &str = "127.0.0.1:2229";

/// How to make a token file, for the messages that ask for one.
const MAKE_TOKEN: &str = "make one with `head -c 32 /dev/urandom | base64 > ~/.buildcat/http.token && chmod 600 ~/.buildcat/http.token`";

/// Binds the HTTP API as `args` say: `None` with `--no-http`, or when the default port is
/// taken (another server on this host; said with a warning). A token is required beyond
/// loopback. With `tls`, the server serves it over HTTPS with its own certificate.
async fn bind_http(
    args: &HttpArgs,
    tls: bool,
) -> anyhow::Result<Option<(TcpListener, buildcat_queue::http::HttpOptions)>> {
    if args.no_http {
        return Ok(None);
    }
    let token = match &args.http_token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("could not read the HTTP token file {}", path.display())
            })?;
            let token = text.trim().to_owned();
            if token.is_empty() || token.contains(char::is_whitespace) {
                bail!(
                    "the HTTP token file {} must hold one token without spaces; {MAKE_TOKEN}",
                    path.display()
                );
            }
            Some(token)
        }
        None => None,
    };
    let addr = args.http.as_deref().unwrap_or(DEFAULT_HTTP);
    // Checked before binding, so a refused address is never open even for a moment.
    let resolved: Vec<std::net::SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .with_context(|| {
            format!("could not resolve the HTTP API's address {addr}; give --http ADDR:PORT, such as 127.0.0.1:2229")
        })?
        .collect();
    if token.is_none() && resolved.iter().any(|a| !a.ip().is_loopback()) {
        bail!(
            "the HTTP API on {addr} would be reachable beyond this host without a token; give \
             --http-token-file PATH ({MAKE_TOKEN}), or bind --http to 127.0.0.1"
        );
    }
    let listener = match TcpListener::bind(resolved.as_slice()).await {
        Ok(listener) => listener,
        Err(e) if args.http.is_none() && e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::warn!(
                addr,
                "the http api is off: its default port is in use (another server on this host?); give --http ADDR:PORT or --no-http"
            );
            return Ok(None);
        }
        Err(e) => {
            return Err(anyhow::anyhow!(
                "could not serve the HTTP API on {addr}: {}; give another --http ADDR:PORT or --no-http",
                e.to_string().to_lowercase()
            ));
        }
    };
    let local = listener
        .local_addr()
        .context("could not read the HTTP API's address")?;
    let scheme = if tls { "https" } else { "http" };
    eprintln!(
        "buildcat: web page on {scheme}://{local}/, HTTP API on {scheme}://{local}/api/v1/ and metrics on {scheme}://{local}/metrics{}",
        if token.is_some() {
            " (token required)"
        } else {
            ""
        }
    );
    Ok(Some((
        listener,
        buildcat_queue::http::HttpOptions { token },
    )))
}

/// Refuses `--bind 127.0.0.1:2243`: the address takes no port, the port has its flag.
fn check_bind(bind: &str) -> anyhow::Result<()> {
    if let Ok(addr) = bind.parse::<std::net::SocketAddr>() {
        bail!(
            "--bind takes an address without a port; the port goes in --port: `--bind {} --port {}`",
            addr.ip(),
            addr.port()
        );
    }
    if let Some((host, port)) = bind.rsplit_once(':')
        && !host.contains(':')
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
    {
        bail!(
            "--bind takes an address without a port; the port goes in --port: `--bind {host} --port {port}`"
        );
    }
    Ok(())
}

/// Storage a server made for this start: removed again when the server cannot start, so a
/// mistyped flag leaves no empty database behind. A file that was there before is kept.
struct NewStorage {
    /// The database file, when it did not exist before this start.
    made: Option<std::path::PathBuf>,
}

impl NewStorage {
    /// Notes whether `path` exists before the server opens it.
    fn before_open(path: &Path) -> NewStorage {
        NewStorage {
            made: (!path.exists()).then(|| path.to_owned()),
        }
    }

    /// Removes the file (and SQLite's `-wal` and `-shm` beside it) if this start made it;
    /// call once the server holding it has been dropped.
    fn remove(&self) {
        let Some(path) = &self.made else {
            return;
        };
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(std::path::PathBuf::from(name));
        }
    }
}

/// Binds the protocol's and the HTTP API's listeners for a server that has opened its
/// storage; on failure the server is dropped (releasing its storage) and storage this start
/// made is removed.
async fn bind_both(
    opened: buildcat_queue::Server,
    storage: &NewStorage,
    host: &str,
    port: u16,
    http: &HttpArgs,
    tls: bool,
) -> anyhow::Result<(buildcat_queue::Server, TcpListener)> {
    let bound = async {
        let listener = bind(host, port).await?;
        let http = bind_http(http, tls).await?;
        anyhow::Ok((listener, http))
    }
    .await;
    match bound {
        Ok((listener, Some((http_listener, options)))) => {
            Ok((opened.with_http(http_listener, options), listener))
        }
        Ok((listener, None)) => Ok((opened, listener)),
        Err(error) => {
            drop(opened);
            storage.remove();
            Err(error)
        }
    }
}

/// The SQLite file `--storage` names: `sqlite:PATH` or a bare path.
fn sqlite_path(storage: &Path) -> std::path::PathBuf {
    match storage
        .to_str()
        .and_then(|text| text.strip_prefix("sqlite:"))
    {
        Some(path) => std::path::PathBuf::from(path),
        None => storage.to_owned(),
    }
}

/// Where clients reach a server listening on `listener` bound to `bind`, unless
/// `--advertise` says: the host's name when bound to every interface.
fn advertised(bind: &str, listener: &TcpListener) -> anyhow::Result<String> {
    let port = listener
        .local_addr()
        .context("could not read the listening address")?
        .port();
    let unspecified = bind
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified());
    let host = if unspecified {
        hostname::get()
            .ok()
            .and_then(|name| name.into_string().ok())
            .unwrap_or_else(|| bind.to_owned())
    } else {
        bind.to_owned()
    };
    Ok(join_host_port(&host, port))
}

/// Opens a server on a PostgreSQL store (`shown` as messages name it), standing by while
/// another server is active on it; with its HTTP shell when `http` is given (a standby
/// answers there meanwhile). `None` when Ctrl-C came first.
async fn open_postgres(
    config: ServerConfig,
    options: buildcat_queue::store::postgres::PostgresOptions,
    listener: &TcpListener,
    http: Option<(TcpListener, buildcat_queue::http::HttpOptions)>,
    shown: &str,
) -> anyhow::Result<Option<buildcat_queue::Server<buildcat_queue::store::postgres::PostgresStore>>>
{
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let opened = buildcat_queue::Server::open_postgres(
        config,
        options,
        listener,
        http.as_ref().map(|(listener, _)| listener),
        shutdown.as_mut(),
    )
    .await
    .with_context(|| format!("server with storage {shown}"))?;
    Ok(opened.map(|opened| match http {
        Some((http_listener, options)) => opened.with_http(http_listener, options),
        None => opened,
    }))
}

/// `buildcat server --storage postgresql://...`: binds first, stands by while another server
/// is active on the database (refusing hellos with its address), then serves.
async fn server_postgres(
    args: ServerArgs,
    notify: Option<buildcat_queue::notify::NotifyOptions>,
) -> anyhow::Result<ExitCode> {
    use buildcat_queue::store::postgres::{PostgresOptions, connection_config};
    let url = args.storage.to_string_lossy().into_owned();
    let (_, shown) = connection_config(&url).context("server with PostgreSQL storage")?;
    let mut config = server_config(Path::new(&shown), &args.tuning)?;
    config.tls = args.tls()?;
    let listener = bind(&args.bind, args.port).await?;
    let http = bind_http(&args.http, config.tls.is_some()).await?;
    let advertise = match &args.advertise {
        Some(advertise) => advertise.clone(),
        None => advertised(&args.bind, &listener)?,
    };
    let options = PostgresOptions { url, advertise };
    let Some(opened) = open_postgres(config, options, &listener, http, &shown).await? else {
        return Ok(ExitCode::SUCCESS);
    };
    let opened = match notify {
        Some(options) => opened.with_notify(options),
        None => opened,
    };
    opened
        .serve(listener, shutdown_signal())
        .await
        .with_context(|| format!("server with storage {shown}"))?;
    Ok(ExitCode::SUCCESS)
}

/// `buildcat server`.
pub async fn server(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let notify = args.notify.options()?;
    check_bind(&args.bind)?;
    if buildcat_queue::store::postgres::is_postgres_url(&args.storage.to_string_lossy()) {
        return server_postgres(args, notify).await;
    }
    let path = sqlite_path(&args.storage);
    let mut config = server_config(&path, &args.tuning)?;
    config.tls = args.tls()?;
    let tls = config.tls.is_some();
    let storage = NewStorage::before_open(&path);
    // Storage first: a second server on the same file fails before it accepts anyone.
    let opened = buildcat_queue::Server::open(config)
        .await
        .with_context(|| format!("server with storage {}", path.display()))?;
    let (opened, listener) =
        bind_both(opened, &storage, &args.bind, args.port, &args.http, tls).await?;
    let opened = match notify {
        Some(options) => opened.with_notify(options),
        None => opened,
    };
    let loopback = args
        .bind
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(args.bind == "localhost");
    if !loopback && !tls {
        tracing::warn!(
            bind = %args.bind,
            "listening beyond this host without TLS: anyone who can reach this port can run jobs on your workers"
        );
    }
    opened
        .serve(listener, shutdown_signal())
        .await
        .with_context(|| format!("server with storage {}", path.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// The worker of `args`, with `count` slots (`None`: one per GPU, under `--gpus-per-slot
/// auto`).
fn build_worker(args: &WorkerArgs, addr: String, count: Option<usize>) -> anyhow::Result<Worker> {
    if count == Some(0) {
        bail!("-n/--count must be at least 1");
    }
    let root = match &args.root {
        Some(root) => root.clone(),
        None => std::env::current_dir().context("could not read the current directory")?,
    };
    let mut builder = Worker::builder()
        .server(addr)
        .queues(args.queues.iter().cloned())
        .root(root)
        .max_tasks(args.max_tasks)
        .max_frame(args.connection.max_frame);
    if let Some(count) = count {
        builder = builder.concurrency(count);
    }
    if let Some(selection) = &args.gpus.gpus {
        builder = builder.gpus(selection.clone());
    }
    if let Some(share) = args.gpus.gpus_per_slot {
        builder = builder.gpus_per_slot(share);
    }
    if let Some(name) = &args.name {
        builder = builder.name(name.clone());
    }
    if let Some(state_dir) = &args.state_dir {
        builder = builder.state_dir(state_dir.clone());
    }
    let tools = &args.tools;
    builder = builder.redshift_gpus(tools.redshift_gpus.iter().copied());
    if let Some(device) = &tools.cycles_device {
        buildcat_proto::dcc::check_cycles_device(device)
            .map_err(|e| anyhow::anyhow!("--cycles-device: {e}"))?;
    }
    builder = builder.blender_options(buildcat_worker::BlenderOptions {
        no_autoexec: tools.blender_no_autoexec,
        cycles_device: tools.cycles_device.clone(),
        threads: tools.blender_threads,
        profile: tools.blender_profile.clone(),
        reset_profile: tools.blender_profile_reset,
    });
    let given = [
        (Tool::Blender, &tools.blender),
        (Tool::Hython, &tools.hython),
        (Tool::Mantra, &tools.mantra),
        (Tool::Husk, &tools.husk),
        (Tool::ModoCl, &tools.modo_cl),
        (Tool::RedshiftCmdLine, &tools.redshift),
    ];
    for (tool, path) in given {
        if let Some(path) = path {
            builder = builder.tool_path(tool, path.clone());
        }
    }
    if let Some(tls) = args.connection.tls()? {
        builder = builder.tls(tls);
    }
    Ok(builder.build()?)
}

/// `buildcat worker` (count 1) and `buildcat workers -n N` (no count: one per GPU, under
/// `--gpus-per-slot auto`).
pub async fn worker(args: WorkerArgs, count: impl Into<Option<usize>>) -> anyhow::Result<ExitCode> {
    let worker = build_worker(&args, args.connection.addr(), count.into())?;
    let stop = Stop::listen(count_running(&worker));
    run_workers(worker, &stop).await
}

/// Runs the workers until they stop by themselves or are stopped: the first signal lets
/// running jobs finish and be reported, the second kills them and reports them as
/// interrupted, so the server puts them back in their queue at once.
async fn run_workers(worker: Worker, stop: &Stop) -> anyhow::Result<ExitCode> {
    let handle = worker.shutdown_handle();
    let run = worker.run(stop.finishing());
    tokio::pin!(run);
    tokio::select! {
        result = &mut run => {
            result?;
            Ok(ExitCode::SUCCESS)
        }
        () = stop.now() => {
            handle.stop_now();
            run.await?;
            Ok(ExitCode::from(STOPPED_NOW))
        }
    }
}

/// Counts the jobs `worker` runs now, for the first signal's message.
fn count_running(worker: &Worker) -> CountRunning {
    let handle = worker.shutdown_handle();
    Box::new(move || {
        let running = handle.running_tasks();
        Box::pin(async move { Some(running) })
    })
}

/// `buildcat farm`: a server and local workers in one process.
pub async fn farm(args: FarmArgs) -> anyhow::Result<ExitCode> {
    let notify = args.notify.options()?;
    let count = match args.workers {
        Some(0) => bail!("--workers must be at least 1 (or leave it out: one per core)"),
        Some(count) => Some(count),
        // As many as the GPUs fill (one per GPU with `auto`): the worker counts them.
        None if args.gpus.gpus_per_slot.is_some() => None,
        None => Some(std::thread::available_parallelism().map_or(1, |n| n.get())),
    };
    let url = args.storage.to_string_lossy().into_owned();
    if buildcat_queue::store::postgres::is_postgres_url(&url) {
        use buildcat_queue::store::postgres::{PostgresOptions, connection_config};
        let (_, shown) = connection_config(&url).context("farm with PostgreSQL storage")?;
        let config = server_config(Path::new(&shown), &args.tuning)?;
        let listener = bind("127.0.0.1", args.port).await?;
        let http = bind_http(&args.http, false).await?;
        let advertise = advertised("127.0.0.1", &listener)?;
        let options = PostgresOptions { url, advertise };
        let Some(opened) = open_postgres(config, options, &listener, http, &shown).await? else {
            return Ok(ExitCode::SUCCESS);
        };
        return run_farm(args, opened, listener, count, notify, &shown).await;
    }
    let config = server_config(&args.storage, &args.tuning)?;
    let storage = NewStorage::before_open(&args.storage);
    // Storage first, as for `server`: a farm on a file another server holds fails at once.
    let opened = buildcat_queue::Server::open(config)
        .await
        .with_context(|| format!("server with storage {}", args.storage.display()))?;
    let (opened, listener) =
        bind_both(opened, &storage, "127.0.0.1", args.port, &args.http, false).await?;
    let shown = args.storage.display().to_string();
    run_farm(args, opened, listener, count, notify, &shown).await
}

/// The rest of `buildcat farm` once its server holds its storage (`shown` as messages name
/// it): starts the local workers and serves until they stop.
async fn run_farm<S: buildcat_queue::store::Store>(
    args: FarmArgs,
    opened: buildcat_queue::Server<S>,
    listener: TcpListener,
    count: Option<usize>,
    notify: Option<buildcat_queue::notify::NotifyOptions>,
    shown: &str,
) -> anyhow::Result<ExitCode> {
    let opened = match notify {
        Some(options) => opened.with_notify(options),
        None => opened,
    };
    let addr = listener
        .local_addr()
        .context("could not read the listening address")?;
    let worker_args = WorkerArgs {
        connection: Connection {
            host: addr.ip().to_string(),
            port: addr.port(),
            max_frame: args.tuning.max_frame,
            tls: false,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
        },
        root: None,
        max_tasks: None,
        name: args.name.clone(),
        state_dir: args.state_dir.clone(),
        tools: args.tools.clone(),
        gpus: args.gpus.clone(),
        queues: args.queues.clone(),
    };
    let worker = build_worker(&worker_args, addr.to_string(), count)?;
    let count = worker.names().count();
    let root = std::env::current_dir().context("could not read the current directory")?;
    eprintln!(
        "buildcat farm: server on {addr} (storage {shown}), {count} worker(s) rooted at {}, serving {}; Ctrl-C stops it (running jobs finish first)",
        root.display(),
        args.queues.join(", ")
    );
    let stop = Stop::listen(count_running(&worker));
    // Workers stop first (finishing and reporting running jobs unless told to stop them
    // now), then the server, so no worker sees its server go away.
    let (stop_server, server_stop) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(opened.serve(listener, async {
        let _ = server_stop.await;
    }));
    let worker_result = run_workers(worker, &stop).await;
    let _ = stop_server.send(());
    let server_result = server.await.context("server task")?;
    let code = worker_result?;
    server_result.with_context(|| format!("server with storage {shown}"))?;
    Ok(code)
}
