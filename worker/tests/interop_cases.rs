//! Our engine against the real fastd v22 beyond the method matrix: tap with `forward`,
//! multitap, restarts, mismatches, unknown keys, replays.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod interop_support;

use std::time::{Duration, Instant};

use interop_support::capture::{capture_udp, capture_udp_from, inject, inject_all};
use interop_support::ours::{fastd_alpha_ours_anyremote, Ours};
use interop_support::*;
use worker::engine::{DropReason, Timings};

const METHOD: &str = "salsa2012+umac";

/// Our node as alpha in tap mode (`extra` added to its config) with peers b and c, and a real
/// fastd as each of them (nodes 1 and 2, 172.16.16.2 and .3) started `gap` apart.
fn ours_tap_hub(tag: &str, extra: &str, gap: Duration) -> (Lan, TempDir, Ours, Vec<Fastd>) {
    let keys = keypairs();
    let lan = Lan::new(tag, 3);
    let dir = TempDir::new(tag);
    let mut a = ConfBuilder::new("tap", METHOD, &keys[0].0, "172.16.16.1/24");
    a.bind = Some(GATEWAY.into());
    a.extra = extra.into();
    let a = a
        .peer("b", &keys[1].1, None)
        .peer("c", &keys[2].1, None)
        .render();
    let ours = Ours::start(&lan.nodes[0], &a, Timings::default());
    let mut fastds = Vec::new();
    for (i, name) in [(1usize, "b"), (2, "c")] {
        let conf = ConfBuilder::new(
            "tap",
            METHOD,
            &keys[i].0,
            &format!("172.16.16.{}/24", i + 1),
        )
        .peer("alpha", &keys[0].1, Some(GATEWAY))
        .render();
        fastds.push(Fastd::start(&lan.nodes[i], &dir, name, &conf));
        std::thread::sleep(gap);
    }
    (lan, dir, ours, fastds)
}

/// [`ours_tap_hub`] until both fastd report the session with our node.
fn ours_tap_hub_two_fastd(tag: &str, extra: &str) -> (Lan, TempDir, Ours, Vec<Fastd>) {
    let (lan, dir, ours, fastds) = ours_tap_hub(tag, extra, Duration::ZERO);
    for f in &fastds {
        assert!(
            f.wait_log(
                "connection with <alpha> established",
                Duration::from_secs(10)
            ),
            "{}\n{}",
            f.log_text(),
            ours.log_text()
        );
    }
    (lan, dir, ours, fastds)
}

/// Our node is alpha (listening, `forward`) in tap mode; two real fastd connect to it.
/// Traffic between the two fastd nodes crosses our node.
#[test]
fn tap_forward_between_two_fastd_peers() {
    if !prerequisites() {
        return;
    }
    let (lan, _dir, ours, fastds) = ours_tap_hub_two_fastd("tf", "forward yes;\n");
    assert_tunnel_or(&lan.nodes[1], "172.16.16.1", 56, || "b -> ours".into());
    assert_tunnel_or(&lan.nodes[0], "172.16.16.3", 56, || "ours -> c".into());
    // b -> c only works through our node's `forward`.
    assert_tunnel_or(&lan.nodes[1], "172.16.16.3", 56, || {
        format!("b -> c via ours\n{}", ours.log_text())
    });
    assert_tunnel_or(&lan.nodes[2], "172.16.16.2", 1000, || {
        "c -> b via ours".into()
    });
    assert_transfer(&lan.nodes[2], &lan.nodes[1], "172.16.16.3:5001", 1 << 20);
    for f in &fastds {
        assert!(packet_errors(&f.log_text()).is_empty(), "{}", f.log_text());
    }
    // Both peers' MAC addresses were learned (status socket data).
    std::thread::sleep(Duration::from_millis(200));
    let st = ours.status();
    assert!(
        st.iter()
            .all(|p| p.established && !p.macs.is_empty() && p.connected_since.is_some()),
        "{st:?}"
    );
}

/// Without `forward` the two fastd peers cannot reach each other through our node.
#[test]
fn tap_without_forward_isolates_peers() {
    if !prerequisites() {
        return;
    }
    let (lan, _dir, _ours, _fastds) = ours_tap_hub_two_fastd("tn", "");
    let t = Duration::from_secs(3);
    assert!(ping(&lan.nodes[1], "172.16.16.1".parse().unwrap(), 56, t).is_some());
    assert!(ping(&lan.nodes[2], "172.16.16.1".parse().unwrap(), 56, t).is_some());
    assert!(ping(&lan.nodes[1], "172.16.16.3".parse().unwrap(), 56, t).is_none());
}

/// The real fastd as alpha in multitap mode, ours as anyremote in `mode`: echoes both ways,
/// a 1 MiB transfer, no packet errors in fastd's log.
fn ours_connecting_to_multitap_fastd(tag: &str, mode: &'static str) {
    let lan = Lan::new(tag, 2);
    let dir = TempDir::new(tag);
    let a = ConfBuilder::alpha("multitap", METHOD).render();
    let b = ConfBuilder::anyremote(mode, METHOD).render();
    let (f, _ours) = fastd_alpha_ours_anyremote(&lan, &dir, &a, &b, Timings::default());
    assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
    assert_tunnel(&lan.nodes[0], "172.16.16.2", 1400);
    assert_transfer(&lan.nodes[0], &lan.nodes[1], "172.16.16.1:5001", 1 << 20);
    assert!(packet_errors(&f.log_text()).is_empty(), "{}", f.log_text());
}

/// Multitap: one TAP interface per peer; our side connects to a real fastd in multitap mode.
#[test]
fn multitap_with_fastd() {
    if !prerequisites() {
        return;
    }
    ours_connecting_to_multitap_fastd("mt", "multitap");
}

/// Restarting the real fastd (the connecting side) gives a new session within fastd's
/// reconnect time (its first handshake, or its retry 20 s later if ours still ignores
/// handshakes from it for 15 s after establishing).
#[test]
fn restart_of_connecting_fastd_reconnects() {
    if !prerequisites() {
        return;
    }
    let lan = Lan::new("rc", 2);
    let dir = TempDir::new("rc");
    let a = ConfBuilder::alpha("tun", METHOD).render();
    let b = ConfBuilder::anyremote("tun", METHOD).render();
    let ours = Ours::start(&lan.nodes[0], &a, Timings::default());
    let mut f = Fastd::start(&lan.nodes[1], &dir, "anyremote", &b);
    assert!(f.wait_log(
        "connection with <alpha> established",
        Duration::from_secs(10)
    ));
    assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
    f.stop();
    let before = ours
        .log_text()
        .matches("new session with <anyremote>")
        .count();
    f.restart();
    let reconnected = wait_until(Duration::from_secs(30), || {
        ours.log_text()
            .matches("new session with <anyremote>")
            .count()
            > before
    });
    assert!(reconnected, "{}\n{}", f.log_text(), ours.log_text());
    assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
}

/// Restarting the real fastd on the listening side: it forgot us, so our next keepalive is
/// unknown data to it, it answers with a handshake (fast reconnect) and a new session follows.
#[test]
fn restart_of_listening_fastd_fast_reconnect() {
    if !prerequisites() {
        return;
    }
    let lan = Lan::new("rl", 2);
    let dir = TempDir::new("rl");
    let a = ConfBuilder::alpha("tun", METHOD).render();
    let b = ConfBuilder::anyremote("tun", METHOD).render();
    // Our keepalive every 2 s instead of 20 s, to keep the test short.
    let timings = Timings {
        keepalive: Duration::from_secs(2),
        ..Timings::default()
    };
    let (mut f, ours) = fastd_alpha_ours_anyremote(&lan, &dir, &a, &b, timings);
    f.stop();
    let before = ours.log_text().matches("new session with <alpha>").count();
    f.restart();
    let reconnected = wait_until(Duration::from_secs(30), || {
        ours.log_text().matches("new session with <alpha>").count() > before
    });
    assert!(reconnected, "{}\n{}", f.log_text(), ours.log_text());
    assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
}

/// A mismatch pair: our node listens with `ours_cfg`, fastd connects with `fastd_cfg`.
fn mismatch(
    tag: &str,
    ours_cfg: ConfBuilder,
    fastd_cfg: ConfBuilder,
) -> (Ours, Fastd, Lan, TempDir) {
    let lan = Lan::new(tag, 2);
    let dir = TempDir::new(tag);
    let ours = Ours::start(&lan.nodes[0], &ours_cfg.render(), Timings::default());
    let f = Fastd::start(&lan.nodes[1], &dir, "anyremote", &fastd_cfg.render());
    (ours, f, lan, dir)
}

/// Ours as alpha with `ours_cfg`, the real fastd as anyremote with `fastd_cfg`; asserts that
/// ours logs `line` and establishes nothing.
fn refused(
    tag: &str,
    ours_cfg: ConfBuilder,
    fastd_cfg: ConfBuilder,
    line: &str,
) -> (Ours, Fastd, Lan, TempDir) {
    let (ours, f, lan, dir) = mismatch(tag, ours_cfg, fastd_cfg);
    assert!(
        ours.wait_log(line, Duration::from_secs(10)),
        "{}\n{}",
        ours.log_text(),
        f.log_text()
    );
    assert!(!ours.log_text().contains("established"));
    (ours, f, lan, dir)
}

/// [`mismatch`] with configs that agree: waits until fastd reports the session.
fn established(
    tag: &str,
    ours_cfg: ConfBuilder,
    fastd_cfg: ConfBuilder,
) -> (Ours, Fastd, Lan, TempDir) {
    let (ours, f, lan, dir) = mismatch(tag, ours_cfg, fastd_cfg);
    assert!(f.wait_log(
        "connection with <alpha> established",
        Duration::from_secs(10)
    ));
    (ours, f, lan, dir)
}

/// One data packet (an ICMP echo: longer than a keepalive) from fastd (node 1) to ours
/// (node 0), captured on ours' `eth0` as an Ethernet frame.
fn capture_data_packet(lan: &Lan) -> Vec<u8> {
    let cap = lan.nodes[0].spawn(|| {
        capture_udp("eth0", 10000, Duration::from_secs(10), |p| {
            p.len() > 24 + 20 && p[0] == 0
        })
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
    cap.join().unwrap().expect("no data packet captured")
}

fn builders(ours_method: &str, fastd_method: &str) -> (ConfBuilder, ConfBuilder) {
    (
        ConfBuilder::alpha("tun", ours_method),
        ConfBuilder::anyremote("tun", fastd_method),
    )
}

#[test]
fn method_mismatch_gives_no_session_and_a_log_line() {
    if !prerequisites() {
        return;
    }
    let (a, b) = builders("salsa2012+umac", "aes128-gcm");
    let (_ours, f, _lan, _dir) = refused(
        "mm",
        a,
        b,
        "failed: received error: no common methods are configured",
    );
    assert!(!f.log_text().contains("connection with <alpha> established"));
}

#[test]
fn mtu_mismatch_gives_no_session_and_a_log_line() {
    if !prerequisites() {
        return;
    }
    let (a, mut b) = builders(METHOD, METHOD);
    b.mtu = 1400;
    refused("mu", a, b, "MTU configuration differs with peer");
}

#[test]
fn tun_and_tap_refuse_each_other() {
    if !prerequisites() {
        return;
    }
    let (a, mut b) = builders(METHOD, METHOD);
    b.mode = "tap";
    b.mtu = 1448;
    refused("md", a, b, "failed: sending error: TUN/TAP mode mismatch");
}

#[test]
fn unknown_key_is_refused() {
    if !prerequisites() {
        return;
    }
    let keys = keypairs();
    let (mut a, b) = builders(METHOD, METHOD);
    // Our node knows a different key for "anyremote".
    a.peers[0].1 = keys[5].1.clone();
    let (ours, f, _lan, _dir) = mismatch("uk", a, b);
    let line = format!("(unknown key {})", keys[1].1);
    assert!(
        ours.wait_log(&line, Duration::from_secs(10)),
        "{}",
        ours.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(!ours.log_text().contains("established"));
    // No reply is sent for unknown keys.
    assert!(
        !f.log_text().contains("received handshake response"),
        "{}",
        f.log_text()
    );
}

/// A data packet from fastd captured on the wire and injected again is dropped as a
/// duplicate (counted), and the session goes on.
#[test]
fn replayed_packet_is_dropped_and_counted() {
    if !prerequisites() {
        return;
    }
    let (a, b) = builders(METHOD, METHOD);
    let (ours, _f, lan, _dir) = established("rp", a, b);
    assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
    // Capture one data packet (an ICMP echo: longer than a keepalive) from fastd to us.
    let mut frame = capture_data_packet(&lan);
    // veth leaves the UDP checksum to offload: clear it (allowed for IPv4) so the copy is
    // delivered. The fastd packet itself is unchanged.
    let udp = 14 + usize::from(frame[14] & 0x0f) * 4;
    frame[udp + 6] = 0;
    frame[udp + 7] = 0;
    let dups = |o: &Ours| {
        o.status()
            .first()
            .map_or(0, |s| s.drops.get(DropReason::Duplicate))
    };
    let before = dups(&ours);
    let fr = frame.clone();
    lan.nodes[1].run_in(move || inject("eth0", &fr));
    assert!(
        wait_until(Duration::from_secs(5), || dups(&ours) > before),
        "{:?}",
        ours.status()
    );
    let fr = frame.clone();
    lan.nodes[1].run_in(move || inject("eth0", &fr));
    assert!(wait_until(Duration::from_secs(5), || dups(&ours) > before + 1));
    // The session is unaffected.
    assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
    let st = ours.stop().unwrap();
    assert_eq!(st[0].drops.get(DropReason::Auth), 0);
}

/// Forged data (right address, garbage contents) is dropped and counted; the session goes on.
#[test]
fn forged_and_truncated_packets_are_dropped() {
    if !prerequisites() {
        return;
    }
    let (a, b) = builders(METHOD, METHOD);
    let (ours, _f, lan, _dir) = established("fg", a, b);
    let frame = capture_data_packet(&lan);
    // Flip a payload bit (the UDP checksum is zeroed so the kernel delivers it).
    let mut forged = frame.clone();
    let ihl = usize::from(forged[14] & 0x0f) * 4;
    let udp = 14 + ihl;
    forged[udp + 6] = 0;
    forged[udp + 7] = 0;
    let last = forged.len() - 1;
    forged[last] ^= 0x40;
    // And a truncated copy: 10 bytes of fastd header only.
    let mut short = frame[..udp + 8 + 10].to_vec();
    let ulen = (8 + 10) as u16;
    short[udp + 4..udp + 6].copy_from_slice(&ulen.to_be_bytes());
    short[udp + 6] = 0;
    short[udp + 7] = 0;
    let iplen = (ihl + 8 + 10) as u16;
    short[16..18].copy_from_slice(&iplen.to_be_bytes());
    short[24] = 0;
    short[25] = 0;
    let sum = ip_checksum(&short[14..14 + ihl]);
    short[24..26].copy_from_slice(&sum.to_be_bytes());
    lan.nodes[1].run_in(move || {
        inject("eth0", &forged);
        inject("eth0", &short);
    });
    let count = |o: &Ours, r| o.status().first().map_or(0, |s| s.drops.get(r));
    assert!(
        wait_until(Duration::from_secs(5), || count(&ours, DropReason::Auth)
            >= 1),
        "{:?}",
        ours.status()
    );
    assert!(
        wait_until(Duration::from_secs(5), || count(
            &ours,
            DropReason::Truncated
        ) >= 1),
        "{:?}",
        ours.status()
    );
    assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
}

fn ip_checksum(h: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in h.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// CVE-2025-24356 (v23 rules): data shorter than a method header from an unknown address
/// triggers nothing; a long enough one triggers exactly one handshake per source IP per 15 s,
/// whatever the port.
#[test]
fn unknown_data_amplification_limits() {
    if !prerequisites() {
        return;
    }
    let (a, _) = builders(METHOD, METHOD);
    let lan = Lan::new("am", 2);
    let ours = Ours::start(&lan.nodes[0], &a.render(), Timings::default());
    let replies = lan.nodes[1].run_in(|| {
        let dst: std::net::SocketAddr = "198.51.100.1:10000".parse().unwrap();
        let mut socks = Vec::new();
        for _ in 0..4 {
            let s = std::net::UdpSocket::bind("198.51.100.2:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            socks.push(s);
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        // 1-byte and 23-byte data packets: below the 24-byte method header.
        socks[0].send_to(&[0u8], dst).unwrap();
        socks[0].send_to(&[0u8; 23], dst).unwrap();
        got.push(socks[0].recv_from(&mut buf).map(|(n, _)| n).ok());
        // 24 bytes from three ports of the same IP: one answer in total.
        for s in &socks[1..] {
            s.send_to(&[0u8; 24], dst).unwrap();
        }
        for s in &socks[1..] {
            let mut n = 0;
            while let Ok((len, _)) = s.recv_from(&mut buf) {
                n += 1;
                assert!(len > 0);
            }
            got.push(Some(n));
        }
        got
    });
    assert_eq!(replies[0], None, "a short packet triggered a reply");
    let total: usize = replies[1..].iter().map(|r| r.unwrap_or(0)).sum();
    assert_eq!(total, 1, "{replies:?}\n{}", ours.log_text());
}

/// Two of our engines with each other (the same pairing as the throughput bench).
#[test]
fn ours_with_ours() {
    if !prerequisites() {
        return;
    }
    let (a, b) = builders(METHOD, METHOD);
    let lan = Lan::new("oo", 2);
    let alpha = Ours::start(&lan.nodes[0], &a.render(), Timings::default());
    let remote = Ours::start(&lan.nodes[1], &b.render(), Timings::default());
    assert!(
        remote.wait_log(
            "connection with <alpha> established",
            Duration::from_secs(10)
        ),
        "{}\n{}",
        alpha.log_text(),
        remote.log_text()
    );
    assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
    assert_transfer(&lan.nodes[0], &lan.nodes[1], "172.16.16.1:5001", 4 << 20);
}

/// Rekeying with our (shortened) refresh timer as initiator against fastd as responder, while
/// traffic flows: the new session takes over and traffic keeps working.
#[test]
fn rekey_as_initiator_with_fastd_responder() {
    if !prerequisites() {
        return;
    }
    let (a, b) = builders(METHOD, METHOD);
    let lan = Lan::new("rk", 2);
    let dir = TempDir::new("rk");
    let mut timings = Timings::default();
    // fastd ignores handshakes for 15 s after establishing: refresh just after that.
    timings.lifetimes.refresh_after = Duration::from_secs(16);
    timings.lifetimes.refresh_splay = Duration::ZERO;
    let (f, ours) = fastd_alpha_ours_anyremote(&lan, &dir, &a.render(), &b.render(), timings);
    let sessions = |o: &Ours| o.log_text().matches("new session with <alpha>").count();
    let end = Instant::now() + Duration::from_secs(40);
    while sessions(&ours) < 2 && Instant::now() < end {
        ping(
            &lan.nodes[1],
            "172.16.16.1".parse().unwrap(),
            56,
            Duration::from_millis(500),
        );
    }
    assert!(
        sessions(&ours) >= 2,
        "{}\n{}",
        ours.log_text(),
        f.log_text()
    );
    assert_eq!(
        f.count_log("connection with <anyremote> established"),
        1,
        "a rekey is not a reconnect"
    );
    assert_transfer(&lan.nodes[0], &lan.nodes[1], "172.16.16.1:5001", 1 << 20);
    assert_tunnel(&lan.nodes[0], "172.16.16.2", 56);
    assert!(packet_errors(&f.log_text()).is_empty(), "{}", f.log_text());
}

/// Our (shortened) peer timeout resets the peer when the path is blocked; when it is back,
/// fastd's data reaches us as unknown data, we answer with a handshake and a new session
/// comes up.
#[test]
fn peer_timeout_and_recovery() {
    if !prerequisites() {
        return;
    }
    let (a, b) = builders(METHOD, METHOD);
    let lan = Lan::new("pt", 2);
    let dir = TempDir::new("pt");
    let timings = Timings {
        peer_timeout: Duration::from_secs(3),
        keepalive: Duration::from_secs(1),
        ..Timings::default()
    };
    let ours = Ours::start(&lan.nodes[0], &a.render(), timings);
    let f = Fastd::start(&lan.nodes[1], &dir, "anyremote", &b.render());
    assert!(f.wait_log(
        "connection with <alpha> established",
        Duration::from_secs(10)
    ));
    lan.nodes[1].ip(&["link", "set", "eth0", "down"]);
    assert!(
        ours.wait_log(
            "connection with <anyremote> disestablished.",
            Duration::from_secs(10)
        ),
        "{}",
        ours.log_text()
    );
    lan.nodes[1].ip(&["link", "set", "eth0", "up"]);
    let ok = tunnel_within(&lan.nodes[1], "172.16.16.1", 56, Duration::from_secs(40));
    assert!(ok, "{}\n{}", ours.log_text(), f.log_text());
    assert!(
        ours.log_text()
            .matches("connection with <anyremote> established.")
            .count()
            >= 2
    );
}

/// Method negotiation: the responder's order decides (docs/protocol.md §2.10). Ours lists
/// `aes128-gcm, salsa2012+umac`, fastd the reverse.
#[test]
fn method_negotiation_follows_the_responder() {
    if !prerequisites() {
        return;
    }
    for ours_listens in [true, false] {
        let (mut a, mut b) = builders("aes128-gcm", "salsa2012+umac");
        a.methods.push("salsa2012+umac".into());
        b.methods.push("aes128-gcm".into());
        if !ours_listens {
            // Ours connects with the same preference: fastd (responder) picks its first.
            std::mem::swap(&mut a.methods, &mut b.methods);
        }
        let lan = Lan::new("ng", 2);
        let dir = TempDir::new("ng");
        let (ours, f) = if ours_listens {
            let o = Ours::start(&lan.nodes[0], &a.render(), Timings::default());
            (
                o,
                Fastd::start(&lan.nodes[1], &dir, "anyremote", &b.render()),
            )
        } else {
            let f = Fastd::start(&lan.nodes[0], &dir, "alpha", &a.render());
            std::thread::sleep(Duration::from_millis(200));
            (
                Ours::start(&lan.nodes[1], &b.render(), Timings::default()),
                f,
            )
        };
        let peer = if ours_listens {
            "<anyremote>"
        } else {
            "<alpha>"
        };
        // The responder's first method wins: ours' `aes128-gcm`, or fastd's `salsa2012+umac`.
        let want = if ours_listens {
            "aes128-gcm"
        } else {
            "salsa2012+umac"
        };
        let line = format!("new session with {peer} established using method `{want}'");
        assert!(
            ours.wait_log(&line, Duration::from_secs(10)),
            "{}\n{}",
            ours.log_text(),
            f.log_text()
        );
        let ip = if ours_listens {
            "172.16.16.1"
        } else {
            "172.16.16.2"
        };
        let other = if ours_listens {
            &lan.nodes[1]
        } else {
            &lan.nodes[0]
        };
        assert_tunnel(other, ip, 56);
    }
}

/// `bind any:10000`: one dual-stack socket; an IPv4 peer arrives with a v4-mapped source.
#[test]
fn bind_any_dual_stack() {
    if !prerequisites() {
        return;
    }
    let (mut a, b) = builders(METHOD, METHOD);
    a.bind = Some("any:10000".into());
    let (ours, f, lan, _dir) = mismatch("ba", a, b);
    assert!(
        f.wait_log(
            "connection with <alpha> established",
            Duration::from_secs(10)
        ),
        "{}",
        ours.log_text()
    );
    assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
    assert_tunnel(&lan.nodes[0], "172.16.16.2", 56);
    assert!(
        ours.log_text().contains("bound to any:10000"),
        "{}",
        ours.log_text()
    );
}

/// Both sides have a `remote` for each other and start together: a working session within
/// fastd's repair time (~20 s, docs/protocol.md §4.5).
#[test]
fn simultaneous_start() {
    if !prerequisites() {
        return;
    }
    let keys = keypairs();
    let lan = Lan::new("ss", 2);
    let dir = TempDir::new("ss");
    let mut a = ConfBuilder::new("tun", METHOD, &keys[0].0, "172.16.16.1/24");
    a.bind = Some("198.51.100.1:10000".into());
    let a = a.peer("b", &keys[1].1, Some("198.51.100.2:10000")).render();
    let mut b = ConfBuilder::new("tun", METHOD, &keys[1].0, "172.16.16.2/24");
    b.bind = Some("198.51.100.2:10000".into());
    let b = b.peer("a", &keys[0].1, Some("198.51.100.1:10000")).render();
    let ours = Ours::start(&lan.nodes[0], &a, Timings::default());
    let f = Fastd::start(&lan.nodes[1], &dir, "b", &b);
    let ok = tunnel_within(&lan.nodes[1], "172.16.16.1", 56, Duration::from_secs(40));
    assert!(ok, "{}\n{}", ours.log_text(), f.log_text());
    assert_tunnel(&lan.nodes[0], "172.16.16.2", 56);
}

/// Rebuilds a captured IPv4/UDP frame around a new UDP payload (lengths and IP checksum
/// fixed, UDP checksum cleared).
fn with_payload(frame: &[u8], payload: &[u8]) -> Vec<u8> {
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let udp = 14 + ihl;
    let mut f = frame[..udp + 8].to_vec();
    f.extend_from_slice(payload);
    let ulen = (8 + payload.len()) as u16;
    f[udp + 4..udp + 6].copy_from_slice(&ulen.to_be_bytes());
    f[udp + 6] = 0;
    f[udp + 7] = 0;
    let iplen = (ihl + 8 + payload.len()) as u16;
    f[16..18].copy_from_slice(&iplen.to_be_bytes());
    f[24] = 0;
    f[25] = 0;
    let sum = ip_checksum(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    f
}

/// Garbage from the established peer's own address (every first byte, every length up to a
/// full packet, L2TP headers, handshake-looking junk): dropped and counted, never a panic,
/// and the session goes on.
#[test]
fn garbage_from_an_established_peer_is_dropped() {
    if !prerequisites() {
        return;
    }
    let (a, b) = builders(METHOD, METHOD);
    let (ours, _f, lan, _dir) = established("gb", a, b);
    let frame = capture_data_packet(&lan);
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut frames = Vec::new();
    for i in 0..600usize {
        let len = match i % 4 {
            0 => i % 40,
            1 => (rnd() % 1400) as usize,
            _ => 24 + (rnd() % 100) as usize,
        };
        let mut p: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
        if let Some(first) = p.first_mut() {
            *first = [0x00, 0x01, 0x02, 0xC8, 0x03, 0x80][i % 6];
        }
        if p.len() > 1 && p[0] == 0xC8 {
            p[1] = 0x03;
        }
        frames.push(with_payload(&frame, &p));
    }
    lan.nodes[1].run_in(move || inject_all("eth0", &frames));
    std::thread::sleep(Duration::from_millis(500));
    assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
    let st = ours.stop().unwrap();
    assert!(st[0].established);
    // Data-looking junk (first byte 0x00, 0x02, 0x03, 0x80: 400 of the 600) is counted; the
    // handshake-looking rest goes to the handshake, which drops it.
    assert!(st[0].drops.total() >= 350, "{:?}", st[0].drops);
}

/// `on verify`: an unknown key is accepted when the command succeeds (a dynamic peer with its
/// own interface), refused when it fails.
#[test]
fn on_verify_accepts_and_refuses() {
    if !prerequisites() {
        return;
    }
    for accept in [true, false] {
        let keys = keypairs();
        let mut a = ConfBuilder::new("tun", METHOD, &keys[0].0, "172.16.16.1/24");
        a.bind = Some("198.51.100.1:10000".into());
        a.interface = "dyn-%k".into();
        a.extra = format!("on verify \"{}\";\n", if accept { "true" } else { "false" });
        let b = ConfBuilder::new("tun", METHOD, &keys[1].0, "172.16.16.2/24").peer(
            "alpha",
            &keys[0].1,
            Some("198.51.100.1:10000"),
        );
        let (ours, f, lan, _dir) = mismatch("ov", a, b);
        if accept {
            assert!(
                f.wait_log(
                    "connection with <alpha> established",
                    Duration::from_secs(10)
                ),
                "{}\n{}",
                ours.log_text(),
                f.log_text()
            );
            assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
            std::thread::sleep(Duration::from_millis(300));
            let st = ours.status();
            let want = format!("dyn-{}", &keys[1].1[..11]);
            assert!(
                st.iter()
                    .any(|p| p.established && p.iface.as_deref() == Some(want.as_str())),
                "{st:?}"
            );
        } else {
            // fastd's line for a refused synchronous verify (docs/config.md §4.4).
            let line = format!(
                "ignoring handshake from {{{}}}[198.51.100.2:",
                &keys[1].1[..16]
            );
            assert!(
                ours.wait_log(&line, Duration::from_secs(10)),
                "{}",
                ours.log_text()
            );
            assert!(ours.log_text().contains("(verification failed)"));
            std::thread::sleep(Duration::from_millis(300));
            assert!(!ours.log_text().contains("established"));
        }
    }
}

/// `persist interface no`: the peer's interface exists only while the peer is established.
#[test]
fn non_persistent_interface_follows_the_session() {
    if !prerequisites() {
        return;
    }
    let (mut a, b) = builders(METHOD, METHOD);
    a.extra = "persist interface no;\n".into();
    let lan = Lan::new("pi", 2);
    let dir = TempDir::new("pi");
    let timings = Timings {
        peer_timeout: Duration::from_secs(2),
        ..Timings::default()
    };
    let ours = Ours::start(&lan.nodes[0], &a.render(), timings);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !lan.nodes[0].try_ip(&["link", "show", "vpngateway"]),
        "interface before the session"
    );
    let mut f = Fastd::start(&lan.nodes[1], &dir, "anyremote", &b.render());
    assert!(f.wait_log(
        "connection with <alpha> established",
        Duration::from_secs(10)
    ));
    assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
    assert!(lan.nodes[0].try_ip(&["link", "show", "vpngateway"]));
    f.stop();
    assert!(ours.wait_log(
        "connection with <anyremote> disestablished.",
        Duration::from_secs(10)
    ));
    assert!(
        wait_until(Duration::from_secs(5), || !lan.nodes[0].try_ip(&[
            "link",
            "show",
            "vpngateway"
        ])),
        "interface still there after the reset"
    );
}

/// Reload: a peer removed from the config is deleted (its session ends), added again it
/// reconnects; an unchanged peer keeps its session.
#[test]
fn reload_deletes_and_adds_peers() {
    if !prerequisites() {
        return;
    }
    let (a, b) = builders(METHOD, METHOD);
    let full = a.render();
    let mut empty = a;
    empty.peers.clear();
    let (ours, f, lan, _dir) = mismatch("rl", builders(METHOD, METHOD).0, b);
    assert!(f.wait_log(
        "connection with <alpha> established",
        Duration::from_secs(10)
    ));
    ours.reload(&full);
    assert!(ours.wait_log("peer <anyremote> is unchanged", Duration::from_secs(5)));
    assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
    ours.reload(&empty.render());
    assert!(
        ours.wait_log("deleting peer <anyremote>", Duration::from_secs(5)),
        "{}",
        ours.log_text()
    );
    // The two lines are logged one after the other by the engine thread; poll, so a read
    // between them is not a failure.
    assert!(
        ours.wait_log(
            "connection with <anyremote> disestablished.",
            Duration::from_secs(5)
        ),
        "{}",
        ours.log_text()
    );
    assert!(ping(
        &lan.nodes[1],
        "172.16.16.1".parse().unwrap(),
        56,
        Duration::from_secs(1)
    )
    .is_none());
    ours.reload(&full);
    assert!(ours.wait_log("adding peer <anyremote>", Duration::from_secs(5)));
    let ok = tunnel_within(&lan.nodes[1], "172.16.16.1", 56, Duration::from_secs(40));
    assert!(ok, "{}\n{}", ours.log_text(), f.log_text());
}

/// Traffic accounting: one ping is one packet each way (no loops, no duplicates).
#[test]
fn one_ping_is_one_packet_each_way() {
    if !prerequisites() {
        return;
    }
    let (a, b) = builders(METHOD, METHOD);
    let (ours, _f, lan, _dir) = established("ac", a, b);
    std::thread::sleep(Duration::from_millis(300));
    let before = ours.status()[0].traffic;
    assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
    std::thread::sleep(Duration::from_millis(500));
    let after = ours.status()[0].traffic;
    assert_eq!(
        after.rx_packets - before.rx_packets,
        1,
        "{before:?} {after:?}"
    );
    assert_eq!(
        after.tx_packets - before.tx_packets,
        1,
        "{before:?} {after:?}"
    );
    assert_eq!(after.rx_bytes - before.rx_bytes, 84);
}

/// An idle tunnel stays up past fastd's 90 s peer timeout: both sides' keepalives are
/// accepted, and no new handshake happens.
fn idle_tunnel(method: &str, tag: &str) {
    let (a, b) = builders(method, method);
    let (ours, f, lan, _dir) = mismatch(tag, a, b);
    assert!(f.wait_log(
        "connection with <alpha> established",
        Duration::from_secs(10)
    ));
    std::thread::sleep(Duration::from_secs(95));
    assert!(!f.log_text().contains("disestablished"), "{}", f.log_text());
    assert!(
        !ours.log_text().contains("disestablished"),
        "{}",
        ours.log_text()
    );
    assert_eq!(
        f.count_log("new session with <alpha>"),
        1,
        "{}",
        f.log_text()
    );
    assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
    let st = ours.status();
    assert!(st[0].drops.total() == 0, "{:?}", st[0].drops);
}

#[test]
fn idle_tunnel_survives_the_peer_timeout() {
    if !prerequisites() {
        return;
    }
    idle_tunnel(METHOD, "id");
}

/// `null@l2tp` keepalives are the 20-byte control-wrapped form; fastd must accept them.
#[test]
fn idle_null_l2tp_tunnel_survives_the_peer_timeout() {
    if !prerequisites() {
        return;
    }
    idle_tunnel("null@l2tp", "il");
}

/// Pre-v22 ("compat") handshakes and `0x02` data packets: our side behaves like a pre-v22
/// fastd (test switch) against the real v22, which then runs a compat session.
#[test]
fn compat_session_with_pre_v22_handshakes() {
    if !prerequisites() {
        return;
    }
    for method in ["salsa2012+umac", "null"] {
        let (a, b) = builders(method, method);
        let lan = Lan::new("cp", 2);
        let dir = TempDir::new("cp");
        let f = Fastd::start(&lan.nodes[0], &dir, "alpha", &a.render());
        std::thread::sleep(Duration::from_millis(200));
        let timings = Timings {
            pre_v22: true,
            ..Timings::default()
        };
        let ours = Ours::start(&lan.nodes[1], &b.render(), timings);
        let line = format!(
            "new session with <anyremote> established using method `{method}' (compat mode)."
        );
        assert!(
            f.wait_log(&line, Duration::from_secs(10)),
            "{}\n{}",
            f.log_text(),
            ours.log_text()
        );
        assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
        assert_tunnel(&lan.nodes[0], "172.16.16.2", 1400);
        assert!(
            ours.log_text().contains("(compat mode)."),
            "{}",
            ours.log_text()
        );
    }
}

/// A hostname `remote` is resolved through the provider (the sandboxed worker cannot use the
/// system resolver).
#[test]
fn hostname_remote_through_the_provider() {
    if !prerequisites() {
        return;
    }
    let (a, mut b) = builders(METHOD, METHOD);
    b.peers[0].2 = Some("\"alpha.test\" port 10000".into());
    let lan = Lan::new("hn", 2);
    let dir = TempDir::new("hn");
    let (_f, _ours) =
        fastd_alpha_ours_anyremote(&lan, &dir, &a.render(), &b.render(), Timings::default());
    assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
}

/// After a connection loss our connecting side opens a new per-connection socket (new
/// random port), as fastd does, and reconnects from it.
#[test]
fn reconnect_after_loss_uses_a_new_socket() {
    if !prerequisites() {
        return;
    }
    let (a, b) = builders(METHOD, METHOD);
    let lan = Lan::new("ns", 2);
    let dir = TempDir::new("ns");
    let timings = Timings {
        peer_timeout: Duration::from_secs(3),
        keepalive: Duration::from_secs(1),
        ..Timings::default()
    };
    let (f, ours) = fastd_alpha_ours_anyremote(&lan, &dir, &a.render(), &b.render(), timings);
    lan.nodes[0].ip(&["link", "set", "eth0", "down"]);
    assert!(ours.wait_log(
        "connection with <alpha> disestablished.",
        Duration::from_secs(10)
    ));
    lan.nodes[0].ip(&["link", "set", "eth0", "up"]);
    let sessions = || f.log_text().matches("new session with <anyremote>").count();
    assert!(
        wait_until(Duration::from_secs(40), || sessions() >= 2),
        "{}\n{}",
        ours.log_text(),
        f.log_text()
    );
    // fastd saw us from two different ports.
    let ports: std::collections::BTreeSet<String> = f
        .log_text()
        .lines()
        .filter(|l| l.contains("received handshake from <anyremote>["))
        .filter_map(|l| {
            let inner = l.split('[').nth(1)?.split(']').next()?;
            Some(inner.to_owned())
        })
        .collect();
    assert!(ports.len() >= 2, "{ports:?}\n{}", f.log_text());
    assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
}

/// The hook environment the engine hands to the privileged side (docs/config.md §4.3): `up` with
/// the interface, `connect` with the contacted address and the per-connection socket's own
/// address, `establish` with the real local address and port, `disestablish` at shutdown.
#[test]
fn hook_environment() {
    use worker::config::HookKind;
    if !prerequisites() {
        return;
    }
    let keys = keypairs();
    let (a, mut b) = builders(METHOD, METHOD);
    b.extra = "on connect \"true\";\non establish \"true\";\non disestablish \"true\";\n".into();
    let lan = Lan::new("he", 2);
    let dir = TempDir::new("he");
    let (_f, ours) =
        fastd_alpha_ours_anyremote(&lan, &dir, &a.render(), &b.render(), Timings::default());
    std::thread::sleep(Duration::from_millis(300));
    let hooks = ours.hooks.clone();
    ours.stop().unwrap();
    let calls = hooks.lock().unwrap().clone();
    let kinds: Vec<HookKind> = calls.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            HookKind::Up,
            HookKind::Connect,
            HookKind::Establish,
            HookKind::Disestablish
        ],
        "{calls:?}"
    );
    let alpha_key = worker::config::decode_hex32(keys[0].1.as_bytes()).unwrap();
    let up = &calls[0].env;
    assert_eq!(up.interface.as_deref(), Some("vpngateway"));
    assert_eq!(up.interface_mtu, Some(1448));
    assert_eq!(up.peer_key, Some(alpha_key));
    assert_eq!(up.remote, None);
    let connect = &calls[1].env;
    assert_eq!(connect.remote, Some("198.51.100.1:10000".parse().unwrap()));
    let local = connect.local.expect("LOCAL_ADDRESS for connect");
    assert!(local.ip().is_unspecified() && local.port() != 0, "{local}");
    let est = &calls[2].env;
    assert_eq!(est.peer_name.as_deref(), Some("alpha"));
    assert_eq!(est.remote, Some("198.51.100.1:10000".parse().unwrap()));
    assert_eq!(
        est.local,
        Some(std::net::SocketAddr::new(
            "198.51.100.2".parse().unwrap(),
            local.port()
        ))
    );
    assert_eq!(est.interface.as_deref(), Some("vpngateway"));
    assert!(est.local_key.is_some());
    assert_eq!(calls[3].env.remote, est.remote);
}

/// Garbage from one peer's address is counted on that peer only; another peer's traffic is
/// unaffected.
#[test]
fn garbage_from_one_peer_does_not_affect_another() {
    if !prerequisites() {
        return;
    }
    let (lan, _dir, ours, _fastds) = ours_tap_hub_two_fastd("iso", "");
    let cap = lan.nodes[0].spawn(|| {
        capture_udp_from(
            "eth0",
            [198, 51, 100, 2],
            10000,
            Duration::from_secs(10),
            |p| p.len() > 24 + 20 && p[0] == 0,
        )
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
    let frame = cap.join().unwrap().expect("no data packet captured");
    let junk: Vec<Vec<u8>> = (0..200u32)
        .map(|i| {
            let mut p = vec![(i % 3) as u8; 24 + (i as usize % 200)];
            p[0] = 0;
            p[1] = (i % 2) as u8;
            with_payload(&frame, &p)
        })
        .collect();
    let flood = lan.nodes[1].spawn(move || inject_all("eth0", &junk));
    assert_tunnel(&lan.nodes[2], "172.16.16.1", 56);
    flood.join().unwrap();
    assert_tunnel(&lan.nodes[2], "172.16.16.1", 1000);
    std::thread::sleep(Duration::from_millis(300));
    let st = ours.status();
    let b = st.iter().find(|p| p.name.as_deref() == Some("b")).unwrap();
    let c = st.iter().find(|p| p.name.as_deref() == Some("c")).unwrap();
    assert!(b.drops.total() >= 150, "{:?}", b.drops);
    assert_eq!(c.drops.total(), 0, "{:?}", c.drops);
    assert!(b.established && c.established);
}

/// Our node connecting in tap mode to a real fastd in multitap mode (tap and multitap talk to
/// each other).
#[test]
fn tap_connecting_to_multitap_fastd() {
    if !prerequisites() {
        return;
    }
    ours_connecting_to_multitap_fastd("tm", "tap");
}

/// `peer limit 1`: of two real fastd peers only one gets a session with our node.
#[test]
fn peer_limit_caps_established_peers() {
    if !prerequisites() {
        return;
    }
    let (_lan, _dir, ours, fastds) =
        ours_tap_hub("pl", "peer limit 1;\n", Duration::from_millis(300));
    assert!(fastds[0].wait_log(
        "connection with <alpha> established",
        Duration::from_secs(10)
    ));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !fastds[1]
            .log_text()
            .contains("connection with <alpha> established"),
        "{}",
        fastds[1].log_text()
    );
    let st = ours.status();
    assert_eq!(st.iter().filter(|p| p.established).count(), 1, "{st:?}");
}
