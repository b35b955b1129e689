//! Why packets are dropped, and the counters of it (per peer, or global when no peer is
//! known): the packet path's and the sessions' shared vocabulary.

/// Why a packet was dropped. Counted per peer (or globally when no peer is known).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    /// Shorter than the method header, or an L2TP header without a packet behind it.
    Truncated,
    /// A first byte that is neither data nor handshake.
    InvalidType,
    /// A malformed method or L2TP header (type byte, flags, nonce parity, session id).
    BadHeader,
    /// Data from a peer without a session (or with an expired one).
    NoSession,
    /// Authentication failed: forged, corrupted, or for a session we do not have.
    Auth,
    /// Replayed: a nonce seen before (dropped after authentication).
    Duplicate,
    /// Outside the replay window, or reordered after the 10 s deadline.
    TooOld,
    /// Data arriving on a local address other than the session's.
    WrongLocalAddress,
    /// A TAP payload shorter than an Ethernet header.
    ShortFrame,
    /// A payload larger than the interface accepts.
    Oversize,
    /// Writing to the TUN/TAP interface failed.
    InterfaceWrite,
    /// Sending the UDP datagram failed.
    SendFailed,
    /// A handshake the handshake layer refused.
    Handshake,
    /// Handshake work (a handshake, or data that would trigger one) from an address of no
    /// peer beyond the per-turn budget and the queue behind it: established peers' traffic
    /// goes first.
    HandshakeBudget,
    /// A super-packet from the interface (virtio-net header) that cannot be split.
    Offload,
}

impl DropReason {
    pub const ALL: [DropReason; 15] = [
        DropReason::Truncated,
        DropReason::InvalidType,
        DropReason::BadHeader,
        DropReason::NoSession,
        DropReason::Auth,
        DropReason::Duplicate,
        DropReason::TooOld,
        DropReason::WrongLocalAddress,
        DropReason::ShortFrame,
        DropReason::Oversize,
        DropReason::InterfaceWrite,
        DropReason::SendFailed,
        DropReason::Handshake,
        DropReason::HandshakeBudget,
        DropReason::Offload,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::InvalidType => "invalid_type",
            DropReason::BadHeader => "bad_header",
            DropReason::NoSession => "no_session",
            DropReason::Auth => "auth",
            DropReason::Duplicate => "duplicate",
            DropReason::TooOld => "too_old",
            DropReason::WrongLocalAddress => "wrong_local_address",
            DropReason::ShortFrame => "short_frame",
            DropReason::Oversize => "oversize",
            DropReason::InterfaceWrite => "interface_write",
            DropReason::SendFailed => "send_failed",
            DropReason::Handshake => "handshake",
            DropReason::HandshakeBudget => "handshake_budget",
            DropReason::Offload => "offload",
        }
    }
}

impl From<crate::method::DropReason> for DropReason {
    fn from(r: crate::method::DropReason) -> Self {
        use crate::method::DropReason as M;
        match r {
            M::Truncated => DropReason::Truncated,
            M::BadType | M::BadFlags | M::BadHeader | M::BadNonce => DropReason::BadHeader,
            M::TooOld | M::ReorderExpired => DropReason::TooOld,
            M::AuthFailed => DropReason::Auth,
            M::Duplicate => DropReason::Duplicate,
        }
    }
}

/// Counters of dropped packets by reason.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DropCounters([u64; DropReason::ALL.len()]);

impl DropCounters {
    pub fn count(&mut self, r: DropReason) {
        if let Some(c) = self.0.get_mut(r as usize) {
            *c = c.saturating_add(1);
        }
    }

    pub fn get(&self, r: DropReason) -> u64 {
        self.0.get(r as usize).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}
