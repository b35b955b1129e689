//! The sandboxed worker: parses the config, runs the handshake and methods, and forwards packets.
pub mod method;
pub mod config;
pub mod keys;
pub mod sandbox;
pub mod handshake;
pub mod status;
