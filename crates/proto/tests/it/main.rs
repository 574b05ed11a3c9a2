//! Integration tests of `buildcat-proto`: the pinned wire format, the frame codec's
//! robustness, the handshake and the job types' text forms.
//!
//! Shared helpers (hex, fixed ids and timestamps) live here; each module tests one area.

mod codec;
mod golden;
mod handshake;
mod job;

use buildcat_proto::{JobId, TaskId, Timestamp};

/// A fixed job id: a UUID v7 made at [`T0`].
pub const JOB_A: JobId = JobId(uuid::Uuid::from_u128(
    0x0190_00c7_9c00_7c4e_8f00_1234_5678_9abc,
));

/// A second fixed job id: a UUID v7 made at [`T1`].
pub const JOB_B: JobId = JobId(uuid::Uuid::from_u128(
    0x0190_00c7_cc39_7000_9a11_2233_4455_6677,
));

/// Task 1 of [`JOB_A`], a render of two tasks (job 41 in the goldens).
pub const TASK_A: TaskId = TaskId {
    job: JOB_A,
    index: 1,
};

/// The only task of [`JOB_B`] (job 42 in the goldens).
pub const TASK_B: TaskId = TaskId {
    job: JOB_B,
    index: 0,
};

/// 2024-06-10T06:13:20Z, in milliseconds since the epoch.
pub const T0: Timestamp = Timestamp(1_718_000_000_000);

/// 12.345 s after [`T0`].
pub const T1: Timestamp = Timestamp(1_718_000_012_345);

/// Lowercase hex, two digits a byte, no separators.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// Bytes from hex digits; whitespace between digits is ignored so goldens can be laid out.
pub fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => panic!("not a hex digit: {:?}", b as char),
        })
        .collect();
    assert_eq!(digits.len() % 2, 0, "odd number of hex digits in {text:?}");
    digits
        .chunks(2)
        .map(|pair| pair[0] << 4 | pair[1])
        .collect()
}

/// Wraps an encoded body in a frame: 4-byte big-endian length, then the body.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("test bodies are small");
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[test]
fn hex_helpers_round_trip() {
    assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    assert_eq!(unhex("00 0f\nA5ff"), vec![0x00, 0x0f, 0xa5, 0xff]);
    assert_eq!(frame(&[7, 8]), vec![0, 0, 0, 2, 7, 8]);
}
