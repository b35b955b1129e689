//! The `ec25519-fhmqvc` handshake (docs/protocol.md §2–4) as a sans-IO state machine.
//!
//! How the packet engine drives [`Handshake`]:
//!
//! * every received datagram: [`classify`] it. A [`PacketKind::Handshake`] goes to
//!   [`Handshake::handle_handshake`] (the whole datagram, control header included). A
//!   [`PacketKind::Data`] is decrypted by the established peer's sessions if the source address
//!   belongs to one; otherwise it goes to [`Handshake::handle_unknown_data`] (fast reconnect).
//! * timers: call [`Handshake::handle_timeout`] when [`Handshake::poll_timeout`] is due.
//! * [`Handshake::session_confirmed`] when the first data packet of a new session arrives,
//!   [`Handshake::peer_reset`] when a peer's sessions time out, [`Handshake::initiate`] to
//!   refresh a session (only the initiator of the current session rekeys),
//!   [`Handshake::verify_result`] with the `on verify` verdict, [`Handshake::set_peers`] on reload.
//! * every call returns [`Output`]s to execute in order: datagrams to send (replies through the
//!   socket and local address the packet came in on) and [`Event`]s. On
//!   [`Event::SessionEstablished`] create the method session from
//!   [`Established::session_key`]; the responder then sends an empty data packet at once, the
//!   initiator after the first packet of the new session arrived (§4.4).
//!
//! Ephemeral keys and timer jitter come from an [`Entropy`] ([`OsEntropy`] by default), which
//! tests replace to replay recorded exchanges byte for byte.

mod build;
pub mod ephemeral;
pub mod fhmqvc;
mod machine;
pub mod methods;
pub mod packet;
pub mod ratelimit;
pub mod tlv;
mod types;

#[cfg(test)]
mod tests;

pub use ephemeral::{Entropy, OsEntropy};
pub use machine::{normalize, Handshake};
pub use packet::{classify, PacketKind};
pub use types::{
    Established, Event, FailReason, GroupLimit, HandshakeConfig, Mode, Output, PeerConfig, Role,
};
