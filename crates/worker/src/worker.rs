//! The public face of the crate: [`WorkerBuilder`] collects the settings, [`Worker::run`]
//! runs the loops until the task limit or shutdown.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use buildcat_proto::gpu::Gpu;
use buildcat_proto::{DEFAULT_MAX_FRAME, DEFAULT_PORT, Failure, Task, ToolVersion};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{Instrument, info, info_span, warn};

use crate::context::{DEFAULT_KILL_GRACE, JobContext};
use crate::control::{Control, ShutdownHandle};
use crate::error::WorkerError;
use crate::gpu::{self, GpuSelection, GpusPerSlot, SlotGpus};
use crate::info::host_name;
use crate::integrations::{self, BlenderOptions, tools::Tool, tools::Toolbox};
use crate::leftovers::{GroupRecord, default_state_dir};
use crate::registry::Registry;
use crate::slots::{self, Slot};
use crate::worker_loop::{LoopConfig, TlsSetup, run_loop};

/// The smallest frame limit accepted: registrations and results must fit.
const MIN_MAX_FRAME: usize = 4096;

/// A configured worker, ready to [`run`](Worker::run).
#[derive(Debug)]
pub struct Worker {
    /// One configuration per loop (per connection).
    loops: Vec<LoopConfig>,
    /// The server's address, `host:port`.
    server: String,
    /// The root directory, absolute and canonical.
    root: PathBuf,
    /// The task limit, the stop signals and the running count every loop shares; made with
    /// the worker so that a [`ShutdownHandle`] exists before `run` is called.
    control: Arc<Control>,
    /// The DCC tools found when the worker was built.
    tools: Toolbox,
    /// The slots a default name holds (`HOST-SLOT`), locked until the worker is dropped or
    /// its run ends, so another worker on this host takes the next ones.
    slots: Vec<Slot>,
    /// The tools with their versions as far as they are known, seen by every loop: names
    /// only until [`Worker::run`] has asked each tool its version, which it does beside
    /// the loops, so a slow tool never delays the first registration or task.
    versions: watch::Sender<Vec<ToolVersion>>,
}

/// What a worker did before [`Worker::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RunStats {
    /// Tasks whose results the server acknowledged (or refused for good), across all loops.
    pub tasks_completed: u64,
}

impl Worker {
    /// Starts configuring a worker.
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder::new()
    }

    /// The names the loops register under, one per loop.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.loops.iter().map(|config| config.name.as_str())
    }

    /// The server's address, `host:port`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The root directory, absolute and canonical.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The job kinds this worker runs, in sorted order: what it registers with, and so
    /// what the server routes to it.
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.loops
            .first()
            .into_iter()
            .flat_map(|config| config.registry.kinds())
    }

    /// The DCC tools found when the worker was built.
    pub fn tools(&self) -> &Toolbox {
        &self.tools
    }

    /// A handle that stops this worker's [`run`](Worker::run) gracefully or at once, and
    /// counts its running tasks; take it before calling `run`.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle::new(Arc::clone(&self.control))
    }

    /// Runs every loop until the task limit is reached, `shutdown` resolves, or a
    /// [`ShutdownHandle`] stops it.
    ///
    /// On shutdown (or [`ShutdownHandle::finish`], or once `max_tasks` tasks are under way) a
    /// loop that is idle stops at once; a loop that is running a task finishes it, reports it,
    /// then stops. A loop that cannot reach the server keeps retrying with backoff, including
    /// to report a finished task. [`ShutdownHandle::stop_now`] kills the running tasks and
    /// reports them as interrupted instead. Dropping the returned future stops everything at
    /// once and kills running tasks' processes.
    ///
    /// Returns an error only when the server refuses the worker for good (a protocol
    /// version mismatch) or a loop fails unexpectedly.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<RunStats, WorkerError> {
        let control = self.control;
        // Held until the run ends: the names stay this worker's.
        let _slots = self.slots;
        // Before any task starts: what an earlier worker of these names left running goes.
        let records: Vec<Arc<GroupRecord>> = self
            .loops
            .iter()
            .map(|config| Arc::clone(&config.groups))
            .collect();
        let reaped = tokio::task::spawn_blocking(move || {
            records.iter().for_each(|record| {
                record.reap_and_claim();
            });
        });
        if let Err(error) = reaped.await {
            warn!(%error, "cannot look for what an earlier worker left running");
        }
        // Once for all loops, beside them: they register at once with the tools' names,
        // and send the versions when this has read them.
        let (toolbox, root, versions) = (self.tools, self.root, self.versions);
        let probe = async {
            if toolbox.is_empty() {
                return std::future::pending().await;
            }
            let tools = integrations::tool_versions(&toolbox, &root).await;
            let read: Vec<String> = tools
                .iter()
                .map(|tool| format!("{} {}", tool.name, tool.version))
                .collect();
            info!(tools = ?read, "tool versions read");
            tools
        };
        tokio::pin!(probe);
        let mut probed = false;
        let mut loops = JoinSet::new();
        let mut names = HashMap::new();
        for config in self.loops {
            let name = config.name.clone();
            let span = info_span!("worker", name = %name);
            let task = loops.spawn(run_loop(config, Arc::clone(&control)).instrument(span));
            names.insert(task.id(), name);
        }

        tokio::pin!(shutdown);
        let mut shutdown_seen = false;
        let mut result = Ok(());
        loop {
            let joined = tokio::select! {
                () = &mut shutdown, if !shutdown_seen => {
                    shutdown_seen = true;
                    ShutdownHandle::new(Arc::clone(&control)).finish();
                    continue;
                }
                tools = &mut probe, if !probed => {
                    probed = true;
                    // Always sent, even if no version could be read: the loops tell the
                    // server the reading is over.
                    versions.send_replace(tools);
                    continue;
                }
                joined = loops.join_next_with_id() => joined,
            };
            let Some(joined) = joined else { break };
            let error = match joined {
                Ok((_, Ok(()))) => continue,
                Ok((_, Err(error))) => error,
                Err(join_error) => WorkerError::LoopFailed {
                    name: names
                        .get(&join_error.id())
                        .cloned()
                        .unwrap_or_else(|| "(unknown)".to_owned()),
                    reason: join_error.to_string(),
                },
            };
            // One loop failing stops the others the gentle way: running tasks still finish.
            control.stop().cancel();
            if result.is_ok() {
                result = Err(error);
            }
        }
        result.map(|()| RunStats {
            tasks_completed: control.completed(),
        })
    }
}

/// Settings for a [`Worker`]; made by [`Worker::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct WorkerBuilder {
    /// The server's address.
    server: String,
    /// The queues served, highest priority first; empty means `default`.
    queues: Vec<String>,
    /// The root directory; the current directory if unset.
    root: Option<PathBuf>,
    /// The worker's name; `{hostname}.{pid}` if unset.
    name: Option<String>,
    /// How many loops (connections, concurrent tasks) to run; `None` (1, or one per GPU
    /// under `--gpus-per-slot auto`) when not set.
    concurrency: Option<usize>,
    /// How many tasks to run in all before stopping, if limited.
    max_tasks: Option<u64>,
    /// The largest frame sent or accepted.
    max_frame: usize,
    /// How long processes get between SIGTERM and SIGKILL when a task is stopped.
    kill_grace: Duration,
    /// The handlers.
    registry: Registry,
    /// Tool executables given explicitly; they must exist.
    tool_paths: BTreeMap<Tool, PathBuf>,
    /// The GPUs Redshift renders on (`-gpu I` each).
    redshift_gpus: Vec<u32>,
    /// How Blender renders run here (`-y`, Cycles device, threads).
    blender_options: BlenderOptions,
    /// Whether to search PATH for the tools not given.
    detect_tools: bool,
    /// TLS with mutual certificates, when the server requires it.
    tls: Option<buildcat_client::TlsOptions>,
    /// Where the worker records its tasks' process groups; a per-user runtime or temporary
    /// directory if unset.
    state_dir: Option<PathBuf>,
    /// Which of the host's GPUs the worker uses (`--gpus`).
    gpus: GpuSelection,
    /// How its GPUs are shared among its slots (`--gpus-per-slot`).
    gpus_per_slot: GpusPerSlot,
    /// The GPUs to take as the host's instead of detecting them: for embedding programs
    /// that know better, and for tests.
    gpu_inventory: Option<Vec<Gpu>>,
}

impl fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("server", &self.server)
            .field("queues", &self.queues)
            .field("root", &self.root)
            .field("name", &self.name)
            .field("concurrency", &self.concurrency)
            .field("max_tasks", &self.max_tasks)
            .field("max_frame", &self.max_frame)
            .field("kill_grace", &self.kill_grace)
            .field("registry", &self.registry)
            .field("tool_paths", &self.tool_paths)
            .field("redshift_gpus", &self.redshift_gpus)
            .field("blender_options", &self.blender_options)
            .field("detect_tools", &self.detect_tools)
            .field("state_dir", &self.state_dir)
            .field("gpus", &self.gpus)
            .field("gpus_per_slot", &self.gpus_per_slot)
            .field("gpu_inventory", &self.gpu_inventory)
            .finish()
    }
}

impl Default for WorkerBuilder {
    fn default() -> Self {
        WorkerBuilder::new()
    }
}

impl WorkerBuilder {
    /// The defaults: server `127.0.0.1:2228`, queue `default`, the current directory as
    /// root, one loop, no task limit, a kill grace period of 10 s, the built-in handlers, and
    /// the DCC tools found on PATH.
    pub fn new() -> Self {
        WorkerBuilder {
            server: format!("127.0.0.1:{DEFAULT_PORT}"),
            queues: Vec::new(),
            root: None,
            name: None,
            concurrency: None,
            max_tasks: None,
            max_frame: DEFAULT_MAX_FRAME,
            kill_grace: DEFAULT_KILL_GRACE,
            registry: Registry::new(),
            tool_paths: BTreeMap::new(),
            redshift_gpus: Vec::new(),
            blender_options: BlenderOptions::default(),
            detect_tools: true,
            tls: None,
            state_dir: None,
            gpus: GpuSelection::Detected,
            gpus_per_slot: GpusPerSlot::Shared,
            gpu_inventory: None,
        }
    }

    /// The server to connect to, `host:port` (a bare host gets the default port, 2228).
    pub fn server(mut self, address: impl Into<String>) -> Self {
        self.server = address.into();
        self
    }

    /// Adds a queue to serve, after those already added (earlier queues come first).
    pub fn queue(mut self, name: impl Into<String>) -> Self {
        self.queues.push(name.into());
        self
    }

    /// Adds queues to serve, highest priority first, after those already added.
    pub fn queues<I>(mut self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.queues.extend(names.into_iter().map(Into::into));
        self
    }

    /// The root directory (BUILDCAT_ROOT) that job paths are relative to. It must exist;
    /// [`build`](WorkerBuilder::build) makes it absolute and canonical.
    pub fn root(mut self, path: impl Into<PathBuf>) -> Self {
        self.root = Some(path.into());
        self
    }

    /// The name the worker registers under. With more than one loop, loop `i` is named
    /// `{name}.{i}`, counting from 1. Without one, each loop is `{hostname}-{slot}`
    /// (`render01-1`), the lowest slots no other live worker of this user on this host
    /// holds (locked in the state directory), so a machine's workers keep their names
    /// across restarts.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How many independent loops to run, each with its own connection and one task at a
    /// time (default 1).
    pub fn concurrency(mut self, loops: usize) -> Self {
        self.concurrency = Some(loops);
        self
    }

    /// Which of the host's GPUs the worker uses (the CLI's `--gpus`): all detected (the
    /// default), none, or these indices; an index nothing detected is still used, as a GPU
    /// of unknown make, with a warning.
    pub fn gpus(mut self, selection: GpuSelection) -> Self {
        self.gpus = selection;
        self
    }

    /// How the worker's GPUs are shared among its slots (the CLI's `--gpus-per-slot`):
    /// every slot sees all of them (the default), each slot owns K of its own (slot `i`
    /// gets the kept GPUs `i*K..i*K+K`), or one slot per GPU ([`GpusPerSlot::Auto`], which
    /// sets the concurrency). A slot that owns GPUs runs its tasks' processes with only
    /// those visible.
    pub fn gpus_per_slot(mut self, share: GpusPerSlot) -> Self {
        self.gpus_per_slot = share;
        self
    }

    /// Takes these as the host's GPUs instead of detecting them (NVML, sysfs).
    pub fn gpu_inventory(mut self, gpus: Vec<Gpu>) -> Self {
        self.gpu_inventory = Some(gpus);
        self
    }

    /// Stop after this many tasks in total across all loops (`None`: no limit).
    pub fn max_tasks(mut self, limit: Option<u64>) -> Self {
        self.max_tasks = limit;
        self
    }

    /// The largest frame sent or accepted, in bytes (default 16 MiB).
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Connects with TLS, presenting this certificate and trusting the server's (see
    /// `buildcat server-keygen`/`client-keygen`).
    pub fn tls(mut self, tls: buildcat_client::TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// How long a task's processes get to exit after SIGTERM, on timeout or cancel, before
    /// they are killed with SIGKILL (default 10 s). A handler that ignores its deadline or a
    /// cancel is abandoned this long plus a few seconds after it.
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    /// The directory where the worker records the process groups of its running tasks, one
    /// file per worker name, so that a worker starting later under the same name on this
    /// host kills what this one left running if it died with tasks running (default:
    /// `$XDG_RUNTIME_DIR/buildcat`, else `buildcat-UID` in the temporary directory). Use a
    /// local directory private to the worker's user.
    pub fn state_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(path.into());
        self
    }

    /// Runs `handler` for tasks of kind `T::KIND`, replacing any handler that kind had.
    ///
    /// The handler gets the task's arguments decoded as `T`; its output is encoded and sent
    /// back to whoever waits for the job.
    pub fn handler<T, F, Fut>(mut self, handler: F) -> Self
    where
        T: Task,
        F: Fn(T, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T::Output, Failure>> + Send + 'static,
    {
        self.registry.insert(handler);
        self
    }

    /// Runs `tool` from `path` rather than whatever PATH has (the CLI's `--blender PATH`,
    /// `--hython`, `--mantra`, `--modo`, `--redshift`). The path must be an executable file
    /// (a bare name is looked up on PATH), or [`build`](WorkerBuilder::build) fails naming
    /// it. A tool given here is used even when [`detect_tools`](WorkerBuilder::detect_tools)
    /// is off.
    pub fn tool_path(mut self, tool: Tool, path: impl Into<PathBuf>) -> Self {
        self.tool_paths.insert(tool, path.into());
        self
    }

    /// How Blender renders run on this worker: `-y` unless forbidden, the Cycles device
    /// for tasks that name none, and render threads.
    pub fn blender_options(mut self, options: BlenderOptions) -> Self {
        self.blender_options = options;
        self
    }

    /// The GPUs Redshift renders on, each passed as `-gpu I` (the CLI's `--redshift-gpu`);
    /// none leaves the choice to Redshift. Replaces any given before.
    pub fn redshift_gpus(mut self, gpus: impl IntoIterator<Item = u32>) -> Self {
        self.redshift_gpus = gpus.into_iter().collect();
        self
    }

    /// Whether [`build`](WorkerBuilder::build) searches PATH for the DCC tools (`blender`,
    /// `hython`, `mantra`, `modo_cl`, `redshiftCmdLine`; `NAME.exe` first on WSL) not given
    /// with [`tool_path`](WorkerBuilder::tool_path). On by default; off, the worker runs
    /// only the tools given, so tests and embedding programs register no DCC kinds by
    /// accident.
    pub fn detect_tools(mut self, detect: bool) -> Self {
        self.detect_tools = detect;
        self
    }

    /// Checks the settings, finds the DCC tools and makes the worker.
    ///
    /// The worker runs the job kinds of the tools it finds (see
    /// [`Tool::kinds`]) and registers with exactly those, besides the built-in kinds and
    /// the handlers given; a handler given for a tool's kind is kept.
    pub fn build(self) -> Result<Worker, WorkerError> {
        let root = canonical_root(self.root)?;
        let server = match self.server.trim() {
            "" => return Err(config("the server address is empty")),
            address if address.contains(':') => address.to_owned(),
            host => format!("{host}:{DEFAULT_PORT}"),
        };

        let mut queues = self.queues;
        if queues.is_empty() {
            queues.push("default".to_owned());
        }
        if queues.iter().any(|queue| queue.trim().is_empty()) {
            return Err(config("a queue name is empty"));
        }
        for (index, queue) in queues.iter().enumerate() {
            if queues[..index].contains(queue) {
                return Err(config(&format!("queue `{queue}` is named twice")));
            }
        }

        if self.concurrency == Some(0) {
            return Err(config("the concurrency must be at least 1"));
        }
        let shares = slot_gpus(
            &self.gpus,
            self.gpus_per_slot,
            self.gpu_inventory,
            self.concurrency,
        )?;
        let concurrency = shares.len();
        if !(MIN_MAX_FRAME..=u32::MAX as usize).contains(&self.max_frame) {
            return Err(config(&format!(
                "the frame limit of {} bytes is outside {MIN_MAX_FRAME}..={} bytes",
                self.max_frame,
                u32::MAX
            )));
        }

        let host = host_name();
        let state_dir = self.state_dir.unwrap_or_else(default_state_dir);
        let named = self.name.is_some();
        let (names, slots): (Vec<String>, Vec<Slot>) = match self.name {
            Some(name) if name.trim().is_empty() => {
                return Err(config("the worker name is empty"));
            }
            Some(name) if concurrency == 1 => (vec![name], Vec::new()),
            Some(name) => (
                (1..=concurrency)
                    .map(|index| format!("{name}.{index}"))
                    .collect(),
                Vec::new(),
            ),
            // `HOST-SLOT`, the same on every start (see `slots.rs`).
            None => {
                let slots = slots::claim(&state_dir, concurrency).map_err(|error| {
                    config(&format!(
                        "could not take a worker slot under {} for the default name: {error}; give --name, or --state-dir elsewhere",
                        state_dir.display()
                    ))
                })?;
                let names = slots
                    .iter()
                    .map(|slot| format!("{host}-{}", slot.number))
                    .collect();
                (names, slots)
            }
        };

        let tools = Toolbox::discover(&self.tool_paths, self.detect_tools)?;
        let found: Vec<String> = tools
            .iter()
            .map(|(tool, executable)| format!("{tool}={}", executable.path().display()))
            .collect();
        info!(tools = ?found, "tools found");
        if !self.redshift_gpus.is_empty() && self.gpus_per_slot != GpusPerSlot::Shared {
            warn!(
                gpus = ?self.redshift_gpus,
                "each slot owns its gpus (--gpus-per-slot): redshift renders on the slot's, not on the --redshift-gpu list"
            );
        }
        if !self.redshift_gpus.is_empty() && tools.get(Tool::RedshiftCmdLine).is_none() {
            warn!(
                gpus = ?self.redshift_gpus,
                "gpus for redshift were given but redshiftCmdLine was not found"
            );
        }
        // What the loops register with until the versions are read: each tool's name.
        let (versions, _) = watch::channel(
            tools
                .iter()
                .map(|(tool, _)| ToolVersion {
                    name: tool.name().to_owned(),
                    version: String::new(),
                })
                .collect(),
        );
        // Read the TLS files now, so a missing file stops the worker with a clear error.
        let tls = self
            .tls
            .as_ref()
            .map(|options| options.connector().map(TlsSetup))
            .transpose()
            .map_err(|error| WorkerError::Config(error.to_string()))?;
        let mut registry = self.registry;
        integrations::register(
            &mut registry,
            &tools,
            &self.redshift_gpus,
            &self.blender_options,
            &state_dir,
        );
        let registry = Arc::new(registry);
        if self.blender_options.reset_profile {
            integrations::ProfileHome::new(&self.blender_options, &state_dir).reset(&names);
        }
        let loops = names
            .into_iter()
            .zip(shares)
            .map(|(name, gpus)| LoopConfig {
                groups: Arc::new(GroupRecord::new(&state_dir, &name)),
                name,
                named,
                server: server.clone(),
                host: host.clone(),
                queues: queues.clone(),
                root: root.clone(),
                max_frame: self.max_frame,
                registry: Arc::clone(&registry),
                kill_grace: self.kill_grace,
                tls: tls.clone(),
                // Versions are read when the worker runs: asking a tool takes a process
                // start.
                tools: versions.subscribe(),
                gpus: Arc::new(gpus),
            })
            .collect();
        Ok(Worker {
            loops,
            server,
            root,
            control: Arc::new(Control::new(self.max_tasks)),
            tools,
            slots,
            versions,
        })
    }
}

/// Each slot's GPUs: the host's (given, or detected unless `--gpus none`), those the
/// selection keeps, shared out among the slots; as many entries as slots.
fn slot_gpus(
    selection: &GpuSelection,
    per_slot: GpusPerSlot,
    inventory: Option<Vec<Gpu>>,
    concurrency: Option<usize>,
) -> Result<Vec<SlotGpus>, WorkerError> {
    let detected = match (selection, inventory) {
        (GpuSelection::None, _) => Vec::new(),
        (_, Some(gpus)) => gpus,
        (_, None) => gpu::detect(),
    };
    let (kept, undetected) = selection.apply(&detected);
    if !undetected.is_empty() {
        warn!(
            gpus = %gpu::index_list(undetected.iter().copied()),
            detected = %gpu::index_list(detected.iter().map(|gpu| gpu.index)),
            "gpus named with --gpus were not detected; they are used as declared, of unknown make"
        );
    }
    let slots = gpu::slot_count(concurrency, per_slot, kept.len()).map_err(WorkerError::Config)?;
    let shares = gpu::split(&kept, per_slot, slots).map_err(WorkerError::Config)?;
    let described: Vec<String> = kept
        .iter()
        .map(|gpu| match (gpu.name.is_empty(), gpu.memory_mib) {
            // Declared with --gpus, nothing detected: only its index is known.
            (true, 0) => format!("{} ({})", gpu.index, gpu.vendor),
            _ => format!(
                "{} {} {} MiB ({})",
                gpu.index, gpu.name, gpu.memory_mib, gpu.vendor
            ),
        })
        .collect();
    info!(gpus = ?described, per_slot = ?per_slot, "gpus");
    Ok(shares)
}

/// A configuration error.
fn config(message: &str) -> WorkerError {
    WorkerError::Config(message.to_owned())
}

/// A verbatim UNC path (`\\?\UNC\Aurora\Farm`, which `dunce` leaves as it is) as people
/// write it: `\\Aurora\Farm`.
#[cfg(windows)]
fn plain_unc(path: PathBuf) -> PathBuf {
    match path
        .to_str()
        .and_then(|text| text.strip_prefix(r"\\?\UNC\"))
    {
        Some(rest) => PathBuf::from(format!(r"\\{rest}")),
        None => path,
    }
}

/// The root made absolute and canonical; it must be an existing directory.
fn canonical_root(root: Option<PathBuf>) -> Result<PathBuf, WorkerError> {
    let given = match root {
        Some(path) => path,
        None => std::env::current_dir().map_err(|error| WorkerError::Root {
            path: PathBuf::from("."),
            error,
        })?,
    };
    // `dunce`: on Windows, `Z:\farm` rather than std's `\\?\Z:\farm` (issue 16).
    let canonical = dunce::canonicalize(&given).map_err(|error| WorkerError::Root {
        path: given.clone(),
        error,
    })?;
    #[cfg(windows)]
    let canonical = plain_unc(canonical);
    if !canonical.is_dir() {
        return Err(WorkerError::RootNotDirectory { path: canonical });
    }
    Ok(canonical)
}
