"""Submit to a buildcat render farm from Python: the original Python Buildcat's API
(``connect``, ``queue``, ``submit``, ``wait``, ``Error``) and a modern one (``Client``).

The protocol is spoken by the Rust client inside ``buildcat._native``; this package adds the
original's functions on top of it. Every path a job names is relative to the farm root
(BUILDCAT_ROOT), since each worker mounts the shared storage at its own place.

    import buildcat

    with buildcat.Client("render-server") as farm:
        job = farm.blender_render("shots/a.blend", frames="1-100", chunk=10,
                                  output="renders/a_####")
        print("submitted job", job.number)
        job.wait()  # raises buildcat.JobFailed with the reason if a task fails
"""

from __future__ import annotations

import os
from typing import Any, Optional, Tuple

from . import _errors, _native
from ._errors import (
    ConnectionFailed,
    Error,
    InvalidRequest,
    JobCanceled,
    JobFailed,
    RequestRefused,
    Timeout,
    TlsError,
)
from ._native import DEFAULT_PORT, Client, Job, __version__

_native.register_errors({name: getattr(_errors, name) for name in _errors.__all__})

__all__ = [
    "Client",
    "Job",
    "Queue",
    "DEFAULT_PORT",
    "connect",
    "queue",
    "submit",
    "wait",
    "root",
    "require_relative_path",
    "relative_to_root",
    "Error",
    "ConnectionFailed",
    "TlsError",
    "RequestRefused",
    "InvalidRequest",
    "JobFailed",
    "JobCanceled",
    "Timeout",
    "__version__",
]


class Queue:
    """A queue on a farm, as the original's ``queue()`` returned it: ``submit`` takes it."""

    def __init__(self, connection: Client, name: str = "default") -> None:
        self.connection = connection
        self.name = name

    def __repr__(self) -> str:
        return f"<buildcat.Queue {self.name!r} on {self.connection.address}>"


def connect(
    *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, timeout: Optional[float] = None
) -> Client:
    """A connection to the server; raises ``Error("Couldn't connect to server.")`` (a
    ``ConnectionFailed``, whose ``description`` says why) when it cannot be reached."""
    try:
        return Client(host, port, timeout=timeout)
    except ConnectionFailed as error:
        raise ConnectionFailed("Couldn't connect to server.", error.message) from error


def queue(
    *,
    queue: str = "default",
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    timeout: Optional[float] = 5,
) -> Tuple[Client, Queue]:
    """The pair ``(connection, queue)`` for ``submit`` and ``wait``."""
    connection = connect(host=host, port=port, timeout=timeout)
    return connection, Queue(connection, queue)


def submit(queue: Queue, command: str, *args: Any, **kwargs: Any) -> Job:
    """Submits one of the original's commands (``"buildcat.worker.info"``,
    ``"buildcat.hou.render_ifd"``, ...) with its arguments; ``job_timeout=SECONDS`` sets
    the job's timeout. Returns the job."""
    job_timeout = kwargs.pop("job_timeout", None)
    return queue.connection.submit_command(
        queue.name, command, args, kwargs or None, job_timeout
    )


def wait(*, connection: Client, job: Job) -> Any:
    """Blocks until the job ends and returns its result as Python values (the worker's
    info dict for ``buildcat.worker.info``); raises ``Error("Job failed.")`` with the
    farm's reason as its description. Ctrl-C interrupts it."""
    del connection  # The job knows its connection; kept for the original's signature.
    try:
        return job.wait()
    except (JobFailed, JobCanceled) as error:
        raise Error("Job failed.", error.message) from error


def root() -> str:
    """The farm root as this process sees it: BUILDCAT_ROOT if set, else the current
    directory (a worker runs its jobs in the root)."""
    return os.environ.get("BUILDCAT_ROOT") or os.getcwd()


def require_relative_path(path: str, description: str = "path") -> str:
    """Returns ``path`` if it is relative and stays inside the farm root; raises
    ``InvalidRequest`` (an ``Error``) naming ``description`` otherwise."""
    _native.check_relative_path(path, description)
    return path


def relative_to_root(path: str, farm_root: Optional[str] = None) -> str:
    """``path`` (absolute, as this machine sees it) relative to the farm root
    (``farm_root``, else BUILDCAT_ROOT), with ``/`` separators, for a job to name it;
    raises ``InvalidRequest`` when it lies outside the root."""
    base = farm_root or os.environ.get("BUILDCAT_ROOT")
    if not base:
        raise InvalidRequest(
            f"{path} must be named relative to the farm root, but no root is known: set "
            "BUILDCAT_ROOT to where this machine sees the farm's shared storage"
        )
    absolute = os.path.realpath(os.path.abspath(path))
    base = os.path.realpath(os.path.abspath(base))
    try:
        relative = os.path.relpath(absolute, base)
    except ValueError:  # Another drive on Windows.
        relative = absolute
    if relative == os.curdir or relative.startswith(os.pardir) or os.path.isabs(relative):
        raise InvalidRequest(
            f"{path} is outside the farm root {base}; save it under the root so workers "
            "can read it"
        )
    return relative.replace(os.sep, "/")
