//! Integration tests of the worker loop against a scripted fake server on loopback.
//!
//! The fake server (`fake`) speaks the real protocol through `buildcat-proto`'s codec, so
//! these tests pin what the worker sends and how it reacts, frame by frame. Nothing here
//! sleeps to wait: every wait is for a frame or an event, bounded by a generous timeout.

// The real Blender, where installed.
#[cfg(target_os = "linux")]
mod added_tasks;
mod blender;
mod builder;
// Real processes (`sh`, `sleep`), and pidfds to see them gone.
#[cfg(target_os = "linux")]
mod command;
mod fake;
// Real processes (`sh`) run with a slot's GPU share.
#[cfg(target_os = "linux")]
mod gpus;
mod heartbeat;
// Fake DCC tools (`sh` scripts, `python3`).
#[cfg(target_os = "linux")]
mod integrations;
mod jobs;
mod lifecycle;
mod outage;
mod output;
#[cfg(target_os = "linux")]
mod process;
mod reconnect;
mod registration;
// Real processes, killed when the worker stops at once or loses its lease.
#[cfg(target_os = "linux")]
mod stopping;
mod tasks;
#[cfg(target_os = "linux")]
mod tree;
