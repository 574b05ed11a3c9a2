//! Frame previews: a small picture of each frame a task saves, for the job's page.
//!
//! A handler says a frame was saved ([`JobContext::frame_saved`](crate::JobContext::frame_saved));
//! the loop's [`PreviewSlot`] makes the preview on a thread of its own, so the task never
//! waits for it, and hands it to the worker loop, which sends it as `Request::Preview`.
//! Only the newest frame matters: a slot holds at most one frame waiting to be made and one
//! preview waiting to be sent, and a newer one replaces either (a burst of fast frames
//! makes one preview of the last, not a backlog).
//!
//! Making one ([`make`]): the file is decoded with the `image` crate (PNG, JPEG, TIFF,
//! OpenEXR) under [`image::Limits`], shrunk to [`MAX_PREVIEW_SIDE`] pixels on its longest
//! side, and encoded as JPEG (quality [`JPEG_QUALITY`]), or PNG where the frame has alpha
//! that is not all opaque. Floating-point frames (OpenEXR) hold scene-linear light, which
//! would clip to white: they are tone-mapped per channel with Reinhard's curve `x / (1 + x)`
//! (no light clips, mid-grey 0.18 shows as about 0.15 linear) and then encoded with the sRGB
//! transfer curve, as a viewer shows them. A file that is too large, unreadable or in
//! another format gets no preview and a log line, in the worker's log and the task's output;
//! the task is never failed for it.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use buildcat_proto::{FramePreview, MAX_PREVIEW_BYTES, MAX_PREVIEW_SIDE, PreviewFormat};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{DynamicImage, ImageEncoder, ImageFormat, ImageReader, Limits, RgbImage, RgbaImage};
use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::context::JobContext;

/// The largest file a preview is made of: a frame bigger than this (a huge multilayer EXR)
/// would cost the worker more memory and time than a picture on a page is worth.
pub(crate) const MAX_SOURCE_BYTES: u64 = 256 << 20;

/// The widest or tallest frame a preview is made of, in pixels: 16k covers every film and
/// print resolution, and bounds the decode before any pixel is read.
pub(crate) const MAX_SOURCE_SIDE: u32 = 16 * 1024;

/// The most memory one decode may allocate: a 16k RGB frame of 8 bits, or an 8k RGBA float
/// frame, fits; more is refused by the decoder before it allocates.
const MAX_DECODE_BYTES: u64 = 1 << 30;

/// JPEG quality of a preview: no visible blocks at 512 pixels, tens of KiB a frame.
pub(crate) const JPEG_QUALITY: u8 = 85;

/// Lower qualities tried, in turn, when a preview does not fit in [`MAX_PREVIEW_BYTES`] (a
/// frame of fine noise).
const FALLBACK_QUALITIES: &[u8] = &[60, 35];

/// The grey a PNG preview too big to send is flattened on before it is sent as JPEG.
const FLATTEN_GREY: f32 = 0.5;

/// A saved frame to make a preview of.
#[derive(Debug)]
pub(crate) struct Source {
    /// The task that saved it, for its label and its log.
    pub(crate) context: JobContext,
    /// The frame number.
    pub(crate) frame: i64,
    /// The file, absolute, under the root.
    pub(crate) path: PathBuf,
}

/// One worker loop's previews on their way out.
#[derive(Debug, Default)]
pub(crate) struct PreviewSlot {
    /// What waits, behind a lock the making thread and the loop share.
    state: Mutex<SlotState>,
    /// Woken when a preview is ready to send.
    ready: Notify,
}

/// The part of [`PreviewSlot`] behind its lock.
#[derive(Debug, Default)]
struct SlotState {
    /// The newest frame saved and not yet being made.
    wanted: Option<Source>,
    /// Whether a thread is making previews (it takes `wanted` until there is none).
    making: bool,
    /// The newest preview made and not yet taken to be sent.
    ready: Option<FramePreview>,
}

impl PreviewSlot {
    /// Asks for a preview of `source`, replacing any frame still waiting; starts a thread to
    /// make it unless one is at work (it takes this one next).
    pub(crate) fn offer(self: &Arc<Self>, source: Source) {
        {
            let mut state = self.lock();
            if let Some(older) = state.wanted.replace(source) {
                debug!(task = %older.context.label, frame = older.frame, "a newer frame replaced one waiting for its preview");
            }
            if state.making {
                return;
            }
            state.making = true;
        }
        let slot = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("buildcat-preview".to_owned())
            .spawn(move || slot.make_waiting());
        if let Err(error) = spawned {
            warn!(error = %error, "cannot start a thread to make frame previews; none are made");
            let mut state = self.lock();
            state.making = false;
            state.wanted = None;
        }
    }

    /// Makes previews of what is wanted until nothing is.
    fn make_waiting(&self) {
        loop {
            let source = {
                let mut state = self.lock();
                match state.wanted.take() {
                    Some(source) => source,
                    None => {
                        state.making = false;
                        return;
                    }
                }
            };
            let context = &source.context;
            match make(&source.path) {
                Ok(made) => {
                    debug!(task = %context.label, frame = source.frame, bytes = made.image.len(), "made a frame preview");
                    let preview = FramePreview {
                        task: context.task,
                        attempt: context.attempt,
                        frame: source.frame,
                        width: made.width,
                        height: made.height,
                        format: made.format,
                        image: made.image,
                    };
                    self.lock().ready = Some(preview);
                    self.ready.notify_one();
                }
                Err(reason) => {
                    let file = source.path.display();
                    warn!(task = %context.label, frame = source.frame, file = %file, reason = %reason, "no preview of the frame");
                    context.log(format!(
                        "buildcat: no preview of frame {} ({file}): {reason}",
                        source.frame
                    ));
                }
            }
        }
    }

    /// Waits for a preview to send and takes it. Cancel-safe: a preview is taken only when
    /// it is returned.
    pub(crate) async fn ready(&self) -> FramePreview {
        loop {
            if let Some(preview) = self.lock().ready.take() {
                return preview;
            }
            self.ready.notified().await;
        }
    }

    /// The lock, also after a panic elsewhere (what it guards stays consistent).
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A preview made of a frame.
#[derive(Debug)]
pub(crate) struct Made {
    /// Width in pixels.
    pub(crate) width: u32,
    /// Height in pixels.
    pub(crate) height: u32,
    /// How `image` is encoded.
    pub(crate) format: PreviewFormat,
    /// The encoded image, at most [`MAX_PREVIEW_BYTES`].
    pub(crate) image: Vec<u8>,
}

/// Makes a preview of the image file at `path`, or says why not.
pub(crate) fn make(path: &Path) -> Result<Made, String> {
    let size = std::fs::metadata(path)
        .map_err(|error| format!("cannot read the file: {error}"))?
        .len();
    if size > MAX_SOURCE_BYTES {
        return Err(format!(
            "the file is {size} bytes, over the {MAX_SOURCE_BYTES} a preview is made of"
        ));
    }
    let reader = ImageReader::open(path)
        .map_err(|error| format!("cannot open the file: {error}"))?
        .with_guessed_format()
        .map_err(|error| format!("cannot read the file: {error}"))?;
    match reader.format() {
        Some(ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Tiff | ImageFormat::OpenExr) => {}
        Some(other) => {
            return Err(format!(
                "its format ({other:?}) is not one previews are made of (PNG, JPEG, TIFF, OpenEXR)"
            ));
        }
        None => {
            return Err(
                "it is not an image previews are made of (PNG, JPEG, TIFF, OpenEXR)".to_owned(),
            );
        }
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SOURCE_SIDE);
    limits.max_image_height = Some(MAX_SOURCE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = reader;
    reader.limits(limits);
    let decoded = reader
        .decode()
        .map_err(|error| format!("cannot decode it: {error}"))?;
    encode(&display(shrink(decoded)))
}

/// `image` with its longest side at most [`MAX_PREVIEW_SIDE`], keeping its proportions.
fn shrink(image: DynamicImage) -> DynamicImage {
    if image.width().max(image.height()) <= MAX_PREVIEW_SIDE {
        return image;
    }
    image.thumbnail(MAX_PREVIEW_SIDE, MAX_PREVIEW_SIDE)
}

/// The picture as a screen shows it: 8 bits per channel, with alpha only where some pixel
/// is not opaque. Floating-point (scene-linear) images are tone-mapped (see the module doc).
fn display(image: DynamicImage) -> DynamicImage {
    let linear = matches!(
        image,
        DynamicImage::ImageRgb32F(_) | DynamicImage::ImageRgba32F(_)
    );
    let alpha = image.color().has_alpha();
    let picture = if linear {
        let mut pixels = image.into_rgba32f();
        for pixel in pixels.pixels_mut() {
            for channel in &mut pixel.0[..3] {
                *channel = srgb(reinhard(*channel));
            }
        }
        DynamicImage::ImageRgba32F(pixels).into_rgba8()
    } else {
        image.into_rgba8()
    };
    if alpha && picture.pixels().any(|pixel| pixel.0[3] < u8::MAX) {
        DynamicImage::ImageRgba8(picture)
    } else {
        DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(picture).into_rgb8())
    }
}

/// Reinhard's tone curve: linear light from 0 up to any brightness into 0 to 1, without
/// clipping highlights. NaN and negative values (which renders can hold) become 0.
fn reinhard(linear: f32) -> f32 {
    if linear.is_nan() || linear <= 0.0 {
        return 0.0;
    }
    if linear.is_infinite() {
        return 1.0;
    }
    linear / (1.0 + linear)
}

/// The sRGB transfer curve (IEC 61966-2-1): linear 0 to 1 into the values screens expect.
fn srgb(linear: f32) -> f32 {
    let linear = linear.clamp(0.0, 1.0);
    if linear <= 0.003_130_8 {
        linear * 12.92
    } else {
        1.055 * linear.powf(1.0 / 2.4) - 0.055
    }
}

/// Encodes `picture` (8 bits, RGB or RGBA) as a preview within [`MAX_PREVIEW_BYTES`]: PNG
/// if it has alpha and fits, else JPEG at the best quality that fits.
fn encode(picture: &DynamicImage) -> Result<Made, String> {
    let (width, height) = (picture.width(), picture.height());
    let made = |format, image| Made {
        width,
        height,
        format,
        image,
    };
    let rgb = match picture {
        DynamicImage::ImageRgba8(rgba) => {
            let png = png(rgba)?;
            if png.len() <= MAX_PREVIEW_BYTES {
                return Ok(made(PreviewFormat::Png, png));
            }
            flatten(rgba)
        }
        other => other.to_rgb8(),
    };
    for quality in std::iter::once(JPEG_QUALITY).chain(FALLBACK_QUALITIES.iter().copied()) {
        let jpeg = jpeg(&rgb, quality)?;
        if jpeg.len() <= MAX_PREVIEW_BYTES {
            return Ok(made(PreviewFormat::Jpeg, jpeg));
        }
    }
    Err(format!(
        "its preview does not fit in {MAX_PREVIEW_BYTES} bytes even at JPEG quality {}",
        FALLBACK_QUALITIES.last().copied().unwrap_or(JPEG_QUALITY)
    ))
}

/// `rgba` as PNG.
fn png(rgba: &RgbaImage) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    PngEncoder::new(Cursor::new(&mut bytes))
        .write_image(
            rgba.as_raw(),
            rgba.width(),
            rgba.height(),
            image::ExtendedColorType::Rgba8,
        )
        .map_err(|error| format!("cannot encode its preview as PNG: {error}"))?;
    Ok(bytes)
}

/// `rgb` as JPEG of `quality`.
fn jpeg(rgb: &RgbImage, quality: u8) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(Cursor::new(&mut bytes), quality)
        .write_image(
            rgb.as_raw(),
            rgb.width(),
            rgb.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|error| format!("cannot encode its preview as JPEG: {error}"))?;
    Ok(bytes)
}

/// `rgba` laid over [`FLATTEN_GREY`], for a JPEG.
fn flatten(rgba: &RgbaImage) -> RgbImage {
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let alpha = f32::from(a) / 255.0;
        let over = |channel: u8| {
            let value = f32::from(channel) * alpha + FLATTEN_GREY * 255.0 * (1.0 - alpha);
            // Within 0..=255 by construction.
            value.round().clamp(0.0, 255.0) as u8
        };
        image::Rgb([over(r), over(g), over(b)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb, Rgba};

    fn saved(dir: &Path, name: &str, image: &DynamicImage, format: ImageFormat) -> PathBuf {
        let path = dir.join(name);
        image
            .save_with_format(&path, format)
            .expect("the test image saves");
        path
    }

    fn decoded(made: &Made) -> DynamicImage {
        image::load_from_memory(&made.image).expect("the preview decodes")
    }

    #[test]
    fn a_large_png_becomes_a_jpeg_of_512_pixels_on_its_longest_side() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let frame = ImageBuffer::from_fn(1920, 1080, |x, y| {
            Rgb([(x % 256) as u8, (y % 256) as u8, 128u8])
        });
        let path = saved(
            dir.path(),
            "f.png",
            &DynamicImage::ImageRgb8(frame),
            ImageFormat::Png,
        );
        let made = make(&path).expect("a preview");
        assert_eq!((made.width, made.height), (512, 288));
        assert_eq!(made.format, PreviewFormat::Jpeg);
        assert!(made.image.len() <= MAX_PREVIEW_BYTES);
        let back = decoded(&made);
        assert_eq!((back.width(), back.height()), (512, 288));
    }

    #[test]
    fn an_opaque_rgba_frame_is_a_jpeg_and_transparency_a_png() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let opaque = ImageBuffer::from_pixel(64, 48, Rgba([10u8, 20, 30, 255]));
        let path = saved(
            dir.path(),
            "o.png",
            &DynamicImage::ImageRgba8(opaque),
            ImageFormat::Png,
        );
        assert_eq!(make(&path).expect("a preview").format, PreviewFormat::Jpeg);
        let clear = ImageBuffer::from_fn(64, 48, |x, _| Rgba([200u8, 20, 30, (x * 4) as u8]));
        let path = saved(
            dir.path(),
            "c.png",
            &DynamicImage::ImageRgba8(clear),
            ImageFormat::Png,
        );
        let made = make(&path).expect("a preview");
        assert_eq!(
            (made.format, made.width, made.height),
            (PreviewFormat::Png, 64, 48)
        );
        assert!(decoded(&made).color().has_alpha());
    }

    #[test]
    fn exr_light_is_tone_mapped_not_clipped() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        // Left half 0.18 (mid grey), right half 16 (a light far over 1).
        let frame = ImageBuffer::from_fn(64, 32, |x, _| {
            let light = if x < 32 { 0.18f32 } else { 16.0 };
            Rgba([light, light, light, 1.0])
        });
        let path = saved(
            dir.path(),
            "f.exr",
            &DynamicImage::ImageRgba32F(frame),
            ImageFormat::OpenExr,
        );
        let made = make(&path).expect("a preview");
        assert_eq!(made.format, PreviewFormat::Jpeg);
        let back = decoded(&made).into_rgb8();
        let grey = back.get_pixel(8, 16).0[0];
        let light = back.get_pixel(56, 16).0[0];
        // sRGB(0.18 / 1.18) is about 0.43 (110 of 255); 16 / 17 is about 0.97 (251).
        assert!((100..=120).contains(&grey), "mid grey shows as {grey}");
        assert!(
            (240..=254).contains(&light),
            "a bright light shows as {light}"
        );
    }

    #[test]
    fn tiff_and_jpeg_frames_get_previews() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let frame = DynamicImage::ImageRgb8(ImageBuffer::from_pixel(600, 600, Rgb([1u8, 2, 3])));
        for (name, format) in [("f.tif", ImageFormat::Tiff), ("f.jpg", ImageFormat::Jpeg)] {
            let path = saved(dir.path(), name, &frame, format);
            let made = make(&path).expect("a preview");
            assert_eq!((made.width, made.height), (512, 512), "{name}");
        }
    }

    #[test]
    fn garbage_and_missing_files_say_why_there_is_no_preview() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("f.png");
        std::fs::write(&path, b"\x89PNG\r\n\x1a\n but not really").expect("written");
        let reason = make(&path).expect_err("no preview");
        assert!(reason.starts_with("cannot decode it"), "{reason}");
        let path = dir.path().join("f.bin");
        std::fs::write(&path, [7u8; 100]).expect("written");
        let reason = make(&path).expect_err("no preview");
        assert!(reason.contains("not an image"), "{reason}");
        let reason = make(&dir.path().join("gone.png")).expect_err("no preview");
        assert!(reason.starts_with("cannot read the file"), "{reason}");
    }

    #[test]
    fn frames_over_the_pixel_bound_are_refused_before_decoding() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        // 20,000 pixels wide: refused by the decoder's limits, whatever its size in bytes.
        let frame = DynamicImage::ImageRgb8(ImageBuffer::from_pixel(20_000, 1, Rgb([0u8, 0, 0])));
        let path = saved(dir.path(), "wide.png", &frame, ImageFormat::Png);
        let reason = make(&path).expect_err("no preview");
        assert!(reason.starts_with("cannot decode it"), "{reason}");
    }

    #[test]
    fn the_tone_curves_stay_in_range() {
        assert_eq!(reinhard(f32::NAN), 0.0);
        assert_eq!(reinhard(-1.0), 0.0);
        assert_eq!(reinhard(f32::INFINITY), 1.0);
        assert!((reinhard(1.0) - 0.5).abs() < 1e-6);
        assert_eq!(srgb(0.0), 0.0);
        assert!((srgb(1.0) - 1.0).abs() < 1e-6);
    }

    #[tokio::test]
    async fn only_the_newest_frame_waits_and_a_bad_one_is_logged_in_the_task() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let frame = DynamicImage::ImageRgb8(ImageBuffer::from_pixel(32, 16, Rgb([9u8, 9, 9])));
        let good = saved(dir.path(), "good.png", &frame, ImageFormat::Png);
        let bad = dir.path().join("bad.png");
        std::fs::write(&bad, b"garbage").expect("written");
        let job: buildcat_proto::JobId = "019000c7-9c00-7c4e-8f00-123456789abc"
            .parse()
            .expect("a job id");
        let task = buildcat_proto::TaskId::new(job, 3);
        let (context, monitor) = JobContext::new(task, 2, "default", dir.path(), "w").monitored();
        let slot = Arc::new(PreviewSlot::default());
        slot.offer(Source {
            context: context.clone(),
            frame: 1,
            path: bad,
        });
        slot.offer(Source {
            context: context.clone(),
            frame: 2,
            path: good,
        });
        let preview = tokio::time::timeout(std::time::Duration::from_secs(60), slot.ready())
            .await
            .expect("a preview within a minute");
        assert_eq!((preview.task, preview.attempt, preview.frame), (task, 2, 2));
        assert_eq!((preview.width, preview.height), (32, 16));
        // Frame 1 was either replaced before it was made or failed with a line in the log.
        let lines = monitor.take_lines();
        assert!(
            lines
                .iter()
                .all(|line| line.starts_with("buildcat: no preview of frame 1")),
            "{lines:?}"
        );
    }
}
