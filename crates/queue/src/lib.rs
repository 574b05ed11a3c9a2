//! The buildcat server.
#![deny(missing_docs)]

pub mod core;
pub mod server;
pub mod store;

pub use server::{ServerConfig, ServerError, run};
