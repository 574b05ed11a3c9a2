//! The buildcat server.
#![deny(missing_docs)]

pub mod core;
pub mod server;
pub mod tls;
pub mod store;

pub use server::{ServerConfig, ServerError, run};
pub use tls::ServerTls;
