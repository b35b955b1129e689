//! The sandboxed worker: parses the config, runs the handshake and methods, and forwards packets.
pub mod bootstrap;
pub mod config;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod handshake;
pub mod helper_client;
mod ipc;
pub mod keys;
pub mod manifest;
pub mod method;
pub mod runtime;
pub mod sandbox;
pub mod status;
