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
    let lan = Lan::new("b", 2);
    let dir = TempDir::new("b");
    let a = ConfBuilder::alpha("tun", "salsa2012+umac");
    let b = ConfBuilder::anyremote("tun", "salsa2012+umac");
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
    assert_tunnel(&lan.nodes[1], "172.16.16.1", 56);
    assert_tunnel(&lan.nodes[0], "172.16.16.2", 1400);
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
