//! The config file (`~/.config/buildcat/config.toml`, or the file `BUILDCAT_CONFIG` names)
//! and `buildcat config`, which prints the effective settings and where each came from.
//!
//! The file's values become the defaults of the command line's arguments before it is
//! parsed, so one parser gives every setting the same order: a flag, then its environment
//! variable, then the file, then the built-in default. Clap reads the values, so a value from
//! the file is checked exactly as a typed one; the file's own types (a port is a number) are
//! checked when it is read, with the line and key named.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Deserialize;

use crate::args::ConfigArgs;

/// The variable that names the config file; an empty value reads none.
pub const CONFIG_ENV: &str = "BUILDCAT_CONFIG";

/// The file, as written: every section and key is optional, and a key this program does not
/// know is refused (a typo would otherwise be ignored in silence).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileConfig {
    /// Where clients and workers find the server (and the port the server listens on).
    server: ServerSection,
    /// The TLS files of this host's clients and workers.
    tls: TlsSection,
    /// The shared storage and the default queue.
    farm: FarmSection,
    /// How `worker`, `workers` and `farm` run their workers.
    worker: WorkerSection,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ServerSection {
    /// The server's host name or address, as `--host`.
    host: Option<String>,
    /// The server's port, as `--port`.
    port: Option<u16>,
}

/// `[tls]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TlsSection {
    /// Whether to use TLS, as `--tls`.
    enabled: Option<bool>,
    /// The server's certificate to trust, as `--tls-ca`.
    ca: Option<PathBuf>,
    /// This host's certificate, as `--tls-cert`.
    cert: Option<PathBuf>,
    /// This host's private key, as `--tls-key`.
    key: Option<PathBuf>,
}

/// `[farm]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FarmSection {
    /// The shared storage root as this host sees it, as `--root`.
    root: Option<PathBuf>,
    /// The queue jobs are submitted to, as `--queue`.
    queue: Option<String>,
}

/// `[worker]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct WorkerSection {
    /// The queues served, highest priority first.
    queues: Option<Vec<String>>,
    /// The worker's name, as `--name`.
    name: Option<String>,
    /// Where leftover processes are recorded, as `--state-dir`.
    state_dir: Option<PathBuf>,
    /// Exit after this many tasks, as `--max-tasks`.
    max_tasks: Option<u64>,
    /// The Blender executable, as `--blender`.
    blender: Option<PathBuf>,
    /// Blender's render threads, as `--blender-threads`.
    blender_threads: Option<u32>,
    /// The default Cycles device, as `--cycles-device`.
    cycles_device: Option<String>,
    /// The hython executable, as `--hython`.
    hython: Option<PathBuf>,
    /// The mantra executable, as `--mantra`.
    mantra: Option<PathBuf>,
    /// The husk executable, as `--husk`.
    husk: Option<PathBuf>,
    /// The modo_cl executable, as `--modo`.
    modo: Option<PathBuf>,
    /// The redshiftCmdLine executable, as `--redshift`.
    redshift: Option<PathBuf>,
}

/// Which commands a setting is the default of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Every command that connects to a server as a client or worker (those with `--tls-ca`).
    Clients,
    /// Those commands, and `server` and `farm` (which listen on it).
    ClientsAndServers,
    /// The commands that submit to a queue (whose `--queue` has a default).
    Submitters,
    /// `worker`, `workers` and `farm`.
    Workers,
    /// `worker` and `workers` (a farm's workers take its own names).
    WorkerOnly,
    /// The commands with `--root`: workers, and clients that check paths.
    Rooted,
}

/// One setting: its key in the file, the argument it is the default of, and where.
#[derive(Debug)]
struct Setting {
    /// `section.key`, as in the file and in `buildcat config`.
    key: &'static str,
    /// The clap argument id (the field's name).
    arg: &'static str,
    /// Which commands it applies to.
    reach: Reach,
}

/// Every setting the file may hold, in the order `buildcat config` prints them.
const SETTINGS: &[Setting] = &[
    Setting {
        key: "server.host",
        arg: "host",
        reach: Reach::Clients,
    },
    Setting {
        key: "server.port",
        arg: "port",
        reach: Reach::ClientsAndServers,
    },
    Setting {
        key: "tls.enabled",
        arg: "tls",
        reach: Reach::Clients,
    },
    Setting {
        key: "tls.ca",
        arg: "tls_ca",
        reach: Reach::Clients,
    },
    Setting {
        key: "tls.cert",
        arg: "tls_cert",
        reach: Reach::Clients,
    },
    Setting {
        key: "tls.key",
        arg: "tls_key",
        reach: Reach::Clients,
    },
    Setting {
        key: "farm.root",
        arg: "root",
        reach: Reach::Rooted,
    },
    Setting {
        key: "farm.queue",
        arg: "queue",
        reach: Reach::Submitters,
    },
    Setting {
        key: "worker.queues",
        arg: "queues",
        reach: Reach::Workers,
    },
    Setting {
        key: "worker.name",
        arg: "name",
        reach: Reach::WorkerOnly,
    },
    Setting {
        key: "worker.state_dir",
        arg: "state_dir",
        reach: Reach::WorkerOnly,
    },
    Setting {
        key: "worker.max_tasks",
        arg: "max_tasks",
        reach: Reach::WorkerOnly,
    },
    Setting {
        key: "worker.blender",
        arg: "blender",
        reach: Reach::Workers,
    },
    Setting {
        key: "worker.blender_threads",
        arg: "blender_threads",
        reach: Reach::Workers,
    },
    Setting {
        key: "worker.cycles_device",
        arg: "cycles_device",
        reach: Reach::Workers,
    },
    Setting {
        key: "worker.hython",
        arg: "hython",
        reach: Reach::Workers,
    },
    Setting {
        key: "worker.mantra",
        arg: "mantra",
        reach: Reach::Workers,
    },
    Setting {
        key: "worker.husk",
        arg: "husk",
        reach: Reach::Workers,
    },
    Setting {
        key: "worker.modo",
        arg: "modo_cl",
        reach: Reach::Workers,
    },
    Setting {
        key: "worker.redshift",
        arg: "redshift",
        reach: Reach::Workers,
    },
];

/// A config file that was read: where it is and the values it sets, by key.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The file, for `buildcat config` and errors.
    pub path: Option<PathBuf>,
    /// Why that file (or why none): `BUILDCAT_CONFIG`, or the default location.
    pub chosen_by: &'static str,
    /// Each key the file sets, with its values as arguments (a list has several).
    values: Vec<(&'static str, Vec<OsString>)>,
}

impl Loaded {
    /// What the file sets `key` to, if it does.
    fn get(&self, key: &str) -> Option<&[OsString]> {
        self.values
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, values)| values.as_slice())
    }
}

/// The default location: `$XDG_CONFIG_HOME/buildcat/config.toml`, else
/// `~/.config/buildcat/config.toml` (on macOS too, as command-line tools do).
fn default_path() -> Option<PathBuf> {
    use etcetera::BaseStrategy;
    let strategy = etcetera::base_strategy::Xdg::new().ok()?;
    Some(strategy.config_dir().join("buildcat").join("config.toml"))
}

/// Reads the config file: the one `BUILDCAT_CONFIG` names (which must exist; empty: none),
/// else the default location's when it exists.
pub fn load() -> anyhow::Result<Loaded> {
    let (path, chosen_by, must_exist) = match std::env::var_os(CONFIG_ENV) {
        Some(value) if value.is_empty() => {
            return Ok(Loaded {
                chosen_by: "BUILDCAT_CONFIG is empty",
                ..Loaded::default()
            });
        }
        Some(value) => (PathBuf::from(value), "BUILDCAT_CONFIG", true),
        None => match default_path() {
            Some(path) => (path, "the default location", false),
            None => {
                return Ok(Loaded {
                    chosen_by: "no home directory to look in",
                    ..Loaded::default()
                });
            }
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !must_exist => {
            return Ok(Loaded {
                path: None,
                chosen_by: "none at the default location",
                values: Vec::new(),
            });
        }
        // A home this user may not read (a service run under another user with HOME
        // left as it was): no config, rather than no program.
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied && !must_exist => {
            return Ok(Loaded {
                path: None,
                chosen_by: "the one at the default location is not readable by this user",
                values: Vec::new(),
            });
        }
        Err(error) => bail!(
            "could not read the config file {} (named by {chosen_by}): {}",
            path.display(),
            error.to_string().to_lowercase()
        ),
    };
    let values = parse(&path, &text)?;
    Ok(Loaded {
        path: Some(path),
        chosen_by,
        values,
    })
}

/// The settings a file's text holds, as argument values; relative paths are taken from the
/// file's folder and `~/` from the home directory.
fn parse(path: &Path, text: &str) -> anyhow::Result<Vec<(&'static str, Vec<OsString>)>> {
    let file: FileConfig = toml::from_str(text).map_err(|error| describe(path, text, &error))?;
    let folder = path.parent().unwrap_or(Path::new("."));
    let place = |value: PathBuf| -> OsString { resolve_path(folder, value).into_os_string() };
    let mut values: Vec<(&'static str, Vec<OsString>)> = Vec::new();
    let mut put = |key: &'static str, value: Option<Vec<OsString>>| {
        if let Some(value) = value {
            values.push((key, value));
        }
    };
    let one = |text: Option<String>| text.map(|text| vec![OsString::from(text)]);
    let number = |n: Option<u64>| n.map(|n| vec![OsString::from(n.to_string())]);
    let path_of = |p: Option<PathBuf>| p.map(|p| vec![place(p)]);
    let FileConfig {
        server,
        tls,
        farm,
        worker,
    } = file;
    put("server.host", one(server.host));
    put("server.port", number(server.port.map(u64::from)));
    put("tls.enabled", one(tls.enabled.map(|b| b.to_string())));
    put("tls.ca", path_of(tls.ca));
    put("tls.cert", path_of(tls.cert));
    put("tls.key", path_of(tls.key));
    put("farm.root", path_of(farm.root));
    put("farm.queue", one(farm.queue));
    if let Some(queues) = &worker.queues
        && queues.is_empty()
    {
        bail!(
            "config file {}: worker.queues is empty; name at least one queue, such as [\"default\"]",
            path.display()
        );
    }
    put(
        "worker.queues",
        worker
            .queues
            .map(|queues| queues.into_iter().map(OsString::from).collect()),
    );
    put("worker.name", one(worker.name));
    put("worker.state_dir", path_of(worker.state_dir));
    put("worker.max_tasks", number(worker.max_tasks));
    put("worker.blender", path_of(worker.blender));
    put(
        "worker.blender_threads",
        number(worker.blender_threads.map(u64::from)),
    );
    put("worker.cycles_device", one(worker.cycles_device));
    put("worker.hython", path_of(worker.hython));
    put("worker.mantra", path_of(worker.mantra));
    put("worker.husk", path_of(worker.husk));
    put("worker.modo", path_of(worker.modo));
    put("worker.redshift", path_of(worker.redshift));
    Ok(values)
}

/// `~/x` from the home directory, a relative path from the config file's folder.
fn resolve_path(folder: &Path, value: PathBuf) -> PathBuf {
    if let Ok(rest) = value.strip_prefix("~")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    if value.is_relative() {
        folder.join(value)
    } else {
        value
    }
}

/// A TOML error as a person fixes it: the file, the line, the key, what is wrong.
fn describe(path: &Path, text: &str, error: &toml::de::Error) -> anyhow::Error {
    let message = error.message().trim_end_matches('\n').to_owned();
    let Some(span) = error.span() else {
        return anyhow::anyhow!("config file {}: {message}", path.display());
    };
    let start = span.start.min(text.len());
    let line_number = text[..start].matches('\n').count() + 1;
    let line = text[start..]
        .split('\n')
        .next()
        .map(|rest| {
            let begin = text[..start].rfind('\n').map_or(0, |i| i + 1);
            &text[begin..start + rest.len()]
        })
        .unwrap_or("");
    let key = key_of(text, start, line);
    anyhow::anyhow!(
        "config file {}, line {line_number}{}: {message} (the keys are described in README.md, \"Config file\")",
        path.display(),
        key.map(|key| format!(", key `{key}`")).unwrap_or_default()
    )
}

/// The key on `line` (with its section), or the section a `[header]` line names.
fn key_of(text: &str, start: usize, line: &str) -> Option<String> {
    let trimmed = line.trim();
    if let Some(header) = trimmed.strip_prefix('[') {
        return Some(header.trim_end_matches(']').trim().to_owned());
    }
    let key = trimmed.split('=').next()?.trim();
    if key.is_empty() {
        return None;
    }
    let section = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    Some(match section {
        Some(section) => format!("{section}.{key}"),
        None => key.to_owned(),
    })
}

/// Whether `setting` applies to the subcommand `sub`.
fn reaches(setting: &Setting, sub: &clap::Command) -> bool {
    let Some(arg) = sub.get_arguments().find(|a| a.get_id() == setting.arg) else {
        return false;
    };
    let has = |id: &str| sub.get_arguments().any(|a| a.get_id() == id);
    let name = sub.get_name();
    match setting.reach {
        Reach::Clients => has("tls_ca"),
        Reach::ClientsAndServers => has("tls_ca") || name == "server" || name == "farm",
        // `jobs --queue` and `pause --queue` filter or name a queue: no default there.
        Reach::Submitters => !arg.get_default_values().is_empty(),
        Reach::Workers => matches!(name, "worker" | "workers" | "farm"),
        Reach::WorkerOnly => matches!(name, "worker" | "workers"),
        Reach::Rooted => true,
    }
}

/// The command line with the file's values as the defaults of the arguments they set.
pub fn with_defaults(mut command: clap::Command, loaded: &Loaded) -> clap::Command {
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    for name in names {
        command = command.mut_subcommand(name, |mut sub| {
            for setting in SETTINGS {
                let Some(values) = loaded.get(setting.key) else {
                    continue;
                };
                if !reaches(setting, &sub) {
                    continue;
                }
                let values = values.to_vec();
                sub = sub.mut_arg(setting.arg, |arg| arg.default_values(values));
            }
            sub
        });
    }
    command
}

/// `buildcat config`: each setting's value for the commands it applies to, and where it
/// came from (a flag, an environment variable, the file, or the built-in default).
pub fn show(args: &ConfigArgs, matches: &ArgMatches, loaded: &Loaded) -> anyhow::Result<ExitCode> {
    let plain = <crate::args::Cli as clap::CommandFactory>::command();
    let mut text = String::new();
    match &loaded.path {
        Some(path) => writeln!(
            text,
            "config file: {} ({})",
            path.display(),
            loaded.chosen_by
        )?,
        None => writeln!(
            text,
            "config file: none ({}; {})",
            loaded.chosen_by,
            default_path().map_or_else(
                || "set BUILDCAT_CONFIG to use one".to_owned(),
                |path| format!("write one at {} or set BUILDCAT_CONFIG", path.display())
            )
        )?,
    }
    let mut rows = Vec::new();
    for setting in SETTINGS {
        // The argument as a command it applies to defines it (its env variable, default).
        let Some(arg) = plain
            .get_subcommands()
            .filter(|sub| reaches(setting, sub))
            .find_map(|sub| sub.get_arguments().find(|a| a.get_id() == setting.arg))
        else {
            continue;
        };
        let env = arg.get_env().map(|env| env.to_string_lossy().into_owned());
        let (value, source) = if args_has(matches, setting.arg) {
            let value = matches
                .get_raw(setting.arg)
                .map(|values| join(values.map(|v| v.to_string_lossy().into_owned())));
            let source = match matches.value_source(setting.arg) {
                Some(ValueSource::CommandLine) => format!("flag --{}", flag(setting.arg)),
                Some(ValueSource::EnvVariable) => {
                    format!("env {}", env.clone().unwrap_or_default())
                }
                _ if loaded.get(setting.key).is_some() => file_source(loaded),
                _ => "default".to_owned(),
            };
            (value, source)
        } else if let Some(value) = env
            .as_deref()
            .and_then(|name| std::env::var_os(name).map(|v| (name, v)))
        {
            (
                Some(value.1.to_string_lossy().into_owned()),
                format!("env {}", value.0),
            )
        } else if let Some(values) = loaded.get(setting.key) {
            (
                Some(join(
                    values.iter().map(|v| v.to_string_lossy().into_owned()),
                )),
                file_source(loaded),
            )
        } else {
            let defaults = arg.get_default_values();
            let value = (!defaults.is_empty())
                .then(|| join(defaults.iter().map(|v| v.to_string_lossy().into_owned())));
            (value, "default".to_owned())
        };
        rows.push((
            setting.key,
            value.unwrap_or_else(|| "(none)".to_owned()),
            source,
        ));
    }
    if args.json {
        let settings: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(key, value, source)| {
                (
                    (*key).to_owned(),
                    serde_json::json!({ "value": value, "source": source }),
                )
            })
            .collect();
        let view = serde_json::json!({
            "file": loaded.path.as_ref().map(|p| p.display().to_string()),
            "settings": settings,
        });
        outln!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(ExitCode::SUCCESS);
    }
    let key_width = rows.iter().map(|(k, _, _)| k.len()).max().unwrap_or(0);
    let value_width = rows.iter().map(|(_, v, _)| v.len()).max().unwrap_or(0);
    for (key, value, source) in &rows {
        writeln!(text, "{key:key_width$} = {value:value_width$}  ({source})")?;
    }
    for line in text.lines() {
        outln!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `buildcat config` itself takes the argument (`--host`, `--root`, ...).
fn args_has(matches: &ArgMatches, id: &str) -> bool {
    matches.ids().any(|known| known.as_str() == id)
}

/// The flag of an argument id: `tls_ca` is `--tls-ca`.
fn flag(id: &str) -> String {
    id.replace('_', "-")
}

/// `file PATH`.
fn file_source(loaded: &Loaded) -> String {
    loaded.path.as_ref().map_or_else(
        || "file".to_owned(),
        |path| format!("file {}", path.display()),
    )
}

/// Values as one text: a list joined with commas.
fn join(values: impl Iterator<Item = String>) -> String {
    values.collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        match parse(Path::new("/etc/buildcat.toml"), text) {
            Ok(values) => panic!("{text:?} was read as {values:?}"),
            Err(error) => format!("{error:#}"),
        }
    }

    #[test]
    fn an_unknown_key_names_the_file_line_and_key() {
        let error = error_of("[server]\nhost = \"a\"\nhots = \"b\"\n");
        assert!(error.contains("/etc/buildcat.toml, line 3"), "{error}");
        assert!(error.contains("key `server.hots`"), "{error}");
        assert!(error.contains("unknown field"), "{error}");
    }

    #[test]
    fn a_bad_value_names_the_file_line_and_key() {
        let error = error_of("[server]\nport = \"high\"\n");
        assert!(error.contains("line 2, key `server.port`"), "{error}");
        let error = error_of("[server]\nport = 70000\n");
        assert!(error.contains("line 2, key `server.port`"), "{error}");
    }

    #[test]
    fn an_unknown_section_is_named() {
        let error = error_of("[srever]\nhost = \"a\"\n");
        assert!(error.contains("line 1, key `srever`"), "{error}");
    }

    #[test]
    fn paths_are_taken_from_the_files_folder() {
        let values = parse(
            Path::new("/etc/buildcat/config.toml"),
            "[tls]\nca = \"server.cert\"\n[farm]\nroot = \"/mnt/farm\"\n",
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(
            values[0],
            ("tls.ca", vec![OsString::from("/etc/buildcat/server.cert")])
        );
        assert_eq!(values[1], ("farm.root", vec![OsString::from("/mnt/farm")]));
    }
}
