//! The common 24-byte header, the send nonce and the receive path shared by every crypto method
//! (docs/protocol.md §5.1, §5.8).

use std::time::Instant;

use super::cipher::{Cipher, Stream, NONCE_BYTES};
use super::replay::{Accept, ReplayWindow, WindowReject};
use super::{Decrypted, DropReason, MethodError, MethodSession};

/// type ‖ flags ‖ nonce ‖ tag
pub const HEADER_BYTES: usize = 24;
/// Bytes of an authentication tag.
pub const TAG_BYTES: usize = 16;
const TAG_OFFSET: usize = 2 + NONCE_BYTES;

/// One method family's sealing rule over the data after the header.
pub trait Aead: Send {
    /// Encrypts `data` in place for `nonce` and returns the tag.
    fn seal(&self, nonce: &[u8; NONCE_BYTES], data: &mut [u8]) -> [u8; TAG_BYTES];
    /// Verifies `tag` over the ciphertext `data` in constant time; only if it matches, decrypts
    /// `data` in place and returns true. On false, `data` is unchanged.
    fn open(&self, nonce: &[u8; NONCE_BYTES], data: &mut [u8], tag: &[u8; TAG_BYTES]) -> bool;
}

/// Where the tag pad and the data keystream come from (§5.3 vs §5.4).
pub struct TagLayout {
    /// Encrypts the data.
    pub data: Cipher,
    /// `None`: generic method, the pad is the data cipher's first 16 keystream bytes and the data
    /// uses the keystream from offset 16. `Some`: composed method, the pad comes from this cipher
    /// and the data uses its own keystream from offset 0.
    pub tag: Option<Cipher>,
}

impl TagLayout {
    /// The tag pad and the keystream positioned for the data.
    #[inline]
    pub fn begin(&self, nonce: &[u8; NONCE_BYTES]) -> ([u8; TAG_BYTES], Stream) {
        match &self.tag {
            None => {
                let mut s = self.data.stream(nonce);
                let pad = s.take();
                (pad, s)
            }
            Some(tag) => (tag.stream(nonce).take(), self.data.stream(nonce)),
        }
    }

    /// The cipher whose all-zero-IV keystream yields the GHASH key.
    pub fn hash_key_cipher(&self) -> &Cipher {
        self.tag.as_ref().unwrap_or(&self.data)
    }
}

pub fn xor16(a: &mut [u8; TAG_BYTES], b: &[u8; TAG_BYTES]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

/// A session of any method with the common header.
pub struct AeadSession<A> {
    aead: A,
    type_byte: u8,
    /// The nonce the next packet will carry.
    send_nonce: u64,
    replay: ReplayWindow,
}

/// 48-bit nonces: above this the session wants a refresh ...
const REFRESH_NONCE: u64 = 0xff << 40;
/// ... and from this on it must not send any more.
const INVALID_NONCE: u64 = 0xffff << 32;

impl<A: Aead> AeadSession<A> {
    pub fn new(aead: A, initiator: bool, compat: bool) -> Self {
        Self {
            aead,
            type_byte: if compat { 0x02 } else { 0x00 },
            send_nonce: if initiator { 3 } else { 2 },
            replay: ReplayWindow::new(initiator),
        }
    }

    /// Sets the next send nonce (tests replaying recorded traffic, and the nonce-space edges).
    #[cfg(test)]
    pub fn set_send_nonce(&mut self, n: u64) {
        self.send_nonce = n;
    }
}

fn nonce_bytes(n: u64) -> [u8; NONCE_BYTES] {
    let b = n.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

impl<A: Aead> MethodSession for AeadSession<A> {
    fn overhead(&self) -> usize {
        HEADER_BYTES
    }

    fn encrypt(&mut self, buf: &mut [u8]) -> Result<(), MethodError> {
        if !self.is_valid() {
            return Err(MethodError::NonceExhausted);
        }
        let (header, data) = buf
            .split_first_chunk_mut::<HEADER_BYTES>()
            .ok_or(MethodError::BufferTooSmall)?;
        let nonce = nonce_bytes(self.send_nonce);
        self.send_nonce += 2;
        let tag = self.aead.seal(&nonce, data);
        header[0] = self.type_byte;
        header[1] = 0;
        header[2..TAG_OFFSET].copy_from_slice(&nonce);
        header[TAG_OFFSET..].copy_from_slice(&tag);
        Ok(())
    }

    fn receive(&mut self, buf: &mut [u8], now: Instant) -> Result<Decrypted, DropReason> {
        let len = buf.len();
        let (header, data) = buf
            .split_first_chunk_mut::<HEADER_BYTES>()
            .ok_or(DropReason::Truncated)?;
        if header[0] != self.type_byte {
            return Err(DropReason::BadType);
        }
        if header[1] != 0 {
            return Err(DropReason::BadFlags);
        }
        let mut nonce = [0u8; NONCE_BYTES];
        nonce.copy_from_slice(&header[2..TAG_OFFSET]);
        let mut n = [0u8; 8];
        n[2..].copy_from_slice(&nonce);
        let n = u64::from_be_bytes(n);
        self.replay.check(n, now).map_err(|e| match e {
            WindowReject::TooOld => DropReason::TooOld,
            WindowReject::ReorderExpired => DropReason::ReorderExpired,
            WindowReject::WrongParity => DropReason::BadNonce,
        })?;
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&header[TAG_OFFSET..]);
        if !self.aead.open(&nonce, data, &tag) {
            return Err(DropReason::AuthFailed);
        }
        let payload = HEADER_BYTES..len;
        match self.replay.commit(n, now) {
            Accept::New => Ok(Decrypted::in_order(payload)),
            Accept::Reordered(age) => Ok(Decrypted {
                payload,
                // The window check bounds the age to 1..=64.
                reordered: Some(u8::try_from(age).unwrap_or(u8::MAX)),
            }),
            Accept::Duplicate(_) => Err(DropReason::Duplicate),
        }
    }

    fn want_refresh(&self) -> bool {
        self.send_nonce >= REFRESH_NONCE
    }

    fn is_valid(&self) -> bool {
        self.send_nonce < INVALID_NONCE
    }
}
