//! generic-poly1305 (`<cipher>+poly1305`), docs/protocol.md §5.5: NaCl's secretbox construction with
//! fastd's ciphers and nonce.

use poly1305::universal_hash::KeyInit;
use poly1305::Poly1305;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::cipher::{Cipher, NONCE_BYTES};
use super::common::{Aead, TAG_BYTES};

/// Tag = Poly1305(first 32 keystream bytes, ciphertext); data from keystream offset 32.
pub struct Poly {
    cipher: Cipher,
}

impl Poly {
    pub fn new(cipher: Cipher) -> Self {
        Self { cipher }
    }

    fn mac(otk: &mut [u8; 32], data: &[u8]) -> [u8; TAG_BYTES] {
        let tag = Poly1305::new(&(*otk).into()).compute_unpadded(data).into();
        otk.zeroize();
        tag
    }
}

impl Aead for Poly {
    fn seal(&self, nonce: &[u8; NONCE_BYTES], data: &mut [u8]) -> [u8; TAG_BYTES] {
        let mut stream = self.cipher.stream(nonce);
        let mut otk: [u8; 32] = stream.take();
        stream.apply(data);
        Self::mac(&mut otk, data)
    }

    fn open(&self, nonce: &[u8; NONCE_BYTES], data: &mut [u8], tag: &[u8; TAG_BYTES]) -> bool {
        let mut stream = self.cipher.stream(nonce);
        let mut otk: [u8; 32] = stream.take();
        if !bool::from(Self::mac(&mut otk, data).ct_eq(tag)) {
            return false;
        }
        stream.apply(data);
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::method::cipher::tests::hex;

    #[test]
    fn rfc8439_section_2_5_2() {
        let mut key: [u8; 32] =
            hex("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b")
                .try_into()
                .unwrap();
        let tag = Poly::mac(&mut key, b"Cryptographic Forum Research Group");
        assert_eq!(tag.to_vec(), hex("a8061dc1305136c6c22b8baf0c0127a9"));
    }
}
