//! The host's GPUs and each worker slot's share of them (issue 13).
//!
//! At build time a worker lists its host's GPUs ([`detect`]: NVIDIA through NVML, loaded at
//! run time by `nvml-wrapper`, so a host without the driver simply has none; AMD from the
//! DRM sysfs entries), keeps those `--gpus` names ([`GpuSelection`]), and with
//! `--gpus-per-slot` gives each slot its own consecutive share ([`split`]). A slot
//! registers its GPUs with the server, reports them in `worker-info`, and, when it owns a
//! share, runs every task process with the visible-devices variables of that share
//! (`env`), so a renderer cannot see another slot's GPUs. After a failed attempt the slot
//! looks for a GPU fault: a renderer line that means one (`fault`), or a GPU NVML no
//! longer finds.

mod env;
mod fault;
mod nvml;
mod sysfs;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use buildcat_proto::gpu::{Gpu, GpuVendor, MAX_GPUS};
use tracing::{debug, warn};

pub(crate) use env::visible_devices;
pub(crate) use fault::{GpuFaultWatch, describe_fault};
pub(crate) use nvml::lost_gpus;

/// Where the kernel's sysfs is mounted: `class/drm` lists the GPUs, `module` the drivers.
const SYSFS: &str = "/sys";

/// Lists this host's GPUs: NVIDIA ones through NVML, then AMD ones from the DRM sysfs
/// entries, numbered as each vendor's tools number them. A host without either (no driver,
/// no card, a container without the devices) has none; nothing here fails.
pub fn detect() -> Vec<Gpu> {
    let mut gpus = nvml::detect();
    let amd = sysfs::read_amd(Path::new(SYSFS));
    if !amd.is_empty() && !gpus.is_empty() {
        // Both vendors' tools number from 0, and one index cannot name two GPUs.
        warn!(
            nvidia = gpus.len(),
            amd = amd.len(),
            "nvidia and amd gpus on one host; only the nvidia ones are used"
        );
    } else {
        gpus.extend(amd);
    }
    gpus.truncate(MAX_GPUS);
    debug!(count = gpus.len(), "gpus detected");
    gpus
}

/// Which of the detected GPUs a worker uses (`--gpus`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum GpuSelection {
    /// Every GPU detected (no `--gpus`).
    #[default]
    Detected,
    /// None (`--gpus none`): the worker has no GPUs, whatever the host has.
    None,
    /// These indices, in this order (`--gpus 0,2`); an index nothing detected is taken as
    /// a declared GPU of unknown make, so a host whose detection fails can still be used.
    Indices(Vec<u32>),
}

impl FromStr for GpuSelection {
    type Err = String;

    /// `none`, or indices separated by commas (`0,2`); `all` is every GPU detected.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        match text {
            "none" => return Ok(GpuSelection::None),
            "all" => return Ok(GpuSelection::Detected),
            _ => {}
        }
        let mut indices = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            let index: u32 = part.parse().map_err(|_| {
                format!(
                    "`{text}` is not a GPU list: `{part}` is not a GPU index (give indices as \
                     nvidia-smi numbers them, separated by commas, e.g. `0,2`, or `none`)"
                )
            })?;
            if indices.contains(&index) {
                return Err(format!("`{text}` names GPU {index} twice"));
            }
            indices.push(index);
        }
        if indices.len() > MAX_GPUS {
            return Err(format!(
                "`{text}` names {} GPUs; a worker takes at most {MAX_GPUS}",
                indices.len()
            ));
        }
        Ok(GpuSelection::Indices(indices))
    }
}

impl fmt::Display for GpuSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuSelection::Detected => f.write_str("all"),
            GpuSelection::None => f.write_str("none"),
            GpuSelection::Indices(indices) => f.write_str(&index_list(indices.iter().copied())),
        }
    }
}

impl GpuSelection {
    /// The GPUs kept of `detected`, in the order given, and the indices named that nothing
    /// detected (each kept as a declared GPU of unknown make).
    pub fn apply(&self, detected: &[Gpu]) -> (Vec<Gpu>, Vec<u32>) {
        match self {
            GpuSelection::Detected => (detected.to_vec(), Vec::new()),
            GpuSelection::None => (Vec::new(), Vec::new()),
            GpuSelection::Indices(indices) => {
                let mut undetected = Vec::new();
                let kept = indices
                    .iter()
                    .map(|&index| {
                        detected
                            .iter()
                            .find(|gpu| gpu.index == index)
                            .cloned()
                            .unwrap_or_else(|| {
                                undetected.push(index);
                                declared(index)
                            })
                    })
                    .collect();
                (kept, undetected)
            }
        }
    }
}

/// A GPU named by `--gpus` that nothing detected: its index only.
fn declared(index: u32) -> Gpu {
    Gpu {
        index,
        uuid: String::new(),
        name: String::new(),
        memory_mib: 0,
        driver: String::new(),
        vendor: GpuVendor::Unknown,
    }
}

/// How a worker shares its GPUs among its slots (`--gpus-per-slot`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GpusPerSlot {
    /// Every slot sees every GPU (no `--gpus-per-slot`): they share them, as before GPUs
    /// were known, and task processes' environments are left alone.
    #[default]
    Shared,
    /// Each slot owns this many GPUs of its own.
    Each(u32),
    /// One slot per GPU (`auto`): the slot count is the GPU count.
    Auto,
}

impl FromStr for GpusPerSlot {
    type Err = String;

    /// `auto`, or a count of 1 or more.
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "auto" => Ok(GpusPerSlot::Auto),
            count => match count.parse::<u32>() {
                Ok(0) | Err(_) => Err(format!(
                    "`{text}` is not a GPU count per slot: give a number of 1 or more, or `auto` \
                     (one slot per GPU)"
                )),
                Ok(count) => Ok(GpusPerSlot::Each(count)),
            },
        }
    }
}

/// The GPUs one worker slot has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotGpus {
    /// The GPUs the slot registers and reports, in the order kept.
    pub gpus: Vec<Gpu>,
    /// Whether they are the slot's own share (`--gpus-per-slot`): only then are task
    /// processes limited to them, since a slot that shares the host's GPUs with the others
    /// has no set of its own to limit them to.
    pub owned: bool,
}

/// How many slots a worker runs: `requested` (`-n`, `None` when not given), or the GPU
/// count under `--gpus-per-slot auto` (an error when the two disagree or no GPU is kept);
/// with K GPUs per slot and no count, as many slots as the GPUs fill; else 1.
pub fn slot_count(
    requested: Option<usize>,
    per_slot: GpusPerSlot,
    gpus: usize,
) -> Result<usize, String> {
    match (per_slot, requested) {
        (GpusPerSlot::Auto, _) if gpus == 0 => Err(
            "--gpus-per-slot auto makes one slot per GPU, but this worker has no GPU (none was \
             detected and --gpus named none)"
                .to_owned(),
        ),
        (GpusPerSlot::Auto, Some(slots)) if slots != gpus => Err(format!(
            "--gpus-per-slot auto makes one slot per GPU ({gpus} here), but {} asked for; \
             drop the slot count or give --gpus-per-slot 1 with the GPUs to use (--gpus)",
            if slots == 1 {
                "1 slot was".to_owned()
            } else {
                format!("{slots} slots were")
            }
        )),
        (GpusPerSlot::Auto, _) => Ok(gpus),
        (_, Some(slots)) => Ok(slots),
        // K GPUs each and no count: as many slots as the GPUs fill (at least one, which
        // `split` refuses if the GPUs are too few).
        (GpusPerSlot::Each(each), None) => Ok((gpus / each.max(1) as usize).max(1)),
        (GpusPerSlot::Shared, None) => Ok(1),
    }
}

/// Gives each of `slots` slots its GPUs of `kept`: all of them to every slot when shared;
/// otherwise slot `i` (in the order slots are started) owns `kept[i*K..i*K+K]`. More slots
/// than the GPUs allow is an error that says how many there are.
pub fn split(kept: &[Gpu], per_slot: GpusPerSlot, slots: usize) -> Result<Vec<SlotGpus>, String> {
    let each = match per_slot {
        GpusPerSlot::Shared => {
            return Ok(vec![
                SlotGpus {
                    gpus: kept.to_vec(),
                    owned: false,
                };
                slots
            ]);
        }
        GpusPerSlot::Auto => 1,
        GpusPerSlot::Each(count) => count as usize,
    };
    let needed = slots.saturating_mul(each);
    if needed > kept.len() {
        let have = match kept.len() {
            0 => "no GPU".to_owned(),
            1 => "1 GPU".to_owned(),
            count => format!("{count} GPUs"),
        };
        return Err(format!(
            "{slots} slots of {each} GPU{} each need {needed} GPUs, but this worker has {have} \
             ({}); run fewer slots, give fewer GPUs per slot, or name the GPUs with --gpus",
            if each == 1 { "" } else { "s" },
            if kept.is_empty() {
                "none detected".to_owned()
            } else {
                format!("indices {}", index_list(kept.iter().map(|gpu| gpu.index)))
            }
        ));
    }
    Ok(kept
        .chunks(each)
        .take(slots)
        .map(|share| SlotGpus {
            gpus: share.to_vec(),
            owned: true,
        })
        .collect())
}

/// Indices separated by commas: `0,2`.
pub(crate) fn index_list(indices: impl Iterator<Item = u32>) -> String {
    indices
        .map(|index| index.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nvidia(index: u32) -> Gpu {
        Gpu {
            index,
            uuid: format!("GPU-{index:04}"),
            name: "NVIDIA H200".to_owned(),
            memory_mib: 143_771,
            driver: "570.86.15".to_owned(),
            vendor: GpuVendor::Nvidia,
        }
    }

    fn indices(gpus: &[Gpu]) -> Vec<u32> {
        gpus.iter().map(|gpu| gpu.index).collect()
    }

    #[test]
    fn gpu_lists_parse() {
        let check = |text: &str, expected: Result<GpuSelection, &str>| {
            let parsed = text.parse::<GpuSelection>();
            match expected {
                Ok(selection) => assert_eq!(parsed, Ok(selection), "{text}"),
                Err(part) => {
                    let error = parsed.expect_err(text);
                    assert!(error.contains(part), "{text}: {error}");
                }
            }
        };
        check("none", Ok(GpuSelection::None));
        check("all", Ok(GpuSelection::Detected));
        check("0,2", Ok(GpuSelection::Indices(vec![0, 2])));
        check(" 3 , 1 ", Ok(GpuSelection::Indices(vec![3, 1])));
        check("0", Ok(GpuSelection::Indices(vec![0])));
        check("0,,1", Err("`` is not a GPU index"));
        check("gpu0", Err("`gpu0` is not a GPU index"));
        check("-1", Err("`-1` is not a GPU index"));
        check("", Err("not a GPU index"));
        check("1,1", Err("names GPU 1 twice"));
        let many = (0..=MAX_GPUS as u32)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        check(&many, Err("at most 64"));
        assert_eq!(GpuSelection::Indices(vec![0, 2]).to_string(), "0,2");
    }

    #[test]
    fn a_selection_keeps_detected_gpus_and_declares_the_rest() {
        let detected = [nvidia(0), nvidia(1), nvidia(2)];
        let (kept, undetected) = GpuSelection::Indices(vec![2, 0]).apply(&detected);
        assert_eq!(kept, [nvidia(2), nvidia(0)]);
        assert!(undetected.is_empty());
        let (kept, undetected) = GpuSelection::Indices(vec![1, 5]).apply(&detected);
        assert_eq!(kept, [nvidia(1), declared(5)]);
        assert_eq!(kept[1].vendor, GpuVendor::Unknown);
        assert_eq!(undetected, [5]);
        assert_eq!(GpuSelection::None.apply(&detected).0, []);
        assert_eq!(GpuSelection::Detected.apply(&detected).0, detected);
        // No GPU here and none named: nothing, and nothing breaks.
        assert_eq!(GpuSelection::Detected.apply(&[]), (Vec::new(), Vec::new()));
    }

    #[test]
    fn counts_per_slot_parse() {
        assert_eq!("auto".parse(), Ok(GpusPerSlot::Auto));
        assert_eq!("2".parse(), Ok(GpusPerSlot::Each(2)));
        for bad in ["0", "-1", "two", ""] {
            let error = bad.parse::<GpusPerSlot>().expect_err(bad);
            assert!(error.contains("1 or more"), "{bad}: {error}");
        }
    }

    #[test]
    fn slot_i_owns_gpus_i_k_to_i_k_plus_k() {
        let kept: Vec<Gpu> = (0..4).map(nvidia).collect();
        let shares = split(&kept, GpusPerSlot::Each(2), 2).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shares.len(), 2);
        assert_eq!(indices(&shares[0].gpus), [0, 1]);
        assert_eq!(indices(&shares[1].gpus), [2, 3]);
        assert!(shares.iter().all(|share| share.owned));

        // Fewer slots than the GPUs allow: the last GPUs are nobody's.
        let shares = split(&kept, GpusPerSlot::Each(1), 3).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            shares.iter().map(|s| indices(&s.gpus)).collect::<Vec<_>>(),
            [vec![0], vec![1], vec![2]]
        );

        // The order kept is the order shared out (`--gpus 3,1`).
        let kept = [nvidia(3), nvidia(1)];
        let shares = split(&kept, GpusPerSlot::Auto, 2).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(indices(&shares[0].gpus), [3]);
        assert_eq!(indices(&shares[1].gpus), [1]);
    }

    #[test]
    fn shared_gpus_go_to_every_slot_unowned() {
        let kept = [nvidia(0), nvidia(1)];
        let shares = split(&kept, GpusPerSlot::Shared, 3).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shares.len(), 3);
        assert!(
            shares
                .iter()
                .all(|share| !share.owned && share.gpus == kept)
        );
        let shares = split(&[], GpusPerSlot::Shared, 2).unwrap_or_else(|e| panic!("{e}"));
        assert!(shares.iter().all(|share| share.gpus.is_empty()));
    }

    #[test]
    fn more_slots_than_gpus_is_an_error_that_counts_them() {
        let kept = [nvidia(0), nvidia(2)];
        let error = split(&kept, GpusPerSlot::Each(1), 3).expect_err("3 slots, 2 gpus");
        assert!(error.contains("need 3 GPUs"), "{error}");
        assert!(error.contains("has 2 GPUs (indices 0,2)"), "{error}");
        let error = split(&[], GpusPerSlot::Each(2), 1).expect_err("no gpus");
        assert!(error.contains("has no GPU (none detected)"), "{error}");
    }

    #[test]
    fn auto_makes_one_slot_per_gpu_and_refuses_another_count() {
        assert_eq!(slot_count(None, GpusPerSlot::Auto, 4), Ok(4));
        assert_eq!(slot_count(Some(4), GpusPerSlot::Auto, 4), Ok(4));
        let error = slot_count(Some(1), GpusPerSlot::Auto, 2).expect_err("1 vs 2");
        assert!(
            error.contains("(2 here), but 1 slot was asked for"),
            "{error}"
        );
        let error = slot_count(Some(2), GpusPerSlot::Auto, 4).expect_err("2 vs 4");
        assert!(error.contains("(4 here), but 2 slots"), "{error}");
        let error = slot_count(None, GpusPerSlot::Auto, 0).expect_err("no gpus");
        assert!(error.contains("no GPU"), "{error}");
        assert_eq!(slot_count(Some(3), GpusPerSlot::Each(1), 8), Ok(3));
        assert_eq!(slot_count(None, GpusPerSlot::Shared, 0), Ok(1));
        assert_eq!(slot_count(None, GpusPerSlot::Each(2), 5), Ok(2));
        assert_eq!(slot_count(None, GpusPerSlot::Each(2), 1), Ok(1));
    }
}
