//! End-to-end tests of buildcat: each runs the real `buildcat` binary (servers, workers and
//! client commands as separate processes) on its own loopback ports and temporary storage.
//!
//! `harness` has the helpers, `tidy` checks the workspace's source, and each other module
//! covers one behaviour users rely on. The binary is taken from `BUILDCAT_BIN`, or built
//! once per run with this test binary's profile.

#![cfg(unix)]

// Real processes, `flock` and server kills: the farm under repeated faults.
#[cfg(target_os = "linux")]
mod blender_profile;
mod chaos;
mod cli_config;
mod cli_habits;
mod cli_watching;
mod environment;
mod errors;
mod examples;
mod fake_dcc;
// Real processes and /proc: a killed worker, a worker cut off past its lease.
#[cfg(target_os = "linux")]
mod faults;
mod garbage;
// GPU shares per slot (issue 13), with declared GPUs: no GPU needed.
mod gpu_routing;
mod gpus;
mod harness;
mod hostile;
mod houdini;
mod http;
mod input;
mod jobs;
mod lifecycle;
mod memory;
mod migrate;
#[cfg(target_os = "linux")]
mod multihost;
#[cfg(target_os = "linux")]
mod netns;
mod notify;
mod original;
// Real processes and a killed server: results kept across outages.
mod outage;
mod output;
mod postgres;
mod previews;
mod render;
mod restart;
mod scene_range;
mod several_workers;
mod stopping;
mod storage;
mod streams;
mod tidy;
mod tls;
mod tutorial;
mod ux;
mod watching;
mod web;
mod windows;
mod worker_pause;
mod worker_tools;
