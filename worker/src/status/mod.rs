//! The status socket's output (docs/config.md §5): what fastd v22 writes to each client.
//!
//! - [`snapshot`]: the document as plain data, filled in by the packet engine;
//! - [`json`]: its bytes, json-c's "spaced" style reproduced exactly;
//! - [`writer`]: serving it from the single-threaded mio loop without blocking.
//!
//! The listening socket itself is created by the helper (`Request::StatusSocket`); the worker
//! only accepts on it. In the loop:
//!
//! ```no_run
//! # use std::os::fd::OwnedFd;
//! # use mio::{Events, Poll, Token};
//! # use worker::status::{ModeStatus, Statistics, StatusServer, StatusSnapshot};
//! # fn demo(listener: OwnedFd) -> std::io::Result<()> {
//! let mut poll = Poll::new()?;
//! // Tokens 1000 ..= 1000 + MAX_STATUS_CLIENTS belong to the status socket.
//! let mut status = StatusServer::new(listener, Token(1000))?;
//! status.register(poll.registry())?;
//! let mut events = Events::with_capacity(64);
//! loop {
//!     poll.poll(&mut events, None)?;
//!     for event in events.iter() {
//!         if status.owns(event.token()) {
//!             let snapshot = || StatusSnapshot {
//!                 uptime_ms: 0, // now_ms - started_ms, see snapshot::elapsed_ms
//!                 mode: ModeStatus::Tun,
//!                 statistics: Statistics::default(),
//!                 peers: Vec::new(),
//!             };
//!             for notice in status.handle(poll.registry(), event.token(), snapshot) {
//!                 eprintln!("{notice}"); // the engine's logger instead
//!             }
//!         }
//!     }
//! }
//! # }
//! ```

pub mod json;
pub mod snapshot;
pub mod writer;

pub use json::{to_json, write_json, JsonCSpaced, JsonError};
pub use snapshot::{
    elapsed_ms, ConnectionStatus, Counter, MacAddress, ModeStatus, PeerAddress, PeerStatus,
    StatKind, Statistics, StatusSnapshot,
};
pub use writer::{Progress, StatusNotice, StatusServer, StatusWriter, MAX_STATUS_CLIENTS};
