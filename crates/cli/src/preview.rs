//! `buildcat preview JOB [-o FILE]`: saves a job's newest frame preview (the small picture
//! its worker made of the last frame a task saved) to a file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use buildcat_proto::PreviewFormat;

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
        // An ended job gets no more: "try again later" would send the user waiting.
        let ended = client
            .job(job)
            .await
            .ok()
            .map(|status| status.job.state)
            .filter(|state| state.is_terminal());
        if let Some(state) = ended {
            anyhow::bail!(
                "job {} ended ({}) without a preview: none of its tasks saved a frame one can \
                 be made of (PNG, JPEG, TIFF or OpenEXR)",
                previews.number,
                state.as_str()
            );
        }
        anyhow::bail!(
            "job {} has no preview yet: one comes when a task of it saves a frame (PNG, JPEG, \
             TIFF or OpenEXR); try again later",
            previews.number
        );
    };
    if let Some(path) = &args.output {
        check_extension(path, newest.format)?;
    }
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

/// Refuses `-o FILE` whose extension names another format than the preview's: the image is
/// saved as the worker made it, never converted, and `p.png` holding JPEG data misleads
/// every program that opens it (tester finding 14). A name without an extension is taken
/// as it is.
fn check_extension(path: &Path, format: PreviewFormat) -> anyhow::Result<()> {
    let Some(extension) = path.extension().and_then(|e| e.to_str()) else {
        return Ok(());
    };
    let extension = extension.to_ascii_lowercase();
    let fits = match format {
        PreviewFormat::Jpeg => extension == "jpg" || extension == "jpeg",
        PreviewFormat::Png => extension == "png",
    };
    if fits {
        return Ok(());
    }
    anyhow::bail!(
        "-o {}: the preview is a {} image and is saved as it is, not converted; give a name \
         ending in .{} (or leave -o out)",
        path.display(),
        match format {
            PreviewFormat::Jpeg => "JPEG",
            PreviewFormat::Png => "PNG",
        },
        format.extension()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tester finding 14: `preview 4 -o p.png` wrote JPEG data into p.png.
    #[test]
    fn an_extension_of_another_format_is_refused() {
        let check = |name: &str, format| check_extension(Path::new(name), format);
        assert!(check("p.jpg", PreviewFormat::Jpeg).is_ok());
        assert!(check("p.JPEG", PreviewFormat::Jpeg).is_ok());
        assert!(check("p.png", PreviewFormat::Png).is_ok());
        assert!(check("p", PreviewFormat::Png).is_ok());
        let error = check("p.png", PreviewFormat::Jpeg).unwrap_err().to_string();
        assert_eq!(
            error,
            "-o p.png: the preview is a JPEG image and is saved as it is, not converted; give \
             a name ending in .jpg (or leave -o out)"
        );
        assert!(check("p.jpg", PreviewFormat::Png).is_err());
    }
}
