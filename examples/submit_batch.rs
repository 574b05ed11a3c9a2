//! A custom submission tool: submits one `Checksum` job per file in one round trip, waits for
//! all of them and prints a line per file.
//!
//! ```sh
//! cargo run -p buildcat-examples --example submit_batch -- [--server HOST:PORT] FILE...
//! ```
//! FILEs are relative to the farm root. Exits non-zero if any job failed.

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
    let tasks = files.into_iter().map(|path| Checksum { path });
    let handles = client.submit_batch("checksums", tasks).await?;
    eprintln!("submitted {} jobs to queue `checksums`", handles.len());
    // Wait for all of them at once: results are pushed by the server, nothing polls.
    let mut waits = tokio::task::JoinSet::new();
    for handle in handles {
        waits.spawn(async move { handle.wait().await });
    }
    let mut all_ok = true;
    while let Some(joined) = waits.join_next().await {
        let Ok(result) = joined else {
            all_ok = false;
            continue;
        };
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
