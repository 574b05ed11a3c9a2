//! What a render tool's output says, read line by line while it runs: frames done, files
//! written, and lines that mean it failed whatever its exit code says.
//!
//! Each integration gives a [`RenderWatch`] its table of failure lines (each line cited in
//! that integration's file) and feeds it what it recognises in the output (a frame marker,
//! an image path, how far the current frame is). The first failure line seen becomes the
//! task's failure reason, also when the tool exits 0: mantra, husk and some Redshift
//! versions print a licence or write failure and still exit 0. Files written become the task's outputs (relative to the root
//! where they are under it), are reported with progress, and get a preview.

use std::path::Path;

use buildcat_proto::dcc::RenderReport;
use buildcat_proto::frames::FrameRange;
use buildcat_proto::{Failure, TaskProgress};

use super::{root_relative, written};
use crate::context::JobContext;
use crate::process::ProcessReport;

/// The first of `table` that `line` holds, if any: a failure line.
pub(super) fn failure_line(table: &[&str], line: &str) -> bool {
    table.iter().any(|text| line.contains(text))
}

/// The frame `index` (from 0) of half-open `ranges` in order, or `None` past their end;
/// computed, so that a long range costs nothing to hold.
pub(super) fn nth_frame(ranges: &[FrameRange], mut index: u64) -> Option<i64> {
    for range in ranges {
        if range.step < 1 || range.stop <= range.start {
            continue;
        }
        let count = range
            .stop
            .abs_diff(range.start)
            .div_ceil(range.step.unsigned_abs());
        if index < count {
            let offset = i64::try_from(index).ok()?.checked_mul(range.step)?;
            return range.start.checked_add(offset);
        }
        index -= count;
    }
    None
}

/// The extensions of the pictures a preview is made of; other outputs (geometry caches,
/// USD files) are listed, and get no preview attempt and its log line each frame.
const PICTURE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "tif", "tiff", "exr"];

/// Whether `path` names a picture a preview can be made of.
fn is_picture(path: &str) -> bool {
    Path::new(path)
        .extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| {
            PICTURE_EXTENSIONS
                .iter()
                .any(|known| known.eq_ignore_ascii_case(extension))
        })
}

/// A render's progress, outputs and failure lines, read from its output.
pub(super) struct RenderWatch<'a> {
    /// Where progress, previews and messages go.
    context: &'a JobContext,
    /// The task's frames, to name the frame a file belongs to for its preview.
    ranges: Vec<FrameRange>,
    /// Frames done.
    done: u32,
    /// Frames in the task.
    total: u32,
    /// How far the frame being rendered is (`ALF_PROGRESS`), so that a long frame shows
    /// movement; `None` until the tool says, and again once a frame ends.
    frame_percent: Option<u8>,
    /// Files written, in the order printed, each once.
    outputs: Vec<String>,
    /// Lines that mean the tool failed.
    failure_lines: &'static [&'static str],
    /// The first failure line printed, trimmed: the failure's reason.
    failed: Option<String>,
}

impl<'a> RenderWatch<'a> {
    /// A watch of a task of `total` frames (`ranges`, for previews), reported at 0 done.
    pub(super) fn new(
        context: &'a JobContext,
        total: u32,
        ranges: Vec<FrameRange>,
        failure_lines: &'static [&'static str],
    ) -> Self {
        let watch = RenderWatch {
            context,
            ranges,
            done: 0,
            total,
            frame_percent: None,
            outputs: Vec::new(),
            failure_lines,
            failed: None,
        };
        watch.report();
        watch
    }

    /// Notes `line` as the failure if it is the first failure line seen.
    pub(super) fn check(&mut self, line: &str) {
        if self.failed.is_none() && failure_line(self.failure_lines, line) {
            self.failed = Some(line.trim().to_owned());
        }
    }

    /// Notes a failure the integration recognised itself (a marker of its own code).
    pub(super) fn fail(&mut self, reason: String) {
        if self.failed.is_none() {
            self.failed = Some(reason);
        }
    }

    /// Counts one frame done (never past the total); the next frame has said nothing yet.
    pub(super) fn frame_done(&mut self) {
        if self.done < self.total {
            self.done += 1;
            self.frame_percent = None;
            self.report();
        }
    }

    /// Notes how far the frame being rendered is, in percent (above 100 is read as 100),
    /// unless every frame is done. Reported only when it changes; the reports are coalesced
    /// on the way to the server (see `JobContext::progress`), so a tool printing a line per
    /// percent costs nothing.
    pub(super) fn frame_progress(&mut self, percent: u32) {
        if self.done >= self.total {
            return;
        }
        let percent = u8::try_from(percent.min(100)).unwrap_or(100);
        if self.frame_percent != Some(percent) {
            self.frame_percent = Some(percent);
            self.report();
        }
    }

    /// Notes a file the tool says it wrote (as printed), and offers it for a preview as
    /// the frame being rendered.
    pub(super) fn output(&mut self, printed: &str) {
        let printed = printed.trim();
        if printed.is_empty() {
            return;
        }
        let relative = root_relative(&self.context.root, printed);
        if self.outputs.contains(&relative) {
            return;
        }
        self.outputs.push(relative);
        let current = u64::from(self.done.min(self.total.saturating_sub(1)));
        if let Some(frame) = nth_frame(&self.ranges, current).filter(|_| is_picture(printed)) {
            self.context.frame_saved(frame, Path::new(printed));
        }
        self.report();
    }

    /// Reports the progress so far.
    fn report(&self) {
        self.context.progress(TaskProgress {
            done: self.done,
            total: self.total,
            outputs: self.outputs.clone(),
            frame_percent: self.frame_percent,
        });
    }

    /// [`RenderWatch::finish`], then the files written checked (see `written.rs`): a file
    /// the tool said it wrote that is missing, empty or cut short fails the task.
    pub(super) async fn conclude(
        self,
        report: ProcessReport,
        program: &str,
    ) -> Result<RenderReport, Failure> {
        let root = self.context.root.clone();
        let result = self.finish(report, program)?;
        written::check_outputs(&root, program, &result.outputs).await?;
        Ok(result)
    }

    /// The task's end: a failure when the tool failed or printed a failure line (that line
    /// is then the reason), else every frame and the files written.
    pub(super) fn finish(
        self,
        report: ProcessReport,
        program: &str,
    ) -> Result<RenderReport, Failure> {
        let tail = report.tail.clone();
        match (report.into_failure(program), self.failed) {
            (Some(mut failure), Some(line)) => {
                failure.reason = format!("`{program}` failed: {line}");
                Err(failure)
            }
            (Some(failure), None) => Err(failure),
            (None, Some(line)) => Err(Failure {
                reason: format!("`{program}` failed: {line} (it exited 0 all the same)"),
                exit_code: Some(0),
                output_tail: tail,
                gpu_fault: None,
            }),
            (None, None) => Ok(RenderReport {
                frames: self.total,
                outputs: self.outputs,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_found_by_index_over_ranges() {
        let range = |start, stop, step| FrameRange { start, stop, step };
        let ranges = [range(1, 4, 1), range(10, 15, 2), range(-3, -2, 1)];
        let frames: Vec<Option<i64>> = (0..8).map(|n| nth_frame(&ranges, n)).collect();
        assert_eq!(
            frames,
            [
                Some(1),
                Some(2),
                Some(3),
                Some(10),
                Some(12),
                Some(14),
                Some(-3),
                None
            ]
        );
        assert_eq!(nth_frame(&[range(5, 1, 1)], 0), None);
        assert_eq!(nth_frame(&[range(0, i64::MAX, 1)], u64::MAX), None);
    }

    #[test]
    fn only_pictures_get_previews() {
        assert!(is_picture("/farm/render/a.0001.exr"));
        assert!(is_picture("render/a.0001.PNG"));
        assert!(!is_picture("/farm/geo/c.0001.bgeo.sc"));
        assert!(!is_picture("/farm/usd/a.usd"));
        assert!(!is_picture("/farm/render/noext"));
    }

    #[test]
    fn failure_lines_match_anywhere_in_the_line() {
        let table = ["No licenses could be found", "Failed to create file"];
        assert!(failure_line(
            &table,
            "mantra: No licenses could be found to run this application"
        ));
        assert!(failure_line(&table, "Failed to create file \"/x.exr\""));
        assert!(!failure_line(&table, "Generating Image: /x.exr (640x480)"));
    }
}
