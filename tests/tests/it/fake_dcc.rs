//! Stand-ins for the DCC tools a worker drives (`hython`, `mantra`, `modo_cl`,
//! `redshiftCmdLine`): small `sh` scripts that record how they were run (arguments, stdin,
//! working directory) and answer the way the real tools do, so a test can check the exact
//! command lines a worker builds without Houdini, Modo or Redshift installed.
//!
//! Each run takes the next numbered folder under the record directory (named by the
//! `BUILDCAT_FAKE_REC` environment variable of the worker, which its children inherit), so
//! the runs of a worker that runs one job at a time come back in the order they ran.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The environment variable that tells the fake tools where to record their runs.
pub const RECORD_VAR: &str = "BUILDCAT_FAKE_REC";

/// What every fake tool does first: refuse to run without a record directory, take the
/// next free numbered folder in it, and record its name, arguments (NUL-terminated), working
/// directory and stdin there. The worker may run it with any PATH (a test gives it none),
/// so the script sets its own for `cat`, `mkdir` and `grep`.
const PROLOGUE: &str = r#"#!/bin/sh
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
cat > "$rec/stdin"
"#;

/// The version the fake hython reports, as Houdini 20.0 would.
pub const HOUDINI_VERSION: &str = "20.0.547";
/// The version the fake modo_cl reports (Modo 16.1's `appversion`).
pub const MODO_VERSION: &str = "1610";
/// The version the fake redshiftCmdLine reports.
pub const REDSHIFT_VERSION: &str = "3.5.16";

/// Each fake tool's name and what it does after recording its run; `@NAME_VERSION@` stands
/// for the version constant of that name.
const TOOLS: [(&str, &str); 4] = [
    (
        "hython",
        // `hython -c CODE`: the version code prints the marker line; render code prints
        // Alfred-style progress for each `node.render(` call, as mantra would through it.
        r#"echo "Houdini Core license checked out"
case "$2" in
*buildcat-houdini-version*)
    echo "buildcat-houdini-version @HOUDINI_VERSION@"
    ;;
*)
    printf '%s\n' "$2" | while IFS= read -r line; do
        case "$line" in
        node.render*) echo "ALF_PROGRESS 100%" ;;
        esac
    done
    ;;
esac
"#,
    ),
    (
        "mantra",
        r#"echo "mantra: rendering $2"
echo "ALF_PROGRESS 50%"
echo "ALF_PROGRESS 100%"
"#,
    ),
    (
        "modo_cl",
        // modo_cl echoes each query, then answers it.
        r#"if grep -q 'platformservice appversion' "$rec/stdin"; then
    echo ": query platformservice appversion ?"
    echo "> : @MODO_VERSION@"
else
    echo "Modo 16.1v2 (command line)"
    echo "render.animation: done"
fi
"#,
    ),
    (
        "redshiftCmdLine",
        r#"if [ "$1" = --version ]; then
    echo "Redshift Command-Line Renderer (version @REDSHIFT_VERSION@ - API: @REDSHIFT_VERSION@)"
else
    echo "Redshift: loading $1"
    echo "Redshift: frame done"
fi
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
                .replace("@REDSHIFT_VERSION@", REDSHIFT_VERSION);
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
