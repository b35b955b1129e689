//! TAP mode switching: MAC learning (fastd forgets an entry after 5 min), and the decision where
//! a frame goes. Frames from the TAP interface go to the peer owning the destination MAC, or to
//! every established peer for broadcast, multicast and unknown destinations (docs/config.md §6.7).
//! As fastd v22, source addresses of frames read from the TAP interface are learned too, as
//! local: a frame for a local address is never sent to a peer, so that unicast traffic from
//! peers to hosts behind the gateway's bridge is not flooded to every peer under `forward`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::peer::PeerId;

/// Length of the Ethernet header fastd expects at least in TAP mode (docs/protocol.md §5.10).
pub const ETH_HLEN: usize = 14;

/// Upper bound of learned addresses: a peer sending frames from random source MACs must not
/// make the worker grow without limit.
const MAX_ENTRIES: usize = 16384;

pub type Mac = [u8; 6];

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// The learned owner of the destination MAC.
    Peer(PeerId),
    /// Behind the TAP interface: no peer gets the frame.
    Local,
    /// Every established peer (except the one the frame came from, when forwarding).
    Flood,
}

fn is_multicast(mac: &Mac) -> bool {
    mac[0] & 1 != 0
}

/// Destination and source MAC of an Ethernet frame, `None` if it is too short.
pub fn macs(frame: &[u8]) -> Option<(Mac, Mac)> {
    let dst: Mac = frame.get(0..6)?.try_into().ok()?;
    let src: Mac = frame.get(6..12)?.try_into().ok()?;
    if frame.len() < ETH_HLEN {
        return None;
    }
    Some((dst, src))
}

#[derive(Debug)]
pub struct MacTable {
    /// Owner (`None`: local, learned from the TAP interface) and when it was last seen.
    entries: HashMap<Mac, (Option<PeerId>, Instant)>,
    expiry: Duration,
}

impl MacTable {
    pub fn new(expiry: Duration) -> Self {
        MacTable {
            entries: HashMap::new(),
            expiry,
        }
    }

    /// Remembers that `src` lives behind `peer` (a frame from that peer carried it). True if
    /// the address was not known before (fastd logs that; a known one silently moves).
    pub fn learn(&mut self, src: Mac, peer: PeerId, now: Instant) -> bool {
        self.learn_owner(src, Some(peer), now)
    }

    /// Remembers that `src` lives behind the TAP interface (a frame read from it carried it).
    /// True if the address was not known before (fastd logs 'learned new local MAC address').
    pub fn learn_local(&mut self, src: Mac, now: Instant) -> bool {
        self.learn_owner(src, None, now)
    }

    fn learn_owner(&mut self, src: Mac, peer: Option<PeerId>, now: Instant) -> bool {
        if is_multicast(&src) {
            return false;
        }
        if let Some(e) = self.entries.get_mut(&src) {
            *e = (peer, now);
            return false;
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.expire(now, |_| {});
            if self.entries.len() >= MAX_ENTRIES {
                // Still full of live entries: drop the oldest one rather than refuse to learn.
                if let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, t))| *t)
                    .map(|(m, _)| *m)
                {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.entries.insert(src, (peer, now));
        true
    }

    /// Where a frame with destination `dst` goes.
    pub fn lookup(&self, dst: &Mac, now: Instant) -> Dest {
        if is_multicast(dst) {
            return Dest::Flood;
        }
        match self.entries.get(dst) {
            Some((owner, seen)) if now.saturating_duration_since(*seen) < self.expiry => {
                owner.map_or(Dest::Local, Dest::Peer)
            }
            _ => Dest::Flood,
        }
    }

    /// Forgets the addresses not seen for the expiry time; `removed` hears of each one.
    pub fn expire(&mut self, now: Instant, mut removed: impl FnMut(&Mac)) {
        let expiry = self.expiry;
        self.entries.retain(|mac, (_, seen)| {
            let live = now.saturating_duration_since(*seen) < expiry;
            if !live {
                removed(mac);
            }
            live
        });
    }

    /// How long an address is kept without traffic.
    pub fn expiry(&self) -> Duration {
        self.expiry
    }

    /// The live addresses learned behind `peer` (for the status socket).
    pub fn macs_of(&self, peer: PeerId, now: Instant) -> Vec<Mac> {
        let mut v: Vec<Mac> = self
            .entries
            .iter()
            .filter(|(_, (p, seen))| {
                *p == Some(peer) && now.saturating_duration_since(*seen) < self.expiry
            })
            .map(|(m, _)| *m)
            .collect();
        v.sort_unstable();
        v
    }

    /// A reset peer owns no addresses any more.
    pub fn forget_peer(&mut self, peer: PeerId) {
        self.entries.retain(|_, (p, _)| *p != Some(peer));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const A: Mac = [2, 0, 0, 0, 0, 0xa];
    const B: Mac = [2, 0, 0, 0, 0, 0xb];

    #[test]
    fn learns_and_expires() {
        let t0 = Instant::now();
        let mut t = MacTable::new(Duration::from_secs(300));
        assert_eq!(t.lookup(&A, t0), Dest::Flood);
        assert!(t.learn(A, PeerId(1), t0));
        assert_eq!(
            t.lookup(&A, t0 + Duration::from_secs(299)),
            Dest::Peer(PeerId(1))
        );
        assert_eq!(t.lookup(&A, t0 + Duration::from_secs(300)), Dest::Flood);
        assert_eq!(t.lookup(&B, t0), Dest::Flood);
        // Known already: it moves to the other peer, but is not new.
        assert!(!t.learn(A, PeerId(2), t0 + Duration::from_secs(10)));
        assert_eq!(
            t.lookup(&A, t0 + Duration::from_secs(11)),
            Dest::Peer(PeerId(2))
        );
        assert!(t.learn(B, PeerId(2), t0 + Duration::from_secs(200)));
        let mut gone = Vec::new();
        t.expire(t0 + Duration::from_secs(400), |m| gone.push(*m));
        assert_eq!(gone, [A]);
        t.expire(t0 + Duration::from_secs(500), |m| gone.push(*m));
        assert_eq!(gone, [A, B]);
        assert!(t.is_empty());
    }

    #[test]
    fn multicast_floods_and_is_never_learned() {
        let t0 = Instant::now();
        let mut t = MacTable::new(Duration::from_secs(300));
        let bcast = [0xff; 6];
        assert!(!t.learn(bcast, PeerId(1), t0));
        assert!(t.is_empty());
        assert_eq!(t.lookup(&bcast, t0), Dest::Flood);
        assert_eq!(t.lookup(&[0x33, 0x33, 0, 0, 0, 1], t0), Dest::Flood);
    }

    #[test]
    fn forget_peer_and_bounded() {
        let t0 = Instant::now();
        let mut t = MacTable::new(Duration::from_secs(300));
        for i in 0..(MAX_ENTRIES + 10) {
            let b = (i as u32).to_be_bytes();
            t.learn([2, 0, b[0], b[1], b[2], b[3]], PeerId(i as u32 % 3), t0);
        }
        assert_eq!(t.len(), MAX_ENTRIES);
        t.forget_peer(PeerId(0));
        assert!(t.len() < MAX_ENTRIES);
        assert!(t.entries.values().all(|(p, _)| *p != Some(PeerId(0))));
    }

    #[test]
    fn local_addresses_go_to_no_peer() {
        let t0 = Instant::now();
        let mut t = MacTable::new(Duration::from_secs(300));
        assert!(t.learn_local(A, t0));
        assert!(!t.learn_local(A, t0));
        assert_eq!(t.lookup(&A, t0), Dest::Local);
        assert!(t.macs_of(PeerId(1), t0).is_empty());
        // A local address that shows up behind a peer moves there, and back.
        assert!(!t.learn(A, PeerId(1), t0));
        assert_eq!(t.lookup(&A, t0), Dest::Peer(PeerId(1)));
        assert!(!t.learn_local(A, t0));
        assert_eq!(t.lookup(&A, t0), Dest::Local);
        // Forgetting a peer keeps local addresses; they expire as any other.
        t.forget_peer(PeerId(1));
        assert_eq!(t.lookup(&A, t0), Dest::Local);
        assert_eq!(t.lookup(&A, t0 + Duration::from_secs(300)), Dest::Flood);
    }

    #[test]
    fn short_frames_have_no_macs() {
        assert!(macs(&[0u8; 13]).is_none());
        let mut f = [0u8; 14];
        f[..6].copy_from_slice(&A);
        f[6..12].copy_from_slice(&B);
        assert_eq!(macs(&f), Some((A, B)));
    }
}
