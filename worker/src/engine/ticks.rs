//! Per-peer deadlines: keepalives, the peer timeout, session expiry and refresh, and the
//! expiry of idle dynamic peers.

use super::*;

impl<P: Provider> Engine<P> {
    /// Makes sure a queue entry exists no later than the peer's next deadline.
    pub(super) fn schedule(&mut self, id: PeerId, now: Instant) {
        let Some(p) = self.peers.get(id) else { return };
        let mut next: Option<Instant> = None;
        let mut add = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if p.sessions.is_established() {
            let base = p.last_send.unwrap_or(now);
            add(base + self.timings.keepalive);
            add(p.last_recv.unwrap_or(now) + self.timings.peer_timeout);
            if let Some(d) = p.sessions.next_deadline() {
                add(d);
            }
        }
        if p.dynamic && !p.deleted {
            // A dynamic peer is deleted once idle, established or not (docs/config.md §4.4).
            add(p.seen.unwrap_or(now) + self.timings.peer_timeout);
        }
        let Some(at) = next else { return };
        let Some(t) = self.ptimers.get_mut(id.0 as usize) else {
            return;
        };
        if t.queued.is_none_or(|q| at < q) {
            t.queued = Some(at);
            self.timers.push(at, Timer::Peer(id));
        }
    }

    pub(super) fn run_timers(&mut self, now: Instant) {
        if self.hs.poll_timeout().is_some_and(|t| t <= now) {
            let out = self.hs.handle_timeout(now);
            self.handle_hs_output(out, None, now);
        }
        // Bounded: each peer has at most a few live entries, and every tick reschedules into
        // the future.
        for _ in 0..(self.timers.len() + 1) {
            let Some((at, t)) = self.timers.pop_due(now) else {
                break;
            };
            match t {
                Timer::Maintenance => {
                    let (log, hide) = (&self.log, self.settings.hide);
                    let secs = self.macs.expiry().as_secs();
                    self.macs.expire(now, |mac| {
                        log.log(LogLevel::Debug, || {
                            format!(
                                "MAC address {} not seen for more than {secs} seconds, removing",
                                hide.mac(mac)
                            )
                        });
                    });
                    self.timers
                        .push(now + self.timings.maintenance, Timer::Maintenance);
                    // A backstop: the privileged side tells when a hook slot frees.
                    self.hooks_free();
                }
                Timer::Peer(id) => {
                    let Some(pt) = self.ptimers.get_mut(id.0 as usize) else {
                        continue;
                    };
                    if pt.queued != Some(at) {
                        continue;
                    }
                    pt.queued = None;
                    self.peer_tick(id, now);
                    self.schedule(id, now);
                }
            }
        }
    }

    pub(super) fn peer_tick(&mut self, id: PeerId, now: Instant) {
        let Some(p) = self.peers.get_mut(id) else {
            return;
        };
        // Checked before the reset below: an idle dynamic peer that is still established is
        // deleted in one go (the deletion resets it first), not reset and deleted later.
        let idle = p.seen.is_none_or(|t| now >= t + self.timings.peer_timeout);
        if p.dynamic && !p.deleted && idle {
            self.delete_logged(id, now);
            return;
        }
        if p.sessions.is_established() {
            let timed_out = p
                .last_recv
                .is_some_and(|t| now >= t + self.timings.peer_timeout);
            let expired = p.sessions.expire(now);
            if timed_out || expired {
                self.reset_peer(id, now);
                return;
            }
            self.check_refresh(id, now);
            let Some(p) = self.peers.get(id) else { return };
            let forced = p
                .sessions
                .current
                .as_ref()
                .and_then(|s| method::by_name(&s.method))
                .is_some_and(|m| m.forces_keepalives());
            let last = if forced {
                self.ptimers
                    .get(id.0 as usize)
                    .and_then(|t| t.last_keepalive)
            } else {
                p.last_send
            };
            if last.is_none_or(|t| now >= t + self.timings.keepalive) {
                self.send_keepalive(id, now);
            }
        }
    }
}
