"""`Client(tls=...)` against a server that requires TLS with client certificates."""

from __future__ import annotations

import subprocess

import pytest

import buildcat
from conftest import PATIENCE, binary, free_port, poll_until


def keygen(kind: str, directory, *extra: str) -> None:
    subprocess.run(
        [str(binary()), f"{kind}-keygen", "--dir", str(directory), *extra],
        check=True,
        capture_output=True,
        timeout=PATIENCE,
    )


def test_a_tls_farm_takes_the_certificate_files(tmp_path):
    keygen("server", tmp_path, "--name", "127.0.0.1")
    keygen("client", tmp_path)
    port = free_port()
    log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen(
        [
            str(binary()),
            "server",
            "--port",
            str(port),
            "--storage",
            str(tmp_path / "farm.db"),
            "--no-http",
            "--tls-cert",
            str(tmp_path / "server.cert"),
            "--tls-key",
            str(tmp_path / "server.key"),
            "--client-ca",
            str(tmp_path / "client.cert"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    tls = {
        "ca": str(tmp_path / "server.cert"),
        "cert": str(tmp_path / "client.cert"),
        "key": str(tmp_path / "client.key"),
    }
    try:
        client = poll_until(
            "the TLS server to accept clients",
            lambda: buildcat.Client("127.0.0.1", port, tls=tls, timeout=5),
        )
        with client:
            assert client.info()["workers"] == []
        # Plain TCP to a server that requires TLS is refused with a reason, not a hang.
        with pytest.raises(buildcat.ConnectionFailed):
            buildcat.Client("127.0.0.1", port, timeout=5).info()
        with pytest.raises(buildcat.TlsError, match="tls needs `key`"):
            buildcat.Client("127.0.0.1", port, tls={"ca": tls["ca"], "cert": tls["cert"]})
    finally:
        server.terminate()
        server.wait(timeout=PATIENCE)
        log.close()
    assert "panicked" not in (tmp_path / "server.log").read_text(errors="replace")
