//! `null` and `null@l2tp` (docs/protocol.md §5.7): no encryption, no authentication, no nonces.

use std::time::Instant;

use super::{Decrypted, DropReason, MethodError, MethodSession, MAX_KEEPALIVE_BYTES};

/// `null`: one type byte, then the payload.
pub struct NullSession {
    type_byte: u8,
}

impl NullSession {
    pub fn new(compat: bool) -> Self {
        Self {
            type_byte: if compat { 0x02 } else { 0x00 },
        }
    }
}

impl MethodSession for NullSession {
    fn overhead(&self) -> usize {
        1
    }

    fn encrypt(&mut self, buf: &mut [u8]) -> Result<(), MethodError> {
        *buf.first_mut().ok_or(MethodError::BufferTooSmall)? = self.type_byte;
        Ok(())
    }

    /// No nonces, so nothing is ever reordered (or a duplicate).
    fn receive(&mut self, buf: &mut [u8], _now: Instant) -> Result<Decrypted, DropReason> {
        // Any data type byte is accepted: the dispatcher already classified it as data.
        if buf.is_empty() {
            return Err(DropReason::Truncated);
        }
        Ok(Decrypted::in_order(1..buf.len()))
    }

    fn want_refresh(&self) -> bool {
        false
    }

    fn is_valid(&self) -> bool {
        true
    }
}

/// L2TPv3 data header: T=0, ver 3, reserved, session id 1.
const L2TP_DATA_HEADER: [u8; 8] = [0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01];
/// L2TP control header (docs/protocol.md §1.2) put in front of keepalives.
const L2TP_CONTROL_HEADER: [u8; 12] = [0xc8, 0x03, 0x00, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0];

/// `null@l2tp`: an 8-byte L2TPv3 session header, then the payload.
pub struct NullL2tpSession;

impl MethodSession for NullL2tpSession {
    fn overhead(&self) -> usize {
        L2TP_DATA_HEADER.len()
    }

    fn encrypt(&mut self, buf: &mut [u8]) -> Result<(), MethodError> {
        buf.get_mut(..L2TP_DATA_HEADER.len())
            .ok_or(MethodError::BufferTooSmall)?
            .copy_from_slice(&L2TP_DATA_HEADER);
        Ok(())
    }

    fn receive(&mut self, buf: &mut [u8], _now: Instant) -> Result<Decrypted, DropReason> {
        let header = buf.first_chunk::<8>().ok_or(DropReason::Truncated)?;
        if header[0] & 0x80 != 0 || header[1] & 0x0f != 3 || header[4..8] != [0, 0, 0, 1] {
            return Err(DropReason::BadHeader);
        }
        Ok(Decrypted::in_order(8..buf.len()))
    }

    /// A control header in front, so that a kernel L2TP offload hands it to user space.
    fn keepalive<'a>(
        &mut self,
        out: &'a mut [u8; MAX_KEEPALIVE_BYTES],
    ) -> Result<&'a [u8], MethodError> {
        let (ctrl, rest) = out.split_at_mut(L2TP_CONTROL_HEADER.len());
        ctrl.copy_from_slice(&L2TP_CONTROL_HEADER);
        rest[..L2TP_DATA_HEADER.len()].copy_from_slice(&L2TP_DATA_HEADER);
        Ok(&out[..L2TP_CONTROL_HEADER.len() + L2TP_DATA_HEADER.len()])
    }

    fn want_refresh(&self) -> bool {
        false
    }

    fn is_valid(&self) -> bool {
        true
    }
}
