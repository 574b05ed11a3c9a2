"""A stand-in for Modo's `modo` Python module (the TD SDK), for the fake `modo_cl`
(modo_cl.py): `modo.Scene()` with `items(type)` (the render outputs of the scene `lx`
loaded, see lx.py) and `renderItem`, each item with `name` and `channel(name).get()`."""

import lx


class _Channel(object):
    def __init__(self, value):
        self._value = value

    def get(self):
        return self._value


class _Item(object):
    def __init__(self, name, channels):
        self.name = name
        self._channels = channels

    def channel(self, name):
        if name not in self._channels:
            raise LookupError("no channel " + name)
        return _Channel(self._channels[name])


class Scene(object):
    def __init__(self):
        self._scene = lx.scene()
        if self._scene is None:
            raise RuntimeError("no scene is open")

    def items(self, itype=None):
        if itype != lx.symbol.sITYPE_RENDEROUTPUT:
            return []
        return [
            _Item(output.get("name", "Render Output"), {
                "enable": output.get("enable", True),
                "filename": output.get("filename", ""),
                "format": output.get("format", "openexr"),
            })
            for output in self._scene.get("outputs", [])
        ]

    @property
    def renderItem(self):
        channels = dict(lx.render_item())
        channels["outPat"] = self._scene.get("outPat", "[<pass>][<output>][<LR>]<FFFF>")
        return _Item("Render", channels)
