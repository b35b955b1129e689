//! The protocol engine: one single-threaded epoll loop over the UDP sockets and TUN/TAP
//! descriptors the helper hands over, dispatching datagrams to the handshake and to the method
//! sessions, and interface packets to the peers.

pub mod io;
pub mod peer;
pub mod session;
pub mod tap;
pub mod timers;
