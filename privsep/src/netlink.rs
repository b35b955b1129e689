//! Link settings over rtnetlink, synchronously, through the one request/ACK loop of
//! [`crate::gateway::rtnl`] (netlink-packet-route + netlink-sys, no async runtime: the
//! helper does a few one-shot requests, MTU + up and delete).

use crate::gateway::{rtnl::Rtnl, GatewayError};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use std::io;

fn request(op: &'static str, msg: RouteNetlinkMessage) -> io::Result<()> {
    match Rtnl::open().and_then(|mut rt| rt.request(op, msg, 0)) {
        Ok(_) => Ok(()),
        Err(GatewayError::Kernel { errno, .. }) => Err(io::Error::from_raw_os_error(errno)),
        Err(GatewayError::Socket(e)) => Err(e),
        Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
    }
}

fn index_of(name: &str) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(name).map_err(io::Error::from)
}

/// Set the MTU and bring the link up.
pub fn set_mtu_up(name: &str, mtu: u32) -> io::Result<()> {
    let mut link = LinkMessage::default();
    link.header.index = index_of(name)?;
    link.header.flags = LinkFlags::Up;
    link.header.change_mask = LinkFlags::Up;
    link.attributes.push(LinkAttribute::Mtu(mtu));
    request("set link", RouteNetlinkMessage::SetLink(link))
}

/// Remove the link; a link that is already gone is fine.
pub fn delete(name: &str) -> io::Result<()> {
    let index = match index_of(name) {
        Ok(i) => i,
        Err(_) => return Ok(()),
    };
    let mut link = LinkMessage::default();
    link.header.index = index;
    match request("delete link", RouteNetlinkMessage::DelLink(link)) {
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
        other => other,
    }
}
