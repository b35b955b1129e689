//! The boundary between the fastd-privsep helper (root) and the sandboxed worker.
//!
//! Everything that crosses the socket is a [`Request`] (worker to helper) or a
//! [`FromHelper`] (helper to worker: a [`Response`] or a [`Notice`]), encoded only by
//! [`encode`]/[`decode`]. Every value that ends up in a system call or a hook's
//! environment is a typed value whose constructor validates it, and deserialization goes
//! through the same constructors, so a decoded message never holds an invalid value. The worker declares what it
//! will ever need in a [`Manifest`]; the helper seals it into a [`Policy`] and checks
//! every later request in [`Policy::check`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod check;
mod fnv;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod log;
mod manifest;
mod message;
mod types;
mod wire;

pub use check::{
    check_unsealed, decide_unsealed, Decision, Policy, Refusal, MAX_UNLISTED_PEER_DEVICES,
};
pub use fnv::{fnv1a, Fnv1a};
pub use manifest::{
    BindSpec, HookKind, HookSpec, Manifest, ManifestError, PeerSpec, MAX_BINDS, MAX_HOOKS,
    MAX_PEERS, MAX_PEER_DIRS,
};
pub use message::{DirEntry, EntryKind, FromHelper, HookEnv, Notice, PeerRef, Request, Response};
pub use types::{
    AbsPath, HookCommand, HookId, IfName, IfNameFill, IfNamePattern, Mode, Mtu, PatternKind,
    PeerId, PeerName, PublicKey, TypeError,
};
pub use wire::{
    decode, decode_manifest, encode, encode_manifest, WireError, MAX_FILE, MAX_FILE_TOTAL,
    MAX_MANIFEST, MAX_MESSAGE,
};
