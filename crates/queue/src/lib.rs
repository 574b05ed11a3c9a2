//! The buildcat server: queues of jobs kept durably, handed to workers, watched by clients.
//!
//! # A tour
//!
//! ```text
//!  tcp sessions ─┐                   ┌──WriteBatch──► store writer thread (group commit)
//!  http requests ─┼─CoreHandle─► hub ─┤                      │
//!                 │              core ◄───Report (commits, reads)┘
//!                 ◄─────────────ServerFrame (per-connection outbox)
//! ```
//!
//! - [`core`]: the farm's state machine. [`core::Core::handle`] takes one input (a
//!   connection, a request, a commit result, a tick) with the current time and returns the
//!   effects to carry out (frames to send, changes to store, connections to close). It does
//!   no I/O and reads no clock, so its rules are tested without sockets or time.
//! - [`server`]: the tokio shell. [`Server::open`] opens the store and rebuilds the core
//!   before anything is bound; [`Server::serve`] runs the hub (the one task that owns the
//!   core, reached through a cloneable [`CoreHandle`]), the store writer and the TCP front
//!   end. [`run`] does both.
//! - [`store`]: the [`store::Store`] trait (`load`, `commit`, `read_output`) and the SQLite
//!   store behind it: jobs and their output, in one file.
//! - [`tls`]: the server's side of TLS with client certificates.
//! - [`http`]: the HTTP shell: the JSON API under `/api/v1/` and Prometheus metrics, another
//!   front end on the same [`CoreHandle`] ([`Server::with_http`]).
//!
//! # Example
//!
//! A server on a free loopback port with its jobs in a temporary file, stopped at once:
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let config = buildcat_queue::ServerConfig::new("/tmp/buildcat-example.db");
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(buildcat_queue::run(listener, config, async {
//!     let _ = stopped.await;
//! }));
//! let _ = stop.send(());
//! server.await??;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod core;
pub mod http;
pub mod notify;
pub mod server;
pub mod store;
pub mod tls;

pub use server::{Capacities, CoreHandle, Server, ServerConfig, ServerError, run};
pub use tls::ServerTls;
