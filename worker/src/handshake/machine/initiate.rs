//! Sending initial handshakes: the retry timer (§4.1), explicit initiation, and the
//! fast-reconnect answer to data from unknown addresses (§4.9).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::super::build;
use super::super::packet::{classify, PacketKind, PACKET_DATA_COMPAT};
use super::super::types::{Event, Output};
use super::{normalize, Handshake, KeyBytes, MIN_INIT_INTERVAL, RETRY_INTERVAL, RETRY_JITTER_MS};
use crate::keys::PublicKey;

impl Handshake {
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

    /// Schedules a handshake with the usual retry delay unless one is scheduled already
    /// (fastd's `fastd_peer_schedule_handshake_default`), e.g. when our local address for the
    /// peer has gone away.
    pub fn schedule_handshake(&mut self, peer: &PublicKey, now: Instant) {
        let next = self.jittered_retry(now);
        if let Some(e) = self.peers.get_mut(peer.as_bytes()) {
            e.state.next_handshake.get_or_insert(next);
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

    pub(super) fn jittered_retry(&mut self, now: Instant) -> Instant {
        now + RETRY_INTERVAL + Duration::from_millis(self.entropy.below(RETRY_JITTER_MS))
    }

    pub(super) fn send_init(&mut self, key: &KeyBytes, now: Instant, out: &mut Vec<Output>) {
        let next = self.jittered_retry(now);
        let Some(entry) = self.peers.get_mut(key) else {
            return;
        };
        // An established peer is contacted at its current address (rekeying, retry after
        // completing as initiator); otherwise the configured remotes take turns.
        let remotes = &entry.config.remotes;
        let target = if entry.state.established {
            entry.state.address
        } else {
            let r = remotes
                .get(entry.state.next_remote % remotes.len().max(1))
                .copied()
                .map(normalize);
            entry.state.next_remote = entry.state.next_remote.wrapping_add(1);
            r
        };
        let Some(to) = target else {
            entry.state.next_handshake = None;
            return;
        };
        entry.state.next_handshake = Some(next);
        if !self.may_connect(key) {
            return;
        }
        let Some(entry) = self.peers.get_mut(key) else {
            return;
        };
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
        let run_on_connect = !entry.state.established;
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
            run_on_connect,
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
                run_on_connect: true,
            })),
        ]
    }
}
