//! The process runner every integration uses to run a tool: [`run_process`].
//!
//! The program runs in its own process group (on Windows: its own job object, see
//! `job_object`), so that the tool and everything it starts can be stopped together. Its stdout and stderr are read line by line as they come (lossy
//! UTF-8; `\r\n`, `\n` and a lone `\r`, as progress counters print, all end a line) and each
//! line goes to the task's log and to the caller's `on_line`, which is where an integration
//! parses progress.
//!
//! The run ends in one of three ways ([`ProcessEnd`]): the program exits, the task's deadline
//! passes, or the task is canceled. In the last two the whole group gets SIGTERM (and
//! SIGCONT, so a stopped process can act on it), then SIGKILL once the grace period is over
//! if anything of it is still there. Windows has no SIGTERM for a console program: there the
//! job object is terminated at once. When the program exits by itself, whatever it left
//! running in its group is stopped the same way: nothing of a task outlives it. "Still
//! there" is judged by the output pipes: they close once every process holding them is gone.
//! A process that left the group and still holds them is waited for only briefly, and
//! without the grace period when nothing is left in the group (a licence daemon such as
//! Houdini's `hserver`, started by the task and outliving it as a service, issue 19).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use buildcat_proto::Failure;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep_until};
use tracing::{debug, warn};

use crate::context::JobContext;
use crate::output::MAX_LINE_BYTES;

/// How many of the last output lines a [`ProcessReport`] keeps.
pub const TAIL_LINES: usize = 20;

/// How long output is still read, once the process group is gone, from a process that left
/// the group but holds the output pipes open.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// The size of one read from a pipe.
const READ_CHUNK: usize = 8 << 10;

/// What to run, where, and with what.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessSpec {
    /// The program: a bare name is looked up on PATH; a path is used as it is (resolve
    /// job-relative paths against the root before).
    pub program: PathBuf,
    /// Its arguments, passed as they are (no shell).
    pub args: Vec<OsString>,
    /// The working directory, usually the worker's root.
    pub dir: PathBuf,
    /// Environment variables set on top of the worker's own.
    pub env: Vec<(OsString, OsString)>,
    /// Bytes written to the program's stdin, which is then closed; without them stdin is
    /// `/dev/null`.
    pub stdin: Option<Vec<u8>>,
    /// How long the process group gets between SIGTERM and SIGKILL; the task context's
    /// [`kill_grace`](JobContext::kill_grace) if unset.
    pub kill_grace: Option<Duration>,
}

impl ProcessSpec {
    /// Runs `program` in `dir`, with no arguments, no extra environment and no stdin.
    pub fn new(program: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> Self {
        ProcessSpec {
            program: program.into(),
            args: Vec::new(),
            dir: dir.into(),
            env: Vec::new(),
            stdin: None,
            kill_grace: None,
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I>(mut self, args: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the program.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Gives the program these bytes on stdin.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Sets the time between SIGTERM and SIGKILL.
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = Some(grace);
        self
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessEnd {
    /// The program exited by itself: with a code, or killed by a signal (not ours).
    Exited {
        /// The exit code, if it exited normally.
        code: Option<i32>,
        /// The signal that ended it, if one did.
        signal: Option<i32>,
    },
    /// The task's deadline passed; the process group was killed.
    TimedOut {
        /// The task's timeout.
        limit: Duration,
    },
    /// The task was canceled; the process group was killed.
    Canceled,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessReport {
    /// How it ended.
    pub end: ProcessEnd,
    /// The last [`TAIL_LINES`] lines of output, stdout and stderr together, oldest first.
    pub tail: Vec<String>,
    /// From the start to the end of the run, the stopping of its process group included.
    pub elapsed: Duration,
}

impl ProcessReport {
    /// Whether the program exited with code 0.
    pub fn success(&self) -> bool {
        self.end
            == ProcessEnd::Exited {
                code: Some(0),
                signal: None,
            }
    }

    /// `None` if the program exited with code 0; otherwise why the task fails, naming
    /// `program` and carrying the exit code and the output's tail:
    /// "`blender` failed (exit code 3)", "`blender` was killed by signal 9 (SIGKILL)",
    /// "`blender` timed out after 900s; its process tree was killed", "`blender` was
    /// canceled".
    pub fn into_failure(self, program: &str) -> Option<Failure> {
        let (reason, exit_code) = match self.end {
            ProcessEnd::Exited {
                code: Some(0),
                signal: None,
            } => return None,
            // `Failure`'s display adds " (exit code N)".
            ProcessEnd::Exited {
                code: Some(code), ..
            } => (format!("`{program}` failed"), Some(code)),
            ProcessEnd::Exited {
                code: None,
                signal: Some(signal),
            } => (
                format!("`{program}` was killed by signal {}", SignalName(signal)),
                None,
            ),
            ProcessEnd::Exited {
                code: None,
                signal: None,
            } => (
                format!("`{program}` ended in a way the system did not say"),
                None,
            ),
            ProcessEnd::TimedOut { limit } => (
                format!("`{program}` timed out after {limit:?}; its process tree was killed"),
                None,
            ),
            ProcessEnd::Canceled => (format!("`{program}` was canceled"), None),
        };
        Some(Failure {
            reason,
            exit_code,
            output_tail: self.tail,
            gpu_fault: None,
        })
    }
}

/// A signal number with its name where it has a common one: `9 (SIGKILL)`.
struct SignalName(i32);

impl fmt::Display for SignalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            1 => "SIGHUP",
            2 => "SIGINT",
            3 => "SIGQUIT",
            4 => "SIGILL",
            6 => "SIGABRT",
            8 => "SIGFPE",
            9 => "SIGKILL",
            11 => "SIGSEGV",
            13 => "SIGPIPE",
            14 => "SIGALRM",
            15 => "SIGTERM",
            _ => return write!(f, "{}", self.0),
        };
        write!(f, "{} ({name})", self.0)
    }
}

/// Why the runner is stopping the process before it exits.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// The deadline passed.
    TimedOut,
    /// The task was canceled.
    Canceled,
}

/// Runs a program to its end, streaming its output to the task's log and to `on_line`, and
/// stopping its whole process tree at the task's deadline or when the task is canceled.
///
/// Returns an error only when the program could not be started (not found, not executable,
/// no such working directory); everything after that is in the [`ProcessReport`], whose
/// [`into_failure`](ProcessReport::into_failure) says whether and why the task fails.
///
/// Dropping the returned future kills the process group at once.
///
/// ```no_run
/// use buildcat_worker::JobContext;
/// use buildcat_worker::process::{ProcessSpec, run_process};
///
/// async fn render(context: JobContext) -> Result<(), buildcat_worker::Failure> {
///     let spec = ProcessSpec::new("blender", &context.root)
///         .args(["-b", "shot.blend", "-f", "1"]);
///     let report = run_process(spec, &context, |line| {
///         if line.starts_with("Saved:") {
///             context.log("[render] frame written");
///         }
///     })
///     .await?;
///     match report.into_failure("blender") {
///         Some(failure) => Err(failure),
///         None => Ok(()),
///     }
/// }
/// ```
pub async fn run_process(
    spec: ProcessSpec,
    context: &JobContext,
    mut on_line: impl FnMut(&str),
) -> Result<ProcessReport, Failure> {
    let grace = spec.kill_grace.unwrap_or_else(|| context.kill_grace());
    let started = Instant::now();
    let (mut child, tether, job) = spawn(&spec, context)?;
    // Declared after `child`, so dropped before it: the group is killed before the child
    // is (which `kill_on_drop` does) and reaped.
    let mut group = ProcessGroup::new(child.id(), job);
    // Recorded under the worker's state directory while it runs (see `leftovers`).
    let _recorded = context.record_group(child.id());
    // Dropped last: with the run over, the supervisor kills whatever is left of the group.
    #[cfg_attr(
        not(target_os = "linux"),
        allow(
            clippy::let_unit_value,
            clippy::redundant_locals,
            reason = "the tether is `()` without a supervisor; the line orders drops on Linux"
        )
    )]
    let tether = tether;
    // The beat that tells the supervisor the worker is not frozen (with a lease only).
    let mut beats = tokio::time::interval(BEAT);
    beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let beating = context.lease().is_some();
    debug!(program = %spec.program.display(), pid = ?child.id(), "process started");

    let feeder = match (child.stdin.take(), spec.stdin) {
        (Some(mut stdin), Some(bytes)) => Some(tokio::spawn(async move {
            // A program that exits without reading all of its input is its own business.
            if let Err(error) = stdin.write_all(&bytes).await {
                debug!(%error, "the program did not take all of its stdin");
            }
        })),
        _ => None,
    };

    let mut lines = Lines {
        tail: VecDeque::with_capacity(TAIL_LINES),
        context,
        on_line: &mut on_line,
    };
    let mut stdout = child.stdout.take().map(Pipe::new);
    let mut stderr = child.stderr.take().map(Pipe::new);
    let mut stop: Option<Stop> = None;
    let mut exit: Option<(Option<i32>, Option<i32>)> = None;
    let mut kill_at: Option<Instant> = None;
    let mut killed = false;
    let mut drain_until: Option<Instant> = None;

    // While the task's unsent output fills up, the pipes are not read (the program waits on
    // its full pipe) until the worker takes some, or for OUTPUT_PATIENCE; then, cut off
    // from the server, reading goes on and the oldest lines are dropped.
    let mut pace_until: Option<Instant> = None;

    loop {
        let filling = context.output_filling();
        if !filling {
            pace_until = None;
        } else if pace_until.is_none() {
            pace_until = Some(Instant::now() + OUTPUT_PATIENCE);
        }
        let reading = !filling || pace_until.is_some_and(|until| Instant::now() >= until);
        let pipes_open = stdout.is_some() || stderr.is_some();
        if exit.is_some() {
            if !pipes_open {
                break;
            }
            if kill_at.is_none() {
                // The program exited, but something it started still holds its output.
                debug!("the program exited; stopping anything it left running");
                // With the group already empty, what holds the output left the group (a
                // licence daemon such as Houdini's hserver): no grace to wait, only the drain.
                let grace = if group.terminate() {
                    grace
                } else {
                    Duration::ZERO
                };
                kill_at = Some(Instant::now() + grace);
            }
            if killed && drain_until.is_none() {
                drain_until = Some(Instant::now() + DRAIN_LIMIT);
            }
        }
        tokio::select! {
            line = read_line(&mut stdout), if reading => {
                if let Some(line) = line {
                    lines.line(line, false);
                }
            }
            line = read_line(&mut stderr), if reading => {
                if let Some(line) = line {
                    lines.line(line, true);
                }
            }
            _ = beats.tick(), if beating => beat(&tether),
            () = context.output_taken(), if !reading => {}
            () = sleep_until_some(pace_until), if !reading => {}
            status = child.wait(), if exit.is_none() => {
                exit = Some(match status {
                    Ok(status) => exit_parts(status),
                    Err(error) => {
                        warn!(%error, "cannot wait for the program; killing its process group");
                        group.kill();
                        killed = true;
                        (None, None)
                    }
                });
            }
            () = sleep_until_some(context.deadline()), if exit.is_none() && stop.is_none() => {
                debug!(grace = ?grace, "the task's deadline passed; stopping the program");
                stop = Some(Stop::TimedOut);
                group.terminate();
                kill_at = Some(Instant::now() + grace);
            }
            () = context.cancelled(), if exit.is_none() && stop.is_none() => {
                debug!(grace = ?grace, "the task was canceled; stopping the program");
                stop = Some(Stop::Canceled);
                group.terminate();
                kill_at = Some(Instant::now() + grace);
            }
            () = sleep_until_some(kill_at), if !killed => {
                debug!("the grace period is over; killing the process group");
                group.kill();
                if exit.is_none() {
                    // Where there are no process groups, the program at least.
                    let _ = child.start_kill();
                }
                killed = true;
            }
            () = sleep_until_some(drain_until) => {
                warn!(
                    program = %spec.program.display(),
                    "a process outside the task's process group holds its output open; \
                     no longer reading it"
                );
                break;
            }
        }
    }
    // Whatever is left of the group (processes that closed their output) goes too.
    if !killed {
        group.kill();
    }
    group.disarm();
    if let Some(feeder) = feeder {
        feeder.abort();
    }

    let end = match (stop, exit) {
        (Some(Stop::TimedOut), _) => ProcessEnd::TimedOut {
            limit: context.timeout().unwrap_or_else(|| started.elapsed()),
        },
        (Some(Stop::Canceled), _) => ProcessEnd::Canceled,
        (None, Some((code, signal))) => ProcessEnd::Exited { code, signal },
        (None, None) => ProcessEnd::Exited {
            code: None,
            signal: None,
        },
    };
    let elapsed = started.elapsed();
    debug!(program = %spec.program.display(), end = ?end, elapsed = ?elapsed, "process ended");
    Ok(ProcessReport {
        end,
        tail: lines.tail.into(),
        elapsed,
    })
}

/// What keeps a task's processes tied to the worker's life (see `supervisor`).
#[cfg(target_os = "linux")]
type Tether = crate::supervisor::Tether;

/// No supervisor here: on Windows the task's job object ties its processes to the worker
/// (see `job_object`); elsewhere they die with it only when it exits cleanly.
#[cfg(not(target_os = "linux"))]
type Tether = ();

/// How often the worker tells a task's supervisor it is alive: often enough that the
/// supervisor's limit (a lease of seconds) is met long before it runs out.
const BEAT: Duration = Duration::from_millis(250);

/// Tells the task's supervisor the worker is alive.
#[cfg(target_os = "linux")]
fn beat(tether: &Tether) {
    tether.beat();
}

/// Nothing to tell where there is no supervisor.
#[cfg(not(target_os = "linux"))]
fn beat(_tether: &Tether) {}

/// The job object a task's processes run in (Windows only).
#[cfg(windows)]
type Job = crate::job_object::JobObject;

/// No job objects here: process groups do their work.
#[cfg(not(windows))]
type Job = ();

/// Starts the program (through its supervisor on Linux, in a job object on Windows), or
/// says why it cannot be started.
///
/// A slot that owns GPUs sets their visible-devices variables last, so neither the worker's
/// environment nor a job's own variables can show a task another slot's GPUs.
fn spawn(spec: &ProcessSpec, context: &JobContext) -> Result<(Child, Tether, Job), Failure> {
    let silence = context.lease();
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .current_dir(&spec.dir)
        .envs(spec.env.iter().map(|(key, value)| (key, value)));
    if let Some(share) = context.gpu_share() {
        command.envs(crate::gpu::visible_devices(share));
    }
    command
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    command.process_group(0);
    // Suspended until it is in its job object, so nothing it starts escapes the job.
    #[cfg(windows)]
    command.creation_flags(windows_sys::Win32::System::Threading::CREATE_SUSPENDED);
    #[cfg(target_os = "linux")]
    let pending = crate::supervisor::supervise(&mut command, silence).map_err(|error| {
        Failure::new(format!(
            "could not start `{}`: cannot make the pipe that ties it to this worker: {error}",
            spec.program.display()
        ))
    })?;
    let spawned = command.spawn();
    #[cfg(target_os = "linux")]
    let tether = pending.spawned();
    #[cfg(not(target_os = "linux"))]
    let _ = silence;
    #[cfg(not(target_os = "linux"))]
    #[allow(
        clippy::let_unit_value,
        reason = "`()` is what ties a task's processes to the worker here"
    )]
    let tether: Tether = ();
    let child = spawned.map_err(|error| Failure::new(spawn_error(spec, &error)))?;
    #[cfg(windows)]
    let (child, job) = contain(spec, child)?;
    #[cfg(not(windows))]
    let job = ();
    Ok((child, tether, job))
}

/// Puts the suspended `child` in a job object of its own and lets it run; a child that
/// cannot be contained is killed (dropped) rather than run untied to the worker, as a
/// program whose supervisor cannot be made on Linux is never started.
#[cfg(windows)]
fn contain(spec: &ProcessSpec, child: Child) -> Result<(Child, Job), Failure> {
    let refused = |error: io::Error| {
        Failure::new(format!(
            "could not start `{}`: cannot put it in a job object that ties it to this worker: \
             {error}",
            spec.program.display()
        ))
    };
    let (Some(handle), Some(pid)) = (child.raw_handle(), child.id()) else {
        return Err(refused(io::Error::other(
            "the program ended before it started",
        )));
    };
    let job = crate::job_object::JobObject::new().map_err(refused)?;
    job.adopt(handle.cast(), pid).map_err(refused)?;
    Ok((child, job))
}

/// Why `spec` could not be started, in words that say what to fix.
fn spawn_error(spec: &ProcessSpec, error: &io::Error) -> String {
    let program = spec.program.display();
    match error.kind() {
        io::ErrorKind::NotFound if !spec.dir.is_dir() => format!(
            "could not start `{program}`: its working directory {} does not exist",
            spec.dir.display()
        ),
        io::ErrorKind::NotFound if is_bare_name(&spec.program) => {
            let path = spec
                .env
                .iter()
                .rev()
                .find(|(key, _)| key == "PATH")
                .map(|(_, value)| value.clone())
                .or_else(|| std::env::var_os("PATH"))
                .unwrap_or_default();
            format!(
                "could not start `{program}`: not found on this worker's PATH (PATH={})",
                path.to_string_lossy()
            )
        }
        io::ErrorKind::NotFound => format!("could not start `{program}`: no such file"),
        io::ErrorKind::PermissionDenied => {
            format!("could not start `{program}`: permission denied (is it an executable file?)")
        }
        _ => format!("could not start `{program}`: {error}"),
    }
}

/// Whether `program` is a name to look up on PATH rather than a path.
fn is_bare_name(program: &Path) -> bool {
    program.components().count() == 1 && !program.has_root()
}

/// The exit code and the signal of an exit status.
fn exit_parts(status: ExitStatus) -> (Option<i32>, Option<i32>) {
    #[cfg(unix)]
    let signal = std::os::unix::process::ExitStatusExt::signal(&status);
    #[cfg(not(unix))]
    let signal = None;
    (status.code(), signal)
}

/// How long the process runner holds a program's output back while the task's unsent
/// output fills and nothing is taken; past it the worker is taken to be cut off from the
/// server, and reading goes on (dropping the oldest lines) so the program is not stalled.
const OUTPUT_PATIENCE: Duration = Duration::from_secs(2);

/// Sleeps until `at`; never resolves for `None`.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Where output lines go.
struct Lines<'a, F> {
    /// The last lines.
    tail: VecDeque<String>,
    /// The task, whose log gets every line.
    context: &'a JobContext,
    /// The caller's callback.
    on_line: &'a mut F,
}

impl<F: FnMut(&str)> Lines<'_, F> {
    /// Hands one line to the caller, the tail and the task's log (with its stream:
    /// `stderr` when the program wrote it there).
    fn line(&mut self, line: String, stderr: bool) {
        (self.on_line)(&line);
        self.context.check_gpu_line(&line);
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.clone());
        if stderr {
            self.context.log_stderr(line);
        } else {
            self.context.log(line);
        }
    }
}

/// One output pipe being read, with the lines it has produced but not yet handed out.
struct Pipe<R> {
    /// The pipe.
    reader: R,
    /// Splits what is read into lines.
    splitter: LineSplitter,
    /// Lines split off but not yet handed out.
    ready: VecDeque<String>,
    /// The read buffer.
    buffer: Box<[u8]>,
}

impl<R: AsyncRead + Unpin> Pipe<R> {
    /// A pipe to read.
    fn new(reader: R) -> Self {
        Pipe {
            reader,
            splitter: LineSplitter::default(),
            ready: VecDeque::new(),
            buffer: vec![0; READ_CHUNK].into_boxed_slice(),
        }
    }
}

/// The next line from `pipe`, or `None` when a read produced no complete line yet; at the
/// end of the pipe (or a read error) the pipe is set to `None` once its lines are out.
/// Never resolves for a closed pipe. Cancel-safe: nothing read is lost if it is dropped.
async fn read_line<R: AsyncRead + Unpin>(pipe: &mut Option<Pipe<R>>) -> Option<String> {
    let Some(open) = pipe else {
        return std::future::pending().await;
    };
    if let Some(line) = open.ready.pop_front() {
        return Some(line);
    }
    let read = open.reader.read(&mut open.buffer).await;
    match read {
        Ok(0) => {
            let last = open.splitter.finish();
            *pipe = None;
            last
        }
        Ok(count) => {
            let Pipe {
                splitter,
                ready,
                buffer,
                ..
            } = open;
            splitter.push(&buffer[..count], |line| ready.push_back(line));
            ready.pop_front()
        }
        Err(error) => {
            debug!(%error, "cannot read the program's output; treating it as closed");
            let last = open.splitter.finish();
            *pipe = None;
            last
        }
    }
}

/// Splits a byte stream into lines at `\n`, `\r\n` and a lone `\r`, cutting lines longer
/// than [`MAX_LINE_BYTES`].
#[derive(Debug, Default)]
struct LineSplitter {
    /// The bytes of the line being read.
    pending: Vec<u8>,
    /// The last byte was a `\r`.
    after_cr: bool,
    /// ... and it ended a line, so a `\n` right after it ends nothing more.
    cr_ended_line: bool,
}

impl LineSplitter {
    /// Feeds bytes, handing each completed line to `emit`.
    fn push(&mut self, bytes: &[u8], mut emit: impl FnMut(String)) {
        for &byte in bytes {
            match byte {
                b'\n' => {
                    let after_ended_line = self.after_cr && self.cr_ended_line;
                    self.after_cr = false;
                    if !after_ended_line {
                        emit(self.take());
                    }
                }
                b'\r' => {
                    // A lone `\r` redraws the line (progress counters); an empty one is
                    // only an end, e.g. of "\r\n", and makes no line of its own.
                    self.cr_ended_line = !self.pending.is_empty();
                    if self.cr_ended_line {
                        emit(self.take());
                    }
                    self.after_cr = true;
                }
                _ => {
                    self.after_cr = false;
                    self.pending.push(byte);
                    if self.pending.len() >= MAX_LINE_BYTES {
                        emit(self.take_split());
                    }
                }
            }
        }
    }

    /// The last line, if the stream did not end with a line break.
    fn finish(&mut self) -> Option<String> {
        (!self.pending.is_empty()).then(|| self.take())
    }

    /// The pending bytes as a line.
    fn take(&mut self) -> String {
        text(std::mem::take(&mut self.pending))
    }

    /// A full line's worth of pending bytes, cut before a UTF-8 character whose last
    /// bytes have not arrived yet (they go with the next line).
    fn take_split(&mut self) -> String {
        let length = self.pending.len();
        let mut start = length.saturating_sub(1);
        while start > 0 && length - start < 4 && is_continuation(self.pending[start]) {
            start -= 1;
        }
        let width = match self.pending.get(start) {
            Some(0xc0..=0xdf) => 2,
            Some(0xe0..=0xef) => 3,
            Some(0xf0..=0xf7) => 4,
            _ => 1,
        };
        let cut = if start > 0 && width > length - start {
            start
        } else {
            length
        };
        let rest = self.pending.split_off(cut);
        text(std::mem::replace(&mut self.pending, rest))
    }
}

/// Whether `byte` continues a UTF-8 character.
fn is_continuation(byte: u8) -> bool {
    byte & 0xc0 == 0x80
}

/// Bytes as text, with invalid UTF-8 replaced.
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

/// The process group of a running program (on Windows its job object), killed when dropped
/// unless disarmed.
#[derive(Debug)]
struct ProcessGroup {
    /// The group's id (the program's pid); `None` once the group is left alone.
    #[cfg_attr(not(unix), allow(dead_code, reason = "no process groups here"))]
    id: Option<u32>,
    /// The job object holding the program and all it starts; `None` once handed over to
    /// the wait for its processes to be gone.
    #[cfg(windows)]
    job: Option<Job>,
}

impl ProcessGroup {
    /// The group led by the process `pid` (started with `process_group(0)`), or the job
    /// object `job` holding it.
    fn new(pid: Option<u32>, job: Job) -> Self {
        #[cfg(not(windows))]
        let () = job;
        ProcessGroup {
            id: pid,
            #[cfg(windows)]
            job: Some(job),
        }
    }

    /// Asks every process in the group to stop: SIGTERM, and SIGCONT so that a stopped
    /// process gets to act on it. False when the group is known to be gone already.
    fn terminate(&self) -> bool {
        #[cfg(unix)]
        {
            let there = self.signal(libc::SIGTERM);
            self.signal(libc::SIGCONT);
            there
        }
        // No SIGTERM for console programs: the job is ended at once.
        #[cfg(windows)]
        {
            let there = self
                .job
                .as_ref()
                .is_some_and(|job| job.active_processes().map_or(true, |count| count > 0));
            if there {
                self.kill();
            }
            there
        }
        #[cfg(not(any(unix, windows)))]
        true
    }

    /// Kills every process in the group.
    fn kill(&self) {
        #[cfg(unix)]
        self.signal(libc::SIGKILL);
        #[cfg(windows)]
        if let Some(job) = &self.job
            && let Err(error) = job.terminate()
        {
            // Closing the job's handle still kills them (it is made kill-on-close).
            warn!(%error, "cannot terminate the task's job object; its processes die when it is closed");
        }
    }

    /// Leaves the group alone from now on (on Windows: hands the job, ended, to the wait for
    /// its processes to be gone).
    fn disarm(&mut self) {
        #[cfg(windows)]
        if let (Some(job), Some(pid)) = (self.job.take(), self.id) {
            crate::job_object::hand_over(pid, job);
        }
        self.id = None;
    }

    /// Sends `signal` to every process in the group; false when the group is gone (or
    /// there is none to signal).
    #[cfg(unix)]
    fn signal(&self, signal: libc::c_int) -> bool {
        let Some(id) = self.id.and_then(|id| libc::pid_t::try_from(id).ok()) else {
            return false;
        };
        // -0 would be this process's own group and -1 every process this user may signal.
        if id <= 1 {
            return false;
        }
        // SAFETY: `kill` has no memory-safety preconditions; a negative pid addresses the
        // process group whose id is that pid.
        let result = unsafe { libc::kill(-id, signal) };
        if result != 0 {
            let error = io::Error::last_os_error();
            // ESRCH: the group is already gone.
            if error.raw_os_error() == Some(libc::ESRCH) {
                return false;
            }
            warn!(group = id, signal, %error, "cannot signal the process group");
        }
        true
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // Reached armed only when the run is abandoned (its future dropped).
        self.kill();
        #[cfg(windows)]
        self.disarm();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<String> {
        let mut splitter = LineSplitter::default();
        let mut lines = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, |line| lines.push(line));
        }
        lines.extend(splitter.finish());
        lines
    }

    fn check(chunks: &[&[u8]], expected: &[&str]) {
        assert_eq!(split(chunks), expected, "{chunks:?}");
    }

    #[test]
    fn line_endings() {
        check(&[b"a\nb\n"], &["a", "b"]);
        check(&[b"a\r\nb\r\n"], &["a", "b"]);
        check(&[b"a\r", b"\nb"], &["a", "b"]);
        check(&[b"10%\r20%\r30%\n"], &["10%", "20%", "30%"]);
        check(&[b"a\n\nb"], &["a", "", "b"]);
        check(&[b"a\r\n\r\nb"], &["a", "", "b"]);
        check(&[b"\r\r\n"], &[""]);
        check(&[b"no end"], &["no end"]);
        check(&[b"caf\xc3", b"\xa9\n"], &["café"]);
        check(&[b"bad \xff byte\n"], &["bad \u{fffd} byte"]);
        check(&[b""], &[]);
    }

    #[test]
    fn long_lines_are_split_without_cutting_characters() {
        let long = "é".repeat(MAX_LINE_BYTES);
        let lines = split(&[long.as_bytes(), b"\n"]);
        assert!(lines.len() >= 2, "{}", lines.len());
        assert!(lines.iter().all(|line| line.len() <= MAX_LINE_BYTES));
        assert!(lines.iter().all(|line| !line.contains('\u{fffd}')));
        assert_eq!(lines.concat(), long);

        let odd = format!("a{}", "é".repeat(MAX_LINE_BYTES));
        let lines = split(&[odd.as_bytes()]);
        assert!(lines.iter().all(|line| !line.contains('\u{fffd}')));
        assert_eq!(lines.concat(), odd);

        let ascii = "x".repeat(MAX_LINE_BYTES + 1);
        let lines = split(&[ascii.as_bytes()]);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1], "x");
    }

    fn failure(end: ProcessEnd) -> Option<(String, Option<i32>)> {
        let report = ProcessReport {
            end,
            tail: vec!["last".to_owned()],
            elapsed: Duration::from_secs(1),
        };
        report.into_failure("render").map(|failure| {
            assert_eq!(failure.output_tail, ["last"]);
            (failure.to_string(), failure.exit_code)
        })
    }

    #[test]
    fn failures_read_well() {
        let exited = |code, signal| ProcessEnd::Exited { code, signal };
        assert_eq!(failure(exited(Some(0), None)), None);
        assert_eq!(
            failure(exited(Some(3), None)),
            Some(("`render` failed (exit code 3)".to_owned(), Some(3)))
        );
        assert_eq!(
            failure(exited(None, Some(9))),
            Some(("`render` was killed by signal 9 (SIGKILL)".to_owned(), None))
        );
        assert_eq!(
            failure(exited(None, Some(64))),
            Some(("`render` was killed by signal 64".to_owned(), None))
        );
        assert_eq!(
            failure(ProcessEnd::TimedOut {
                limit: Duration::from_secs(900)
            }),
            Some((
                "`render` timed out after 900s; its process tree was killed".to_owned(),
                None
            ))
        );
        assert_eq!(
            failure(ProcessEnd::Canceled),
            Some(("`render` was canceled".to_owned(), None))
        );
    }
}
