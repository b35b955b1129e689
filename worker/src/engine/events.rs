//! Handshake outputs and session events: sending handshake datagrams, establishing sessions,
//! `on verify` peers, refreshes, resets, hooks.

use super::*;

impl<P: Provider> Engine<P> {
    pub(super) fn handle_hs_output(
        &mut self,
        outs: Vec<Output>,
        reply_via: Option<(usize, Option<IpAddr>)>,
        now: Instant,
    ) {
        // Initial handshakes name their peer only in the HandshakeSent event that follows.
        let mut sent_to: Vec<(SocketAddr, PeerId)> = Vec::new();
        // Handshakes that wait for `on verify`: their "not verified" failure is no failure.
        let mut verifying: Vec<PublicKey> = Vec::new();
        for o in &outs {
            if let Output::Event(ev) = o {
                match ev.as_ref() {
                    Event::HandshakeSent {
                        peer: Some(k),
                        remote,
                        ..
                    } => {
                        if let Some(id) = self.peers.by_key(k.as_bytes()) {
                            sent_to.push((canonical(*remote), id));
                        }
                    }
                    Event::VerifyRequested { key, .. } => verifying.push(*key),
                    _ => {}
                }
            }
        }
        for o in outs {
            if let Output::Event(ev) = &o {
                if let Event::HandshakeFailed {
                    peer: Some(k),
                    reason: crate::handshake::FailReason::NotVerified,
                    ..
                } = ev.as_ref()
                {
                    if verifying.contains(k) {
                        continue;
                    }
                }
            }
            match o {
                Output::Send { to, bytes } => {
                    let to = canonical(to);
                    // The peer whose session's local address we name, if any.
                    let mut pinned_for = None;
                    let via = match reply_via {
                        Some(v) => Some(v),
                        None => {
                            let id = sent_to
                                .iter()
                                .find(|(a, _)| *a == to)
                                .map(|(_, id)| *id)
                                .or_else(|| self.peers.by_addr(&to));
                            match id {
                                Some(id) => {
                                    pinned_for = Some(id);
                                    self.peer_socket(id, to)
                                        .map(|s| (s, self.peers.get(id).and_then(|p| p.local)))
                                }
                                None => self.any_socket(&to).map(|s| (s, None)),
                            }
                        }
                    };
                    let Some((sidx, local)) = via else { continue };
                    let Some(s) = self.sockets.get_live(sidx) else {
                        continue;
                    };
                    match io::send_one(s.fd.as_fd(), &bytes, &dst_for(s.v6, to), local) {
                        Ok(io::Outcome::Unpinned) => {
                            if let Some(id) = pinned_for {
                                self.local_address_gone(id, now);
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            let to = self.settings.hide.addr(&to);
                            self.log.log(LogLevel::Debug, || {
                                format!("sending handshake to {to}: {e}")
                            });
                        }
                    }
                }
                Output::Event(ev) => self.on_hs_event(*ev, reply_via, now),
            }
        }
    }

    pub(super) fn on_hs_event(
        &mut self,
        ev: Event,
        via: Option<(usize, Option<IpAddr>)>,
        now: Instant,
    ) {
        match ev {
            Event::SessionEstablished(e) => {
                let known = self.peers.by_key(e.peer.as_bytes());
                let Some(id) = known.or_else(|| self.add_dynamic_peer(e.peer.as_bytes(), now))
                else {
                    self.log.log(LogLevel::Warn, || {
                        "session with a peer unknown to the engine".to_owned()
                    });
                    return;
                };
                // fastd's establish(): the address first, before the connection lines.
                let from = self.settings.hide.addr(&e.remote);
                self.log.log(LogLevel::Verbose, || {
                    format!("{from} authenticated as {}", self.peer_display(id))
                });
                let initiator = e.role == crate::handshake::Role::Initiator;
                self.establish(
                    id,
                    &e.method,
                    &e.session_key,
                    initiator,
                    e.compat,
                    e.remote,
                    via,
                    now,
                );
            }
            Event::HandshakeFailed {
                remote,
                peer,
                sender,
                reason,
            } => {
                // Only formatted when shown: a flood of unknown keys passes here.
                if self.log.enabled(hs::fail_level(&reason)) {
                    let mtu = peer
                        .as_ref()
                        .and_then(|k| self.peers.by_key(k.as_bytes()))
                        .and_then(|id| self.peers.get(id))
                        .map_or(self.settings.mtu, |p| p.params.mtu);
                    let hide = self.settings.hide;
                    let (level, line) = fail_line(&remote, sender.as_ref(), &reason, mtu, hide);
                    self.log.log(level, || line);
                }
                let id = peer.as_ref().and_then(|k| self.peers.by_key(k.as_bytes()));
                self.count_drop(id, DropReason::Handshake);
            }
            Event::HandshakeSent {
                peer,
                remote,
                run_on_connect,
            } => {
                let id = peer.as_ref().and_then(|k| self.peers.by_key(k.as_bytes()));
                let name = id.map_or_else(String::new, |i| self.peer_display(i));
                let to = self.settings.hide.addr(&remote);
                self.log.log(LogLevel::Verbose, || {
                    format!("sending handshake to {name}[{to}]...")
                });
                // A handshake to an address of no peer is what a spoofed packet triggers:
                // its `on connect` runs at most once per source address and interval, as
                // the handshake itself (a configured peer's handshakes keep their schedule).
                let limited = id.is_none()
                    && !self
                        .connect_rate_limit
                        .check_and_charge(canonical(remote).ip(), now);
                if run_on_connect && !limited {
                    self.run_hook_at(HookKind::Connect, id, Some(remote));
                }
            }
            Event::HandshakeReceived {
                peer,
                remote,
                packet,
                version,
            } => {
                let (level, what) = match packet {
                    1 => (LogLevel::Verbose, ""),
                    2 => (LogLevel::Verbose, " response"),
                    _ => (LogLevel::Debug, " finish"),
                };
                let from = self.settings.hide.addr(&remote);
                self.log.log(level, || {
                    // An `on verify` peer the engine does not have yet shows as fastd's
                    // dynamic peers do: `{<key>}`.
                    let name = match self.peers.by_key(peer.as_bytes()) {
                        Some(id) => self.peer_display(id),
                        None => peer::Unnamed(peer.as_bytes()).to_string(),
                    };
                    let using = version.map_or_else(String::new, |v| format!(" using fastd {v}"));
                    format!("received handshake{what} from {name}[{from}]{using}")
                });
            }
            Event::AddressClaimed { previous_owner, .. } => {
                if let Some(other) = self.peers.by_key(previous_owner.as_bytes()) {
                    self.reset_peer(other, now);
                }
            }
            Event::VerifyRequested { key, remote } => {
                let mut verdict = Verdict::Refused;
                if self.settings.verify_group.is_some() {
                    // In tap mode fastd's verify sees the one device, with its MTU.
                    let tap = self.tap.and_then(|t| self.iface_at(t));
                    let env = HookEnv {
                        local_key: Some(*self.hs.own_public().as_bytes()),
                        peer_key: Some(*key.as_bytes()),
                        remote: Some(remote),
                        local: via
                            .and_then(|(s, l)| Some((l?, self.sockets.get_live(s)?.bound?.port())))
                            .map(|(l, port)| SocketAddr::new(l, port)),
                        interface: tap.map(|i| i.name.clone()),
                        interface_mtu: tap.map(|i| i.mtu),
                        ..HookEnv::default()
                    };
                    verdict = match self.provider.verify(&env) {
                        Ok(v) => v,
                        Err(e) => {
                            self.log
                                .log(LogLevel::Warn, || format!("on verify failed: {e}"));
                            Verdict::Refused
                        }
                    };
                }
                match verdict {
                    // The handshake machine keeps the handshake; the verdict comes back
                    // through `verify_done` and is answered then (docs/config.md §4.4).
                    Verdict::Pending => {
                        self.pending_verify.insert(*key.as_bytes(), (remote, via));
                    }
                    v => self.finish_verify(&key, remote, v == Verdict::Accepted, true, via, now),
                }
            }
        }
    }

    /// The end of a verify: fastd's log line for a refusal, then the handshake machine
    /// answers (or drops) the stored handshake.
    fn finish_verify(
        &mut self,
        key: &PublicKey,
        remote: SocketAddr,
        accepted: bool,
        sync: bool,
        via: Option<(usize, Option<IpAddr>)>,
        now: Instant,
    ) {
        if !accepted && self.settings.verify_group.is_some() {
            // fastd logs this line only for a synchronous verify; for an asynchronous one
            // the exit status line (the helper's) is all.
            if sync {
                let reason = crate::handshake::FailReason::NotVerified;
                let (mtu, hide) = (self.settings.mtu, self.settings.hide);
                let (level, line) = fail_line(&remote, Some(key.as_bytes()), &reason, mtu, hide);
                self.log.log(level, || line);
            }
            self.count_drop(None, DropReason::Handshake);
        } else if !accepted {
            self.log.log(LogLevel::Verbose, || {
                format!(
                    "ignoring handshake from {} (unknown key {})",
                    self.settings.hide.addr(&remote),
                    key.to_hex()
                )
            });
        }
        let mut out = self.hs.verify_result(key, accepted, now);
        if !sync {
            // fastd answers a handshake after an asynchronous verify without its `received
            // handshake from` line (that line belongs to handling the packet itself).
            out.retain(|o| {
                !matches!(o, Output::Event(e) if matches!(**e, Event::HandshakeReceived { .. }))
            });
        }
        self.handle_hs_output(out, via, now);
    }

    /// The verdict of an asynchronous `on verify` for `key`; one nobody waits for any more
    /// is ignored.
    pub fn verify_done(&mut self, key: &[u8; 32], accepted: bool) {
        let Some((remote, via)) = self.pending_verify.remove(key) else {
            return;
        };
        let Ok(key) = PublicKey::from_bytes(key) else {
            return;
        };
        self.finish_verify(&key, remote, accepted, false, via, Instant::now());
        self.flush();
    }

    /// A peer `on verify` accepted: it joins the verify group, floats, and gets its interface
    /// (tun/multitap) when established. It lives until it has been idle for `peer_timeout`
    /// (ticks.rs) or SIGUSR2 deletes it.
    pub(super) fn add_dynamic_peer(&mut self, key: &[u8; 32], now: Instant) -> Option<PeerId> {
        let group = self.settings.verify_group?;
        let params = PeerParams {
            name: None,
            key: *key,
            remotes: Vec::new(),
            float: true,
            ifname: self.settings.dynamic_interface(key),
            mtu: self.settings.mtu,
        };
        let id = self.peers.add(params);
        if let Some(p) = self.peers.get_mut(id) {
            p.dynamic = true;
            p.seen = Some(now);
        }
        self.ptimers.push(PeerTimers::default());
        self.settings.peer_groups.push(group);
        let n = self.peer_display(id);
        self.log
            .log(LogLevel::Verbose, || format!("adding peer {n}"));
        Some(id)
    }

    /// A bound socket that can reach `dst` (for handshakes to addresses of no peer).
    pub(super) fn any_socket(&self, dst: &SocketAddr) -> Option<usize> {
        self.sockets.iter().position(|s| {
            s.as_ref()
                .is_some_and(|s| s.peer.is_none() && family_matches(s.v6, s.bound, dst))
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn establish(
        &mut self,
        id: PeerId,
        method_name: &str,
        key: &[u8],
        initiator: bool,
        compat: bool,
        remote: SocketAddr,
        via: Option<(usize, Option<IpAddr>)>,
        now: Instant,
    ) {
        let Some(spec) = method::by_name(method_name) else {
            return;
        };
        let crypto = match spec.session(key, initiator, compat, now) {
            Ok(c) => c,
            Err(e) => {
                self.log
                    .log(LogLevel::Error, || format!("unable to set up session: {e}"));
                return;
            }
        };
        let remote = canonical(remote);
        if let Some(displaced) = self.peers.set_addr(id, remote) {
            self.reset_peer(displaced, now);
        }
        let splay = (self.next_random() % 1_000_000) as f64 / 1_000_000.0;
        let lt = self.timings.lifetimes;
        let info = SessionInfo {
            method: method_name,
            initiator,
            compat,
            expires: !spec.is_null(),
        };
        let session = Session::new(crypto, info, now, &lt, splay);
        let first = {
            let Some(p) = self.peers.get_mut(id) else {
                return;
            };
            if let Some((s, local)) = via {
                p.socket = Some(s);
                p.local = local;
            }
            p.sessions.install(session, now, &lt);
            p.heard(now);
            let first = !p.connected;
            p.connected = true;
            if first {
                p.connected_since = Some(now);
            }
            first
        };
        if via.is_none() {
            let sock = self.peer_socket(id, remote);
            if let Some(p) = self.peers.get_mut(id) {
                p.socket = p.socket.or(sock);
            }
        }
        let dynamic = self.peers.get(id).is_some_and(|p| p.dynamic);
        if self.settings.mode != Mode::Tap && (!self.settings.persist_interface || dynamic) {
            if let Err(e) = self.open_peer_iface(id) {
                self.log.log(LogLevel::Error, || e.to_string());
            }
        }
        let name = self.peer_display(id);
        if first {
            self.log.log(LogLevel::Info, || {
                format!("connection with {name} established.")
            });
        }
        self.log.log(LogLevel::Verbose, || {
            format!(
                "new session with {name} established using method `{method_name}'{}.",
                if compat { " (compat mode)" } else { "" }
            )
        });
        if first {
            self.run_hook(HookKind::Establish, Some(id));
        }
        if !initiator {
            // The responder proves it has the keys at once (docs/protocol.md §4.4 step 6).
            self.send_keepalive(id, now);
        }
        self.schedule(id, now);
        if let Some((addr, iface)) = self.peers.get(id).and_then(|p| Some((p.addr?, p.iface))) {
            let name = iface
                .or(self.tap)
                .and_then(|i| self.iface_at(i))
                .map(|i| i.name.clone());
            self.provider.peer_up(id, addr, name.as_deref());
        }
    }

    /// The socket to reach `remote` for peer `id`: its current one, a bound one of the right
    /// family, or a new per-connection socket from the provider.
    pub(super) fn peer_socket(&mut self, id: PeerId, remote: SocketAddr) -> Option<usize> {
        if let Some(s) = self.peers.get(id).and_then(|p| p.socket) {
            if self
                .sockets
                .get_live(s)
                .is_some_and(|s| family_matches(s.v6, s.bound, &remote) || s.peer == Some(id))
            {
                return Some(s);
            }
        }
        if let Some(i) = self.sockets.iter().position(|s| {
            s.as_ref().is_some_and(|s| {
                s.peer.is_none() && s.bound.is_some() && family_matches(s.v6, s.bound, &remote)
            })
        }) {
            return Some(i);
        }
        if let Some(i) = self
            .sockets
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.peer == Some(id)))
        {
            return Some(i);
        }
        match self.provider.peer_socket(id, remote) {
            Ok(fd) => match self.add_socket(fd, None, Some(id)) {
                Ok(i) => {
                    if let Some(p) = self.peers.get_mut(id) {
                        p.socket = Some(i);
                    }
                    Some(i)
                }
                Err(_) => None,
            },
            Err(e) => {
                self.log.log(LogLevel::Error, || {
                    format!("unable to open socket for {}: {e}", id.0)
                });
                None
            }
        }
    }

    pub(super) fn peer_display(&self, id: PeerId) -> String {
        self.peers
            .get(id)
            .map(|p| p.to_string())
            .unwrap_or_else(|| "(null)".into())
    }

    pub(super) fn check_refresh(&mut self, id: PeerId, now: Instant) {
        let due = self
            .peers
            .get_mut(id)
            .and_then(|p| p.sessions.current.as_mut())
            .is_some_and(|s| s.take_refresh(now));
        if due {
            let key = self.peers.get(id).map(|p| p.params.key);
            if let Some(k) = key.and_then(|k| PublicKey::from_bytes(&k).ok()) {
                let name = self.peer_display(id);
                self.log.log(LogLevel::Verbose, || {
                    format!("refreshing session with {name}")
                });
                let out = self.hs.initiate(&k, now);
                self.handle_hs_output(out, None, now);
            }
        }
    }

    pub(super) fn reset_peer(&mut self, id: PeerId, now: Instant) {
        let name = self.peer_display(id);
        let was = self
            .peers
            .get(id)
            .is_some_and(|p| p.sessions.is_established());
        if was {
            self.run_hook(HookKind::Disestablish, Some(id));
        }
        self.retire_traffic(id);
        let mut key = None;
        if let Some(p) = self.peers.get_mut(id) {
            p.sessions.clear();
            p.connected = false;
            p.connected_since = None;
            p.local = None;
            p.last_recv = None;
            key = Some(p.params.key);
        }
        if let Some(k) = key.and_then(|k| PublicKey::from_bytes(&k).ok()) {
            self.hs.peer_reset(&k, now);
        }
        self.peers.clear_addr(id);
        self.macs.forget_peer(id);
        let dynamic = self.peers.get(id).is_some_and(|p| p.dynamic);
        self.close_peer_socket(id);
        if was && self.settings.mode != Mode::Tap && (dynamic || !self.settings.persist_interface) {
            self.close_peer_iface(id);
        }
        if was {
            self.log.log(LogLevel::Info, || {
                format!("connection with {name} disestablished.")
            });
            self.provider.peer_down(id);
        }
        self.schedule(id, now);
    }

    pub(super) fn run_hook(&mut self, kind: HookKind, peer: Option<PeerId>) {
        self.run_hook_at(kind, peer, None);
    }

    /// Runs a hook with fastd's variables for its kind (docs/config.md §4.3). `remote` overrides
    /// the peer's address (`on connect` names the address being contacted).
    pub(super) fn run_hook_at(
        &mut self,
        kind: HookKind,
        peer: Option<PeerId>,
        remote: Option<SocketAddr>,
    ) {
        let group = peer
            .and_then(|p| self.settings.peer_groups.get(p.0 as usize).copied())
            .unwrap_or(crate::config::GroupId::ROOT);
        if !self.settings.has_hook(group, kind) {
            return;
        }
        let tap_updown =
            self.settings.mode == Mode::Tap && matches!(kind, HookKind::Up | HookKind::Down);
        let with_addresses = matches!(
            kind,
            HookKind::Connect | HookKind::Establish | HookKind::Disestablish
        );
        let mut env = HookEnv {
            local_key: (!tap_updown).then(|| *self.hs.own_public().as_bytes()),
            ..HookEnv::default()
        };
        let iface = match (self.settings.mode, peer) {
            (Mode::Tap, _) => self.tap,
            (_, Some(p)) => self.peers.get(p).and_then(|p| p.iface),
            _ => None,
        };
        if let Some(i) = iface.and_then(|i| self.iface_at(i)) {
            env.interface = Some(i.name.clone());
            env.interface_mtu = Some(i.mtu);
        }
        if let Some(p) = peer.and_then(|p| self.peers.get(p)) {
            if !tap_updown {
                env.peer_key = Some(p.params.key);
                env.peer_name = p.params.name.clone();
            }
            if with_addresses {
                env.remote = remote.or(p.addr);
                let sock = p.socket.and_then(|s| self.sockets.get_live(s));
                // The local address the packets use, else the socket's own (0.0.0.0:port for a
                // per-connection socket).
                env.local = match (p.local, sock.and_then(|s| s.local)) {
                    (Some(ip), Some(sa)) => Some(SocketAddr::new(ip, sa.port())),
                    (None, sa) => sa,
                    (Some(ip), None) => Some(SocketAddr::new(ip, 0)),
                };
            }
        } else if with_addresses {
            env.remote = remote;
        }
        let call = HookCall {
            kind,
            peer,
            group,
            env,
        };
        if !self.hook_queue.is_empty() {
            // Behind the hooks already waiting: a peer's disestablish must not overtake its
            // establish.
            self.queue_hook(call);
            return;
        }
        self.start_hook(call);
    }

    /// Runs `call`, or queues it when the privileged side has no free slot.
    fn start_hook(&mut self, call: HookCall) -> bool {
        match self.provider.run_hook(&call) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.queue_hook(call);
                false
            }
            Err(e) => {
                self.log.log(LogLevel::Warn, || format!("hook failed: {e}"));
                true
            }
        }
    }

    fn queue_hook(&mut self, call: HookCall) {
        if let Some(lost) = self.hook_queue.push(call) {
            let n = self.hook_queue.dropped();
            // Every drop is counted; the warning comes at 1, 2, 4, 8... so that a flood
            // does not flood the log as well.
            let level = if n.is_power_of_two() {
                LogLevel::Warn
            } else {
                LogLevel::Debug
            };
            self.log.log(level, || {
                format!(
                    "too many hooks waiting for a free slot: dropped an `{}' hook ({n} dropped so far)",
                    hookq::statement(lost.kind)
                )
            });
        }
    }

    /// The privileged side has a free hook slot again (or may have): waiting hooks start,
    /// authenticated peers' first, until it is busy again.
    pub fn hooks_free(&mut self) {
        while let Some(call) = self.hook_queue.pop() {
            match self.provider.run_hook(&call) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.hook_queue.unpop(call);
                    break;
                }
                Err(e) => self.log.log(LogLevel::Warn, || format!("hook failed: {e}")),
            }
        }
    }

    /// Hooks waiting for a slot, and how many were dropped because too many waited.
    pub fn queued_hooks(&self) -> (usize, u64) {
        (self.hook_queue.len(), self.hook_queue.dropped())
    }
}
