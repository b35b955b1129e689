//! NH in AVX2: two iterations per vector (the low half iteration `2p`, the high half `2p + 1`),
//! which read overlapping key words, so each vector is one unaligned load of the key.

use std::arch::x86_64::{
    __m256i, _mm256_add_epi32, _mm256_add_epi64, _mm256_loadu_si256, _mm256_mul_epu32,
    _mm256_permute4x64_epi64, _mm256_set1_epi32, _mm256_srli_epi64, _mm256_storeu_si256,
};

use super::{Pair, ITERS};

#[target_feature(enable = "avx2")]
pub fn sums<'a>(pairs: impl Iterator<Item = Pair<'a>>) -> [u64; ITERS] {
    let mut acc = [_mm256_set1_epi32(0); ITERS / 2];
    for (block, key) in pairs {
        // SAFETY: unaligned load of 32 bytes from a `[u8; 32]`.
        let m = unsafe { _mm256_loadu_si256(block.as_ptr().cast::<__m256i>()) };
        // Words 0..4 and 4..8 of the block, each in both halves.
        let lo = _mm256_permute4x64_epi64::<0x44>(m);
        let hi = _mm256_permute4x64_epi64::<0xee>(m);
        for (p, a) in acc.iter_mut().enumerate() {
            let (kx, ky) = (&key[8 * p..8 * p + 8], &key[8 * p + 4..8 * p + 12]);
            // SAFETY: unaligned loads of 8 words from slices of exactly 8 words.
            let (kx, ky) = unsafe {
                (
                    _mm256_loadu_si256(kx.as_ptr().cast::<__m256i>()),
                    _mm256_loadu_si256(ky.as_ptr().cast::<__m256i>()),
                )
            };
            let x = _mm256_add_epi32(lo, kx);
            let y = _mm256_add_epi32(hi, ky);
            *a = _mm256_add_epi64(*a, _mm256_mul_epu32(x, y));
            let (xo, yo) = (_mm256_srli_epi64::<32>(x), _mm256_srli_epi64::<32>(y));
            *a = _mm256_add_epi64(*a, _mm256_mul_epu32(xo, yo));
        }
    }
    let mut lanes = [[0u64; 4]; ITERS / 2];
    for (l, a) in lanes.iter_mut().zip(acc) {
        // SAFETY: unaligned store of 32 bytes into a `[u64; 4]`.
        unsafe { _mm256_storeu_si256(l.as_mut_ptr().cast::<__m256i>(), a) };
    }
    std::array::from_fn(|i| {
        let l = &lanes[i / 2];
        let h = 2 * (i % 2);
        l[h].wrapping_add(l[h + 1])
    })
}
