//! The built-in worker-info job: what a worker runs on, what it was built with, and who it
//! is.
//!
//! The operating-system facts come from `uname` on Unix (the one place this crate calls
//! into libc), from `RtlGetVersion` on Windows (`Windows`, release `10`, version
//! `10.0.19045`, as Python's `platform` says), and from the standard library's constants
//! elsewhere.

use std::env;
use std::path::Path;

use buildcat_proto::gpu::Gpu;
use buildcat_proto::{
    Failure, OsInfo, RuntimeInfo, SOFTWARE_VERSION, WorkerDetails, WorkerInfo, WorkerInfoReport,
};

use crate::context::JobContext;

/// The handler of the built-in [`WorkerInfo`] task.
pub(crate) async fn handle(
    _task: WorkerInfo,
    context: JobContext,
) -> Result<WorkerInfoReport, Failure> {
    report(&context.root, &context.worker, context.gpus())
}

/// Reports on this process, running as worker `name` from `root` with the slot's `gpus`.
pub fn report(root: &Path, name: &str, gpus: &[Gpu]) -> Result<WorkerInfoReport, Failure> {
    let facts = system::facts().map_err(|error| {
        Failure::new(format!(
            "cannot read the operating system's details: {error}"
        ))
    })?;
    Ok(WorkerInfoReport {
        os: facts.os,
        rust: runtime_info(),
        worker: WorkerDetails {
            pid: std::process::id(),
            root: root.to_string_lossy().into_owned(),
            user: user_name().unwrap_or(facts.user_id),
            version: SOFTWARE_VERSION.to_owned(),
            name: name.to_owned(),
        },
        gpus: gpus.to_vec(),
    })
}

/// The toolchain and target this crate was built with (recorded by `build.rs`).
pub fn runtime_info() -> RuntimeInfo {
    RuntimeInfo {
        version: env!("BUILDCAT_RUSTC_VERSION").to_owned(),
        target: env!("BUILDCAT_TARGET").to_owned(),
    }
}

/// This machine's host name, as the farm shows it.
pub fn host_name() -> String {
    hostname::get()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// The login name from the environment, if set.
fn user_name() -> Option<String> {
    ["USER", "LOGNAME", "USERNAME"]
        .into_iter()
        .filter_map(env::var_os)
        .map(|name| name.to_string_lossy().into_owned())
        .find(|name| !name.is_empty())
}

/// What the operating system says about itself and this process.
struct SystemFacts {
    /// The `uname` fields.
    os: OsInfo,
    /// The login name from the user database (or the user id as text), for when the
    /// environment names no user.
    user_id: String,
}

#[cfg(unix)]
mod system {
    use std::ffi::c_char;
    use std::io;
    use std::mem::MaybeUninit;

    use buildcat_proto::OsInfo;

    use super::{SystemFacts, host_name};

    /// Reads `uname` and the user id.
    pub(super) fn facts() -> io::Result<SystemFacts> {
        let mut buffer = MaybeUninit::<libc::utsname>::uninit();
        // SAFETY: `uname` is given a pointer to writable memory the size of a `utsname`; it
        // fills the whole struct and returns 0 on success, and only then is the buffer
        // treated as initialised. `getuid` has no preconditions and cannot fail.
        let (uname, uid) = unsafe {
            let uname = if libc::uname(buffer.as_mut_ptr()) == 0 {
                Some(buffer.assume_init())
            } else {
                None
            };
            (uname, libc::getuid())
        };
        let uname = uname.ok_or_else(io::Error::last_os_error)?;
        let machine = text(&uname.machine);
        let user_id = login_of(uid).unwrap_or_else(|| uid.to_string());
        Ok(SystemFacts {
            os: OsInfo {
                host: host_name(),
                processor: machine.clone(),
                machine,
                release: text(&uname.release),
                system: text(&uname.sysname),
                version: text(&uname.version),
            },
            user_id,
        })
    }

    /// The login name of `uid` from the user database, as `getpass.getuser` falls back to.
    fn login_of(uid: libc::uid_t) -> Option<String> {
        let mut record = MaybeUninit::<libc::passwd>::uninit();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let mut buffer = vec![0 as c_char; 16 * 1024];
        // SAFETY: `getpwuid_r` writes the record into `record` and its strings into `buffer`
        // (whose true length is passed), and sets `found` to `record` only on success; the
        // name is read only then, while `buffer` is alive, and copied out at once.
        unsafe {
            let status = libc::getpwuid_r(
                uid,
                record.as_mut_ptr(),
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut found,
            );
            if status != 0 || found.is_null() {
                return None;
            }
            let name = std::ffi::CStr::from_ptr((*found).pw_name);
            Some(name.to_string_lossy().into_owned())
        }
    }

    /// A NUL-terminated `uname` field as text (the whole field if it has no NUL).
    fn text(field: &[c_char]) -> String {
        // `c_char` is `i8` or `u8` depending on the platform; either way it is one byte.
        let bytes: Vec<u8> = field
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| u8::from_ne_bytes(c.to_ne_bytes()))
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(windows)]
mod system {
    use std::env;
    use std::io;
    use std::mem::{size_of, zeroed};

    use buildcat_proto::OsInfo;
    use windows_sys::Wdk::System::SystemServices::RtlGetVersion;
    use windows_sys::Win32::System::SystemInformation::OSVERSIONINFOW;

    use super::{SystemFacts, host_name};

    /// What Windows says of itself: its version from `RtlGetVersion` (which, unlike
    /// `GetVersionEx`, is not capped at 6.2 for programs without a manifest), the processor
    /// architecture as Windows names it (`AMD64`), as Python's `platform` reports them.
    pub(super) fn facts() -> io::Result<SystemFacts> {
        // SAFETY: an all-zero structure is valid once its size is set, as the call requires.
        let mut version: OSVERSIONINFOW = unsafe { zeroed() };
        version.dwOSVersionInfoSize = u32::try_from(size_of::<OSVERSIONINFOW>()).unwrap_or(0);
        // SAFETY: `version` is a writable, sized structure; the call fills it and returns
        // a status (0 is success), checked before the fields are read.
        let status = unsafe { RtlGetVersion(&raw mut version) };
        if status != 0 {
            return Err(io::Error::other(format!(
                "RtlGetVersion failed with status {status:#x}"
            )));
        }
        let machine = env::var("PROCESSOR_ARCHITECTURE")
            .ok()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| env::consts::ARCH.to_owned());
        Ok(SystemFacts {
            os: OsInfo {
                host: host_name(),
                processor: machine.clone(),
                machine,
                release: version.dwMajorVersion.to_string(),
                system: "Windows".to_owned(),
                version: format!(
                    "{}.{}.{}",
                    version.dwMajorVersion, version.dwMinorVersion, version.dwBuildNumber
                ),
            },
            user_id: "unknown".to_owned(),
        })
    }
}

#[cfg(not(any(unix, windows)))]
mod system {
    use std::env::consts;
    use std::io;

    use buildcat_proto::OsInfo;

    use super::{SystemFacts, host_name};

    /// What the standard library knows of the system; it has no `uname` here.
    pub(super) fn facts() -> io::Result<SystemFacts> {
        Ok(SystemFacts {
            os: OsInfo {
                host: host_name(),
                machine: consts::ARCH.to_owned(),
                processor: consts::ARCH.to_owned(),
                release: "unknown".to_owned(),
                system: consts::OS.to_owned(),
                version: "unknown".to_owned(),
            },
            user_id: "unknown".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_describes_this_process() {
        let root = env::temp_dir();
        let report = report(&root, "tester", &[]).unwrap_or_else(|f| panic!("{f}"));
        assert!(report.gpus.is_empty());
        assert_eq!(report.worker.pid, std::process::id());
        assert_eq!(report.worker.name, "tester");
        assert_eq!(report.worker.version, SOFTWARE_VERSION);
        assert_eq!(report.worker.root, root.to_string_lossy());
        assert!(!report.worker.user.is_empty());
        assert!(!report.os.system.is_empty());
        assert!(!report.os.machine.is_empty());
        assert!(
            report.rust.version.starts_with("rustc "),
            "{}",
            report.rust.version
        );
        assert!(!report.rust.target.is_empty());
        #[cfg(target_os = "linux")]
        assert_eq!(report.os.system, "Linux");
        #[cfg(windows)]
        {
            assert_eq!(report.os.system, "Windows");
            assert!(
                report.os.version.split('.').count() == 3,
                "{}",
                report.os.version
            );
        }
    }
}
