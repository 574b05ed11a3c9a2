"""A stand-in for Modo's `lx` Python module, for the fake `modo_cl` (modo_cl.py).

It holds just what Buildcat's render script calls: `lx.eval(command)`, which raises when
the command fails (Foundry's SDK page on Python: "Error handling is performed with
exceptions instead of result codes"); `lx.out(text)`, which writes to the event log, sent
to stdout once `log.toConsole true` ran; and the `lx.symbol` names of the item type and
channels the script reads.

A scene is a JSON file:
    {"outputs": [OUTPUT, ...],             # the render outputs (Shader Tree)
     "outPat": "[<pass>][<output>][<LR>]<FFFF>",   # the render item's output pattern
     "fail": {"render.animation": "TEXT"}, # a command that raises RuntimeError(TEXT)
     "skip_frames": [3],                    # frames render.animation writes no file for
     "print": ["..."]}                      # lines render.animation prints
each OUTPUT {"name": "Final Color Output", "filename": "render/shot", "enable": true,
             "format": "openexr", "write": true}   # write: false saves nothing
`render.animation {*}` writes, for each frame of the render item's first..last by step,
each enabled output's file: its filename (relative to the working directory), the output
pattern with `[...]` groups left out (no passes, outputs or eyes here) and `<F...>` the
frame zero-padded to as many digits as F's, and the format's extension.
"""

import json
import os
import re
import sys

_state = {"console": False, "scene": None, "render": {}, "selected": None}

EXTENSIONS = {"openexr": "exr", "openexr_32": "exr", "PNG": "png", "JPG": "jpg", "TIF": "tif"}


class symbol(object):
    sITYPE_RENDEROUTPUT = "renderOutput"
    sITYPE_POLYRENDER = "polyRender"
    sICHAN_TEXTURELAYER_ENABLE = "enable"
    sICHAN_RENDEROUTPUT_FILENAME = "filename"
    sICHAN_RENDEROUTPUT_FORMAT = "format"
    sICHAN_POLYRENDER_OUTPAT = "outPat"
    sICHAN_POLYRENDER_FIRST = "first"
    sICHAN_POLYRENDER_LAST = "last"
    sICHAN_POLYRENDER_STEP = "step"


def console(on):
    _state["console"] = on


def out(*args):
    if _state["console"]:
        sys.stdout.write(" ".join(str(a) for a in args) + "\n")
        sys.stdout.flush()


def _record(command):
    calls = os.environ.get("BUILDCAT_FAKE_MODO_CALLS")
    if calls:
        with open(calls, "a") as f:
            f.write(command + "\n")


def scene():
    return _state["scene"]


def render_item():
    return _state["render"]


def _argument(text):
    text = text.strip()
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    if text.startswith("{") and text.endswith("}"):
        return text[1:-1]
    return text


def _frame_name(pattern, frame):
    pattern = re.sub(r"\[[^\]]*\]", "", pattern or "")
    return re.sub(r"<(F+)>", lambda m: "%0*d" % (len(m.group(1)), frame), pattern)


def _picture(extension, frame):
    """A file's bytes: a PNG or JPEG starts and ends as a whole one does (the worker
    checks the ends of the files a render wrote), with the frame between."""
    body = ("frame %d" % frame).encode()
    if extension == "png":
        return b"\x89PNG\r\n\x1a\n" + body + b"\0\0\0\0IEND\xaeB`\x82"
    if extension == "jpg":
        return b"\xff\xd8" + body + b"\xff\xd9"
    return body + b"\n"


def _render():
    scene = _state["scene"]
    item = _state["render"]
    first, last, step = item.get("first", 1), item.get("last", 1), item.get("step", 1)
    for line in scene.get("print", []):
        print(line)
    skip = set(scene.get("skip_frames", []))
    pattern = scene.get("outPat", "[<pass>][<output>][<LR>]<FFFF>")
    frame = first
    while frame <= last:
        for output in scene.get("outputs", []):
            if not output.get("enable", True) or not output.get("filename"):
                continue
            if not output.get("write", True) or frame in skip:
                continue
            extension = EXTENSIONS.get(output.get("format", "openexr"), "img")
            path = "%s%s.%s" % (output["filename"], _frame_name(pattern, frame), extension)
            folder = os.path.dirname(path)
            if folder and not os.path.isdir(folder):
                os.makedirs(folder)
            with open(path, "wb") as f:
                f.write(_picture(extension, frame))
        frame += step
    sys.stdout.flush()


def eval(command):  # noqa: A001  (Modo's name)
    _record(command)
    name, _, rest = command.partition(" ")
    scene = _state["scene"]
    if scene is not None and name in scene.get("fail", {}):
        raise RuntimeError(scene["fail"][name])
    if name == "scene.open":
        path = _argument(rest)
        try:
            with open(path) as f:
                _state["scene"] = json.load(f)
        except (OSError, ValueError) as error:
            raise RuntimeError("could not load %s: %s" % (path, error))
        _state["render"] = {}
    elif name == "select.itemType":
        _state["selected"] = rest.strip()
    elif name == "item.channel":
        channel, value = rest.split(" ", 1)
        if _state["selected"] != symbol.sITYPE_POLYRENDER:
            raise RuntimeError("item.channel: no render item selected")
        _state["render"][channel] = int(value)
    elif name == "render.animation":
        if scene is None:
            raise RuntimeError("render.animation: no scene")
        _render()
    else:
        raise RuntimeError("unknown command " + name)
    return None
