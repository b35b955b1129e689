//! The body of the `policy_decode` fuzz target (`fuzz/fuzz_targets/policy_decode.rs`) as a
//! plain function, so that `tests/fuzz_corpus.rs` replays the committed corpus through the
//! same code in every `cargo test` run. Not an API: a panic here is a finding.
//!
//! The helper/worker boundary: [`decode`] of arbitrary bytes, as both ends receive them.
//!
//! Input: byte 0 chooses [`Request`] (even) or [`FromHelper`] (odd); the rest is the message.
//!
//! Properties: no panic; a message that decodes re-encodes to exactly the same bytes (the
//! encoding is canonical, so two different byte strings never mean the same message) and
//! decodes again to the same value.

mod helper_request;
pub use helper_request::helper_request;

use std::fmt::Debug;

use crate::{decode, encode, FromHelper, Request};

pub fn policy_decode(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        round_trip::<Request>(bytes);
    } else {
        round_trip::<FromHelper>(bytes);
    }
}

fn round_trip<T>(bytes: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + Debug,
{
    let Ok(msg) = decode::<T>(bytes) else {
        return;
    };
    let again = encode(&msg).unwrap_or_else(|e| panic!("{msg:?} decoded but does not encode: {e}"));
    assert_eq!(again, bytes, "{msg:?}: the encoding is not canonical");
    match decode::<T>(&again) {
        Ok(m) => assert_eq!(m, msg, "decode(encode(m)) != m"),
        Err(e) => panic!("{msg:?} re-encoded does not decode: {e}"),
    }
}
