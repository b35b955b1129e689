//! Plain data going into and out of the handshake state machine.

use std::net::SocketAddr;

use zeroize::Zeroizing;

use crate::keys::{PublicKey, SecretKey};

use super::packet::{PACKET_DATA, PACKET_DATA_COMPAT};

/// The interface mode announced in the mode record (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `tap` or `multitap` (wire value 0).
    Tap,
    /// `tun` (wire value 1).
    Tun,
}

impl Mode {
    pub fn wire(self) -> u8 {
        match self {
            Mode::Tap => 0,
            Mode::Tun => 1,
        }
    }
}

/// Global handshake settings.
#[derive(Debug, Clone)]
pub struct HandshakeConfig {
    pub secret: SecretKey,
    pub mode: Mode,
    /// MTU and methods of peers created by `on verify` (the top-level config's).
    pub mtu: u16,
    pub methods: Vec<String>,
    /// `secure handshakes`: obsolete in v22 (parsed, no effect). The TLV tag is always sent and
    /// always required, whatever this says; kept so the config can be passed through unchanged.
    pub secure_handshakes: bool,
    /// An `on verify` command is configured: unknown keys raise [`Event::VerifyRequested`].
    pub on_verify: bool,
    /// Content of the version record (`v22`).
    pub version: String,
    /// Behave like a pre-v22 fastd (no flags record, no L2TP header, compat sessions). Only for
    /// interop tests; a v22 drop-in leaves it `false`.
    pub pre_v22: bool,
}

impl HandshakeConfig {
    pub fn new(secret: SecretKey, mode: Mode, mtu: u16, methods: Vec<String>) -> Self {
        HandshakeConfig {
            secret,
            mode,
            mtu,
            methods,
            secure_handshakes: true,
            on_verify: false,
            version: "v22".to_owned(),
            pre_v22: false,
        }
    }
}

/// One configured peer, as far as the handshake is concerned.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Name for logs and events (the config's peer name).
    pub name: String,
    pub key: PublicKey,
    /// Resolved remote addresses, in the order they are tried. Also the addresses this peer
    /// statically owns (§4.8).
    pub remotes: Vec<SocketAddr>,
    /// `float yes`. A peer without any remote is floating as well.
    pub floating: bool,
    /// Methods of the peer's group, in config order.
    pub methods: Vec<String>,
    pub mtu: u16,
    /// `peer limit` of every group on the way from the peer to the root that has one.
    pub limits: Vec<GroupLimit>,
}

/// A group's `peer limit`: at most `max` established peers of `group` at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLimit {
    pub group: String,
    pub max: usize,
}

impl PeerConfig {
    /// A peer with the given methods and MTU, no remotes (passive, floating), no limits.
    pub fn new(name: impl Into<String>, key: PublicKey, methods: Vec<String>, mtu: u16) -> Self {
        PeerConfig {
            name: name.into(),
            key,
            remotes: Vec::new(),
            floating: false,
            methods,
            mtu,
            limits: Vec::new(),
        }
    }

    pub fn is_floating(&self) -> bool {
        self.floating || self.remotes.is_empty()
    }
}

/// Which side sent packet 1 of the handshake that made the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Initiator,
    Responder,
}

/// A new session: everything the method layer needs.
#[derive(Clone)]
pub struct Established {
    pub peer: PublicKey,
    /// The peer's name, empty for `on verify` peers.
    pub peer_name: String,
    pub method: String,
    /// HKDF output of the method's key length (empty for `null`, `null@l2tp`).
    pub session_key: Zeroizing<Vec<u8>>,
    pub role: Role,
    /// The peer did not announce L2TP support: data packets use type `0x02`.
    pub compat: bool,
    /// The source address of the completing handshake: the peer's new address.
    pub remote: SocketAddr,
    /// Serial of our ephemeral key used (sessions are unique per serial and peer).
    pub ephemeral_serial: u64,
}

impl Established {
    /// Type byte of this session's data packets.
    pub fn data_type_byte(&self) -> u8 {
        if self.compat {
            PACKET_DATA_COMPAT
        } else {
            PACKET_DATA
        }
    }
}

impl core::fmt::Debug for Established {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Established")
            .field("peer", &self.peer)
            .field("method", &self.method)
            .field("role", &self.role)
            .field("compat", &self.compat)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

/// Why a handshake did not go on. Every variant is a dropped packet; none changes state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailReason {
    /// We sent an error reply (§2.7).
    ErrorSent { code: u8, record: u16 },
    /// The peer sent us an error reply.
    ErrorReceived { code: u8, record: u16 },
    /// A reply without a (valid) reply code record.
    NoReplyCode,
    /// No configured peer has the key and there is no `on verify`.
    UnknownKey,
    /// The key belongs to a peer that may not use this address.
    AddressNotAllowed,
    /// Missing or undecodable record that is required.
    Malformed,
    /// Handshakes from this peer are ignored for 15 s after establishing a session.
    RepeatedHandshake,
    /// A response to this peer at this address was sent less than 15 s ago.
    RepeatedInit,
    /// The recipient key is not ours.
    WrongRecipient,
    /// The recipient handshake key is none of our valid ephemeral keys (too late, or forged).
    UnknownHandshakeKey,
    /// The TLV authentication tag did not verify.
    InvalidTag,
    /// Our ephemeral key was already used for a session with this peer.
    KeyReuse,
    /// A `peer limit` of one of the peer's groups is reached.
    PeerLimit,
    /// σ was the identity, or a method v22 does not know.
    CryptoFailure,
    /// `on verify` refused, or the verdict is pending.
    NotVerified,
}

#[derive(Debug, Clone)]
pub enum Event {
    SessionEstablished(Established),
    /// Ask the `on verify` command about an unknown key; answer with
    /// [`super::Handshake::verify_result`].
    VerifyRequested {
        key: PublicKey,
        remote: SocketAddr,
    },
    HandshakeFailed {
        remote: SocketAddr,
        peer: Option<PublicKey>,
        /// The sender key record as received, for the log lines: an unknown key is never
        /// decoded as a point (a flood of random keys must stay cheap).
        sender: Option<[u8; 32]>,
        reason: FailReason,
    },
    /// `previous_owner` was using the address a new session was just established from; its
    /// sessions are gone (fastd resets it). The state machine already forgot its address.
    AddressClaimed {
        previous_owner: PublicKey,
        remote: SocketAddr,
    },
    /// A handshake from a known peer passed the checks after which fastd logs `received
    /// handshake from <p>[addr]` (packet 1), `received handshake response from ...` (2) or
    /// `received handshake finish from ...` (3). `version`: the peer's version record
    /// (`v22`), shown as ` using fastd v22`.
    HandshakeReceived {
        peer: PublicKey,
        remote: SocketAddr,
        packet: u8,
        version: Option<String>,
    },
    /// We sent an initial handshake; `peer` is `None` for the fast-reconnect handshake to an
    /// unknown address (then the root group's hook applies and `PEER_KEY` is unset).
    HandshakeSent {
        peer: Option<PublicKey>,
        remote: SocketAddr,
        /// Run `on connect`: the peer is not established (or unknown), docs/config.md §4.
        run_on_connect: bool,
    },
}

/// What the engine must do.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send `bytes` to `to`. Replies to a received packet go out through the socket and local
    /// address that packet arrived on; initial handshakes through the peer's socket.
    Send {
        to: SocketAddr,
        bytes: Vec<u8>,
    },
    Event(Box<Event>),
}
