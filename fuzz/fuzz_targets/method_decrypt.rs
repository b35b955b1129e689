//! Every method: a receiving session decrypts arbitrary datagrams and altered packets of a
//! matching sender.
//!
//! The body, its input format and the properties it checks:
//! `worker::fuzzing::method_decrypt` (`worker/src/fuzzing/method_decrypt.rs`);
//! `tests/fuzz_corpus.rs` replays the committed corpus through the same function.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| worker::fuzzing::method_decrypt(data));
