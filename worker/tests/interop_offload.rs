//! Offloads end to end: 100 MiB of TCP through ours<->fastd (both directions) and
//! ours<->ours arrive intact, with TUN devices that hand the engine TSO super-packets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod interop_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use interop_support::ours::Ours;
use interop_support::*;
use sha2::{Digest, Sha256};
use worker::engine::Timings;

const BYTES: usize = 100 << 20;
const PORT: u16 = 5001;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Fastd,
    Ours,
}

enum Daemon {
    Fastd(Fastd),
    Ours(Ours),
}

impl Daemon {
    fn log(&self) -> String {
        match self {
            Daemon::Fastd(f) => f.log_text(),
            Daemon::Ours(o) => o.log_text(),
        }
    }
}

fn start(side: Side, ns: &Netns, dir: &TempDir, name: &str, conf: &str) -> Daemon {
    match side {
        Side::Fastd => Daemon::Fastd(Fastd::start(ns, dir, name, conf)),
        Side::Ours => Daemon::Ours(Ours::start(ns, conf, Timings::default())),
    }
}

/// Deterministic bytes (xorshift), so no file of 100 MiB is needed on either side.
fn fill(state: &mut u64, buf: &mut [u8]) {
    for c in buf.chunks_mut(8) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let b = state.to_le_bytes();
        c.copy_from_slice(&b[..c.len()]);
    }
}

/// Sends [`BYTES`] from node 1 (`sender`) to node 0 (`receiver`) through the tunnel; returns
/// the (sent, received) SHA-256 and byte counts.
fn transfer(sender: Side, receiver: Side) {
    let keys = keypairs();
    let lan = Lan::new("of", 2);
    let dir = TempDir::new("of");
    let mut a = ConfBuilder::new("tun", "salsa2012+umac", &keys[0].0, "172.16.16.1/24");
    a.bind = Some("198.51.100.1:10000".into());
    let a = a.peer("anyremote", &keys[1].1, None).render();
    let b = ConfBuilder::new("tun", "salsa2012+umac", &keys[1].0, "172.16.16.2/24")
        .peer("alpha", &keys[0].1, Some("198.51.100.1:10000"))
        .render();
    let d0 = start(receiver, &lan.nodes[0], &dir, "alpha", &a);
    std::thread::sleep(Duration::from_millis(200));
    let d1 = start(sender, &lan.nodes[1], &dir, "anyremote", &b);
    assert!(
        ping(
            &lan.nodes[1],
            "172.16.16.1".parse().unwrap(),
            56,
            Duration::from_secs(10)
        )
        .is_some(),
        "no session:\n{}\n{}",
        d0.log(),
        d1.log()
    );
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = lan.nodes[0].spawn(move || {
        let l = TcpListener::bind(("172.16.16.1", PORT)).unwrap();
        ready_tx.send(()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0usize;
        // Bounded: every turn reads at least one byte or ends (EOF, timeout error).
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => {
                    h.update(&buf[..k]);
                    n += k;
                }
                Err(e) => panic!("receive after {n} bytes: {e}"),
            }
        }
        (h.finalize().to_vec(), n)
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let client = lan.nodes[1].spawn(move || {
        let dst: SocketAddr = ([172, 16, 16, 1], PORT).into();
        let mut s = TcpStream::connect_timeout(&dst, Duration::from_secs(10)).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut h = Sha256::new();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0usize;
        while n < BYTES {
            let k = buf.len().min(BYTES - n);
            fill(&mut state, &mut buf[..k]);
            h.update(&buf[..k]);
            s.write_all(&buf[..k]).unwrap();
            n += k;
        }
        (h.finalize().to_vec(), n)
    });
    let sent = client.join().expect("sender");
    let got = server.join().expect("receiver");
    assert_eq!(got.1, BYTES, "{sender:?}->{receiver:?}: bytes received");
    assert_eq!(got, sent, "{sender:?}->{receiver:?}: checksum");
    // The path under test: our TUN devices carried virtio-net headers with TSO.
    for (side, d) in [(sender, &d1), (receiver, &d0)] {
        if side == Side::Ours {
            let log = d.log();
            assert!(log.contains("virtio-net header, offloads 0x"), "{log}");
        }
    }
    drop((d1, d0));
}

#[test]
fn tcp_100mib_ours_to_ours_keeps_its_checksum() {
    if !prerequisites() {
        return;
    }
    transfer(Side::Ours, Side::Ours);
}

#[test]
fn tcp_100mib_ours_to_fastd_keeps_its_checksum() {
    if !prerequisites() {
        return;
    }
    transfer(Side::Ours, Side::Fastd);
}

#[test]
fn tcp_100mib_fastd_to_ours_keeps_its_checksum() {
    if !prerequisites() {
        return;
    }
    transfer(Side::Fastd, Side::Ours);
}
