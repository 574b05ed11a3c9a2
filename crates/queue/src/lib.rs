//! The buildcat server.
#![deny(missing_docs)]

pub mod core;
pub mod server;
pub mod store;
pub mod tls;

pub use server::{Capacities, CoreHandle, Server, ServerConfig, ServerError, run};
pub use tls::ServerTls;
