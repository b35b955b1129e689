//! FHMQV-C as fastd computes it and the key derivation (docs/protocol.md §3.7–3.8, §2.9).

use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::keys::{PublicKey, SecretKey};

/// The four public keys of one handshake, named by role (they never swap, §3.8).
#[derive(Debug, Clone, Copy)]
pub struct Participants<'a> {
    /// Â, the initiator's long-term key.
    pub initiator_key: &'a PublicKey,
    /// B̂, the responder's long-term key.
    pub responder_key: &'a PublicKey,
    /// X, the initiator's ephemeral key.
    pub initiator_handshake_key: &'a PublicKey,
    /// Y, the responder's ephemeral key.
    pub responder_handshake_key: &'a PublicKey,
}

/// σ and K1 of one handshake; zeroized on drop.
#[derive(Clone)]
pub struct SharedSecret {
    sigma: [u8; 32],
    k1: [u8; 32],
    info: [u8; 128],
}

impl Drop for SharedSecret {
    fn drop(&mut self) {
        self.sigma.zeroize();
        self.k1.zeroize();
    }
}

impl core::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

/// d and e: the two halves of SHA-256(Y ‖ X ‖ B̂ ‖ Â), each with bit 127 set.
pub fn d_e(p: &Participants<'_>) -> (Scalar, Scalar) {
    let mut h = Sha256::new();
    h.update(p.responder_handshake_key.as_bytes());
    h.update(p.initiator_handshake_key.as_bytes());
    h.update(p.responder_key.as_bytes());
    h.update(p.initiator_key.as_bytes());
    let hash = h.finalize();
    let mut d = [0u8; 32];
    let mut e = [0u8; 32];
    d[..16].copy_from_slice(&hash[..16]);
    e[..16].copy_from_slice(&hash[16..]);
    d[15] |= 0x80;
    e[15] |= 0x80;
    (
        Scalar::from_bytes_mod_order(d),
        Scalar::from_bytes_mod_order(e),
    )
}

/// Which side of the handshake we compute for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Initiator,
    Responder,
}

/// Computes σ and K1 from our long-term and ephemeral secrets; `None` if σ is the identity.
pub fn shared_secret(
    side: Side,
    own_secret: &SecretKey,
    own_ephemeral: &SecretKey,
    p: &Participants<'_>,
) -> Option<SharedSecret> {
    let (d, e) = d_e(p);
    let (s, point) = match side {
        Side::Initiator => (
            d * own_secret.scalar_div8() + own_ephemeral.scalar_div8(),
            e * p.responder_key.point() + p.responder_handshake_key.point(),
        ),
        Side::Responder => (
            e * own_secret.scalar_div8() + own_ephemeral.scalar_div8(),
            d * p.initiator_key.point() + p.initiator_handshake_key.point(),
        ),
    };
    let sigma_point = s * point.mul_by_cofactor();
    if sigma_point.is_identity() {
        return None;
    }
    let sigma = *PublicKey::from_point(&sigma_point).as_bytes();

    let mut info = [0u8; 128];
    info[..32].copy_from_slice(p.initiator_key.as_bytes());
    info[32..64].copy_from_slice(p.responder_key.as_bytes());
    info[64..96].copy_from_slice(p.initiator_handshake_key.as_bytes());
    info[96..].copy_from_slice(p.responder_handshake_key.as_bytes());
    let mut k1 = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&[0u8; 32]), &sigma)
        .expand(&info, &mut k1)
        .ok()?;

    // The session key's info puts the ephemeral keys first (§3.8; fastd's docs are wrong).
    let mut session_info = [0u8; 128];
    session_info[..64].copy_from_slice(&info[64..]);
    session_info[64..].copy_from_slice(&info[..64]);
    Some(SharedSecret {
        sigma,
        k1,
        info: session_info,
    })
}

impl SharedSecret {
    pub fn sigma(&self) -> &[u8; 32] {
        &self.sigma
    }

    /// K1, the HMAC key of the TLV tag.
    pub fn k1(&self) -> &[u8; 32] {
        &self.k1
    }

    /// The method's key material: HKDF(salt K1, IKM σ, info X‖Y‖Â‖B̂‖method, len).
    /// `None` only if `len` exceeds HKDF's limit (8160 bytes).
    pub fn session_key(&self, method: &str, len: usize) -> Option<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(vec![0u8; len]);
        if len == 0 {
            return Some(out);
        }
        let mut info = Vec::with_capacity(128 + method.len());
        info.extend_from_slice(&self.info);
        info.extend_from_slice(method.as_bytes());
        Hkdf::<Sha256>::new(Some(&self.k1), &self.sigma)
            .expand(&info, &mut out)
            .ok()?;
        Some(out)
    }

    /// HMAC-SHA256 with K1 over a TLV area whose tag value is already zeroed.
    pub fn tag(&self, tlv_with_zero_tag: &[u8]) -> [u8; 32] {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.k1) else {
            return [0u8; 32]; // unreachable: HMAC accepts any key length
        };
        mac.update(tlv_with_zero_tag);
        mac.finalize().into_bytes().into()
    }

    /// Verifies the tag stored at `tag_offset` (32 value bytes) of `tlv`, in constant time.
    pub fn verify_tag(&self, tlv: &[u8], tag_offset: usize) -> bool {
        let mut copy = tlv.to_vec();
        let Some(slot) = copy.get_mut(tag_offset..tag_offset + 32) else {
            return false;
        };
        let mut received = [0u8; 32];
        received.copy_from_slice(slot);
        slot.fill(0);
        bool::from(self.tag(&copy).ct_eq(&received))
    }
}
