//! The bodies of the fuzz targets of `fuzz/fuzz_targets/`, as plain functions: the libFuzzer
//! targets are thin wrappers around them, and `tests/fuzz_corpus.rs` feeds the committed
//! corpora (`fuzz/corpus/<target>/`) through the same code in every `cargo test` run.
//!
//! Not an API. Each function asserts the properties its module describes and panics on a
//! violation: a panic here is a finding, never a way to handle input.

mod config_parse;
mod handshake_packet;
mod method_decrypt;

pub use config_parse::config_parse;
pub use handshake_packet::handshake_packet;
pub use method_decrypt::method_decrypt;
