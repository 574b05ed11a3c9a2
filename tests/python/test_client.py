"""The modern API: Client, Job, and the clear errors."""

from __future__ import annotations

import time

import pytest

import buildcat
from conftest import PATIENCE, free_port, poll_until


def test_run_returns_the_commands_result_and_names_the_job(client, farm):
    job = client.run(["sh", "-c", "echo hi > ran.txt"], name="say hi")
    assert job.tasks == 1 and job.number > 0 and len(job.id) == 36
    assert job.wait(timeout=PATIENCE) == {"exit_code": 0}
    assert (farm.root / "ran.txt").read_text() == "hi\n"
    status = job.status()
    assert status["name"] == "say hi" and status["state"] == "finished", status
    assert status["runs"] == "sh -c 'echo hi > ran.txt'", status


def test_a_failing_command_raises_job_failed_with_the_reason(client):
    job = client.run(["sh", "-c", "echo broken input >&2; exit 3"])
    with pytest.raises(buildcat.JobFailed) as raised:
        job.wait(timeout=PATIENCE)
    failed = raised.value
    assert failed.exit_code == 3
    assert failed.task == f"{job.number}.0"
    assert f"task {job.number}.0 failed" in failed.message
    assert "exit code 3" in str(failed)
    assert "broken input" in "\n".join(failed.output_tail)
    assert failed.gpu_fault is None


def test_a_gpu_fault_is_on_job_failed(client, farm):
    # A worker slot owning GPU 0 (declared: CI has no GPU) on a queue of its own, and a job
    # failing with the line PyTorch printed on a real H200 when out of GPU memory (issue 13).
    farm.start(
        "gpu-worker",
        [
            "worker",
            "--port",
            str(farm.port),
            "--root",
            str(farm.root),
            "--name",
            "pytest-gpu",
            "--state-dir",
            str(farm.base / "gpu-state"),
            "--gpus",
            "0",
            "--gpus-per-slot",
            "1",
            "pytest-gpu",
        ],
    )
    worker = farm.processes[-1]
    try:
        poll_until(
            "the GPU worker to register",
            lambda: any(w["name"] == "pytest-gpu" for w in client.info()["workers"]),
        )
        oom = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 400.00 GiB."
        job = client.run(["sh", "-c", f"echo '{oom}' >&2; exit 1"], queue="pytest-gpu", gpus=1)
        with pytest.raises(buildcat.JobFailed) as raised:
            job.wait(timeout=PATIENCE)
        fault = raised.value.gpu_fault
        assert fault is not None and fault.startswith("GPU 0") and fault.endswith(oom), fault
    finally:
        # Gone before the next test, which lists the workers.
        worker.terminate()
        worker.wait(timeout=PATIENCE)
        poll_until(
            "the GPU worker to leave",
            lambda: all(w["name"] != "pytest-gpu" for w in client.info()["workers"]),
        )


def test_cancel_ends_a_waiting_job(client):
    job = client.run(["true"], queue="nobody-serves-this")
    changes = client.job(job.number).cancel()
    assert changes and changes[0]["number"] == job.number, changes
    with pytest.raises(buildcat.JobCanceled):
        job.wait(timeout=PATIENCE)
    assert job.status()["state"] == "canceled"


def test_wait_times_out_and_the_job_carries_on(client):
    job = client.run(["true"], queue="nobody-serves-this")
    started = time.monotonic()
    with pytest.raises(buildcat.Timeout):
        job.wait(timeout=0.3)
    assert time.monotonic() - started < PATIENCE
    assert job.status()["state"] == "queued"
    job.cancel()


def test_info_and_jobs_are_shaped_like_the_clis_json(client):
    job = client.run(["true"], name="listed", queue="listing")
    info = client.info()
    assert set(info) == {"queues", "unserved", "workers"}, info
    assert info["workers"][0]["name"] == "pytest-worker", info
    assert any(q["name"] == "listing" for q in info["queues"]), info
    listed = client.jobs(queue="listing")
    assert set(listed) == {"jobs", "more"}
    assert [j["name"] for j in listed["jobs"]] == ["listed"]
    assert listed["jobs"][0]["number"] == job.number
    assert client.jobs(queue="listing", state="finished")["jobs"] == []
    with pytest.raises(buildcat.InvalidRequest):
        client.jobs(state="sideways")
    job.cancel()


def test_an_absolute_path_raises_before_anything_is_sent(client):
    before = client.jobs(limit=1000)["jobs"]
    with pytest.raises(buildcat.InvalidRequest, match="absolute path"):
        client.blender_render("/home/me/shot.blend", frames="1-10")
    with pytest.raises(buildcat.InvalidRequest, match="climbs out"):
        client.houdini_render_ifd(["a.ifd", "../b.ifd"])
    with pytest.raises(buildcat.InvalidRequest, match="^chunk must be at least 1"):
        client.blender_render("shot.blend", chunk=0)
    with pytest.raises(buildcat.InvalidRequest, match="bad frame spec"):
        client.blender_render("shot.blend", frames="1-x")
    assert client.jobs(limit=1000)["jobs"] == before


def test_blender_render_plans_chunks_like_the_cli(client):
    job = client.blender_render(
        "shots/a.blend", frames="1-10", chunk=4, queue="nobody-serves-this", priority=5
    )
    status = job.status()
    assert status["name"] == "a.blend 1-10"
    assert status["priority"] == 5
    assert [t["frames"] for t in status["tasks"]] == ["1-4", "5-8", "9-10"]
    job.cancel()


def test_houdini_ifd_is_a_task_per_file(client):
    job = client.houdini_render_ifd(
        ["ifd/a.0001.ifd", "ifd/a.0002.ifd"], queue="nobody-serves-this"
    )
    assert job.tasks == 2
    assert job.status()["name"] == "2 ifd files"
    job.cancel()


def test_no_server_gives_a_clear_connection_error_in_time():
    started = time.monotonic()
    with pytest.raises(buildcat.ConnectionFailed) as raised:
        buildcat.Client("127.0.0.1", free_port(), timeout=2)
    assert time.monotonic() - started < 2 + 5
    assert "could not connect to the buildcat server at 127.0.0.1:" in str(raised.value)
    assert "is `buildcat server` running?" in str(raised.value)
    assert isinstance(raised.value, ConnectionError)


def test_a_closed_client_says_so(farm):
    client = farm.client()
    with client:
        pass
    with pytest.raises(buildcat.ConnectionFailed, match="is closed"):
        client.info()


def test_ctrl_c_interrupts_a_wait(farm, tmp_path):
    import signal
    import subprocess
    import sys

    script = tmp_path / "waiter.py"
    script.write_text(
        "import sys, buildcat\n"
        f"client = buildcat.Client('127.0.0.1', {farm.port})\n"
        "job = client.run(['true'], queue='nobody-serves-this')\n"
        "try:\n"
        "    print(job.number, flush=True)\n"
        "    job.wait()\n"
        "except KeyboardInterrupt:\n"
        "    job.cancel()\n"
        "    print('interrupted', flush=True)\n"
        "    sys.exit(7)\n"
    )
    waiter = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True
    )
    try:
        number = waiter.stdout.readline().strip()
        assert number.isdigit(), number
        # Once the number is printed the script is in (or entering) a wait that would never
        # end on its own; Ctrl-C must end it with KeyboardInterrupt.
        waiter.send_signal(signal.SIGINT)
        assert waiter.wait(timeout=PATIENCE) == 7
        assert waiter.stdout.read().strip() == "interrupted"
    finally:
        waiter.kill()


def test_after_holds_a_job_until_the_jobs_it_names_finish(client):
    first = client.run(["true"], queue="nobody-serves-this")
    second = client.run(["true"], after=[first], name="after first")
    third = client.run(["true"], after=[first.number], name="after first by number")
    for job in (second, third):
        status = job.status()
        assert status["tasks"][0]["state"] == "deferred", status
    first.cancel()
    second.cancel()
    third.cancel()


def test_modo_and_redshift_renders_are_planned_like_the_cli(client):
    modo = client.modo_render("scenes/a.lxo", start=1, stop=7, step=2, queue="nobody-serves-this")
    assert modo.tasks == 3
    assert modo.status()["name"] == "a.lxo 1-5:2"
    redshift = client.redshift_render("archives/a.rs", queue="nobody-serves-this")
    assert redshift.status()["name"] == "a.rs"
    with pytest.raises(buildcat.InvalidRequest, match="^stop \\(1\\) must be greater"):
        client.modo_render("scenes/a.lxo", start=3, stop=1)
    with pytest.raises(buildcat.InvalidRequest, match="timeout must be a positive number"):
        client.redshift_render("archives/a.rs", timeout=-1)
    modo.cancel()
    redshift.cancel()


def test_a_gpu_job_waits_for_a_gpu_while_a_cpu_job_runs(client):
    # The test farm's worker has no GPU: the job needing two waits, the one behind it runs.
    gpu_job = client.run(["true"], gpus=2, gpu_memory=24 * 1024)
    status = gpu_job.status()
    assert status["gpus"] == {"count": 2, "memory_mib": 24576, "text": "2 GPUs of 24 GiB"}
    assert client.run(["true"]).wait(timeout=PATIENCE) == {"exit_code": 0}
    assert gpu_job.status()["state"] == "queued"
    unserved = client.info()["unserved"]
    assert any(entry.get("gpus", {}).get("count") == 2 for entry in unserved), unserved
    gpu_job.cancel()


def test_gpu_renders_ask_for_one_gpu_and_refuse_the_cpu(client):
    job = client.blender_render("shot.blend", frames="1-2", gpu=True, queue="no-gpu-here")
    status = job.status()
    assert status["gpus"]["count"] == 1, status
    assert "--gpu" in status["runs"], status
    job.cancel()
    with pytest.raises(buildcat.InvalidRequest) as refused:
        client.blender_render("shot.blend", frames="1", gpu=True, cycles_device="CPU")
    assert "cycles_device CPU" in str(refused.value)
    with pytest.raises(buildcat.InvalidRequest):
        client.run(["true"], gpu_memory=0)


def test_houdini_usd_renders_are_planned_like_the_cli(client):
    job = client.houdini_render_usd(
        "usd/shot.usd", frames="1-5", chunk=2, renderer="karmaxpu", gpu=True,
        queue="nobody-serves-this",
    )
    status = job.status()
    assert [t["frames"] for t in status["tasks"]] == ["1-2", "3-4", "5"], status
    assert status["gpus"]["count"] == 1, status
    job.cancel()
    with pytest.raises(buildcat.InvalidRequest):
        client.houdini_render_usd("/abs/shot.usd")
