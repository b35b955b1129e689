//! Eight Salsa20 blocks per pass in AVX2: lane `j` of vector `i` is word `i` of block `j`.

use std::arch::x86_64::{
    __m256i, _mm256_add_epi32, _mm256_loadu_si256, _mm256_or_si256, _mm256_permute2x128_si256,
    _mm256_set1_epi32, _mm256_setr_epi32, _mm256_slli_epi32, _mm256_srli_epi32,
    _mm256_storeu_si256, _mm256_unpackhi_epi32, _mm256_unpackhi_epi64, _mm256_unpacklo_epi32,
    _mm256_unpacklo_epi64, _mm256_xor_si256,
};

/// Keystream bytes per pass.
pub const PASS_BYTES: usize = 8 * 64;

macro_rules! quarter {
    ($x:ident, $a:literal, $b:literal, $c:literal, $d:literal) => {
        $x[$b] = _mm256_xor_si256($x[$b], rotl!(_mm256_add_epi32($x[$a], $x[$d]), 7));
        $x[$c] = _mm256_xor_si256($x[$c], rotl!(_mm256_add_epi32($x[$b], $x[$a]), 9));
        $x[$d] = _mm256_xor_si256($x[$d], rotl!(_mm256_add_epi32($x[$c], $x[$b]), 13));
        $x[$a] = _mm256_xor_si256($x[$a], rotl!(_mm256_add_epi32($x[$d], $x[$c]), 18));
    };
}

macro_rules! rotl {
    ($v:expr, $n:literal) => {{
        let v = $v;
        _mm256_or_si256(
            _mm256_slli_epi32::<$n>(v),
            _mm256_srli_epi32::<{ 32 - $n }>(v),
        )
    }};
}

/// XORs the keystream of the eight blocks from `input`'s counter on into `bytes`; `DR` is the
/// number of double rounds.
#[target_feature(enable = "avx2")]
pub fn xor_pass<const DR: usize>(input: &[u32; 16], bytes: &mut [u8; PASS_BYTES]) {
    let ctr = u64::from(input[9]) << 32 | u64::from(input[8]);
    let c: [u64; 8] = std::array::from_fn(|j| ctr.wrapping_add(j as u64));
    let mut init = [_mm256_set1_epi32(0); 16];
    for (v, w) in init.iter_mut().zip(input) {
        *v = _mm256_set1_epi32(*w as i32);
    }
    let lo = |j: usize| c[j] as u32 as i32;
    let hi = |j: usize| (c[j] >> 32) as u32 as i32;
    init[8] = _mm256_setr_epi32(lo(0), lo(1), lo(2), lo(3), lo(4), lo(5), lo(6), lo(7));
    init[9] = _mm256_setr_epi32(hi(0), hi(1), hi(2), hi(3), hi(4), hi(5), hi(6), hi(7));

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
        *v = _mm256_add_epi32(*v, *i);
    }

    // Words 8h..8h+8 of all eight blocks, transposed into 32 bytes of each block.
    let (blocks, _) = bytes.as_chunks_mut::<64>();
    for h in 0..2 {
        let a = |i: usize| x[8 * h + i];
        let t0 = _mm256_unpacklo_epi32(a(0), a(1));
        let t1 = _mm256_unpackhi_epi32(a(0), a(1));
        let t2 = _mm256_unpacklo_epi32(a(2), a(3));
        let t3 = _mm256_unpackhi_epi32(a(2), a(3));
        let t4 = _mm256_unpacklo_epi32(a(4), a(5));
        let t5 = _mm256_unpackhi_epi32(a(4), a(5));
        let t6 = _mm256_unpacklo_epi32(a(6), a(7));
        let t7 = _mm256_unpackhi_epi32(a(6), a(7));
        // Words 8h..8h+4 (low half) and 8h+4..8h+8 (high half) of blocks j and j + 4.
        let low = [
            _mm256_unpacklo_epi64(t0, t2),
            _mm256_unpackhi_epi64(t0, t2),
            _mm256_unpacklo_epi64(t1, t3),
            _mm256_unpackhi_epi64(t1, t3),
        ];
        let high = [
            _mm256_unpacklo_epi64(t4, t6),
            _mm256_unpackhi_epi64(t4, t6),
            _mm256_unpacklo_epi64(t5, t7),
            _mm256_unpackhi_epi64(t5, t7),
        ];
        for j in 0..4 {
            let rows = [
                (j, _mm256_permute2x128_si256::<0x20>(low[j], high[j])),
                (j + 4, _mm256_permute2x128_si256::<0x31>(low[j], high[j])),
            ];
            for (block, row) in rows {
                let p = blocks[block].as_chunks_mut::<32>().0[h]
                    .as_mut_ptr()
                    .cast::<__m256i>();
                // SAFETY: `p` points to 32 bytes of `bytes`; the unaligned load/store needs no
                // alignment.
                unsafe { _mm256_storeu_si256(p, _mm256_xor_si256(_mm256_loadu_si256(p), row)) };
            }
        }
    }
}
