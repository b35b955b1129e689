//! The helper/worker boundary: `policy::decode` of arbitrary bytes, as both ends receive them.
//!
//! NOT registered in fuzz/Cargo.toml yet: `policy::{decode, encode, Request, Response}` are not
//! on this branch's base. Enable it when they are (see fuzz/README.md).
//!
//! Input: byte 0 chooses `Request` (even) or `Response` (odd); the rest is the message.
//!
//! Properties: no panic; a message that decodes re-encodes to exactly the same bytes (the
//! encoding is canonical, so two different byte strings never mean the same message) and
//! decodes again to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use policy::{decode, encode, Request, Response};
use std::fmt::Debug;

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

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        round_trip::<Request>(bytes);
    } else {
        round_trip::<Response>(bytes);
    }
});
