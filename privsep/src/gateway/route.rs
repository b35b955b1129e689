//! Routes: exact lookups (RTM_GETROUTE) and adding/removing the routes the
//! gateway needs, always with every key the kernel matches on, so a removal
//! can only hit the route we added.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use policy::gateway::IpNet;

use super::rtnl::Rtnl;
use super::GatewayError;

/// The main routing table.
pub const RT_TABLE_MAIN: u32 = 254;

/// One route as plain data: what was added is exactly what gets removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    pub dest: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: u32,
    pub table: u32,
}

/// Where the kernel sends packets for one destination right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextHop {
    pub gateway: Option<IpAddr>,
    pub oif: u32,
    pub table: u32,
}

fn family(addr: &IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn to_ip(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

/// Ask the kernel which route it uses for exactly `dest`.
pub fn lookup(rt: &mut Rtnl, dest: IpAddr) -> Result<NextHop, GatewayError> {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family(&dest);
    msg.header.destination_prefix_length = if dest.is_ipv4() { 32 } else { 128 };
    msg.attributes = vec![RouteAttribute::Destination(dest.into())];
    let answers = rt.request("route lookup", RouteNetlinkMessage::GetRoute(msg), 0)?;
    let Some(RouteNetlinkMessage::NewRoute(found)) = answers.into_iter().next() else {
        return Err(GatewayError::NoRoute(dest));
    };
    if found.header.kind != RouteType::Unicast {
        return Err(GatewayError::NoRoute(dest));
    }
    let mut hop = NextHop {
        gateway: None,
        oif: 0,
        table: u32::from(found.header.table),
    };
    for attr in &found.attributes {
        match attr {
            RouteAttribute::Gateway(g) => hop.gateway = to_ip(g),
            RouteAttribute::Oif(i) => hop.oif = *i,
            RouteAttribute::Table(t) => hop.table = *t,
            // An IPv4 route through an IPv6 next hop cannot be pinned as
            // a plain gateway route; refuse rather than guess.
            RouteAttribute::Via(_) => return Err(GatewayError::NoRoute(dest)),
            _ => {}
        }
    }
    if hop.oif == 0 {
        return Err(GatewayError::NoRoute(dest));
    }
    Ok(hop)
}

fn message(spec: &RouteSpec) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family(&spec.dest.addr());
    msg.header.destination_prefix_length = spec.dest.prefix_len();
    // Tables above 255 only fit RTA_TABLE; the header then says "unspec".
    msg.header.table = u8::try_from(spec.table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    msg.header.protocol = RouteProtocol::Static;
    msg.header.scope = if spec.gateway.is_some() {
        RouteScope::Universe
    } else {
        RouteScope::Link
    };
    msg.header.kind = RouteType::Unicast;
    msg.attributes = vec![
        RouteAttribute::Destination(spec.dest.addr().into()),
        RouteAttribute::Table(spec.table),
        RouteAttribute::Oif(spec.oif),
    ];
    if let Some(gw) = spec.gateway {
        msg.attributes.push(RouteAttribute::Gateway(gw.into()));
    }
    msg
}

/// Add a route. `Ok(false)` when an equal route key already exists: then it
/// is somebody else's and is neither journaled nor removed later.
pub fn add(rt: &mut Rtnl, spec: &RouteSpec) -> Result<bool, GatewayError> {
    let msg = RouteNetlinkMessage::NewRoute(message(spec));
    match rt.request("add route", msg, NLM_F_CREATE | NLM_F_EXCL) {
        Ok(_) => Ok(true),
        Err(e) if e.errno() == Some(libc::EEXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Remove a route we added; one that is already gone (its device vanished)
/// is fine.
pub fn remove(rt: &mut Rtnl, spec: &RouteSpec) -> Result<(), GatewayError> {
    let msg = RouteNetlinkMessage::DelRoute(message(spec));
    match rt.request("remove route", msg, 0) {
        Err(e) if matches!(e.errno(), Some(libc::ESRCH | libc::ENODEV)) => Ok(()),
        other => other.map(|_| ()),
    }
}
