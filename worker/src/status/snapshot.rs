//! The status document as plain data (docs/config.md §5.4): what the packet engine fills in when a
//! status client connects. No I/O and no serde here; the `json` module turns it into fastd's bytes.
//!
//! Units are fastd's: times are whole milliseconds of the loop's monotonic clock (fastd's
//! `ctx.now`, CLOCK_MONOTONIC truncated to ms), and a duration is the difference of two such
//! truncated readings, `now_ms - then_ms`, not a rounded `Duration`. [`elapsed_ms`] does that.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// One status document: a snapshot of the daemon taken when a client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSnapshot {
    /// `uptime`: ms since fastd started.
    pub uptime_ms: u64,
    /// The interface mode; decides which of the (tap) / (not tap) members appear.
    pub mode: ModeStatus,
    /// `statistics`: totals over all peers since start, never reset.
    pub statistics: Statistics,
    /// `peers`: every ENABLED peer (static, peer-dir, dynamic) in the order it was added, not
    /// sorted; disabled peers (duplicate or own key) are left out by the engine.
    pub peers: Vec<PeerStatus>,
}

/// The interface mode as the status document sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeStatus {
    /// `mode tap`: one shared interface, written as the top-level `interface`; peers have no
    /// `interface` member and their connections carry `mac_addresses`.
    Tap {
        /// The TAP interface's name.
        interface: String,
    },
    /// `mode tun`: no top-level `interface`; each peer has an `interface` member naming its own
    /// TUN interface (`null` while it has none).
    Tun,
    /// `mode multitap`: as [`ModeStatus::Tun`], with per-peer TAP interfaces; no `mac_addresses`.
    Multitap,
}

/// Which counter of [`Statistics`] a packet goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    /// A payload packet received and decrypted.
    Rx,
    /// A received packet that arrived out of order within the replay window (also counted in
    /// [`StatKind::Rx`]).
    RxReordered,
    /// A payload packet sent successfully.
    Tx,
    /// A send that failed with EAGAIN/EWOULDBLOCK.
    TxDropped,
    /// A send that failed otherwise.
    TxError,
}

/// One `{ "packets": n, "bytes": n }` pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    /// Number of packets.
    pub packets: u64,
    /// Sum of their inner sizes (IP packet in tun, Ethernet frame in tap; no headers, no MAC).
    pub bytes: u64,
}

/// fastd's `fastd_stats_t`: the five counters, in the document's order.
///
/// The engine can keep one of these per peer and one for the totals and count into them with
/// [`Statistics::add`]; the snapshot then copies them. Empty keepalives are never counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Statistics {
    /// `rx`
    pub rx: Counter,
    /// `rx_reordered`
    pub rx_reordered: Counter,
    /// `tx`
    pub tx: Counter,
    /// `tx_dropped`
    pub tx_dropped: Counter,
    /// `tx_error`
    pub tx_error: Counter,
}

impl Statistics {
    /// Counts one packet of `bytes` inner bytes. Wraps like fastd's `uint64_t` counters.
    pub fn add(&mut self, kind: StatKind, bytes: usize) {
        let counter = match kind {
            StatKind::Rx => &mut self.rx,
            StatKind::RxReordered => &mut self.rx_reordered,
            StatKind::Tx => &mut self.tx,
            StatKind::TxDropped => &mut self.tx_dropped,
            StatKind::TxError => &mut self.tx_error,
        };
        counter.packets = counter.packets.wrapping_add(1);
        counter.bytes = counter.bytes.wrapping_add(bytes as u64);
    }
}

/// One member of `peers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's public key; the member name is its 64 lowercase hex digits.
    pub key: [u8; 32],
    /// `name`: `None` (`null`) for unnamed peers (`include peer` without `as`, dynamic peers).
    pub name: Option<String>,
    /// `address`: the current address, or the handshake target of an initiating peer that has
    /// not connected yet. `hide ip addresses` does not apply here.
    pub address: PeerAddress,
    /// `interface` (tun/multitap only; not written in tap mode): the peer's own interface, `None`
    /// (`null`) if it has none right now.
    pub interface: Option<String>,
    /// `connection`: `None` (`null`) unless established.
    pub connection: Option<ConnectionStatus>,
}

/// A peer's `address`, formatted like fastd's `fastd_snprint_peer_address` without hiding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddress {
    /// `any`: no address yet (a passive peer that has not connected).
    Any,
    /// `a.b.c.d:port`, `[v6]:port` or `[v6%iface]:port`.
    Inet {
        /// The address. An IPv4-mapped IPv6 address is written as IPv6 (`[::ffff:a.b.c.d]`), so
        /// the engine passes IPv4 peers as [`SocketAddr::V4`], as fastd stores them.
        addr: SocketAddr,
        /// For a link-local IPv6 address: the name of the interface its scope id refers to
        /// (fastd's `if_indextoname`; `None` if that fails, e.g. scope id 0). The sandbox cannot
        /// look names up, so the engine supplies it from its own interface table. Not written
        /// for other addresses, as in fastd.
        scope_ifname: Option<String>,
    },
}

impl From<SocketAddr> for PeerAddress {
    fn from(addr: SocketAddr) -> Self {
        Self::Inet {
            addr,
            scope_ifname: None,
        }
    }
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::Inet { addr, scope_ifname } => match addr.ip() {
                IpAddr::V4(ip) => write!(f, "{ip}:{}", addr.port()),
                IpAddr::V6(ip) => {
                    f.write_str("[")?;
                    write_ipv6_like_inet_ntop(f, &ip)?;
                    // fastd adds the scope only to link-local addresses (IN6_IS_ADDR_LINKLOCAL).
                    let link_local = ip.segments()[0] & 0xffc0 == 0xfe80;
                    if let Some(ifname) = scope_ifname.as_ref().filter(|_| link_local) {
                        write!(f, "%{ifname}")?;
                    }
                    write!(f, "]:{}", addr.port())
                }
            },
        }
    }
}

/// Writes `ip` as glibc's `inet_ntop` does. Rust's `Display` agrees (RFC 5952 compression,
/// `::ffff:a.b.c.d` for mapped addresses) except for the deprecated IPv4-compatible form: glibc
/// writes `::a.b.c.d` where Rust writes hex groups.
fn write_ipv6_like_inet_ntop(f: &mut fmt::Formatter<'_>, ip: &Ipv6Addr) -> fmt::Result {
    let s = ip.segments();
    let compatible = s[..6].iter().all(|&w| w == 0) && s[6] != 0;
    if compatible {
        let [.., a, b, c, d] = ip.octets();
        write!(f, "::{a}.{b}.{c}.{d}")
    } else {
        write!(f, "{ip}")
    }
}

/// A peer's `connection` object: present only while the peer is established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStatus {
    /// `established`: ms since this connection was established.
    pub established_ms: u64,
    /// `method`: the name of the method of the session in use (`null` if there is none).
    pub method: Option<String>,
    /// `statistics`: this peer's counters since its last reset.
    pub statistics: Statistics,
    /// `mac_addresses` (tap only; not written otherwise): unicast source MACs learned from this
    /// peer and not yet expired. Any order: the document lists them sorted ascending, as fastd's
    /// sorted table does.
    pub mac_addresses: Vec<MacAddress>,
}

/// An Ethernet address, written `%02x:` style in lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddress(pub [u8; 6]);

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// `now_ms - then_ms` for two readings of the loop's millisecond clock, as fastd computes
/// `uptime` and `established`; 0 if the clock readings are out of order.
pub fn elapsed_ms(then_ms: i64, now_ms: i64) -> u64 {
    u64::try_from(now_ms.saturating_sub(then_ms)).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV6};

    fn v6(s: &str, port: u16, scope: Option<&str>) -> String {
        let ip: Ipv6Addr = s.parse().unwrap();
        PeerAddress::Inet {
            addr: SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0)),
            scope_ifname: scope.map(str::to_owned),
        }
        .to_string()
    }

    #[test]
    fn addresses_match_inet_ntop() {
        assert_eq!(PeerAddress::Any.to_string(), "any");
        let v4 = PeerAddress::from(SocketAddr::from((Ipv4Addr::new(192, 0, 2, 2), 38169)));
        assert_eq!(v4.to_string(), "192.0.2.2:38169");
        assert_eq!(v6("2001:db8::1", 10000, None), "[2001:db8::1]:10000");
        assert_eq!(v6("fe80::1", 1, Some("eth0")), "[fe80::1%eth0]:1");
        assert_eq!(v6("febf::1", 1, Some("eth0")), "[febf::1%eth0]:1");
        assert_eq!(v6("fe80::1", 1, None), "[fe80::1]:1");
        assert_eq!(v6("fec0::1", 1, Some("eth0")), "[fec0::1]:1");
        assert_eq!(v6("2001:db8::1", 1, Some("eth0")), "[2001:db8::1]:1");
        // glibc inet_ntop outputs, checked with Python's socket.inet_ntop on this machine.
        assert_eq!(v6("::ffff:192.0.2.1", 5, None), "[::ffff:192.0.2.1]:5");
        assert_eq!(v6("::192.0.2.1", 5, None), "[::192.0.2.1]:5");
        assert_eq!(v6("::1", 5, None), "[::1]:5");
        assert_eq!(v6("::", 5, None), "[::]:5");
        assert_eq!(v6("::2", 5, None), "[::2]:5");
        assert_eq!(v6("2001:db8:0:1:0:0:0:1", 5, None), "[2001:db8:0:1::1]:5");
        assert_eq!(v6("2001:0:0:1:0:0:0:1", 5, None), "[2001:0:0:1::1]:5");
        assert_eq!(
            v6("2001:db8:0:1:1:1:1:1", 5, None),
            "[2001:db8:0:1:1:1:1:1]:5"
        );
        assert_eq!(v6("::1:2", 5, None), "[::0.1.0.2]:5");
        assert_eq!(v6("1:0:0:2:0:0:0:3", 5, None), "[1:0:0:2::3]:5");
        assert_eq!(v6("0:0:0:0:0:1:0:0", 5, None), "[::1:0:0]:5");
    }

    #[test]
    fn mac_is_lowercase_zero_padded() {
        let mac = MacAddress([0x16, 0x0b, 0x1d, 0xcb, 0x2f, 0x3a]);
        assert_eq!(mac.to_string(), "16:0b:1d:cb:2f:3a");
    }

    #[test]
    fn statistics_add_counts_packets_and_bytes() {
        let mut s = Statistics::default();
        s.add(StatKind::Rx, 100);
        s.add(StatKind::Rx, 28);
        s.add(StatKind::TxError, 7);
        assert_eq!(
            s.rx,
            Counter {
                packets: 2,
                bytes: 128
            }
        );
        assert_eq!(
            s.tx_error,
            Counter {
                packets: 1,
                bytes: 7
            }
        );
        assert_eq!(s.tx, Counter::default());
    }

    #[test]
    fn elapsed_is_difference_of_truncated_readings() {
        assert_eq!(elapsed_ms(1_000, 27_168), 26_168);
        assert_eq!(elapsed_ms(5, 4), 0);
    }
}
