//! The environment that limits a task's processes to its slot's GPUs.
//!
//! - NVIDIA (and GPUs declared with `--gpus` whose make is unknown): `CUDA_VISIBLE_DEVICES`
//!   lists the slot's GPUs by UUID when every one has one (a UUID cannot name another
//!   slot's GPU if the driver renumbers), else by index, with `CUDA_DEVICE_ORDER=PCI_BUS_ID`
//!   so that indices are `nvidia-smi`'s (CUDA's default order is fastest first). Inside
//!   the process the visible GPUs are renumbered from 0 in the order listed (NVIDIA, CUDA C++
//!   Programming Guide, "CUDA Environment Variables").
//! - AMD: `ROCR_VISIBLE_DEVICES` (host indices, or UUIDs) limits what the ROCm runtime
//!   opens, and `HIP_VISIBLE_DEVICES` is applied after it, to the devices ROCR left and
//!   renumbered from 0, so it is `0..K` (AMD, ROCm documentation, "GPU isolation
//!   techniques").
//! - `BUILDCAT_GPUS`: the slot's host indices, for scripts that want to know.

use buildcat_proto::gpu::{Gpu, GpuVendor};

use super::index_list;

/// The variable that tells a task's scripts their slot's GPUs (host indices, `0,2`).
pub(crate) const BUILDCAT_GPUS: &str = "BUILDCAT_GPUS";

/// The variables a task process of a slot owning `gpus` gets, in a fixed order.
pub(crate) fn visible_devices(gpus: &[Gpu]) -> Vec<(&'static str, String)> {
    let mut env = Vec::new();
    let (amd, cuda): (Vec<&Gpu>, Vec<&Gpu>) =
        gpus.iter().partition(|gpu| gpu.vendor == GpuVendor::Amd);
    if !cuda.is_empty() || amd.is_empty() {
        let by_uuid = !cuda.is_empty() && cuda.iter().all(|gpu| !gpu.uuid.is_empty());
        let devices = if by_uuid {
            cuda.iter()
                .map(|gpu| gpu.uuid.as_str())
                .collect::<Vec<_>>()
                .join(",")
        } else {
            index_list(cuda.iter().map(|gpu| gpu.index))
        };
        env.push(("CUDA_VISIBLE_DEVICES", devices));
        env.push(("CUDA_DEVICE_ORDER", "PCI_BUS_ID".to_owned()));
    }
    if !amd.is_empty() {
        env.push((
            "ROCR_VISIBLE_DEVICES",
            index_list(amd.iter().map(|gpu| gpu.index)),
        ));
        env.push((
            "HIP_VISIBLE_DEVICES",
            index_list((0..amd.len()).map(|ordinal| ordinal as u32)),
        ));
    }
    env.push((BUILDCAT_GPUS, index_list(gpus.iter().map(|gpu| gpu.index))));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(index: u32, uuid: &str, vendor: GpuVendor) -> Gpu {
        Gpu {
            index,
            uuid: uuid.to_owned(),
            name: String::new(),
            memory_mib: 0,
            driver: String::new(),
            vendor,
        }
    }

    fn check(gpus: &[Gpu], expected: &[(&str, &str)]) {
        let env = visible_devices(gpus);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(env, expected, "{gpus:?}");
    }

    #[test]
    fn nvidia_gpus_are_named_by_uuid_in_pci_order() {
        check(
            &[
                gpu(2, "GPU-aaaa", GpuVendor::Nvidia),
                gpu(3, "GPU-bbbb", GpuVendor::Nvidia),
            ],
            &[
                ("CUDA_VISIBLE_DEVICES", "GPU-aaaa,GPU-bbbb"),
                ("CUDA_DEVICE_ORDER", "PCI_BUS_ID"),
                ("BUILDCAT_GPUS", "2,3"),
            ],
        );
    }

    #[test]
    fn gpus_without_uuids_are_named_by_index() {
        check(
            &[gpu(1, "", GpuVendor::Unknown)],
            &[
                ("CUDA_VISIBLE_DEVICES", "1"),
                ("CUDA_DEVICE_ORDER", "PCI_BUS_ID"),
                ("BUILDCAT_GPUS", "1"),
            ],
        );
        // One GPU without a UUID: all by index, never a mix.
        check(
            &[
                gpu(0, "GPU-aaaa", GpuVendor::Nvidia),
                gpu(1, "", GpuVendor::Unknown),
            ],
            &[
                ("CUDA_VISIBLE_DEVICES", "0,1"),
                ("CUDA_DEVICE_ORDER", "PCI_BUS_ID"),
                ("BUILDCAT_GPUS", "0,1"),
            ],
        );
    }

    #[test]
    fn amd_gpus_get_rocr_by_host_index_and_hip_renumbered() {
        check(
            &[
                gpu(2, "GPU-7b4d", GpuVendor::Amd),
                gpu(3, "", GpuVendor::Amd),
            ],
            &[
                ("ROCR_VISIBLE_DEVICES", "2,3"),
                ("HIP_VISIBLE_DEVICES", "0,1"),
                ("BUILDCAT_GPUS", "2,3"),
            ],
        );
    }

    #[test]
    fn an_empty_share_hides_every_gpu() {
        check(
            &[],
            &[
                ("CUDA_VISIBLE_DEVICES", ""),
                ("CUDA_DEVICE_ORDER", "PCI_BUS_ID"),
                ("BUILDCAT_GPUS", ""),
            ],
        );
    }
}
