//! Salsa20 and Salsa20/12 keystreams for the packet path (docs/protocol.md §5.1).
//!
//! The `salsa20` crate computes one 64-byte block at a time, which made the keystream the largest
//! user-space cost of `salsa2012+umac`. Where the CPU has them, SSE2 computes four blocks per pass
//! and AVX2 eight, both in the same layout: lane `j` of vector `i` is word `i` of block `j`, so the
//! rounds are the scalar ones on vectors and only the output needs a transpose. Elsewhere the crate
//! stays the portable fallback.
//!
//! A [`Key`] keeps the backend it was built with ([`Backend::detect`] unless the tests force one).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod sse2;
#[cfg(test)]
mod tests;

use salsa20::cipher::{KeyIvInit, StreamCipher};
use salsa20::{Salsa12, Salsa20};
use zeroize::Zeroize;

use super::simd::{Backend, Kind};

/// Salsa20/20 (`salsa20`) or Salsa20/12 (`salsa2012`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounds {
    /// Salsa20/12: six double rounds.
    R12,
    /// Salsa20/20: ten double rounds.
    R20,
}

/// The 256-bit key of one session, with its round count and backend.
#[derive(Clone)]
pub struct Key {
    key: [u8; 32],
    rounds: Rounds,
    backend: Backend,
}

impl Drop for Key {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl Key {
    /// A key using the detected backend.
    pub fn new(key: &[u8; 32], rounds: Rounds) -> Self {
        Self::with_backend(key, rounds, Backend::detect())
    }

    /// A key using the given backend.
    pub fn with_backend(key: &[u8; 32], rounds: Rounds, backend: Backend) -> Self {
        Self {
            key: *key,
            rounds,
            backend,
        }
    }

    /// The keystream for `iv`, from block 0.
    pub fn stream(&self, iv: &[u8; 8]) -> Stream {
        let (k, r) = (&self.key, self.rounds);
        Stream(match self.backend.kind() {
            Kind::Portable => match r {
                Rounds::R12 => Inner::Portable12(Salsa12::new(k.into(), iv.into())),
                Rounds::R20 => Inner::Portable20(Salsa20::new(k.into(), iv.into())),
            },
            #[cfg(target_arch = "x86_64")]
            Kind::Sse2 => Inner::Sse2(Blocks::new(k, iv), r),
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2 => Inner::Avx2(Blocks::new(k, iv), r),
        })
    }
}

/// One keystream, consumed front to back by [`Stream::apply`].
pub struct Stream(Inner);

// Lives on the stack for one packet; boxing would allocate per packet.
#[allow(clippy::large_enum_variant)]
enum Inner {
    Portable12(Salsa12),
    Portable20(Salsa20),
    #[cfg(target_arch = "x86_64")]
    Sse2(Blocks<{ sse2::PASS_BYTES }>, Rounds),
    #[cfg(target_arch = "x86_64")]
    Avx2(Blocks<{ avx2::PASS_BYTES }>, Rounds),
}

impl Stream {
    /// XORs the next `data.len()` keystream bytes into `data`.
    #[inline]
    pub fn apply(&mut self, data: &mut [u8]) {
        match &mut self.0 {
            Inner::Portable12(s) => s.apply_keystream(data),
            Inner::Portable20(s) => s.apply_keystream(data),
            #[cfg(target_arch = "x86_64")]
            Inner::Sse2(b, r) => {
                let pass = match r {
                    Rounds::R12 => sse2::xor_pass::<6>,
                    Rounds::R20 => sse2::xor_pass::<10>,
                };
                // SAFETY: `Kind::Sse2` is only constructed after SSE2 was detected.
                b.apply(data, |input, bytes| unsafe { pass(input, bytes) });
            }
            #[cfg(target_arch = "x86_64")]
            Inner::Avx2(b, r) => {
                let pass = match r {
                    Rounds::R12 => avx2::xor_pass::<6>,
                    Rounds::R20 => avx2::xor_pass::<10>,
                };
                // SAFETY: `Kind::Avx2` is only constructed after AVX2 was detected.
                b.apply(data, |input, bytes| unsafe { pass(input, bytes) });
            }
        }
    }
}

/// The Salsa20 input words for `key` and `iv` at block counter 0.
#[cfg(target_arch = "x86_64")]
fn input_words(key: &[u8; 32], iv: &[u8; 8]) -> [u32; 16] {
    const SIGMA: &[u8; 16] = b"expand 32-byte k";
    let word = |b: &[u8], i: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&b[4 * i..4 * i + 4]);
        u32::from_le_bytes(w)
    };
    let mut x = [0u32; 16];
    for i in 0..4 {
        x[5 * i] = word(SIGMA, i);
        x[1 + i] = word(key, i);
        x[11 + i] = word(key, 4 + i);
    }
    x[6] = word(iv, 0);
    x[7] = word(iv, 1);
    x
}

/// A keystream computed `N` bytes (one SIMD pass) at a time. Whole passes are XORed straight into
/// the data; a pass only partly needed goes to `buf`, whose unused part serves the next call.
#[cfg(target_arch = "x86_64")]
struct Blocks<const N: usize> {
    /// Input words; words 8 and 9 hold the counter of the next block to compute.
    input: [u32; 16],
    buf: [u8; N],
    /// Bytes of `buf` already handed out (`N`: none left).
    pos: usize,
}

#[cfg(target_arch = "x86_64")]
impl<const N: usize> Blocks<N> {
    fn new(key: &[u8; 32], iv: &[u8; 8]) -> Self {
        Self {
            input: input_words(key, iv),
            buf: [0; N],
            pos: N,
        }
    }

    /// Moves the block counter past one pass.
    fn advance(&mut self) {
        let ctr = (u64::from(self.input[9]) << 32 | u64::from(self.input[8]))
            .wrapping_add((N / 64) as u64);
        self.input[8] = ctr as u32;
        self.input[9] = (ctr >> 32) as u32;
    }

    /// `pass(input, bytes)` XORs the keystream of the pass starting at `input`'s counter into
    /// `bytes`.
    #[inline(always)]
    fn apply(&mut self, data: &mut [u8], pass: impl Fn(&[u32; 16], &mut [u8; N])) {
        let left = N - self.pos;
        let (head, rest) = data.split_at_mut(left.min(data.len()));
        xor(head, &self.buf[self.pos..]);
        self.pos += head.len();
        let (whole, tail) = rest.as_chunks_mut::<N>();
        for bytes in whole {
            pass(&self.input, bytes);
            self.advance();
        }
        if !tail.is_empty() {
            self.buf = [0; N];
            pass(&self.input, &mut self.buf);
            self.advance();
            xor(tail, &self.buf);
            self.pos = tail.len();
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl<const N: usize> Drop for Blocks<N> {
    fn drop(&mut self) {
        self.input.zeroize();
        // What was handed out is the caller's; the rest is keystream nobody has seen.
        self.buf[self.pos..].zeroize();
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn xor(data: &mut [u8], keystream: &[u8]) {
    for (d, k) in data.iter_mut().zip(keystream) {
        *d ^= k;
    }
}
