//! The handshake state machine fed arbitrary datagrams from arbitrary addresses.
//!
//! The body, its input format and the properties it checks:
//! `worker::fuzzing::handshake_packet` (`worker/src/fuzzing/handshake_packet.rs`);
//! `tests/fuzz_corpus.rs` replays the committed corpus through the same function.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| worker::fuzzing::handshake_packet(data));
