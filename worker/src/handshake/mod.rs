//! The `ec25519-fhmqvc` handshake (protocol.md §2–4) as a sans-IO state machine.
//!
//! The packet engine feeds datagrams classified as handshakes to [`Handshake::handle_handshake`],
//! data from addresses of no established peer to [`Handshake::handle_unknown_data`], and calls
//! [`Handshake::handle_timeout`] at [`Handshake::poll_timeout`]. It executes the returned
//! [`Output`]s in order.

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
pub use types::{Established, Event, FailReason, HandshakeConfig, Mode, Output, PeerConfig, Role};
