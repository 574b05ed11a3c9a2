"""The Blender add-on in the real Blender, in background mode: installed from the zip
`cargo xtask python` builds, submitting a generated scene to the farm's worker, which
renders its frames into the farm root."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import PATIENCE, REPO

# Blender's own Python: a 64x48 Workbench scene over frames 1-3, saved to the path after
# `--`, outside the farm root (where an artist keeps it).
MAKE_SCENE = """
import sys
import bpy

scene = bpy.context.scene
scene.render.engine = 'BLENDER_WORKBENCH'
scene.render.resolution_x = 64
scene.render.resolution_y = 48
scene.render.resolution_percentage = 100
scene.frame_start = 1
scene.frame_end = 3
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[sys.argv.index('--') + 1])
"""

# Installs and enables the add-on from the zip, points it at the farm, and runs the submit
# operator; prints the job's number for the test.
SUBMIT = """
import os
import bpy

bpy.ops.preferences.addon_install(filepath=os.environ['ADDON_ZIP'])
bpy.ops.preferences.addon_enable(module='buildcat_blender')
preferences = bpy.context.preferences.addons['buildcat_blender'].preferences
preferences.farm_root = os.environ['FARM_ROOT']
settings = bpy.context.scene.buildcat
settings.port = int(os.environ['FARM_PORT'])
settings.chunk = 2
settings.output = 'renders/anim_####'
result = bpy.ops.buildcat.submit()
assert result == {'FINISHED'}, result
print('BUILDCAT_JOB', settings.last_job)
import buildcat_blender
print('BUILDCAT_PAGE', buildcat_blender.job_page(bpy.context, settings.last_job))
preferences.web_page = 'http://farm.example:8080/'
print('BUILDCAT_PAGE', buildcat_blender.job_page(bpy.context, settings.last_job))
"""


def addon_zip() -> Path:
    given = os.environ.get("BUILDCAT_ADDON_ZIP")
    if given:
        return Path(given)
    found = sorted(glob.glob(str(REPO / "target" / "python" / "buildcat_blender-*.zip")))
    if not found:
        pytest.fail("no add-on zip in target/python/; build it with `cargo xtask python`")
    return Path(found[-1])


def blender() -> str:
    found = shutil.which("blender")
    if found is None:
        if os.environ.get("BUILDCAT_CI") == "1":
            pytest.fail("blender is not installed (apt-get install blender)")
        pytest.skip("blender is not installed")
    return found


def run_blender(args, env, cwd):
    done = subprocess.run(
        [blender(), "-b", "--factory-startup", "-noaudio", "--python-exit-code", "1", *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=PATIENCE * 3,
    )
    assert done.returncode == 0, f"blender failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_addon_submits_the_scene_and_a_worker_renders_it(farm, client, tmp_path):
    artist = tmp_path / "artist"
    artist.mkdir()
    env = dict(os.environ)
    # Blender installs add-ons into its user scripts folder: a temporary one, not $HOME's.
    env["BLENDER_USER_SCRIPTS"] = str(tmp_path / "scripts")
    env["BLENDER_USER_CONFIG"] = str(tmp_path / "config")
    env.update(
        ADDON_ZIP=str(addon_zip()), FARM_ROOT=str(farm.root), FARM_PORT=str(farm.port)
    )
    scene = artist / "anim.blend"
    run_blender(["--python-expr", MAKE_SCENE, "--", str(scene)], env, artist)
    out = run_blender([str(scene), "--python-expr", SUBMIT], env, artist)
    numbers = [line.split()[1] for line in out.splitlines() if line.startswith("BUILDCAT_JOB")]
    assert numbers and numbers[0] != "0", out
    # The report links to the job's web page: the server's host on the default port, or
    # the page the preferences name.
    pages = [line.split()[1] for line in out.splitlines() if line.startswith("BUILDCAT_PAGE")]
    assert pages == [
        f"http://127.0.0.1:2229/#/job/{numbers[0]}",
        f"http://farm.example:8080/#/job/{numbers[0]}",
    ], out

    job = client.job(int(numbers[0]))
    status = job.status()
    assert status["name"] == "anim.blend 1-3", status
    assert status["kind"] == "buildcat.blender.render", status
    assert [t["frames"] for t in status["tasks"]] == ["1-2", "3"], status
    # The copy it renders lives under the root, so the artist's file is left alone.
    copies = list((farm.root / "buildcat" / "submissions").glob("anim-*/anim.blend"))
    assert len(copies) == 1, copies

    job.wait(timeout=PATIENCE * 3)
    for frame in (1, 2, 3):
        image = farm.root / "renders" / f"anim_{frame:04d}.png"
        assert image.is_file(), f"{image} was not rendered"
