//! Which DCC tools this worker can run, and where they are: the [`Toolbox`].
//!
//! Each [`Tool`] is either given by the builder ([`tool_path`](crate::WorkerBuilder::tool_path),
//! the CLI's `--blender PATH` and friends) or searched for on PATH when the worker is built.
//! A given path must work: a wrong one is a build error, not a worker that silently cannot
//! render. A tool that is not found just leaves its job kinds unregistered, so the server
//! never routes those jobs here.
//!
//! On WSL the tools are usually the Windows programs (`hython.exe`): each name is searched
//! with `.exe` first, then without. On Windows itself only `NAME.exe` is searched, on PATH
//! and then in the usual install folders ([`installed`]: `C:\Program Files\Blender
//! Foundation\Blender 4.2\blender.exe`, the newest version first). A Windows program cannot open Linux paths, so job
//! paths are handed to it in Windows form ([`Executable::path_arg`]).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Component, Path, PathBuf};

use buildcat_proto::Failure;
use buildcat_proto::dcc::{
    BlenderInfo, BlenderPlanRange, BlenderRender, HoudiniInfo, HoudiniRenderHip, HoudiniRenderIfd,
    HoudiniRenderUsd, ModoInfo, ModoRender, RedshiftInfo, RedshiftRender,
};
use buildcat_proto::task::Task;

use crate::error::WorkerError;

/// A DCC tool a worker may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Tool {
    /// Blender, for the `buildcat.blender.*` jobs.
    Blender,
    /// Houdini's Python shell, for `buildcat.hou.info` and `buildcat.hou.render_hip`.
    Hython,
    /// Houdini's renderer, for `buildcat.hou.render_ifd`.
    Mantra,
    /// Modo's command-line version, for the `buildcat.modo.*` jobs.
    ModoCl,
    /// Redshift's command-line renderer, for the `buildcat.redshift.*` jobs.
    RedshiftCmdLine,
    /// Houdini's USD renderer (Karma and other Hydra delegates), for
    /// `buildcat.hou.render_usd`.
    Husk,
}

impl Tool {
    /// Every tool, in the order they are searched for and logged.
    pub const ALL: &'static [Tool] = &[
        Tool::Blender,
        Tool::Hython,
        Tool::Mantra,
        Tool::ModoCl,
        Tool::RedshiftCmdLine,
        Tool::Husk,
    ];

    /// The executable's name, as searched for on PATH (without `.exe`).
    pub fn name(self) -> &'static str {
        match self {
            Tool::Blender => "blender",
            Tool::Hython => "hython",
            Tool::Mantra => "mantra",
            Tool::ModoCl => "modo_cl",
            Tool::RedshiftCmdLine => "redshiftCmdLine",
            Tool::Husk => "husk",
        }
    }

    /// The `buildcat worker` flag that gives the tool's path, for error messages.
    pub fn flag(self) -> &'static str {
        match self {
            Tool::Blender => "--blender",
            Tool::Hython => "--hython",
            Tool::Mantra => "--mantra",
            Tool::ModoCl => "--modo",
            Tool::RedshiftCmdLine => "--redshift",
            Tool::Husk => "--husk",
        }
    }

    /// The job kinds a worker runs when it has this tool.
    pub fn kinds(self) -> &'static [&'static str] {
        match self {
            Tool::Blender => &[
                BlenderInfo::KIND,
                BlenderRender::KIND,
                BlenderPlanRange::KIND,
            ],
            Tool::Hython => &[HoudiniInfo::KIND, HoudiniRenderHip::KIND],
            Tool::Mantra => &[HoudiniRenderIfd::KIND],
            Tool::ModoCl => &[ModoInfo::KIND, ModoRender::KIND],
            Tool::RedshiftCmdLine => &[RedshiftInfo::KIND, RedshiftRender::KIND],
            Tool::Husk => &[HoudiniRenderUsd::KIND],
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tool's executable as the worker found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executable {
    /// The executable, absolute.
    path: PathBuf,
    /// A Windows program run through WSL's interop: it is given paths in Windows form.
    windows: bool,
}

impl Executable {
    /// A native executable at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Executable {
            path: path.into(),
            windows: false,
        }
    }

    /// A Windows program at `path`, run from WSL: paths given to it are translated.
    pub fn windows(path: impl Into<PathBuf>) -> Self {
        Executable {
            path: path.into(),
            windows: true,
        }
    }

    /// The executable's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is a Windows program run from WSL.
    pub fn is_windows_program(&self) -> bool {
        self.windows
    }

    /// The executable's file name (`blender`, `hython.exe`), for messages.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .unwrap_or(self.path.as_os_str())
            .to_string_lossy()
            .into_owned()
    }

    /// `path` (absolute, under the worker's root) as this program should be given it: as it
    /// is for a native program; in Windows form (`C:\farm\a.hip`, or
    /// `\\wsl$\DISTRO\home\farm\a.hip` off the Windows drives) for a Windows one.
    pub fn path_arg(&self, path: &Path) -> Result<OsString, Failure> {
        if !self.windows {
            return Ok(path.as_os_str().to_owned());
        }
        let distro = std::env::var("WSL_DISTRO_NAME").ok();
        windows_path(path, distro.as_deref())
            .map(OsString::from)
            .ok_or_else(|| {
                Failure::new(format!(
                    "cannot give {} to the Windows program {}: it is neither on a Windows \
                     drive (/mnt/c/...) nor named by WSL_DISTRO_NAME",
                    path.display(),
                    self.path.display()
                ))
            })
    }
}

/// The tools a worker found, each with its executable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Toolbox {
    /// The executables by tool; a tool that was not found is absent.
    tools: BTreeMap<Tool, Executable>,
}

impl Toolbox {
    /// A toolbox holding no tools.
    pub fn new() -> Self {
        Toolbox::default()
    }

    /// Adds (or replaces) a tool.
    pub fn insert(&mut self, tool: Tool, executable: Executable) {
        self.tools.insert(tool, executable);
    }

    /// The executable of `tool`, if the worker has it.
    pub fn get(&self, tool: Tool) -> Option<&Executable> {
        self.tools.get(&tool)
    }

    /// The tools found, in [`Tool::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Tool, &Executable)> {
        self.tools
            .iter()
            .map(|(tool, executable)| (*tool, executable))
    }

    /// Whether no tool was found.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// Finds the tools of this worker: the paths given (each must be an executable file;
    /// a bare name is looked up on PATH), and, when `search` is set, the others on PATH.
    pub(crate) fn discover(
        given: &BTreeMap<Tool, PathBuf>,
        search: bool,
    ) -> Result<Toolbox, WorkerError> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        Toolbox::discover_in(given, search, &path, is_wsl())
    }

    /// [`Toolbox::discover`] with the search path and the WSL flag given.
    fn discover_in(
        given: &BTreeMap<Tool, PathBuf>,
        search: bool,
        search_path: &OsStr,
        wsl: bool,
    ) -> Result<Toolbox, WorkerError> {
        let mut toolbox = Toolbox::new();
        for &tool in Tool::ALL {
            let found = match given.get(&tool) {
                Some(path) => Some(check_given(tool, path, search_path, wsl)?),
                None if search => find_on_path(&executable_names(tool, wsl), search_path, wsl)
                    .or_else(|| {
                        if cfg!(windows) {
                            installed(tool, |name| std::env::var_os(name)).map(Executable::new)
                        } else {
                            None
                        }
                    }),
                None => None,
            };
            if let Some(executable) = found {
                toolbox.insert(tool, executable);
            }
        }
        Ok(toolbox)
    }
}

/// The names to look for on PATH, in order: on WSL, the Windows program (`NAME.exe`)
/// first, then a native one; on Windows, `NAME.exe`.
pub fn executable_names(tool: Tool, wsl: bool) -> Vec<String> {
    if cfg!(windows) {
        vec![format!("{}.exe", tool.name())]
    } else if wsl {
        vec![format!("{}.exe", tool.name()), tool.name().to_owned()]
    } else {
        vec![tool.name().to_owned()]
    }
}

/// Whether this process runs under WSL (Windows Subsystem for Linux).
pub fn is_wsl() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok();
    is_wsl_from(
        release.as_deref(),
        std::env::var_os("WSL_DISTRO_NAME").is_some(),
    )
}

/// Whether the kernel release (`/proc/sys/kernel/osrelease`) or the environment says WSL:
/// WSL 1 kernels end in `-Microsoft`, WSL 2 ones in `-microsoft-standard-WSL2`, and WSL
/// sets `WSL_DISTRO_NAME`.
fn is_wsl_from(os_release: Option<&str>, distro_set: bool) -> bool {
    distro_set
        || os_release.is_some_and(|release| release.to_ascii_lowercase().contains("microsoft"))
}

/// A tool path given to the builder, checked.
fn check_given(
    tool: Tool,
    path: &Path,
    search_path: &OsStr,
    wsl: bool,
) -> Result<Executable, WorkerError> {
    let error = |problem: String| WorkerError::ToolPath {
        tool: tool.name(),
        flag: tool.flag(),
        path: path.to_path_buf(),
        problem,
    };
    if path.as_os_str().is_empty() {
        return Err(error("the path is empty".to_owned()));
    }
    let mut components = path.components();
    let bare = matches!(
        (components.next(), components.next()),
        (Some(Component::Normal(_)), None)
    );
    if bare {
        let mut names = vec![path.to_string_lossy().into_owned()];
        // On Windows `--blender blender` means `blender.exe`, as a shell would take it.
        if cfg!(windows) && path.extension().is_none() {
            names.insert(0, format!("{}.exe", names[0]));
        }
        return find_on_path(&names, search_path, wsl)
            .ok_or_else(|| error("not found on PATH".to_owned()));
    }
    let absolute = std::path::absolute(path).map_err(|e| error(e.to_string()))?;
    match std::fs::metadata(&absolute) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(error("no such file".to_owned())),
        Err(e) => Err(error(e.to_string())),
        Ok(metadata) if metadata.is_dir() => Err(error("it is a directory".to_owned())),
        Ok(_) if !is_executable(&absolute) => Err(error("it is not executable".to_owned())),
        Ok(_) => Ok(executable_at(absolute, wsl)),
    }
}

/// The first of `names` found in a directory of `search_path`; names come first, so an
/// earlier name anywhere on PATH wins over a later one. Empty and relative entries of PATH
/// are skipped: a tool is never taken from whatever the current directory is.
fn find_on_path(names: &[String], search_path: &OsStr, wsl: bool) -> Option<Executable> {
    let directories: Vec<PathBuf> = std::env::split_paths(search_path)
        .filter(|directory| directory.is_absolute())
        .collect();
    names.iter().find_map(|name| {
        directories
            .iter()
            .map(|directory| directory.join(name))
            .find(|candidate| is_executable(candidate))
            .map(|found| executable_at(found, wsl))
    })
}

/// The executable at `path`, a Windows program if on WSL and named `*.exe`.
fn executable_at(path: PathBuf, wsl: bool) -> Executable {
    let windows = wsl
        && path
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("exe"));
    Executable { path, windows }
}

/// Whether `path` is a file this process may execute.
fn is_executable(path: &Path) -> bool {
    let Ok(metadata) = std::fs::metadata(path) else {
        return false;
    };
    if !metadata.is_file() {
        return false;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        metadata.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    true
}

/// Where a tool's installer puts it on Windows: under the folder an environment variable
/// names (`ProgramFiles`, `ProgramData`), a vendor's folder, then (for most) one folder per
/// version whose name starts with a prefix (`Blender 4.2`), then the executable's folder.
struct InstallLayout {
    /// The environment variable naming the base folder (Windows sets both).
    base: &'static str,
    /// The vendor's folders under the base.
    vendor: &'static [&'static str],
    /// The prefix of the per-version folders' names; `None` where there is one install.
    versions: Option<&'static str>,
    /// The folders between the version's folder and the executable.
    inside: &'static [&'static str],
}

/// The install layout of each tool, as its Windows installer writes it by default.
fn install_layout(tool: Tool) -> InstallLayout {
    const HOUDINI: &[&str] = &["Side Effects Software"];
    match tool {
        Tool::Blender => InstallLayout {
            base: "ProgramFiles",
            vendor: &["Blender Foundation"],
            versions: Some("Blender "),
            inside: &[],
        },
        Tool::Hython | Tool::Mantra | Tool::Husk => InstallLayout {
            base: "ProgramFiles",
            vendor: HOUDINI,
            versions: Some("Houdini "),
            inside: &["bin"],
        },
        Tool::ModoCl => InstallLayout {
            base: "ProgramFiles",
            vendor: &["Foundry", "Modo"],
            versions: Some(""),
            inside: &[],
        },
        Tool::RedshiftCmdLine => InstallLayout {
            base: "ProgramData",
            vendor: &["Redshift"],
            versions: None,
            inside: &["bin"],
        },
    }
}

/// `tool` in its usual install folder on Windows, the newest version first (`Blender 4.10`
/// after `Blender 4.9`); `environment` reads a variable (the base folders). `None` when no
/// install has the executable.
pub fn installed(tool: Tool, environment: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let layout = install_layout(tool);
    let mut vendor = PathBuf::from(environment(layout.base).filter(|base| !base.is_empty())?);
    vendor.extend(layout.vendor);
    let file = format!("{}.exe", tool.name());
    let at = |folder: PathBuf| {
        let mut path = folder;
        path.extend(layout.inside);
        path.push(&file);
        path.is_file().then_some(path)
    };
    let Some(prefix) = layout.versions else {
        return at(vendor);
    };
    let mut versions: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir(&vendor)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            let version = name.strip_prefix(prefix)?;
            let numbers = version
                .split(['.', '-', ' '])
                .map(|part| part.parse::<u64>().ok())
                .collect::<Option<Vec<u64>>>()?;
            Some((numbers, entry.path()))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().find_map(|(_, folder)| at(folder))
}

/// An absolute Linux path in the form a Windows program started from WSL understands:
/// `/mnt/c/farm/a.hip` is `C:\farm\a.hip` (WSL mounts the Windows drives under `/mnt` by
/// default); any other path is reached through the distribution's share,
/// `\\wsl$\DISTRO\home\farm\a.hip`. `None` when neither applies.
pub fn windows_path(path: &Path, distro: Option<&str>) -> Option<String> {
    let text = path.to_str()?;
    if !text.starts_with('/') {
        return None;
    }
    if let Some(rest) = text.strip_prefix("/mnt/") {
        let mut chars = rest.chars();
        if let Some(drive) = chars.next().filter(char::is_ascii_alphabetic) {
            let after = chars.as_str();
            if after.is_empty() || after.starts_with('/') {
                let inside = after.trim_start_matches('/').replace('/', "\\");
                return Some(format!("{}:\\{inside}", drive.to_ascii_uppercase()));
            }
        }
    }
    let distro = distro.filter(|name| !name.is_empty())?;
    Some(format!("\\\\wsl$\\{distro}{}", text.replace('/', "\\")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Guards issue 16: Windows tools are found in their installers' folders, the newest
    /// version that has the executable first.
    #[test]
    fn windows_tools_are_found_in_their_install_folders() {
        let base = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let files = base.path().join("Program Files");
        let data = base.path().join("ProgramData");
        let put = |path: PathBuf| {
            let parent = path.parent().unwrap_or_else(|| panic!("no parent"));
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(&path, b"MZ").unwrap_or_else(|e| panic!("{e}"));
            path
        };
        let blender = files.join("Blender Foundation");
        put(blender.join("Blender 4.9").join("blender.exe"));
        let newest = put(blender.join("Blender 4.10").join("blender.exe"));
        // A newer folder without the program (an uninstall's leftovers) is passed over.
        std::fs::create_dir_all(blender.join("Blender 5.0")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(blender.join("Blender notes")).unwrap_or_else(|e| panic!("{e}"));
        let hython = put(files
            .join("Side Effects Software")
            .join("Houdini 20.5.370")
            .join("bin")
            .join("hython.exe"));
        let redshift = put(data
            .join("Redshift")
            .join("bin")
            .join("redshiftCmdLine.exe"));
        let environment = |name: &str| match name {
            "ProgramFiles" => Some(files.clone().into_os_string()),
            "ProgramData" => Some(data.clone().into_os_string()),
            _ => None,
        };
        assert_eq!(installed(Tool::Blender, environment), Some(newest));
        assert_eq!(installed(Tool::Hython, environment), Some(hython));
        assert_eq!(installed(Tool::Mantra, environment), None);
        assert_eq!(
            installed(Tool::RedshiftCmdLine, environment),
            Some(redshift)
        );
        assert_eq!(installed(Tool::ModoCl, environment), None);
        assert_eq!(installed(Tool::Blender, |_| None), None);
    }

    #[cfg(not(windows))]
    #[test]
    fn names_get_exe_first_on_wsl() {
        assert_eq!(executable_names(Tool::Blender, false), ["blender"]);
        assert_eq!(
            executable_names(Tool::RedshiftCmdLine, true),
            ["redshiftCmdLine.exe", "redshiftCmdLine"]
        );
        assert_eq!(
            executable_names(Tool::ModoCl, true),
            ["modo_cl.exe", "modo_cl"]
        );
    }

    #[test]
    fn wsl_is_told_by_the_kernel_release_or_the_environment() {
        assert!(is_wsl_from(Some("4.4.0-19041-Microsoft\n"), false));
        assert!(is_wsl_from(
            Some("5.15.153.1-microsoft-standard-WSL2\n"),
            false
        ));
        assert!(is_wsl_from(None, true));
        assert!(!is_wsl_from(Some("6.8.0-45-generic\n"), false));
        assert!(!is_wsl_from(None, false));
    }

    #[test]
    fn windows_paths() {
        let check = |path: &str, distro: Option<&str>, expected: Option<&str>| {
            assert_eq!(
                windows_path(Path::new(path), distro).as_deref(),
                expected,
                "{path}"
            );
        };
        check(
            "/mnt/c/farm/shots/a.hip",
            None,
            Some("C:\\farm\\shots\\a.hip"),
        );
        check("/mnt/d", None, Some("D:\\"));
        check("/mnt/d/", None, Some("D:\\"));
        check(
            "/home/me/farm/a.hip",
            Some("Ubuntu"),
            Some("\\\\wsl$\\Ubuntu\\home\\me\\farm\\a.hip"),
        );
        check(
            "/mnt/data/a.hip",
            Some("Ubuntu"),
            Some("\\\\wsl$\\Ubuntu\\mnt\\data\\a.hip"),
        );
        check("/home/me/a.hip", None, None);
        check("relative/a.hip", Some("Ubuntu"), None);
    }

    #[test]
    fn every_kind_of_every_tool_is_a_dcc_kind() {
        for &tool in Tool::ALL {
            for kind in tool.kinds() {
                assert!(
                    buildcat_proto::dcc::tool_for_kind(kind).is_some(),
                    "{tool}: {kind}"
                );
            }
        }
    }

    /// Writes an executable (or, with `mode` 0o644, a plain file) named `name` in `dir`.
    /// Unix only, as the tests that use it: they take a name without `.exe` for a program
    /// and a file's mode for whether it may run.
    #[cfg(unix)]
    fn file(dir: &Path, name: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, "#!/bin/sh\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{e}"));
        path
    }

    fn temp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
    }

    fn given(tool: Tool, path: &Path) -> BTreeMap<Tool, PathBuf> {
        BTreeMap::from([(tool, path.to_path_buf())])
    }

    #[cfg(unix)]
    #[test]
    fn the_search_takes_the_first_executable_on_path() {
        let first = temp();
        let second = temp();
        file(first.path(), "blender", 0o644);
        let blender = file(second.path(), "blender", 0o755);
        let hython = file(first.path(), "hython", 0o755);
        std::fs::create_dir(second.path().join("mantra")).unwrap_or_else(|e| panic!("{e}"));
        let path = std::env::join_paths(["relative/bin".as_ref(), first.path(), second.path()])
            .unwrap_or_else(|e| panic!("{e}"));

        let found = Toolbox::discover_in(&BTreeMap::new(), true, &path, false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            found.iter().collect::<Vec<_>>(),
            [
                (Tool::Blender, &Executable::new(blender)),
                (Tool::Hython, &Executable::new(hython)),
            ]
        );

        let none = Toolbox::discover_in(&BTreeMap::new(), false, &path, false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(none.is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn on_wsl_the_windows_program_comes_first() {
        let linux = temp();
        let windows = temp();
        let native = file(linux.path(), "modo_cl", 0o755);
        let exe = file(windows.path(), "modo_cl.exe", 0o755);
        let path =
            std::env::join_paths([linux.path(), windows.path()]).unwrap_or_else(|e| panic!("{e}"));

        let found = Toolbox::discover_in(&BTreeMap::new(), true, &path, true)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(found.get(Tool::ModoCl), Some(&Executable::windows(exe)));
        let found = Toolbox::discover_in(&BTreeMap::new(), true, &path, false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(found.get(Tool::ModoCl), Some(&Executable::new(native)));
    }

    #[cfg(unix)]
    #[test]
    fn a_given_path_must_be_an_executable_file() {
        let dir = temp();
        let good = file(dir.path(), "my-blender", 0o755);
        let plain = file(dir.path(), "notes.txt", 0o644);
        let empty = std::ffi::OsString::new();

        let found = Toolbox::discover_in(&given(Tool::Blender, &good), false, &empty, false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(found.get(Tool::Blender), Some(&Executable::new(&good)));

        let refuse = |tool: Tool, path: &Path, problem: &str| {
            let error = Toolbox::discover_in(&given(tool, path), true, &empty, false)
                .err()
                .unwrap_or_else(|| panic!("{} was accepted", path.display()))
                .to_string();
            assert!(error.contains(tool.flag()), "{error}");
            assert!(error.contains(&path.display().to_string()), "{error}");
            assert!(error.ends_with(problem), "{error}");
        };
        refuse(Tool::Blender, &dir.path().join("missing"), "no such file");
        refuse(Tool::Hython, dir.path(), "it is a directory");
        refuse(Tool::ModoCl, &plain, "it is not executable");
        refuse(Tool::Mantra, Path::new("mantra-20.5"), "not found on PATH");
    }

    #[cfg(unix)]
    #[test]
    fn a_given_bare_name_is_looked_up_on_path() {
        let dir = temp();
        let renderer = file(dir.path(), "blender-3.6", 0o755);
        let found = Toolbox::discover_in(
            &given(Tool::Blender, Path::new("blender-3.6")),
            false,
            dir.path().as_os_str(),
            false,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(found.get(Tool::Blender), Some(&Executable::new(renderer)));
    }

    /// Guards issue 16: on Windows a tool is found on PATH by its `.exe` name, a file
    /// without it is not taken for the program, and a bare name given (`--blender
    /// blender`) means `blender.exe`, as a shell would take it.
    #[cfg(windows)]
    #[test]
    fn on_windows_tools_are_found_by_their_exe_names() {
        assert_eq!(executable_names(Tool::Blender, false), ["blender.exe"]);
        let dir = temp();
        let put = |name: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, b"MZ").unwrap_or_else(|e| panic!("{e}"));
            path
        };
        let blender = put("blender.exe");
        put("modo_cl");
        let path = dir.path().as_os_str();

        let found = Toolbox::discover_in(&BTreeMap::new(), true, path, false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(found.get(Tool::Blender), Some(&Executable::new(&blender)));
        assert_ne!(
            found.get(Tool::ModoCl).map(Executable::path),
            Some(dir.path().join("modo_cl").as_path())
        );

        let named = Toolbox::discover_in(
            &given(Tool::Blender, Path::new("blender")),
            false,
            path,
            false,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(named.get(Tool::Blender), Some(&Executable::new(&blender)));
    }
}
