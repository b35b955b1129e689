//! Our engine against the real fastd v22 in TUN mode, the tutorial's setup: alpha listens on
//! 198.51.100.1:10000, anyremote connects; tunnel 172.16.16.1 <-> 172.16.16.2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod interop_support;

use std::time::Duration;

use interop_support::ours::Ours;
use interop_support::*;
use worker::engine::{DropReason, Timings};

const ALPHA: &str = "172.16.16.1";
const REMOTE: &str = "172.16.16.2";

struct Pair {
    lan: Lan,
    _dir: TempDir,
    ours: Ours,
    fastd: Fastd,
}

/// `ours_listens`: our engine is alpha (bind, passive) and fastd is anyremote, or the reverse.
fn pair(method: &str, ours_listens: bool) -> Pair {
    let lan = Lan::new("t", 2);
    let dir = TempDir::new("t");
    let a = ConfBuilder::alpha("tun", method).render();
    let b = ConfBuilder::anyremote("tun", method).render();
    let (ours, fastd) = if ours_listens {
        let o = Ours::start(&lan.nodes[0], &a, Timings::default());
        let f = Fastd::start(&lan.nodes[1], &dir, "anyremote", &b);
        (o, f)
    } else {
        let f = Fastd::start(&lan.nodes[0], &dir, "alpha", &a);
        std::thread::sleep(Duration::from_millis(200));
        let o = Ours::start(&lan.nodes[1], &b, Timings::default());
        (o, f)
    };
    Pair {
        lan,
        _dir: dir,
        ours,
        fastd,
    }
}

fn full_check(method: &str, ours_listens: bool) {
    let p = pair(method, ours_listens);
    let peer = if ours_listens {
        "<alpha>"
    } else {
        "<anyremote>"
    };
    let up = p.fastd.wait_log(
        &format!("connection with {peer} established"),
        Duration::from_secs(10),
    );
    assert!(
        up,
        "no session\nfastd:\n{}\nours:\n{}",
        p.fastd.log_text(),
        p.ours.log_text()
    );
    let (ours_ns, fastd_ns, ours_ip, fastd_ip) = if ours_listens {
        (&p.lan.nodes[0], &p.lan.nodes[1], ALPHA, REMOTE)
    } else {
        (&p.lan.nodes[1], &p.lan.nodes[0], REMOTE, ALPHA)
    };
    assert_tunnel_or(fastd_ns, ours_ip, 56, || {
        format!("ping fastd->ours\n{}", p.ours.log_text())
    });
    assert_tunnel_or(ours_ns, fastd_ip, 56, || "ping ours->fastd".into());
    assert_tunnel_or(ours_ns, fastd_ip, 1400, || "big ping ours->fastd".into());
    tcp_echo(
        ours_ns,
        fastd_ns,
        format!("{ours_ip}:5001").parse().unwrap(),
        10 << 20,
        Duration::from_secs(60),
    )
    .unwrap();
    let errs = packet_errors(&p.fastd.log_text());
    assert!(errs.is_empty(), "fastd logged packet errors: {errs:?}");
    let status = p.ours.stop().unwrap();
    let s = &status[0];
    assert_eq!(s.method.as_deref(), Some(method));
    assert_eq!(s.drops.get(DropReason::Auth), 0, "{:?}", s.drops);
    assert!(s.traffic.rx_bytes > 10 << 20);
}

/// One test per method (docs/config.md §1.11) and role.
macro_rules! method_tests {
    ($($name:ident => $method:expr),* $(,)?) => {
        mod ours_listening {
            $(
                #[test]
                fn $name() {
                    if !super::prerequisites() {
                        return;
                    }
                    super::full_check($method, true);
                }
            )*
        }
        mod ours_connecting {
            $(
                #[test]
                fn $name() {
                    if !super::prerequisites() {
                        return;
                    }
                    super::full_check($method, false);
                }
            )*
        }
    };
}

method_tests! {
    null => "null",
    null_l2tp => "null@l2tp",
    aes128_gcm => "aes128-gcm",
    salsa20_gmac => "salsa20+gmac",
    salsa2012_gmac => "salsa2012+gmac",
    aes128_ctr_umac => "aes128-ctr+umac",
    salsa20_umac => "salsa20+umac",
    salsa2012_umac => "salsa2012+umac",
    aes128_ctr_poly1305 => "aes128-ctr+poly1305",
    salsa20_poly1305 => "salsa20+poly1305",
    salsa2012_poly1305 => "salsa2012+poly1305",
    null_aes128_gmac => "null+aes128-gmac",
    null_salsa20_gmac => "null+salsa20+gmac",
    null_salsa2012_gmac => "null+salsa2012+gmac",
    null_aes128_ctr_umac => "null+aes128-ctr+umac",
    null_salsa20_umac => "null+salsa20+umac",
    null_salsa2012_umac => "null+salsa2012+umac",
}
