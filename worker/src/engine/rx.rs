//! The receive path: batched datagrams, classification (docs/protocol.md §1.3), decryption in
//! place, delivery to the interface, TAP learning and `forward`.

use super::*;

/// The two passes over a received batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pass {
    /// Established peers' data only.
    Data,
    /// Everything else: handshakes, data that may trigger one, drops.
    Rest,
}

impl<P: Provider> Engine<P> {
    pub(super) fn on_socket_readable(&mut self, idx: usize) {
        let Some(mut recv) = self.recv.take() else {
            return;
        };
        for _ in 0..UDP_BUDGET {
            let Some(sock) = self.sockets.get_live(idx) else {
                break;
            };
            let n = match recv.recv(sock.fd.as_fd()) {
                Ok(n) => n,
                Err(e) => {
                    self.log.log(LogLevel::Debug, || format!("recvmmsg: {e}"));
                    0
                }
            };
            // Established peers' data first, then handshake work: a flood of
            // handshakes then costs the tunnel at most the handshake budget per turn.
            // A UDP GRO run is handled datagram by datagram (bit k of `rest[i]` for its
            // k-th); the rare one past 64 goes through both passes at once.
            let mut rest = [0u64; io::BATCH];
            for (i, later) in rest.iter_mut().enumerate().take(n) {
                if let Some((meta, buf)) = recv.get(i) {
                    for (k, m, off) in gro_segments(meta) {
                        let Some(b) = buf.get_mut(off..) else { break };
                        if !self.on_datagram(idx, m, b, Pass::Data) {
                            if k < 64 {
                                *later |= 1 << k;
                            } else {
                                self.on_datagram(idx, m, b, Pass::Rest);
                            }
                        }
                    }
                }
            }
            for (i, later) in rest.iter().enumerate().take(n) {
                if *later == 0 {
                    continue;
                }
                if let Some((meta, buf)) = recv.get(i) {
                    for (k, m, off) in gro_segments(meta).take(64) {
                        if *later & (1 << k) == 0 {
                            continue;
                        }
                        if let Some(b) = buf.get_mut(off..) {
                            self.on_datagram(idx, m, b, Pass::Rest);
                        }
                    }
                }
            }
            self.flush_gro();
            if n < io::BATCH {
                break;
            }
        }
        self.recv = Some(recv);
    }

    /// Handles deferred handshake work, oldest first, while the turn's budget lasts.
    pub(super) fn run_deferred_handshakes(&mut self) {
        while self.hs_budget > 0 {
            let Some(mut d) = self.hs_queue.pop() else {
                break;
            };
            self.on_datagram(d.sock_idx, d.meta, &mut d.bytes, Pass::Rest);
        }
    }

    pub(super) fn count_drop(&mut self, peer: Option<PeerId>, r: DropReason) {
        match peer.and_then(|p| self.peers.get_mut(p)) {
            Some(p) => p.drops.count(r),
            None => self.global_drops.count(r),
        }
        self.log.log(LogLevel::Debug2, || {
            format!("dropping packet: {}", r.name())
        });
    }

    /// Handles one datagram. With [`Pass::Data`] only an established peer's data (and
    /// what is dropped before telling) is handled; `false` leaves the datagram for
    /// [`Pass::Rest`].
    pub(super) fn on_datagram(
        &mut self,
        sock_idx: usize,
        meta: io::Meta,
        buf: &mut [u8],
        pass: Pass,
    ) -> bool {
        let now = Instant::now();
        let src = canonical(meta.src);
        let mut peer = self.peers.by_addr(&src);
        if let Some(owner) = self.sockets.get_live(sock_idx).and_then(|s| s.peer) {
            // A per-connection socket only talks to its own peer (at its current address, or
            // at one of its remotes before a session exists).
            let allowed = match self.peers.get(owner) {
                Some(p) => match p.addr {
                    Some(a) => a == src,
                    None => p.params.remotes.iter().any(|r| canonical(*r) == src),
                },
                None => false,
            };
            if !allowed {
                self.count_drop(None, DropReason::InvalidType);
                return true;
            }
            peer = Some(owner);
        }
        if meta.truncated {
            self.count_drop(peer, DropReason::Oversize);
            return true;
        }
        let Some(pkt) = buf.get_mut(..meta.len) else {
            return true;
        };
        // An L2TP control header in front (docs/protocol.md §1.2) is skipped; the handshake looks at
        // the whole datagram itself.
        let off = match pkt.first() {
            None => {
                self.count_drop(peer, DropReason::Truncated);
                return true;
            }
            Some(0xC8) => {
                if pkt.len() < L2TP_CTRL + 1 || pkt.get(1).is_none_or(|b| b & 0x0f != 3) {
                    self.count_drop(peer, DropReason::BadHeader);
                    return true;
                }
                L2TP_CTRL
            }
            Some(_) => 0,
        };
        let Some(t) = pkt.get(off).copied() else {
            return true;
        };
        let is_data = t & 0x80 == 0 && t != 0x01;
        let established = peer
            .and_then(|p| self.peers.get(p))
            .is_some_and(|p| p.sessions.is_established());
        if is_data && established {
            if let Some(p) = peer {
                self.on_data(p, meta.local, pkt, off, now);
            }
            return true;
        }
        if pass == Pass::Data {
            return false;
        }
        // Before a session exists, a non-floating peer is known by its configured remotes
        // (the handshake checks the key against the address itself).
        let known = peer.or_else(|| self.peers.by_remote(&src));
        if known.is_none() && !self.hs.unknown_senders_allowed() {
            self.count_drop(None, DropReason::NoSession);
            return true;
        }
        // Handshake work from addresses of no peer is budgeted per turn; a peer's own
        // address (or configured remote) is not, so a flood cannot starve its handshakes.
        if known.is_none() && (t == 0x01 || is_data) {
            if self.hs_budget == 0 {
                // Later turns handle it; only beyond the queue's bound is it lost.
                if !self.hs_queue.defer(sock_idx, meta, pkt) {
                    self.count_drop(None, DropReason::HandshakeBudget);
                }
                return true;
            }
            self.hs_budget -= 1;
        }
        if t == 0x01 {
            let out = self.hs.handle_handshake(pkt, src, now);
            self.handle_hs_output(out, Some((sock_idx, meta.local)), now);
            return true;
        }
        if is_data {
            // Data from an address without an established session (docs/protocol.md §4.9): the
            // handshake answers at most once per IP per 15 s, never for short packets.
            let out = self.hs.handle_unknown_data(pkt, src, now);
            self.handle_hs_output(out, Some((sock_idx, meta.local)), now);
            self.count_drop(known, DropReason::NoSession);
            return true;
        }
        self.count_drop(known, DropReason::InvalidType);
        true
    }

    pub(super) fn on_data(
        &mut self,
        id: PeerId,
        local: Option<IpAddr>,
        pkt: &mut [u8],
        off: usize,
        now: Instant,
    ) {
        let Some(p) = self.peers.get_mut(id) else {
            return;
        };
        if let (Some(want), Some(got)) = (p.local, local) {
            if want != got && !want.is_unspecified() {
                p.drops.count(DropReason::WrongLocalAddress);
                return;
            }
        }
        let Some(body) = pkt.get_mut(off..) else {
            return;
        };
        let (opened, which) = match p.sessions.decrypt(body, now) {
            Ok(v) => v,
            Err(r) => {
                if r == DropReason::Duplicate {
                    // Authenticated: a sign of life even though the payload is dropped.
                    p.heard(now);
                }
                p.drops.count(r);
                self.log.log(LogLevel::Debug2, || {
                    format!("dropping packet from {}: {}", id.0, r.name())
                });
                return;
            }
        };
        p.heard(now);
        if which == Which::CurrentFirst {
            // The peer has the new keys: scheduled handshakes (the initiator's retry) go.
            let key = p.params.key;
            if let Ok(k) = PublicKey::from_bytes(&key) {
                self.hs.session_confirmed(&k);
            }
            let Some(p) = self.peers.get_mut(id) else {
                return;
            };
            let initiator = p.sessions.current.as_ref().is_some_and(|s| s.initiator);
            if initiator {
                self.send_keepalive(id, now);
            }
        }
        if let Some(age) = opened.reordered {
            self.log.log(LogLevel::Debug2, || {
                format!(
                    "accepting reordered packet from {} (age {age})",
                    self.peer_display(id)
                )
            });
        }
        let start = off + opened.payload.start;
        let len = opened.payload.len();
        if len == 0 {
            self.check_refresh(id, now);
            return;
        }
        // fastd_handle_receive(): in tap mode a frame too short for an Ethernet header is
        // dropped before it is counted; everything else handed on counts, with its inner size.
        if self.settings.mode != Mode::Tap || len >= tap::ETH_HLEN {
            if let Some(p) = self.peers.get_mut(id) {
                p.traffic.received(len, opened.reordered.is_some());
            }
        }
        let Some(payload) = pkt.get(start..start + len) else {
            return;
        };
        match self.settings.mode {
            Mode::Tun | Mode::Multitap => {
                let iface = self.peers.get(id).and_then(|p| p.iface);
                if self.settings.mode == Mode::Multitap && len < tap::ETH_HLEN {
                    self.count_drop(Some(id), DropReason::ShortFrame);
                } else if let Some(i) = iface.filter(|i| self.iface_at(*i).is_some()) {
                    self.deliver(i, id, start, len, pkt);
                } else {
                    self.count_drop(Some(id), DropReason::InterfaceWrite);
                }
            }
            Mode::Tap => self.on_tap_frame_from_peer(id, payload, now),
        }
        self.check_refresh(id, now);
    }

    pub(super) fn on_tap_frame_from_peer(&mut self, id: PeerId, frame: &[u8], now: Instant) {
        let Some((dst, src)) = tap::macs(frame) else {
            self.count_drop(Some(id), DropReason::ShortFrame);
            return;
        };
        if self.macs.learn(src, id, now) {
            let mac = self.settings.hide.mac(&src);
            self.log.log(LogLevel::Debug, || {
                format!(
                    "learned new MAC address {mac} on peer {}",
                    self.peer_display(id)
                )
            });
        }
        if let Some(i) = self.tap.and_then(|t| self.iface_at(t)) {
            if iface_write(i, frame).is_err() {
                self.count_drop(Some(id), DropReason::InterfaceWrite);
            }
        }
        if !self.settings.forward {
            return;
        }
        let dest = self.macs.lookup(&dst, now);
        self.targets.clear();
        match dest {
            Dest::Local => return,
            Dest::Peer(p) if p == id => return,
            Dest::Peer(p) => self.targets.push(p),
            Dest::Flood => {
                for (pid, p) in self.peers.iter() {
                    if pid != id && p.sessions.is_established() {
                        self.targets.push(pid);
                    }
                }
            }
        }
        let n = frame.len();
        if let Some(s) = self.scratch.get_mut(HEAD..HEAD + n) {
            s.copy_from_slice(frame);
            self.send_scratch_to_targets(n, now);
        }
    }
}

/// One packet to a device; behind an all-zero virtio-net header (nothing to offload) where
/// the device expects one.
fn iface_write(i: &IfaceSlot, pkt: &[u8]) -> std::io::Result<()> {
    if i.vnet {
        io::tun_write_vnet(i.fd.as_fd(), &[0u8; offload::vnet::LEN], pkt)
    } else {
        io::tun_write(i.fd.as_fd(), pkt)
    }
}

/// The datagrams of one received buffer: (index, metadata, offset) of each datagram of a
/// UDP GRO run, or of the one datagram.
fn gro_segments(meta: io::Meta) -> impl Iterator<Item = (usize, io::Meta, usize)> {
    let seg = if meta.seg > 0 && !meta.truncated {
        meta.seg
    } else {
        meta.len.max(1)
    };
    let count = meta.len.div_ceil(seg).max(1);
    (0..count).map(move |k| {
        let off = k * seg;
        let len = seg.min(meta.len.saturating_sub(off));
        (k, io::Meta { len, ..meta }, off)
    })
}

impl<P: Provider> Engine<P> {
    /// A decrypted packet (`pkt[start..start + len]`) from peer `id` for device `idx`:
    /// coalesced with its neighbours where the device takes super-packets.
    fn deliver(&mut self, idx: usize, id: PeerId, start: usize, len: usize, pkt: &[u8]) {
        let Some(payload) = pkt.get(start..start + len) else {
            return;
        };
        let vnet = self.iface_at(idx).is_some_and(|i| i.vnet);
        if vnet {
            if let Some(gro) = self.gro.as_mut() {
                match gro.offer(idx, payload) {
                    offload::coalesce::Offer::Taken => return,
                    offload::coalesce::Offer::Finish => {
                        self.flush_gro();
                        let again = self.gro.as_mut().map(|g| g.offer(idx, payload));
                        if again == Some(offload::coalesce::Offer::Taken) {
                            return;
                        }
                    }
                    offload::coalesce::Offer::Pass => self.flush_gro(),
                }
            }
        }
        let Some(i) = self.iface_at(idx) else {
            return;
        };
        if iface_write(i, payload).is_err() {
            self.count_drop(Some(id), DropReason::InterfaceWrite);
        }
    }

    /// Writes the run being coalesced, if any, to its device.
    pub(super) fn flush_gro(&mut self) {
        let Some(gro) = self.gro.as_mut() else {
            return;
        };
        let Some((idx, hdr, bytes)) = gro.finish() else {
            return;
        };
        let mut h = [0u8; offload::vnet::LEN];
        hdr.write(&mut h);
        let failed = match self.ifaces.get(idx).and_then(Option::as_ref) {
            Some(i) => io::tun_write_vnet(i.fd.as_fd(), &h, bytes)
                .is_err()
                .then_some(i.peer)
                .flatten(),
            None => None,
        };
        if let Some(p) = failed {
            self.count_drop(Some(p), DropReason::InterfaceWrite);
        }
    }
}
