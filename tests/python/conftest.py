"""Fixtures: a real buildcat server and worker (target/debug/buildcat, or BUILDCAT_BIN) on
a free loopback port, rooted in a temporary directory."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator, List, TypeVar

import pytest

import buildcat

REPO = Path(__file__).resolve().parents[2]

# How long a farm may take to come up or a job to end before a test fails: generous, since
# CI machines are slow and shared; a passing test never waits this long.
PATIENCE = 60.0

T = TypeVar("T")


def binary() -> Path:
    """The buildcat binary the farm runs."""
    path = Path(os.environ.get("BUILDCAT_BIN", REPO / "target" / "debug" / "buildcat"))
    if not path.is_file():
        pytest.fail(f"{path} is missing; build it first with `cargo build -p buildcat-cli`")
    return path


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def poll_until(what: str, check: Callable[[], T], limit: float = PATIENCE) -> T:
    """Calls `check` until it returns something truthy; fails the test after `limit` s."""
    deadline = time.monotonic() + limit
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
            last = value
        except buildcat.Error as error:
            last = error
        time.sleep(0.05)
    pytest.fail(f"{what} did not happen within {limit} s (last: {last!r})")


class Farm:
    """A server and one worker serving `default`, with their root and logs."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "root"
        self.root.mkdir()
        self.port = free_port()
        self.processes: List[subprocess.Popen] = []
        self.logs: List[Path] = []
        self.start(
            "server",
            ["server", "--port", str(self.port), "--storage", str(base / "farm.db"), "--no-http"],
        )
        poll_until("the server to accept clients", self.try_connect)
        self.start(
            "worker",
            [
                "worker",
                "--port",
                str(self.port),
                "--root",
                str(self.root),
                "--name",
                "pytest-worker",
                "--state-dir",
                str(base / "state"),
            ],
        )
        with self.client() as client:
            poll_until("the worker to register", lambda: client.info()["workers"])

    def start(self, name: str, args: List[str]) -> None:
        log = self.base / f"{name}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            self.processes.append(
                subprocess.Popen(
                    [str(binary()), *args],
                    cwd=self.base,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )

    def try_connect(self) -> bool:
        with self.client():
            return True

    def client(self) -> buildcat.Client:
        return buildcat.Client("127.0.0.1", self.port, timeout=5)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=PATIENCE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self.logs:
            text = log.read_text(errors="replace")
            assert "panicked" not in text, f"{log.name} shows a panic:\n{text}"


@pytest.fixture(scope="session")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    running = Farm(tmp_path_factory.mktemp("farm"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def client(farm: Farm) -> Iterator[buildcat.Client]:
    with farm.client() as connected:
        yield connected
