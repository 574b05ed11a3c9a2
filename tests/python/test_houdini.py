"""`buildcat.hou.submit_hip` under a stand-in `hou` module (tests/python/fake_hou)."""

from __future__ import annotations

from pathlib import Path

import pytest

import buildcat

FAKE_HOU = Path(__file__).resolve().parent / "fake_hou"


@pytest.fixture
def hou(monkeypatch, farm):
    monkeypatch.syspath_prepend(str(FAKE_HOU))
    import hou as fake

    fake.calls.clear()
    fake.nodes.clear()
    fake.hip_path = str(farm.root / "shots" / "a.hip")
    monkeypatch.setenv("BUILDCAT_ROOT", str(farm.root))
    return fake


def test_submit_hip_saves_and_renders_the_rops_range(hou, client):
    import buildcat.hou

    hou.nodes["/out/mantra1"] = hou.Node("/out/mantra1", frames=(1.0, 48.0, 2.0))
    job = buildcat.hou.submit_hip("/out/mantra1", client=client, queue="nobody-serves-this")
    status = job.status()
    assert status["kind"] == "buildcat.hou.render_hip"
    assert status["name"] == "a.hip /out/mantra1 1-48:2", status
    assert status["runs"] == "houdini-render-hip shots/a.hip --frames 1-48:2 --rop /out/mantra1"
    assert ("hipFile.save",) in hou.calls
    assert hou.calls.index(("hipFile.save",)) < hou.calls.index(("hipFile.path",))
    job.cancel()


def test_submit_hip_takes_frames_and_a_node(hou, client):
    import buildcat.hou

    rop = hou.Node("/out/karma")
    job = buildcat.hou.submit_hip(
        rop, frames="5-6", client=client, queue="nobody-serves-this", save=False
    )
    assert job.status()["name"] == "a.hip /out/karma 5-6"
    assert ("hipFile.save",) not in hou.calls
    job.cancel()


def test_submit_hip_renders_the_current_frame_when_the_rop_does(hou, client):
    import buildcat.hou

    hou.current_frame = 12.0
    hou.nodes["/out/one"] = hou.Node("/out/one", trange=0)
    job = buildcat.hou.submit_hip("/out/one", client=client, queue="nobody-serves-this")
    assert job.status()["name"] == "a.hip /out/one 12"
    job.cancel()


def test_submit_hip_refuses_a_scene_outside_the_root_and_a_missing_rop(hou, client, tmp_path):
    import buildcat.hou

    with pytest.raises(buildcat.InvalidRequest, match="no node at /out/nope"):
        buildcat.hou.submit_hip("/out/nope", client=client)
    hou.nodes["/out/mantra1"] = hou.Node("/out/mantra1")
    hou.hip_path = str(tmp_path / "elsewhere.hip")
    before = client.jobs(limit=1000)["jobs"]
    with pytest.raises(buildcat.InvalidRequest, match="outside the farm root"):
        buildcat.hou.submit_hip("/out/mantra1", client=client)
    assert client.jobs(limit=1000)["jobs"] == before
