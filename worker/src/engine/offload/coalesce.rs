//! Coalescing decrypted TCP segments into one super-packet for the device, as the kernel's
//! GRO would (net/ipv4/tcp_offload.c tcp_gro_receive, inet_gro_receive, ipv6_gro_receive):
//! the same flow (addresses, ports), IPv4 without options and unfragmented or IPv6 without
//! extension headers, the same IP fields (TOS/traffic class, TTL, DF, flow label; IPv4 ids
//! counting up), the same TCP header but for the sequence number (contiguous) and FIN/PSH,
//! no CWR after the first, no segment larger than the first. A shorter segment, or one with
//! PSH/FIN, is the last of its run; URG/RST/SYN, an ECN CE mark, empty segments, bad
//! checksums and everything that is not TCP are never coalesced. The super-packet goes to
//! the device with a GSO virtio-net header and a partial checksum.

use super::csum;
use super::vnet::{self, VnetHdr};
use super::MAX_SUPER;

const TCP: u8 = 6;
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const URG: u8 = 0x20;
const CWR: u8 = 0x80;

/// A TCP segment's layout, after the checks that make it a candidate.
#[derive(Debug, Clone, Copy)]
struct Seg {
    v6: bool,
    l4: usize,
    hdrs: usize,
    seq: u32,
    flags: u8,
}

impl Seg {
    fn payload(&self, pkt: &[u8]) -> usize {
        pkt.len() - self.hdrs
    }
}

/// Parses `pkt` as a segment that may be coalesced (see the module comment), checksums
/// verified.
fn candidate(pkt: &[u8]) -> Option<Seg> {
    let v = pkt.first()? >> 4;
    let (v6, l4) = match v {
        4 => {
            let h = pkt.get(..20)?;
            let frag = u16::from_be_bytes([h[6], h[7]]) & 0x3fff;
            let ok = h[0] == 0x45
                && usize::from(u16::from_be_bytes([h[2], h[3]])) == pkt.len()
                && frag == 0
                && h[9] == TCP
                && h[1] & 3 != 3
                && csum::fold(csum::sum(h, 0)) == 0xffff;
            ok.then_some((false, 20))?
        }
        6 => {
            let h = pkt.get(..40)?;
            let ok = usize::from(u16::from_be_bytes([h[4], h[5]])) + 40 == pkt.len()
                && h[6] == TCP
                && (h[1] >> 4) & 3 != 3;
            ok.then_some((true, 40))?
        }
        _ => return None,
    };
    let doff = usize::from(pkt.get(l4 + 12)? >> 4) * 4;
    let hdrs = l4 + doff;
    if doff < 20 || hdrs >= pkt.len() {
        return None;
    }
    let flags = pkt[l4 + 13];
    if flags & (URG | RST | SYN) != 0 {
        return None;
    }
    let acc = csum::pseudo(pkt, TCP, pkt.len() - l4);
    if csum::fold(csum::sum(&pkt[l4..], acc)) != 0xffff {
        return None;
    }
    let seq = u32::from_be_bytes([pkt[l4 + 4], pkt[l4 + 5], pkt[l4 + 6], pkt[l4 + 7]]);
    Some(Seg {
        v6,
        l4,
        hdrs,
        seq,
        flags,
    })
}

/// One run being built, for the device `owner` (the caller's index).
pub struct Coalescer {
    buf: Box<[u8]>,
    len: usize,
    owner: usize,
    head: Option<Seg>,
    mss: usize,
    count: u16,
    next_seq: u32,
    /// The run takes no more segments (the last one was short or had PSH/FIN).
    closed: bool,
}

impl Default for Coalescer {
    fn default() -> Self {
        Coalescer {
            buf: vec![0u8; MAX_SUPER].into_boxed_slice(),
            len: 0,
            owner: 0,
            head: None,
            mss: 0,
            count: 0,
            next_seq: 0,
            closed: false,
        }
    }
}

/// What the caller does with a packet it offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Taken into the run.
    Taken,
    /// Not taken: finish the run (write it), then offer the packet again.
    Finish,
    /// Never coalesced: finish the run, then write the packet as it is.
    Pass,
}

impl Coalescer {
    pub fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// Offers a decrypted packet for device `owner`.
    pub fn offer(&mut self, owner: usize, pkt: &[u8]) -> Offer {
        let Some(seg) = candidate(pkt) else {
            return Offer::Pass;
        };
        let Some(head) = self.head else {
            return self.start(owner, seg, pkt);
        };
        if self.closed || owner != self.owner || !self.fits(&head, &seg, pkt) {
            return Offer::Finish;
        }
        let n = seg.payload(pkt);
        self.buf[self.len..self.len + n].copy_from_slice(&pkt[seg.hdrs..]);
        self.len += n;
        self.count += 1;
        self.next_seq = seg.seq.wrapping_add(n as u32);
        self.buf[head.l4 + 13] |= seg.flags & (FIN | PSH);
        self.closed = n < self.mss || seg.flags & (FIN | PSH) != 0;
        Offer::Taken
    }

    fn start(&mut self, owner: usize, seg: Seg, pkt: &[u8]) -> Offer {
        let n = seg.payload(pkt);
        if seg.flags & (FIN | PSH) != 0 {
            // Final on its own: nothing could follow it.
            return Offer::Pass;
        }
        self.buf[..pkt.len()].copy_from_slice(pkt);
        self.len = pkt.len();
        self.owner = owner;
        self.head = Some(seg);
        self.mss = n;
        self.count = 1;
        self.next_seq = seg.seq.wrapping_add(n as u32);
        self.closed = false;
        Offer::Taken
    }

    /// `seg` continues the run whose first segment is `head` (bytes in `self.buf`).
    fn fits(&self, head: &Seg, seg: &Seg, pkt: &[u8]) -> bool {
        let h = &self.buf[..self.len];
        let n = seg.payload(pkt);
        if seg.v6 != head.v6 || seg.hdrs != head.hdrs || n > self.mss || self.len + n > MAX_SUPER {
            return false;
        }
        if seg.seq != self.next_seq || seg.flags & CWR != 0 {
            return false;
        }
        let l4 = head.l4;
        let ip_same = if head.v6 {
            // Version, traffic class, flow label; next header, hop limit; addresses.
            h[..4] == pkt[..4] && h[6..40] == pkt[6..40]
        } else {
            let id0 = u16::from_be_bytes([h[4], h[5]]);
            let id = u16::from_be_bytes([pkt[4], pkt[5]]);
            h[1] == pkt[1]
                && id == id0.wrapping_add(self.count)
                && h[6..10] == pkt[6..10]
                && h[12..20] == pkt[12..20]
        };
        // Ports; ack; data offset, flags but FIN/PSH, window; options.
        ip_same
            && h[l4..l4 + 4] == pkt[l4..l4 + 4]
            && h[l4 + 8..l4 + 13] == pkt[l4 + 8..l4 + 13]
            && (h[l4 + 13] ^ pkt[l4 + 13]) & !(FIN | PSH | CWR) == 0
            && h[l4 + 14..l4 + 16] == pkt[l4 + 14..l4 + 16]
            && h[l4 + 20..head.hdrs] == pkt[l4 + 20..head.hdrs]
    }

    /// Ends the run: the device owner, the virtio-net header and the bytes to write.
    /// A run of one goes as it came, behind an all-zero header.
    pub fn finish(&mut self) -> Option<(usize, VnetHdr, &[u8])> {
        let head = self.head.take()?;
        let len = self.len;
        let b = &mut self.buf[..len];
        if self.count == 1 {
            return Some((self.owner, VnetHdr::default(), b));
        }
        let l4 = head.l4;
        if head.v6 {
            b[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        } else {
            b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            b[10..12].copy_from_slice(&[0, 0]);
            let c = csum::ipv4_header(&b[..l4]);
            b[10..12].copy_from_slice(&c.to_be_bytes());
        }
        // CHECKSUM_PARTIAL: the pseudo-header sum of the whole, not complemented.
        let partial = csum::fold(csum::pseudo(b, TCP, len - l4));
        b[l4 + 16..l4 + 18].copy_from_slice(&partial.to_be_bytes());
        let mut gso_type = if head.v6 {
            vnet::GSO_TCPV6
        } else {
            vnet::GSO_TCPV4
        };
        if b[l4 + 13] & CWR != 0 {
            gso_type |= vnet::GSO_ECN;
        }
        let h = VnetHdr {
            flags: vnet::F_NEEDS_CSUM,
            gso_type,
            hdr_len: head.hdrs as u16,
            gso_size: self.mss as u16,
            csum_start: l4 as u16,
            csum_offset: 16,
        };
        Some((self.owner, h, b))
    }
}
