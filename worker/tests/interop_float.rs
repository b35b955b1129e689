//! A client whose own underlay address changes mid-session: our client's
//! sends must stop naming the vanished source address, reach the gateway from the new one,
//! and the session must come back long before the 90 s peer timeout, with the real fastd or
//! our engine as the gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod interop_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use interop_support::ours::{fastd_alpha_ours_anyremote, Ours};
use interop_support::*;
use worker::engine::{Timings, Traffic};

const METHOD: &str = "salsa2012+umac";
/// Well below the 90 s peer timeout: recovery must not wait for it.
const RECOVERY: Duration = Duration::from_secs(40);
const NEW_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 3);

/// alpha = the gateway (listens on .1), anyremote = the client (starts on .2).
fn builders() -> (ConfBuilder, ConfBuilder) {
    builders_at(GATEWAY)
}

/// The same with the gateway at `gateway` (`addr:port`, `[v6]:port`).
fn builders_at(gateway: &str) -> (ConfBuilder, ConfBuilder) {
    // The tutorial's key pairs (the same as the end-to-end tests').
    (
        ConfBuilder::alpha_at("tun", METHOD, gateway, ALPHA_SECRET, AR_PUBLIC),
        ConfBuilder::anyremote_of("tun", METHOD, gateway, AR_SECRET, ALPHA_PUBLIC),
    )
}

/// Moves the client's underlay address 198.51.100.2 -> .3 on the same segment. With
/// promote_secondaries the new address (and its subnet route) survives removing the old
/// primary one, so the gateway stays reachable.
fn move_client_address(client: &Netns) {
    let out = client
        .command("sh")
        .args([
            "-c",
            "echo 1 > /proc/sys/net/ipv4/conf/eth0/promote_secondaries",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    client.ip(&["addr", "add", "198.51.100.3/24", "dev", "eth0"]);
    client.ip(&["addr", "del", "198.51.100.2/24", "dev", "eth0"]);
}

/// The other order: the old address goes first, so for a while the client has no address
/// at all and its sends fail even without a pinned source (fastd's `tx_error`); then the new
/// one comes.
fn drop_then_add_client_address(client: &Netns, in_between: impl FnOnce()) {
    client.ip(&["addr", "del", "198.51.100.2/24", "dev", "eth0"]);
    in_between();
    client.ip(&["addr", "add", "198.51.100.3/24", "dev", "eth0"]);
}

fn peer_traffic(o: &Ours, name: &str) -> Traffic {
    o.status()
        .iter()
        .find(|p| p.name.as_deref() == Some(name))
        .map(|p| p.traffic)
        .expect("peer in status")
}

/// Pings alpha's tunnel address from the client until a reply comes (bounded by
/// [`RECOVERY`]); returns how long that took.
fn pings_resume(lan: &Lan) -> Option<Duration> {
    let start = Instant::now();
    tunnel_within(&lan.nodes[1], "172.16.16.1", 56, RECOVERY).then(|| start.elapsed())
}

/// [`pings_resume`], which must succeed; `what` names the roles in the figure printed.
fn assert_pings_resume(lan: &Lan, what: &str, logs: impl FnOnce() -> String) {
    let took = pings_resume(lan);
    eprintln!("{what}: pings resumed after {took:?}");
    assert!(
        took.is_some(),
        "no ping within {RECOVERY:?} after the move\n{}",
        logs()
    );
}

fn tunnel_up(lan: &Lan) {
    assert_tunnel_or(&lan.nodes[1], "172.16.16.1", 56, || {
        "no ping before the move".into()
    });
}

/// Gateway = real fastd, client = ours.
#[test]
fn client_address_change_with_fastd_gateway() {
    if !prerequisites() {
        return;
    }
    let (a, b) = builders();
    let lan = Lan::new("fl", 2);
    let dir = TempDir::new("fl");
    let (f, ours) =
        fastd_alpha_ours_anyremote(&lan, &dir, &a.render(), &b.render(), Timings::default());
    tunnel_up(&lan);
    move_client_address(&lan.nodes[1]);
    assert_pings_resume(&lan, "ours as client, fastd as gateway", || {
        format!("{}\n{}", ours.log_text(), f.log_text())
    });
    assert!(
        f.log_text().contains("198.51.100.3:"),
        "fastd never heard from the new address\n{}",
        f.log_text()
    );
    // Sent again without the stale source, they left: `tx`, no `tx_error` (as fastd counts).
    let t = peer_traffic(&ours, "alpha");
    assert_eq!(t.tx_error_packets, 0, "{t:?}");
    assert!(t.tx_packets > 0, "{t:?}");
}

/// Gateway = ours, client = ours: the gateway's status shows the client at its new address.
#[test]
fn client_address_change_with_our_gateway() {
    if !prerequisites() {
        return;
    }
    let (a, b) = builders();
    let lan = Lan::new("fo", 2);
    let gw = Ours::start(&lan.nodes[0], &a.render(), Timings::default());
    let ours = Ours::start(&lan.nodes[1], &b.render(), Timings::default());
    assert!(
        gw.wait_log(
            "connection with <anyremote> established",
            Duration::from_secs(10)
        ),
        "{}\n{}",
        ours.log_text(),
        gw.log_text()
    );
    tunnel_up(&lan);
    // The status copy is refreshed every 100 ms.
    std::thread::sleep(Duration::from_millis(300));
    let before = peer_traffic(&ours, "alpha");
    drop_then_add_client_address(&lan.nodes[1], || {
        // Without any address the sends fail even unpinned: counted as `tx_error`, not `tx`.
        let reply = ping(
            &lan.nodes[1],
            "172.16.16.1".parse().unwrap(),
            56,
            Duration::from_millis(300),
        );
        assert!(reply.is_none());
        assert!(wait_until(Duration::from_secs(2), || {
            peer_traffic(&ours, "alpha").tx_error_packets > 0
        }));
    });
    let failed = peer_traffic(&ours, "alpha");
    assert_eq!(failed.tx_packets, before.tx_packets, "{failed:?}");
    assert!(failed.tx_error_bytes > 0, "{failed:?}");
    assert_pings_resume(&lan, "ours as client, ours as gateway", || {
        format!("{}\n{}", ours.log_text(), gw.log_text())
    });
    // The gateway floats the peer to its new address (its status is refreshed every 100 ms).
    let want = IpAddr::V4(NEW_ADDR);
    let end = Instant::now() + Duration::from_secs(2);
    let mut addr: Option<SocketAddr> = None;
    while Instant::now() < end {
        addr = gw
            .status()
            .iter()
            .find(|p| p.name.as_deref() == Some("anyremote"))
            .and_then(|p| p.addr);
        if addr.map(|a| a.ip()) == Some(want) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(addr.map(|a| a.ip()), Some(want), "{}", gw.log_text());
}

/// For comparison (and the report's figure): the real fastd as the client does recover.
#[test]
fn fastd_client_address_change_with_fastd_gateway() {
    if !prerequisites() {
        return;
    }
    let (a, b) = builders();
    let lan = Lan::new("ff", 2);
    let dir = TempDir::new("ff");
    let f = Fastd::start(&lan.nodes[0], &dir, "alpha", &a.render());
    std::thread::sleep(Duration::from_millis(200));
    let c = Fastd::start(&lan.nodes[1], &dir, "anyremote", &b.render());
    assert!(f.wait_log(
        "connection with <anyremote> established",
        Duration::from_secs(10)
    ));
    tunnel_up(&lan);
    move_client_address(&lan.nodes[1]);
    assert_pings_resume(&lan, "fastd as client, fastd as gateway", || {
        format!("{}\n{}", c.log_text(), f.log_text())
    });
}

/// IPv6 underlay (IPV6_PKTINFO, refused with EINVAL): the client moves 2001:db8::2 -> ::3;
/// gateway = real fastd.
#[test]
fn client_v6_address_change_with_fastd_gateway() {
    if !prerequisites() {
        return;
    }
    let (a, b) = builders_at("[2001:db8::1]:10000");
    let lan = Lan::new("f6", 2);
    for (i, ns) in lan.nodes.iter().enumerate() {
        ns.ip(&[
            "addr",
            "add",
            &format!("2001:db8::{}/64", i + 1),
            "dev",
            "eth0",
            "nodad",
        ]);
    }
    let dir = TempDir::new("f6");
    let (f, ours) =
        fastd_alpha_ours_anyremote(&lan, &dir, &a.render(), &b.render(), Timings::default());
    tunnel_up(&lan);
    let client = &lan.nodes[1];
    client.ip(&["addr", "add", "2001:db8::3/64", "dev", "eth0", "nodad"]);
    client.ip(&["addr", "del", "2001:db8::2/64", "dev", "eth0"]);
    assert_pings_resume(&lan, "ours as client over IPv6, fastd as gateway", || {
        format!("{}\n{}", ours.log_text(), f.log_text())
    });
    assert!(
        f.log_text().contains("[2001:db8::3]:"),
        "fastd never heard from the new address\n{}",
        f.log_text()
    );
}
