//! Coalescing against the segmentation: split then coalesce gives the original back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::coalesce::{Coalescer, Offer};
use super::tests::{naive_sum, pseudo_bytes, spec, split, super_packet, Spec};
use super::vnet::{self, VnetHdr};
use proptest::prelude::*;

/// Feeds packets through a coalescer as the engine does; returns what would be written.
fn coalesce_all(pkts: &[Vec<u8>]) -> Vec<(VnetHdr, Vec<u8>)> {
    let mut c = Coalescer::default();
    let mut out = Vec::new();
    for p in pkts {
        // Bounded: a packet is offered at most twice (once more after a finish).
        for _ in 0..2 {
            match c.offer(0, p) {
                Offer::Taken => break,
                Offer::Finish => {
                    let (_, h, b) = c.finish().unwrap();
                    out.push((h, b.to_vec()));
                }
                Offer::Pass => {
                    if let Some((_, h, b)) = c.finish() {
                        out.push((h, b.to_vec()));
                    }
                    out.push((VnetHdr::default(), p.clone()));
                    break;
                }
            }
        }
    }
    if let Some((_, h, b)) = c.finish() {
        out.push((h, b.to_vec()));
    }
    out
}

fn tcp_spec() -> impl Strategy<Value = Spec> {
    (
        any::<bool>(),
        0usize..11,
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 1..60000),
        64u16..1500,
    )
        .prop_map(|(v6, opts, flags, payload, mss)| Spec {
            v6,
            udp: false,
            ip_ext: 0,
            tcp_opts: opts * 4,
            flags: flags & !(0x02 | 0x04 | 0x20) | 0x10,
            payload,
            mss,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Split then coalesce gives back the super-packet byte for byte (one segment: that
    /// segment as it is), with the GSO header the kernel would have given.
    #[test]
    fn split_then_coalesce_is_the_original(s in tcp_spec()) {
        let (h, pkt) = super_packet(&s);
        let segs = split(&h, &pkt);
        let out = coalesce_all(&segs);
        prop_assert_eq!(out.len(), 1);
        let (oh, ob) = &out[0];
        if segs.len() == 1 {
            prop_assert_eq!(oh, &VnetHdr::default());
            prop_assert_eq!(ob, &segs[0]);
        } else {
            prop_assert_eq!(ob, &pkt);
            prop_assert_eq!(oh.gso_type & !vnet::GSO_ECN, h.gso_type);
            prop_assert_eq!(oh.gso_size, s.mss);
            prop_assert_eq!((oh.hdr_len, oh.csum_start, oh.csum_offset), (h.hdr_len, h.csum_start, h.csum_offset));
            prop_assert_eq!(oh.flags, vnet::F_NEEDS_CSUM);
        }
    }

    /// Packets that must not be coalesced come out as they went in, in order.
    #[test]
    fn ineligible_packets_pass_unchanged(s in spec(), tiny in 0usize..3) {
        // UDP, IPv4 options, IPv6 extension headers: each segment alone, unchanged.
        prop_assume!(s.udp || s.ip_ext > 0);
        let (h, pkt) = super_packet(&s);
        let segs = split(&h, &pkt);
        let out = coalesce_all(&segs);
        let want: Vec<(VnetHdr, Vec<u8>)> = segs.iter().map(|g| (VnetHdr::default(), g.clone())).collect();
        prop_assert_eq!(out, want);
        // Tiny (header-only) segments likewise.
        let t = Spec { udp: false, ip_ext: 0, payload: vec![], ..s.clone() };
        let (th, tp) = super_packet(&t);
        let tsegs = split(&th, &tp);
        let many: Vec<Vec<u8>> = std::iter::repeat_n(tsegs[0].clone(), tiny + 1).collect();
        let out = coalesce_all(&many);
        prop_assert!(out.iter().all(|(h, _)| *h == VnetHdr::default()));
        prop_assert_eq!(out.into_iter().map(|(_, b)| b).collect::<Vec<_>>(), many);
    }
}

fn flow(v6: bool, payload: usize, mss: u16, flags: u8) -> Vec<Vec<u8>> {
    let s = Spec {
        v6,
        udp: false,
        ip_ext: 0,
        tcp_opts: 12,
        flags,
        payload: (0..payload).map(|i| (i * 7) as u8).collect(),
        mss,
    };
    let (h, p) = super_packet(&s);
    split(&h, &p)
}

/// PSH/FIN end a run; ECN CE, a gap in the sequence, another flow and a bad checksum are
/// not merged.
#[test]
fn runs_end_where_gro_ends_them() {
    for v6 in [false, true] {
        // PSH in the middle (an application write boundary): two runs.
        let mut a = flow(v6, 4000, 1000, 0x10);
        let l4 = if v6 { 40 } else { 20 };
        a[1][l4 + 13] |= 0x08;
        fix_tcp_checksum(&mut a[1], l4);
        let out = coalesce_all(&a);
        assert_eq!(out.len(), 2, "v6={v6}");
        assert_eq!(out[0].0.gso_size, 1000);
        // A gap: the third segment missing.
        let mut b = flow(v6, 4000, 1000, 0x10);
        b.remove(2);
        assert_eq!(coalesce_all(&b).len(), 2);
        // A bad checksum: that segment alone, unchanged.
        let mut c = flow(v6, 4000, 1000, 0x10);
        c[2][l4 + 16] ^= 0x55;
        let out = coalesce_all(&c);
        assert_eq!(out.len(), 3);
        assert_eq!(out[1], (VnetHdr::default(), c[2].clone()));
        // ECN CE on every packet: none merged.
        let mut d = flow(v6, 3000, 1000, 0x10);
        for p in &mut d {
            if v6 {
                p[1] |= 0x30;
            } else {
                p[1] |= 0x03;
                p[10..12].copy_from_slice(&[0, 0]);
                let cs = super::csum::ipv4_header(&p[..20]);
                p[10..12].copy_from_slice(&cs.to_be_bytes());
            }
        }
        let out = coalesce_all(&d);
        assert_eq!(out.len(), 3);
        // Two flows interleaved: a run per change.
        let e = flow(v6, 2000, 1000, 0x10);
        let mut f = flow(v6, 2000, 1000, 0x10);
        for p in &mut f {
            p[l4] ^= 1; // another source port
            fix_tcp_checksum(p, l4);
        }
        let mixed = vec![e[0].clone(), f[0].clone(), e[1].clone(), f[1].clone()];
        assert_eq!(coalesce_all(&mixed).len(), 4);
    }
}

fn fix_tcp_checksum(p: &mut [u8], l4: usize) {
    p[l4 + 16..l4 + 18].copy_from_slice(&[0, 0]);
    let ph = pseudo_bytes(p, 6, p.len() - l4);
    let c = !naive_sum(&[&ph, &p[l4..]]);
    p[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
}
