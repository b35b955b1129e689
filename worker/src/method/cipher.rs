//! The stream ciphers fastd's methods are built from (docs/protocol.md §5.1).
//!
//! A [`Cipher`] holds the prepared key of one session; [`Cipher::stream`] gives the keystream for
//! one packet nonce. Streams are plain values on the stack: nothing is allocated per packet.

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use aes::Aes128;
use ctr::{Ctr128BE, CtrCore};
use zeroize::Zeroize;

use super::salsa;

/// Bytes of the packet nonce on the wire (u48 BE).
pub const NONCE_BYTES: usize = 6;

/// The data/tag ciphers fastd v22 knows, by their config name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CipherKind {
    /// `null`: no keystream (data travels in clear).
    Null,
    /// `salsa20`: Salsa20/20, 32-byte key, 8-byte IV.
    Salsa20,
    /// `salsa2012`: Salsa20/12, 32-byte key, 8-byte IV.
    Salsa2012,
    /// `aes128-ctr`: AES-128 in CTR mode with a 128-bit big-endian counter, 16-byte IV.
    Aes128Ctr,
}

impl CipherKind {
    /// Parses a cipher name as used inside method names.
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "null" => Some(Self::Null),
            "salsa20" => Some(Self::Salsa20),
            "salsa2012" => Some(Self::Salsa2012),
            "aes128-ctr" => Some(Self::Aes128Ctr),
            _ => None,
        }
    }

    /// The cipher's name as used inside method names.
    pub fn name(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Salsa20 => "salsa20",
            Self::Salsa2012 => "salsa2012",
            Self::Aes128Ctr => "aes128-ctr",
        }
    }

    /// Key bytes this cipher takes from the session key.
    pub fn key_len(self) -> usize {
        match self {
            Self::Null => 0,
            Self::Salsa20 | Self::Salsa2012 => 32,
            Self::Aes128Ctr => 16,
        }
    }

    /// Builds the session cipher; `key` must be exactly [`Self::key_len`] bytes.
    pub(crate) fn init(self, key: &[u8]) -> Option<Cipher> {
        if key.len() != self.key_len() {
            return None;
        }
        Some(match self {
            Self::Null => Cipher::Null,
            Self::Salsa20 | Self::Salsa2012 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(key);
                let rounds = if self == Self::Salsa20 {
                    salsa::Rounds::R20
                } else {
                    salsa::Rounds::R12
                };
                let c = Cipher::Salsa(salsa::Key::new(&k, rounds));
                k.zeroize();
                c
            }
            Self::Aes128Ctr => {
                let mut k = [0u8; 16];
                k.copy_from_slice(key);
                let aes = Aes128::new(&k.into());
                k.zeroize();
                Cipher::Aes128(Box::new(aes))
            }
        })
    }
}

/// A cipher with its session key (AES with its expanded key schedule).
#[derive(Clone)]
pub enum Cipher {
    /// `null`
    Null,
    /// `salsa20` and `salsa2012`
    Salsa(salsa::Key),
    /// `aes128-ctr`; boxed because the schedule is large and sessions move around.
    Aes128(Box<Aes128>),
}

/// The keystream of one cipher for one IV, consumed front to back.
// Lives on the stack for one packet; boxing the AES variant would allocate per packet.
#[allow(clippy::large_enum_variant)]
pub enum Stream {
    /// no-op
    Null,
    /// Salsa20/20 and Salsa20/12
    Salsa(salsa::Stream),
    /// AES-128-CTR
    Aes128(Ctr128BE<Aes128>),
}

impl Cipher {
    /// The keystream for a packet nonce: IV = `nonce ‖ 0… ‖ 01` (docs/protocol.md §5.1).
    pub fn stream(&self, nonce: &[u8; NONCE_BYTES]) -> Stream {
        match self {
            Self::Null => Stream::Null,
            Self::Salsa(_) => {
                let mut iv = [0u8; 8];
                iv[..NONCE_BYTES].copy_from_slice(nonce);
                iv[7] = 1;
                self.stream_salsa(&iv)
            }
            Self::Aes128(_) => {
                let mut iv = [0u8; 16];
                iv[..NONCE_BYTES].copy_from_slice(nonce);
                iv[15] = 1;
                self.stream_aes(&iv)
            }
        }
    }

    /// The keystream for the all-zero IV, from which GHASH keys are derived (§5.3).
    pub fn zero_iv_stream(&self) -> Stream {
        match self {
            Self::Null => Stream::Null,
            Self::Salsa(_) => self.stream_salsa(&[0u8; 8]),
            Self::Aes128(_) => self.stream_aes(&[0u8; 16]),
        }
    }

    fn stream_salsa(&self, iv: &[u8; 8]) -> Stream {
        match self {
            Self::Salsa(k) => Stream::Salsa(k.stream(iv)),
            _ => Stream::Null,
        }
    }

    fn stream_aes(&self, iv: &[u8; 16]) -> Stream {
        match self {
            // Cloning the expanded schedule is a copy; re-expanding the key per packet is not.
            Self::Aes128(aes) => Stream::Aes128(Ctr128BE::from_core(CtrCore::inner_iv_init(
                (**aes).clone(),
                iv.into(),
            ))),
            _ => Stream::Null,
        }
    }
}

impl Stream {
    /// XORs the next `buf.len()` keystream bytes into `buf`.
    #[inline]
    pub fn apply(&mut self, buf: &mut [u8]) {
        match self {
            Self::Null => {}
            Self::Salsa(s) => s.apply(buf),
            Self::Aes128(s) => s.apply_keystream(buf),
        }
    }

    /// The next `N` keystream bytes (zeros for `null`).
    #[inline]
    pub fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        self.apply(&mut out);
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn keystream(c: &Cipher, iv: &[u8], n: usize) -> Vec<u8> {
        let mut s = match c {
            Cipher::Aes128(_) => c.stream_aes(iv.try_into().unwrap()),
            _ => c.stream_salsa(iv.try_into().unwrap()),
        };
        let mut v = vec![0u8; n];
        s.apply(&mut v);
        v
    }

    /// Reference Salsa20/r core (Bernstein's spec): carries the published 128-bit-key Salsa20/12
    /// vector over to the 256-bit keys fastd uses, and checks the salsa backends block by block.
    pub(crate) fn salsa_ref(rounds: usize, key: &[u8], iv: &[u8; 8], counter: u64) -> [u8; 64] {
        let c: &[u8; 16] = if key.len() == 32 {
            b"expand 32-byte k"
        } else {
            b"expand 16-byte k"
        };
        let w = |b: &[u8], i: usize| u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap());
        let k2 = if key.len() == 32 { &key[16..] } else { key };
        let mut x = [0u32; 16];
        x[0] = w(c, 0);
        x[5] = w(c, 1);
        x[10] = w(c, 2);
        x[15] = w(c, 3);
        for i in 0..4 {
            x[1 + i] = w(key, i);
            x[11 + i] = w(k2, i);
        }
        x[6] = w(iv, 0);
        x[7] = w(iv, 1);
        x[8] = counter as u32;
        x[9] = (counter >> 32) as u32;
        let init = x;
        let qr = |x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize| {
            x[b] ^= x[a].wrapping_add(x[d]).rotate_left(7);
            x[c] ^= x[b].wrapping_add(x[a]).rotate_left(9);
            x[d] ^= x[c].wrapping_add(x[b]).rotate_left(13);
            x[a] ^= x[d].wrapping_add(x[c]).rotate_left(18);
        };
        for _ in 0..rounds / 2 {
            qr(&mut x, 0, 4, 8, 12);
            qr(&mut x, 5, 9, 13, 1);
            qr(&mut x, 10, 14, 2, 6);
            qr(&mut x, 15, 3, 7, 11);
            qr(&mut x, 0, 1, 2, 3);
            qr(&mut x, 5, 6, 7, 4);
            qr(&mut x, 10, 11, 8, 9);
            qr(&mut x, 15, 12, 13, 14);
        }
        let mut out = [0u8; 64];
        for i in 0..16 {
            out[4 * i..4 * i + 4].copy_from_slice(&x[i].wrapping_add(init[i]).to_le_bytes());
        }
        out
    }

    #[test]
    fn salsa20_estream_set1_vector0() {
        // eSTREAM salsa20 verified.test-vectors, 256-bit key, Set 1 vector 0.
        let mut key = [0u8; 32];
        key[0] = 0x80;
        let c = CipherKind::Salsa20.init(&key).unwrap();
        assert_eq!(
            keystream(&c, &[0; 8], 64),
            hex(
                "e3be8fdd8beca2e3ea8ef9475b29a6e7003951e1097a5c38d23b7a5fad9f6844
                 b22c97559e2723c7cbbd3fe4fc8d9a0744652a83e72a9c461876af4d7ef1a117"
            )
        );
        assert_eq!(
            salsa_ref(20, &key, &[0; 8], 0).to_vec(),
            keystream(&c, &[0; 8], 64)
        );
    }

    #[test]
    fn salsa2012_estream_vector_and_crate_agree() {
        // eSTREAM salsa20_12 verified vectors, 128-bit key Set 1 vector 0, through the reference
        // core; then the crate must equal the same core for 256-bit keys over several blocks.
        let mut k16 = [0u8; 16];
        k16[0] = 0x80;
        assert_eq!(
            salsa_ref(12, &k16, &[0; 8], 0).to_vec(),
            hex(
                "FC207DBFC76C5E1774961E7A5AAD09069B2225AC1CE0FE7A0CE77003E7E5BDF8
                 B31AF821000813E6C56B8C1771D6EE7039B2FBD0A68E8AD70A3944B677937897"
            )
        );
        assert_eq!(
            salsa_ref(12, &k16, &[0; 8], 3).to_vec(),
            hex(
                "4B62A4881FA1AF9560586510D5527ED48A51ECAFA4DECEEBBDDC10E9918D44AB
                 26B10C0A31ED242F146C72940C6E9C3753F641DA84E9F68B4F9E76B6C48CA5AC"
            )
        );
        let key: Vec<u8> = (0..32u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(5))
            .collect();
        let iv = [9u8, 8, 7, 6, 5, 4, 0, 1];
        let c = CipherKind::Salsa2012.init(&key).unwrap();
        let ks = keystream(&c, &iv, 256);
        for blk in 0..4 {
            assert_eq!(
                &ks[64 * blk..64 * blk + 64],
                &salsa_ref(12, &key, &iv, blk as u64)[..]
            );
        }
    }

    #[test]
    fn aes128_ctr_sp800_38a_f51() {
        let c = CipherKind::Aes128Ctr
            .init(&hex("2b7e151628aed2a6abf7158809cf4f3c"))
            .unwrap();
        let ks = keystream(&c, &hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"), 64);
        let pt = hex(
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51
             30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
        );
        let ct: Vec<u8> = pt.iter().zip(&ks).map(|(a, b)| a ^ b).collect();
        assert_eq!(
            ct,
            hex(
                "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff
                 5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee"
            )
        );
    }

    #[test]
    fn nonce_iv_layout_and_streaming() {
        let key = [7u8; 32];
        let c = CipherKind::Salsa20.init(&key).unwrap();
        let nonce = [1, 2, 3, 4, 5, 6];
        let mut s = c.stream(&nonce);
        let a: [u8; 16] = s.take();
        let mut rest = [0u8; 100];
        s.apply(&mut rest);
        let whole = salsa_ref(20, &key, &[1, 2, 3, 4, 5, 6, 0, 1], 0);
        assert_eq!(&a[..], &whole[..16]);
        assert_eq!(&rest[..48], &whole[16..]);
        assert!(CipherKind::Salsa20.init(&[0u8; 16]).is_none());
        assert!(CipherKind::by_name("aes128").is_none());
    }
}
