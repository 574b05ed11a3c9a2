//! A program that embeds a buildcat worker with a handler for its own task type.
//!
//! ```sh
//! cd /mnt/farm && cargo run -p buildcat-examples --example custom_worker [HOST:PORT]
//! ```
//! It serves queue `checksums`, runs the built-in worker-info task as well as `Checksum`,
//! and stops on Ctrl-C (after finishing the job it is running).

use buildcat_examples::{Checksum, ChecksumReport, fnv1a, server_address};
use buildcat_proto::{Failure, paths};
use buildcat_worker::{JobContext, Worker};

async fn checksum(task: Checksum, context: JobContext) -> Result<ChecksumReport, Failure> {
    // Paths in jobs are relative to the farm root; refuse anything else.
    let file =
        paths::resolve(&context.root, &task.path).map_err(|e| Failure::new(e.to_string()))?;
    let bytes = tokio::fs::read(&file)
        .await
        .map_err(|e| Failure::new(format!("could not read {}: {e}", file.display())))?;
    Ok(ChecksumReport {
        path: task.path,
        bytes: bytes.len() as u64,
        fnv1a: fnv1a(&bytes),
        worker: context.worker,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let server = server_address(std::env::args().nth(1).as_deref());
    let worker = Worker::builder()
        .server(server)
        .queue("checksums")
        .handler::<Checksum, _, _>(checksum)
        .build()?;
    let stats = worker
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    eprintln!("custom_worker: ran {} tasks", stats.tasks_completed);
    Ok(())
}
