//! The task type shared by the examples: a submission tool (`submit_batch`) and a worker
//! that runs it (`custom_worker`) agree on it by depending on the same definition.

use buildcat_proto::Task;
use serde::{Deserialize, Serialize};

/// Checksums a file on the shared storage: a stand-in for a studio's own job kind (a
/// thumbnail, a cache bake, a checksum of rendered frames before delivery).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checksum {
    /// The file, relative to the farm root.
    pub path: String,
}

/// What the worker reports for one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChecksumReport {
    /// The file, as submitted.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its 64-bit FNV-1a hash.
    pub fnv1a: u64,
    /// The worker that read it.
    pub worker: String,
}

impl Task for Checksum {
    const KIND: &'static str = "examples.checksum";
    type Output = ChecksumReport;
}

/// The 64-bit FNV-1a hash of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `host:port` of the server: the first argument, or BUILDCAT_HOST and BUILDCAT_PORT, or
/// 127.0.0.1:2228.
pub fn server_address(argument: Option<&str>) -> String {
    if let Some(address) = argument {
        return address.to_owned();
    }
    let host = std::env::var("BUILDCAT_HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port =
        std::env::var("BUILDCAT_PORT").unwrap_or_else(|_| buildcat_proto::DEFAULT_PORT.to_string());
    format!("{host}:{port}")
}
