//! Builders for the four kinds of handshake packets, in fastd's record order (§2.4–2.7).

use super::fhmqvc::SharedSecret;
use super::packet::frame;
use super::tlv::{id, Writer};
use super::types::Mode;
use crate::keys::PublicKey;

pub const PROTOCOL_NAME: &[u8] = b"ec25519-fhmqvc";
pub const FLAG_L2TP: u8 = 0x01;

/// Settings shared by every packet we build.
#[derive(Debug, Clone, Copy)]
pub struct Common<'a> {
    pub mode: Mode,
    pub version: &'a str,
    /// Send a flags record announcing L2TP support (false only when emulating pre-v22).
    pub announce_l2tp: bool,
}

impl Common<'_> {
    fn start(&self, w: &mut Writer, ty: u8) {
        w.u8(id::HANDSHAKE_TYPE, ty);
        if self.announce_l2tp {
            w.u8(id::FLAGS, FLAG_L2TP);
        }
    }
}

/// Packet 1; `recipient` is omitted for fast reconnect. Returns the TLV area.
pub fn init(
    c: &Common<'_>,
    own: &PublicKey,
    recipient: Option<&PublicKey>,
    x: &PublicKey,
) -> Vec<u8> {
    let mut w = Writer::new();
    c.start(&mut w, 1);
    w.u8(id::MODE, c.mode.wire())
        .record(id::VERSION_NAME, c.version.as_bytes())
        .record(id::PROTOCOL_NAME, PROTOCOL_NAME)
        .record(id::SENDER_KEY, own.as_bytes());
    if let Some(r) = recipient {
        w.record(id::RECIPIENT_KEY, r.as_bytes());
    }
    w.record(id::SENDER_HANDSHAKE_KEY, x.as_bytes());
    w.into_bytes()
}

/// The parts of packets 2 and 3 that differ.
pub enum Reply<'a> {
    /// Packet 2 with the responder's method list.
    Response { methods: &'a [String] },
    /// Packet 3 with the chosen method.
    Finish { method: &'a str },
}

/// Keys of a reply, from the sender's point of view.
pub struct ReplyKeys<'a> {
    pub sender: &'a PublicKey,
    pub recipient: &'a PublicKey,
    pub sender_handshake: &'a PublicKey,
    pub recipient_handshake: &'a PublicKey,
}

/// Packet 2 or 3, tagged with K1. Returns the TLV area.
pub fn reply(
    c: &Common<'_>,
    mtu: u16,
    what: &Reply<'_>,
    keys: &ReplyKeys<'_>,
    shared: &SharedSecret,
) -> Vec<u8> {
    let mut w = Writer::new();
    let ty = match what {
        Reply::Response { .. } => 2,
        Reply::Finish { .. } => 3,
    };
    c.start(&mut w, ty);
    w.u8(id::MODE, c.mode.wire())
        .u16_le(id::MTU, mtu)
        .record(id::VERSION_NAME, c.version.as_bytes())
        .record(id::PROTOCOL_NAME, PROTOCOL_NAME);
    match what {
        Reply::Response { methods } => {
            w.record(id::METHOD_LIST, methods.join("\0").as_bytes());
        }
        Reply::Finish { method } => {
            w.record(id::METHOD_NAME, method.as_bytes());
        }
    }
    w.u8(id::REPLY_CODE, 0)
        .record(id::SENDER_KEY, keys.sender.as_bytes())
        .record(id::RECIPIENT_KEY, keys.recipient.as_bytes())
        .record(id::SENDER_HANDSHAKE_KEY, keys.sender_handshake.as_bytes())
        .record(
            id::RECIPIENT_HANDSHAKE_KEY,
            keys.recipient_handshake.as_bytes(),
        );
    let tag_at = w.len() + 4;
    w.record(id::TLV_MAC, &[0u8; 32]);
    let tag = shared.tag(w.bytes_mut());
    if let Some(slot) = w.bytes_mut().get_mut(tag_at..tag_at + 32) {
        slot.copy_from_slice(&tag);
    }
    w.into_bytes()
}

/// An error reply to a packet of type `answered_type`. Returns the TLV area.
pub fn error(c: &Common<'_>, answered_type: u8, code: u8, record: u16) -> Vec<u8> {
    let mut w = Writer::new();
    c.start(&mut w, answered_type.wrapping_add(1));
    w.u8(id::REPLY_CODE, code);
    match u8::try_from(record) {
        Ok(r) => w.u8(id::ERROR_DETAIL, r),
        Err(_) => w.u16_le(id::ERROR_DETAIL, record),
    };
    w.into_bytes()
}

/// Frames a TLV area; `l2tp` picks the v22 format.
pub fn datagram(tlv: &[u8], l2tp: bool) -> Vec<u8> {
    frame(tlv, l2tp)
}
