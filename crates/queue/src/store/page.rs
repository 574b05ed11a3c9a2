//! A page of task output put together from stored chunks, the same way for every store:
//! each store reads the chunk at or before the page's start and the chunks after it, and
//! [`fill`] turns them into a [`LogPage`] that holds whole lines, never spans a gap and says
//! what was dropped just before it.

use buildcat_proto::{DroppedOutput, LogPage};

use super::StoreError;

/// One stored chunk of a task's output, as read.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// Its first byte, so pieces of it are placed in the task's output.
    pub(crate) offset: u64,
    /// The number of its first line, so a gap before it can say how many lines went.
    pub(crate) line: u64,
    /// How many lines it holds, so the line count after it is known.
    pub(crate) lines: u64,
    /// The lines, each followed by a newline.
    pub(crate) text: Vec<u8>,
    /// The indexes of its lines that were stderr, ascending (empty: all stdout).
    pub(crate) stderr: Vec<u32>,
}

/// Bytes of one stored stderr line index.
const INDEX_BYTES: usize = 4;

/// The stderr line indexes of a chunk as stored (4-byte little-endian each), or `None` for
/// a chunk of stdout only, which stores nothing.
pub(crate) fn stderr_to_bytes(stderr: &[u32]) -> Option<Vec<u8>> {
    (!stderr.is_empty()).then(|| {
        stderr
            .iter()
            .flat_map(|index| index.to_le_bytes())
            .collect()
    })
}

/// The stderr line indexes of a stored chunk; stored bytes whose length is not a whole
/// number of indexes are damaged, and their whole indexes are kept.
pub(crate) fn stderr_from_bytes(bytes: Option<Vec<u8>>) -> Vec<u32> {
    bytes
        .unwrap_or_default()
        .chunks_exact(INDEX_BYTES)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

impl Chunk {
    /// Where the next chunk starts.
    fn end(&self) -> u64 {
        self.offset + self.text.len() as u64
    }
}

/// A page being filled.
struct Filling {
    /// The page so far.
    page: LogPage,
    /// Bytes of lines taken, against `max_bytes`.
    used: usize,
    /// The most bytes to take (at least one line is taken regardless).
    max_bytes: usize,
}

impl Filling {
    /// Takes the lines of `chunk` that start at or after `from`, until the page is full;
    /// returns whether it is.
    fn take(&mut self, chunk: &Chunk, from: u64) -> bool {
        let mut start = chunk.offset;
        for (index, piece) in (0u32..).zip(chunk.text.split_inclusive(|byte| *byte == b'\n')) {
            let line_start = start;
            start += piece.len() as u64;
            if line_start < from {
                continue;
            }
            if !self.page.lines.is_empty() && self.used + piece.len() > self.max_bytes {
                return true;
            }
            if self.page.lines.is_empty() {
                self.page.offset = line_start;
            }
            if chunk.stderr.binary_search(&index).is_ok()
                && let Ok(at) = u32::try_from(self.page.lines.len())
            {
                self.page.stderr.push(at);
            }
            let text = piece.strip_suffix(b"\n").unwrap_or(piece);
            self.page
                .lines
                .push(String::from_utf8_lossy(text).into_owned());
            self.used += piece.len();
            self.page.next = start;
        }
        false
    }
}

/// Up to about `max_bytes` of output from byte `from`, from `before` (the latest chunk that
/// starts at or before `from`, if any) and `after` (the chunks that start after `from`, in
/// order, read one at a time so a store stops reading once the page is full): see
/// [`Store::read_output`](crate::store::Store::read_output).
pub(crate) fn fill(
    from: u64,
    max_bytes: usize,
    before: Option<Chunk>,
    mut after: impl FnMut() -> Result<Option<Chunk>, StoreError>,
) -> Result<LogPage, StoreError> {
    let mut filling = Filling {
        page: LogPage::empty_at(from),
        used: 0,
        max_bytes,
    };
    // Where the output read so far ends, and how many lines came before that point.
    let mut position = from;
    let mut line_at = 0;
    if let Some(chunk) = before {
        line_at = chunk.line + chunk.lines;
        if chunk.end() > from {
            if filling.take(&chunk, from) {
                return Ok(filling.page);
            }
            position = chunk.end();
        }
    }
    while let Some(chunk) = after()? {
        if chunk.offset > position {
            if !filling.page.lines.is_empty() {
                // The next page starts with the gap, so the reader can mark it in place.
                break;
            }
            filling.page.dropped = Some(DroppedOutput {
                bytes: chunk.offset - position,
                lines: chunk.line.saturating_sub(line_at),
            });
        }
        if filling.take(&chunk, chunk.offset) {
            break;
        }
        position = chunk.end();
        line_at = chunk.line + chunk.lines;
    }
    Ok(filling.page)
}
