//! Every NH backend against the portable one on random keys and blocks; the RFC 4418 vectors run
//! on each backend in uhash's tests.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::method::simd::tests::{backends, Rng};

#[test]
fn every_backend_equals_portable_on_random_input() {
    let mut rng = Rng(0x0a11_0f4e_5e17_e5e5);
    let backends = backends();
    for round in 0..300 {
        // Words near 2^32 make the 32-bit additions wrap; round 0 is all ones.
        let word = |rng: &mut Rng| match round {
            0 => u32::MAX,
            _ if round % 5 == 0 => u32::MAX - (rng.next() % 4) as u32,
            _ => rng.next() as u32,
        };
        let key: Vec<u32> = (0..8 * 32 + 12).map(|_| word(&mut rng)).collect();
        let n = (rng.next() % 33) as usize;
        let blocks: Vec<[u8; BLOCK_BYTES]> = (0..n)
            .map(|_| {
                let mut b = [0u8; BLOCK_BYTES];
                for w in b.as_chunks_mut::<4>().0 {
                    *w = word(&mut rng).to_le_bytes();
                }
                b
            })
            .collect();
        // A key shorter than the blocks need: all backends stop at the same block.
        let key_words = if round % 7 == 0 {
            (rng.next() % key.len() as u64) as usize
        } else {
            key.len()
        };
        let start: [u64; ITERS] = std::array::from_fn(|_| rng.next());
        let mut want = start;
        add_blocks(Backend::PORTABLE, &mut want, &key[..key_words], &blocks);
        for &backend in &backends {
            let mut got = start;
            add_blocks(backend, &mut got, &key[..key_words], &blocks);
            assert_eq!(got, want, "{backend:?} round {round} blocks {n}");
        }
    }
}

/// The portable NH against RFC 4418's definition written out for one block and iteration 0.
#[test]
fn portable_matches_definition() {
    let key: Vec<u32> = (0..BLOCK_KEY_WORDS as u32)
        .map(|i| 0xfedc_ba98u32.wrapping_mul(i + 1))
        .collect();
    let block: [u8; BLOCK_BYTES] = std::array::from_fn(|i| (i as u8).wrapping_mul(29) ^ 0xa5);
    let m: Vec<u32> = block
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let mut acc = [0u64; ITERS];
    add_blocks(Backend::PORTABLE, &mut acc, &key, &[block]);
    for (i, got) in acc.iter().enumerate() {
        let want = (0..4).fold(0u64, |s, j| {
            let x = u64::from(m[j].wrapping_add(key[4 * i + j]));
            let y = u64::from(m[j + 4].wrapping_add(key[4 * i + j + 4]));
            s.wrapping_add(x * y)
        });
        assert_eq!(*got, want, "iteration {i}");
    }
}
