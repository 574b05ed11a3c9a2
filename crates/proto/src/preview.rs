//! Frame previews: a small picture of the last frame a render task saved, made by the worker
//! ([`FramePreview`], sent as [`Request::Preview`](crate::Request::Preview)) and kept by the
//! server for the job's page ([`PreviewInfo`], read with
//! [`Request::Previews`](crate::Request::Previews)).
//!
//! The server never decodes a preview: it checks only the sizes here
//! ([`FramePreview::check`]) and serves the bytes with their format's content type, so a
//! hostile worker can send a wrong picture but not a large one.

use serde::{Deserialize, Serialize};

use crate::job::{JobId, TaskId, Timestamp};

/// The longest side of a preview, in pixels: big enough for a job page's picture, small
/// enough that a JPEG of it is tens of KiB.
pub const MAX_PREVIEW_SIDE: u32 = 512;

/// The most bytes of one preview's image. A 512-pixel JPEG at quality 85 is 30-100 KiB and a
/// PNG with alpha rarely more than 200 KiB; this bounds what one message may make the server
/// hold, whatever the worker sends.
pub const MAX_PREVIEW_BYTES: usize = 256 << 10;

/// How a preview's image is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PreviewFormat {
    /// JPEG: frames without alpha.
    Jpeg,
    /// PNG: frames with alpha, which JPEG cannot keep.
    Png,
}

impl PreviewFormat {
    /// `jpeg` or `png`, as the JSON views say it.
    pub fn as_str(self) -> &'static str {
        match self {
            PreviewFormat::Jpeg => "jpeg",
            PreviewFormat::Png => "png",
        }
    }

    /// The HTTP content type of the image.
    pub fn content_type(self) -> &'static str {
        match self {
            PreviewFormat::Jpeg => "image/jpeg",
            PreviewFormat::Png => "image/png",
        }
    }

    /// `jpg` or `png`, for a file the image is saved to.
    pub fn extension(self) -> &'static str {
        match self {
            PreviewFormat::Jpeg => "jpg",
            PreviewFormat::Png => "png",
        }
    }
}

/// A worker's preview of a frame its task saved.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FramePreview {
    /// The task that saved the frame; the server keeps the preview with its job.
    pub task: TaskId,
    /// The attempt that saved it: only the current attempt's worker is listened to.
    pub attempt: u32,
    /// The frame number, for the page's caption.
    pub frame: i64,
    /// The image's width in pixels, as the worker says (the server does not decode it).
    pub width: u32,
    /// The image's height in pixels, as the worker says.
    pub height: u32,
    /// How `image` is encoded, which picks the content type it is served with.
    pub format: PreviewFormat,
    /// The encoded image.
    pub image: Vec<u8>,
}

impl std::fmt::Debug for FramePreview {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The image's size only: its bytes would fill a log.
        f.debug_struct("FramePreview")
            .field("task", &self.task)
            .field("attempt", &self.attempt)
            .field("frame", &self.frame)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("format", &self.format)
            .field("bytes", &self.image.len())
            .finish()
    }
}

impl FramePreview {
    /// Whether the preview is within the sizes every server takes: not empty, at most
    /// [`MAX_PREVIEW_BYTES`], each side from 1 to [`MAX_PREVIEW_SIDE`]; else what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.image.is_empty() {
            return Err("the preview's image is empty".to_owned());
        }
        if self.image.len() > MAX_PREVIEW_BYTES {
            return Err(format!(
                "the preview's image is {} bytes, over the {MAX_PREVIEW_BYTES} a server keeps; \
                 encode it smaller",
                self.image.len()
            ));
        }
        let sides = 1..=MAX_PREVIEW_SIDE;
        if !sides.contains(&self.width) || !sides.contains(&self.height) {
            return Err(format!(
                "the preview is {}x{} pixels; each side must be 1 to {MAX_PREVIEW_SIDE}",
                self.width, self.height
            ));
        }
        Ok(())
    }
}

/// A preview the server keeps, without its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewInfo {
    /// The task that saved the frame.
    pub task: TaskId,
    /// The frame number.
    pub frame: i64,
    /// Width in pixels, as the worker said.
    pub width: u32,
    /// Height in pixels, as the worker said.
    pub height: u32,
    /// How the image is encoded.
    pub format: PreviewFormat,
    /// The image's size in bytes.
    pub bytes: u32,
    /// When the server received it.
    pub at: Timestamp,
}

/// A job's previews, as [`Reply::Previews`](crate::Reply::Previews) carries them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPreviews {
    /// The job.
    pub job: JobId,
    /// Its number, so that a task can be named `42.3`.
    pub number: u64,
    /// The previews kept, newest first (empty until a task saved a frame).
    pub previews: Vec<PreviewInfo>,
    /// The newest preview's image, when it was asked for and there is one.
    pub latest: Option<Vec<u8>>,
}

impl std::fmt::Debug for JobPreviews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobPreviews")
            .field("job", &self.job)
            .field("number", &self.number)
            .field("previews", &self.previews)
            .field("latest", &self.latest.as_ref().map(Vec::len))
            .finish()
    }
}
