//! Every backend against the published Salsa20 vectors, Bernstein's reference core, and the
//! `salsa20` crate on random keys, nonces, lengths and split points.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::method::cipher::tests::{hex, salsa_ref};
use crate::method::simd::tests::backends;
use crate::method::simd::tests::Rng;

fn keystream(key: &[u8; 32], iv: &[u8; 8], rounds: Rounds, backend: Backend, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    Key::with_backend(key, rounds, backend)
        .stream(iv)
        .apply(&mut v);
    v
}

/// The `salsa20` crate, independently of [`Backend::PORTABLE`]'s wrapping of it.
fn oracle(key: &[u8; 32], iv: &[u8; 8], rounds: Rounds, data: &mut [u8]) {
    match rounds {
        Rounds::R12 => Salsa12::new(key.into(), iv.into()).apply_keystream(data),
        Rounds::R20 => Salsa20::new(key.into(), iv.into()).apply_keystream(data),
    }
}

fn array<const N: usize>(s: &str) -> [u8; N] {
    hex(s).try_into().unwrap()
}

/// Salsa20/20 vectors of Bernstein's and eSTREAM's (as in the RustCrypto `salsa20` test suite):
/// key 80 00…, IV 0 is eSTREAM set 1 vector 0; the last one covers four blocks.
#[test]
fn salsa20_published_vectors_every_backend() {
    let k0 = [0u8; 32];
    let mut k1 = [0u8; 32];
    k1[0] = 0x80;
    let klong = array("0102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F20");
    let vectors: [(&[u8; 32], [u8; 8], &str); 4] = [
        (
            &k1,
            [0; 8],
            "e3be8fdd8beca2e3ea8ef9475b29a6e7003951e1097a5c38d23b7a5fad9f6844
             b22c97559e2723c7cbbd3fe4fc8d9a0744652a83e72a9c461876af4d7ef1a117",
        ),
        (
            &k0,
            [0x80, 0, 0, 0, 0, 0, 0, 0],
            "2aba3dc45b4947007b14c851cd694456b303ad59a465662803006705673d6c3e
             29f1d3510dfc0405463c03414e0e07e359f1f1816c68b2434a19d3eee0464873",
        ),
        (
            &k0,
            [0, 0, 0, 0, 0, 0, 0, 1],
            "b47f96aa96786135297a3c4ec56a613d0b80095324ff43239d684c57ffe42e1c
             44f3cc011613db6cdc880999a1e65aed1287fcb11c839c37120765afa73e5075",
        ),
        (
            &klong,
            array("0301040105090206"),
            "6ebcbdbf76fccc64ab05542bee8a67cbc28fa2e141fbefbb3a2f9b221909c8d7
             d4295258cb539770dd24d7ac3443769ffa27a50e60644264dc8b6b612683372e
             085d0a12bf240b189ce2b78289862b56fdc9fcffc33bef9325a2e81b98fb3fb9
             aa04cf434615ceffeb985c1cb08d8440e90b1d56ddeaea16d9e15affff1f698c
             483c7a466af1fe062574adfd2b06a62b4d98440719ea776385c470349a7ed696
             9583463ed5d26b8fefccb205da0f5bfa98c77812fe756b09eacc282aa42f4baf
             a79633189046e2b20f35b3e0e54aa3b929e23c0f47dc7bcd4f928b2a9764be7d
             4b8a50f980a50b35ad8087375e0c556ecbe6a7161e8653ce9391e1e6710ed4f1",
        ),
    ];
    for backend in backends() {
        for (key, iv, want) in &vectors {
            let want = hex(want);
            assert_eq!(
                keystream(key, iv, Rounds::R20, backend, want.len()),
                want,
                "{backend:?}"
            );
        }
    }
}

/// eSTREAM's Salsa20/12 vectors with 256-bit keys (reduced/12-rounds verified.test-vectors: set 1
/// vector 0 and set 6 vector 0), first 8 bytes of the keystream.
#[test]
fn salsa2012_estream_256_bit_key_every_backend() {
    let mut k1 = [0u8; 32];
    k1[0] = 0x80;
    let k6 = array("0053A6F94C9FF24598EB3E91E4378ADD3083D6297CCF2275C81B6EC11467BA0D");
    let vectors = [
        (k1, [0u8; 8], "AFE411ED1C4E07E4"),
        (k6, array("0D74DB42A91077DE"), "52E20CF8775AE882"),
    ];
    for backend in backends() {
        for (key, iv, want) in &vectors {
            let got = keystream(key, iv, Rounds::R12, backend, 8);
            assert_eq!(got, hex(want), "{backend:?}");
        }
    }
}

/// An eSTREAM Salsa20/20 vector over one whole AVX2 pass (salsa20/full verified.test-vectors,
/// 256-bit key 4849…67, IV 0): blocks 0, 3, 4 and 7, and the XOR of all eight blocks.
#[test]
fn salsa20_estream_eight_blocks_every_backend() {
    let key = array("48494A4B4C4D4E4F505152535455565758595A5B5C5D5E5F6061626364656667");
    let blocks = hex(
        "53AD3698A011F779AD71030F3EFBEBA0A7EE3C55789681B1591EF33A7BE521ED
         68FC36E58F53FFD6E1369B00E390E973F656ACB097E0D603BE59A0B8F7975B98
         A04698274C6AC6EC03F66ED3F94C08B79FFDBF2A1610E6F5814905E73AD6D0D2
         8164EEB8450D8ED0BB4B644761B4351252DD5DDF00C31E3DABA0BC17691CCFDC
         B826C7F071E796D34E3BFFB3C96E76A1209388392806947C7F19B86D379FA3AE
         DFCD19EBF49803DACC6E577E5B97B0F6D2036B6624D8196C96FCF02C865D30C1
         B505D41E2C207FA1C0A0E93413DDCFFC9BECA8030AFFAC2466E56482DA0EF428
         E63880B5021D3051F18679505A2B9D4F9B2C5A2D271D276DE3F51DBEBA934436",
    );
    let digest = hex(
        "7849651A820B1CDFE36D5D6632716534E0635EDEFD538122D80870B60FB055DB
         637C7CA2B78B116F83AFF46E40F8F71D4CD6D2E1B750D5E011D1DF2E80F7210A",
    );
    for backend in backends() {
        let ks = keystream(&key, &[0; 8], Rounds::R20, backend, 512);
        let ks: Vec<&[u8]> = ks.chunks(64).collect();
        for (want, blk) in blocks.chunks(64).zip([0, 3, 4, 7]) {
            assert_eq!(ks[blk], want, "{backend:?} block {blk}");
        }
        let mut xor = [0u8; 64];
        for b in &ks {
            for (x, k) in xor.iter_mut().zip(*b) {
                *x ^= k;
            }
        }
        assert_eq!(xor.to_vec(), digest, "{backend:?}");
    }
}

/// The reference core is pinned to eSTREAM's Salsa20/12 vectors (cipher::tests); every backend
/// must equal it block by block over more than two AVX2 passes, for both round counts.
#[test]
fn every_backend_equals_reference_core() {
    let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(5));
    let iv = [9u8, 8, 7, 6, 5, 4, 0, 1];
    for backend in backends() {
        for (rounds, r) in [(Rounds::R12, 12), (Rounds::R20, 20)] {
            let ks = keystream(&key, &iv, rounds, backend, 20 * 64);
            for (blk, got) in ks.chunks(64).enumerate() {
                let want = salsa_ref(r, &key, &iv, blk as u64);
                assert_eq!(got, &want[..], "{backend:?} {rounds:?} block {blk}");
            }
        }
    }
}

/// The 64-bit block counter carries from word 8 into word 9 inside a SIMD pass and between passes.
#[cfg(target_arch = "x86_64")]
#[test]
fn simd_counter_carries_into_high_word() {
    fn check<const N: usize>(pass: impl Fn(&[u32; 16], &mut [u8; N])) {
        let key = [0x42u8; 32];
        let iv = [1, 2, 3, 4, 5, 6, 7, 8];
        let start = (1u64 << 32) - 3;
        let mut b = Blocks::<N>::new(&key, &iv);
        b.input[8] = start as u32;
        let mut out = vec![0u8; 3 * N + 5];
        b.apply(&mut out, &pass);
        for (i, got) in out.chunks(64).enumerate() {
            let want = salsa_ref(20, &key, &iv, start + i as u64);
            assert_eq!(got, &want[..got.len()], "block {i} of pass {N}");
        }
    }
    if Backend::sse2().is_some() {
        // SAFETY: SSE2 was detected just above.
        check::<{ sse2::PASS_BYTES }>(|i, b| unsafe { sse2::xor_pass::<10>(i, b) });
    }
    if Backend::avx2().is_some() {
        // SAFETY: AVX2 was detected just above.
        check::<{ avx2::PASS_BYTES }>(|i, b| unsafe { avx2::xor_pass::<10>(i, b) });
    }
}

/// Random keys, IVs, data of 0..=3000 bytes, XORed in up to four pieces split at random offsets
/// (fastd takes 16 or 32 bytes first, then the packet): every backend equals the crate.
#[test]
fn every_backend_equals_crate_on_random_input() {
    let mut rng = Rng(0x5a15_a20c_0ffe_e000);
    let backends = backends();
    for round in 0..400 {
        let rounds = if round % 2 == 0 {
            Rounds::R12
        } else {
            Rounds::R20
        };
        let mut key = [0u8; 32];
        let mut iv = [0u8; 8];
        rng.fill(&mut key);
        rng.fill(&mut iv);
        let len = match round % 4 {
            0 => rng.below(3001),
            1 => rng.below(129),
            2 => 32 + 1378 + rng.below(3),
            _ => 64 * rng.below(47),
        };
        let mut plain = vec![0u8; len];
        rng.fill(&mut plain);
        let mut want = plain.clone();
        oracle(&key, &iv, rounds, &mut want);

        let mut cuts: Vec<usize> = (0..rng.below(4)).map(|_| rng.below(len + 1)).collect();
        if round % 3 == 0 {
            cuts.push(len.min([16, 32][rng.below(2)]));
        }
        cuts.sort_unstable();
        for &backend in &backends {
            let mut got = plain.clone();
            let mut stream = Key::with_backend(&key, rounds, backend).stream(&iv);
            let mut at = 0;
            for &cut in cuts.iter().chain([&len]) {
                stream.apply(&mut got[at..cut]);
                at = cut;
            }
            assert!(
                got == want,
                "{backend:?} {rounds:?} len {len} cuts {cuts:?} (round {round})"
            );
        }
    }
}
