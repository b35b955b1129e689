//! The gateway side of the runtime (docs/config.md, gateway statements): addresses when a
//! device is opened, the masquerade once after sealing, and redirect routes while a peer
//! with `redirect gateway` is established (the engine reports each session going up or
//! down through its provider, see [`GatewayDriver::up`]).

use crate::config::LogLevel;
use crate::engine::Logger;
use crate::helper_client::HelperClient;
use policy::gateway::{
    nft_table_name, AddressOp, Family, GatewayManifest, GatewayRequest, IpNet, Masquerade,
    PeerGateway, PinHostRoute, RedirectGateway,
};
use policy::{IfName, Manifest, PeerName, PeerSpec};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

pub(crate) fn label(spec: &PeerSpec) -> String {
    policy::gateway::peer_label(spec.name.as_ref().map(PeerName::as_str), &spec.key.0)
}

/// The addresses configured for a device of `peer` (None: the shared device).
fn addresses<'a>(gm: &'a GatewayManifest, peer: Option<&PeerSpec>) -> &'a [IpNet] {
    let own = peer
        .and_then(|p| gm.peers.get(&label(p)))
        .map(|p| p.addresses.as_slice())
        .unwrap_or_default();
    if own.is_empty() {
        &gm.interface_addresses
    } else {
        own
    }
}

/// A device was opened: its `interface address`es, before `on up` runs. Failures are
/// logged; the daemon goes on as fastd does when an `on up` script fails.
pub fn interface_created(
    ch: &mut HelperClient,
    log: &Logger,
    m: &Manifest,
    name: &IfName,
    peer: Option<&PeerSpec>,
) {
    let Some(gm) = &m.gateway else { return };
    for addr in addresses(gm, peer) {
        let op = AddressOp {
            ifname: name.clone(),
            addr: *addr,
        };
        match ch.gateway(GatewayRequest::AddAddress(op)) {
            Ok(_) => log.log(LogLevel::Verbose, || {
                format!("added address {addr} to `{name}'")
            }),
            Err(e) => log.log(LogLevel::Warn, || {
                format!("unable to add address {addr} to `{name}': {e}")
            }),
        }
    }
}

/// `masquerade`, once after sealing.
pub(super) fn masquerade(ch: &RefCell<HelperClient>, gm: Option<&GatewayManifest>, log: &Logger) {
    let Some(gm) = gm else { return };
    let Some(m) = &gm.masquerade else { return };
    let req = GatewayRequest::Masquerade(Masquerade {
        table: nft_table_name(&gm.instance),
        prefixes: m.prefixes.clone(),
        out_ifname: m.out_ifname.clone(),
    });
    GatewayDriver::send(ch, req, log);
}

/// The redirect routes of the peers whose sessions are up.
pub(super) struct GatewayDriver {
    gm: Option<GatewayManifest>,
    labels: Vec<String>,
    /// Peers whose redirect is in place, with the pinned underlay address.
    redirected: HashMap<u32, IpAddr>,
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn families(pg: &PeerGateway, gm: &GatewayManifest) -> Vec<Family> {
    if let Some(via) = pg.redirect.as_ref().and_then(|r| r.via) {
        return vec![Family::of(&via)];
    }
    let addrs = if pg.addresses.is_empty() {
        &gm.interface_addresses
    } else {
        &pg.addresses
    };
    let mut f: Vec<Family> = addrs.iter().map(|a| Family::of(&a.addr())).collect();
    f.sort();
    f.dedup();
    if f.is_empty() {
        f.push(Family::V4);
    }
    f
}

impl GatewayDriver {
    /// The driver of a sealed manifest (without a gateway part it does nothing).
    pub(super) fn new(m: &Manifest) -> Self {
        GatewayDriver {
            gm: m.gateway.clone(),
            labels: match m.gateway {
                Some(_) => m.peers.iter().map(label).collect(),
                None => Vec::new(),
            },
            redirected: HashMap::new(),
        }
    }

    fn send(ch: &RefCell<HelperClient>, req: GatewayRequest, log: &Logger) -> bool {
        let what = format!("{req:?}");
        match ch.borrow_mut().gateway(req) {
            Ok(_) => {
                log.log(LogLevel::Verbose, || format!("gateway: {what}"));
                true
            }
            Err(e) => {
                log.log(LogLevel::Warn, || format!("gateway: {what}: {e}"));
                false
            }
        }
    }

    /// A peer's session is up (new, or again from another address): pin its underlay
    /// address, and on the first time redirect the configured families through `iface`.
    pub(super) fn up(
        &mut self,
        peer: u32,
        addr: SocketAddr,
        iface: Option<&str>,
        ch: &RefCell<HelperClient>,
        log: &Logger,
    ) {
        let Some(gm) = &self.gm else { return };
        let Some(label) = usize::try_from(peer).ok().and_then(|i| self.labels.get(i)) else {
            return;
        };
        let pg = gm.peers.get(label).unwrap_or(&gm.default_peer);
        let Some(redirect) = &pg.redirect else {
            return;
        };
        let ip = canonical_ip(addr.ip());
        let before = self.redirected.get(&peer).copied();
        if before == Some(ip) {
            return;
        }
        let Some(ifname) = iface.and_then(|n| policy::IfName::new(n).ok()) else {
            return;
        };
        let pin = GatewayRequest::PinHostRoute(PinHostRoute {
            peer: label.clone(),
            dest: IpNet::from(ip),
        });
        Self::send(ch, pin, log);
        if before.is_none() {
            for family in families(pg, gm) {
                let req = GatewayRequest::RedirectGateway(RedirectGateway {
                    peer: label.clone(),
                    ifname: ifname.clone(),
                    via: redirect.via.filter(|v| Family::of(v) == family),
                    family,
                });
                Self::send(ch, req, log);
            }
        }
        self.redirected.insert(peer, ip);
    }

    /// A peer's session is gone: its pin and redirect go.
    pub(super) fn down(&mut self, peer: u32, ch: &RefCell<HelperClient>, log: &Logger) {
        if self.redirected.remove(&peer).is_none() {
            return;
        }
        let Some(label) = usize::try_from(peer).ok().and_then(|i| self.labels.get(i)) else {
            return;
        };
        let req = GatewayRequest::Unredirect {
            peer: label.clone(),
        };
        Self::send(ch, req, log);
    }
}
