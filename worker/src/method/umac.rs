//! generic-umac (`<cipher>+umac`) and composed-umac (`<c1>+<c2>+umac`), docs/protocol.md §5.3/§5.4.

use subtle::ConstantTimeEq;

use super::cipher::NONCE_BYTES;
use super::common::{xor16, Aead, TagLayout, TAG_BYTES};
use super::uhash::UhashKey;

/// Tag = pad ⊕ UHASH(ciphertext).
pub struct Umac {
    layout: TagLayout,
    uhash: Box<UhashKey>,
}

impl Umac {
    pub fn new(layout: TagLayout, uhash: UhashKey) -> Self {
        Self {
            layout,
            uhash: Box::new(uhash),
        }
    }
}

impl Aead for Umac {
    fn seal(&self, nonce: &[u8; NONCE_BYTES], data: &mut [u8]) -> [u8; TAG_BYTES] {
        let (mut tag, mut stream) = self.layout.begin(nonce);
        stream.apply(data);
        xor16(&mut tag, &self.uhash.hash(data));
        tag
    }

    fn open(&self, nonce: &[u8; NONCE_BYTES], data: &mut [u8], tag: &[u8; TAG_BYTES]) -> bool {
        let (mut want, mut stream) = self.layout.begin(nonce);
        xor16(&mut want, &self.uhash.hash(data));
        if !bool::from(want.ct_eq(tag)) {
            return false;
        }
        stream.apply(data);
        true
    }
}
