"""A stand-in for Houdini's `hou` module: just what `buildcat.hou` calls, recording what it
was asked so tests can check it."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

# What was asked, in order, e.g. ("hipFile.save",), ("node", "/out/mantra1").
calls: List[Tuple[str, ...]] = []

# The scene's path, as `hou.hipFile.path()` reports it; tests set it.
hip_path = "/untitled.hip"

# The playbar's current frame.
current_frame = 1.0


class Parm:
    def __init__(self, value: float) -> None:
        self.value = value

    def eval(self) -> float:
        return self.value


class ParmTuple:
    def __init__(self, values: Tuple[float, ...]) -> None:
        self.values = values

    def eval(self) -> Tuple[float, ...]:
        return self.values


class Node:
    """A ROP with a frame range parameter `f` (start, end, step) and `trange`."""

    def __init__(self, path: str, frames=(1.0, 10.0, 1.0), trange: int = 1) -> None:
        self._path = path
        self._frames = frames
        self._trange = trange

    def path(self) -> str:
        return self._path

    def parm(self, name: str) -> Optional[Parm]:
        calls.append(("parm", self._path, name))
        return Parm(self._trange) if name == "trange" else None

    def parmTuple(self, name: str) -> ParmTuple:
        calls.append(("parmTuple", self._path, name))
        return ParmTuple(self._frames)


nodes: Dict[str, Node] = {}


def node(path: str) -> Optional[Node]:
    calls.append(("node", path))
    return nodes.get(path)


def frame() -> float:
    calls.append(("frame",))
    return current_frame


class hipFile:
    @staticmethod
    def save() -> None:
        calls.append(("hipFile.save",))

    @staticmethod
    def path() -> str:
        calls.append(("hipFile.path",))
        return hip_path
