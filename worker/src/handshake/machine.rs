//! The `ec25519-fhmqvc` handshake state machine (docs/protocol.md §2.8, §4).
//!
//! Sans-IO: datagrams, source addresses and `now` go in; datagrams to send, events and the next
//! timer deadline come out. Like fastd, nothing is remembered between packet 1 and packet 2 on
//! the initiator side: the recipient-handshake-key record names our ephemeral key, and our
//! long-term key plus that key are all that is needed to finish.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::build::{self, Common, FLAG_L2TP, PROTOCOL_NAME};
use super::ephemeral::{Entropy, EphemeralKeys, OsEntropy};
use super::methods;
use super::packet::{classify, handshake_tlv, PacketKind};
use super::ratelimit::AddressRateLimit;
use super::tlv::{id, Records};
use super::types::{Event, FailReason, HandshakeConfig, Output, PeerConfig};
use crate::keys::PublicKey;

mod initiate;
mod reply;
mod verify;

/// §4.7 timers.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(17_500);
pub const RETRY_JITTER_MS: u64 = 5_000;
pub const MIN_INIT_INTERVAL: Duration = Duration::from_secs(15);
pub const MIN_RESPONSE_INTERVAL: Duration = Duration::from_secs(15);
pub const IGNORE_AFTER_ESTABLISH: Duration = Duration::from_secs(15);
pub const VERIFY_INTERVAL: Duration = Duration::from_secs(10);
pub const VERIFY_VALID: Duration = Duration::from_secs(60);
pub const VERIFY_MAX_PENDING: usize = 32;
/// Random delay of the first handshake to peers in groups with a `peer limit`.
pub const INITIAL_DELAY_WITH_LIMIT_MS: u64 = 3_000;
/// Bound on peers created by `on verify` that are kept around.
const MAX_DYNAMIC_PEERS: usize = 1024;

type KeyBytes = [u8; 32];

#[derive(Debug, Default)]
struct PeerState {
    address: Option<SocketAddr>,
    established: bool,
    established_at: Option<Instant>,
    last_session_serial: Option<u64>,
    last_response: Option<(SocketAddr, Instant)>,
    last_init: HashMap<SocketAddr, Instant>,
    next_handshake: Option<Instant>,
    next_remote: usize,
}

#[derive(Debug, Default)]
struct DynamicState {
    verified_until: Option<Instant>,
    last_request: Option<Instant>,
}

#[derive(Debug)]
struct PeerEntry {
    config: PeerConfig,
    state: PeerState,
    /// `Some` for peers created by `on verify`.
    dynamic: Option<DynamicState>,
}

/// A handshake waiting for the `on verify` verdict, replayed when it is positive.
#[derive(Debug)]
struct PendingVerify {
    datagram: Vec<u8>,
    from: SocketAddr,
}

/// The handshake half of a fastd instance: all peers, the ephemeral keys, the unknown-address
/// rate limit.
pub struct Handshake {
    config: HandshakeConfig,
    own_public: PublicKey,
    peers: BTreeMap<KeyBytes, PeerEntry>,
    ephemeral: EphemeralKeys,
    unknown_rate_limit: AddressRateLimit,
    pending_verify: HashMap<KeyBytes, PendingVerify>,
    entropy: Box<dyn Entropy>,
    min_overhead: usize,
    unknown_senders_allowed: bool,
    /// Sender keys decoded as points from received handshakes (unknown keys with `on
    /// verify`): what a flood of random keys could make us pay for.
    key_decodes: u64,
}

/// The parsed essentials of a received handshake, after the checks that need no peer.
struct Received<'a> {
    records: Records<'a>,
    ty: u8,
    /// The peer asked for L2TP-style replies.
    l2tp: bool,
}

/// IPv4-mapped IPv6 addresses are compared as IPv4 (§1.3).
pub fn normalize(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// fastd compares string records as C strings: a NUL ends them early.
fn until_nul(bytes: &[u8]) -> &[u8] {
    bytes.split(|b| *b == 0).next().unwrap_or(bytes)
}

/// The event behind fastd's `received handshake ... from <p>[addr]` lines.
fn received(remote: SocketAddr, peer: PublicKey, rx: &Received<'_>) -> Output {
    let version = rx
        .records
        .get(id::VERSION_NAME)
        .map(|v| String::from_utf8_lossy(until_nul(v)).into_owned());
    Output::Event(Box::new(Event::HandshakeReceived {
        peer,
        remote,
        packet: rx.ty,
        version,
    }))
}

fn fail(remote: SocketAddr, peer: Option<PublicKey>, reason: FailReason) -> Output {
    Output::Event(Box::new(Event::HandshakeFailed {
        remote,
        sender: peer.map(|k| *k.as_bytes()),
        peer,
        reason,
    }))
}

/// A failure about a sender key that is not (or not yet) decoded.
fn fail_undecoded(remote: SocketAddr, sender: &KeyBytes, reason: FailReason) -> Output {
    Output::Event(Box::new(Event::HandshakeFailed {
        remote,
        peer: None,
        sender: Some(*sender),
        reason,
    }))
}

impl Handshake {
    /// Peers with remotes get their first handshake scheduled at `now`.
    pub fn new(config: HandshakeConfig, peers: Vec<PeerConfig>, now: Instant) -> Handshake {
        Handshake::with_entropy(config, peers, now, Box::new(OsEntropy))
    }

    /// Like [`Handshake::new`] with injected randomness (deterministic tests and replays).
    pub fn with_entropy(
        config: HandshakeConfig,
        peers: Vec<PeerConfig>,
        now: Instant,
        entropy: Box<dyn Entropy>,
    ) -> Handshake {
        let own_public = config.secret.public();
        let mut hs = Handshake {
            config,
            own_public,
            peers: BTreeMap::new(),
            ephemeral: EphemeralKeys::default(),
            unknown_rate_limit: AddressRateLimit::default(),
            pending_verify: HashMap::new(),
            entropy,
            min_overhead: 24,
            unknown_senders_allowed: false,
            key_decodes: 0,
        };
        hs.set_peers(peers, now);
        hs
    }

    /// Replaces the configured peers (config reload). State of peers that stay is kept.
    pub fn set_peers(&mut self, peers: Vec<PeerConfig>, now: Instant) {
        let mut old = std::mem::take(&mut self.peers);
        for mut config in peers {
            for r in &mut config.remotes {
                *r = normalize(*r);
            }
            // Our own key is never a peer (fastd refuses it at config time).
            if config.key == self.own_public {
                continue;
            }
            let key = *config.key.as_bytes();
            let state = match old.remove(&key) {
                Some(e) if e.dynamic.is_none() => e.state,
                _ => {
                    // With a `peer limit`, the first handshake is delayed by 0–3 s (§4.1) so
                    // that peers restarting together do not all win the same slots.
                    let delay = if config.limits.is_empty() {
                        0
                    } else {
                        self.entropy.below(INITIAL_DELAY_WITH_LIMIT_MS)
                    };
                    PeerState {
                        next_handshake: (!config.remotes.is_empty())
                            .then(|| now + Duration::from_millis(delay)),
                        ..PeerState::default()
                    }
                }
            };
            self.peers.insert(
                key,
                PeerEntry {
                    config,
                    state,
                    dynamic: None,
                },
            );
        }
        // Keep established `on verify` peers across reloads.
        for (k, e) in old {
            if e.dynamic.is_some() && !self.peers.contains_key(&k) {
                self.peers.insert(k, e);
            }
        }
        let all_methods = self
            .peers
            .values()
            .flat_map(|e| e.config.methods.iter())
            .chain(self.config.methods.iter());
        self.min_overhead = all_methods
            .map(|m| methods::overhead(m))
            .min()
            .unwrap_or(24);
        self.unknown_senders_allowed =
            self.config.on_verify || self.peers.values().any(|e| e.config.is_floating());
    }

    pub fn own_public(&self) -> &PublicKey {
        &self.own_public
    }

    /// §1.3: whether data or handshakes from addresses of no peer are processed at all.
    pub fn unknown_senders_allowed(&self) -> bool {
        self.unknown_senders_allowed
    }

    /// How many received sender keys were decoded as points (see the field).
    pub fn key_decodes(&self) -> u64 {
        self.key_decodes
    }

    /// The smallest data packet that may trigger a fast-reconnect handshake (§4.9).
    pub fn min_trigger_len(&self) -> usize {
        self.min_overhead
    }

    /// The current address of a peer (the source of its last completed handshake).
    pub fn peer_address(&self, peer: &PublicKey) -> Option<SocketAddr> {
        self.peers.get(peer.as_bytes())?.state.address
    }

    /// fastd_peer_may_connect(): an established peer always may; otherwise every group limit
    /// must leave room.
    fn may_connect(&self, key: &KeyBytes) -> bool {
        let Some(e) = self.peers.get(key) else {
            return false;
        };
        if e.state.established {
            return true;
        }
        e.config.limits.iter().all(|lim| {
            let used = self
                .peers
                .values()
                .filter(|o| {
                    o.state.established && o.config.limits.iter().any(|l| l.group == lim.group)
                })
                .count();
            used < lim.max
        })
    }

    fn common(&self) -> Common<'_> {
        Common {
            mode: self.config.mode,
            version: &self.config.version,
            announce_l2tp: !self.config.pre_v22,
        }
    }

    /// A datagram classified as handshake (with or without control header).
    pub fn handle_handshake(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
    ) -> Vec<Output> {
        let from = normalize(from);
        let mut out = Vec::new();
        self.process(datagram, from, now, &mut out);
        out
    }

    /// Steps 1–3 of §2.8; error replies and failures are pushed to `out`.
    fn precheck<'a>(
        &self,
        datagram: &'a [u8],
        from: SocketAddr,
        out: &mut Vec<Output>,
    ) -> Option<Received<'a>> {
        let PacketKind::Handshake {
            body,
            has_control_header,
        } = classify(datagram)
        else {
            return None;
        };
        let records = Records::parse(handshake_tlv(body)?);
        let ty = records.get_u8(id::HANDSHAKE_TYPE)?;
        let flags_rec = records.get(id::FLAGS);
        let flags = flags_rec.and_then(|f| f.first().copied()).unwrap_or(0);
        if !has_control_header && flags & FLAG_L2TP != 0 && !self.config.pre_v22 {
            return None; // the compat copy of a v22 handshake
        }
        let l2tp = flags & FLAG_L2TP != 0 && !self.config.pre_v22;
        let mut error = |record: u16| {
            let tlv = build::error(&self.common(), ty, 2, record);
            out.push(Output::Send {
                to: from,
                bytes: build::datagram(&tlv, l2tp),
            });
            out.push(fail(from, None, FailReason::ErrorSent { code: 2, record }));
        };
        if let Some(f) = flags_rec {
            if f.len() != 1 || flags & !FLAG_L2TP != 0 {
                error(id::FLAGS);
                return None;
            }
        }
        if records
            .get(id::PROTOCOL_NAME)
            .is_some_and(|p| until_nul(p) != PROTOCOL_NAME)
        {
            error(id::PROTOCOL_NAME);
            return None;
        }
        if let Some(m) = records.get(id::MODE) {
            if m != [self.config.mode.wire()] {
                error(id::MODE);
                return None;
            }
        }
        if ty > 1 {
            let Some(code) = records.get_u8(id::REPLY_CODE) else {
                out.push(fail(from, None, FailReason::NoReplyCode));
                return None;
            };
            if code != 0 {
                let record = match records.get(id::ERROR_DETAIL) {
                    Some([r]) => u16::from(*r),
                    Some([a, b]) => u16::from_le_bytes([*a, *b]),
                    _ => 0xFFFF,
                };
                out.push(fail(from, None, FailReason::ErrorReceived { code, record }));
                return None;
            }
        }
        Some(Received { records, ty, l2tp })
    }

    /// §4.8: which peer may use `key` from `from`. `Err(None)`: unknown key.
    fn identify(&self, key: &KeyBytes, from: SocketAddr) -> Result<KeyBytes, Option<FailReason>> {
        if let Some((k, e)) = self
            .peers
            .iter()
            .find(|(_, e)| e.state.address == Some(from))
        {
            if k == key {
                return Ok(*k);
            }
            if !e.config.is_floating() && e.config.remotes.contains(&from) {
                return Err(Some(FailReason::AddressNotAllowed));
            }
        }
        match self.peers.get(key) {
            Some(e) => {
                let owns = e.config.remotes.contains(&from);
                if !(e.config.is_floating() || owns) {
                    return Err(Some(FailReason::AddressNotAllowed));
                }
                let claimed = self.peers.iter().any(|(k, o)| {
                    k != key && !o.config.is_floating() && o.config.remotes.contains(&from)
                });
                // Any other fixed peer owning the address vetoes, as in fastd's find_key().
                if claimed {
                    return Err(Some(FailReason::AddressNotAllowed));
                }
                Ok(*key)
            }
            None => Err(None),
        }
    }

    fn process(&mut self, datagram: &[u8], from: SocketAddr, now: Instant, out: &mut Vec<Output>) {
        let Some(rx) = self.precheck(datagram, from, out) else {
            return;
        };
        let records = &rx.records;
        // Step 4. The key is looked up by its bytes: only a configured peer's key (decoded
        // once, from the config) or one `on verify` will be asked about is worth a point
        // decoding. Spoofed handshakes with random keys end here, as cheaply as in fastd.
        let Some(sender_bytes) = records.get_exact::<32>(id::SENDER_KEY).copied() else {
            out.push(fail(from, None, FailReason::Malformed));
            return;
        };
        // Step 5.
        let (key, sender) = match self.identify(&sender_bytes, from) {
            Ok(k) => match self.peers.get(&k) {
                Some(e) => (k, e.config.key),
                None => return,
            },
            Err(Some(reason)) => {
                let peer = self.peers.get(&sender_bytes).map(|e| e.config.key);
                out.push(Output::Event(Box::new(Event::HandshakeFailed {
                    remote: from,
                    peer,
                    sender: Some(sender_bytes),
                    reason,
                })));
                return;
            }
            Err(None) => {
                if !self.config.on_verify || sender_bytes == *self.own_public.as_bytes() {
                    out.push(fail_undecoded(from, &sender_bytes, FailReason::UnknownKey));
                    return;
                }
                self.key_decodes += 1;
                let Ok(sender) = PublicKey::from_bytes(&sender_bytes) else {
                    out.push(fail_undecoded(from, &sender_bytes, FailReason::Malformed));
                    return;
                };
                match self.dynamic_peer(&sender, now) {
                    Some(k) => (k, sender),
                    None => return,
                }
            }
        };
        let common = self.common();
        let Some(entry) = self.peers.get(&key) else {
            return;
        };
        let error_reply = |record: u16, out: &mut Vec<Output>| {
            let tlv = build::error(&common, rx.ty, 2, record);
            out.push(Output::Send {
                to: from,
                bytes: build::datagram(&tlv, rx.l2tp),
            });
            out.push(fail(
                from,
                Some(sender),
                FailReason::ErrorSent { code: 2, record },
            ));
        };
        // Step 6.
        if let Some(mtu) = records.get_exact::<2>(id::MTU) {
            if u16::from_le_bytes(*mtu) != entry.config.mtu {
                error_reply(id::MTU, out);
                return;
            }
        }
        // Step 7.
        let Some(their_hs) = records
            .get_exact::<32>(id::SENDER_HANDSHAKE_KEY)
            .and_then(|k| PublicKey::from_bytes(k).ok())
        else {
            out.push(fail(from, Some(sender), FailReason::Malformed));
            return;
        };
        // Step 8.
        if !self.may_connect(&key) {
            out.push(fail(from, Some(sender), FailReason::PeerLimit));
            return;
        }
        // Step 9.
        if entry
            .state
            .established_at
            .is_some_and(|t| now < t + IGNORE_AFTER_ESTABLISH)
        {
            out.push(fail(from, Some(sender), FailReason::RepeatedHandshake));
            return;
        }
        // Step 10.
        if let Some(r) = records.get_exact::<32>(id::RECIPIENT_KEY) {
            if r != self.own_public.as_bytes() {
                out.push(fail(from, Some(sender), FailReason::WrongRecipient));
                return;
            }
        }
        // Step 11, as fastd does it: packets 1 and 2 re-run `on verify` once its 10 s interval
        // has passed (the packet waits for the verdict); otherwise, and for packet 3, the
        // last verdict decides while it is valid (60 s).
        if let Some(d) = &entry.dynamic {
            if rx.ty <= 2 && d.last_request.is_none_or(|t| now >= t + VERIFY_INTERVAL) {
                self.request_verify(&key, &sender, datagram, from, now, out);
                return;
            }
            if d.verified_until.is_none_or(|t| now >= t) {
                out.push(fail(from, Some(sender), FailReason::NotVerified));
                return;
            }
        }
        match rx.ty {
            1 => self.respond(&key, &sender, &their_hs, &rx, from, now, out),
            2 | 3 => self.complete(&key, &sender, &their_hs, &rx, from, now, out),
            _ => {}
        }
    }
}
