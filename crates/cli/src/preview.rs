//! `buildcat preview JOB [-o FILE]`: saves a job's newest frame preview (the small picture
//! its worker made of the last frame a task saved) to a file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::args::PreviewArgs;
use crate::jobs::parse_job;

/// `buildcat preview JOB [-o FILE]`.
pub async fn preview(args: PreviewArgs) -> anyhow::Result<ExitCode> {
    let job = parse_job(&args.job)?;
    let client = args.connection.connect().await?;
    let previews = client
        .previews(job, true)
        .await
        .with_context(|| format!("could not read the previews of job {}", args.job))?;
    let (Some(newest), Some(image)) = (previews.previews.first(), previews.latest) else {
        anyhow::bail!(
            "job {} has no preview yet: one comes when a task of it saves a frame (PNG, JPEG, \
             TIFF or OpenEXR); try again later",
            previews.number
        );
    };
    let path = args.output.unwrap_or_else(|| {
        PathBuf::from(format!(
            "preview-{}.{}",
            previews.number,
            newest.format.extension()
        ))
    });
    std::fs::write(&path, &image)
        .with_context(|| format!("could not write the preview to {}", path.display()))?;
    outln!(
        "frame {} of task {}.{} ({}x{} {}) saved to {}",
        newest.frame,
        previews.number,
        newest.task.index,
        newest.width,
        newest.height,
        newest.format.as_str(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
