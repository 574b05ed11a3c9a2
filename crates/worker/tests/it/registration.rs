//! What a worker says when it registers.

use buildcat_proto::{
    PROTOCOL_VERSION, Role, RunCommand, RunCommandIn, SOFTWARE_VERSION, Task, WorkerInfo,
};

use crate::fake::{FakeServer, QUIET_HEARTBEAT_MS, builder, start, temp_root};
use crate::tasks::{Greet, greet};

#[tokio::test]
async fn registers_with_its_name_queues_kinds_and_root() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(
        builder(&server, &root)
            .queue("high")
            .queues(["normal", "low"])
            .handler(greet),
    );

    let (hello, _link) = server.accept_hello().await;
    assert_eq!(hello.role, Role::Worker);
    assert_eq!(hello.protocol, PROTOCOL_VERSION);
    assert_eq!(hello.software, SOFTWARE_VERSION);
    drop(_link);

    // The worker retries after the dropped handshake and registers on the next connection.
    let connection = server.accept(QUIET_HEARTBEAT_MS).await;
    let registration = &connection.registration;
    assert_eq!(registration.name, "test-worker");
    assert_eq!(registration.queues, ["high", "normal", "low"]);
    assert_eq!(
        registration.kinds,
        [
            RunCommand::KIND,
            RunCommandIn::KIND,
            WorkerInfo::KIND,
            Greet::KIND
        ]
    );
    let canonical = std::fs::canonicalize(root.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(registration.root, canonical.to_string_lossy());
    assert_eq!(registration.pid, std::process::id());
    assert_eq!(registration.version, SOFTWARE_VERSION);
    assert!(!registration.host.is_empty());
    assert!(registration.running.is_empty());

    assert_eq!(worker.stop().await.tasks_completed, 0);
}

#[tokio::test]
async fn default_queue_is_default() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root));
    let connection = server.accept(QUIET_HEARTBEAT_MS).await;
    assert_eq!(connection.registration.queues, ["default"]);
    assert_eq!(
        connection.registration.kinds,
        [RunCommand::KIND, RunCommandIn::KIND, WorkerInfo::KIND]
    );
    worker.stop().await;
}

#[tokio::test]
async fn concurrent_loops_register_numbered_names() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root).concurrency(3));
    let mut names = Vec::new();
    let mut connections = Vec::new();
    for _ in 0..3 {
        let connection = server.accept(QUIET_HEARTBEAT_MS).await;
        names.push(connection.registration.name.clone());
        connections.push(connection);
    }
    names.sort();
    assert_eq!(names, ["test-worker.1", "test-worker.2", "test-worker.3"]);
    worker.stop().await;
    for mut connection in connections {
        connection.expect_closed().await;
    }
}
