"""The exceptions of the buildcat package.

``Error(message, description)`` is the original Python Buildcat's one exception type, kept
with the same two attributes; the others are its subclasses, so a script that catches
``buildcat.Error`` catches everything the package raises.
"""

from __future__ import annotations

from typing import List, Optional

__all__ = [
    "Error",
    "ConnectionFailed",
    "TlsError",
    "RequestRefused",
    "InvalidRequest",
    "JobFailed",
    "JobCanceled",
    "Timeout",
]


class Error(Exception):
    """Something went wrong; ``message`` says what, ``description`` (or None) says more."""

    def __init__(self, message: str, description: Optional[str] = None) -> None:
        super().__init__(message, description)
        self.message = message
        self.description = description

    def __str__(self) -> str:
        if self.description:
            return f"{self.message} {self.description}"
        return self.message


class ConnectionFailed(Error, ConnectionError):
    """The server could not be reached, refused the connection, or the connection was lost."""


class TlsError(ConnectionFailed):
    """The TLS files could not be used, or the TLS session with the server failed."""


class RequestRefused(Error):
    """The server refused a request (an unknown job, a job that cannot change)."""


class InvalidRequest(Error, ValueError):
    """A request was refused before anything was sent (an absolute path, a bad frame spec)."""


class JobFailed(Error):
    """A task of the job failed after its last attempt.

    ``task`` is the task as people name it (``42.0``), ``reason`` the one line the farm
    recorded, ``exit_code`` the tool's exit code (or None), ``output_tail`` its last lines and
    ``gpu_fault`` what went wrong with a GPU when it failed on one (a CUDA out-of-memory line,
    a GPU lost; None otherwise).
    """

    task: Optional[str] = None
    reason: Optional[str] = None
    exit_code: Optional[int] = None
    output_tail: Optional[List[str]] = None
    gpu_fault: Optional[str] = None


class JobCanceled(Error):
    """A task of the job was canceled before it finished."""


class Timeout(Error, TimeoutError):
    """A wait ran past its timeout; the job itself carries on."""
