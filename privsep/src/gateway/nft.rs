//! The masquerade table, spoken to nf_tables over raw nfnetlink batches.
//!
//! No maintained pure-Rust crate sets NFT_TABLE_F_OWNER (rustables is
//! GPL-3.0, nftnl links libnftnl), and the handful of messages needed here are
//! small, so they are built by hand. The table carries the owner flag: the
//! kernel destroys it when the socket in [`NftOwner`] closes, including after
//! SIGKILL, so a crashed helper never leaves a stale table behind.
//!
//! The table is always written whole in one transaction: "create if absent,
//! delete, create with the rules", so a second start never duplicates rules.

use std::net::IpAddr;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use policy::gateway::IpNet;

use super::GatewayError;

const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 0x2;
const NLA_F_NESTED: u16 = 0x8000;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;

const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
/// Kernel 5.12+: the table belongs to the netlink socket that created it.
pub const NFT_TABLE_F_OWNER: u32 = 0x2;

const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NF_INET_POST_ROUTING: u32 = 4;
/// `srcnat`.
const NF_IP_PRI_NAT_SRC: u32 = 100;
const NF_ACCEPT: u32 = 1;

const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;

const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFT_META_OIFNAME: u32 = 7;
const NFT_META_NFPROTO: u32 = 15;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFT_CMP_EQ: u32 = 0;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
/// The first 128-bit register.
const NFT_REG_1: u32 = 1;
const IFNAMSIZ: usize = 16;

pub const CHAIN: &str = "postrouting";

/// Attribute writer: netlink TLVs padded to 4 bytes.
#[derive(Default)]
struct Attrs(Vec<u8>);

impl Attrs {
    fn put(&mut self, ty: u16, data: &[u8]) -> &mut Self {
        let len = 4 + data.len();
        // Attribute lengths are u16; everything here is far below that.
        let len16 = u16::try_from(len).unwrap_or(u16::MAX);
        self.0.extend_from_slice(&len16.to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(super::align4(self.0.len()), 0);
        self
    }

    fn be32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.put(ty, &v.to_be_bytes())
    }

    fn string(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut z = s.as_bytes().to_vec();
        z.push(0);
        self.put(ty, &z)
    }

    fn nest(&mut self, ty: u16, f: impl FnOnce(&mut Attrs)) -> &mut Self {
        let mut inner = Attrs::default();
        f(&mut inner);
        self.put(ty | NLA_F_NESTED, &inner.0)
    }
}

/// One expression of a rule: name plus its data attributes.
fn expr(list: &mut Attrs, name: &str, data: impl FnOnce(&mut Attrs)) {
    list.nest(NFTA_LIST_ELEM, |e| {
        e.string(NFTA_EXPR_NAME, name);
        e.nest(NFTA_EXPR_DATA, data);
    });
}

fn meta(list: &mut Attrs, key: u32) {
    expr(list, "meta", |d| {
        d.be32(NFTA_META_KEY, key).be32(NFTA_META_DREG, NFT_REG_1);
    });
}

fn cmp_eq(list: &mut Attrs, value: &[u8]) {
    expr(list, "cmp", |d| {
        d.be32(NFTA_CMP_SREG, NFT_REG_1)
            .be32(NFTA_CMP_OP, NFT_CMP_EQ)
            .nest(NFTA_CMP_DATA, |v| {
                v.put(NFTA_DATA_VALUE, value);
            });
    });
}

fn addr_bytes(addr: &IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// `meta nfproto X; <family> saddr PREFIX; oifname OUT; masquerade`
fn masquerade_rule(prefix: &IpNet, out_ifname: &str) -> Attrs {
    let net = prefix.trunc();
    let (proto, offset) = match net {
        IpNet::V4(_) => (NFPROTO_IPV4, 12u32),
        IpNet::V6(_) => (NFPROTO_IPV6, 8u32),
    };
    let network = addr_bytes(&net.network());
    let mask = addr_bytes(&net.netmask());
    let len = u32::try_from(network.len()).unwrap_or(4);
    let mut ifname = [0u8; IFNAMSIZ];
    for (dst, src) in ifname.iter_mut().zip(out_ifname.bytes()) {
        *dst = src;
    }

    let mut list = Attrs::default();
    meta(&mut list, NFT_META_NFPROTO);
    cmp_eq(&mut list, &[proto]);
    expr(&mut list, "payload", |d| {
        d.be32(NFTA_PAYLOAD_DREG, NFT_REG_1)
            .be32(NFTA_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER)
            .be32(NFTA_PAYLOAD_OFFSET, offset)
            .be32(NFTA_PAYLOAD_LEN, len);
    });
    expr(&mut list, "bitwise", |d| {
        d.be32(NFTA_BITWISE_SREG, NFT_REG_1)
            .be32(NFTA_BITWISE_DREG, NFT_REG_1)
            .be32(NFTA_BITWISE_LEN, len)
            .nest(NFTA_BITWISE_MASK, |v| {
                v.put(NFTA_DATA_VALUE, &mask);
            })
            .nest(NFTA_BITWISE_XOR, |v| {
                v.put(NFTA_DATA_VALUE, &vec![0u8; network.len()]);
            });
    });
    cmp_eq(&mut list, &network);
    meta(&mut list, NFT_META_OIFNAME);
    cmp_eq(&mut list, &ifname);
    list.0.extend_from_slice(&{
        let mut m = Attrs::default();
        expr(&mut m, "masq", |_| {});
        m.0
    });
    list
}

/// A batch of nfnetlink messages with consecutive sequence numbers.
struct Batch {
    buf: Vec<u8>,
    seq: u32,
    first_acked: u32,
    acked: u32,
}

impl Batch {
    fn new(seq: u32) -> Batch {
        let mut b = Batch {
            buf: Vec::new(),
            seq,
            first_acked: seq.wrapping_add(1),
            acked: 0,
        };
        b.message(NFNL_MSG_BATCH_BEGIN, 0, 0, NFNL_SUBSYS_NFTABLES, &[]);
        b
    }

    fn message(&mut self, ty: u16, flags: u16, family: u8, res_id: u16, attrs: &[u8]) {
        let len = NLMSG_HDRLEN + NFGENMSG_LEN + attrs.len();
        let len32 = u32::try_from(len).unwrap_or(u32::MAX);
        self.buf.extend_from_slice(&len32.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf
            .extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        self.buf.extend_from_slice(attrs);
        self.seq = self.seq.wrapping_add(1);
    }

    /// An nf_tables message that the kernel acknowledges.
    fn nft(&mut self, msg: u16, flags: u16, attrs: &Attrs) {
        let ty = (NFNL_SUBSYS_NFTABLES << 8) | msg;
        self.message(ty, flags | NLM_F_ACK, NFPROTO_INET, 0, &attrs.0);
        self.acked += 1;
    }

    fn finish(mut self) -> (Vec<u8>, u32, u32, u32) {
        self.message(NFNL_MSG_BATCH_END, 0, 0, NFNL_SUBSYS_NFTABLES, &[]);
        (self.buf, self.first_acked, self.acked, self.seq)
    }
}

fn table_attrs(name: &str, flags: u32) -> Attrs {
    let mut a = Attrs::default();
    a.string(NFTA_TABLE_NAME, name)
        .be32(NFTA_TABLE_FLAGS, flags);
    a
}

/// The whole replace transaction for the masquerade table, as bytes.
/// `owned_already`: this socket created the table before, so the
/// "create if absent" step must keep the owner flag the table has.
fn replace_batch(
    seq: u32,
    table: &str,
    prefixes: &[IpNet],
    out_ifname: &str,
    owned_already: bool,
) -> (Vec<u8>, u32, u32, u32) {
    let mut b = Batch::new(seq);
    let first_flags = if owned_already { NFT_TABLE_F_OWNER } else { 0 };
    b.nft(
        NFT_MSG_NEWTABLE,
        NLM_F_CREATE,
        &table_attrs(table, first_flags),
    );
    let mut del = Attrs::default();
    del.string(NFTA_TABLE_NAME, table);
    b.nft(NFT_MSG_DELTABLE, 0, &del);
    b.nft(
        NFT_MSG_NEWTABLE,
        NLM_F_CREATE,
        &table_attrs(table, NFT_TABLE_F_OWNER),
    );
    let mut chain = Attrs::default();
    chain
        .string(NFTA_CHAIN_TABLE, table)
        .string(NFTA_CHAIN_NAME, CHAIN)
        .nest(NFTA_CHAIN_HOOK, |h| {
            h.be32(NFTA_HOOK_HOOKNUM, NF_INET_POST_ROUTING)
                .be32(NFTA_HOOK_PRIORITY, NF_IP_PRI_NAT_SRC);
        })
        .be32(NFTA_CHAIN_POLICY, NF_ACCEPT)
        .string(NFTA_CHAIN_TYPE, "nat");
    b.nft(NFT_MSG_NEWCHAIN, NLM_F_CREATE, &chain);
    for prefix in prefixes {
        let exprs = masquerade_rule(prefix, out_ifname);
        let mut rule = Attrs::default();
        rule.string(NFTA_RULE_TABLE, table)
            .string(NFTA_RULE_CHAIN, CHAIN)
            .nest(NFTA_RULE_EXPRESSIONS, |l| l.0.extend_from_slice(&exprs.0));
        b.nft(NFT_MSG_NEWRULE, NLM_F_CREATE, &rule);
    }
    b.finish()
}

/// The netlink socket that owns the daemon's table for as long as it lives.
pub struct NftOwner {
    sock: Socket,
    seq: u32,
    table: Option<String>,
}

impl NftOwner {
    pub fn open() -> Result<NftOwner, GatewayError> {
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(GatewayError::Nftables)?;
        sock.bind_auto().map_err(GatewayError::Nftables)?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(GatewayError::Nftables)?;
        Ok(NftOwner {
            sock,
            seq: 1,
            table: None,
        })
    }

    /// Create (or replace) the table whole with one masquerade rule per prefix.
    pub fn replace(
        &mut self,
        table: &str,
        prefixes: &[IpNet],
        out_ifname: &str,
    ) -> Result<(), GatewayError> {
        let owned = self.table.as_deref() == Some(table);
        let (bytes, first, count, next) =
            replace_batch(self.seq, table, prefixes, out_ifname, owned);
        self.seq = next;
        match self.transact(&bytes, first, count) {
            // Nothing in this batch refers to an object it does not create,
            // so these mean the kernel lacks nf_tables, its nat chain type
            // or the masq expression.
            Err(e)
                if matches!(
                    e.errno(),
                    Some(
                        libc::ENOENT
                            | libc::EOPNOTSUPP
                            | libc::EPROTONOSUPPORT
                            | libc::EAFNOSUPPORT
                    )
                ) =>
            {
                return Err(GatewayError::Nftables(std::io::Error::from_raw_os_error(
                    e.errno().unwrap_or(libc::EOPNOTSUPP),
                )))
            }
            other => other?,
        }
        self.table = Some(table.to_owned());
        Ok(())
    }

    /// Remove the table whole.
    pub fn delete(&mut self) -> Result<(), GatewayError> {
        let Some(table) = self.table.take() else {
            return Ok(());
        };
        let mut b = Batch::new(self.seq);
        let mut del = Attrs::default();
        del.string(NFTA_TABLE_NAME, &table);
        b.nft(NFT_MSG_DELTABLE, 0, &del);
        let (bytes, first, count, next) = b.finish();
        self.seq = next;
        match self.transact(&bytes, first, count) {
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(()),
            other => other,
        }
    }

    /// Send a batch and wait for one answer per acknowledged message; the
    /// first error wins (answers to older batches are skipped by sequence).
    fn transact(&mut self, bytes: &[u8], first: u32, count: u32) -> Result<(), GatewayError> {
        self.sock.send(bytes, 0).map_err(GatewayError::Nftables)?;
        let batch_begin = first.wrapping_sub(1);
        let mut answered = 0;
        while answered < count {
            let (data, _) = self.sock.recv_from_full().map_err(GatewayError::Nftables)?;
            let mut rest = data.as_slice();
            while rest.len() >= NLMSG_HDRLEN {
                let Some((len, ty, seq)) = header(rest) else {
                    return Err(GatewayError::Decode("nftables answer"));
                };
                let body = rest.get(NLMSG_HDRLEN..len).unwrap_or(&[]);
                rest = rest.get(super::align4(len)..).unwrap_or(&[]);
                let ours = seq.wrapping_sub(batch_begin) <= count;
                if ty != NLMSG_ERROR || !ours {
                    continue;
                }
                let code = body
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(i32::from_ne_bytes)
                    .ok_or(GatewayError::Decode("nftables answer"))?;
                if code != 0 {
                    return Err(GatewayError::Kernel {
                        op: "nftables transaction",
                        errno: -code,
                    });
                }
                answered += 1;
            }
        }
        Ok(())
    }
}

/// (length, type, sequence) of the netlink message at the start of `buf`.
fn header(buf: &[u8]) -> Option<(usize, u16, u32)> {
    let len = u32::from_ne_bytes(buf.get(0..4)?.try_into().ok()?);
    let ty = u16::from_ne_bytes(buf.get(4..6)?.try_into().ok()?);
    let seq = u32::from_ne_bytes(buf.get(8..12)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    (len >= NLMSG_HDRLEN).then_some((len, ty, seq))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn replace_batch_frames_every_message() {
        let prefixes: Vec<IpNet> = vec!["172.16.16.0/24".parse().unwrap()];
        let (bytes, first, count, next) =
            replace_batch(7, "fastd_privsep_t", &prefixes, "v0", false);
        // begin, newtable, deltable, newtable, newchain, one rule, end
        assert_eq!((first, count, next), (8, 5, 14));
        let mut rest = bytes.as_slice();
        let mut types = Vec::new();
        while !rest.is_empty() {
            let (len, ty, _) = header(rest).unwrap();
            types.push(ty);
            rest = &rest[super::super::align4(len)..];
        }
        assert_eq!(types, vec![0x10, 0xa00, 0xa02, 0xa00, 0xa03, 0xa06, 0x11]);
    }
}
