//! Segmentation (and coalescing) against an independent checksum: every split packet must
//! verify with a byte-at-a-time RFC 1071 sum written separately from [`super::csum`].
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::segment::Segmenter;
use super::vnet::{self, VnetHdr};
use proptest::prelude::*;

/// RFC 1071 the slow way: 16-bit words, carries folded at every step.
pub(super) fn naive_sum(parts: &[&[u8]]) -> u16 {
    let mut bytes = Vec::new();
    for p in parts {
        bytes.extend_from_slice(p);
    }
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let mut s: u32 = 0;
    for w in bytes.chunks(2) {
        s += u32::from(w[0]) << 8 | u32::from(w[1]);
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

pub(super) fn pseudo_bytes(ip: &[u8], proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    if ip[0] >> 4 == 4 {
        p.extend_from_slice(&ip[12..20]);
    } else {
        p.extend_from_slice(&ip[8..40]);
    }
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p
}

/// The L4 checksum of `pkt` (L4 header at `l4`) verifies; for IPv4 the header too.
fn verify(pkt: &[u8], l4: usize, proto: u8) {
    if pkt[0] >> 4 == 4 {
        assert_eq!(naive_sum(&[&pkt[..l4]]), 0xffff, "IPv4 header checksum");
    }
    let ph = pseudo_bytes(pkt, proto, pkt.len() - l4);
    assert_eq!(naive_sum(&[&ph, &pkt[l4..]]), 0xffff, "L4 checksum");
}

#[derive(Debug, Clone)]
pub(super) struct Spec {
    pub v6: bool,
    pub udp: bool,
    /// IPv4 option bytes or IPv6 extension-header bytes (multiple of 8 for IPv6).
    pub ip_ext: usize,
    pub tcp_opts: usize,
    pub flags: u8,
    pub payload: Vec<u8>,
    pub mss: u16,
}

/// A super-packet as the kernel hands it over with TSO/USO: full headers, lengths of the
/// whole, the L4 checksum field holding the pseudo-header sum (CHECKSUM_PARTIAL).
pub(super) fn super_packet(s: &Spec) -> (VnetHdr, Vec<u8>) {
    let proto = if s.udp { 17 } else { 6 };
    let mut p = Vec::new();
    let l4 = if s.v6 {
        p.extend_from_slice(&[
            0x60,
            0,
            0,
            0,
            0,
            0,
            if s.ip_ext > 0 { 0 } else { proto },
            64,
        ]);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        if s.ip_ext > 0 {
            // One hop-by-hop header of ip_ext bytes, PadN-filled.
            let mut e = vec![0u8; s.ip_ext];
            e[0] = proto;
            e[1] = (s.ip_ext / 8 - 1) as u8;
            e[2] = 1;
            e[3] = (s.ip_ext - 4) as u8;
            p.extend_from_slice(&e);
        }
        p.len()
    } else {
        let ihl = 20 + s.ip_ext;
        p.extend_from_slice(&[
            0x40 | (ihl / 4) as u8,
            0x02,
            0,
            0,
            0x12,
            0x34,
            0x40,
            0,
            64,
            proto,
            0,
            0,
        ]);
        p.extend_from_slice(&[172, 16, 16, 2, 172, 16, 16, 1]);
        // NOP options.
        p.extend(std::iter::repeat_n(1u8, s.ip_ext));
        ihl
    };
    if s.udp {
        p.extend_from_slice(&[0x30, 0x39, 0x14, 0x51, 0, 0, 0, 0]);
    } else {
        let doff = (20 + s.tcp_opts) / 4;
        p.extend_from_slice(&[0x30, 0x39, 0x14, 0x51, 0xfe, 0xdc, 0xba, 0x98, 0, 0, 0, 1]);
        p.extend_from_slice(&[(doff << 4) as u8, s.flags, 0x01, 0x00, 0, 0, 0, 0]);
        p.extend(std::iter::repeat_n(1u8, s.tcp_opts));
    }
    let hdrs = p.len();
    p.extend_from_slice(&s.payload);
    let len = p.len();
    if s.v6 {
        p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
    } else {
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        let c = !naive_sum(&[&p[..l4]]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
    if s.udp {
        p[l4 + 4..l4 + 6].copy_from_slice(&((len - l4) as u16).to_be_bytes());
    }
    let field = if s.udp { 6 } else { 16 };
    let ph = pseudo_bytes(&p, proto, len - l4);
    p[l4 + field..l4 + field + 2].copy_from_slice(&naive_sum(&[&ph]).to_be_bytes());
    let gso_type = match (s.udp, s.v6) {
        (true, _) => vnet::GSO_UDP_L4,
        (false, false) => vnet::GSO_TCPV4,
        (false, true) => vnet::GSO_TCPV6,
    };
    let h = VnetHdr {
        flags: vnet::F_NEEDS_CSUM,
        gso_type,
        hdr_len: hdrs as u16,
        gso_size: s.mss,
        csum_start: l4 as u16,
        csum_offset: field as u16,
    };
    (h, p)
}

pub(super) fn split(h: &VnetHdr, pkt: &[u8]) -> Vec<Vec<u8>> {
    let mut copy = pkt.to_vec();
    let mut seg = Segmenter::new(h, &mut copy).expect("valid super-packet");
    let mut out = Vec::new();
    let mut buf = vec![0u8; 70000];
    for _ in 0..70000 {
        match seg.next_into(&mut buf) {
            Some(r) => out.push(buf[..r.unwrap()].to_vec()),
            None => break,
        }
    }
    out
}

pub(super) fn spec() -> impl Strategy<Value = Spec> {
    (
        any::<bool>(),
        any::<bool>(),
        0usize..3,
        0usize..11,
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..9000),
        1u16..1500,
    )
        .prop_map(|(v6, udp, ext, opts, flags, payload, mss)| Spec {
            v6,
            udp,
            ip_ext: if v6 { ext * 8 } else { ext * 4 },
            tcp_opts: opts * 4,
            // SYN/RST/URG are never on a TSO packet; the rest may be.
            flags: flags & !(0x02 | 0x04 | 0x20) | 0x10,
            payload,
            mss,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Every segment verifies, carries at most `mss` payload bytes in order with contiguous
    /// sequence numbers, FIN/PSH only on the last, CWR only on the first, and the headers
    /// otherwise as in the super-packet.
    #[test]
    fn split_segments_are_what_gso_makes(s in spec()) {
        let (h, pkt) = super_packet(&s);
        let segs = split(&h, &pkt);
        let l4 = usize::from(h.csum_start);
        let hdrs = usize::from(h.hdr_len);
        let want = s.payload.len().div_ceil(usize::from(s.mss)).max(1);
        prop_assert_eq!(segs.len(), want);
        let mut payload = Vec::new();
        let seq0 = u32::from_be_bytes(pkt[l4 + 4..l4 + 8].try_into().unwrap());
        for (i, g) in segs.iter().enumerate() {
            verify(g, l4, if s.udp { 17 } else { 6 });
            prop_assert!(g.len() - hdrs <= usize::from(s.mss));
            if s.v6 {
                prop_assert_eq!(usize::from(u16::from_be_bytes([g[4], g[5]])), g.len() - 40);
                prop_assert_eq!(&g[6..l4], &pkt[6..l4]);
            } else {
                prop_assert_eq!(usize::from(u16::from_be_bytes([g[2], g[3]])), g.len());
                prop_assert_eq!(u16::from_be_bytes([g[4], g[5]]), 0x1234 + i as u16);
                prop_assert_eq!(&g[12..l4], &pkt[12..l4]);
            }
            if s.udp {
                prop_assert_eq!(usize::from(u16::from_be_bytes([g[l4 + 4], g[l4 + 5]])), g.len() - l4);
            } else {
                let seq = u32::from_be_bytes(g[l4 + 4..l4 + 8].try_into().unwrap());
                prop_assert_eq!(seq, seq0.wrapping_add(payload.len() as u32));
                let f = g[l4 + 13];
                let last = i + 1 == segs.len();
                let mut want = s.flags;
                if !last { want &= !0x09; }
                if i > 0 { want &= !0x80; }
                prop_assert_eq!(f, want);
                prop_assert_eq!(&g[l4 + 14..l4 + 16], &pkt[l4 + 14..l4 + 16]);
                prop_assert_eq!(&g[l4 + 18..hdrs], &pkt[l4 + 18..hdrs]);
            }
            payload.extend_from_slice(&g[hdrs..]);
        }
        prop_assert_eq!(payload, s.payload);
    }

    /// Without GSO the packet passes byte for byte (whatever it is: non-TCP, options,
    /// extension headers, ECN, tiny), and with a partial checksum only that is filled in.
    #[test]
    fn unsplit_packets_pass_unchanged(pkt in proptest::collection::vec(any::<u8>(), 1..2000)) {
        let h = VnetHdr::default();
        let segs = split(&h, &pkt);
        prop_assert_eq!(segs, vec![pkt]);
    }
}

#[test]
fn partial_checksum_without_gso_is_completed() {
    for (v6, udp) in [(false, false), (false, true), (true, false), (true, true)] {
        let s = Spec {
            v6,
            udp,
            ip_ext: 0,
            tcp_opts: 12,
            flags: 0x18,
            payload: (0..333u32).map(|i| i as u8).collect(),
            mss: 1400,
        };
        let (mut h, pkt) = super_packet(&s);
        h.gso_type = vnet::GSO_NONE;
        let segs = split(&h, &pkt);
        assert_eq!(segs.len(), 1);
        let l4 = usize::from(h.csum_start);
        verify(&segs[0], l4, if udp { 17 } else { 6 });
        // Only the checksum field changed.
        let f = l4 + usize::from(h.csum_offset);
        assert_eq!(&segs[0][..f], &pkt[..f]);
        assert_eq!(&segs[0][f + 2..], &pkt[f + 2..]);
    }
}

#[test]
fn malformed_super_packets_are_refused() {
    let s = Spec {
        v6: false,
        udp: false,
        ip_ext: 0,
        tcp_opts: 0,
        flags: 0x10,
        payload: vec![7; 3000],
        mss: 1000,
    };
    let (h, pkt) = super_packet(&s);
    // Length field disagrees with the packet.
    let mut p = pkt.clone();
    p.pop();
    assert!(Segmenter::new(&h, &mut p).is_err());
    // UFO (IP fragmentation) is never negotiated.
    let mut p = pkt.clone();
    let bad = VnetHdr { gso_type: 3, ..h };
    assert!(Segmenter::new(&bad, &mut p).is_err());
    // IPv6 GSO type on an IPv4 packet.
    let mut p = pkt.clone();
    let bad = VnetHdr {
        gso_type: vnet::GSO_TCPV6,
        ..h
    };
    assert!(Segmenter::new(&bad, &mut p).is_err());
    // Zero MSS.
    let mut p = pkt.clone();
    let bad = VnetHdr { gso_size: 0, ..h };
    assert!(Segmenter::new(&bad, &mut p).is_err());
    // A segment that does not fit the caller's buffer is an error, not a panic.
    let mut p = pkt;
    let mut seg = Segmenter::new(&h, &mut p).unwrap();
    assert!(matches!(seg.next_into(&mut [0u8; 100]), Some(Err(_))));
}
