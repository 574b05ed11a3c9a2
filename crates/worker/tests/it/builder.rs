//! Settings the builder accepts and refuses.

use buildcat_worker::{Worker, WorkerBuilder, WorkerError};

use crate::fake::temp_root;

#[test]
fn a_missing_root_is_refused_naming_it() {
    let root = temp_root();
    let missing = root.path().join("not-here");
    let error = Worker::builder().root(&missing).build().err();
    match error {
        Some(error @ WorkerError::Root { .. }) => {
            let message = error.to_string();
            assert!(message.contains("not-here"), "{message}");
        }
        other => panic!("expected a root error, got {other:?}"),
    }
}

#[test]
fn a_root_that_is_a_file_is_refused() {
    let root = temp_root();
    let file = root.path().join("file.txt");
    std::fs::write(&file, "x").unwrap_or_else(|e| panic!("{e}"));
    let error = Worker::builder().root(&file).build().err();
    match error {
        Some(error @ WorkerError::RootNotDirectory { .. }) => {
            let message = error.to_string();
            assert!(message.contains("file.txt"), "{message}");
            assert!(message.contains("not a directory"), "{message}");
        }
        other => panic!("expected a not-a-directory error, got {other:?}"),
    }
}

#[test]
fn the_root_is_made_canonical() {
    let root = temp_root();
    std::fs::create_dir(root.path().join("sub")).unwrap_or_else(|e| panic!("{e}"));
    let worker = Worker::builder()
        .root(root.path().join("sub").join(".."))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let canonical = std::fs::canonicalize(root.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(worker.root(), canonical);
}

/// Guards issue 14 (item 6): default names are `HOST-SLOT`, the lowest slots free in the
/// state directory, taken back by the next worker once the first is gone.
#[test]
fn default_names_are_host_and_slot_and_loops_are_numbered() {
    let root = temp_root();
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let build = |concurrency: usize| {
        Worker::builder()
            .root(root.path())
            .state_dir(state.path())
            .concurrency(concurrency)
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let first = build(1);
    let names: Vec<&str> = first.names().collect();
    assert_eq!(names.len(), 1);
    let host = names[0]
        .strip_suffix("-1")
        .unwrap_or_else(|| panic!("{names:?}"))
        .to_owned();
    let second = build(2);
    assert_eq!(
        second.names().collect::<Vec<_>>(),
        [format!("{host}-2"), format!("{host}-3")]
    );
    drop(first);
    let again = build(1);
    assert_eq!(again.names().collect::<Vec<_>>(), [format!("{host}-1")]);

    let worker = Worker::builder()
        .root(root.path())
        .name("farm")
        .concurrency(2)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(worker.names().collect::<Vec<_>>(), ["farm.1", "farm.2"]);
}

#[test]
fn server_address_defaults_and_bare_hosts_get_the_default_port() {
    let root = temp_root();
    let build = |builder: WorkerBuilder| {
        builder
            .root(root.path())
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(build(Worker::builder()).server(), "127.0.0.1:2228");
    assert_eq!(
        build(Worker::builder().server("farm")).server(),
        "farm:2228"
    );
    assert_eq!(
        build(Worker::builder().server("farm:9000")).server(),
        "farm:9000"
    );
}

/// Builds with a valid root and expects a configuration error mentioning `expected`.
fn check_refused(builder: WorkerBuilder, expected: &str) {
    let root = temp_root();
    match builder.root(root.path()).build() {
        Err(WorkerError::Config(message)) => assert!(message.contains(expected), "{message}"),
        other => panic!("expected a configuration error about {expected}, got {other:?}"),
    }
}

#[test]
fn impossible_settings_are_refused() {
    check_refused(Worker::builder().concurrency(0), "concurrency");
    check_refused(Worker::builder().queue(""), "queue name is empty");
    check_refused(
        Worker::builder().queues(["a", "b", "a"]),
        "`a` is named twice",
    );
    check_refused(Worker::builder().name(" "), "name is empty");
    check_refused(Worker::builder().server(""), "address is empty");
    check_refused(Worker::builder().max_frame(10), "frame limit");
}
