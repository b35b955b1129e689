//! Four Salsa20 blocks per pass in SSE2: lane `j` of vector `i` is word `i` of block `j`.

use std::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_loadu_si128, _mm_or_si128, _mm_set1_epi32, _mm_set_epi32,
    _mm_slli_epi32, _mm_srli_epi32, _mm_storeu_si128, _mm_unpackhi_epi32, _mm_unpackhi_epi64,
    _mm_unpacklo_epi32, _mm_unpacklo_epi64, _mm_xor_si128,
};

/// Keystream bytes per pass.
pub const PASS_BYTES: usize = 4 * 64;

macro_rules! quarter {
    ($x:ident, $a:literal, $b:literal, $c:literal, $d:literal) => {
        $x[$b] = _mm_xor_si128($x[$b], rotl!(_mm_add_epi32($x[$a], $x[$d]), 7));
        $x[$c] = _mm_xor_si128($x[$c], rotl!(_mm_add_epi32($x[$b], $x[$a]), 9));
        $x[$d] = _mm_xor_si128($x[$d], rotl!(_mm_add_epi32($x[$c], $x[$b]), 13));
        $x[$a] = _mm_xor_si128($x[$a], rotl!(_mm_add_epi32($x[$d], $x[$c]), 18));
    };
}

macro_rules! rotl {
    ($v:expr, $n:literal) => {{
        let v = $v;
        _mm_or_si128(_mm_slli_epi32::<$n>(v), _mm_srli_epi32::<{ 32 - $n }>(v))
    }};
}

/// XORs the keystream of the four blocks from `input`'s counter on into `bytes`; `DR` is the
/// number of double rounds.
#[target_feature(enable = "sse2")]
pub fn xor_pass<const DR: usize>(input: &[u32; 16], bytes: &mut [u8; PASS_BYTES]) {
    let ctr = u64::from(input[9]) << 32 | u64::from(input[8]);
    let ctrs: [u64; 4] = std::array::from_fn(|j| ctr.wrapping_add(j as u64));
    let mut init = [_mm_set1_epi32(0); 16];
    for (v, w) in init.iter_mut().zip(input) {
        *v = _mm_set1_epi32(*w as i32);
    }
    let lo = |c: u64| c as u32 as i32;
    let hi = |c: u64| (c >> 32) as u32 as i32;
    init[8] = _mm_set_epi32(lo(ctrs[3]), lo(ctrs[2]), lo(ctrs[1]), lo(ctrs[0]));
    init[9] = _mm_set_epi32(hi(ctrs[3]), hi(ctrs[2]), hi(ctrs[1]), hi(ctrs[0]));

    let mut x = init;
    for _ in 0..DR {
        quarter!(x, 0, 4, 8, 12);
        quarter!(x, 5, 9, 13, 1);
        quarter!(x, 10, 14, 2, 6);
        quarter!(x, 15, 3, 7, 11);
        quarter!(x, 0, 1, 2, 3);
        quarter!(x, 5, 6, 7, 4);
        quarter!(x, 10, 11, 8, 9);
        quarter!(x, 15, 12, 13, 14);
    }
    for (v, i) in x.iter_mut().zip(&init) {
        *v = _mm_add_epi32(*v, *i);
    }

    // Words 4g..4g+4 of all four blocks, transposed into 16 bytes of each block.
    for g in 0..4 {
        let t0 = _mm_unpacklo_epi32(x[4 * g], x[4 * g + 1]);
        let t1 = _mm_unpackhi_epi32(x[4 * g], x[4 * g + 1]);
        let t2 = _mm_unpacklo_epi32(x[4 * g + 2], x[4 * g + 3]);
        let t3 = _mm_unpackhi_epi32(x[4 * g + 2], x[4 * g + 3]);
        let rows = [
            _mm_unpacklo_epi64(t0, t2),
            _mm_unpackhi_epi64(t0, t2),
            _mm_unpacklo_epi64(t1, t3),
            _mm_unpackhi_epi64(t1, t3),
        ];
        for (block, row) in bytes.as_chunks_mut::<64>().0.iter_mut().zip(rows) {
            let p = block.as_chunks_mut::<16>().0[g]
                .as_mut_ptr()
                .cast::<__m128i>();
            // SAFETY: `p` points to 16 bytes of `bytes`; the unaligned load/store needs no
            // alignment.
            unsafe { _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), row)) };
        }
    }
}
