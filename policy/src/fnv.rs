//! FNV-1a, the instance hash the names of an instance come from (the helper's gateway
//! state, the nft table, the worker's dedicated uid): stable across builds and runs,
//! which a restart after a crash relies on.

/// FNV-1a (64 bit), fed in pieces.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    /// Hashes `bytes` into the state.
    pub fn write(&mut self, bytes: &[u8]) -> &mut Self {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// FNV-1a over `parts`, each followed by a 0 byte so that the split between parts counts.
pub fn fnv1a<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let mut h = Fnv1a::default();
    for part in parts {
        h.write(part).write(&[0]);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_separated() {
        assert_ne!(fnv1a([&b"a"[..], b"b"]), fnv1a([&b"ab"[..]]));
        // The published FNV-1a test values: "" and "a".
        assert_eq!(Fnv1a::default().finish(), 0xcbf2_9ce4_8422_2325);
        assert_eq!(Fnv1a::default().write(b"a").finish(), 0xaf63_dc4c_8601_ec8c);
    }
}
