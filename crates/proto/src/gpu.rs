//! GPUs: what a worker slot has ([`Gpu`]) and what a job needs ([`GpuRequirement`]).
//!
//! A worker lists its host's GPUs at start (NVML for NVIDIA, the DRM sysfs entries or
//! `rocm-smi` for AMD), keeps the ones `--gpus` names, and gives each of its slots its own
//! share (`--gpus-per-slot`). Each slot registers the GPUs it owns; the server sends a job
//! that requires GPUs only to a slot whose GPUs meet the requirement.

use serde::{Deserialize, Serialize};

/// The most GPUs a worker slot may register: more than any host carries (16 per node on
/// the largest systems), small enough that a peer cannot make every `info` reply huge.
pub const MAX_GPUS: usize = 64;

/// The most bytes a GPU's UUID, name or driver text may have: NVML's own buffers are 80
/// bytes (`NVML_DEVICE_UUID_V2_BUFFER_SIZE`, `NVML_DEVICE_NAME_V2_BUFFER_SIZE`); a longer
/// one is a peer's mistake or abuse.
pub const MAX_GPU_TEXT: usize = 256;

/// The most GPUs a job may require: no slot can own more than [`MAX_GPUS`].
pub const MAX_GPUS_REQUIRED: u32 = MAX_GPUS as u32;

/// Who made a GPU and which API the worker read it through, so the worker sets the right
/// visible-devices variable and renderer device flag for it.
///
/// JSON spells it as [`GpuVendor::as_str`] does (`nvidia`); the wire encodes the variant's
/// position, so the spelling does not touch the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuVendor {
    /// NVIDIA, read through NVML; CUDA and OptiX devices.
    Nvidia,
    /// AMD, read through `rocm-smi` or the DRM sysfs entries; HIP devices.
    Amd,
    /// Declared with `--gpus` on a host where nothing detected it: the worker knows its
    /// index only.
    Unknown,
}

impl GpuVendor {
    /// `nvidia`, `amd` or `unknown`: the JSON and `info` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            GpuVendor::Nvidia => "nvidia",
            GpuVendor::Amd => "amd",
            GpuVendor::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for GpuVendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One GPU of a worker's host, as the worker detected it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Gpu {
    /// Its index on the host, as the vendor's tools number it (`nvidia-smi`'s index, the
    /// CUDA index when `CUDA_DEVICE_ORDER=PCI_BUS_ID`): what `--gpus 0,2` names and what a
    /// renderer's device flag takes.
    pub index: u32,
    /// Its UUID as the vendor's API reports it (`GPU-5f3c...` from NVML); empty when not
    /// known. `CUDA_VISIBLE_DEVICES` names GPUs by it, so a reordering of indices cannot
    /// give a slot another slot's GPU.
    pub uuid: String,
    /// Its product name, e.g. `NVIDIA H200`; empty when not known.
    pub name: String,
    /// Its memory in MiB (2^20 bytes); 0 when not known (then no memory requirement is met).
    pub memory_mib: u64,
    /// The driver version, e.g. `550.54.15`; empty when not known.
    pub driver: String,
    /// Who made it, which decides the visible-devices variable.
    pub vendor: GpuVendor,
}

impl Gpu {
    /// Whether every text is within [`MAX_GPU_TEXT`] bytes: what a server checks before it
    /// keeps a peer's GPUs.
    pub fn is_within_limits(&self) -> bool {
        [&self.uuid, &self.name, &self.driver]
            .iter()
            .all(|text| text.len() <= MAX_GPU_TEXT)
    }
}

/// What a job needs of the slot that runs its tasks: `count` GPUs, each with at least
/// `memory_mib` MiB. The default (0 GPUs) runs anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct GpuRequirement {
    /// How many GPUs (`--gpus N`; `--gpu` is 1); 0 for none.
    pub count: u32,
    /// The least memory each of them must have, in MiB (`--gpu-memory MIB`); 0 for any.
    pub memory_mib: u64,
}

impl GpuRequirement {
    /// No GPU needed: what every job had before GPUs were known.
    pub const NONE: GpuRequirement = GpuRequirement {
        count: 0,
        memory_mib: 0,
    };

    /// Whether this asks for nothing.
    pub fn is_none(&self) -> bool {
        self.count == 0 && self.memory_mib == 0
    }

    /// Whether a slot with these GPUs can run a task that needs this: at least `count` of
    /// them have `memory_mib` MiB or more (a GPU of unknown memory meets no memory
    /// requirement; a memory requirement with a count of 0 needs one GPU).
    ///
    /// ```
    /// use buildcat_proto::gpu::{Gpu, GpuRequirement, GpuVendor};
    /// let gpu = |memory_mib| Gpu {
    ///     index: 0,
    ///     uuid: String::new(),
    ///     name: String::new(),
    ///     memory_mib,
    ///     driver: String::new(),
    ///     vendor: GpuVendor::Nvidia,
    /// };
    /// let need = GpuRequirement { count: 2, memory_mib: 24_576 };
    /// assert!(need.is_met_by(&[gpu(81_559), gpu(24_576)]));
    /// assert!(!need.is_met_by(&[gpu(81_559), gpu(16_384)]));
    /// assert!(GpuRequirement::NONE.is_met_by(&[]));
    /// ```
    pub fn is_met_by(&self, gpus: &[Gpu]) -> bool {
        let fitting = gpus
            .iter()
            .filter(|gpu| self.memory_mib == 0 || gpu.memory_mib >= self.memory_mib)
            .count();
        fitting >= self.gpus_needed() as usize
    }

    /// How many GPUs this needs: `count`, or 1 when only memory was asked for.
    pub fn gpus_needed(&self) -> u32 {
        if self.count == 0 && self.memory_mib > 0 {
            1
        } else {
            self.count
        }
    }
}

impl std::fmt::Display for GpuRequirement {
    /// As `info` says what no worker has: `2 GPUs of 24 GiB`, `1 GPU`, `a GPU of 512 MiB`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.gpus_needed();
        if count == 1 {
            f.write_str("1 GPU")?;
        } else {
            write!(f, "{count} GPUs")?;
        }
        if self.memory_mib > 0 {
            f.write_str(" of ")?;
            if self.memory_mib.is_multiple_of(1024) {
                write!(f, "{} GiB", self.memory_mib / 1024)?;
            } else {
                write!(f, "{} MiB", self.memory_mib)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_read_as_people_say_them() {
        let need = |count, memory_mib| GpuRequirement { count, memory_mib }.to_string();
        assert_eq!(need(2, 24 * 1024), "2 GPUs of 24 GiB");
        assert_eq!(need(1, 0), "1 GPU");
        assert_eq!(need(1, 1500), "1 GPU of 1500 MiB");
        // A memory requirement alone still needs a GPU to hold it.
        assert_eq!(need(0, 8192), "1 GPU of 8 GiB");
    }
}
