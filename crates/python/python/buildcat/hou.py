"""Submitting from Houdini (hython or a shelf tool): ``submit_hip(rop, frames=...)``.

    import buildcat.hou
    job = buildcat.hou.submit_hip("/out/mantra1", frames="1-48")

The current .hip file is saved, named relative to the farm root (BUILDCAT_ROOT, or
``root=``), and rendered through the ROP by ``hython`` on a worker: one job, named after
the file, the ROP and the frames.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from . import DEFAULT_PORT, Client, InvalidRequest, Job, relative_to_root

Frames = Union[str, int, Sequence[int]]


def _frames_of(node: Any) -> str:
    """The frames a ROP renders as its parameters say: its range (``f1``-``f2`` by
    ``f3``), or the current frame when it renders only that."""
    import hou  # Only inside Houdini.

    trange = node.parm("trange")
    if trange is not None and trange.eval() == 0:
        return str(int(hou.frame()))
    start, end, step = (int(value) for value in node.parmTuple("f").eval())
    if step == 1:
        return f"{start}-{end}"
    return f"{start}-{end}:{step}"


def submit_hip(
    rop: Any,
    frames: Optional[Frames] = None,
    *,
    client: Optional[Client] = None,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    root: Optional[str] = None,
    save: bool = True,
    **options: Any,
) -> Job:
    """Renders the current .hip through ``rop`` (a node or its path) on the farm.

    ``frames`` is a frame spec (``"1-48"``, ``"1-100:2"``), a frame or a list of frames;
    by default the ROP's own range. ``save`` saves the scene first, so the farm renders what
    is on screen. ``options`` go to ``Client.houdini_render_hip`` (``queue``, ``name``,
    ``priority``, ``timeout``...). Returns the job.
    """
    import hou  # Only inside Houdini.

    node = hou.node(rop) if isinstance(rop, str) else rop
    if node is None:
        raise InvalidRequest(f"there is no node at {rop}; give the ROP's path, e.g. /out/mantra1")
    if save:
        hou.hipFile.save()
    hip = relative_to_root(hou.hipFile.path(), root)
    if frames is None:
        frames = _frames_of(node)
    farm = client if client is not None else Client(host, port)
    return farm.houdini_render_hip(hip, frames=frames, rop=node.path(), **options)
