//! UHASH-128 of RFC 4418 (four iterations) with fastd's raw key layout (docs/protocol.md §5.6).
//!
//! No crate implements UHASH without the RFC's AES key derivation, and fastd takes the key
//! verbatim from the session key, so it lives here. Messages must be shorter than 2^24 bytes
//! (L2 then never needs its POLY128 stage); data packets are far below that.

use zeroize::Zeroize;

use super::nh;
use super::simd::Backend;

/// Bytes of raw key material UHASH takes from the session key.
pub const KEY_BYTES: usize = 1440;
/// Bytes of a UHASH-128 result.
pub const OUT_BYTES: usize = 16;

const ITERS: usize = nh::ITERS;
const L1_WORDS: usize = 256 + 4 * (ITERS - 1);
const L1_BYTES: usize = 1024;
const P36: u64 = (1 << 36) - 5;
const P64: u64 = 0u64.wrapping_sub(59);
const L2_MASK: u64 = 0x01ff_ffff_01ff_ffff;

/// An expanded UHASH key.
#[derive(Clone)]
pub struct UhashKey {
    l1: [u32; L1_WORDS],
    l2: [u64; ITERS],
    /// Only entries 4..8 of each iteration's L3Key1 ever meet non-zero input (the upper half of
    /// the L3 input is zero for short messages), so only those are kept.
    l3k1: [[u64; 4]; ITERS],
    l3k2: [u32; ITERS],
    backend: Backend,
}

impl Drop for UhashKey {
    fn drop(&mut self) {
        self.l1.zeroize();
        self.l2.zeroize();
        for k in &mut self.l3k1 {
            k.zeroize();
        }
        self.l3k2.zeroize();
    }
}

fn be32(b: &[u8], off: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[off..off + 4]);
    u32::from_be_bytes(w)
}

fn be64(b: &[u8], off: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[off..off + 8]);
    u64::from_be_bytes(w)
}

impl UhashKey {
    /// Reads the 1440-byte raw key (L1Key 1072 | L2Key 96 | L3Key1 256 | L3Key2 16).
    pub fn new(raw: &[u8; KEY_BYTES]) -> Self {
        Self::with_backend(raw, Backend::detect())
    }

    /// As [`Self::new`], with NH on the given backend.
    pub fn with_backend(raw: &[u8; KEY_BYTES], backend: Backend) -> Self {
        let mut l1 = [0u32; L1_WORDS];
        for (i, w) in l1.iter_mut().enumerate() {
            *w = be32(raw, 4 * i);
        }
        let mut l2 = [0u64; ITERS];
        let mut l3k1 = [[0u64; 4]; ITERS];
        let mut l3k2 = [0u32; ITERS];
        for i in 0..ITERS {
            l2[i] = be64(raw, 1072 + 24 * i) & L2_MASK;
            for (k, v) in l3k1[i].iter_mut().enumerate() {
                *v = be64(raw, 1168 + 64 * i + 8 * (4 + k)) % P36;
            }
            l3k2[i] = be32(raw, 1424 + 4 * i);
        }
        Self {
            l1,
            l2,
            l3k1,
            l3k2,
            backend,
        }
    }

    /// NH of one ≤1024-byte chunk for all four iterations, plus the bit length (RFC L1-HASH).
    fn l1_chunk(&self, chunk: &[u8]) -> [u64; ITERS] {
        let mut acc = [0u64; ITERS];
        let (blocks, tail) = chunk.as_chunks::<{ nh::BLOCK_BYTES }>();
        nh::add_blocks(self.backend, &mut acc, &self.l1, blocks);
        // An empty chunk is hashed as one all-zero block (RFC 4418 zero-pads to 32 bytes).
        if !tail.is_empty() || chunk.is_empty() {
            let mut pad = [0u8; nh::BLOCK_BYTES];
            pad[..tail.len()].copy_from_slice(tail);
            let key = &self.l1[8 * blocks.len()..];
            nh::add_blocks(self.backend, &mut acc, key, &[pad]);
        }
        let bits = 8 * chunk.len() as u64;
        acc.map(|a| a.wrapping_add(bits))
    }

    /// UHASH-128 of `msg`.
    pub fn hash(&self, msg: &[u8]) -> [u8; OUT_BYTES] {
        let b = if msg.len() <= L1_BYTES {
            self.l1_chunk(msg)
        } else {
            let mut y = [1u64; ITERS];
            for chunk in msg.chunks(L1_BYTES) {
                let a = self.l1_chunk(chunk);
                for i in 0..ITERS {
                    y[i] = poly64(y[i], self.l2[i], a[i]);
                }
            }
            y
        };
        let mut out = [0u8; OUT_BYTES];
        for i in 0..ITERS {
            out[4 * i..4 * i + 4].copy_from_slice(&self.l3(i, b[i]).to_be_bytes());
        }
        out
    }

    /// L3-HASH of `0^8 ‖ b`: only the four low 16-bit words of the input are non-zero.
    fn l3(&self, i: usize, b: u64) -> u32 {
        let k = &self.l3k1[i];
        let mut y = 0u64;
        for (j, kj) in k.iter().enumerate() {
            let m = (b >> (48 - 16 * j)) & 0xffff;
            // m < 2^16, kj < 2^36: four products stay below 2^54.
            y += m * kj;
        }
        ((y % P36) as u32) ^ self.l3k2[i]
    }
}

/// `(k·y + m) mod p64` with the RFC's marker for m ≥ 2^64 − 2^32.
fn poly64(y: u64, k: u64, m: u64) -> u64 {
    if m >= 0u64.wrapping_sub(1 << 32) {
        let y = mulmod_p64(k, y, P64 - 1);
        mulmod_p64(k, y, m - 59)
    } else {
        mulmod_p64(k, y, m)
    }
}

/// `(a·b + c) mod p64`, using 2^64 ≡ 59 (mod p64).
fn mulmod_p64(a: u64, b: u64, c: u64) -> u64 {
    let t = a as u128 * b as u128 + c as u128;
    // t < 2^128: each fold shrinks the excess over 2^64 (< 2^70, < 2^64 + 2^12, < 2^64),
    // then one conditional subtraction.
    let t = (t >> 64) * 59 + (t as u64 as u128);
    let t = (t >> 64) * 59 + (t as u64 as u128);
    let t = (t >> 64) * 59 + (t as u64 as u128);
    let t = t as u64;
    if t >= P64 {
        t - P64
    } else {
        t
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::method::cipher::tests::hex;

    const VECTORS: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/uhash.txt"
    ));

    fn field(name: &str) -> Vec<u8> {
        let line = VECTORS
            .lines()
            .find(|l| l.starts_with(&format!("{name} = ")))
            .unwrap();
        hex(line.split(" = ").nth(1).unwrap())
    }

    /// The RFC 4418 vectors and more lengths, with NH on every backend this CPU has.
    #[test]
    fn rfc4418_and_extra_lengths() {
        for backend in crate::method::simd::tests::backends() {
            check_vectors(backend);
        }
    }

    fn check_vectors(backend: Backend) {
        let raw: [u8; KEY_BYTES] = field("key").try_into().unwrap();
        let pad = field("pad");
        let key = UhashKey::with_backend(&raw, backend);
        let (mut umac, mut uhash) = (0, 0);
        for line in VECTORS
            .lines()
            .filter(|l| !l.starts_with('#') && !l.contains(" = "))
        {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.is_empty() {
                continue;
            }
            let len: usize = f[2].parse().unwrap();
            let expect = hex(f[3]);
            let msg: Vec<u8> = if f[1] == "-" {
                (0..len).map(|i| ((i * 7 + 3) & 0xff) as u8).collect()
            } else {
                vec![u8::from_str_radix(f[1], 16).unwrap(); len]
            };
            let mut got = key.hash(&msg);
            if f[0] == "umac" {
                for (g, p) in got.iter_mut().zip(&pad) {
                    *g ^= p;
                }
                umac += 1;
            } else {
                uhash += 1;
            }
            assert_eq!(got.to_vec(), expect, "{backend:?} {line}");
        }
        assert_eq!((umac, uhash), (5, 83));
    }

    #[test]
    fn rfc4418_appendix_umac128_empty() {
        // RFC 4418 Appendix, UMAC-128 of the empty message with K = "abcdefghijklmnop".
        let raw: [u8; KEY_BYTES] = field("key").try_into().unwrap();
        let mut got = UhashKey::new(&raw).hash(b"");
        for (g, p) in got.iter_mut().zip(field("pad")) {
            *g ^= p;
        }
        assert_eq!(got.to_vec(), hex("32FEDB100C79AD58F07FF7643CC60465"));
    }

    #[test]
    fn mulmod_matches_u128() {
        let vals = [
            0u64,
            1,
            58,
            59,
            P64 - 1,
            u64::MAX,
            0x0123_4567_89ab_cdef,
            1 << 63,
        ];
        for &a in &vals {
            for &b in &vals {
                for &c in &vals {
                    let want = ((a as u128 * b as u128 + c as u128) % P64 as u128) as u64;
                    assert_eq!(mulmod_p64(a, b, c), want);
                }
            }
        }
    }
}
