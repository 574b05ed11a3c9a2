//! Renderer output that means the GPU failed, not the scene: such a line, in a task that
//! then fails, becomes the failure's `gpu_fault` ("GPU 0 (NVIDIA H200): the line"), which
//! the server counts toward the worker's quarantine.
//!
//! Every line a task's processes print is checked (by the process runner), whatever the
//! renderer, so one table serves them all; the renderers' own failure tables (`watch.rs`,
//! `REDSHIFT_FAILURES`) still decide whether a task fails.

use std::sync::{Arc, Mutex, PoisonError};

use buildcat_proto::gpu::Gpu;

/// The most bytes of the line kept in a fault: enough to read, bounded whatever a renderer
/// prints.
const MAX_FAULT_LINE: usize = 400;

/// Lowercased text that, found in a line, means a GPU fault; each with where the wording
/// comes from.
const FAULT_LINES: &[&str] = &[
    // CUDA runtime, `cudaGetErrorString`: cudaErrorIllegalAddress, cudaErrorLaunchFailure,
    // cudaErrorECCUncorrectable (NVIDIA CUDA Runtime API, "Data types: cudaError"); Redshift
    // prints the first as `Error an illegal memory access was encountered` (CGRU Afanasy's
    // Redshift parser).
    "an illegal memory access was encountered",
    "unspecified launch failure",
    "uncorrectable ecc error encountered",
    // CUDA driver API names of the same, and of out-of-memory (CUDA Driver API, "Data
    // types: CUresult"), as tools print them.
    "cuda_error_out_of_memory",
    "cuda_error_illegal_address",
    "cuda_error_launch_failed",
    "cuda_error_ecc_uncorrectable",
    // "CUDA out of memory" (PyTorch and others), "CUDA error: out of memory".
    "cuda out of memory",
    "cuda error: out of memory",
    // Cycles (Blender, intern/cycles/device/): its memory manager's "System is out of GPU
    // memory" and "System is out of GPU and shared host memory"; its CUDA/HIP device
    // checks print the driver's error name and the call, "Out of memory in cuMemAlloc...",
    // "Illegal address in CUDA queue synchronize", "Launch failed in ...".
    "system is out of gpu",
    "out of memory in cu",
    "out of memory in hip",
    "illegal address in cu",
    "illegal address in hip",
    "launch failed in cu",
    "launch failed in hip",
    // HIP runtime names (ROCm, `hipGetErrorName`).
    "hiperroroutofmemory",
    "hiperrorillegaladdress",
    "hiperrorlaunchfailure",
    // The NVIDIA driver and NVML when a GPU is gone: "GPU has fallen off the bus", NVML's
    // NVML_ERROR_GPU_IS_LOST text.
    "gpu has fallen off the bus",
    "gpu is lost",
];

/// Whether `line` means a GPU fault.
pub(crate) fn is_fault_line(line: &str) -> bool {
    let line = line.to_lowercase();
    FAULT_LINES.iter().any(|fault| line.contains(fault))
}

/// The fault as the failure says it: the slot's GPUs (`GPU 0 (NVIDIA H200)`; all of them,
/// since a line rarely says which of a slot's GPUs failed), then `what`.
pub(crate) fn describe_fault(gpus: &[Gpu], what: &str) -> String {
    let what: String = what.trim().chars().take(MAX_FAULT_LINE).collect();
    if gpus.is_empty() {
        return format!("a GPU this worker does not list: {what}");
    }
    let named: Vec<String> = gpus
        .iter()
        .map(|gpu| {
            if gpu.name.is_empty() {
                format!("GPU {}", gpu.index)
            } else {
                format!("GPU {} ({})", gpu.index, gpu.name)
            }
        })
        .collect();
    format!("{}: {what}", named.join(", "))
}

/// The first GPU fault line a task's processes printed, shared by the clones of its
/// context.
#[derive(Debug, Clone, Default)]
pub(crate) struct GpuFaultWatch(Arc<Mutex<Option<String>>>);

impl GpuFaultWatch {
    /// Keeps `line` if it is a GPU fault and none was kept before.
    pub(crate) fn check(&self, line: &str) {
        if !is_fault_line(line) {
            return;
        }
        let mut first = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if first.is_none() {
            *first = Some(line.trim().to_owned());
        }
    }

    /// The first fault line seen, if any.
    pub(crate) fn first(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use buildcat_proto::gpu::GpuVendor;

    use super::*;

    #[test]
    fn gpu_fault_lines_are_known_and_scene_errors_are_not() {
        let check = |line: &str, fault: bool| assert_eq!(is_fault_line(line), fault, "{line}");
        // Redshift (CGRU's parser), CUDA runtime and driver wordings.
        check("Error an illegal memory access was encountered", true);
        check(
            "CUDA error 700: an illegal memory access was encountered",
            true,
        );
        check("RuntimeError: CUDA error: unspecified launch failure", true);
        check("cuCtxSynchronize failed: CUDA_ERROR_LAUNCH_FAILED", true);
        check("cuMemAlloc: CUDA_ERROR_OUT_OF_MEMORY", true);
        check(
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
            true,
        );
        // Cycles.
        check("Error: System is out of GPU memory", true);
        check("Error: System is out of GPU and shared host memory", true);
        check(
            "Out of memory in CUDA queue enqueue (integrator_shade_surface)",
            true,
        );
        check("Illegal address in CUDA queue synchronize", true);
        check("Out of memory in hipMemAlloc(&device_pointer, size)", true);
        check("hipErrorOutOfMemory", true);
        // The driver.
        check("NVRM: Xid 79, GPU has fallen off the bus.", true);
        // Not the GPU's fault.
        check("Error: Out of memory", false);
        check("Error: Cannot read file '/farm/tex/wood.png'", false);
        check("Fra:1 Mem:12.00M | Rendered 1/64 Tiles", false);
        check(
            "[Redshift] Block 32/48 (7,4) rendered by GPU 0 in 2ms",
            false,
        );
        check(
            "Error: [Redshift] License error: (RLM) All licenses in use (-22)",
            false,
        );
    }

    #[test]
    fn a_fault_names_the_slots_gpus() {
        let gpu = |index, name: &str| Gpu {
            index,
            uuid: String::new(),
            name: name.to_owned(),
            memory_mib: 0,
            driver: String::new(),
            vendor: GpuVendor::Nvidia,
        };
        assert_eq!(
            describe_fault(
                &[gpu(1, "NVIDIA H200")],
                "  Error an illegal memory access was encountered\n"
            ),
            "GPU 1 (NVIDIA H200): Error an illegal memory access was encountered"
        );
        assert_eq!(
            describe_fault(&[gpu(0, "A"), gpu(3, "")], "lost"),
            "GPU 0 (A), GPU 3: lost"
        );
        assert_eq!(
            describe_fault(&[], "CUDA out of memory"),
            "a GPU this worker does not list: CUDA out of memory"
        );
        assert_eq!(describe_fault(&[], &"x".repeat(1000)).len(), 33 + 400);
    }

    #[test]
    fn the_first_fault_line_is_kept() {
        let watch = GpuFaultWatch::default();
        watch.check("Fra:1 Mem:12.00M");
        assert_eq!(watch.first(), None);
        watch.check("CUDA error: out of memory");
        watch.check("an illegal memory access was encountered");
        assert_eq!(watch.first().as_deref(), Some("CUDA error: out of memory"));
    }
}
