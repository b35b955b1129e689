//! Config reload (SIGHUP, docs/config.md §6.3): peers compared by key.

use super::*;

impl<P: Provider> Engine<P> {
    /// Applies a reloaded config (SIGHUP, docs/config.md §6.3): peers are compared by key; unchanged
    /// ones keep their connection, changed ones are deleted and added again, new ones added,
    /// missing ones deleted. Mode, MTU and binds are not reloaded (fastd neither).
    pub fn reload(&mut self, config: &Config) -> Result<(), EngineError> {
        let now = Instant::now();
        let provider = &mut self.provider;
        let new =
            settings::Settings::from_config(config, &mut |h, p, f| provider.resolve(h, p, f))?;
        let mut keep: std::collections::HashSet<PeerId> =
            std::collections::HashSet::with_capacity(config.peers.len());
        let mut hs_peers = Vec::with_capacity(config.peers.len());
        for ((pc, pp), group) in config.peers.iter().zip(&new.peers).zip(&new.peer_groups) {
            let old = self.peers.by_key(&pp.key);
            let unchanged = old
                .and_then(|id| self.peers.get(id).map(|p| (id, p)))
                .filter(|(id, p)| {
                    !p.dynamic
                        && self.settings.peer_groups.get(id.0 as usize) == Some(group)
                        && p.params.float == pp.float
                        && p.params.remotes == pp.remotes
                        && p.params.ifname == pp.ifname
                });
            let id = match (old, unchanged) {
                (_, Some((id, p))) => {
                    let (was, now_name) = (p.to_string(), pp.name.clone());
                    if let Some(p) = self.peers.get_mut(id) {
                        p.params.name = now_name;
                    }
                    let is = self.peer_display(id);
                    if was == is {
                        self.log
                            .log(LogLevel::Verbose, || format!("peer {is} is unchanged"));
                    } else {
                        self.log.log(LogLevel::Verbose, || {
                            format!("peer {was} has been renamed to {is}")
                        });
                    }
                    id
                }
                (Some(old_id), None) => {
                    let was_dynamic = self.peers.get(old_id).is_some_and(|p| p.dynamic);
                    let was = self.peer_display(old_id);
                    if !was_dynamic {
                        self.log
                            .log(LogLevel::Verbose, || format!("peer {was} has changed"));
                    }
                    self.delete_peer(old_id, now);
                    let id = self.add_peer(pp.clone(), *group)?;
                    if was_dynamic {
                        let is = self.peer_display(id);
                        self.log.log(LogLevel::Verbose, || {
                            format!("dynamic peer {was} is now configured as {is}")
                        });
                    }
                    id
                }
                (None, None) => {
                    let id = self.add_peer(pp.clone(), *group)?;
                    let n = self.peer_display(id);
                    self.log
                        .log(LogLevel::Verbose, || format!("adding peer {n}"));
                    id
                }
            };
            keep.insert(id);
            hs_peers.push(hs::hs_peer(config, pc, pp)?);
        }
        let stale: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(id, p)| !p.deleted && !p.dynamic && !keep.contains(id))
            .map(|(id, _)| id)
            .collect();
        for id in stale {
            self.delete_logged(id, now);
        }
        self.hs.set_peers(hs_peers, now);
        self.settings.forward = new.forward;
        self.settings.verify_group = new.verify_group;
        Ok(())
    }

    pub(super) fn add_peer(
        &mut self,
        params: PeerParams,
        group: crate::config::GroupId,
    ) -> Result<PeerId, EngineError> {
        let id = self.peers.add(params);
        self.ptimers.push(PeerTimers::default());
        self.settings.peer_groups.push(group);
        if self.settings.mode != Mode::Tap && self.settings.persist_interface {
            // As fastd: a peer-directory peer whose interface cannot be created (its
            // name does not fit an interface name, say) stays configured without one.
            if let Err(e) = self.open_peer_iface(id) {
                self.log.log(LogLevel::Error, || e.to_string());
            }
        }
        Ok(id)
    }

    /// Deletes a peer with fastd's lines (reload, SIGUSR2, idle dynamic peer, shutdown of a
    /// dynamic peer): as fastd_peer_delete() does, an established peer is reset first
    /// (`connection with <x> disestablished.`), then `deleting peer <x>`.
    pub(super) fn delete_logged(&mut self, id: PeerId, now: Instant) {
        if self
            .peers
            .get(id)
            .is_some_and(|p| p.sessions.is_established())
        {
            self.reset_peer(id, now);
        }
        let n = self.peer_display(id);
        self.log
            .log(LogLevel::Verbose, || format!("deleting peer {n}"));
        self.delete_peer(id, now);
    }

    /// An established peer is reset first (disestablish hook, its interface goes); then the
    /// peer is found by nothing any more. Its id is never reused: queued timers and the
    /// provider's records of it can only ever mean this peer.
    pub(super) fn delete_peer(&mut self, id: PeerId, now: Instant) {
        if self
            .peers
            .get(id)
            .is_some_and(|p| p.sessions.is_established())
        {
            self.reset_peer(id, now);
        }
        if self.peers.get(id).is_some_and(|p| p.iface.is_some()) {
            self.close_peer_iface(id);
        }
        // A peer that never got a session may still hold the per-connection socket of its
        // handshake attempts.
        self.close_peer_socket(id);
        let dynamic = self
            .peers
            .get(id)
            .filter(|p| p.dynamic)
            .map(|p| p.params.key);
        if let Some(k) = dynamic.and_then(|k| PublicKey::from_bytes(&k).ok()) {
            // The verdict dies with the peer, as in fastd: if the key comes back it is a new
            // dynamic peer, verified again.
            self.hs.forget_dynamic(&k);
        }
        self.retire_traffic(id);
        self.peers.delete(id);
    }
}
