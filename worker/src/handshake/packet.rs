//! Datagram framing around handshakes: the L2TP control header (§1.2), the first-byte
//! classification (§1.1) and the 4-byte handshake header (§2.1).

/// The control header fastd puts in front of v22 handshakes.
pub const L2TP_HEADER: [u8; 12] = [0xC8, 0x03, 0x00, 0x0C, 0, 0, 0, 0, 0, 0, 0, 0];

/// First byte of a handshake packet.
pub const PACKET_HANDSHAKE: u8 = 0x01;
/// Data packet type byte of compat (pre-v22) sessions.
pub const PACKET_DATA_COMPAT: u8 = 0x02;
/// Data packet type byte of v22 sessions.
pub const PACKET_DATA: u8 = 0x00;

/// Largest handshake fastd builds, L2TP header included (§1.5).
pub const MAX_HANDSHAKE_SIZE: usize = 1232;

/// What a received datagram is, after removing an optional control header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind<'a> {
    /// `body` starts with the 0x01 type byte.
    Handshake {
        body: &'a [u8],
        has_control_header: bool,
    },
    /// `body` starts with the type byte (0x00, 0x02, or another value below 0x80).
    Data {
        body: &'a [u8],
        type_byte: u8,
        has_control_header: bool,
    },
    Invalid,
}

/// Classifies a UDP payload the way fastd's receive path does (§1.1, §1.2).
pub fn classify(datagram: &[u8]) -> PacketKind<'_> {
    let (body, has_control_header) = match datagram.first() {
        Some(0xC8) => {
            if datagram.len() < 13 || datagram.get(1).map(|b| b & 0x0F) != Some(3) {
                return PacketKind::Invalid;
            }
            (datagram.get(12..).unwrap_or(&[]), true)
        }
        Some(_) => (datagram, false),
        None => return PacketKind::Invalid,
    };
    match body.first().copied() {
        Some(PACKET_HANDSHAKE) => PacketKind::Handshake {
            body,
            has_control_header,
        },
        Some(t) if t & 0x80 == 0 => PacketKind::Data {
            body,
            type_byte: t,
            has_control_header,
        },
        _ => PacketKind::Invalid,
    }
}

/// The TLV area of a handshake body (`01 00 len_be16 tlv...`); `None` if too short. Bytes after
/// the announced TLV length are ignored.
pub fn handshake_tlv(body: &[u8]) -> Option<&[u8]> {
    let hdr = body.get(..4)?;
    if hdr[0] != PACKET_HANDSHAKE {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
    body.get(4..4 + len)
}

/// Wraps a TLV area into a handshake datagram, with or without control header.
pub fn frame(tlv: &[u8], with_control_header: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + tlv.len());
    if with_control_header {
        out.extend_from_slice(&L2TP_HEADER);
    }
    let len = u16::try_from(tlv.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&[PACKET_HANDSHAKE, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(tlv);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify(&[]), PacketKind::Invalid);
        assert_eq!(classify(&[0x80]), PacketKind::Invalid);
        assert_eq!(classify(&[0xC8; 12]), PacketKind::Invalid);
        let mut wrapped = L2TP_HEADER.to_vec();
        wrapped.push(0x01);
        assert_eq!(
            classify(&wrapped),
            PacketKind::Handshake {
                body: &[0x01],
                has_control_header: true
            }
        );
        wrapped[1] = 0x02;
        assert_eq!(classify(&wrapped), PacketKind::Invalid);
        assert!(matches!(
            classify(&[0x05, 0]),
            PacketKind::Data { type_byte: 5, .. }
        ));
        assert_eq!(handshake_tlv(&[1, 0, 0, 2, 9]), None);
        assert_eq!(handshake_tlv(&[1, 0, 0, 1, 9, 9]), Some(&[9u8][..]));
    }
}
