//! Interface addresses (RTM_NEWADDR / RTM_DELADDR).

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use policy::gateway::IpNet;

use super::rtnl::Rtnl;
use super::GatewayError;

fn message(ifindex: u32, addr: &IpNet) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = match addr {
        IpNet::V4(_) => AddressFamily::Inet,
        IpNet::V6(_) => AddressFamily::Inet6,
    };
    msg.header.prefix_len = addr.prefix_len();
    msg.header.index = ifindex;
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS equal to it
    // means "no point-to-point peer", as `ip addr add A/N` sends it.
    msg.attributes = vec![
        AddressAttribute::Local(addr.addr()),
        AddressAttribute::Address(addr.addr()),
    ];
    msg
}

/// Add an address. `Ok(false)` when it was already there: then it is not
/// ours and must not be journaled (nor removed later).
pub fn add(rt: &mut Rtnl, ifindex: u32, addr: &IpNet) -> Result<bool, GatewayError> {
    let msg = RouteNetlinkMessage::NewAddress(message(ifindex, addr));
    match rt.request("add address", msg, NLM_F_CREATE | NLM_F_EXCL) {
        Ok(_) => Ok(true),
        Err(e) if e.errno() == Some(libc::EEXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Remove an address; one that is already gone is fine.
pub fn remove(rt: &mut Rtnl, ifindex: u32, addr: &IpNet) -> Result<(), GatewayError> {
    let msg = RouteNetlinkMessage::DelAddress(message(ifindex, addr));
    match rt.request("remove address", msg, 0) {
        Err(e) if matches!(e.errno(), Some(libc::EADDRNOTAVAIL | libc::ENODEV)) => Ok(()),
        other => other.map(|_| ()),
    }
}
