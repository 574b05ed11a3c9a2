//! `buildcat info`: the farm at a glance, once or refreshed every interval.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use buildcat_proto::view::FarmView;

use crate::args::InfoArgs;

/// `buildcat info`.
pub async fn info(args: InfoArgs) -> anyhow::Result<ExitCode> {
    let client = args.connection.connect().await?;
    let interval = match args.interval {
        Some(seconds) if seconds > 0.0 && seconds.is_finite() => {
            Some(Duration::from_secs_f64(seconds))
        }
        Some(_) => anyhow::bail!("--interval must be a positive number of seconds"),
        None => None,
    };
    let terminal = std::io::stdout().is_terminal();
    loop {
        let info = match client.info().await {
            Ok(info) => info,
            // Refreshing: carry on through a server restart.
            Err(error) if interval.is_some() => {
                crate::watch::recover(&client, error, &crate::watch::to_stderr).await?;
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let text = if args.json {
            format!(
                "{}\n",
                serde_json::to_string_pretty(&FarmView::from(&info))?
            )
        } else {
            crate::output::info_text(&info)
        };
        let mut stdout = std::io::stdout().lock();
        if let Some(every) = interval
            && !args.json
        {
            if terminal {
                // Clear the screen and redraw in place.
                write!(stdout, "\x1b[2J\x1b[H")?;
            }
            stdout.write_all(text.as_bytes())?;
            // When this picture was taken, under it: a frozen refresh shows.
            writeln!(
                stdout,
                "refreshed {} (every {}; Ctrl-C stops)",
                crate::time::rfc3339(buildcat_proto::Timestamp::now()),
                crate::time::human(every)
            )?;
        } else {
            stdout.write_all(text.as_bytes())?;
        }
        stdout.flush()?;
        drop(stdout);
        let Some(interval) = interval else {
            return Ok(ExitCode::SUCCESS);
        };
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = crate::stop::shutdown_signal() => return Ok(ExitCode::SUCCESS),
        }
    }
}
