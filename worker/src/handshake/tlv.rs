//! TLV records of handshake packets (docs/protocol.md §2.2–2.3).
//!
//! Record headers are `type: u16 LE, length: u16 LE`; the 4-byte packet header in front of the
//! TLV area is big endian and lives in `packet.rs`.

/// Record type ids (§2.3).
pub mod id {
    pub const HANDSHAKE_TYPE: u16 = 0x0000;
    pub const REPLY_CODE: u16 = 0x0001;
    pub const ERROR_DETAIL: u16 = 0x0002;
    pub const FLAGS: u16 = 0x0003;
    pub const MODE: u16 = 0x0004;
    pub const PROTOCOL_NAME: u16 = 0x0005;
    pub const SENDER_KEY: u16 = 0x0006;
    pub const RECIPIENT_KEY: u16 = 0x0007;
    pub const SENDER_HANDSHAKE_KEY: u16 = 0x0008;
    pub const RECIPIENT_HANDSHAKE_KEY: u16 = 0x0009;
    pub const MTU: u16 = 0x000B;
    pub const METHOD_NAME: u16 = 0x000C;
    pub const VERSION_NAME: u16 = 0x000D;
    pub const METHOD_LIST: u16 = 0x000E;
    pub const TLV_MAC: u16 = 0x000F;
}

/// Types at or above this are ignored on receive.
const RECORD_MAX: usize = 16;

/// The records of one received TLV area. Later occurrences of a type replace earlier ones, a
/// record running past the end stops parsing silently, types ≥ 16 are skipped.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    tlv: &'a [u8],
    /// (value offset in `tlv`, value length) per record type.
    slots: [Option<(usize, usize)>; RECORD_MAX],
}

impl<'a> Records<'a> {
    pub fn parse(tlv: &'a [u8]) -> Records<'a> {
        let mut slots = [None; RECORD_MAX];
        let mut pos = 0usize;
        while let Some(hdr) = tlv.get(pos..pos + 4) {
            let ty = usize::from(u16::from_le_bytes([hdr[0], hdr[1]]));
            let len = usize::from(u16::from_le_bytes([hdr[2], hdr[3]]));
            let start = pos + 4;
            if tlv.get(start..start + len).is_none() {
                break;
            }
            if let Some(slot) = slots.get_mut(ty) {
                *slot = Some((start, len));
            }
            pos = start + len;
        }
        Records { tlv, slots }
    }

    /// The whole TLV area (what the MAC covers).
    pub fn tlv(&self) -> &'a [u8] {
        self.tlv
    }

    pub fn get(&self, id: u16) -> Option<&'a [u8]> {
        let (start, len) = (*self.slots.get(usize::from(id))?)?;
        self.tlv.get(start..start + len)
    }

    /// The value only if it has exactly `N` bytes: a record of the wrong length counts as absent.
    pub fn get_exact<const N: usize>(&self, id: u16) -> Option<&'a [u8; N]> {
        self.get(id)?.try_into().ok()
    }

    pub fn get_u8(&self, id: u16) -> Option<u8> {
        self.get_exact::<1>(id).map(|v| v[0])
    }

    /// Offset of the value of the (last) record `id` inside the TLV area.
    pub fn value_offset(&self, id: u16) -> Option<usize> {
        self.slots
            .get(usize::from(id))
            .copied()
            .flatten()
            .map(|(o, _)| o)
    }
}

/// Builds a TLV area in the order records are added (fastd's order matters for byte-identical
/// output because the MAC covers the bytes as sent).
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            buf: Vec::with_capacity(320),
        }
    }

    /// Values longer than 65535 bytes cannot be encoded; callers only pass bounded values (the
    /// method list is bounded by the config), so such a value is cut rather than panicking.
    pub fn record(&mut self, id: u16, value: &[u8]) -> &mut Writer {
        let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&id.to_le_bytes());
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf
            .extend_from_slice(value.get(..usize::from(len)).unwrap_or(value));
        self
    }

    pub fn u8(&mut self, id: u16, v: u8) -> &mut Writer {
        self.record(id, &[v])
    }

    pub fn u16_le(&mut self, id: u16, v: u16) -> &mut Writer {
        self.record(id, &v.to_le_bytes())
    }

    /// Current length, i.e. the offset where the next record's header starts.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn last_occurrence_wins_and_truncation_stops() {
        let mut w = Writer::new();
        w.u8(id::HANDSHAKE_TYPE, 1)
            .u8(id::HANDSHAKE_TYPE, 2)
            .u16_le(id::MTU, 1400);
        w.record(42, b"ignored");
        let mut bytes = w.into_bytes();
        bytes.extend_from_slice(&[0x0C, 0x00, 0x10, 0x00, b'x']); // runs past the end
        let r = Records::parse(&bytes);
        assert_eq!(r.get_u8(id::HANDSHAKE_TYPE), Some(2));
        assert_eq!(r.get_exact::<2>(id::MTU), Some(&[0x78, 0x05]));
        assert_eq!(r.get(id::METHOD_NAME), None);
        assert_eq!(r.get_exact::<1>(id::MTU), None);
    }
}
