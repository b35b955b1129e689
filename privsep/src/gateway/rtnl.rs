//! The helper's one synchronous NETLINK_ROUTE request/acknowledge loop (gateway routes
//! and addresses, and `netlink.rs`'s link settings): netlink-packet-route + netlink-sys,
//! no async runtime; one request at a time, answers read until the kernel's ACK.

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::GatewayError;

pub struct Rtnl {
    sock: Socket,
    seq: u32,
}

/// A netlink message starts with its own length (host byte order).
fn message_len(buf: &[u8]) -> Option<usize> {
    let raw: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    usize::try_from(u32::from_ne_bytes(raw)).ok()
}

impl Rtnl {
    pub fn open() -> Result<Rtnl, GatewayError> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(GatewayError::Socket)?;
        sock.bind_auto().map_err(GatewayError::Socket)?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(GatewayError::Socket)?;
        Ok(Rtnl { sock, seq: 0 })
    }

    /// Send one request and collect the answers up to the ACK. A NACK becomes
    /// `GatewayError::Kernel` carrying the errno, so callers can tell EEXIST
    /// and ESRCH apart.
    pub fn request(
        &mut self,
        op: &'static str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, GatewayError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.sock.send(&buf, 0).map_err(GatewayError::Socket)?;

        let mut answers = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full().map_err(GatewayError::Socket)?;
            let mut rest = data.as_slice();
            while let Some(len) = message_len(rest) {
                let Some(one) = rest.get(..len).filter(|_| len >= 16) else {
                    return Err(GatewayError::Decode(op));
                };
                rest = rest.get(crate::gateway::align4(len)..).unwrap_or(&[]);
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(one)
                    .map_err(|_| GatewayError::Decode(op))?;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(answers),
                            Some(code) => Err(GatewayError::Kernel {
                                op,
                                errno: -code.get(),
                            }),
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::InnerMessage(m) => answers.push(m),
                    NetlinkPayload::Noop | NetlinkPayload::Overrun(_) => {}
                    _ => {}
                }
            }
        }
    }
}
