//! `Client`: one connection to a farm, with the modern API.

use std::path::PathBuf;
use std::sync::Mutex;

use buildcat_client::proto::task::RunCommand;
use buildcat_client::proto::view::{FarmView, JobView};
use buildcat_client::render::{
    BlenderRenderPlan, HoudiniHipPlan, HoudiniIfdPlan, HoudiniUsdPlan, ModoRenderPlan,
    RedshiftRenderPlan, RenderPlan, command_line, file_name,
};
use buildcat_client::{
    ClientOptions, DEFAULT_PORT, Dependency, JobOptions, JobQuery, JobRef, JobState, Task,
    TlsOptions, WorkerInfo,
};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyTuple};
use serde_json::json;

use crate::errors::{self, OrRaise};
use crate::job::{self, Job};
use crate::{original, runtime, values};

/// The newest jobs `jobs()` lists unless told otherwise, as `buildcat jobs` does.
const JOBS_LIMIT: u32 = 50;

/// What every submission may set besides its own arguments.
#[derive(Debug)]
pub struct Submit {
    /// The queue, `default` unless named.
    pub queue: String,
    /// The job's name; the planned name (`shot.blend 1-10`) unless given.
    pub name: Option<String>,
    /// Higher runs first within the queue.
    pub priority: Option<i32>,
    /// Seconds one attempt of a task may run.
    pub timeout: Option<f64>,
    /// How many times each task may be started.
    pub attempts: Option<u32>,
    /// How many GPUs the worker slot that runs each task must own (`gpus=`, `gpu=True`: 1).
    pub gpus: Option<u32>,
    /// The least memory each of those GPUs must have, in MiB (`gpu_memory=`).
    pub gpu_memory: Option<u64>,
}

/// A connection to a buildcat server (a context manager: `with buildcat.Client() as farm:`).
///
/// Every call blocks with the GIL released; `Job.wait` can be interrupted with Ctrl-C.
#[pyclass(module = "buildcat", frozen)]
#[derive(Debug)]
pub struct Client {
    /// The connection; `None` once closed, so later calls say so instead of reconnecting.
    client: Mutex<Option<buildcat_client::Client>>,
    /// `host:port`, for messages and `repr`.
    address: String,
}

/// The GPUs a render asks for: `gpus`, or one with `gpu=True` (as the CLI's `--gpu`).
fn gpu_count(gpus: Option<u32>, gpu: bool) -> Option<u32> {
    match gpus {
        Some(count) if gpu => Some(count.max(1)),
        None if gpu => Some(1),
        other => other,
    }
}

/// `host:port`, with an IPv6 host in brackets.
fn address(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// TLS options from Python: `None`/`False` for plain TCP, `True` for the files in
/// `~/.buildcat/`, or a dict with `ca`, `cert` and `key` paths.
fn tls_options(py: Python<'_>, tls: Option<&Bound<'_, PyAny>>) -> PyResult<Option<TlsOptions>> {
    let Some(tls) = tls.filter(|tls| !tls.is_none()) else {
        return Ok(None);
    };
    if let Ok(on) = tls.downcast::<PyBool>() {
        if !on.is_true() {
            return Ok(None);
        }
        return TlsOptions::in_home().map(Some).ok_or_else(|| {
            errors::raise(
                py,
                "TlsError",
                "tls=True reads ~/.buildcat/ but HOME is not set; pass tls={'ca': ..., \
                 'cert': ..., 'key': ...}"
                    .to_owned(),
                None,
            )
        });
    }
    let file = |key: &str| -> PyResult<PathBuf> {
        match tls.get_item(key) {
            Ok(value) => value.extract(),
            Err(_) => Err(errors::raise(
                py,
                "TlsError",
                format!(
                    "tls needs `{key}`: give tls={{'ca': SERVER_CERT, 'cert': CLIENT_CERT, \
                     'key': CLIENT_KEY}} (made by `buildcat server-keygen` and \
                     `buildcat client-keygen`), or tls=True for the files in ~/.buildcat/"
                ),
                None,
            )),
        }
    };
    Ok(Some(TlsOptions {
        ca: file("ca")?,
        cert: file("cert")?,
        key: file("key")?,
    }))
}

/// A frame spec from Python: text (`"1-10"`), one frame (`7`) or frames (`[1, 2, 5]`).
pub fn frame_spec(py: Python<'_>, frames: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(text) = frames.extract::<String>() {
        return Ok(text);
    }
    if let Ok(frame) = frames.extract::<i64>() {
        return Ok(frame.to_string());
    }
    match frames.extract::<Vec<i64>>() {
        Ok(list) => Ok(list
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",")),
        Err(_) => Err(errors::raise(
            py,
            "InvalidRequest",
            format!(
                "frames must be a frame spec such as \"1-10\" or \"1,5,10-20:2\", a frame \
                 number or a list of them, not {}",
                frames.repr().map(|r| r.to_string()).unwrap_or_default()
            ),
            None,
        )),
    }
}

impl Client {
    /// The connection, unless closed.
    pub fn connection(&self, py: Python<'_>) -> PyResult<buildcat_client::Client> {
        let guard = self
            .client
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.clone().ok_or_else(|| {
            errors::raise(
                py,
                "ConnectionFailed",
                format!(
                    "this client of {} is closed; make a new buildcat.Client",
                    self.address
                ),
                None,
            )
        })
    }

    /// The job options: `defaults` (the task kind's) with what the caller set.
    fn options(
        &self,
        py: Python<'_>,
        submit: &Submit,
        defaults: JobOptions,
    ) -> PyResult<JobOptions> {
        let mut options = defaults;
        if let Some(seconds) = submit.timeout {
            let timeout = runtime::seconds(py, Some(seconds), "timeout")?.unwrap_or_default();
            if timeout.is_zero() {
                return Err(errors::raise(
                    py,
                    "InvalidRequest",
                    "timeout must be a positive number of seconds".to_owned(),
                    None,
                ));
            }
            options.timeout_ms = Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        }
        if let Some(attempts) = submit.attempts {
            if attempts == 0 {
                return Err(errors::raise(
                    py,
                    "InvalidRequest",
                    "attempts must be at least 1".to_owned(),
                    None,
                ));
            }
            options.max_attempts = attempts;
        }
        if let Some(priority) = submit.priority {
            options.priority = priority;
        }
        if let Some(count) = submit.gpus {
            if count > buildcat_client::proto::MAX_GPUS_REQUIRED {
                return Err(errors::raise(
                    py,
                    "InvalidRequest",
                    format!(
                        "gpus={count} is more than any worker slot may have (at most {})",
                        buildcat_client::proto::MAX_GPUS_REQUIRED
                    ),
                    None,
                ));
            }
            options.gpus.count = count;
        }
        if let Some(memory_mib) = submit.gpu_memory {
            if memory_mib == 0 {
                return Err(errors::raise(
                    py,
                    "InvalidRequest",
                    "gpu_memory must be at least 1 MiB; leave it out to take a GPU of any memory"
                        .to_owned(),
                    None,
                ));
            }
            options.gpus.memory_mib = memory_mib;
        }
        Ok(options)
    }

    /// Submits a planned job and returns its handle.
    pub fn submit_plan<T: Task>(
        &self,
        py: Python<'_>,
        plan: RenderPlan<T>,
        submit: Submit,
    ) -> PyResult<Job> {
        self.submit_with_after(py, plan, submit, None)
    }
}

/// A job of one task, named `name` and described by `runs`.
pub fn one_task<T: Task>(name: String, runs: String, task: T) -> RenderPlan<T> {
    RenderPlan {
        name,
        runs,
        tasks: vec![(None, task)],
        repeated: Vec::new(),
    }
}

#[pymethods]
impl Client {
    /// Connects to the server at `host:port`; `tls` is `None` (plain TCP), `True` (the
    /// files in `~/.buildcat/`) or `{'ca': ..., 'cert': ..., 'key': ...}`; `timeout`
    /// bounds connecting and the handshake, in seconds.
    #[new]
    #[pyo3(signature = (host = "127.0.0.1", port = DEFAULT_PORT, *, tls = None, timeout = None))]
    fn new(
        py: Python<'_>,
        host: &str,
        port: u16,
        tls: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Client> {
        let mut options = ClientOptions {
            tls: tls_options(py, tls)?,
            ..ClientOptions::default()
        };
        if let Some(timeout) = runtime::seconds(py, timeout, "timeout")? {
            options.connect_timeout = timeout;
            options.handshake_timeout = timeout;
        }
        let address = address(host, port);
        let connecting = {
            let address = address.clone();
            async move { buildcat_client::Client::connect_with(&address, options).await }
        };
        let what = format!("connecting to {address}");
        let client = runtime::wait_for(py, connecting, None, &what)?.or_raise(py)?;
        Ok(Client {
            client: Mutex::new(Some(client)),
            address,
        })
    }

    /// `host:port` of the server.
    #[getter]
    fn address(&self) -> &str {
        &self.address
    }

    /// The server's version, from its welcome.
    #[getter]
    fn server_version(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.connection(py)?.server_version())
    }

    fn __repr__(&self) -> String {
        format!("<buildcat.Client {}>", self.address)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }

    /// Closes the connection (jobs already returned keep theirs until they go).
    fn close(&self) {
        let mut guard = self
            .client
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.take();
    }

    /// The farm at a glance, as `buildcat info --json` prints it.
    fn info(&self, py: Python<'_>) -> PyResult<PyObject> {
        let client = self.connection(py)?;
        let info = runtime::block(py, async move { client.info().await })?.or_raise(py)?;
        values::to_python(py, &FarmView::from(&info))
    }

    /// Jobs, newest first, as `buildcat jobs --json` prints them:
    /// `{"jobs": [...], "more": bool}`.
    #[pyo3(signature = (*, queue = None, state = None, user = None, limit = JOBS_LIMIT))]
    fn jobs(
        &self,
        py: Python<'_>,
        queue: Option<String>,
        state: Option<&str>,
        user: Option<String>,
        limit: u32,
    ) -> PyResult<PyObject> {
        let state = state
            .map(|state| state.parse::<JobState>())
            .transpose()
            .map_err(|error| errors::raise(py, "InvalidRequest", error.to_string(), None))?;
        let client = self.connection(py)?;
        let query = JobQuery {
            queue,
            state,
            user,
            limit,
        };
        let listing = runtime::block(py, async move { client.jobs(query).await })?.or_raise(py)?;
        let views: Vec<JobView> = listing.jobs.iter().map(JobView::from).collect();
        values::to_python(py, &json!({ "jobs": views, "more": listing.more }))
    }

    /// The job numbered `job` (or with that id), to wait for or cancel.
    fn job(&self, py: Python<'_>, job: &Bound<'_, PyAny>) -> PyResult<Job> {
        let target: JobRef = match job.extract::<u64>() {
            Ok(number) => JobRef::Number(number),
            Err(_) => {
                let text: String = job.extract()?;
                text.parse()
                    .map_err(|error: String| errors::raise(py, "InvalidRequest", error, None))?
            }
        };
        let client = self.connection(py)?;
        let asked = client.clone();
        let status = runtime::block(py, async move { asked.job(target).await })?.or_raise(py)?;
        Ok(job::from_status(client, &status))
    }

    /// Runs a program on a worker, without a shell, in the farm root: `argv[0]` is the
    /// program (looked up on the worker's PATH), the rest its arguments.
    #[pyo3(signature = (argv, *, name = None, queue = "default".to_owned(), priority = None,
        timeout = None, attempts = None, after = None, gpus = None, gpu_memory = None))]
    #[allow(clippy::too_many_arguments, reason = "Python keyword arguments")]
    fn run(
        &self,
        py: Python<'_>,
        argv: Vec<String>,
        name: Option<String>,
        queue: String,
        priority: Option<i32>,
        timeout: Option<f64>,
        attempts: Option<u32>,
        after: Option<Vec<Bound<'_, PyAny>>>,
        gpus: Option<u32>,
        gpu_memory: Option<u64>,
    ) -> PyResult<Job> {
        let Some(program) = argv.first().cloned() else {
            return Err(errors::raise(
                py,
                "InvalidRequest",
                "give the program to run, e.g. client.run([\"echo\", \"hello\"])".to_owned(),
                None,
            ));
        };
        let plan = one_task(
            file_name(&program).to_owned(),
            command_line(argv.iter().map(String::as_str)),
            RunCommand {
                program,
                args: argv[1..].to_vec(),
            },
        );
        let submit = Submit {
            queue,
            name,
            priority,
            timeout,
            attempts,
            gpus,
            gpu_memory,
        };
        self.submit_with_after(py, plan, submit, after)
    }

    /// A worker's report on itself (`buildcat worker-info`).
    #[pyo3(signature = (*, queue = "default".to_owned(), priority = None, timeout = None))]
    fn worker_info(
        &self,
        py: Python<'_>,
        queue: String,
        priority: Option<i32>,
        timeout: Option<f64>,
    ) -> PyResult<Job> {
        let plan = one_task(
            "worker-info".to_owned(),
            "worker-info".to_owned(),
            WorkerInfo,
        );
        let submit = Submit {
            queue,
            name: None,
            priority,
            timeout,
            attempts: None,
            gpus: None,
            gpu_memory: None,
        };
        self.submit_plan(py, plan, submit)
    }

    /// Renders frames of a `.blend` file (relative to the farm root): one task per `chunk`
    /// frames, named `SCENE.blend FRAMES` unless `name` is given. `scene_name` picks a
    /// scene inside the file (`-S`). Without `frames`, the scene's own range (start, end,
    /// step), read by the job's first task on a worker, which adds the render tasks.
    #[pyo3(signature = (scene, *, frames = None, chunk = 1, output = None, format = None,
        engine = None, scene_name = None, cycles_device = None, python_expr = None,
        blender_args = Vec::new(), allow_missing_libraries = false, allow_outside_root = false,
        movie = false, name = None, queue = "default".to_owned(), priority = None,
        timeout = None, attempts = None, after = None, gpus = None, gpu_memory = None, gpu = false))]
    #[allow(clippy::too_many_arguments, reason = "Python keyword arguments")]
    fn blender_render(
        &self,
        py: Python<'_>,
        scene: String,
        frames: Option<&Bound<'_, PyAny>>,
        chunk: usize,
        output: Option<String>,
        format: Option<String>,
        engine: Option<String>,
        scene_name: Option<String>,
        cycles_device: Option<String>,
        python_expr: Option<String>,
        blender_args: Vec<String>,
        allow_missing_libraries: bool,
        allow_outside_root: bool,
        movie: bool,
        name: Option<String>,
        queue: String,
        priority: Option<i32>,
        timeout: Option<f64>,
        attempts: Option<u32>,
        after: Option<Vec<Bound<'_, PyAny>>>,
        gpus: Option<u32>,
        gpu_memory: Option<u64>,
        gpu: bool,
    ) -> PyResult<Job> {
        let frames = frames.map(|frames| frame_spec(py, frames)).transpose()?;
        let plan = BlenderRenderPlan {
            blend: scene,
            frames: frames.clone().unwrap_or_default(),
            chunk,
            output,
            format,
            engine,
            scene: scene_name,
            cycles_device,
            gpu,
            python_expr,
            blender_args,
            allow_missing_libraries,
            allow_outside_root,
            movie,
        };
        let submit = Submit {
            queue,
            name,
            priority,
            timeout,
            attempts,
            gpus: gpu_count(gpus, gpu),
            gpu_memory,
        };
        // Without frames, the scene's own range: read on a worker, which adds the render
        // tasks to the job.
        if frames.is_none() {
            let planned = plan.plan_scene_range().or_raise(py)?;
            return self.submit_with_after(py, planned, submit, after);
        }
        let planned = plan.plan().or_raise(py)?;
        self.submit_with_after(py, planned, submit, after)
    }

    /// Renders frames of a `.hip` file (relative to the farm root) through a ROP with
    /// `hython`: one job of one task.
    #[pyo3(signature = (hip, *, frames = None, rop = "/out/mantra_ipr".to_owned(), name = None,
        queue = "default".to_owned(), priority = None, timeout = None, attempts = None,
        after = None, gpus = None, gpu_memory = None, gpu = false))]
    #[allow(clippy::too_many_arguments, reason = "Python keyword arguments")]
    fn houdini_render_hip(
        &self,
        py: Python<'_>,
        hip: String,
        frames: Option<&Bound<'_, PyAny>>,
        rop: String,
        name: Option<String>,
        queue: String,
        priority: Option<i32>,
        timeout: Option<f64>,
        attempts: Option<u32>,
        after: Option<Vec<Bound<'_, PyAny>>>,
        gpus: Option<u32>,
        gpu_memory: Option<u64>,
        gpu: bool,
    ) -> PyResult<Job> {
        let frames = match frames {
            Some(frames) => frame_spec(py, frames)?,
            None => "1".to_owned(),
        };
        let plan = HoudiniHipPlan { hip, frames, rop }.plan().or_raise(py)?;
        let submit = Submit {
            queue,
            name,
            priority,
            timeout,
            attempts,
            gpus: gpu_count(gpus, gpu),
            gpu_memory,
        };
        self.submit_with_after(py, plan, submit, after)
    }

    /// Renders a USD file (relative to the farm root) with `husk`: one task per `chunk`
    /// frames; without `frames`, the one frame husk picks (the stage's start). `renderer`
    /// is `karma`, `karmaxpu` or a Hydra delegate's own name; `output` the image pattern
    /// (`-o`, `$F4` for the frame), relative to the root.
    #[pyo3(signature = (usd, *, frames = None, chunk = 1, renderer = None, output = None,
        name = None, queue = "default".to_owned(), priority = None, timeout = None,
        attempts = None, after = None, gpus = None, gpu_memory = None, gpu = false))]
    #[allow(clippy::too_many_arguments, reason = "Python keyword arguments")]
    fn houdini_render_usd(
        &self,
        py: Python<'_>,
        usd: String,
        frames: Option<&Bound<'_, PyAny>>,
        chunk: usize,
        renderer: Option<String>,
        output: Option<String>,
        name: Option<String>,
        queue: String,
        priority: Option<i32>,
        timeout: Option<f64>,
        attempts: Option<u32>,
        after: Option<Vec<Bound<'_, PyAny>>>,
        gpus: Option<u32>,
        gpu_memory: Option<u64>,
        gpu: bool,
    ) -> PyResult<Job> {
        let frames = frames.map(|frames| frame_spec(py, frames)).transpose()?;
        let plan = HoudiniUsdPlan {
            usd,
            frames,
            chunk,
            renderer,
            output,
        }
        .plan()
        .or_raise(py)?;
        let submit = Submit {
            queue,
            name,
            priority,
            timeout,
            attempts,
            gpus: gpu_count(gpus, gpu),
            gpu_memory,
        };
        self.submit_with_after(py, plan, submit, after)
    }

    /// Renders `.ifd` files (relative to the farm root) with `mantra -f FILE`: one job of
    /// one task per file.
    #[pyo3(signature = (paths, *, name = None, queue = "default".to_owned(), priority = None,
        timeout = None, attempts = None, after = None, gpus = None, gpu_memory = None, gpu = false))]
    #[allow(clippy::too_many_arguments, reason = "Python keyword arguments")]
    fn houdini_render_ifd(
        &self,
        py: Python<'_>,
        paths: &Bound<'_, PyAny>,
        name: Option<String>,
        queue: String,
        priority: Option<i32>,
        timeout: Option<f64>,
        attempts: Option<u32>,
        after: Option<Vec<Bound<'_, PyAny>>>,
        gpus: Option<u32>,
        gpu_memory: Option<u64>,
        gpu: bool,
    ) -> PyResult<Job> {
        let ifds: Vec<String> = match paths.extract::<String>() {
            Ok(one) => vec![one],
            Err(_) => paths.extract()?,
        };
        let plan = HoudiniIfdPlan { ifds }.plan().or_raise(py)?;
        let submit = Submit {
            queue,
            name,
            priority,
            timeout,
            attempts,
            gpus: gpu_count(gpus, gpu),
            gpu_memory,
        };
        self.submit_with_after(py, plan, submit, after)
    }

    /// Renders frames `start..stop` by `step` (stop not included) of a `.lxo` scene with
    /// `modo_cl`: one job of one task per frame.
    #[pyo3(signature = (lxo, *, start = 0, stop = 1, step = 1, name = None,
        queue = "default".to_owned(), priority = None, timeout = None, attempts = None,
        after = None, gpus = None, gpu_memory = None, gpu = false))]
    #[allow(clippy::too_many_arguments, reason = "Python keyword arguments")]
    fn modo_render(
        &self,
        py: Python<'_>,
        lxo: String,
        start: i64,
        stop: i64,
        step: i64,
        name: Option<String>,
        queue: String,
        priority: Option<i32>,
        timeout: Option<f64>,
        attempts: Option<u32>,
        after: Option<Vec<Bound<'_, PyAny>>>,
        gpus: Option<u32>,
        gpu_memory: Option<u64>,
        gpu: bool,
    ) -> PyResult<Job> {
        let plan = ModoRenderPlan {
            lxo,
            start,
            stop,
            step,
        }
        .plan()
        .or_raise(py)?;
        let submit = Submit {
            queue,
            name,
            priority,
            timeout,
            attempts,
            gpus: gpu_count(gpus, gpu),
            gpu_memory,
        };
        self.submit_with_after(py, plan, submit, after)
    }

    /// Renders a `.rs` archive (relative to the farm root) with `redshiftCmdLine`.
    #[pyo3(signature = (rs, *, name = None, queue = "default".to_owned(), priority = None,
        timeout = None, attempts = None, after = None, gpus = None, gpu_memory = None, gpu = false))]
    #[allow(clippy::too_many_arguments, reason = "Python keyword arguments")]
    fn redshift_render(
        &self,
        py: Python<'_>,
        rs: String,
        name: Option<String>,
        queue: String,
        priority: Option<i32>,
        timeout: Option<f64>,
        attempts: Option<u32>,
        after: Option<Vec<Bound<'_, PyAny>>>,
        gpus: Option<u32>,
        gpu_memory: Option<u64>,
        gpu: bool,
    ) -> PyResult<Job> {
        let plan = RedshiftRenderPlan {
            rs,
            redshift_args: Vec::new(),
        }
        .plan()
        .or_raise(py)?;
        let submit = Submit {
            queue,
            name,
            priority,
            timeout,
            attempts,
            gpus: gpu_count(gpus, gpu),
            gpu_memory,
        };
        self.submit_with_after(py, plan, submit, after)
    }

    /// Submits one of the original Python Buildcat's commands (`buildcat.worker.info`,
    /// `buildcat.hou.render_ifd`, ...) with its arguments, for `buildcat.submit`.
    #[pyo3(signature = (queue, command, args, kwargs = None, job_timeout = None))]
    fn submit_command(
        &self,
        py: Python<'_>,
        queue: String,
        command: &str,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
        job_timeout: Option<f64>,
    ) -> PyResult<Job> {
        original::submit(self, py, queue, command, args, kwargs, job_timeout)
    }
}

impl Client {
    /// [`Client::submit_plan`] with the dependencies `after` names.
    fn submit_with_after<T: Task>(
        &self,
        py: Python<'_>,
        plan: RenderPlan<T>,
        submit: Submit,
        after: Option<Vec<Bound<'_, PyAny>>>,
    ) -> PyResult<Job> {
        let defaults = plan
            .tasks
            .first()
            .map(|(_, task)| task.default_options())
            .unwrap_or_default();
        let mut options = self.options(py, &submit, defaults)?;
        let mut dependencies = Vec::new();
        for item in after.unwrap_or_default() {
            dependencies.push(self.dependency(py, &item)?);
        }
        options.after = dependencies;
        let client = self.connection(py)?;
        let job = plan.into_job(&client, &submit.queue, submit.name, options);
        let handle = runtime::block(py, job.submit())?.or_raise(py)?;
        Ok(Job::new(client, handle.submitted(), T::KIND.to_owned()))
    }

    /// The job a `Job` or job number names, as a dependency.
    fn dependency(&self, py: Python<'_>, item: &Bound<'_, PyAny>) -> PyResult<Dependency> {
        if let Ok(job) = item.downcast::<Job>() {
            return Ok(Dependency::Job(job.get().job_id()));
        }
        let number: u64 = item.extract().map_err(|_| {
            errors::raise(
                py,
                "InvalidRequest",
                "after takes Jobs or job numbers".to_owned(),
                None,
            )
        })?;
        let client = self.connection(py)?;
        let status = runtime::block(py, async move { client.job(JobRef::Number(number)).await })?
            .or_raise(py)?;
        Ok(Dependency::Job(status.job.id))
    }
}
