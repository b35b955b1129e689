//! Which x86 vector extensions the packet path's primitives (Salsa20, UHASH's NH) use: detected
//! once per process; the tests force each one in turn.

use std::sync::OnceLock;

/// Which implementation a primitive runs. A value other than [`Backend::PORTABLE`] exists only if
/// the CPU has its instructions (the SIMD paths rely on that).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend(Kind);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Sse2,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Backend {
    /// Plain Rust (for Salsa20 the `salsa20` crate); runs everywhere.
    pub const PORTABLE: Self = Self(Kind::Portable);

    /// SSE2, if this CPU has it.
    pub fn sse2() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("sse2") {
            return Some(Self(Kind::Sse2));
        }
        None
    }

    /// AVX2, if this CPU has it.
    pub fn avx2() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Some(Self(Kind::Avx2));
        }
        None
    }

    /// Every backend this CPU can run, slowest first.
    pub fn available() -> Vec<Self> {
        [Some(Self::PORTABLE), Self::sse2(), Self::avx2()]
            .into_iter()
            .flatten()
            .collect()
    }

    /// The fastest backend this CPU runs, decided on first use (in tests: unless forced).
    pub fn detect() -> Self {
        static BEST: OnceLock<Backend> = OnceLock::new();
        #[cfg(test)]
        if let Some(b) = tests::forced() {
            return b;
        }
        *BEST.get_or_init(|| Self::avx2().or_else(Self::sse2).unwrap_or(Self::PORTABLE))
    }

    pub(crate) fn kind(self) -> Kind {
        self.0
    }

    /// For benchmarks and test messages.
    pub fn name(self) -> &'static str {
        match self.0 {
            Kind::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Kind::Sse2 => "sse2",
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2 => "avx2",
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::Cell;

    use super::*;

    /// splitmix64: deterministic random inputs.
    pub(crate) struct Rng(pub(crate) u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        pub(crate) fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = self.next() as u8;
            }
        }
    }

    thread_local! {
        static FORCED: Cell<Option<Backend>> = const { Cell::new(None) };
    }

    /// What [`Backend::detect`] returns on this thread while `f` runs, so that whole-method tests
    /// (the real-fastd recordings) run on each backend.
    pub(crate) fn forcing<R>(backend: Backend, f: impl FnOnce() -> R) -> R {
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                FORCED.set(None);
            }
        }
        FORCED.set(Some(backend));
        let _reset = Reset;
        f()
    }

    pub(super) fn forced() -> Option<Backend> {
        FORCED.get()
    }

    /// The backends under test; on x86_64 SSE2 is part of the baseline, so at least it is there.
    pub(crate) fn backends() -> Vec<Backend> {
        let all = Backend::available();
        if cfg!(target_arch = "x86_64") {
            assert!(all.iter().any(|b| b.name() == "sse2"), "{all:?}");
        }
        all
    }

    #[test]
    fn detect_picks_the_widest_available() {
        let all = Backend::available();
        assert_eq!(Some(&Backend::detect()), all.last());
        assert_eq!(all.first(), Some(&Backend::PORTABLE));
        assert_eq!(
            forcing(Backend::PORTABLE, Backend::detect),
            Backend::PORTABLE
        );
        assert_eq!(forced(), None);
    }
}
