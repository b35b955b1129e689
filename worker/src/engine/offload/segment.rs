//! Splitting a super-packet from the device into the IP packets the kernel's GSO would have
//! made (net/ipv4/tcp_offload.c, udp_offload.c): headers copied, IPv4 length/id/header
//! checksum and IPv6 payload length fixed, TCP sequence numbers advanced, FIN/PSH only on the
//! last segment and CWR only on the first, every L4 checksum computed over its segment. A
//! packet without GSO passes unchanged, its checksum completed if the kernel left it partial.

use super::csum;
use super::vnet::{self, VnetHdr};
use super::OffloadError;

const TCP: u8 = 6;
const UDP: u8 = 17;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L4 {
    /// Not split: the packet goes out as it is.
    Whole,
    Tcp,
    Udp,
}

/// Yields the segments of one device packet, each copied into a caller's buffer.
#[derive(Debug)]
pub struct Segmenter<'a> {
    pkt: &'a [u8],
    l4: L4,
    /// Offset of the L4 header, and of the payload (end of all headers).
    l4_off: usize,
    hdrs: usize,
    mss: usize,
    /// Next payload byte to send.
    next: usize,
    index: u16,
    done: bool,
}

impl<'a> Segmenter<'a> {
    /// Checks the headers of `pkt` (the bytes after the virtio-net header) against `h`,
    /// completing a partial checksum in place for a packet that is not split.
    pub fn new(h: &VnetHdr, pkt: &'a mut [u8]) -> Result<Segmenter<'a>, OffloadError> {
        let gso = h.gso_type & !vnet::GSO_ECN;
        if gso == vnet::GSO_NONE {
            if h.flags & vnet::F_NEEDS_CSUM != 0 {
                complete_checksum(h, pkt)?;
            }
            return Ok(Segmenter::whole(pkt));
        }
        let (l4, proto, v6) = match gso {
            vnet::GSO_TCPV4 => (L4::Tcp, TCP, false),
            vnet::GSO_TCPV6 => (L4::Tcp, TCP, true),
            vnet::GSO_UDP_L4 => (L4::Udp, UDP, pkt.first().is_some_and(|b| b >> 4 == 6)),
            other => return Err(OffloadError::GsoType(other)),
        };
        let l4_off = usize::from(h.csum_start);
        check_ip(pkt, v6, proto, l4_off)?;
        let l4_len = match l4 {
            L4::Tcp => usize::from(pkt.get(l4_off + 12).ok_or(OffloadError::Malformed)? >> 4) * 4,
            _ => 8,
        };
        if l4_len < 8 || (l4 == L4::Tcp && l4_len < 20) {
            return Err(OffloadError::Malformed);
        }
        let hdrs = l4_off + l4_len;
        let mss = usize::from(h.gso_size);
        if hdrs > pkt.len() || mss == 0 {
            return Err(OffloadError::Malformed);
        }
        Ok(Segmenter {
            pkt,
            l4,
            l4_off,
            hdrs,
            mss,
            next: hdrs,
            index: 0,
            done: false,
        })
    }

    fn whole(pkt: &'a [u8]) -> Segmenter<'a> {
        Segmenter {
            pkt,
            l4: L4::Whole,
            l4_off: 0,
            hdrs: 0,
            mss: usize::MAX,
            next: 0,
            index: 0,
            done: false,
        }
    }

    /// Writes the next segment into `dst`; returns its length, `None` after the last.
    pub fn next_into(&mut self, dst: &mut [u8]) -> Option<Result<usize, OffloadError>> {
        if self.done {
            return None;
        }
        if self.l4 == L4::Whole {
            self.done = true;
            let n = self.pkt.len();
            return Some(match dst.get_mut(..n) {
                Some(d) => {
                    d.copy_from_slice(self.pkt);
                    Ok(n)
                }
                None => Err(OffloadError::TooLarge),
            });
        }
        let seg = self.mss.min(self.pkt.len() - self.next);
        let last = self.next + seg >= self.pkt.len();
        let len = self.hdrs + seg;
        let Some(out) = dst.get_mut(..len) else {
            self.done = true;
            return Some(Err(OffloadError::TooLarge));
        };
        let (hdrs, l4_off) = (self.hdrs, self.l4_off);
        out[..hdrs].copy_from_slice(&self.pkt[..hdrs]);
        out[hdrs..].copy_from_slice(&self.pkt[self.next..self.next + seg]);
        fix_ip(out, l4_off, self.index);
        match self.l4 {
            L4::Tcp => {
                let seq = u32::from_be_bytes([
                    out[l4_off + 4],
                    out[l4_off + 5],
                    out[l4_off + 6],
                    out[l4_off + 7],
                ])
                .wrapping_add((self.next - hdrs) as u32);
                out[l4_off + 4..l4_off + 8].copy_from_slice(&seq.to_be_bytes());
                if !last {
                    out[l4_off + 13] &= !(TCP_FIN | TCP_PSH);
                }
                if self.index > 0 {
                    out[l4_off + 13] &= !TCP_CWR;
                }
                store_l4_checksum(out, l4_off, TCP, 16);
            }
            L4::Udp => {
                let ulen = (len - l4_off) as u16;
                out[l4_off + 4..l4_off + 6].copy_from_slice(&ulen.to_be_bytes());
                store_l4_checksum(out, l4_off, UDP, 6);
            }
            L4::Whole => {}
        }
        self.next += seg;
        self.index = self.index.wrapping_add(1);
        self.done = last;
        Some(Ok(len))
    }
}

/// The IP header before `l4_off` fits a GSO packet of `proto`: right version, lengths that
/// agree with the packet, no fragment.
fn check_ip(pkt: &[u8], v6: bool, proto: u8, l4_off: usize) -> Result<(), OffloadError> {
    let bad = Err(OffloadError::Malformed);
    let Some(&vihl) = pkt.first() else { return bad };
    if v6 {
        if vihl >> 4 != 6 || l4_off < 40 || pkt.len() < 40 {
            return bad;
        }
        let plen = usize::from(u16::from_be_bytes([pkt[4], pkt[5]]));
        // Extension headers (l4_off > 40) are copied into every segment as they are.
        if plen + 40 != pkt.len() || (l4_off == 40 && pkt[6] != proto) {
            return bad;
        }
    } else {
        let ihl = usize::from(vihl & 0x0f) * 4;
        if vihl >> 4 != 4 || ihl < 20 || ihl != l4_off || pkt.len() < ihl {
            return bad;
        }
        let tot = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
        let frag = u16::from_be_bytes([pkt[6], pkt[7]]) & 0x3fff;
        if tot != pkt.len() || pkt[9] != proto || frag != 0 {
            return bad;
        }
    }
    Ok(())
}

/// Lengths, and for IPv4 the id (one more per segment, as the kernel counts) and header
/// checksum, of segment `index` whose bytes are `out`.
fn fix_ip(out: &mut [u8], l4_off: usize, index: u16) {
    let len = out.len();
    if out[0] >> 4 == 6 {
        out[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
    } else {
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        let id = u16::from_be_bytes([out[4], out[5]]).wrapping_add(index);
        out[4..6].copy_from_slice(&id.to_be_bytes());
        out[10..12].copy_from_slice(&[0, 0]);
        let c = csum::ipv4_header(&out[..l4_off]);
        out[10..12].copy_from_slice(&c.to_be_bytes());
    }
}

fn store_l4_checksum(out: &mut [u8], l4_off: usize, proto: u8, field: usize) {
    out[l4_off + field..l4_off + field + 2].copy_from_slice(&[0, 0]);
    let acc = csum::pseudo(out, proto, out.len() - l4_off);
    let c = csum::finish(csum::sum(&out[l4_off..], acc));
    out[l4_off + field..l4_off + field + 2].copy_from_slice(&c.to_be_bytes());
}

/// NEEDS_CSUM without GSO: the field holds the pseudo-header sum; the sum from `csum_start`
/// to the end completes it (the kernel's skb_checksum_help).
fn complete_checksum(h: &VnetHdr, pkt: &mut [u8]) -> Result<(), OffloadError> {
    let start = usize::from(h.csum_start);
    let field = start + usize::from(h.csum_offset);
    if field + 2 > pkt.len() {
        return Err(OffloadError::Malformed);
    }
    let c = csum::finish(csum::sum(&pkt[start..], 0));
    pkt[field..field + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}
