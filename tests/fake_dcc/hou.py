"""A stand-in for Houdini's `hou` module, for the fake `hython` (tests/fake_dcc/hython.py).

It holds just what buildcat's generated render code calls, with the behaviour SideFX
documents (https://www.sidefx.com/docs/houdini/hom/hou/): `hou.hipFile.load`, `hou.node`,
`hou.RopNode.render(frame_range=...)` and `addRenderEventCallback` (callbacks get the node,
a `hou.ropRenderEventType` and the time), `hou.Node.errors()`, `hou.Node.node(relative)`,
`parm(name)` / `parmTuple(name)` with `set`, `eval` and `pressButton`, `hou.timeToFrame`,
and `hou.OperationFailed` (a `hou.Error` whose `instanceMessage()` is its text).

A scene is a JSON file: {"nodes": [NODE, ...]}, each NODE
    {"path": "/out/mantra1", "class": "rop" | "lop" | "sop" | "obj", "type": "ifd",
     "renderer": "mantra" | "karma" | null,   # which renderer's lines it prints
     "image": "render/a.$F4.exr",             # the file each frame writes, under the cwd
     "output_parm": "vm_picture",             # the parameter that names it (else none)
     "execute": true,                          # has an `execute` button (and `f`, `trange`)
     "errors": ["..."],                        # what errors() says after a render
     "raise_at": 2,                            # render() raises hou.OperationFailed there
     "print": ["..."]}                         # more lines printed each frame
A node whose path is PARENT/render is its parent's inner render node (the File Cache SOP's).
Only ROPs ("rop") have addRenderEventCallback; LOPs here have render() only, so the code
under test takes its frame-by-frame path for them.
"""

import json
import os
import sys

FPS = 24.0

_nodes = {}


def applicationVersionString():
    return os.environ.get("BUILDCAT_FAKE_HOUDINI_VERSION", "20.0.547")


def timeToFrame(time):
    return time * FPS + 1.0


def frameToTime(frame):
    return (frame - 1.0) / FPS


class Error(Exception):
    def instanceMessage(self):
        return str(self)


class OperationFailed(Error):
    pass


class LoadWarning(Error):
    pass


class _EventType:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "hou.ropRenderEventType." + self.name


class ropRenderEventType:
    PreRender = _EventType("PreRender")
    PreFrame = _EventType("PreFrame")
    PostFrame = _EventType("PostFrame")
    PostWrite = _EventType("PostWrite")
    PostRender = _EventType("PostRender")


class NodeType:
    def __init__(self, name):
        self._name = name

    def name(self):
        return self._name


class Parm:
    def __init__(self, node, name, value=0):
        self._node = node
        self._name = name
        self._value = value

    def eval(self):
        return self._value

    def evalAtFrame(self, frame):
        # An output path: `$F4` is the frame, padded to 4 digits, as Houdini expands it.
        if isinstance(self._value, str):
            return self._value.replace("$F4", "%04d" % int(frame))
        return self._value

    def set(self, value):
        self._value = value

    def pressButton(self):
        if self._name != "execute":
            raise OperationFailed("%s is not a button" % self._name)
        frame = self._node._parms["f"].eval()[0]
        self._node._render_frame(frame)


class ParmTuple:
    def __init__(self, values):
        self._values = tuple(values)

    def eval(self):
        return self._values

    def set(self, values):
        self._values = tuple(values)


def _say(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


class Node:
    def __init__(self, spec):
        self._spec = spec
        self._path = spec["path"]
        self._parms = {}
        self._rendered = False
        if spec.get("output_parm") and spec.get("image"):
            image = os.path.join(os.getcwd(), spec["image"])
            self._parms[spec["output_parm"]] = Parm(self, spec["output_parm"], image)
        if spec.get("execute"):
            self._parms["execute"] = Parm(self, "execute")
            self._parms["trange"] = Parm(self, "trange", 0)
            self._parms["f"] = ParmTuple((1, 1, 1))

    def path(self):
        return self._path

    def type(self):
        return NodeType(self._spec.get("type", "null"))

    def node(self, relative):
        return _nodes.get(self._path.rstrip("/") + "/" + relative)

    def parm(self, name):
        parm = self._parms.get(name)
        return parm if isinstance(parm, Parm) else None

    def parmTuple(self, name):
        parm = self._parms.get(name)
        return parm if isinstance(parm, ParmTuple) else None

    def errors(self):
        return tuple(self._spec.get("errors", ())) if self._rendered else ()

    def _render_frame(self, frame):
        self._rendered = True
        if self._spec.get("raise_at") == frame:
            raise OperationFailed("Error: the render of frame %g failed" % frame)
        image = self._spec.get("image")
        path = None
        if image:
            path = os.path.join(os.getcwd(), image.replace("$F4", "%04d" % int(frame)))
        renderer = self._spec.get("renderer")
        # mantra prints the image it starts on, then Alfred-style progress within it; CGRU's
        # Afanasy parser reads the same lines (afanasy/python/parsers/mantra.py).
        if renderer == "mantra" and path:
            _say("Generating Image: %s (640x480)" % path)
        for percent in (0, 50, 100):
            if renderer:
                _say("ALF_PROGRESS %d%%" % percent)
        for line in self._spec.get("print", ()):
            _say(line)
        if path:
            folder = os.path.dirname(path)
            if not os.path.isdir(folder):
                os.makedirs(folder)
            with open(path, "w") as written:
                written.write("frame %g of %s\n" % (frame, self._path))
            # Karma names the image when it is written (CGRU's karma.py reads `Image: PATH`).
            if renderer == "karma":
                _say("[karma] Image: %s" % path)


class RopNode(Node):
    def __init__(self, spec):
        Node.__init__(self, spec)
        self._callbacks = []

    def addRenderEventCallback(self, callback, run_before_script=False):
        if callback not in self._callbacks:
            self._callbacks.append(callback)

    def _event(self, event, frame):
        for callback in self._callbacks:
            callback(self, event, frameToTime(frame))

    def render(self, frame_range=(), res=(), output_file=None, output_format=None,
               to_flipbook=False, quality=2, ignore_inputs=False, method=None,
               ignore_bypass_flags=False, ignore_lock_flags=False, verbose=False,
               output_progress=False):
        start, stop, step = frame_range
        frame = start
        while frame <= stop:
            self._event(ropRenderEventType.PreFrame, frame)
            self._render_frame(frame)
            self._event(ropRenderEventType.PostFrame, frame)
            frame += step


class LopNode(Node):
    def render(self, frame_range=(), verbose=False, output_progress=False, **_):
        start, stop, step = frame_range
        frame = start
        while frame <= stop:
            self._render_frame(frame)
            frame += step


class SopNode(Node):
    pass


class ObjNode(Node):
    pass


_CLASSES = {"rop": RopNode, "lop": LopNode, "sop": SopNode, "obj": ObjNode}


def node(path):
    return _nodes.get(path)


class hipFile:
    @staticmethod
    def load(path, suppress_save_prompt=False, ignore_load_warnings=False):
        try:
            with open(path) as scene:
                description = json.load(scene)
        except (IOError, OSError, ValueError) as error:
            raise OperationFailed("Unable to load %s: %s" % (path, error))
        _nodes.clear()
        for spec in description.get("nodes", ()):
            _nodes[spec["path"]] = _CLASSES[spec.get("class", "obj")](spec)
