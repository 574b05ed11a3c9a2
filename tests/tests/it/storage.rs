//! The server's storage under faults, with the real binary: its file removed under a running
//! server, a read-only or forbidden file system at start, and a full disk. Nothing the
//! server acknowledged may be lost, and every refusal says what is wrong with the storage.
//!
//! The read-only and full-disk cases need a small file system of their own (a tmpfs), so
//! they need root; elsewhere they say they were skipped, except under CI (`BUILDCAT_CI`),
//! where a skip would hide a regression. A file system cannot be made read-only while the
//! server holds its files open for writing (Linux refuses the remount), so read-only storage
//! is staged at start; at commit the same words come from the same check in the store.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

use crate::harness::{
    Farm, PATIENCE, buildcat, buildcat_command, count, describe, free_port, run_command, stderr,
    switched_to_postgres,
};

/// Size of the tmpfs the full-disk test fills: big enough for the server's empty store and
/// a few jobs, small enough to fill in a moment.
const SMALL_DISK: &str = "4m";

/// How many jobs are acknowledged before the disk fills.
const JOBS_BEFORE_FULL: u64 = 20;

/// Guards issue 9 item 6: after `rm buildcat.db buildcat.db-wal` under a running server it
/// went on acknowledging submissions into the removed file, and after a restart 0 of 20
/// acknowledged jobs existed. Now the next submission is refused with an error that says
/// the file was removed (and `buildcat` exits non-zero printing it), the server logs it and
/// keeps running, and it refuses every later change too.
#[test]
fn removed_storage_is_refused_and_not_acknowledged() {
    if switched_to_postgres() {
        eprintln!(
            "skipped under the PostgreSQL switch: it removes the server's SQLite file, which a \
             PostgreSQL store has not (a lost database connection is the postgres tests' case)"
        );
        return;
    }
    let mut farm = Farm::start();
    farm.submit(&["--", "true"]);
    let storage = farm.storage();
    std::fs::remove_file(&storage).expect("could not remove the storage");
    std::fs::remove_file(wal(&storage)).expect("could not remove the storage's wal");

    for attempt in ["first", "second"] {
        let output = farm.run(&["run", "--", "true"]);
        let printed = stderr(&output);
        assert!(
            !output.status.success(),
            "the {attempt} submission after the removal was acknowledged\n{}\n{}",
            describe(&output),
            farm.server_logs()
        );
        assert!(
            printed.contains("was removed") && printed.contains("restart the server"),
            "the {attempt} refusal does not say the storage was removed and what to do\n{}",
            describe(&output)
        );
    }
    let server = farm.server();
    let log = server.log();
    assert!(
        log.contains("could not commit to storage") && log.contains("was removed"),
        "the server did not log the lost storage\n{}",
        server.logs()
    );
    // Nothing was written where a restart looks.
    assert!(
        !storage.exists(),
        "the server made a new file at {}",
        storage.display()
    );
}

/// Read-only storage is named as such at start ("read-only file system"), for an existing
/// store and a new one, instead of SQLite's "attempt to write a readonly database" or
/// "disk I/O error".
#[test]
fn read_only_storage_is_named_at_start() {
    let Some(disk) = Tmpfs::mount_or_skip(SMALL_DISK) else {
        return;
    };
    let mut farm = Farm::without_server();
    let storage = disk.path().join("buildcat.db");
    farm.set_storage(&storage);
    farm.start_server();
    farm.submit(&["--", "true"]);
    farm.kill_server();
    disk.remount("ro");

    for path in [storage, disk.path().join("new.db")] {
        let output = start_server_expecting_failure(&path);
        let printed = stderr(&output);
        assert!(
            printed.contains("read-only file system") && printed.contains("remount"),
            "the refusal of {} does not name the read-only file system\n{}",
            path.display(),
            describe(&output)
        );
        assert!(!printed.contains("disk I/O error"), "{}", describe(&output));
    }
}

/// A directory the server's user may not write is named at start ("permission denied").
/// Root may write anywhere, so as root the server runs as `nobody` (through `setpriv`).
#[test]
fn unwritable_storage_directory_is_named_at_start() {
    let dir = tempfile::Builder::new()
        .prefix("buildcat-it-storage-")
        .tempdir()
        .expect("could not make a temporary directory");
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).expect("could not create the directory");
    let as_root = is_root();
    let mode = if as_root { 0o755 } else { 0o500 };
    set_mode(dir.path(), 0o755);
    set_mode(&locked, mode);
    let storage = locked.join("buildcat.db");
    let port = free_port().to_string();
    let args = [
        "server".as_ref(),
        "--port".as_ref(),
        port.as_ref(),
        "--storage".as_ref(),
        storage.as_os_str(),
    ];
    let command = if as_root {
        if !tool_on_path("setpriv") {
            skip("needs `setpriv` to run the server as another user than root");
            return;
        }
        // `nobody`, with the environment a `buildcat_command` gets.
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(buildcat())
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for name in [
            "BUILDCAT_HOST",
            "BUILDCAT_PORT",
            "BUILDCAT_ROOT",
            "RUST_LOG",
        ] {
            command.env_remove(name);
        }
        command
    } else {
        buildcat_command(args)
    };
    let output = run_command(command, PATIENCE);
    set_mode(&locked, 0o700);
    assert!(
        !output.status.success(),
        "the server started on storage it may not write\n{}",
        describe(&output)
    );
    let printed = stderr(&output);
    assert!(
        printed.contains("permission denied") && printed.contains(&locked.display().to_string()),
        "the refusal does not say permission was denied\n{}",
        describe(&output)
    );
}

/// Disk full, end to end: a server with its storage on a 4 MiB tmpfs takes 20 jobs; the disk
/// is filled; the next submission is refused with a storage error that says the disk is
/// full; once space is freed submissions succeed again; and after a restart every
/// acknowledged job is there and the refused one is not.
#[test]
fn full_disk_refuses_submissions_and_loses_nothing_acknowledged() {
    let Some(disk) = Tmpfs::mount_or_skip(SMALL_DISK) else {
        return;
    };
    let mut farm = Farm::without_server();
    farm.set_storage(&disk.path().join("buildcat.db"));
    farm.start_server();
    for _ in 0..JOBS_BEFORE_FULL {
        farm.submit(&["--", "true"]);
    }

    let filler = disk.path().join("filler");
    fill(&filler);
    let output = farm.run(&["run", "--", "true"]);
    assert!(
        !output.status.success(),
        "a submission was acknowledged on a full disk\n{}\n{}",
        describe(&output),
        farm.server_logs()
    );
    let printed = stderr(&output);
    assert!(
        printed.contains("could not store") && printed.contains("the disk is full"),
        "the refusal does not say the disk is full\n{}",
        describe(&output)
    );
    farm.server().assert_running();

    std::fs::remove_file(&filler).expect("could not remove the filler");
    farm.submit(&["--", "true"]);
    let acknowledged = JOBS_BEFORE_FULL + 1;
    let info = farm.info();
    assert_eq!(
        count(&info, "default", "queued"),
        Some(acknowledged),
        "{info:#}"
    );

    farm.kill_server();
    farm.start_server();
    let info = farm.info();
    assert_eq!(
        count(&info, "default", "queued"),
        Some(acknowledged),
        "after a restart: {info:#}\n{}",
        farm.server_logs()
    );
}

/// The WAL beside a SQLite file.
fn wal(storage: &Path) -> PathBuf {
    let mut name = storage.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Runs `buildcat server` on `storage`, which must fail at start; returns what it printed.
fn start_server_expecting_failure(storage: &Path) -> Output {
    let port = free_port().to_string();
    let output = run_command(
        buildcat_command([
            "server".as_ref(),
            "--port".as_ref(),
            port.as_ref(),
            "--storage".as_ref(),
            storage.as_os_str(),
        ]),
        PATIENCE,
    );
    assert!(
        !output.status.success(),
        "the server started on {}\n{}",
        storage.display(),
        describe(&output)
    );
    output
}

/// Writes `path` until the file system refuses for want of space.
pub(crate) fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).expect("could not create the filler");
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match file.write_all(&chunk) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::StorageFull => break,
            Err(error) => panic!("could not fill the disk: {error}"),
        }
    }
    // What did not fit in whole chunks, byte by byte, so that no block is left free.
    while file.write_all(&[0]).is_ok() {}
}

/// Whether the tests run as root.
fn is_root() -> bool {
    // SAFETY: `geteuid` has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `tool` is on PATH.
fn tool_on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", "command -v \"$1\"", "sh", tool])
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Says a test was skipped, or fails it under CI, where a skip would hide a regression.
fn skip(reason: &str) {
    assert!(
        std::env::var_os("BUILDCAT_CI").is_none(),
        "BUILDCAT_CI is set but a storage test cannot run: {reason}"
    );
    eprintln!("skipped: {reason}");
}

/// Sets the permission bits of `path`.
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|error| panic!("could not chmod {}: {error}", path.display()));
}

/// A tmpfs of its own for a test's storage, unmounted on drop (also when the test fails).
///
/// Declare it before the farm whose server uses it, so that the server is stopped first.
pub(crate) struct Tmpfs {
    /// The mount point, a temporary directory removed once unmounted.
    dir: TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `4m`), or says why it cannot and returns `None`.
    pub(crate) fn mount_or_skip(size: &str) -> Option<Tmpfs> {
        if !is_root() {
            skip("needs root to mount a tmpfs");
            return None;
        }
        if !tool_on_path("mount") || !tool_on_path("umount") {
            skip("needs `mount` and `umount` on PATH");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("buildcat-it-disk-")
            .tempdir()
            .expect("could not make a temporary directory");
        let output = run_command(
            mount_command(
                ["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
                &dir,
            ),
            PATIENCE,
        );
        assert!(
            output.status.success(),
            "could not mount a tmpfs\n{}",
            describe(&output)
        );
        Some(Tmpfs { dir })
    }

    /// The mount point.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remounts with `options` (e.g. `ro`).
    fn remount(&self, options: &str) {
        let output = run_command(
            mount_command(["-o", &format!("remount,{options}")], &self.dir),
            PATIENCE,
        );
        assert!(
            output.status.success(),
            "could not remount the tmpfs {options}\n{}",
            describe(&output)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily, so that a process still holding a file there cannot keep it mounted; the
        // directory is removed after this.
        let unmounted = Command::new("umount")
            .arg("--lazy")
            .arg(self.dir.path())
            .status();
        if !matches!(unmounted, Ok(status) if status.success()) && !std::thread::panicking() {
            panic!(
                "could not unmount the tmpfs at {}: {unmounted:?}",
                self.dir.path().display()
            );
        }
    }
}

/// `mount ARGS DIR`.
fn mount_command<'a>(args: impl IntoIterator<Item = &'a str>, dir: &TempDir) -> Command {
    let mut command = Command::new("mount");
    command.args(args).arg(dir.path());
    command
}
