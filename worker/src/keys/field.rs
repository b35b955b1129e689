//! Constant-time arithmetic in GF(2^255 - 19) for the legacy point encoding.
//!
//! curve25519-dalek keeps its field type private, so the two conversions between fastd's legacy
//! packed encoding and dalek's points are done here on top of fiat-crypto's verified 5×51-bit
//! limb code. Exponentiations use fixed addition chains and all choices go through `subtle`, so
//! nothing depends on secret values (σ is encoded with this code).

use fiat_crypto::curve25519_64 as fiat;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroize;

/// An element of GF(p), p = 2^255 - 19, in fiat's tight representation.
#[derive(Clone, Copy)]
pub(crate) struct Fe(fiat::fiat_25519_tight_field_element);

impl Zeroize for Fe {
    fn zeroize(&mut self) {
        self.0 .0.zeroize();
    }
}

/// sqrt(-1) mod p, little endian.
const SQRT_M1: [u8; 32] = [
    0xb0, 0xa0, 0x0e, 0x4a, 0x27, 0x1b, 0xee, 0xc4, 0x78, 0xe4, 0x2f, 0xad, 0x06, 0x18, 0x43, 0x2f,
    0xa7, 0xd7, 0xfb, 0x3d, 0x99, 0x00, 0x4d, 0x2b, 0x0b, 0xdf, 0xc1, 0x4f, 0x80, 0x24, 0x83, 0x2b,
];

impl Fe {
    pub(crate) const ZERO: Fe = Fe(fiat::fiat_25519_tight_field_element([0; 5]));
    pub(crate) const ONE: Fe = Fe(fiat::fiat_25519_tight_field_element([1, 0, 0, 0, 0]));

    /// Small constants only (below 2^51).
    pub(crate) const fn from_u64(v: u64) -> Fe {
        Fe(fiat::fiat_25519_tight_field_element([v, 0, 0, 0, 0]))
    }

    /// Reads 255 bits little endian (bit 255 is ignored); non-canonical values are reduced.
    pub(crate) fn from_bytes(bytes: &[u8; 32]) -> Fe {
        let mut b = *bytes;
        b[31] &= 0x7F;
        let mut out = fiat::fiat_25519_tight_field_element([0; 5]);
        fiat::fiat_25519_from_bytes(&mut out, &b);
        b.zeroize();
        Fe(out)
    }

    /// The canonical (fully reduced) little-endian encoding; bit 255 is always clear.
    pub(crate) fn to_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        fiat::fiat_25519_to_bytes(&mut out, &self.0);
        out
    }

    /// Parses a big-endian hex constant (tests and constants only).
    #[cfg(test)]
    #[allow(clippy::unwrap_used)]
    pub(crate) fn from_be_hex(hex: &str) -> Fe {
        let mut le = [0u8; 32];
        for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
            let s = std::str::from_utf8(chunk).unwrap();
            le[31 - i] = u8::from_str_radix(s, 16).unwrap();
        }
        Fe::from_bytes(&le)
    }

    fn relax(&self) -> fiat::fiat_25519_loose_field_element {
        let mut out = fiat::fiat_25519_loose_field_element([0; 5]);
        fiat::fiat_25519_relax(&mut out, &self.0);
        out
    }

    fn carry(l: &fiat::fiat_25519_loose_field_element) -> Fe {
        let mut out = fiat::fiat_25519_tight_field_element([0; 5]);
        fiat::fiat_25519_carry(&mut out, l);
        Fe(out)
    }

    pub(crate) fn add(&self, rhs: &Fe) -> Fe {
        let mut l = fiat::fiat_25519_loose_field_element([0; 5]);
        fiat::fiat_25519_add(&mut l, &self.0, &rhs.0);
        Fe::carry(&l)
    }

    pub(crate) fn sub(&self, rhs: &Fe) -> Fe {
        let mut l = fiat::fiat_25519_loose_field_element([0; 5]);
        fiat::fiat_25519_sub(&mut l, &self.0, &rhs.0);
        Fe::carry(&l)
    }

    pub(crate) fn neg(&self) -> Fe {
        let mut l = fiat::fiat_25519_loose_field_element([0; 5]);
        fiat::fiat_25519_opp(&mut l, &self.0);
        Fe::carry(&l)
    }

    pub(crate) fn mul(&self, rhs: &Fe) -> Fe {
        let mut out = fiat::fiat_25519_tight_field_element([0; 5]);
        fiat::fiat_25519_carry_mul(&mut out, &self.relax(), &rhs.relax());
        Fe(out)
    }

    pub(crate) fn square(&self) -> Fe {
        let mut out = fiat::fiat_25519_tight_field_element([0; 5]);
        fiat::fiat_25519_carry_square(&mut out, &self.relax());
        Fe(out)
    }

    fn square_n(&self, n: u32) -> Fe {
        let mut r = *self;
        for _ in 0..n {
            r = r.square();
        }
        r
    }

    /// Returns (self^(2^250 - 1), self^11), the common prefix of inversion and square root.
    fn pow22501(&self) -> (Fe, Fe) {
        let t0 = self.square();
        let t1 = t0.square_n(2);
        let t2 = self.mul(&t1);
        let t3 = t0.mul(&t2);
        let t4 = t3.square();
        let t5 = t2.mul(&t4);
        let t7 = t5.square_n(5).mul(&t5);
        let t9 = t7.square_n(10).mul(&t7);
        let t11 = t9.square_n(20).mul(&t9);
        let t13 = t11.square_n(10).mul(&t7);
        let t15 = t13.square_n(50).mul(&t13);
        let t17 = t15.square_n(100).mul(&t15);
        let t19 = t17.square_n(50).mul(&t13);
        (t19, t3)
    }

    /// self^(p-2); zero maps to zero.
    pub(crate) fn invert(&self) -> Fe {
        let (t19, t3) = self.pow22501();
        t19.square_n(5).mul(&t3)
    }

    /// A square root of self (either one), or `None` (as a `Choice`) if self is not a square.
    pub(crate) fn sqrt(&self) -> (Choice, Fe) {
        // p ≡ 5 (mod 8): r = a^((p+3)/8) is a root of a or of -a; in the second case r·√-1 is.
        let (t19, _) = self.pow22501();
        let r = t19.square_n(2).mul(self).mul(self);
        let r2 = r.square();
        let is_root = r2.ct_eq(self);
        let is_neg_root = r2.ct_eq(&self.neg());
        let r_alt = r.mul(&Fe::from_bytes(&SQRT_M1));
        let root = Fe::conditional_select(&r, &r_alt, is_neg_root);
        (is_root | is_neg_root, root)
    }

    pub(crate) fn is_odd(&self) -> Choice {
        Choice::from(self.to_bytes()[0] & 1)
    }

    pub(crate) fn is_zero(&self) -> Choice {
        self.ct_eq(&Fe::ZERO)
    }

    /// self if `choice` is 0, -self if it is 1.
    pub(crate) fn conditional_negate(&self, choice: Choice) -> Fe {
        Fe::conditional_select(self, &self.neg(), choice)
    }
}

impl ConstantTimeEq for Fe {
    fn ct_eq(&self, other: &Fe) -> Choice {
        self.to_bytes().ct_eq(&other.to_bytes())
    }
}

impl ConditionallySelectable for Fe {
    fn conditional_select(a: &Fe, b: &Fe, choice: Choice) -> Fe {
        let mut out = [0u64; 5];
        fiat::fiat_25519_selectznz(&mut out, choice.unwrap_u8(), &a.0 .0, &b.0 .0);
        Fe(fiat::fiat_25519_tight_field_element(out))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn eq(a: &Fe, b: &Fe) -> bool {
        bool::from(a.ct_eq(b))
    }

    #[test]
    fn sqrt_m1_squares_to_minus_one() {
        let i = Fe::from_bytes(&SQRT_M1);
        assert!(eq(&i.square(), &Fe::ONE.neg()));
    }

    #[test]
    fn invert_and_sqrt() {
        let a = Fe::from_u64(486664);
        assert!(eq(&a.mul(&a.invert()), &Fe::ONE));
        for v in [4u64, 9, 2, 3, 5, 121666, 486662] {
            let x = Fe::from_u64(v);
            let (ok, r) = x.sqrt();
            if bool::from(ok) {
                assert!(eq(&r.square(), &x), "{v}");
            }
        }
        assert!(bool::from(Fe::from_u64(4).sqrt().0));
        // 2 is a non-square mod p (p ≡ 5 mod 8).
        assert!(!bool::from(Fe::from_u64(2).sqrt().0));
    }

    #[test]
    fn non_canonical_input_is_reduced() {
        // p + 1 encodes 1.
        let mut b = [0xFFu8; 32];
        b[0] = 0xEE;
        b[31] = 0x7F;
        assert!(eq(&Fe::from_bytes(&b), &Fe::ONE));
        assert_eq!(Fe::from_bytes(&b).to_bytes()[0], 1);
    }

    #[test]
    fn spec_constants() {
        let c = Fe::from_be_hex("70d9120b9f5ff9442d84f723fc03b0813a5e2c2eb482e57d3391fb5500ba81e7");
        let c_inv =
            Fe::from_be_hex("244b67206a3e5ba9f861819b67051701283138f9f243d5a140b404afdb4268e9");
        assert!(eq(&c.square(), &Fe::from_u64(486664).neg()));
        assert!(eq(&c.mul(&c_inv), &Fe::ONE));
        assert!(bool::from(c.is_odd()));
    }
}
