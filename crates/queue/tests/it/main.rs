//! Integration tests of the server's shell: an in-process server on a loopback port, driven
//! over raw frames so each test controls exactly what is in flight.

mod gated;
