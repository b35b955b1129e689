//! The config loader on arbitrary file contents.
//!
//! The body, its input format and the properties it checks: `worker::fuzzing::config_parse`
//! (`worker/src/fuzzing/config_parse.rs`); `tests/fuzz_corpus.rs` replays the committed
//! corpus through the same function.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| worker::fuzzing::config_parse(data));
