//! The status socket's output (config.md §5): what fastd v22 writes to each client.
//!
//! - [`snapshot`]: the document as plain data, filled in by the packet engine;
//! - [`json`]: its bytes, json-c's "spaced" style reproduced exactly;
//! - [`writer`]: serving it from the single-threaded mio loop without blocking.
//!
//! The listening socket itself is created by the helper (`Request::StatusSocket`); the worker
//! only accepts on it.

pub mod json;
pub mod snapshot;
pub mod writer;

pub use json::{to_json, write_json, JsonCSpaced, JsonError};
pub use snapshot::{
    elapsed_ms, ConnectionStatus, Counter, MacAddress, ModeStatus, PeerAddress, PeerStatus,
    StatKind, Statistics, StatusSnapshot,
};
pub use writer::{Progress, StatusNotice, StatusServer, StatusWriter, MAX_STATUS_CLIENTS};
