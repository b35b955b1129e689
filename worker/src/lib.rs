//! The sandboxed worker: parses the config, runs the handshake and methods, and forwards packets.

pub mod config;
pub mod engine;
pub mod handshake;
pub mod keys;
pub mod method;
pub mod sandbox;
