//! A custom submission tool: submits one job of one `Checksum` task per file in one round
//! trip, waits for it and prints a line per file.
//!
//! ```sh
//! cargo run -p buildcat-examples --example submit_batch -- [--server HOST:PORT] FILE...
//! ```
//! FILEs are relative to the farm root. Exits non-zero if any task failed.

use std::process::ExitCode;

use buildcat_client::Client;
use buildcat_examples::{Checksum, server_address};
use buildcat_proto::paths;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let server = match args.iter().position(|a| a == "--server") {
        Some(at) if at + 1 < args.len() => {
            let address = args.remove(at + 1);
            args.remove(at);
            server_address(Some(&address))
        }
        _ => server_address(None),
    };
    if args.is_empty() {
        eprintln!(
            "usage: submit_batch [--server HOST:PORT] FILE... (paths relative to the farm root)"
        );
        return ExitCode::FAILURE;
    }
    // Refuse bad paths before anything is submitted.
    for path in &args {
        if let Err(e) = paths::check_relative(path) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    match run(&server, args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(server: &str, files: Vec<String>) -> Result<bool, buildcat_client::ClientError> {
    let client = Client::connect(server).await?;
    // One job people see as one thing (`buildcat status N`), a task per file.
    let mut job = client
        .new_job::<Checksum>("checksums")
        .name(format!("checksums of {} files", files.len()))
        .runs(format!("submit_batch {}", files.join(" ")));
    for path in files {
        job = job.task(None, &Checksum { path });
    }
    let job = job.submit().await?;
    eprintln!(
        "submitted job {} of {} tasks to queue `checksums`",
        job.number(),
        job.tasks()
    );
    // The server says when the job has ended; nothing polls. Then every task's result is
    // asked for at once on the one connection.
    let mut all_ok = true;
    for result in job.wait_all().await? {
        match result {
            Ok(report) => println!(
                "{:016x}  {:>10}  {}  ({})",
                report.fnv1a, report.bytes, report.path, report.worker
            ),
            Err(e) => {
                all_ok = false;
                eprintln!("{e}");
            }
        }
    }
    Ok(all_ok)
}
