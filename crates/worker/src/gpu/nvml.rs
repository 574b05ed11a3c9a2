//! NVIDIA GPUs through NVML, the library `nvidia-smi` is built on.
//!
//! `nvml-wrapper` loads `libnvidia-ml.so` (installed with the driver) when
//! [`Nvml::init`] is called, not at link time, so the worker runs on hosts without the
//! NVIDIA driver: there the load fails and the host has no NVIDIA GPUs. NVML numbers GPUs
//! by PCI bus order, as `nvidia-smi` does and as CUDA does under
//! `CUDA_DEVICE_ORDER=PCI_BUS_ID`; it ignores `CUDA_VISIBLE_DEVICES`, so a worker started
//! inside a limited environment still sees the host's numbering.

use std::sync::OnceLock;

use buildcat_proto::gpu::{Gpu, GpuVendor, MAX_GPU_TEXT, MAX_GPUS};
use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;
use tracing::{debug, warn};

/// Bytes in a MiB, NVML reporting memory in bytes.
const MIB: u64 = 1 << 20;

/// NVML, loaded once per process on first use (its initialisation opens the library and
/// resolves every symbol); `None` when the library or the driver is missing.
static NVML: OnceLock<Option<Nvml>> = OnceLock::new();

/// NVML, loading it if no one has tried yet.
fn load() -> Option<&'static Nvml> {
    NVML.get_or_init(|| match Nvml::init() {
        Ok(nvml) => Some(nvml),
        Err(error) => {
            // The usual case on a host without an NVIDIA GPU: not worth more than debug.
            debug!(%error, "nvml did not load; no nvidia gpus");
            None
        }
    })
    .as_ref()
}

/// The NVIDIA GPUs NVML lists; none when NVML does not load. A GPU NVML cannot open is
/// left out with a warning (it could not run anything either).
pub(super) fn detect() -> Vec<Gpu> {
    let Some(nvml) = load() else {
        return Vec::new();
    };
    let driver = nvml.sys_driver_version().unwrap_or_else(|error| {
        warn!(%error, "nvml cannot tell the driver version");
        String::new()
    });
    let count = match nvml.device_count() {
        Ok(count) => count,
        Err(error) => {
            warn!(%error, "nvml loaded but cannot count the gpus; none are used");
            return Vec::new();
        }
    };
    (0..count.min(MAX_GPUS as u32))
        .filter_map(|index| match nvml.device_by_index(index) {
            Ok(device) => Some(Gpu {
                index,
                uuid: bounded(device.uuid()),
                name: bounded(device.name()),
                memory_mib: device.memory_info().map_or(0, |memory| memory.total / MIB),
                driver: driver.chars().take(MAX_GPU_TEXT).collect(),
                vendor: GpuVendor::Nvidia,
            }),
            Err(error) => {
                warn!(index, %error, "nvml cannot open this gpu; it is left out");
                None
            }
        })
        .collect()
}

/// A text NVML gave, or empty when it gave none, within the protocol's bound.
fn bounded(text: Result<String, NvmlError>) -> String {
    text.map(|text| text.chars().take(MAX_GPU_TEXT).collect())
        .unwrap_or_default()
}

/// Of `gpus`, the NVIDIA ones NVML no longer finds by UUID or reports lost, each with what
/// NVML said; none when NVML was never loaded (there is nothing to ask) or the GPUs are of
/// another make. Blocking: NVML may take a while to answer about a failing GPU.
pub(crate) fn lost_gpus(gpus: &[Gpu]) -> Vec<(Gpu, String)> {
    let Some(Some(nvml)) = NVML.get() else {
        return Vec::new();
    };
    gpus.iter()
        .filter(|gpu| gpu.vendor == GpuVendor::Nvidia && !gpu.uuid.is_empty())
        .filter_map(|gpu| {
            let error = match nvml.device_by_uuid(gpu.uuid.as_str()) {
                // Found: a lost GPU can still be listed, but answers nothing.
                Ok(device) => device.memory_info().err()?,
                Err(error) => error,
            };
            match error {
                NvmlError::NotFound => Some((gpu.clone(), "NVML no longer finds it".to_owned())),
                NvmlError::GpuLost | NvmlError::ResetRequired | NvmlError::Uninitialized => {
                    Some((gpu.clone(), format!("NVML says: {error}")))
                }
                other => {
                    debug!(gpu = gpu.index, error = %other, "nvml could not check a gpu");
                    None
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_without_the_nvidia_driver_has_no_nvidia_gpus() {
        // On a host with an NVIDIA GPU this lists it; on every other host (CI) NVML does
        // not load, and that is not an error.
        let gpus = detect();
        assert!(gpus.iter().all(|gpu| gpu.vendor == GpuVendor::Nvidia));
        assert!(gpus.iter().all(Gpu::is_within_limits));
        if gpus.is_empty() {
            let declared = Gpu {
                index: 0,
                uuid: "GPU-0000".to_owned(),
                name: String::new(),
                memory_mib: 0,
                driver: String::new(),
                vendor: GpuVendor::Nvidia,
            };
            // Nothing to ask NVML about: no GPU is taken for lost.
            assert!(lost_gpus(&[declared]).is_empty());
        }
    }
}
