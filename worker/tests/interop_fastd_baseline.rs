//! The harness itself, proven with two real fastd: if this fails, the environment (not our
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! engine) is broken.

mod interop_support;

use interop_support::*;
use std::time::Duration;

#[test]
fn fastd_to_fastd_tun_salsa2012_umac() {
    if !prerequisites() {
        return;
    }
    let keys = keypairs();
    let (alpha_sec, alpha_pub) = &keys[0];
    let (any_sec, any_pub) = &keys[1];
    let lan = Lan::new("b", 2);
    let dir = TempDir::new("b");
    let mut a = ConfBuilder::new("tun", "salsa2012+umac", alpha_sec, "172.16.16.1/24");
    a.bind = Some("198.51.100.1:10000".into());
    let a = a.peer("anyremote", any_pub, None);
    let b = ConfBuilder::new("tun", "salsa2012+umac", any_sec, "172.16.16.2/24").peer(
        "alpha",
        alpha_pub,
        Some("198.51.100.1:10000"),
    );
    let fa = Fastd::start(&lan.nodes[0], &dir, "alpha", &a.render());
    let fb = Fastd::start(&lan.nodes[1], &dir, "anyremote", &b.render());
    assert!(
        fb.wait_log(
            "connection with <alpha> established",
            Duration::from_secs(10)
        ),
        "{}\n{}",
        fa.log_text(),
        fb.log_text()
    );
    assert!(ping(
        &lan.nodes[1],
        "172.16.16.1".parse().unwrap(),
        56,
        Duration::from_secs(5)
    )
    .is_some());
    assert!(ping(
        &lan.nodes[0],
        "172.16.16.2".parse().unwrap(),
        1400,
        Duration::from_secs(5)
    )
    .is_some());
    tcp_echo(
        &lan.nodes[0],
        &lan.nodes[1],
        "172.16.16.1:5001".parse().unwrap(),
        1 << 20,
        Duration::from_secs(20),
    )
    .unwrap();
    assert!(
        packet_errors(&fa.log_text()).is_empty(),
        "{}",
        fa.log_text()
    );
}
