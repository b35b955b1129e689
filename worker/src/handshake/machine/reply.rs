//! Answering packet 1, completing with packet 2 or 3, and establishing (§4.2–4.4).

use std::net::SocketAddr;
use std::time::Instant;

use super::super::build::{self, Reply, ReplyKeys};
use super::super::fhmqvc::{self, Participants, Side};
use super::super::methods;
use super::super::tlv::id;
use super::super::types::{Established, Event, FailReason, Output, Role};
use super::{fail, received, until_nul, Handshake, KeyBytes, Received, MIN_RESPONSE_INTERVAL};
use crate::keys::PublicKey;

impl Handshake {
    /// Packet 1 received: answer with packet 2 (§4.3).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn respond(
        &mut self,
        key: &KeyBytes,
        sender: &PublicKey,
        x: &PublicKey,
        rx: &Received<'_>,
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
        out.push(received(from, *sender, rx));
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
            bytes: build::datagram(&tlv, rx.l2tp),
        });
    }

    /// Packet 2 (we are the initiator) or 3 (we are the responder) received (§4.2, §4.3).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn complete(
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
        out.push(received(from, *sender, rx));
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
        self.establish(key, &established, retry, now, out);
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
    pub(super) fn establish(
        &mut self,
        key: &KeyBytes,
        s: &Established,
        retry: Option<Instant>,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        // Another peer that held this address loses it (it floated away or was replaced) and
        // is reset, as fastd_peer_claim_address() does.
        for (k, e) in self.peers.iter_mut() {
            if k != key && e.state.address == Some(s.remote) {
                e.state.address = None;
                e.state.established = false;
                e.state.next_handshake = (!e.config.remotes.is_empty()).then_some(now);
                out.push(Output::Event(Box::new(Event::AddressClaimed {
                    previous_owner: e.config.key,
                    remote: s.remote,
                })));
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
