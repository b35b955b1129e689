//! See `policy::fuzzing::helper_request` for the input format and the properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| policy::fuzzing::helper_request(data));
