//! The gateway extension (README.md, "Extensions to the config language"): interface
//! addresses, `redirect gateway` and `masquerade`, as typed requests the worker sends and
//! a sealed [`GatewayPolicy`] the helper checks each of them against.
//!
//! The worker never names a free-form route, table or rule: every request is
//! one of a few shapes, and [`GatewayPolicy::check`] compares its values with
//! what the manifest sealed at start plus what the helper itself observed
//! (which interfaces it created for which peer, which peers are pinned).

use crate::types::IfName;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

pub use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Linux IFNAMSIZ minus the terminating NUL.
pub const MAX_IFNAME_LEN: usize = 15;
/// Instance names end up in an nftables table name; keep them short and plain.
pub const MAX_INSTANCE_LEN: usize = 32;
/// Pinned peers at once; bounds the helper's state whatever the worker asks.
pub const MAX_PINNED_PEERS: usize = 1024;
/// Prefix of the nftables table the daemon owns.
pub const NFT_TABLE_PREFIX: &str = "fastd_privsep_";

/// Address family of a redirect (`0.0.0.0/1`+`128.0.0.0/1` or `::/1`+`8000::/1`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of `addr`.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The two halves that together cover the whole address space but are
    /// more specific than any default route, so the original default stays.
    pub fn redirect_halves(self) -> [IpNet; 2] {
        use std::net::{Ipv4Addr, Ipv6Addr};
        match self {
            Family::V4 => [
                IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(0, 0, 0, 0)), 1),
                IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(128, 0, 0, 0)), 1),
            ],
            Family::V6 => [
                IpNet::new_assert(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 1),
                IpNet::new_assert(IpAddr::V6(Ipv6Addr::new(0x8000, 0, 0, 0, 0, 0, 0, 0)), 1),
            ],
        }
    }
}

/// Add or remove one address (with its prefix length, host bits kept, e.g.
/// `172.16.16.2/24`) on an interface the helper created.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AddressOp {
    /// A device the helper created.
    pub ifname: IfName,
    /// The address, with its prefix length.
    pub addr: IpNet,
}

/// Pin the peer's current underlay address to the route the kernel chooses
/// for it now (RTM_GETROUTE), before the redirect hides that route. Sent on
/// establish and again when the peer floats; the helper then replaces the pin.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PinHostRoute {
    /// The peer (its name, or its key in hex).
    pub peer: String,
    /// Must be a /32 or /128.
    pub dest: IpNet,
}

/// Route the whole address space of `family` through the tunnel interface.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RedirectGateway {
    /// The peer (its name, or its key in hex).
    pub peer: String,
    /// The peer's interface.
    pub ifname: IfName,
    /// `redirect gateway via`: the next hop inside the tunnel, if configured.
    pub via: Option<IpAddr>,
    /// The address family to redirect.
    pub family: Family,
}

/// Masquerade traffic from `prefixes` that leaves through `out_ifname`, in
/// the daemon's own nftables table `table`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Masquerade {
    /// The daemon's table (`fastd_privsep_<instance>`).
    pub table: String,
    /// The source prefixes.
    pub prefixes: Vec<IpNet>,
    /// The outgoing interface.
    pub out_ifname: String,
}

/// The gateway requests; the integrator wraps this in the main `Request` enum.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum GatewayRequest {
    /// An `interface address` on a device the helper created.
    AddAddress(AddressOp),
    /// Take such an address off again.
    RemoveAddress(AddressOp),
    /// The peer's underlay host route (see [`PinHostRoute`]).
    PinHostRoute(PinHostRoute),
    /// The redirect of one family (see [`RedirectGateway`]).
    RedirectGateway(RedirectGateway),
    /// Disestablish: remove the pin and the redirect routes of this peer
    /// (only what the helper's journal recorded for it).
    Unredirect {
        /// The peer (its name, or its key in hex).
        peer: String,
    },
    /// The masquerade rule (see [`Masquerade`]).
    Masquerade(Masquerade),
}

/// `redirect gateway [via ADDRESS];`
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct RedirectManifest {
    /// The next hop inside the tunnel, if given.
    pub via: Option<IpAddr>,
}

/// The effective gateway settings of one peer (peer block, then its groups,
/// then the top level: the worker resolves the inheritance before sealing).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct PeerGateway {
    /// `interface address` for the peer's own interface (tun mode); empty
    /// means the top-level `interface_addresses` apply.
    pub addresses: Vec<IpNet>,
    /// `redirect gateway`, if set for the peer.
    pub redirect: Option<RedirectManifest>,
    /// The peer's `remote` addresses when all of them are IP literals and the
    /// peer does not float; `None` means any unicast address (floating
    /// peers, hostname remotes, peers without a remote).
    pub remotes: Option<Vec<IpAddr>>,
}

/// `masquerade [from PREFIX] out "IFNAME";`
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MasqueradeManifest {
    /// Already defaulted to the prefixes of `interface address` by the worker.
    pub prefixes: Vec<IpNet>,
    /// The outgoing interface.
    pub out_ifname: String,
}

/// The gateway part of the worker's manifest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct GatewayManifest {
    /// Names the nftables table (`fastd_privsep_<instance>`).
    pub instance: String,
    /// Top-level `interface address` (the shared TUN/TAP interface).
    pub interface_addresses: Vec<IpNet>,
    /// Peers with settings of their own.
    pub peers: BTreeMap<String, PeerGateway>,
    /// What applies to any peer not in `peers` (top-level statements; peers
    /// that appear later from `include peers from` directories).
    pub default_peer: PeerGateway,
    /// `masquerade`, if configured.
    pub masquerade: Option<MasqueradeManifest>,
}

/// Who an interface the helper created belongs to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum IfaceOwner {
    /// The single TUN/TAP interface of tap/tun-single/multitap modes.
    Shared,
    /// A tun-mode interface of one peer.
    Peer(String),
}

/// Why a gateway manifest cannot be sealed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ManifestError {
    /// The instance name is unusable.
    #[error("invalid instance name {0:?} (1-{MAX_INSTANCE_LEN} characters from A-Z a-z 0-9 _ -)")]
    Instance(String),
    /// An interface name is unusable.
    #[error("invalid interface name {0:?}")]
    IfName(String),
    /// An address cannot be configured.
    #[error("unusable address {0} in the gateway settings")]
    Address(IpNet),
    /// `masquerade` without any prefix.
    #[error("masquerade needs at least one prefix")]
    NoMasqueradePrefix,
}

/// Why a gateway request was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum GatewayRefusal {
    /// The interface is not one the helper created.
    #[error("interface {0:?} was not created by the helper")]
    UnknownInterface(String),
    /// The address is not configured for that interface.
    #[error("address {addr} is not configured for interface {ifname:?}")]
    Address {
        /// The interface.
        ifname: String,
        /// The address.
        addr: IpNet,
    },
    /// The peer has no `redirect gateway`.
    #[error("peer {0:?} has no `redirect gateway`")]
    NoRedirect(String),
    /// A pin that is not a host route.
    #[error("pinned route {0} is not a /32 or /128")]
    NotHostRoute(IpNet),
    /// The address is not the peer's.
    #[error("{addr} is not a current address of peer {peer:?}")]
    NotPeerAddress {
        /// The peer.
        peer: String,
        /// The address.
        addr: IpAddr,
    },
    /// The interface is not the peer's.
    #[error("interface {ifname:?} does not belong to peer {peer:?}")]
    WrongInterface {
        /// The peer.
        peer: String,
        /// The interface.
        ifname: String,
    },
    /// A `via` other than the configured one.
    #[error("redirect via {got:?} differs from the configured {want:?}")]
    Via {
        /// The configured `via`.
        want: Option<IpAddr>,
        /// The requested `via`.
        got: Option<IpAddr>,
    },
    /// A pin to an address inside the tunnel.
    #[error("{0} lies inside the tunnel's own prefixes")]
    PinInsideTunnel(IpAddr),
    /// More pins than peers could need.
    #[error("too many pinned peers")]
    TooManyPins,
    /// The peer is unknown.
    #[error("peer {0:?} is neither configured nor has a session the helper knows of")]
    UnknownPeer(String),
    /// An unredirect before any pin.
    #[error("peer {0:?} has no pinned underlay route yet")]
    NotPinned(String),
    /// No `masquerade` is configured.
    #[error("no `masquerade` configured")]
    NoMasquerade,
    /// Not the daemon's nft table.
    #[error("nftables table {0:?} is not the daemon's table")]
    Table(String),
    /// Other prefixes than the configured ones.
    #[error("masquerade prefixes differ from the configured ones")]
    MasqueradePrefixes,
    /// Another out interface than the configured one.
    #[error("masquerade out interface {0:?} is not the configured one")]
    MasqueradeInterface(String),
}

/// How gateway requests name a peer: its name, or its key in hex for an unnamed one.
pub fn peer_label(name: Option<&str>, key: &[u8; 32]) -> String {
    match name {
        Some(n) => n.to_owned(),
        None => key.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// The nftables table of an instance.
pub fn nft_table_name(instance: &str) -> String {
    format!("{NFT_TABLE_PREFIX}{instance}")
}

/// Linux accepts any byte but NUL, '/', ':' and whitespace, 1..=15 bytes, not "." / "..".
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

fn valid_instance(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_INSTANCE_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Addresses that may be put on an interface or pinned: no unspecified,
/// loopback or multicast ones.
fn usable_unicast(addr: &IpAddr) -> bool {
    !(addr.is_unspecified() || addr.is_loopback() || addr.is_multicast())
}

fn is_host_prefix(net: &IpNet) -> bool {
    net.prefix_len() == net.max_prefix_len()
}

/// The sealed gateway policy plus the little state the helper records while
/// serving (interfaces it created, peers it pinned).
#[derive(Clone, Debug)]
pub struct GatewayPolicy {
    manifest: GatewayManifest,
    interfaces: BTreeMap<String, IfaceOwner>,
    pinned: BTreeMap<String, IpAddr>,
    /// Labels of the peers the sealed manifest lists.
    listed: BTreeSet<String>,
    /// Peers whose session the helper was told about (`on establish`, until
    /// `on disestablish`).
    sessions: BTreeSet<String>,
}

impl GatewayPolicy {
    /// Validate the manifest part and seal it.
    pub fn seal(manifest: GatewayManifest) -> Result<GatewayPolicy, ManifestError> {
        if !valid_instance(&manifest.instance) {
            return Err(ManifestError::Instance(manifest.instance));
        }
        let peers = manifest.peers.values().chain([&manifest.default_peer]);
        for net in manifest
            .interface_addresses
            .iter()
            .chain(peers.clone().flat_map(|p| p.addresses.iter()))
        {
            if !usable_unicast(&net.addr()) {
                return Err(ManifestError::Address(*net));
            }
        }
        for peer in peers {
            let via = peer.redirect.as_ref().and_then(|r| r.via);
            for addr in via.iter().chain(peer.remotes.iter().flatten()) {
                if !usable_unicast(addr) {
                    return Err(ManifestError::Address(IpNet::from(*addr)));
                }
            }
        }
        if let Some(m) = &manifest.masquerade {
            if !valid_ifname(&m.out_ifname) {
                return Err(ManifestError::IfName(m.out_ifname.clone()));
            }
            if m.prefixes.is_empty() {
                return Err(ManifestError::NoMasqueradePrefix);
            }
        }
        Ok(GatewayPolicy {
            manifest,
            interfaces: BTreeMap::new(),
            pinned: BTreeMap::new(),
            listed: BTreeSet::new(),
            sessions: BTreeSet::new(),
        })
    }

    /// The sealed gateway manifest.
    pub fn manifest(&self) -> &GatewayManifest {
        &self.manifest
    }

    /// The nftables table this instance owns.
    pub fn nft_table(&self) -> String {
        nft_table_name(&self.manifest.instance)
    }

    /// The effective settings of a peer.
    pub fn peer(&self, peer: &str) -> &PeerGateway {
        self.manifest
            .peers
            .get(peer)
            .unwrap_or(&self.manifest.default_peer)
    }

    /// The helper created an interface (OpenTun); only such interfaces get
    /// addresses or routes.
    pub fn register_interface(&mut self, ifname: &str, owner: IfaceOwner) {
        self.interfaces.insert(ifname.to_owned(), owner);
    }

    /// The interface is gone (worker closed it, peer removed).
    pub fn unregister_interface(&mut self, ifname: &str) {
        self.interfaces.remove(ifname);
    }

    /// The peers the manifest lists (labels as [`peer_label`] makes them).
    pub fn listed_peers(&mut self, labels: BTreeSet<String>) {
        self.listed = labels;
    }

    /// A session of `peer` was established (`true`) or ended.
    pub fn session(&mut self, peer: String, up: bool) {
        if up {
            if self.sessions.len() < MAX_PINNED_PEERS {
                self.sessions.insert(peer);
            }
        } else {
            self.sessions.remove(&peer);
        }
    }

    /// A peer a pin may be for: listed in the manifest, owner of an interface the helper
    /// created for it, or one whose session the helper was told about.
    fn known_peer(&self, peer: &str) -> bool {
        self.listed.contains(peer)
            || self.sessions.contains(peer)
            || self
                .interfaces
                .values()
                .any(|o| matches!(o, IfaceOwner::Peer(p) if p == peer))
    }

    /// The single decision point for every gateway request.
    pub fn check(&self, req: &GatewayRequest) -> Result<(), GatewayRefusal> {
        match req {
            GatewayRequest::AddAddress(op) | GatewayRequest::RemoveAddress(op) => {
                self.check_address(op)
            }
            GatewayRequest::PinHostRoute(pin) => self.check_pin(pin),
            GatewayRequest::RedirectGateway(r) => self.check_redirect(r),
            GatewayRequest::Unredirect { peer } => self.redirect_of(peer).map(|_| ()),
            GatewayRequest::Masquerade(m) => self.check_masquerade(m),
        }
    }

    /// Record the effect of a request the helper has carried out, so that
    /// later checks see the current peer addresses.
    pub fn applied(&mut self, req: &GatewayRequest) {
        match req {
            GatewayRequest::PinHostRoute(pin) => {
                self.pinned.insert(pin.peer.clone(), pin.dest.addr());
            }
            GatewayRequest::Unredirect { peer } => {
                self.pinned.remove(peer);
            }
            _ => {}
        }
    }

    /// The peer's currently pinned underlay address, if any.
    pub fn pinned(&self, peer: &str) -> Option<IpAddr> {
        self.pinned.get(peer).copied()
    }

    fn owner(&self, ifname: &IfName) -> Result<&IfaceOwner, GatewayRefusal> {
        self.interfaces
            .get(ifname.as_str())
            .ok_or_else(|| GatewayRefusal::UnknownInterface(ifname.as_str().to_owned()))
    }

    fn check_address(&self, op: &AddressOp) -> Result<(), GatewayRefusal> {
        let allowed = match self.owner(&op.ifname)? {
            IfaceOwner::Shared => &self.manifest.interface_addresses,
            // A peer's own statements replace the top-level ones; without
            // any, the top-level `interface address` is inherited.
            IfaceOwner::Peer(peer) => match &self.peer(peer).addresses {
                own if own.is_empty() => &self.manifest.interface_addresses,
                own => own,
            },
        };
        if allowed.contains(&op.addr) {
            Ok(())
        } else {
            Err(GatewayRefusal::Address {
                ifname: op.ifname.as_str().to_owned(),
                addr: op.addr,
            })
        }
    }

    fn redirect_of(&self, peer: &str) -> Result<&RedirectManifest, GatewayRefusal> {
        self.peer(peer)
            .redirect
            .as_ref()
            .ok_or_else(|| GatewayRefusal::NoRedirect(peer.to_owned()))
    }

    fn check_pin(&self, pin: &PinHostRoute) -> Result<(), GatewayRefusal> {
        if !self.known_peer(&pin.peer) {
            return Err(GatewayRefusal::UnknownPeer(pin.peer.clone()));
        }
        self.redirect_of(&pin.peer)?;
        if !is_host_prefix(&pin.dest) {
            return Err(GatewayRefusal::NotHostRoute(pin.dest));
        }
        let addr = pin.dest.addr();
        let known = match &self.peer(&pin.peer).remotes {
            Some(remotes) => remotes.contains(&addr),
            None => usable_unicast(&addr),
        };
        if !known {
            return Err(GatewayRefusal::NotPeerAddress {
                peer: pin.peer.clone(),
                addr,
            });
        }
        // The underlay never lies inside the tunnel; such a pin would send
        // tunnel traffic around the tunnel.
        let peers = self
            .manifest
            .peers
            .values()
            .chain([&self.manifest.default_peer]);
        let inside = self
            .manifest
            .interface_addresses
            .iter()
            .chain(peers.flat_map(|p| p.addresses.iter()))
            .any(|net| net.contains(&addr));
        if inside {
            return Err(GatewayRefusal::PinInsideTunnel(addr));
        }
        if !self.pinned.contains_key(&pin.peer) && self.pinned.len() >= MAX_PINNED_PEERS {
            return Err(GatewayRefusal::TooManyPins);
        }
        Ok(())
    }

    fn check_redirect(&self, r: &RedirectGateway) -> Result<(), GatewayRefusal> {
        let want = self.redirect_of(&r.peer)?;
        match self.owner(&r.ifname)? {
            IfaceOwner::Shared => {}
            IfaceOwner::Peer(p) if *p == r.peer => {}
            IfaceOwner::Peer(_) => {
                return Err(GatewayRefusal::WrongInterface {
                    peer: r.peer.clone(),
                    ifname: r.ifname.as_str().to_owned(),
                })
            }
        }
        // The configured via decides; a via of the other family than the
        // redirect cannot be meant for it, so that one goes without.
        let expected = want.via.filter(|v| Family::of(v) == r.family);
        if r.via != expected {
            return Err(GatewayRefusal::Via {
                want: expected,
                got: r.via,
            });
        }
        if !self.pinned.contains_key(&r.peer) {
            return Err(GatewayRefusal::NotPinned(r.peer.clone()));
        }
        Ok(())
    }

    fn check_masquerade(&self, m: &Masquerade) -> Result<(), GatewayRefusal> {
        let want = self
            .manifest
            .masquerade
            .as_ref()
            .ok_or(GatewayRefusal::NoMasquerade)?;
        if m.table != self.nft_table() {
            return Err(GatewayRefusal::Table(m.table.clone()));
        }
        if m.out_ifname != want.out_ifname {
            return Err(GatewayRefusal::MasqueradeInterface(m.out_ifname.clone()));
        }
        let got: BTreeSet<IpNet> = m.prefixes.iter().map(IpNet::trunc).collect();
        let wanted: BTreeSet<IpNet> = want.prefixes.iter().map(IpNet::trunc).collect();
        if got != wanted || m.prefixes.is_empty() {
            return Err(GatewayRefusal::MasqueradePrefixes);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn requests_survive_the_wire_encoding() {
        let req = GatewayRequest::Masquerade(Masquerade {
            table: nft_table_name("t1"),
            prefixes: vec![
                "172.16.16.0/24".parse().unwrap(),
                "2001:db8::/64".parse().unwrap(),
            ],
            out_ifname: "eth0".to_owned(),
        });
        let bytes = bincode::serialize(&req).unwrap();
        assert_eq!(bincode::deserialize::<GatewayRequest>(&bytes).unwrap(), req);
        let pin = GatewayRequest::PinHostRoute(PinHostRoute {
            peer: "alpha".to_owned(),
            dest: "198.51.100.1/32".parse().unwrap(),
        });
        let bytes = bincode::serialize(&pin).unwrap();
        assert_eq!(bincode::deserialize::<GatewayRequest>(&bytes).unwrap(), pin);
    }

    #[test]
    fn redirect_halves_cover_everything_once() {
        let [a, b] = Family::V4.redirect_halves();
        assert_eq!(
            (a.to_string(), b.to_string()),
            ("0.0.0.0/1".into(), "128.0.0.0/1".into())
        );
        let [a, b] = Family::V6.redirect_halves();
        assert_eq!(
            (a.to_string(), b.to_string()),
            ("::/1".into(), "8000::/1".into())
        );
    }

    #[test]
    fn interface_names_follow_the_kernel_rules() {
        assert!(valid_ifname("eth0"));
        assert!(valid_ifname("fifteen-chars-x"));
        for bad in ["", ".", "..", "a/b", "a b", "a:b", "sixteen-chars-xx"] {
            assert!(!valid_ifname(bad), "{bad:?}");
        }
    }
}
