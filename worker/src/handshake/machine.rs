//! The `ec25519-fhmqvc` handshake state machine (protocol.md §2.8, §4).
//!
//! Sans-IO: datagrams, source addresses and `now` go in; datagrams to send, events and the next
//! timer deadline come out. Like fastd, nothing is remembered between packet 1 and packet 2 on
//! the initiator side: the recipient-handshake-key record names our ephemeral key, and our
//! long-term key plus that key are all that is needed to finish.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::build::{self, Common, Reply, ReplyKeys, FLAG_L2TP, PROTOCOL_NAME};
use super::ephemeral::{Entropy, EphemeralKeys, OsEntropy};
use super::fhmqvc::{self, Participants, Side};
use super::methods;
use super::packet::{classify, handshake_tlv, PacketKind, PACKET_DATA_COMPAT};
use super::ratelimit::AddressRateLimit;
use super::tlv::{id, Records};
use super::types::{Established, Event, FailReason, HandshakeConfig, Output, PeerConfig, Role};
use crate::keys::PublicKey;

/// §4.7 timers.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(17_500);
pub const RETRY_JITTER_MS: u64 = 5_000;
pub const MIN_INIT_INTERVAL: Duration = Duration::from_secs(15);
pub const MIN_RESPONSE_INTERVAL: Duration = Duration::from_secs(15);
pub const IGNORE_AFTER_ESTABLISH: Duration = Duration::from_secs(15);
pub const VERIFY_INTERVAL: Duration = Duration::from_secs(10);
pub const VERIFY_VALID: Duration = Duration::from_secs(60);
pub const VERIFY_MAX_PENDING: usize = 32;
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

fn fail(remote: SocketAddr, peer: Option<PublicKey>, reason: FailReason) -> Output {
    Output::Event(Box::new(Event::HandshakeFailed {
        remote,
        peer,
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
        };
        hs.set_peers(peers, now);
        hs
    }

    /// Replaces the configured peers (config reload). State of peers that stay is kept.
    pub fn set_peers(&mut self, peers: Vec<PeerConfig>, now: Instant) {
        let mut old = std::mem::take(&mut self.peers);
        for config in peers {
            // Our own key is never a peer (fastd refuses it at config time).
            if config.key == self.own_public {
                continue;
            }
            let key = *config.key.as_bytes();
            let state = match old.remove(&key) {
                Some(e) if e.dynamic.is_none() => e.state,
                _ => PeerState {
                    next_handshake: (!config.remotes.is_empty()).then_some(now),
                    ..PeerState::default()
                },
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

    /// The smallest data packet that may trigger a fast-reconnect handshake (§4.9).
    pub fn min_trigger_len(&self) -> usize {
        self.min_overhead
    }

    /// The earliest time [`Handshake::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter_map(|e| e.state.next_handshake)
            .min()
    }

    /// Sends due initial handshakes (§4.1).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Output> {
        let due: Vec<KeyBytes> = self
            .peers
            .iter()
            .filter(|(_, e)| e.state.next_handshake.is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        let mut out = Vec::new();
        for key in due {
            self.send_init(&key, now, &mut out);
        }
        out
    }

    /// Starts a handshake with a peer now (session refresh, or `connect` from the engine).
    pub fn initiate(&mut self, peer: &PublicKey, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if let Some(e) = self.peers.get_mut(peer.as_bytes()) {
            e.state.next_handshake = Some(now);
            self.send_init(peer.as_bytes(), now, &mut out);
        }
        out
    }

    /// The first data packet of a new session arrived: cancel the retry handshake (§4.4 step 7).
    pub fn session_confirmed(&mut self, peer: &PublicKey) {
        if let Some(e) = self.peers.get_mut(peer.as_bytes()) {
            e.state.next_handshake = None;
        }
    }

    /// The peer's sessions are gone (timeout, reset): go back to trying handshakes.
    pub fn peer_reset(&mut self, peer: &PublicKey, now: Instant) {
        if let Some(e) = self.peers.get_mut(peer.as_bytes()) {
            e.state.established = false;
            e.state.address = None;
            e.state.next_handshake = (!e.config.remotes.is_empty()).then_some(now);
        }
    }

    /// The current address of a peer (the source of its last completed handshake).
    pub fn peer_address(&self, peer: &PublicKey) -> Option<SocketAddr> {
        self.peers.get(peer.as_bytes())?.state.address
    }

    fn common(&self) -> Common<'_> {
        Common {
            mode: self.config.mode,
            version: &self.config.version,
            announce_l2tp: !self.config.pre_v22,
        }
    }

    fn jittered_retry(&mut self, now: Instant) -> Instant {
        now + RETRY_INTERVAL + Duration::from_millis(self.entropy.below(RETRY_JITTER_MS))
    }

    fn send_init(&mut self, key: &KeyBytes, now: Instant, out: &mut Vec<Output>) {
        let next = self.jittered_retry(now);
        let Some(entry) = self.peers.get_mut(key) else {
            return;
        };
        let remotes = &entry.config.remotes;
        let Some(to) = remotes
            .get(entry.state.next_remote % remotes.len().max(1))
            .copied()
            .map(normalize)
        else {
            entry.state.next_handshake = None;
            return;
        };
        entry.state.next_remote = entry.state.next_remote.wrapping_add(1);
        entry.state.next_handshake = Some(next);
        if entry
            .state
            .last_init
            .get(&to)
            .is_some_and(|t| now < *t + MIN_INIT_INTERVAL)
        {
            return;
        }
        entry
            .state
            .last_init
            .retain(|_, t| now < *t + MIN_INIT_INTERVAL);
        entry.state.last_init.insert(to, now);
        let peer_key = entry.config.key;
        let x = self
            .ephemeral
            .for_sending(now, self.entropy.as_mut())
            .public;
        let tlv = build::init(&self.common(), &self.own_public, Some(&peer_key), &x);
        // v22 sends the initial handshake in both formats, pre-v22 first (§1.4).
        out.push(Output::Send {
            to,
            bytes: build::datagram(&tlv, false),
        });
        if !self.config.pre_v22 {
            out.push(Output::Send {
                to,
                bytes: build::datagram(&tlv, true),
            });
        }
        out.push(Output::Event(Box::new(Event::HandshakeSent {
            peer: Some(peer_key),
            remote: to,
        })));
    }

    /// A data packet from an address that belongs to no established peer (§1.3, §4.9): maybe
    /// answer with one initial handshake without recipient key.
    pub fn handle_unknown_data(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
    ) -> Vec<Output> {
        let from = normalize(from);
        let PacketKind::Data {
            body, type_byte, ..
        } = classify(datagram)
        else {
            return Vec::new();
        };
        if !self.unknown_senders_allowed
            || body.len() < self.min_overhead
            || !self.unknown_rate_limit.check_and_charge(from.ip(), now)
        {
            return Vec::new();
        }
        let x = self
            .ephemeral
            .for_sending(now, self.entropy.as_mut())
            .public;
        let tlv = build::init(&self.common(), &self.own_public, None, &x);
        let l2tp = type_byte != PACKET_DATA_COMPAT && !self.config.pre_v22;
        vec![
            Output::Send {
                to: from,
                bytes: build::datagram(&tlv, l2tp),
            },
            Output::Event(Box::new(Event::HandshakeSent {
                peer: None,
                remote: from,
            })),
        ]
    }

    /// The `on verify` verdict for a key announced by [`Event::VerifyRequested`]. A positive
    /// verdict replays the handshake that asked for it.
    pub fn verify_result(&mut self, key: &PublicKey, accepted: bool, now: Instant) -> Vec<Output> {
        let k = *key.as_bytes();
        let pending = self.pending_verify.remove(&k);
        if !accepted {
            if self
                .peers
                .get(&k)
                .is_some_and(|e| e.dynamic.is_some() && !e.state.established)
            {
                self.peers.remove(&k);
            }
            return Vec::new();
        }
        if let Some(d) = self.peers.get_mut(&k).and_then(|e| e.dynamic.as_mut()) {
            d.verified_until = Some(now + VERIFY_VALID);
            d.last_request = Some(now);
        }
        match pending {
            Some(p) => self.handle_handshake(&p.datagram, p.from, now),
            None => Vec::new(),
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

    /// Steps 1–3 of §2.8; `Err` carries the error reply to send, if any.
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
                let owns = e.config.remotes.iter().any(|r| normalize(*r) == from);
                if !(e.config.is_floating() || owns) {
                    return Err(Some(FailReason::AddressNotAllowed));
                }
                let claimed = self.peers.iter().any(|(k, o)| {
                    k != key
                        && !o.config.is_floating()
                        && o.config.remotes.iter().any(|r| normalize(*r) == from)
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

    /// Creates (or finds) the `on verify` peer for an unknown key.
    fn dynamic_peer(&mut self, key: &PublicKey, now: Instant) -> Option<KeyBytes> {
        let k = *key.as_bytes();
        if self.peers.contains_key(&k) {
            return Some(k);
        }
        let dynamic_count = self.peers.values().filter(|e| e.dynamic.is_some()).count();
        if dynamic_count >= MAX_DYNAMIC_PEERS {
            let stale = self
                .peers
                .iter()
                .find(|(_, e)| {
                    e.dynamic.as_ref().is_some_and(|d| {
                        !e.state.established && d.verified_until.is_none_or(|t| t <= now)
                    })
                })
                .map(|(k, _)| *k)?;
            self.peers.remove(&stale);
        }
        self.peers.insert(
            k,
            PeerEntry {
                config: PeerConfig {
                    name: String::new(),
                    key: *key,
                    remotes: Vec::new(),
                    floating: true,
                    methods: self.config.methods.clone(),
                    mtu: self.config.mtu,
                },
                state: PeerState::default(),
                dynamic: Some(DynamicState::default()),
            },
        );
        Some(k)
    }

    fn process(&mut self, datagram: &[u8], from: SocketAddr, now: Instant, out: &mut Vec<Output>) {
        let Some(rx) = self.precheck(datagram, from, out) else {
            return;
        };
        let records = &rx.records;
        // Step 4.
        let Some(sender) = records
            .get_exact::<32>(id::SENDER_KEY)
            .and_then(|k| PublicKey::from_bytes(k).ok())
        else {
            out.push(fail(from, None, FailReason::Malformed));
            return;
        };
        // Step 5.
        let key = match self.identify(sender.as_bytes(), from) {
            Ok(k) => k,
            Err(Some(reason)) => {
                out.push(fail(from, Some(sender), reason));
                return;
            }
            Err(None) => {
                if !self.config.on_verify || sender == self.own_public {
                    out.push(fail(from, Some(sender), FailReason::UnknownKey));
                    return;
                }
                match self.dynamic_peer(&sender, now) {
                    Some(k) => k,
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
            1 => self.respond(&key, &sender, &their_hs, rx.l2tp, from, now, out),
            2 | 3 => self.complete(&key, &sender, &their_hs, &rx, from, now, out),
            _ => {}
        }
    }

    fn request_verify(
        &mut self,
        key: &KeyBytes,
        sender: &PublicKey,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        out.push(fail(from, Some(*sender), FailReason::NotVerified));
        let Some(d) = self.peers.get_mut(key).and_then(|e| e.dynamic.as_mut()) else {
            return;
        };
        if !self.pending_verify.contains_key(key) && self.pending_verify.len() >= VERIFY_MAX_PENDING
        {
            return;
        }
        d.last_request = Some(now);
        self.pending_verify.insert(
            *key,
            PendingVerify {
                datagram: datagram.to_vec(),
                from,
            },
        );
        out.push(Output::Event(Box::new(Event::VerifyRequested {
            key: *sender,
            remote: from,
        })));
    }

    /// Packet 1 received: answer with packet 2 (§4.3).
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &mut self,
        key: &KeyBytes,
        sender: &PublicKey,
        x: &PublicKey,
        l2tp: bool,
        from: SocketAddr,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(entry) = self.peers.get(key) else {
            return;
        };
        // Step 12.
        if entry
            .state
            .last_response
            .is_some_and(|(a, t)| a == from && now < t + MIN_RESPONSE_INTERVAL)
        {
            out.push(fail(from, Some(*sender), FailReason::RepeatedInit));
            return;
        }
        let mtu = entry.config.mtu;
        let methods = entry.config.methods.clone();
        // Set before the reply is built, as fastd does: a failing packet 1 also counts.
        if let Some(e) = self.peers.get_mut(key) {
            e.state.last_response = Some((from, now));
        }
        let eph = self
            .ephemeral
            .for_sending(now, self.entropy.as_mut())
            .clone();
        let participants = Participants {
            initiator_key: sender,
            responder_key: &self.own_public,
            initiator_handshake_key: x,
            responder_handshake_key: &eph.public,
        };
        let Some(shared) = fhmqvc::shared_secret(
            Side::Responder,
            &self.config.secret,
            &eph.secret,
            &participants,
        ) else {
            out.push(fail(from, Some(*sender), FailReason::CryptoFailure));
            return;
        };
        let tlv = build::reply(
            &self.common(),
            mtu,
            &Reply::Response { methods: &methods },
            &ReplyKeys {
                sender: &self.own_public,
                recipient: sender,
                sender_handshake: &eph.public,
                recipient_handshake: x,
            },
            &shared,
        );
        out.push(Output::Send {
            to: from,
            bytes: build::datagram(&tlv, l2tp),
        });
    }

    /// Packet 2 (we are the initiator) or 3 (we are the responder) received (§4.2, §4.3).
    #[allow(clippy::too_many_arguments)]
    fn complete(
        &mut self,
        key: &KeyBytes,
        sender: &PublicKey,
        their_hs: &PublicKey,
        rx: &Received<'_>,
        from: SocketAddr,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let records = &rx.records;
        let (Some(_), Some(own_hs), Some(tag_at)) = (
            records.get_exact::<32>(id::RECIPIENT_KEY),
            records.get_exact::<32>(id::RECIPIENT_HANDSHAKE_KEY),
            records
                .get_exact::<32>(id::TLV_MAC)
                .and(records.value_offset(id::TLV_MAC)),
        ) else {
            out.push(fail(from, Some(*sender), FailReason::Malformed));
            return;
        };
        let Some(eph) = self.ephemeral.find(own_hs, now).cloned() else {
            out.push(fail(from, Some(*sender), FailReason::UnknownHandshakeKey));
            return;
        };
        let Some(entry) = self.peers.get(key) else {
            return;
        };
        let common = self.common();
        let error_reply = |record: u16, out: &mut Vec<Output>| {
            let tlv = build::error(&common, rx.ty, 2, record);
            out.push(Output::Send {
                to: from,
                bytes: build::datagram(&tlv, rx.l2tp),
            });
            out.push(fail(
                from,
                Some(*sender),
                FailReason::ErrorSent { code: 2, record },
            ));
        };
        let (role, method) = if rx.ty == 2 {
            // The first method of the responder's list that we have (§2.10).
            let list = records.get(id::METHOD_LIST).unwrap_or(&[]);
            let chosen = list
                .split(|b| *b == 0)
                .filter(|m| !m.is_empty())
                .find_map(|m| entry.config.methods.iter().find(|own| own.as_bytes() == m));
            match chosen {
                Some(m) => (Role::Initiator, m.clone()),
                None => {
                    error_reply(id::METHOD_LIST, out);
                    return;
                }
            }
        } else {
            let Some(name) = records.get(id::METHOD_NAME).map(until_nul) else {
                error_reply(id::METHOD_NAME, out);
                return;
            };
            match entry.config.methods.iter().find(|m| m.as_bytes() == name) {
                Some(m) => (Role::Responder, m.clone()),
                None => {
                    error_reply(id::METHOD_NAME, out);
                    return;
                }
            }
        };
        let participants = match role {
            Role::Initiator => Participants {
                initiator_key: &self.own_public,
                responder_key: sender,
                initiator_handshake_key: &eph.public,
                responder_handshake_key: their_hs,
            },
            Role::Responder => Participants {
                initiator_key: sender,
                responder_key: &self.own_public,
                initiator_handshake_key: their_hs,
                responder_handshake_key: &eph.public,
            },
        };
        let side = match role {
            Role::Initiator => Side::Initiator,
            Role::Responder => Side::Responder,
        };
        let Some(shared) =
            fhmqvc::shared_secret(side, &self.config.secret, &eph.secret, &participants)
        else {
            out.push(fail(from, Some(*sender), FailReason::CryptoFailure));
            return;
        };
        // The tag is always required (`secure handshakes` has no effect in v22, §2.9).
        if !shared.verify_tag(records.tlv(), tag_at) {
            out.push(fail(from, Some(*sender), FailReason::InvalidTag));
            return;
        }
        // fastd refuses every serial up to the last one used, not only an equal one.
        if entry
            .state
            .last_session_serial
            .is_some_and(|last| eph.serial <= last)
        {
            out.push(fail(from, Some(*sender), FailReason::KeyReuse));
            return;
        }
        let Some(session_key) =
            methods::key_length(&method).and_then(|len| shared.session_key(&method, len))
        else {
            out.push(fail(from, Some(*sender), FailReason::CryptoFailure));
            return;
        };
        let finish = (role == Role::Initiator).then(|| {
            build::reply(
                &common,
                entry.config.mtu,
                &Reply::Finish { method: &method },
                &ReplyKeys {
                    sender: &self.own_public,
                    recipient: sender,
                    sender_handshake: &eph.public,
                    recipient_handshake: their_hs,
                },
                &shared,
            )
        });
        let established = Established {
            peer: *sender,
            peer_name: entry.config.name.clone(),
            method,
            session_key,
            role,
            compat: !rx.l2tp,
            remote: from,
            ephemeral_serial: eph.serial,
        };
        let retry = (role == Role::Initiator).then(|| self.jittered_retry(now));
        self.establish(key, &established, retry, now);
        out.push(Output::Event(Box::new(Event::SessionEstablished(
            established,
        ))));
        if let Some(tlv) = finish {
            out.push(Output::Send {
                to: from,
                bytes: build::datagram(&tlv, rx.l2tp),
            });
        }
    }

    /// §4.4 steps 1–4 and 6 (the handshake's share of establishing).
    fn establish(&mut self, key: &KeyBytes, s: &Established, retry: Option<Instant>, now: Instant) {
        // Another peer that held this address loses it (it floated away or was replaced).
        for (k, e) in self.peers.iter_mut() {
            if k != key && e.state.address == Some(s.remote) {
                e.state.address = None;
            }
        }
        self.unknown_rate_limit.forget(s.remote.ip());
        if let Some(e) = self.peers.get_mut(key) {
            e.state.last_session_serial = Some(s.ephemeral_serial);
            e.state.established = true;
            e.state.established_at = Some(now);
            e.state.address = Some(s.remote);
            e.state.next_handshake = retry;
        }
    }
}
