//! Stand-ins for the DCC tools a worker drives (`hython`, `mantra`, `husk`, `modo_cl`,
//! `redshiftCmdLine`): small `sh` scripts that record how they were run (arguments, stdin,
//! working directory, environment) and answer with the lines the real tools print, so a
//! test can check the exact command lines a worker builds, and what it makes of the
//! tools' output, without Houdini, Modo or Redshift installed.
//!
//! `hython` runs `tests/fake_dcc/hython.py` with the stand-in `hou` module beside it
//! (ROP, LOP and SOP nodes; a scene is a JSON file, described in `hou.py`), and `modo_cl`
//! runs `tests/fake_dcc/modo_cl.py`, which runs the worker's render script with the
//! stand-in `lx` and `modo` modules (render outputs; a scene is a JSON file, described in
//! `lx.py`) and records each command the script runs in `calls`. The others take
//! what they do from the scene file they are given, line by line:
//! - `print TEXT`: print TEXT (a licence error, a warning) as the tool's own output;
//! - `image PATH`: write PATH under the working directory and print the tool's line for a
//!   written image;
//! - `exit N`: exit with N at the end (0 otherwise);
//! - `hold FRAME PERCENT FILE` (husk only): in frame FRAME, print `ALF_PROGRESS PERCENT%`
//!   and wait until FILE (under the working directory) exists, so that a test sees a
//!   frame half rendered and lets it go on by creating FILE.
//!
//! Anything else in the file is ignored. The lines each tool prints, with their sources:
//! mantra `Generating Image: PATH (WxH)` then `ALF_PROGRESS N%` (CGRU Afanasy's
//! `parsers/mantra.py`; Alfred-style progress as `output_progress` asks of it); husk `ALF_PROGRESS N%`
//! per frame (SideFX's husk page: `--verbose` with `a` for Alfred-style progress) and
//! `Image: PATH` (CGRU's `parsers/karma.py`); redshiftCmdLine `Saving: PATH` and `Frame
//! rendering done` (CGRU's `parsers/redshift.py`); modo_cl's lines are in `modo_cl.py`.
//!
//! Each run takes the next numbered folder under the record directory (named by the
//! `BUILDCAT_FAKE_REC` environment variable of the worker, which its children inherit), so
//! the runs of a worker that runs one job at a time come back in the order they ran.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The environment variable that tells the fake tools where to record their runs.
pub const RECORD_VAR: &str = "BUILDCAT_FAKE_REC";

/// What every fake tool does first: refuse to run without a record directory, take the
/// next free numbered folder in it, and record its name, arguments (NUL-terminated), working
/// directory, environment (NUL-separated) and stdin there. The worker may run it with any
/// PATH (a test gives it none), so the script sets its own for `cat`, `mkdir` and `grep`.
/// `act FILE FORMAT` follows the directives of a scene file (see the module docs), FORMAT
/// being the tool's `printf` line for an image written.
const PROLOGUE: &str = r#"#!/bin/sh
original_path=$PATH
PATH=/usr/bin:/bin
export PATH
if [ -z "$BUILDCAT_FAKE_REC" ] || [ ! -d "$BUILDCAT_FAKE_REC" ]; then
    echo "fake tool: BUILDCAT_FAKE_REC is not a directory" >&2
    exit 97
fi
n=1
while ! mkdir "$BUILDCAT_FAKE_REC/$n" 2>/dev/null; do
    n=$((n + 1))
done
rec=$BUILDCAT_FAKE_REC/$n
printf '%s' "${0##*/}" > "$rec/tool"
: > "$rec/argv"
for arg in "$@"; do
    printf '%s\0' "$arg" >> "$rec/argv"
done
pwd -P > "$rec/cwd"
PATH=$original_path /usr/bin/env -0 > "$rec/env"
cat > "$rec/stdin"
status=0
act() {
    [ -f "$1" ] || return 0
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in
        "print "*) printf '%s\n' "${line#print }" ;;
        "image "*)
            file="$PWD/${line#image }"
            mkdir -p "${file%/*}"
            echo "a frame" > "$file"
            printf "$2\n" "$file"
            ;;
        "exit "*) status=${line#exit } ;;
        esac
    done < "$1"
}
"#;

/// The version the fake hython reports, as Houdini 20.0 would.
pub const HOUDINI_VERSION: &str = "20.0.547";
/// The version the fake modo_cl reports (Modo 16.1's `appversion`).
pub const MODO_VERSION: &str = "1610";
/// How many times (every 50 ms) husk's `hold` looks for its file before it goes on
/// anyway: two minutes, past any test's patience, so a test that fails leaves no stand-in
/// waiting behind it.
const HOLD_POLLS: u32 = 2400;
/// The version the fake redshiftCmdLine reports.
pub const REDSHIFT_VERSION: &str = "3.5.16";

/// Each fake tool's name and what it does after recording its run; `@NAME@` stands for
/// the constant of that name.
const TOOLS: [(&str, &str); 5] = [
    (
        "hython",
        // `hython -c CODE` with the stand-in `hou`.
        r#"BUILDCAT_FAKE_HOUDINI_VERSION=@HOUDINI_VERSION@ exec python3 "@FAKE_DIR@/hython.py" "$@" < /dev/null
"#,
    ),
    (
        "mantra",
        // `mantra -f FILE`.
        r#"act "$2" 'Generating Image: %s (640x480)'
echo "ALF_PROGRESS 50%"
echo "ALF_PROGRESS 100%"
exit $status
"#,
    ),
    (
        "husk",
        // `husk [options] FILE [-o PATTERN]`: each frame's progress, then its image when an
        // output pattern (`$F4` for the frame) is given; no folder is made for it without
        // `--make-output-path`.
        r#"usd= frame=1 count=1 inc=1 out= make=
while [ $# -gt 0 ]; do
    case "$1" in
    --frame) frame=$2; shift ;;
    --frame-count) count=$2; shift ;;
    --frame-inc) inc=$2; shift ;;
    -o) out=$2; shift ;;
    --make-output-path) make=1 ;;
    --verbose|--renderer) shift ;;
    -*) ;;
    *) usd=$1 ;;
    esac
    shift
done
act "$usd" 'Image: %s'
hold=$(sed -n 's/^hold //p' "$usd")
i=0
while [ $i -lt $count ]; do
    echo "ALF_PROGRESS 0%"
    set -- $hold
    if [ -n "$hold" ] && [ "$1" = "$frame" ]; then
        echo "ALF_PROGRESS $2%"
        # Mid-frame until the test says (a bounded wait, so a failed test leaves no
        # stand-in behind).
        waited=0
        while [ ! -e "$3" ] && [ $waited -lt @HOLD_POLLS@ ]; do
            sleep 0.05
            waited=$((waited + 1))
        done
    fi
    echo "ALF_PROGRESS 100%"
    if [ -n "$out" ]; then
        file=$(printf '%s' "$out" | sed "s/\$F4/$(printf '%04d' $frame)/")
        case "$file" in /*) ;; *) file="$PWD/$file" ;; esac
        [ -n "$make" ] && mkdir -p "${file%/*}"
        if echo "a frame" > "$file" 2>/dev/null; then
            echo "Image: $file"
        else
            echo "Failed to create file $file"
        fi
    fi
    frame=$((frame + inc))
    i=$((i + 1))
done
exit $status
"#,
    ),
    (
        "modo_cl",
        // The stand-in of modo_cl.py: the version query, and the worker's render script
        // run with the stand-in `lx` and `modo` (a scene is JSON, see lx.py).
        r#"BUILDCAT_FAKE_MODO_VERSION=@MODO_VERSION@ BUILDCAT_FAKE_MODO_BIN="${0%/*}" \
    BUILDCAT_FAKE_MODO_CALLS="$rec/calls" \
    exec python3 "@FAKE_DIR@/modo_cl.py" < "$rec/stdin"
"#,
    ),
    (
        "redshiftCmdLine",
        r#"if [ "$1" = --version ]; then
    echo "Redshift Command-Line Renderer (version @REDSHIFT_VERSION@ - API: @REDSHIFT_VERSION@)"
else
    echo "Redshift: loading $1"
    act "$1" 'Saving: %s'
    echo "Frame rendering done"
fi
exit $status
"#,
    ),
];

/// The fake tools installed in one directory, and where they record their runs.
#[derive(Debug)]
pub struct FakeTools {
    /// The directory holding the scripts (never on the worker's PATH).
    pub bin: PathBuf,
    /// The directory the runs are recorded in.
    pub records: PathBuf,
}

/// One run of a fake tool.
#[derive(Debug, Clone)]
pub struct Run {
    /// Which tool ran (`hython`, `modo_cl`...).
    pub tool: String,
    /// Its arguments, without the program's name.
    pub args: Vec<String>,
    /// Its working directory.
    pub cwd: String,
    /// What it was given on stdin.
    pub stdin: String,
    /// Its environment.
    pub env: BTreeMap<String, String>,
    /// The commands a script run by modo_cl gave `lx.eval`, one per line (empty for the
    /// other tools).
    pub calls: String,
}

/// The folder of the stand-ins written in Python (`hython.py`, `hou.py`).
pub fn fake_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fake_dcc")
}

impl FakeTools {
    /// Writes the scripts into `dir/bin` and makes `dir/records`.
    pub fn install(dir: &Path) -> FakeTools {
        let bin = dir.join("bin");
        let records = dir.join("records");
        for folder in [&bin, &records] {
            std::fs::create_dir_all(folder)
                .unwrap_or_else(|error| panic!("could not create {}: {error}", folder.display()));
        }
        for (name, body) in TOOLS {
            let path = bin.join(name);
            let body = body
                .replace("@HOUDINI_VERSION@", HOUDINI_VERSION)
                .replace("@MODO_VERSION@", MODO_VERSION)
                .replace("@REDSHIFT_VERSION@", REDSHIFT_VERSION)
                .replace("@HOLD_POLLS@", &HOLD_POLLS.to_string())
                .replace("@FAKE_DIR@", &fake_dir().display().to_string());
            std::fs::write(&path, format!("{PROLOGUE}{body}"))
                .unwrap_or_else(|error| panic!("could not write {}: {error}", path.display()));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .unwrap_or_else(|error| panic!("could not chmod {}: {error}", path.display()));
        }
        FakeTools { bin, records }
    }

    /// The path of the fake `name`.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// The `buildcat worker` flags that name every fake tool, plus Redshift GPUs 0 and 2.
    pub fn worker_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        for (flag, name) in [
            ("--hython", "hython"),
            ("--mantra", "mantra"),
            ("--husk", "husk"),
            ("--modo", "modo_cl"),
            ("--redshift", "redshiftCmdLine"),
        ] {
            flags.push(flag.to_owned());
            flags.push(self.tool(name).display().to_string());
        }
        flags.extend(["--redshift-gpu", "0", "--redshift-gpu", "2"].map(str::to_owned));
        flags
    }

    /// Every run recorded so far, in the order they started.
    pub fn runs(&self) -> Vec<Run> {
        let mut runs = Vec::new();
        for number in 1.. {
            let folder = self.records.join(number.to_string());
            if !folder.is_dir() {
                break;
            }
            let read = |name: &str| {
                let path = folder.join(name);
                std::fs::read_to_string(&path)
                    .unwrap_or_else(|error| panic!("could not read {}: {error}", path.display()))
            };
            let mut args: Vec<String> = read("argv").split('\0').map(str::to_owned).collect();
            // Every argument ends with a NUL, so the last piece is empty.
            args.pop();
            runs.push(Run {
                tool: read("tool"),
                args,
                cwd: read("cwd").trim_end_matches('\n').to_owned(),
                stdin: read("stdin"),
                env: read("env")
                    .split('\0')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(key, value)| (key.to_owned(), value.to_owned()))
                    .collect(),
                calls: std::fs::read_to_string(folder.join("calls")).unwrap_or_default(),
            });
        }
        runs
    }

    /// The runs recorded after the first `seen`, and the new count.
    pub fn runs_since(&self, seen: &mut usize) -> Vec<Run> {
        let runs = self.runs();
        let new = runs.get(*seen..).unwrap_or_default().to_vec();
        *seen = runs.len();
        new
    }
}
