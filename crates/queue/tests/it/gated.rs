//! Regression test for the deadlock between the core task and the store writer (issue 18,
//! review R1): the core task awaited room in the writer's queue while the writer blocked
//! sending its commit result into the core's full input queue, and the server stopped for
//! good. Here a store whose commits wait on a gate lets every queue fill up under tiny
//! capacities; once the gate opens, the server must answer everything.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use buildcat_proto::{
    ClientFrame, FrameCodec, Hello, HelloReply, JobOptions, NewJob, NewTask, Reply, Request, Role,
    ServerFrame,
};
use buildcat_queue::store::{Loaded, Store, StoreError, StoreOp};
use buildcat_queue::{Capacities, Server, ServerConfig};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_util::codec::Framed;

/// The longest any step may take before the test fails: generous, because the point is
/// whether the server answers at all.
const PATIENCE: Duration = Duration::from_secs(60);

/// Connections submitting at once.
const CLIENTS: usize = 8;

/// Single-job submissions each connection keeps in flight.
const SUBMISSIONS: u64 = 200;

/// Commits wait until the test opens the gate.
#[derive(Default)]
struct Gate {
    /// Open yet, and how many commits have started waiting.
    state: Mutex<(bool, usize)>,
    /// Signalled when either changes.
    changed: Condvar,
}

impl Gate {
    /// Lets every commit through, now and later.
    fn open(&self) {
        let mut state = self.state.lock().expect("gate lock");
        state.0 = true;
        self.changed.notify_all();
    }

    /// Blocks until a commit is waiting at the closed gate.
    fn wait_for_a_commit(&self) {
        let state = self.state.lock().expect("gate lock");
        let (state, timeout) = self
            .changed
            .wait_timeout_while(state, PATIENCE, |(_, waiting)| *waiting == 0)
            .expect("gate lock");
        assert!(
            !timeout.timed_out() || state.1 > 0,
            "the server made no commit within {PATIENCE:?}"
        );
    }
}

/// A store that keeps nothing and whose commits wait on the gate.
struct GatedStore {
    /// Shared with the test.
    gate: Arc<Gate>,
}

impl Store for GatedStore {
    fn load(&mut self) -> Result<Loaded, StoreError> {
        Ok(Loaded::default())
    }

    fn commit(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        // Loading commits what rebuilding changed, nothing here; only the server's own
        // commits wait.
        if ops.is_empty() {
            return Ok(());
        }
        let mut state = self.gate.state.lock().expect("gate lock");
        state.1 += 1;
        self.gate.changed.notify_all();
        let _state = self
            .gate
            .changed
            .wait_while(state, |(open, _)| !*open)
            .expect("gate lock");
        Ok(())
    }

    fn read_output(
        &mut self,
        _task: buildcat_proto::TaskId,
        from: u64,
        _max_bytes: usize,
    ) -> Result<buildcat_proto::LogPage, StoreError> {
        // Keeps no output: every page is empty.
        Ok(buildcat_proto::LogPage::empty_at(from))
    }
}

/// A connection that has said hello as a client.
async fn connect(port: u16) -> Framed<TcpStream, FrameCodec<ServerFrame, ClientFrame>> {
    let socket = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the server");
    let mut framed = Framed::new(socket, FrameCodec::<HelloReply, Hello>::new(1 << 20));
    framed
        .send(Hello::new(Role::Client))
        .await
        .expect("send hello");
    match framed.next().await {
        Some(Ok(HelloReply::Welcome(_))) => {}
        other => panic!("expected a welcome, got {other:?}"),
    }
    framed.map_codec(|codec| codec.retype())
}

/// One single-job submission.
fn submission(n: u64) -> ClientFrame {
    let job = NewJob {
        queue: "q".to_owned(),
        kind: "k".to_owned(),
        name: String::new(),
        submitter: "test@host".to_owned(),
        runs: String::new(),
        options: JobOptions::default(),
        tasks: vec![NewTask {
            frames: None,
            args: n.to_le_bytes().to_vec(),
        }],
    };
    ClientFrame {
        id: n,
        request: Request::Submit(vec![job]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_falls_behind_never_stalls_the_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ServerConfig::new(dir.path().join("unused.db"));
    // Every queue between tasks as short as it can be, so each fills at once.
    config.capacities = Capacities {
        inputs: 1,
        store_batches: 1,
        backlog_ops: 2,
        queued_requests: 1,
        ..Capacities::default()
    };
    config.max_batch = 1;
    let gate = Arc::new(Gate::default());
    let store = GatedStore {
        gate: Arc::clone(&gate),
    };
    let server = Server::with_store(config, store)
        .await
        .expect("a server over the gated store");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));

    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (mut sink, mut stream) = connect(port).await.split();
        // Writing may wait on the server (that is the backpressure); it runs on its own.
        let writing = tokio::spawn(async move {
            for n in 1..=SUBMISSIONS {
                sink.feed(submission(n)).await.expect("send a submission");
            }
            sink.flush().await.expect("flush submissions");
            sink
        });
        let reading = tokio::spawn(async move {
            let mut acknowledged = 0;
            while acknowledged < SUBMISSIONS {
                match stream.next().await {
                    Some(Ok(ServerFrame::Reply {
                        reply: Ok(Reply::Submitted(_)),
                        ..
                    })) => acknowledged += 1,
                    other => panic!("expected an acknowledgement, got {other:?}"),
                }
            }
            stream
        });
        clients.push((writing, reading));
    }
    let gate_for_wait = Arc::clone(&gate);
    tokio::task::spawn_blocking(move || gate_for_wait.wait_for_a_commit())
        .await
        .expect("waiting for a commit");
    gate.open();

    for (writing, reading) in clients {
        let sink = tokio::time::timeout(PATIENCE, writing)
            .await
            .expect("the server stopped reading submissions: stalled")
            .expect("the writing task");
        let stream = tokio::time::timeout(PATIENCE, reading)
            .await
            .expect("the server stopped acknowledging submissions: stalled")
            .expect("the reading task");
        drop((sink, stream));
    }

    // Still answering afterwards.
    let mut client = connect(port).await;
    client
        .send(ClientFrame {
            id: 1,
            request: Request::Info,
        })
        .await
        .expect("send info");
    let reply = tokio::time::timeout(PATIENCE, client.next())
        .await
        .expect("no answer to info");
    match reply {
        Some(Ok(ServerFrame::Reply {
            reply: Ok(Reply::Info(info)),
            ..
        })) => {
            let queued: u64 = info.queues.iter().map(|q| q.tasks.queued).sum();
            assert_eq!(
                queued,
                CLIENTS as u64 * SUBMISSIONS,
                "every submission queued"
            );
        }
        other => panic!("expected info, got {other:?}"),
    }
    drop(client);
    let _ = stop.send(());
    tokio::time::timeout(PATIENCE, serving)
        .await
        .expect("the server did not stop")
        .expect("the server task")
        .expect("the server stopped with an error");
}
