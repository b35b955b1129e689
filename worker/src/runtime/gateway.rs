//! The gateway side of the runtime (docs/config.md, gateway statements): addresses when a
//! device is opened, the masquerade once after sealing, and redirect routes while a peer
//! with `redirect gateway` is established.

use crate::config::LogLevel;
use crate::engine::Logger;
use crate::helper_client::HelperClient;
use policy::gateway::{AddressOp, GatewayManifest, GatewayRequest, IpNet};
use policy::{IfName, Manifest, PeerName, PeerSpec};

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
