//! Unknown keys with `on verify` (§4.8): temporary peers and the verdict.

use std::net::SocketAddr;
use std::time::Instant;

use super::super::types::{Event, FailReason, Output, PeerConfig};
use super::{
    fail, DynamicState, Handshake, KeyBytes, PeerEntry, PeerState, PendingVerify,
    MAX_DYNAMIC_PEERS, VERIFY_MAX_PENDING, VERIFY_VALID,
};
use crate::keys::PublicKey;

impl Handshake {
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

    /// The engine deleted the dynamic peer with `key` (idle, SIGUSR2, replaced by reload): its
    /// verdict and handshake state go with it, as in fastd, so a key that comes back is a new
    /// peer and is verified again.
    pub fn forget_dynamic(&mut self, key: &PublicKey) {
        let k = *key.as_bytes();
        if self.peers.get(&k).is_some_and(|e| e.dynamic.is_some()) {
            self.peers.remove(&k);
            self.pending_verify.remove(&k);
        }
    }

    /// Creates (or finds) the `on verify` peer for an unknown key.
    pub(super) fn dynamic_peer(&mut self, key: &PublicKey, now: Instant) -> Option<KeyBytes> {
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
                    limits: Vec::new(),
                },
                state: PeerState::default(),
                dynamic: Some(DynamicState::default()),
            },
        );
        Some(k)
    }

    pub(super) fn request_verify(
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
}
