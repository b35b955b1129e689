//! The send path: interface packets read behind headroom in `sendmmsg` slots, encrypted in
//! place, batched per socket; keepalives.

use super::*;

impl<P: Provider> Engine<P> {
    pub(super) fn on_iface_readable(&mut self, idx: usize) {
        let now = Instant::now();
        let Some(slot) = self.iface_at(idx) else {
            return;
        };
        match slot.peer {
            Some(id) if slot.vnet => self.drain_peer_iface_vnet(idx, id, now),
            Some(id) => self.drain_peer_iface(idx, id, now),
            None => self.drain_tap(idx, now),
        }
    }

    /// The socket and destination for a peer's data.
    pub(super) fn route(&self, id: PeerId) -> Option<(usize, SocketAddr, Option<IpAddr>)> {
        let p = self.peers.get(id)?;
        Some((p.socket?, p.addr?, p.local))
    }

    pub(super) fn drain_peer_iface(&mut self, idx: usize, id: PeerId, now: Instant) {
        let mut sent_any = false;
        for _ in 0..IFACE_BUDGET {
            let route = self.route(id);
            let fd = route
                .and_then(|(s, _, _)| self.sockets.get_live(s))
                .map(|s| s.fd.as_raw_fd());
            if let Some(fd) = fd {
                if self.send.is_full() || (!self.send.is_empty() && self.send.fd() != fd) {
                    self.flush();
                }
            }
            let Some(iface) = self.ifaces.get(idx).and_then(Option::as_ref) else {
                return;
            };
            let read = match self.send.slot() {
                Some(slot) => match slot.get_mut(HEAD..) {
                    Some(b) => io::tun_read(iface.fd.as_fd(), b),
                    None => return,
                },
                None => return,
            };
            let n = match read {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => {
                    self.log
                        .log(LogLevel::Debug, || format!("read from {}: {e}", iface.name));
                    break;
                }
            };
            if n == 0 {
                continue;
            }
            if self.encrypt_slot_and_commit(id, n, now) {
                sent_any = true;
            }
        }
        if sent_any {
            self.check_refresh(id, now);
        }
    }

    /// As [`Self::drain_peer_iface`] for a device with a virtio-net header: each read may be
    /// a TCP/UDP super-packet, split into MTU-sized packets that are encrypted one by one
    /// into the send batch.
    pub(super) fn drain_peer_iface_vnet(&mut self, idx: usize, id: PeerId, now: Instant) {
        // Taken out of `self` while its segments are encrypted (which borrows the engine).
        let mut buf = std::mem::take(&mut self.vnet_buf);
        let mut sent_any = false;
        for _ in 0..IFACE_BUDGET {
            let Some(iface) = self.ifaces.get(idx).and_then(Option::as_ref) else {
                break;
            };
            let n = match io::tun_read(iface.fd.as_fd(), &mut buf) {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => {
                    self.log
                        .log(LogLevel::Debug, || format!("read from {}: {e}", iface.name));
                    break;
                }
            };
            let Some(read) = buf.get_mut(..n) else {
                break;
            };
            if self.send_super_packet(id, read, now) {
                sent_any = true;
            }
        }
        self.vnet_buf = buf;
        if sent_any {
            self.check_refresh(id, now);
        }
    }

    /// Splits one read (virtio-net header + packet) and queues its segments for peer `id`.
    fn send_super_packet(&mut self, id: PeerId, read: &mut [u8], now: Instant) -> bool {
        let (hdr, pkt) = read.split_at_mut(offload::vnet::LEN.min(read.len()));
        let split = offload::vnet::VnetHdr::parse(hdr)
            .and_then(|h| offload::segment::Segmenter::new(&h, pkt));
        let mut seg = match split {
            Ok(s) => s,
            Err(e) => {
                self.log.log(LogLevel::Debug2, || {
                    format!("dropping a packet from the interface: {e}")
                });
                self.count_drop(Some(id), DropReason::Offload);
                return false;
            }
        };
        let mut sent_any = false;
        // Bounded: every turn consumes at least one payload byte of the packet, or ends it.
        loop {
            let fd = self
                .route(id)
                .and_then(|(s, _, _)| self.sockets.get_live(s))
                .map(|s| s.fd.as_raw_fd());
            if let Some(fd) = fd {
                if self.send.is_full() || (!self.send.is_empty() && self.send.fd() != fd) {
                    self.flush();
                }
            }
            let Some(dst) = self.send.slot().and_then(|s| s.get_mut(HEAD..)) else {
                break;
            };
            let n = match seg.next_into(dst) {
                None => break,
                Some(Ok(n)) => n,
                Some(Err(e)) => {
                    self.log.log(LogLevel::Debug2, || {
                        format!("dropping a packet from the interface: {e}")
                    });
                    self.count_drop(Some(id), DropReason::Offload);
                    break;
                }
            };
            if self.encrypt_slot_and_commit(id, n, now) {
                sent_any = true;
            }
        }
        sent_any
    }

    /// Encrypts the payload at `slot[HEAD..HEAD + n]` for peer `id` and queues it.
    ///
    /// A packet for a peer without a session (the router solicitation a fresh TUN device sends
    /// before the handshake) is freed uncounted, as in fastd's `protocol_send`: fastd counts
    /// `tx_dropped` only where `sendmsg` says EAGAIN.
    pub(super) fn encrypt_slot_and_commit(&mut self, id: PeerId, n: usize, now: Instant) -> bool {
        let Some((sock_idx, dst, local)) = self.route(id) else {
            return false;
        };
        let Some(sock) = self.sockets.get_live(sock_idx) else {
            return false;
        };
        let (fd, v6) = (sock.fd.as_raw_fd(), sock.v6);
        let Some(p) = self.peers.get_mut(id) else {
            return false;
        };
        let Some(sess) = p.sessions.for_send(now) else {
            return false;
        };
        let oh = sess.crypto.overhead();
        let Some(start) = HEAD.checked_sub(oh) else {
            return false;
        };
        let Some(slot) = self.send.slot() else {
            return false;
        };
        let Some(buf) = slot.get_mut(start..HEAD + n) else {
            return false;
        };
        if sess.crypto.encrypt(buf).is_err() {
            p.drops.count(DropReason::SendFailed);
            p.traffic.tx_error_packets += 1;
            p.traffic.tx_error_bytes += n as u64;
            return false;
        }
        p.last_send = Some(now);
        // `tx` is counted when the datagram has left (flush), as fastd does.
        self.send
            .commit(fd, start, oh + n, &dst_for(v6, dst), local, Some((id, n)));
        true
    }

    pub(super) fn drain_tap(&mut self, idx: usize, now: Instant) {
        for _ in 0..IFACE_BUDGET {
            let Some(iface) = self.ifaces.get(idx).and_then(Option::as_ref) else {
                return;
            };
            let n = match self
                .scratch
                .get_mut(HEAD..)
                .map(|b| io::tun_read(iface.fd.as_fd(), b))
            {
                Some(Ok(Some(n))) => n,
                _ => break,
            };
            let Some(frame) = self.scratch.get(HEAD..HEAD + n) else {
                continue;
            };
            let Some((dst, src)) = tap::macs(frame) else {
                continue;
            };
            if self.macs.learn_local(src, now) {
                let mac = self.settings.hide.mac(&src);
                self.log.log(LogLevel::Debug, || {
                    format!("learned new local MAC address {mac}")
                });
            }
            self.targets.clear();
            match self.macs.lookup(&dst, now) {
                // fastd drops a frame for an address behind its own interface.
                Dest::Local => continue,
                Dest::Peer(p) => self.targets.push(p),
                Dest::Flood => {
                    for (pid, p) in self.peers.iter() {
                        if p.sessions.is_established() {
                            self.targets.push(pid);
                        }
                    }
                }
            }
            self.send_scratch_to_targets(n, now);
        }
    }

    /// Sends `scratch[HEAD..HEAD + n]` to every peer in `targets` (one copy each).
    pub(super) fn send_scratch_to_targets(&mut self, n: usize, now: Instant) {
        let targets = std::mem::take(&mut self.targets);
        for &id in &targets {
            let Some((sock_idx, _, _)) = self.route(id) else {
                continue;
            };
            let Some(fd) = self.sockets.get_live(sock_idx).map(|s| s.fd.as_raw_fd()) else {
                continue;
            };
            if self.send.is_full() || (!self.send.is_empty() && self.send.fd() != fd) {
                self.flush();
            }
            let (Some(slot), Some(src)) = (self.send.slot(), self.scratch.get(HEAD..HEAD + n))
            else {
                continue;
            };
            let Some(d) = slot.get_mut(HEAD..HEAD + n) else {
                continue;
            };
            d.copy_from_slice(src);
            self.encrypt_slot_and_commit(id, n, now);
        }
        self.targets = targets;
    }

    pub(super) fn flush(&mut self) {
        if self.send.is_empty() {
            return;
        }
        let sent = self.send.flush();
        if sent.failed > 0 {
            self.global_drops.count(DropReason::SendFailed);
        }
        let now = Instant::now();
        for i in 0..self.send.flushed() {
            let Some((Some((id, n)), outcome)) = self.send.outcome(i) else {
                continue;
            };
            if outcome == io::Outcome::Unpinned {
                self.local_address_gone(id, now);
            }
            let Some(p) = self.peers.get_mut(id) else {
                continue;
            };
            let n = n as u64;
            // fastd's send_type(): `tx` when sent, `tx_dropped` on EAGAIN, else `tx_error`.
            let (packets, bytes) = match outcome {
                io::Outcome::Sent | io::Outcome::Unpinned => {
                    (&mut p.traffic.tx_packets, &mut p.traffic.tx_bytes)
                }
                io::Outcome::Dropped => (
                    &mut p.traffic.tx_dropped_packets,
                    &mut p.traffic.tx_dropped_bytes,
                ),
                io::Outcome::Failed => (
                    &mut p.traffic.tx_error_packets,
                    &mut p.traffic.tx_error_bytes,
                ),
            };
            *packets += 1;
            *bytes += n;
        }
    }

    /// The kernel refused the source address a peer's session was pinned to: the host no
    /// longer has it (its address changed). The datagram already went out from the kernel's
    /// choice. Like fastd (send.c), a handshake is scheduled unless one is already, so the
    /// session moves to the new address even if the peer never answers our data; unlike
    /// fastd, the stale address is forgotten at once, so later sends stop naming it (fastd
    /// retries every packet until the new session brings a new local address).
    pub(super) fn local_address_gone(&mut self, id: PeerId, now: Instant) {
        let Some(p) = self.peers.get_mut(id) else {
            return;
        };
        if p.local.take().is_none() {
            return;
        }
        let key = p.params.key;
        self.log.log(LogLevel::Debug, || {
            format!(
                "sendmsg: the local address of the session with {} is gone (sending without pktinfo)",
                self.peer_display(id)
            )
        });
        if let Ok(k) = PublicKey::from_bytes(&key) {
            self.hs.schedule_handshake(&k, now);
        }
    }

    pub(super) fn send_keepalive(&mut self, id: PeerId, now: Instant) {
        let Some((sock_idx, dst, local)) = self.route(id) else {
            return;
        };
        let Some(sock) = self.sockets.get_live(sock_idx) else {
            return;
        };
        let Some(p) = self.peers.get_mut(id) else {
            return;
        };
        let Some(sess) = p.sessions.for_send(now) else {
            return;
        };
        let mut out = [0u8; method::MAX_KEEPALIVE_BYTES];
        let Ok(pkt) = sess.crypto.keepalive(&mut out) else {
            return;
        };
        // Empty keepalives are never counted in the statistics (docs/config.md §6.8).
        let outcome = io::send_one(sock.fd.as_fd(), pkt, &dst_for(sock.v6, dst), local);
        if outcome.is_err() {
            p.drops.count(DropReason::SendFailed);
        }
        p.last_send = Some(now);
        if let Some(t) = self.ptimers.get_mut(id.0 as usize) {
            t.last_keepalive = Some(now);
        }
        if matches!(outcome, Ok(io::Outcome::Unpinned)) {
            self.local_address_gone(id, now);
        }
    }
}
