//! `rx_reordered` with packets from the real fastd v22 that arrive out of order: a UDP relay
//! between fastd and our node swaps pairs of data packets. fastd itself, behind the same
//! relay, counted 50 of 100 swapped 128-byte pings as `rx_reordered` (6400 bytes) and all of
//! them in `rx`; ours must count the same way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod interop_support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use interop_support::ours::Ours;
use interop_support::*;
use worker::engine::Timings;

const METHOD: &str = "salsa2012+umac";

/// Relays between `outer` (where fastd sends) and `target` (our node). The test's data
/// packets from fastd (152 bytes on the wire) are delivered pairwise swapped, everything else
/// (handshakes, keepalives, the kernel's own small packets) as it comes; returns how many
/// pairs were swapped.
fn relay(outer: UdpSocket, target: SocketAddr, stop: Arc<AtomicBool>) -> u64 {
    let inner = UdpSocket::bind(SocketAddr::new(target.ip(), 0)).unwrap();
    outer.set_nonblocking(true).unwrap();
    inner.set_nonblocking(true).unwrap();
    let mut client = None;
    let mut held: Option<Vec<u8>> = None;
    let mut swapped = 0;
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let mut idle = true;
        if let Ok((n, from)) = outer.recv_from(&mut buf) {
            idle = false;
            client = Some(from);
            let pkt = &buf[..n];
            // v22 data packets start with 0x00; 24 bytes of method header.
            let big = pkt[0] == 0x00 && n == 24 + 128;
            match (big, held.take()) {
                (true, None) => held = Some(pkt.to_vec()),
                (true, Some(first)) => {
                    inner.send_to(pkt, target).unwrap();
                    inner.send_to(&first, target).unwrap();
                    swapped += 1;
                }
                (false, h) => {
                    held = h;
                    inner.send_to(pkt, target).unwrap();
                }
            }
        }
        if let (Ok((n, _)), Some(c)) = (inner.recv_from(&mut buf), client) {
            idle = false;
            outer.send_to(&buf[..n], c).unwrap();
        }
        if idle {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    swapped
}

#[test]
fn reordered_packets_from_fastd_count_in_rx_and_rx_reordered() {
    if !prerequisites() {
        return;
    }
    let keys = keypairs();
    let lan = Lan::new("ro", 2);
    let dir = TempDir::new("ro");
    let mut a = ConfBuilder::new("tun", METHOD, &keys[0].0, "172.16.16.1/24");
    a.bind = Some("198.51.100.1:10000".into());
    let a = a.peer("beta", &keys[1].1, None).render();
    let b = ConfBuilder::new("tun", METHOD, &keys[1].0, "172.16.16.2/24")
        .peer("alpha", &keys[0].1, Some("198.51.100.1:20000"))
        .render();
    let stop = Arc::new(AtomicBool::new(false));
    let swapped = Arc::new(AtomicU64::new(0));
    let relay_thread = {
        let (stop, swapped) = (stop.clone(), swapped.clone());
        lan.nodes[0].spawn(move || {
            let outer = UdpSocket::bind("198.51.100.1:20000").unwrap();
            let n = relay(outer, "198.51.100.1:10000".parse().unwrap(), stop);
            swapped.store(n, Ordering::SeqCst);
        })
    };
    let ours = Ours::start(&lan.nodes[0], &a, Timings::default());
    let fastd = Fastd::start(&lan.nodes[1], &dir, "beta", &b);
    assert!(
        ours.wait_log(
            "connection with <beta> established",
            Duration::from_secs(15)
        ),
        "{}\n{}",
        fastd.log_text(),
        ours.log_text()
    );
    // 100 UDP datagrams of 100 bytes through the tunnel: IP packets of 128 bytes.
    lan.nodes[1].run_in(|| {
        let s = UdpSocket::bind("172.16.16.2:0").unwrap();
        for i in 0..100u8 {
            s.send_to(&[i; 100], "172.16.16.1:9").unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let end = Instant::now() + Duration::from_secs(5);
    let rx = || ours.status().first().map(|p| p.traffic).unwrap_or_default();
    while rx().rx_packets < 100 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    relay_thread.join().unwrap();
    let swapped = swapped.load(Ordering::SeqCst);
    let t = rx();
    assert_eq!(swapped, 50);
    // Everything counts in `rx` (the kernel may add a small packet of its own).
    assert!(t.rx_packets >= 100 && t.rx_bytes >= 100 * 128, "{t:?}");
    assert_eq!(
        (t.rx_reordered_packets, t.rx_reordered_bytes),
        (swapped, swapped * 128),
        "{t:?}"
    );
}
