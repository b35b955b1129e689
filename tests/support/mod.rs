//! The end-to-end tests' own pieces (our binary, the status document samples); namespaces,
//! veth links, daemons, the gate and keys come from the `test-support` crate.
// Each test binary uses some of these.
#![allow(dead_code)]

pub mod status_doc;

pub use test_support::*;

pub const OURS: &str = env!("CARGO_BIN_EXE_fastd-privsep");
