//! `policy::decode` of arbitrary bytes, as both ends of the helper/worker socket receive
//! them.
//!
//! The body, its input format and the properties it checks:
//! `policy::fuzzing::policy_decode` (`policy/src/fuzzing.rs`); `tests/fuzz_corpus.rs`
//! replays the committed corpus through the same function.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| policy::fuzzing::policy_decode(data));
