//! The examples run in CI against a real server: `custom_worker` (a worker embedding
//! `buildcat-worker` with its own task type) and `submit_batch` (a tool embedding
//! `buildcat-client`), as README.md's "Embedding" section starts them.

use std::collections::BTreeMap;

use crate::harness::{
    Farm, PATIENCE, Proc, describe, example, program_command, run_command, stderr, stdout,
};
use crate::tutorial::hostname;

/// The 64-bit FNV-1a hash, computed here independently of the examples' own.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Guards the embedding examples end to end: `custom_worker HOST:PORT`, started in a root
/// holding two files, and `submit_batch --server HOST:PORT a.txt b.txt` exiting 0 with one
/// line per file giving its FNV-1a hash, its size and the worker that read it. A missing
/// file makes `submit_batch` fail naming it; an absolute path is refused before anything is
/// submitted, with a message saying it is absolute.
#[test]
fn submit_batch_checksums_files_on_custom_worker() {
    let farm = Farm::start();
    let root = farm.make_dir("checksum-root");
    let files: [(&str, Vec<u8>); 2] = [
        ("a.txt", b"hello, farm\n".to_vec()),
        ("b.txt", (0..=255u8).cycle().take(3000).collect()),
    ];
    for (name, contents) in &files {
        std::fs::write(root.join(name), contents).expect("could not write a file to checksum");
    }
    let address = format!("127.0.0.1:{}", farm.port);
    let submit_batch = example("submit_batch");
    let mut command = program_command(&example("custom_worker"), [&address]);
    // A runtime directory of its own: the default name takes its first slot, `HOST-1`.
    command
        .current_dir(&root)
        .env("XDG_RUNTIME_DIR", farm.make_dir("runtime"));
    let mut worker = Proc::spawn("custom_worker", command, farm.path());
    let worker_name = format!("{}-1", hostname());

    let output = run_command(
        program_command(&submit_batch, ["--server", &address, "a.txt", "b.txt"]),
        PATIENCE,
    );
    assert!(
        output.status.success(),
        "submit_batch failed\n{}\n{}\n{}",
        describe(&output),
        worker.logs(),
        farm.server_logs()
    );
    // One line per file, in the order the results came: HASH  SIZE  PATH  (WORKER).
    let mut reported = BTreeMap::new();
    for line in stdout(&output).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [hash, size, path, by] = fields[..] else {
            panic!("not `HASH  SIZE  PATH  (WORKER)`: {line:?}");
        };
        assert_eq!(by, format!("({worker_name})"), "{line:?}");
        let previous = reported.insert(path.to_owned(), (hash.to_owned(), size.to_owned()));
        assert!(
            previous.is_none(),
            "{path} reported twice\n{}",
            describe(&output)
        );
    }
    let expected: BTreeMap<String, (String, String)> = files
        .iter()
        .map(|(name, contents)| {
            let hash = format!("{:016x}", fnv1a(contents));
            ((*name).to_owned(), (hash, contents.len().to_string()))
        })
        .collect();
    assert_eq!(reported, expected, "{}", describe(&output));

    let output = run_command(
        program_command(&submit_batch, ["--server", &address, "missing.txt"]),
        PATIENCE,
    );
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        stderr(&output).contains("missing.txt"),
        "{}",
        describe(&output)
    );

    let before = farm.info();
    let output = run_command(
        program_command(&submit_batch, ["--server", &address, "/etc/passwd"]),
        PATIENCE,
    );
    assert!(!output.status.success(), "{}", describe(&output));
    let message = stderr(&output);
    assert!(
        message.contains("/etc/passwd") && message.contains("absolute"),
        "{}",
        describe(&output)
    );
    assert!(
        !message.contains("submitted"),
        "an absolute path was submitted\n{}",
        describe(&output)
    );
    assert_eq!(
        farm.info()["queues"],
        before["queues"],
        "a job was submitted"
    );
    worker.assert_running();
}
