//! The byte encoding, and the only module that knows it.
//!
//! A frame is a 4-byte big-endian length followed by one bincode-encoded (2.0, standard
//! configuration, through serde) value that fills the frame exactly. Moving to another
//! encoding is a change to this file alone.
//!
//! Decoding is bounded twice: a length prefix above the configured maximum is refused before
//! anything is allocated, and bincode's byte limit stops a length claimed *inside* a frame
//! (a string, a vector) from allocating more than the frame could hold.

use std::io;
use std::marker::PhantomData;

use bincode::config::{Configuration, standard};
use bytes::{Buf, BufMut, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// The largest frame accepted unless configured otherwise: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// The largest frame size that may be configured: 1 GiB.
pub const MAX_FRAME_LIMIT: usize = 1 << 30;

/// How many times its own size a decoded message may claim to allocate.
const ALLOCATION_FACTOR: usize = 32;

/// The smallest decode limit, so small messages are never refused for their lists.
const MIN_DECODE_LIMIT: usize = 64 * 1024;

/// Bytes of the length prefix.
const PREFIX_LEN: usize = 4;

/// Why bytes could not be turned into a message, or a message into bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Reading or writing the connection failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A frame's length is above the limit; nothing was allocated for it.
    #[error("frame of {len} bytes is over the limit of {max} bytes")]
    FrameTooLarge {
        /// The length announced or produced.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The frame's bytes are not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The message ended before the frame did.
    #[error("malformed message: {trailing} unexpected bytes after a {used}-byte message")]
    TrailingBytes {
        /// Bytes the message used.
        used: usize,
        /// Bytes left over.
        trailing: usize,
    },
    /// The connection closed in the middle of a frame.
    #[error("connection closed in the middle of a frame ({buffered} bytes received)")]
    Truncated {
        /// Bytes received of the unfinished frame.
        buffered: usize,
    },
    /// A value could not be encoded.
    #[error("could not encode message: {0}")]
    Encode(String),
}

/// bincode's standard configuration: little-endian, variable-length integers.
fn config() -> Configuration {
    standard()
}

/// Encodes a value (task arguments, a task's output) to bytes.
pub fn encode_value<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// The number of bytes `value` takes encoded (a frame's body, without its length prefix),
/// counted without building the bytes: for a server that must keep each reply within a
/// frame.
pub fn encoded_len<T: Serialize>(value: &T) -> Result<usize, CodecError> {
    let mut counter = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(value, &mut counter, config())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(counter.bytes_written)
}

/// Decodes a value that must fill `bytes` exactly.
///
/// What the bytes may claim to allocate is checked against a limit of 32 to 128 times
/// `bytes.len()` (at least 64 KiB) before anything is allocated for it; serde's own
/// pre-allocation for sequences is capped separately at about 1 MiB.
pub fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    // bincode's limit counts what decoding may allocate, not bytes read: a list claims
    // `len * size_of::<T>()` up front (24 bytes per `String` however short), so a valid
    // frame of many short lines needs a limit well above its own size. The limit is a const
    // generic, so pick the smallest step of a ladder (powers of four) at or above
    // `ALLOCATION_FACTOR` times the input: the bound follows the input, and a small frame
    // can never claim a large allocation.
    let wanted = bytes
        .len()
        .saturating_mul(ALLOCATION_FACTOR)
        .max(MIN_DECODE_LIMIT);
    macro_rules! bounded {
        ($($shift:literal)*) => {
            $(
                if wanted <= 1usize << $shift {
                    let limited = config().with_limit::<{ 1usize << $shift }>();
                    return finish(bincode::serde::decode_from_slice(bytes, limited), bytes.len());
                }
            )*
        };
    }
    bounded!(16 18 20 22 24 26 28 30);
    #[cfg(target_pointer_width = "64")]
    bounded!(32 34 36);
    Err(CodecError::FrameTooLarge {
        len: bytes.len(),
        max: MAX_FRAME_LIMIT,
    })
}

fn finish<T>(
    decoded: Result<(T, usize), bincode::error::DecodeError>,
    len: usize,
) -> Result<T, CodecError> {
    let (value, used) = decoded.map_err(|e| CodecError::Malformed(e.to_string()))?;
    if used != len {
        return Err(CodecError::TrailingBytes {
            used,
            trailing: len - used,
        });
    }
    Ok(value)
}

/// Encodes one message as a whole frame, length prefix included.
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, CodecError> {
    let body = encode_value(message)?;
    let len = u32::try_from(body.len()).map_err(|_| CodecError::FrameTooLarge {
        len: body.len(),
        max: u32::MAX as usize,
    })?;
    let mut frame = Vec::with_capacity(PREFIX_LEN + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// A tokio-util codec that reads frames of `In` and writes frames of `Out`.
///
/// The server uses `FrameCodec<ClientFrame, ServerFrame>`; peers the reverse. The handshake
/// uses the same framing with [`Hello`](crate::Hello) and [`HelloReply`](crate::HelloReply);
/// switch types with [`FrameCodec::retype`].
pub struct FrameCodec<In, Out> {
    /// Splits the stream at length prefixes.
    framing: LengthDelimitedCodec,
    /// The body length of the frame being read, once `framing` has taken its prefix off the
    /// buffer; `None` while the next bytes are a prefix.
    body_len: Option<usize>,
    /// The largest frame accepted or sent.
    max_frame: usize,
    /// The codec holds no values of these types; it only names them.
    types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> std::fmt::Debug for FrameCodec<In, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameCodec")
            .field("max_frame", &self.max_frame)
            .finish()
    }
}

impl<In, Out> FrameCodec<In, Out> {
    /// A codec accepting frames up to `max_frame` bytes (at most [`MAX_FRAME_LIMIT`]).
    pub fn new(max_frame: usize) -> Self {
        let max_frame = max_frame.min(MAX_FRAME_LIMIT);
        let framing = LengthDelimitedCodec::builder()
            .length_field_length(PREFIX_LEN)
            .big_endian()
            .max_frame_length(max_frame)
            .new_codec();
        FrameCodec {
            framing,
            body_len: None,
            max_frame,
            types: PhantomData,
        }
    }

    /// The same framing for other message types (e.g. after the handshake).
    pub fn retype<In2, Out2>(self) -> FrameCodec<In2, Out2> {
        FrameCodec {
            framing: self.framing,
            body_len: self.body_len,
            max_frame: self.max_frame,
            types: PhantomData,
        }
    }

    /// The largest frame this codec accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }
}

impl<In: DeserializeOwned, Out> Decoder for FrameCodec<In, Out> {
    type Item = In;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, CodecError> {
        // `framing` takes the prefix off the buffer as soon as it has all four bytes, then
        // waits for the body; only while the next bytes are a prefix may they be read as one.
        if self.body_len.is_none() && src.len() >= PREFIX_LEN {
            let len = (&src[..PREFIX_LEN]).get_u32() as usize;
            if len > self.max_frame {
                // Refused before `framing` reserves room for the body.
                return Err(CodecError::FrameTooLarge {
                    len,
                    max: self.max_frame,
                });
            }
            self.body_len = Some(len);
        }
        match self.framing.decode(src)? {
            Some(frame) => {
                self.body_len = None;
                decode_value(&frame).map(Some)
            }
            None => Ok(None),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<In>, CodecError> {
        match self.decode(src)? {
            Some(message) => Ok(Some(message)),
            None if src.is_empty() && self.body_len.is_none() => Ok(None),
            None => {
                let prefix = if self.body_len.is_some() {
                    PREFIX_LEN
                } else {
                    0
                };
                Err(CodecError::Truncated {
                    buffered: src.len() + prefix,
                })
            }
        }
    }
}

impl<In, Out: Serialize> Encoder<Out> for FrameCodec<In, Out> {
    type Error = CodecError;

    fn encode(&mut self, message: Out, dst: &mut BytesMut) -> Result<(), CodecError> {
        let start = dst.len();
        dst.put_u32(0);
        let written = bincode::serde::encode_into_std_write(&message, &mut dst.writer(), config())
            .map_err(|e| CodecError::Encode(e.to_string()));
        let len = match written {
            Ok(len) => len,
            Err(e) => {
                dst.truncate(start);
                return Err(e);
            }
        };
        if len > self.max_frame {
            dst.truncate(start);
            return Err(CodecError::FrameTooLarge {
                len,
                max: self.max_frame,
            });
        }
        // `len` fits: max_frame is at most u32::MAX for a 4-byte prefix to carry it.
        let prefix = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
        dst[start..start + PREFIX_LEN].copy_from_slice(&prefix);
        Ok(())
    }
}
