//! The interop tests' own pieces (our engine driven in-process, frame capture); namespaces,
//! the real fastd, configs and traffic come from the `test-support` crate.

pub mod capture;
pub mod ours;

pub use test_support::*;
