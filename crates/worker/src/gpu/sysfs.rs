//! AMD GPUs from the kernel's DRM entries, where reading them is cheap: no ROCm needed.
//!
//! Each `class/drm/cardN` links to its PCI device, whose `vendor` file is `0x1002` for AMD
//! and whose `mem_info_vram_total` (amdgpu) is the VRAM in bytes; `product_name` and
//! `unique_id` exist on boards whose firmware has them (the amdgpu driver's sysfs
//! documentation, "Misc AMDGPU driver information"). The index is the card's place among
//! the AMD cards in card order, which is how HIP numbers devices on a host of one kind of
//! card. The reader takes the sysfs root as a path so tests can hand it a fake tree.

use std::fs;
use std::path::Path;

use buildcat_proto::gpu::{Gpu, GpuVendor, MAX_GPU_TEXT, MAX_GPUS};

/// The PCI vendor id of AMD (ATI), as sysfs writes it.
const AMD_VENDOR: &str = "0x1002";

/// Bytes in a MiB, sysfs giving VRAM in bytes.
const MIB: u64 = 1 << 20;

/// The AMD GPUs listed under `sys` (`/sys` on a real host); none when the directory is
/// missing or unreadable.
pub(super) fn read_amd(sys: &Path) -> Vec<Gpu> {
    let Ok(entries) = fs::read_dir(sys.join("class/drm")) else {
        return Vec::new();
    };
    // `card0`, `card1`: the devices; `card0-DP-1` and `renderD128` are not.
    let mut cards: Vec<(u32, std::path::PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let number = name.to_str()?.strip_prefix("card")?.parse().ok()?;
            Some((number, entry.path().join("device")))
        })
        .collect();
    cards.sort();
    let driver = text(&sys.join("module/amdgpu/version"));
    cards
        .into_iter()
        .filter(|(_, device)| text(&device.join("vendor")).eq_ignore_ascii_case(AMD_VENDOR))
        .take(MAX_GPUS)
        .enumerate()
        .map(|(index, (_, device))| {
            let unique_id = text(&device.join("unique_id"));
            Gpu {
                index: index as u32,
                // As `rocminfo` prints it, and as ROCR_VISIBLE_DEVICES accepts it.
                uuid: if unique_id.is_empty() {
                    String::new()
                } else {
                    format!("GPU-{unique_id}")
                },
                name: text(&device.join("product_name")),
                memory_mib: text(&device.join("mem_info_vram_total"))
                    .parse::<u64>()
                    .map_or(0, |bytes| bytes / MIB),
                driver: driver.clone(),
                vendor: GpuVendor::Amd,
            }
        })
        .collect()
}

/// A sysfs file's text, trimmed and within the protocol's bound; empty when unreadable.
fn text(path: &Path) -> String {
    fs::read_to_string(path)
        .map(|text| text.trim().chars().take(MAX_GPU_TEXT).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `files` (path under the card's device folder, content) for `card`.
    fn card(sys: &Path, card: &str, files: &[(&str, &str)]) {
        let device = sys.join("class/drm").join(card).join("device");
        fs::create_dir_all(&device).unwrap_or_else(|e| panic!("{e}"));
        for (name, content) in files {
            fs::write(device.join(name), content).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn amd_cards_are_read_from_a_sysfs_tree() {
        let sys = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sys = sys.path();
        // An Intel display adapter first, then two AMD cards (out of order on disk).
        card(sys, "card0", &[("vendor", "0x8086\n")]);
        card(
            sys,
            "card2",
            &[
                ("vendor", "0x1002\n"),
                ("mem_info_vram_total", "17163091968\n"),
            ],
        );
        card(
            sys,
            "card1",
            &[
                ("vendor", "0x1002\n"),
                ("mem_info_vram_total", "25753026560\n"),
                ("product_name", "Radeon PRO W7800\n"),
                ("unique_id", "7b4d1e6a8b2c5f11\n"),
            ],
        );
        // A connector and a render node: not cards.
        card(sys, "card1-DP-1", &[("vendor", "0x1002\n")]);
        card(sys, "renderD128", &[("vendor", "0x1002\n")]);
        fs::create_dir_all(sys.join("module/amdgpu")).unwrap_or_else(|e| panic!("{e}"));
        fs::write(sys.join("module/amdgpu/version"), "6.10.5\n").unwrap_or_else(|e| panic!("{e}"));

        let gpus = read_amd(sys);
        assert_eq!(
            gpus,
            [
                Gpu {
                    index: 0,
                    uuid: "GPU-7b4d1e6a8b2c5f11".to_owned(),
                    name: "Radeon PRO W7800".to_owned(),
                    memory_mib: 24_560,
                    driver: "6.10.5".to_owned(),
                    vendor: GpuVendor::Amd,
                },
                Gpu {
                    index: 1,
                    uuid: String::new(),
                    name: String::new(),
                    memory_mib: 16_368,
                    driver: "6.10.5".to_owned(),
                    vendor: GpuVendor::Amd,
                },
            ]
        );
    }

    #[test]
    fn no_drm_directory_means_no_amd_gpus() {
        let sys = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert!(read_amd(sys.path()).is_empty());
        assert!(read_amd(&sys.path().join("missing")).is_empty());
    }
}
