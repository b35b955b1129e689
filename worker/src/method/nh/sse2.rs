//! NH in SSE2: per iteration, words 0..4 and 4..8 of the block plus key in two vectors, their
//! even and odd lanes multiplied into 64-bit sums.

use std::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_add_epi64, _mm_loadu_si128, _mm_mul_epu32, _mm_set1_epi32,
    _mm_srli_epi64, _mm_storeu_si128,
};

use super::{Pair, ITERS};

#[target_feature(enable = "sse2")]
pub fn sums<'a>(pairs: impl Iterator<Item = Pair<'a>>) -> [u64; ITERS] {
    let mut acc = [_mm_set1_epi32(0); ITERS];
    for (block, key) in pairs {
        let m = block.as_chunks::<16>().0;
        let k = key.as_chunks::<4>().0;
        // SAFETY: unaligned loads of 16 bytes from `[u8; 16]` and `[u32; 4]` arrays.
        let (lo, hi) = unsafe {
            (
                _mm_loadu_si128(m[0].as_ptr().cast::<__m128i>()),
                _mm_loadu_si128(m[1].as_ptr().cast::<__m128i>()),
            )
        };
        // SAFETY: as above; `k` has ITERS + 1 chunks of four words.
        let kv: [__m128i; ITERS + 1] =
            std::array::from_fn(|t| unsafe { _mm_loadu_si128(k[t].as_ptr().cast::<__m128i>()) });
        for (i, a) in acc.iter_mut().enumerate() {
            let x = _mm_add_epi32(lo, kv[i]);
            let y = _mm_add_epi32(hi, kv[i + 1]);
            *a = _mm_add_epi64(*a, _mm_mul_epu32(x, y));
            let (xo, yo) = (_mm_srli_epi64::<32>(x), _mm_srli_epi64::<32>(y));
            *a = _mm_add_epi64(*a, _mm_mul_epu32(xo, yo));
        }
    }
    acc.map(|a| {
        let mut lanes = [0u64; 2];
        // SAFETY: unaligned store of 16 bytes into a `[u64; 2]`.
        unsafe { _mm_storeu_si128(lanes.as_mut_ptr().cast::<__m128i>(), a) };
        lanes[0].wrapping_add(lanes[1])
    })
}
