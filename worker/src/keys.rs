//! fastd's `ec25519-fhmqvc` keys: secret keys, and public keys in libuecc's legacy packed
//! encoding (docs/protocol.md §3.1–3.6).
//!
//! Group arithmetic is curve25519-dalek's Ed25519 group; only the encoding differs: fastd stores
//! `x·C⁻¹` (the x-coordinate on an isomorphic curve) plus the parity of y, where Ed25519 stores y
//! plus the parity of x. The conversions go through the small constant-time field in `field.rs` (fiat-crypto limbs).

pub(crate) mod field;

use core::fmt;

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

use field::Fe;

/// C = √(−486664), the odd root (RFC 7748's birational map), little endian.
const C: [u8; 32] = [
    0xe7, 0x81, 0xba, 0x00, 0x55, 0xfb, 0x91, 0x33, 0x7d, 0xe5, 0x82, 0xb4, 0x2e, 0x2c, 0x5e, 0x3a,
    0x81, 0xb0, 0x03, 0xfc, 0x23, 0xf7, 0x84, 0x2d, 0x44, 0xf9, 0x5f, 0x9f, 0x0b, 0x12, 0xd9, 0x70,
];
/// C⁻¹ mod p, little endian.
const C_INV: [u8; 32] = [
    0xe9, 0x68, 0x42, 0xdb, 0xaf, 0x04, 0xb4, 0x40, 0xa1, 0xd5, 0x43, 0xf2, 0xf9, 0x38, 0x31, 0x28,
    0x01, 0x17, 0x05, 0x67, 0x9b, 0x81, 0x61, 0xf8, 0xa9, 0x5b, 0x3e, 0x6a, 0x20, 0x67, 0x4b, 0x24,
];
/// Ed25519's d = −121665/121666, little endian.
const ED_D: [u8; 32] = [
    0xa3, 0x78, 0x59, 0x13, 0xca, 0x4d, 0xeb, 0x75, 0xab, 0xd8, 0x41, 0x41, 0x4d, 0x0a, 0x70, 0x00,
    0x98, 0xe8, 0x79, 0x77, 0x79, 0x40, 0xc7, 0x8c, 0x73, 0xfe, 0x6f, 0x2b, 0xee, 0x6c, 0x03, 0x52,
];

/// Why a key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key must be 64 hex digits, got {0} characters")]
    WrongLength(usize),
    #[error("key contains a character that is not a hex digit")]
    NotHex,
    #[error("invalid secret key: the lowest three bits must be zero")]
    LowBitsSet,
    #[error("invalid key: not a point on the curve")]
    NotOnCurve,
    #[error("invalid key: the identity point")]
    Identity,
}

fn hex_nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn decode_hex32(s: &str) -> Result<[u8; 32], KeyError> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return Err(KeyError::WrongLength(s.len()));
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        match (
            pair.first().copied().and_then(hex_nibble),
            pair.get(1).copied().and_then(hex_nibble),
        ) {
            (Some(hi), Some(lo)) => *o = (hi << 4) | lo,
            _ => {
                out.zeroize();
                return Err(KeyError::NotHex);
            }
        }
    }
    Ok(out)
}

/// Lower-case hex, as fastd prints keys.
pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0F)]));
    }
    s
}

/// A long-term or ephemeral secret key: a 256-bit little-endian integer n with n ≡ 0 (mod 8).
///
/// fastd does not clamp configured secrets, so neither does this type: n is used as it is.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for SecretKey {}

impl SecretKey {
    /// Accepts any 32 bytes whose lowest three bits are zero, as fastd does.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<SecretKey, KeyError> {
        if bytes[0] & 0x07 != 0 {
            return Err(KeyError::LowBitsSet);
        }
        Ok(SecretKey(bytes))
    }

    /// Parses the 64 hex digits of a `secret "…";` statement (either case).
    pub fn from_hex(s: &str) -> Result<SecretKey, KeyError> {
        let mut bytes = decode_hex32(s)?;
        let r = SecretKey::from_bytes(bytes);
        bytes.zeroize();
        r
    }

    /// Sanitizes 32 random bytes the way `fastd --generate-key` does (and ephemeral keys are made).
    pub fn from_random_bytes(mut bytes: [u8; 32]) -> SecretKey {
        bytes[0] &= 0xF8;
        bytes[31] &= 0x7F;
        bytes[31] |= 0x40;
        SecretKey(bytes)
    }

    /// A fresh key from the OS RNG, sanitized like `fastd --generate-key`.
    pub fn try_generate() -> Result<SecretKey, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes)?;
        let k = SecretKey::from_random_bytes(bytes);
        bytes.zeroize();
        Ok(k)
    }

    /// Like [`SecretKey::try_generate`].
    ///
    /// # Panics
    /// If the OS RNG fails, which fastd treats as fatal too: there is no safe way to go on.
    pub fn generate() -> SecretKey {
        match SecretKey::try_generate() {
            Ok(k) => k,
            Err(e) => panic!("unable to read from the OS random number generator: {e}"),
        }
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }

    /// n as a scalar (mod ℓ); B has order ℓ, so n·B = (n mod ℓ)·B.
    pub fn scalar(&self) -> Scalar {
        Scalar::from_bytes_mod_order(self.0)
    }

    /// n' = n / 8 (exact), as a scalar mod ℓ: what FHMQV-C multiplies with (§3.2, §3.7).
    pub fn scalar_div8(&self) -> Scalar {
        let mut shifted = [0u8; 32];
        for (i, out) in shifted.iter_mut().enumerate() {
            let lo = self.0.get(i).copied().unwrap_or(0);
            let hi = self.0.get(i + 1).copied().unwrap_or(0);
            *out = (lo >> 3) | (hi << 5);
        }
        let s = Scalar::from_bytes_mod_order(shifted);
        shifted.zeroize();
        s
    }

    pub fn public(&self) -> PublicKey {
        PublicKey::from_point(&EdwardsPoint::mul_base(&self.scalar()))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// A public key (or any point) in fastd's legacy packed encoding, together with the decoded point.
///
/// The bytes are kept as given: FHMQV-C hashes and compares the record bytes exactly as they
/// went over the wire, and a non-canonical x (in `[p, 2^255)`) decodes to the same point.
#[derive(Clone, Copy)]
pub struct PublicKey {
    bytes: [u8; 32],
    point: EdwardsPoint,
}

impl PublicKey {
    /// Decodes a legacy packed key; refuses non-points and the identity, as fastd does for
    /// configured peer keys and for every key received in a handshake.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, KeyError> {
        let k = PublicKey::from_bytes_allow_identity(bytes)?;
        if k.is_identity() {
            return Err(KeyError::Identity);
        }
        Ok(k)
    }

    /// Decodes a legacy packed key, accepting the identity (which `--show-key` prints for 8ℓ).
    pub fn from_bytes_allow_identity(bytes: &[u8; 32]) -> Result<PublicKey, KeyError> {
        let point = decode_legacy(bytes).ok_or(KeyError::NotOnCurve)?;
        Ok(PublicKey {
            bytes: *bytes,
            point,
        })
    }

    pub fn from_hex(s: &str) -> Result<PublicKey, KeyError> {
        PublicKey::from_bytes(&decode_hex32(s)?)
    }

    /// Encodes a point (constant time: also used for the shared secret σ).
    pub fn from_point(point: &EdwardsPoint) -> PublicKey {
        PublicKey {
            bytes: encode_legacy(point),
            point: *point,
        }
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    pub fn to_hex(&self) -> String {
        encode_hex(&self.bytes)
    }

    pub fn point(&self) -> &EdwardsPoint {
        &self.point
    }

    pub fn is_identity(&self) -> bool {
        self.point.is_identity()
    }
}

impl From<&EdwardsPoint> for PublicKey {
    fn from(p: &EdwardsPoint) -> PublicKey {
        PublicKey::from_point(p)
    }
}

impl From<EdwardsPoint> for PublicKey {
    fn from(p: EdwardsPoint) -> PublicKey {
        PublicKey::from_point(&p)
    }
}

impl From<&PublicKey> for EdwardsPoint {
    fn from(k: &PublicKey) -> EdwardsPoint {
        k.point
    }
}

impl From<PublicKey> for EdwardsPoint {
    fn from(k: PublicKey) -> EdwardsPoint {
        k.point
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &PublicKey) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for PublicKey {}

impl core::hash::Hash for PublicKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

/// Legacy packed bytes → point (§3.4); `None` if the bytes are not a point.
fn decode_legacy(bytes: &[u8; 32]) -> Option<EdwardsPoint> {
    let y_parity = Choice::from(bytes[31] >> 7);
    let x_l = Fe::from_bytes(bytes);
    let x_l2 = x_l.square();
    let den = Fe::ONE.sub(&Fe::from_u64(486660).mul(&x_l2));
    let num = Fe::ONE.sub(&Fe::from_u64(486664).mul(&x_l2));
    // libuecc does not guard den = 0 (no real key hits it); refuse it.
    if bool::from(den.is_zero()) {
        return None;
    }
    let (is_square, y) = num.mul(&den.invert()).sqrt();
    if !bool::from(is_square) {
        return None;
    }
    let y = y.conditional_negate(y.is_odd() ^ y_parity);
    let x = Fe::from_bytes(&C).mul(&x_l);
    let mut compressed = y.to_bytes();
    compressed[31] |= x.is_odd().unwrap_u8() << 7;
    CompressedEdwardsY(compressed).decompress()
}

/// Point → legacy packed bytes (§3.5), constant time.
fn encode_legacy(point: &EdwardsPoint) -> [u8; 32] {
    let mut c = point.compress().to_bytes();
    let x_sign = Choice::from(c[31] >> 7);
    c[31] &= 0x7F;
    let y = Fe::from_bytes(&c);
    c.zeroize();
    let y2 = y.square();
    let num = y2.sub(&Fe::ONE);
    let den = Fe::from_bytes(&ED_D).mul(&y2).add(&Fe::ONE);
    // A compressed point of dalek always has a root here; for the identity x = 0.
    let (_, x) = num.mul(&den.invert()).sqrt();
    let x = x.conditional_negate(x.is_odd() ^ x_sign);
    let x_l = x.mul(&Fe::from_bytes(&C_INV));
    let mut out = x_l.to_bytes();
    out[31] |= y.is_odd().unwrap_u8() << 7;
    out
}

/// Constant-time comparison of two encodings (used for MAC-like checks on keys).
pub fn ct_eq_bytes(a: &[u8; 32], b: &[u8; 32]) -> bool {
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const KEYS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/keys.txt"));
    const KEYS_ED: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/keys-ed25519.txt"
    ));

    fn lines(s: &str) -> impl Iterator<Item = Vec<&str>> {
        s.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| l.split_whitespace().collect())
    }

    fn h32(s: &str) -> [u8; 32] {
        decode_hex32(s).unwrap()
    }

    #[test]
    fn every_fastd_pair_matches() {
        let mut n = 0;
        for f in lines(KEYS) {
            let sk = SecretKey::from_hex(f[0]).unwrap();
            assert_eq!(sk.to_hex(), f[0]);
            let pk = sk.public();
            assert_eq!(pk.to_hex(), f[1], "secret {}", f[0]);
            n += 1;
        }
        assert_eq!(n, 16);
    }

    #[test]
    fn ed25519_mapping_round_trips() {
        let mut n = 0;
        for f in lines(KEYS_ED) {
            let legacy = h32(f[0]);
            let ed = h32(f[1]);
            let k = PublicKey::from_bytes_allow_identity(&legacy).unwrap();
            assert_eq!(k.point().compress().to_bytes(), ed, "{}", f[0]);
            let p = CompressedEdwardsY(ed).decompress().unwrap();
            assert_eq!(PublicKey::from_point(&p).as_bytes(), &legacy);
            if f[2] != "-" {
                assert_eq!(p.to_montgomery().to_bytes(), h32(f[2]));
            }
            n += 1;
        }
        assert_eq!(n, 16);
    }

    #[test]
    fn base_point_and_identity() {
        let b = PublicKey::from_point(&curve25519_dalek::constants::ED25519_BASEPOINT_POINT);
        assert_eq!(
            b.to_hex(),
            "d46bfe7f39fa8c22e19623eb26b78e6a34748b66d6a326dd195e9f2150437c54"
        );
        let id = h32("0000000000000000000000000000000000000000000000000000000000000080");
        assert_eq!(PublicKey::from_bytes(&id), Err(KeyError::Identity));
        assert!(PublicKey::from_bytes_allow_identity(&id)
            .unwrap()
            .is_identity());
    }

    #[test]
    fn secret_hex_parsing() {
        let lower = "5035de5b4ea448b74e9a373765207095057a9485fd9dca5fadb9c1b86347bd35";
        let upper = lower.to_uppercase();
        assert_eq!(
            SecretKey::from_hex(&upper).unwrap().as_bytes(),
            SecretKey::from_hex(lower).unwrap().as_bytes()
        );
        assert_eq!(
            SecretKey::from_hex(&lower[..62]).unwrap_err(),
            KeyError::WrongLength(62)
        );
        let bad = format!("{}zz", &lower[..62]);
        assert_eq!(SecretKey::from_hex(&bad).unwrap_err(), KeyError::NotHex);
        let low = format!("51{}", &lower[2..]);
        assert_eq!(SecretKey::from_hex(&low).unwrap_err(), KeyError::LowBitsSet);
        assert_eq!(
            SecretKey::from_hex("é").unwrap_err(),
            KeyError::WrongLength(2)
        );
    }

    #[test]
    fn generated_keys_are_sanitized() {
        for _ in 0..8 {
            let k = SecretKey::generate();
            let b = k.as_bytes();
            assert_eq!(b[0] & 7, 0);
            assert_eq!(b[31] & 0xC0, 0x40);
            let pk = k.public();
            assert_eq!(PublicKey::from_bytes(pk.as_bytes()).unwrap(), pk);
        }
        let k = SecretKey::from_random_bytes([0xFF; 32]);
        assert_eq!(k.as_bytes()[0], 0xF8);
        assert_eq!(k.as_bytes()[31], 0x7F);
    }

    #[test]
    fn div8_scalar_times_8_is_n() {
        let k = SecretKey::from_hex(&format!("f8{}", "ff".repeat(31))).unwrap();
        assert_eq!(k.scalar_div8() * Scalar::from(8u8), k.scalar());
    }

    #[test]
    fn non_points_are_rejected() {
        // Count how many of a few structured inputs are points; about half of x values are.
        let mut rejected = 0;
        for i in 0u8..32 {
            let mut b = [0u8; 32];
            b[0] = i;
            b[5] = 0x33;
            match PublicKey::from_bytes(&b) {
                Ok(k) => {
                    // Re-encoding a decoded key gives back the same bytes (canonical inputs).
                    assert_eq!(PublicKey::from_point(k.point()).as_bytes(), &b);
                }
                Err(e) => {
                    assert_eq!(e, KeyError::NotOnCurve);
                    rejected += 1;
                }
            }
        }
        assert!(rejected > 4 && rejected < 28, "{rejected}");
    }

    #[test]
    fn non_canonical_x_decodes_like_reduced() {
        // x_L = p + 1 ≡ 1: same point as x_L = 1 (if that is a point at all), bytes kept.
        let mut nc = [0xFFu8; 32];
        nc[0] = 0xEE;
        nc[31] = 0x7F;
        let mut one = [0u8; 32];
        one[0] = 1;
        match (PublicKey::from_bytes(&nc), PublicKey::from_bytes(&one)) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.point(), b.point());
                assert_eq!(a.as_bytes(), &nc);
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!("non-canonical encoding decoded differently"),
        }
    }
}
