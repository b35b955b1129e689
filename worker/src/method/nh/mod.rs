//! NH, the first layer of UHASH (RFC 4418 §5.2.2), for its four iterations at once: after the
//! keystream, the largest user-space cost of `salsa2012+umac`.
//!
//! Iteration `i` of a 32-byte block at key offset `8b` sums `(m[j] + k[4i+j]) · (m[j+4] +
//! k[4i+j+4])` over `j < 4`: SSE2 and AVX2 do two and four of these 32×32→64-bit products per
//! instruction; elsewhere plain Rust.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod sse2;
#[cfg(test)]
mod tests;

use super::simd::{Backend, Kind};

/// UHASH iterations (UHASH-128).
pub const ITERS: usize = 4;
/// Bytes of one NH block.
pub const BLOCK_BYTES: usize = 32;
/// Key words one block reads from its offset on: 8 for the first iteration, 4 more for each
/// further one.
pub const BLOCK_KEY_WORDS: usize = 8 + 4 * (ITERS - 1);

/// Adds the NH sums of `blocks` to `acc`, block `b` taking its key from `key[8b..]`. Stops at the
/// first block whose key would run past `key` (UHASH's key covers 32 blocks, the most one L1
/// chunk has).
pub fn add_blocks(
    backend: Backend,
    acc: &mut [u64; ITERS],
    key: &[u32],
    blocks: &[[u8; BLOCK_BYTES]],
) {
    let keys = (0..).map_while(|b: usize| key.get(8 * b..)?.first_chunk::<BLOCK_KEY_WORDS>());
    let pairs = blocks.iter().zip(keys);
    let sums = match backend.kind() {
        Kind::Portable => portable(pairs),
        // SAFETY: `Kind::Sse2` is only constructed after SSE2 was detected.
        #[cfg(target_arch = "x86_64")]
        Kind::Sse2 => unsafe { sse2::sums(pairs) },
        // SAFETY: `Kind::Avx2` is only constructed after AVX2 was detected.
        #[cfg(target_arch = "x86_64")]
        Kind::Avx2 => unsafe { avx2::sums(pairs) },
    };
    for (a, s) in acc.iter_mut().zip(sums) {
        *a = a.wrapping_add(s);
    }
}

/// One block with the key words it uses.
pub(crate) type Pair<'a> = (&'a [u8; BLOCK_BYTES], &'a [u32; BLOCK_KEY_WORDS]);

fn portable<'a>(pairs: impl Iterator<Item = Pair<'a>>) -> [u64; ITERS] {
    let mut acc = [0u64; ITERS];
    for (block, k) in pairs {
        let mut m = [0u32; 8];
        for (w, b) in m.iter_mut().zip(block.as_chunks::<4>().0) {
            *w = u32::from_le_bytes(*b);
        }
        for (i, a) in acc.iter_mut().enumerate() {
            let mut s = 0u64;
            for j in 0..4 {
                let x = m[j].wrapping_add(k[4 * i + j]) as u64;
                let y = m[j + 4].wrapping_add(k[4 * i + j + 4]) as u64;
                s = s.wrapping_add(x * y);
            }
            *a = a.wrapping_add(s);
        }
    }
    acc
}
