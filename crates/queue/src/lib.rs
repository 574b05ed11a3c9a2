//! The buildcat server.
#![deny(missing_docs)]

pub mod core;
pub mod server;
pub mod tls;
pub mod store;

pub use server::{Server, ServerConfig, ServerError, run};
pub use tls::ServerTls;
