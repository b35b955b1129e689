//! Two engines talking over loopback UDP, with socket pairs standing in for the TUN devices:
//! the whole engine (handshake, sessions, batching, in-place crypto, keepalives, drops) runs
//! in every `cargo test`, without root or namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::config::{Loader, MemSource};

/// Interfaces are datagram socket pairs: the engine gets one end, the test keeps the other.
struct PairProvider {
    ends: Arc<Mutex<Vec<UnixDatagram>>>,
}

impl Provider for PairProvider {
    fn open_iface(&mut self, req: &IfaceRequest) -> std::io::Result<Iface> {
        let (ours, theirs) = UnixDatagram::pair()?;
        theirs.set_read_timeout(Some(Duration::from_millis(5)))?;
        self.ends.lock().unwrap().push(theirs);
        Ok(Iface {
            fd: OwnedFd::from(ours),
            name: req.name.clone().unwrap_or_else(|| "tun-test".into()),
        })
    }

    fn peer_socket(&mut self, _peer: PeerId, _remote: SocketAddr) -> std::io::Result<OwnedFd> {
        Ok(OwnedFd::from(UdpSocket::bind("127.0.0.1:0")?))
    }

    fn run_hook(&mut self, _call: &HookCall) -> std::io::Result<()> {
        Ok(())
    }
}

fn keys() -> Vec<(String, String)> {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors/keys.txt");
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split_whitespace();
            (it.next().unwrap().to_owned(), it.next().unwrap().to_owned())
        })
        .collect()
}

fn config(text: &str) -> Config {
    let src = MemSource::new().with_file("/fastd.conf", text);
    let mut l = Loader::new(&src);
    l.load_file(Path::new("/fastd.conf")).unwrap();
    l.finish().0
}

struct Node {
    engine: Engine<PairProvider>,
    ends: Arc<Mutex<Vec<UnixDatagram>>>,
    logs: Arc<Mutex<Vec<String>>>,
}

fn node(text: &str, sock: Option<UdpSocket>, timings: Timings) -> Node {
    let cfg = config(text);
    let ends = Arc::new(Mutex::new(Vec::new()));
    let provider = PairProvider { ends: ends.clone() };
    let (log, logs) = Logger::memory(LogLevel::Debug2);
    let desc = Descriptors {
        sockets: sock
            .map(|s| {
                let addr = s.local_addr().unwrap();
                BoundSocket {
                    fd: OwnedFd::from(s),
                    addr,
                }
            })
            .into_iter()
            .collect(),
        tap: None,
    };
    Node {
        engine: Engine::new(&cfg, desc, provider, log, timings).unwrap(),
        ends,
        logs,
    }
}

fn pump(nodes: &mut [&mut Node], until: impl Fn(&[&mut Node]) -> bool, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        for n in nodes.iter_mut() {
            n.engine.poll_once(Duration::from_millis(2)).unwrap();
        }
        if until(nodes) {
            return true;
        }
    }
    false
}

fn pair(method: &str, timings: Timings) -> (Node, Node) {
    let k = keys();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let a = format!(
        "mode tun; interface \"a\"; method \"{method}\"; secret \"{}\"; mtu 1400;\npeer \"b\" {{ key \"{}\"; }}\n",
        k[0].0, k[1].1
    );
    let b = format!(
        "mode tun; interface \"b\"; method \"{method}\"; secret \"{}\"; mtu 1400;\npeer \"a\" {{ key \"{}\"; remote 127.0.0.1:{port}; }}\n",
        k[1].0, k[0].1
    );
    (node(&a, Some(sock), timings), node(&b, None, timings))
}

fn established(n: &Node) -> bool {
    n.engine
        .peer_status()
        .first()
        .is_some_and(|p| p.established)
}

fn send_through(from: &Node, payload: &[u8]) {
    from.ends.lock().unwrap()[0].send(payload).unwrap();
}

fn recv_at(n: &Node) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 70000];
    let ends = n.ends.lock().unwrap();
    match ends[0].recv(&mut buf) {
        Ok(len) => Some(buf[..len].to_vec()),
        Err(_) => None,
    }
}

#[test]
fn two_engines_establish_and_carry_packets() {
    for method in [
        "salsa2012+umac",
        "aes128-gcm",
        "null",
        "null@l2tp",
        "salsa20+poly1305",
    ] {
        let (mut a, mut b) = pair(method, Timings::default());
        let ok = pump(
            &mut [&mut a, &mut b],
            |n| established(n[0]) && established(n[1]),
            Duration::from_secs(5),
        );
        assert!(
            ok,
            "{method}: {:?}\n{:?}",
            a.logs.lock().unwrap(),
            b.logs.lock().unwrap()
        );
        for size in [1usize, 100, 1400] {
            let pkt: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
            send_through(&b, &pkt);
            let mut got = None;
            let end = Instant::now() + Duration::from_secs(2);
            while got.is_none() && Instant::now() < end {
                b.engine.poll_once(Duration::from_millis(2)).unwrap();
                a.engine.poll_once(Duration::from_millis(2)).unwrap();
                got = recv_at(&a);
            }
            assert_eq!(got.as_deref(), Some(&pkt[..]), "{method} size {size}");
        }
        // And back, a burst larger than one sendmmsg batch.
        for i in 0..100u8 {
            a.ends.lock().unwrap()[0].send(&[i; 64]).unwrap();
        }
        let mut seen = Vec::new();
        let end = Instant::now() + Duration::from_secs(3);
        while seen.len() < 100 && Instant::now() < end {
            a.engine.poll_once(Duration::from_millis(2)).unwrap();
            b.engine.poll_once(Duration::from_millis(2)).unwrap();
            while let Some(p) = recv_at(&b) {
                seen.push(p[0]);
            }
        }
        assert_eq!(seen, (0..100).collect::<Vec<u8>>(), "{method}");
        let st = a.engine.peer_status();
        assert_eq!(st[0].method.as_deref(), Some(method));
        assert_eq!(st[0].drops.total(), 0, "{:?}", st[0].drops);
    }
}

#[test]
fn peer_timeout_resets_a_silent_peer() {
    let timings = Timings {
        peer_timeout: Duration::from_millis(300),
        keepalive: Duration::from_secs(20),
        ..Timings::default()
    };
    let (mut a, mut b) = pair("salsa2012+umac", timings);
    assert!(pump(
        &mut [&mut a, &mut b],
        |n| established(n[0]) && established(n[1]),
        Duration::from_secs(5)
    ));
    // Only `a` runs: `b` is silent, so `a` resets it.
    assert!(pump(
        &mut [&mut a],
        |n| !established(n[0]),
        Duration::from_secs(3)
    ));
    let logs = a.logs.lock().unwrap().join("\n");
    assert!(
        logs.contains("connection with <b> disestablished."),
        "{logs}"
    );
}

#[test]
fn data_and_garbage_from_strangers_are_dropped_without_handshake() {
    let (mut a, mut b) = pair("salsa2012+umac", Timings::default());
    assert!(pump(
        &mut [&mut a, &mut b],
        |n| established(n[0]) && established(n[1]),
        Duration::from_secs(5)
    ));
    let stranger = UdpSocket::bind("127.0.0.2:0")
        .or_else(|_| UdpSocket::bind("127.0.0.1:0"))
        .unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let dst = a
        .engine
        .sockets
        .iter()
        .flatten()
        .next()
        .unwrap()
        .bound
        .unwrap();
    for junk in [
        &[0u8][..],
        &[0x02; 10],
        &[0xC8, 0x03],
        &[0xff; 40],
        &[0x01; 3],
    ] {
        stranger.send_to(junk, dst).unwrap();
    }
    pump(&mut [&mut a], |_| false, Duration::from_millis(100));
    let mut buf = [0u8; 2048];
    // `b` has a remote, `a`'s only peer floats: a short packet never triggers a handshake.
    assert!(stranger.recv_from(&mut buf).is_err());
    assert!(
        a.engine.global_drops().total() >= 4,
        "{:?}",
        a.engine.global_drops()
    );
    assert!(established(&a));
}

#[test]
fn keepalives_flow_when_idle() {
    let timings = Timings {
        keepalive: Duration::from_millis(100),
        peer_timeout: Duration::from_millis(600),
        ..Timings::default()
    };
    let (mut a, mut b) = pair("salsa2012+umac", timings);
    assert!(pump(
        &mut [&mut a, &mut b],
        |n| established(n[0]) && established(n[1]),
        Duration::from_secs(5)
    ));
    // Idle for three peer timeouts: keepalives keep both sides up.
    pump(
        &mut [&mut a, &mut b],
        |_| false,
        Duration::from_millis(1800),
    );
    assert!(established(&a) && established(&b));
    let logs = a.logs.lock().unwrap().join("\n");
    assert!(!logs.contains("disestablished"), "{logs}");
}
