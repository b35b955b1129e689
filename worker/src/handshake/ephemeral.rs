//! The shared ephemeral ("handshake") key pair and its rotation (docs/protocol.md §3.6).

use std::time::{Duration, Instant};

use crate::keys::{PublicKey, SecretKey};

pub const PREFERRED_FOR: Duration = Duration::from_secs(15);
pub const VALID_FOR: Duration = Duration::from_secs(30);

/// Where ephemeral secrets and timer jitter come from; injectable for deterministic tests.
pub trait Entropy: Send {
    /// A fresh ephemeral secret, sanitized like `fastd --generate-key`.
    fn ephemeral_secret(&mut self) -> SecretKey;
    /// A uniformly distributed value in `0..bound` (bound > 0).
    fn below(&mut self, bound: u64) -> u64;
}

/// The OS RNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn ephemeral_secret(&mut self) -> SecretKey {
        SecretKey::generate()
    }

    fn below(&mut self, bound: u64) -> u64 {
        let mut b = [0u8; 8];
        if getrandom::getrandom(&mut b).is_err() {
            return 0;
        }
        // Modulo bias is irrelevant for timer jitter.
        u64::from_le_bytes(b) % bound.max(1)
    }
}

#[derive(Debug, Clone)]
pub struct EphemeralKey {
    pub secret: SecretKey,
    pub public: PublicKey,
    pub serial: u64,
    pub created: Instant,
}

/// Current and previous ephemeral key.
#[derive(Debug, Default)]
pub struct EphemeralKeys {
    current: Option<EphemeralKey>,
    previous: Option<EphemeralKey>,
    next_serial: u64,
}

impl EphemeralKeys {
    /// The key to use for a handshake we send now, rotating if the current one is no longer
    /// preferred.
    pub fn for_sending(&mut self, now: Instant, entropy: &mut dyn Entropy) -> &EphemeralKey {
        if matches!(&self.current, Some(k) if now >= k.created + PREFERRED_FOR) {
            self.previous = self.current.take();
        }
        let serial = &mut self.next_serial;
        self.current.get_or_insert_with(|| {
            *serial += 1;
            let secret = entropy.ephemeral_secret();
            let public = secret.public();
            EphemeralKey {
                secret,
                public,
                serial: *serial,
                created: now,
            }
        })
    }

    /// The still valid key whose public encoding is `public`.
    pub fn find(&self, public: &[u8; 32], now: Instant) -> Option<&EphemeralKey> {
        [&self.current, &self.previous]
            .into_iter()
            .flatten()
            .find(|k| k.public.as_bytes() == public && now < k.created + VALID_FOR)
    }
}
