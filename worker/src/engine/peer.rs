//! The peer table: configured peers by index, looked up by public key and by current address,
//! each with its sessions, addresses and drop counters. A problem with one peer's packets only
//! ever touches that peer's entry.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

pub use super::drops::{DropCounters, DropReason};
use super::session::Sessions;

/// Index of a peer in the table (stable while the worker runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u32);

/// Traffic statistics (the status socket shows these later).
#[derive(Debug, Default, Clone, Copy)]
pub struct Traffic {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Accepted packets that arrived after a newer one (status `rx_reordered`).
    pub rx_reordered_packets: u64,
    pub rx_reordered_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Interface packets for this peer that could not be sent: no session, or the socket
    /// buffer was full (EAGAIN).
    pub tx_dropped_packets: u64,
    pub tx_dropped_bytes: u64,
    /// Packets the method refused to encrypt (nonce space exhausted), or that the kernel
    /// refused to send (unreachable, no address left to send from).
    pub tx_error_packets: u64,
    pub tx_error_bytes: u64,
}

impl Traffic {
    /// Adds `other` (fastd's counters are `uint64_t` and wrap).
    pub fn add(&mut self, other: &Traffic) {
        let pairs = [
            (&mut self.rx_packets, other.rx_packets),
            (&mut self.rx_bytes, other.rx_bytes),
            (&mut self.rx_reordered_packets, other.rx_reordered_packets),
            (&mut self.rx_reordered_bytes, other.rx_reordered_bytes),
            (&mut self.tx_packets, other.tx_packets),
            (&mut self.tx_bytes, other.tx_bytes),
            (&mut self.tx_dropped_packets, other.tx_dropped_packets),
            (&mut self.tx_dropped_bytes, other.tx_dropped_bytes),
            (&mut self.tx_error_packets, other.tx_error_packets),
            (&mut self.tx_error_bytes, other.tx_error_bytes),
        ];
        for (sum, v) in pairs {
            *sum = sum.wrapping_add(v);
        }
    }

    /// A payload packet handed to the interface: `rx`, and `rx_reordered` as well if it came
    /// out of order (fastd counts it in both, with the same size).
    pub fn received(&mut self, bytes: usize, reordered: bool) {
        let bytes = bytes as u64;
        self.rx_packets += 1;
        self.rx_bytes += bytes;
        if reordered {
            self.rx_reordered_packets += 1;
            self.rx_reordered_bytes += bytes;
        }
    }
}

/// Static description of a peer, from the config.
#[derive(Debug, Clone)]
pub struct PeerParams {
    pub name: Option<String>,
    pub key: [u8; 32],
    /// Resolved remote addresses, in the order they are tried.
    pub remotes: Vec<SocketAddr>,
    pub float: bool,
    /// TUN/multitap interface name (after fastd's naming rules), `None` = kernel picks.
    pub ifname: Option<String>,
    pub mtu: u16,
}

impl PeerParams {
    /// Accepts handshakes from any address (docs/config.md §6.4).
    pub fn floating(&self) -> bool {
        self.float || self.remotes.is_empty()
    }
}

pub struct Peer<C> {
    pub params: PeerParams,
    pub sessions: Sessions<C>,
    /// Where the peer is now (the source of its last handshake).
    pub addr: Option<SocketAddr>,
    /// Our address the session was established on.
    pub local: Option<IpAddr>,
    /// Index of the socket that reaches this peer.
    pub socket: Option<usize>,
    /// Index of this peer's interface (tun/multitap).
    pub iface: Option<usize>,
    pub last_recv: Option<Instant>,
    /// The last sign of life: creation, or the last valid packet. Unlike `last_recv` it
    /// survives a reset, so an idle dynamic peer expires whether it is established or not.
    pub seen: Option<Instant>,
    pub last_send: Option<Instant>,
    pub drops: DropCounters,
    pub traffic: Traffic,
    /// Has been established at least once since the last reset (for the log lines).
    pub connected: bool,
    /// When the connection was established (kept across rekeys, cleared on reset).
    pub connected_since: Option<Instant>,
    /// Created by `on verify` (no name, interface only while established).
    pub dynamic: bool,
    /// Deleted (reload, SIGUSR2, idle dynamic peer): no longer matched by key, address or
    /// remote. The slot stays so that ids held elsewhere never point at another peer.
    pub deleted: bool,
}

/// fastd's form of an unnamed peer in log lines: `{` + the key's first 16 hex digits + `}`
/// (docs/config.md §6.1; named peers are `<name>`).
pub struct Unnamed<'a>(pub &'a [u8; 32]);

impl fmt::Display for Unnamed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for b in self.0.iter().take(8) {
            write!(f, "{b:02x}")?;
        }
        write!(f, "}}")
    }
}

impl<C> fmt::Display for Peer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.params.name {
            Some(n) => write!(f, "<{n}>"),
            None => Unnamed(&self.params.key).fmt(f),
        }
    }
}

impl<C> Peer<C> {
    pub fn new(params: PeerParams) -> Self {
        Peer {
            params,
            sessions: Sessions::default(),
            addr: None,
            local: None,
            socket: None,
            iface: None,
            last_recv: None,
            seen: None,
            last_send: None,
            drops: DropCounters::default(),
            traffic: Traffic::default(),
            connected: false,
            connected_since: None,
            dynamic: false,
            deleted: false,
        }
    }

    /// A valid (authenticated) packet arrived from the peer.
    pub fn heard(&mut self, now: Instant) {
        self.last_recv = Some(now);
        self.seen = Some(now);
    }
}

/// IPv4-mapped IPv6 addresses compare as plain IPv4 (docs/protocol.md §1.3).
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

pub struct PeerTable<C> {
    peers: Vec<Peer<C>>,
    by_key: HashMap<[u8; 32], PeerId>,
    by_addr: HashMap<SocketAddr, PeerId>,
    /// Configured remote addresses (the first peer naming one owns it).
    by_remote: HashMap<SocketAddr, PeerId>,
}

impl<C> PeerTable<C> {
    pub fn new(params: Vec<PeerParams>) -> Self {
        let mut by_key = HashMap::new();
        let mut by_remote = HashMap::new();
        let mut peers = Vec::with_capacity(params.len());
        for (i, p) in params.into_iter().enumerate() {
            let id = PeerId(u32::try_from(i).unwrap_or(u32::MAX));
            by_key.insert(p.key, id);
            for r in &p.remotes {
                by_remote.entry(canonical(*r)).or_insert(id);
            }
            peers.push(Peer::new(p));
        }
        PeerTable {
            peers,
            by_key,
            by_addr: HashMap::new(),
            by_remote,
        }
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Adds a peer (an `on verify` peer, or one a reload brought); its id stays valid for the
    /// worker's life.
    pub fn add(&mut self, params: PeerParams) -> PeerId {
        let id = PeerId(u32::try_from(self.peers.len()).unwrap_or(u32::MAX));
        self.by_key.insert(params.key, id);
        self.peers.push(Peer::new(params));
        self.rebuild_remotes();
        id
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub fn get(&self, id: PeerId) -> Option<&Peer<C>> {
        self.peers.get(id.0 as usize)
    }

    pub fn get_mut(&mut self, id: PeerId) -> Option<&mut Peer<C>> {
        self.peers.get_mut(id.0 as usize)
    }

    pub fn ids(&self) -> impl Iterator<Item = PeerId> {
        (0..self.peers.len()).map(|i| PeerId(i as u32))
    }

    pub fn iter(&self) -> impl Iterator<Item = (PeerId, &Peer<C>)> {
        self.peers
            .iter()
            .enumerate()
            .map(|(i, p)| (PeerId(i as u32), p))
    }

    pub fn by_key(&self, key: &[u8; 32]) -> Option<PeerId> {
        self.by_key.get(key).copied()
    }

    pub fn by_addr(&self, addr: &SocketAddr) -> Option<PeerId> {
        self.by_addr.get(&canonical(*addr)).copied()
    }

    /// Deletes a peer (reload): it keeps its id but is found by nothing any more.
    pub fn delete(&mut self, id: PeerId) {
        self.clear_addr(id);
        if let Some(p) = self.peers.get_mut(id.0 as usize) {
            p.deleted = true;
            if self.by_key.get(&p.params.key) == Some(&id) {
                self.by_key.remove(&p.params.key);
            }
        }
        self.rebuild_remotes();
    }

    /// Recomputes the remote-address index after peers changed.
    pub fn rebuild_remotes(&mut self) {
        self.by_remote.clear();
        for (i, p) in self.peers.iter().enumerate() {
            if p.deleted {
                continue;
            }
            for r in &p.params.remotes {
                self.by_remote
                    .entry(canonical(*r))
                    .or_insert(PeerId(i as u32));
            }
        }
    }

    /// The peer whose configured remotes include `addr` (before any session exists, its
    /// handshakes come from there).
    pub fn by_remote(&self, addr: &SocketAddr) -> Option<PeerId> {
        self.by_remote.get(&canonical(*addr)).copied()
    }

    /// Moves a peer to a new address. Another peer holding that address loses it (and is
    /// returned so the caller can reset it).
    pub fn set_addr(&mut self, id: PeerId, addr: SocketAddr) -> Option<PeerId> {
        let addr = canonical(addr);
        let displaced = self.by_addr.get(&addr).copied().filter(|p| *p != id);
        if let Some(other) = displaced {
            if let Some(o) = self.get_mut(other) {
                o.addr = None;
            }
        }
        if let Some(p) = self.peers.get_mut(id.0 as usize) {
            if let Some(old) = p.addr.take() {
                self.by_addr.remove(&old);
            }
            p.addr = Some(addr);
            self.by_addr.insert(addr, id);
        }
        displaced
    }

    pub fn clear_addr(&mut self, id: PeerId) {
        if let Some(p) = self.peers.get_mut(id.0 as usize) {
            if let Some(old) = p.addr.take() {
                if self.by_addr.get(&old) == Some(&id) {
                    self.by_addr.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn params(k: u8) -> PeerParams {
        PeerParams {
            name: Some(format!("p{k}")),
            key: [k; 32],
            remotes: vec![],
            float: false,
            ifname: None,
            mtu: 1448,
        }
    }

    #[test]
    fn lookup_by_key_and_address() {
        let mut t: PeerTable<()> = PeerTable::new(vec![params(1), params(2)]);
        assert_eq!(t.by_key(&[2; 32]), Some(PeerId(1)));
        assert_eq!(t.by_key(&[3; 32]), None);
        let a: SocketAddr = "198.51.100.2:1000".parse().unwrap();
        assert_eq!(t.set_addr(PeerId(0), a), None);
        assert_eq!(t.by_addr(&a), Some(PeerId(0)));
        let mapped = SocketAddr::new(
            IpAddr::V6(
                "198.51.100.2"
                    .parse::<std::net::Ipv4Addr>()
                    .unwrap()
                    .to_ipv6_mapped(),
            ),
            1000,
        );
        assert_eq!(t.by_addr(&mapped), Some(PeerId(0)));
        // Peer 1 takes the address over: peer 0 loses it.
        assert_eq!(t.set_addr(PeerId(1), a), Some(PeerId(0)));
        assert_eq!(t.by_addr(&a), Some(PeerId(1)));
        assert_eq!(t.get(PeerId(0)).unwrap().addr, None);
        let b = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 5);
        t.set_addr(PeerId(1), b);
        assert_eq!(t.by_addr(&a), None);
        t.clear_addr(PeerId(1));
        assert_eq!(t.by_addr(&b), None);
    }

    #[test]
    fn counters_and_names() {
        let mut c = DropCounters::default();
        c.count(DropReason::Duplicate);
        c.count(DropReason::Duplicate);
        c.count(DropReason::Handshake);
        assert_eq!(c.get(DropReason::Duplicate), 2);
        assert_eq!(c.get(DropReason::Auth), 0);
        assert_eq!(c.total(), 3);
        let p: Peer<()> = Peer::new(PeerParams {
            name: None,
            ..params(0xab)
        });
        assert_eq!(p.to_string(), "{abababababababab}");
    }
}
