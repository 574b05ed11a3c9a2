//! Any bytes a peer can send, through the frame decoder every side of the protocol uses: it
//! may refuse them, but never panic, hang or allocate past its limits.
#![no_main]

use buildcat_proto::{ClientFrame, FrameCodec, Hello, HelloReply, ServerFrame};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use tokio_util::codec::Decoder;

/// The frame limit the fuzzer runs with: small, so that a length prefix within it is often
/// met by the bytes that follow, and decoding goes past the prefix check.
const MAX_FRAME: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    // What a server reads (hellos, then client frames) and what clients and workers read.
    decode_all::<Hello>(data);
    decode_all::<ClientFrame>(data);
    decode_all::<HelloReply>(data);
    decode_all::<ServerFrame>(data);
});

/// Decodes frames of type `T` from `data` until the codec wants more bytes or refuses them.
fn decode_all<T: DeserializeOwned>(data: &[u8]) {
    let mut codec = FrameCodec::<T, ()>::new(MAX_FRAME);
    let mut buffer = BytesMut::from(data);
    while let Ok(Some(_)) = codec.decode(&mut buffer) {}
    let _ = codec.decode_eof(&mut buffer);
}
