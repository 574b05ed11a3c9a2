"""A stand-in for Houdini's `hython`: `hython -c CODE` runs CODE with the stand-in `hou`
module (tests/fake_dcc/hou.py) importable, as hython runs it with Houdini's. Python's own
traceback and exit status carry an uncaught error, as they do in hython."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

if len(sys.argv) != 3 or sys.argv[1] != "-c":
    sys.stderr.write("fake hython: expected -c CODE, got %r\n" % (sys.argv[1:],))
    sys.exit(96)

code = sys.argv[2]
sys.argv = ["-c"]
exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})
