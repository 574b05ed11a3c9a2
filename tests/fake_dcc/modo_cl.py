"""A stand-in for Modo's headless `modo_cl`: reads commands on stdin, one per line, as
Foundry's Headless page describes (SDK: general/systems/Headless.html), and runs the few a
Buildcat worker sends:

- `query platformservice appversion ?`: echoed after `: `, then answered after `> : `
  (the original Buildcat's reading of modo_cl's answer);
- `log.toConsole BOOL`, `log.toConsoleRolling BOOL`, `pref.value ...`: taken;
- `@PATH`, `@"PATH"` or `@{PATH}`: runs the script file PATH (Foundry's SDK, "Command
  System: Executing Scripts"); a Python script (first line `# python`) runs with the
  stand-in `lx` and `modo` modules beside this file, and an error in it is printed as a
  traceback, after which the next command runs (the script's failure is not modo_cl's);
- `app.quit`: exits 0.

It starts with the banner, licensee and prompt of Foundry's Headless page. With a file
`modo-no-license` beside the `modo_cl` script that runs it (the directory named by
`BUILDCAT_FAKE_MODO_BIN`), it prints that file's text and exits 0 without running a
command: Foundry says only that headless Modo "will fail with a license not found error",
not its text, so a test writes its own and the worker must not depend on it.

Each command given to a script's `lx.eval` is appended to the file named by
`BUILDCAT_FAKE_MODO_CALLS`, one per line (see lx.py).
"""

import os
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import lx  # noqa: E402  (the stand-in beside this file)

VERSION = os.environ.get("BUILDCAT_FAKE_MODO_VERSION", "1610")


def unquote(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == "{" and text[-1] == "}":
        return text[1:-1]
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        out = []
        escaped = False
        for c in text[1:-1]:
            if escaped:
                out.append(c)
                escaped = False
            elif c == "\\":
                escaped = True
            else:
                out.append(c)
        return "".join(out)
    return text


def run_script(path):
    try:
        with open(path) as f:
            code = f.read()
    except OSError as error:
        print("! script %s: %s" % (path, error))
        return
    if not code.startswith("# python"):
        print("! script %s: not a Python script" % path)
        return
    try:
        exec(compile(code, path, "exec"), {"__name__": "__main__"})
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc(file=sys.stdout)
    sys.stdout.flush()


def main():
    no_license = os.path.join(os.environ.get("BUILDCAT_FAKE_MODO_BIN", HERE), "modo-no-license")
    if os.path.exists(no_license):
        with open(no_license) as f:
            sys.stdout.write(f.read())
        return 0
    print("@start  modo [%s]  Luxology LLC" % VERSION)
    print("Buildcat Render Farm")
    print(">")
    sys.stdout.flush()
    for line in sys.stdin:
        command = line.strip()
        if not command:
            continue
        if command == "query platformservice appversion ?":
            print(": " + command)
            print("> : " + VERSION)
        elif command.startswith("log.toConsole "):
            lx.console(unquote(command.split(" ", 1)[1]).lower() in ("true", "1", "on"))
        elif command.startswith(("log.toConsoleRolling ", "pref.value ")):
            pass
        elif command.startswith("@"):
            run_script(unquote(command[1:]))
        elif command == "app.quit":
            return 0
        else:
            print("! unknown command: " + command)
        sys.stdout.flush()
    return 0


sys.exit(main())
