//! The engine's view of the handshake: datagrams in, datagrams and events out. The handshake
//! module's state machine is plugged in through [`Handshaker`].

use std::net::SocketAddr;
use std::time::Instant;

use super::peer::PeerId;
use crate::config::LogLevel;

/// A handshake datagram to send (complete, including any L2TP control header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutPacket {
    pub dst: SocketAddr,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HsEvent {
    /// A handshake completed: the engine builds the method session from `key`.
    Established {
        peer: PeerId,
        method: String,
        key: Vec<u8>,
        initiator: bool,
        compat: bool,
        remote: SocketAddr,
    },
    /// A log line in fastd's wording.
    Log(LogLevel, String),
}

/// What one call produced. Reused between calls (cleared by the engine) so the vectors keep
/// their capacity.
#[derive(Debug, Default)]
pub struct HsOut {
    pub packets: Vec<OutPacket>,
    pub events: Vec<HsEvent>,
}

impl HsOut {
    pub fn clear(&mut self) {
        self.packets.clear();
        self.events.clear();
    }
}

pub trait Handshaker {
    /// Our public key (fastd's legacy encoding), for the hooks' `LOCAL_KEY`.
    fn local_public_key(&self) -> [u8; 32];

    /// A datagram carrying a handshake (first byte 0x01, possibly behind an L2TP control
    /// header; the whole datagram is passed). `peer` is the peer currently at `src`, if any.
    fn receive(
        &mut self,
        datagram: &[u8],
        src: SocketAddr,
        peer: Option<PeerId>,
        now: Instant,
        out: &mut HsOut,
    );

    /// Starts a handshake: with a known peer (packet 1 with recipient key), or, for the fast
    /// reconnect of an unknown address, without one. `l2tp` picks the format of the single
    /// datagram sent to an unknown address; known peers get both formats.
    fn initiate(
        &mut self,
        peer: Option<PeerId>,
        dst: SocketAddr,
        l2tp: bool,
        now: Instant,
        out: &mut HsOut,
    );
}
