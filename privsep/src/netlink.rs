//! Link settings over rtnetlink, synchronously.
//!
//! Choice: `netlink-packet-route` + `netlink-sys` (the synchronous layers beneath
//! `rtnetlink`), not `rtnetlink` itself. The helper does three one-shot requests
//! (MTU + up, delete); an async runtime for them would add tokio and a second nix
//! version to the privileged process for no gain. The socket lives only for one
//! request and each request waits for its ACK.

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;

fn request(msg: RouteNetlinkMessage) -> io::Result<()> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK;
    header.sequence_number = 1;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let mut rx = vec![0; 8192];
    loop {
        let n = socket.recv(&mut &mut rx[..], 0)?;
        let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rx.get(..n).unwrap_or(&[]))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        match reply.payload {
            NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
            NetlinkPayload::Error(_) | NetlinkPayload::Done(_) => return Ok(()),
            _ => continue,
        }
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
    request(RouteNetlinkMessage::SetLink(link))
}

/// Remove the link; a link that is already gone is fine.
pub fn delete(name: &str) -> io::Result<()> {
    let index = match index_of(name) {
        Ok(i) => i,
        Err(_) => return Ok(()),
    };
    let mut link = LinkMessage::default();
    link.header.index = index;
    match request(RouteNetlinkMessage::DelLink(link)) {
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
        other => other,
    }
}
