"""The original Python Buildcat's API, as old scripts call it."""

from __future__ import annotations

import pytest

import buildcat


def test_worker_info_through_queue_submit_wait(farm):
    connection, queue = buildcat.queue(port=farm.port)
    job = buildcat.submit(queue, "buildcat.worker.info")
    info = buildcat.wait(connection=connection, job=job)
    assert set(info) >= {"os", "worker"}, info
    assert info["worker"]["root"] == str(farm.root), info
    assert info["worker"]["name"] == "pytest-worker", info
    assert info["os"]["host"], info
    # Nothing left waiting: the job ran, as the original's own test checks.
    with farm.client() as client:
        queues = {q["name"]: q for q in client.info()["queues"]}
        assert queues["default"]["queued"] == 0, queues


def test_connect_without_a_server_raises_the_originals_error_in_time():
    # A port nobody listens on: refused at once, and never past the timeout.
    from conftest import free_port

    with pytest.raises(buildcat.Error) as raised:
        buildcat.connect(port=free_port(), timeout=2)
    assert raised.value.message == "Couldn't connect to server."
    assert "could not connect to the buildcat server" in raised.value.description


def test_a_failed_job_raises_the_originals_error_with_the_reason(farm):
    connection, _ = buildcat.queue(port=farm.port)
    job = connection.run(["sh", "-c", "echo boom >&2; exit 3"])
    with pytest.raises(buildcat.Error) as raised:
        buildcat.wait(connection=connection, job=job)
    assert raised.value.message == "Job failed."
    assert "exit code 3" in raised.value.description, raised.value.description


def test_unknown_commands_and_absolute_paths_are_refused_before_sending(client):
    before = client.jobs(limit=1000)["jobs"]
    queue = buildcat.Queue(client, "default")
    with pytest.raises(buildcat.InvalidRequest, match="unknown command `buildcat.nope`"):
        buildcat.submit(queue, "buildcat.nope")
    with pytest.raises(buildcat.Error, match="absolute path"):
        buildcat.submit(queue, "buildcat.hou.render_ifd", "/abs/frame.ifd")
    assert client.jobs(limit=1000)["jobs"] == before


def test_render_hip_takes_the_originals_half_open_ranges(client):
    # A queue no worker serves: the job waits, so its name can be read, then goes.
    job = buildcat.submit(
        buildcat.Queue(client, "nobody-serves-this"),
        "buildcat.hou.render_hip",
        hipfile="shots/a.hip",
        rop="/out/mantra1",
        frames=[(1, 11, 1), (20, 25, 2)],
        job_timeout=60,
    )
    status = job.status()
    assert status["kind"] == "buildcat.hou.render_hip"
    assert status["name"] == "a.hip /out/mantra1 1-10,20-24:2", status
    job.cancel()


def test_root_and_require_relative_path(monkeypatch, tmp_path):
    monkeypatch.setenv("BUILDCAT_ROOT", str(tmp_path))
    assert buildcat.root() == str(tmp_path)
    assert buildcat.require_relative_path("a/b.hip", "hip file") == "a/b.hip"
    with pytest.raises(buildcat.Error, match="the hip file cannot be used"):
        buildcat.require_relative_path("/a/b.hip", "hip file")


def test_the_houdini_post_render_pattern_submits_a_job_per_ifd(farm):
    # As the original's users wrote it in a post-render script: one job per .ifd file.
    connection, queue = buildcat.queue(queue="nobody-serves-this", port=farm.port)
    paths = [f"ifd/shot.{frame:04d}.ifd" for frame in (1, 2, 3)]
    jobs = [buildcat.submit(queue, "buildcat.hou.render_ifd", path) for path in paths]
    names = [job.status()["name"] for job in jobs]
    assert names == ["shot.0001.ifd", "shot.0002.ifd", "shot.0003.ifd"]
    assert all(job.kind == "buildcat.hou.render_ifd" and job.tasks == 1 for job in jobs)
    for job in jobs:
        job.cancel()
