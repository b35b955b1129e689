//! Two engines talking over loopback UDP, with socket pairs standing in for the TUN devices:
//! the whole engine (handshake, sessions, batching, in-place crypto, keepalives, drops) runs
//! in every `cargo test`, without root or namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::config::{Loader, MemSource};

/// Interfaces are datagram socket pairs: the engine gets one end, the test keeps the other.
/// `on verify` answers with `verdict` and counts its runs.
struct PairProvider {
    ends: Arc<Mutex<Vec<UnixDatagram>>>,
    /// Copies of the per-connection sockets handed out (a test may send from a peer's
    /// address with them).
    sockets: Arc<Mutex<Vec<UdpSocket>>>,
    verified: Arc<AtomicUsize>,
    verdict: Verdict,
    hooks: Arc<Mutex<HookSlots>>,
}

/// The privileged side's asynchronous hook slots, as the helper has them: `on connect`
/// hooks are slow (they keep their slot until the test frees them), the others end at once.
#[derive(Default)]
struct HookSlots {
    /// `None`: unlimited.
    cap: Option<usize>,
    running: usize,
    /// The hooks that were started, in order.
    ran: Vec<HookKind>,
    /// Answers "busy" given.
    busy: usize,
    /// Sessions reported up (with the peer's address and interface) and down, in order.
    sessions: Vec<(PeerId, Option<SessionUp>)>,
}

/// What `peer_up` reported: the peer's address and interface.
type SessionUp = (SocketAddr, Option<String>);

impl Provider for PairProvider {
    fn open_iface(&mut self, req: &IfaceRequest) -> std::io::Result<Iface> {
        let (ours, theirs) = UnixDatagram::pair()?;
        theirs.set_read_timeout(Some(Duration::from_millis(5)))?;
        self.ends.lock().unwrap().push(theirs);
        Ok(Iface {
            fd: OwnedFd::from(ours),
            name: req.name.clone().unwrap_or_else(|| "tun-test".into()),
            offload: None,
        })
    }

    fn peer_socket(&mut self, _peer: PeerId, _remote: SocketAddr) -> std::io::Result<OwnedFd> {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        self.sockets.lock().unwrap().push(s.try_clone()?);
        Ok(OwnedFd::from(s))
    }

    fn run_hook(&mut self, call: &HookCall) -> std::io::Result<()> {
        let mut h = self.hooks.lock().unwrap();
        if h.cap.is_some_and(|cap| h.running >= cap) {
            h.busy += 1;
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        if call.kind == HookKind::Connect {
            h.running += 1;
        }
        h.ran.push(call.kind);
        Ok(())
    }

    fn verify(&mut self, _env: &HookEnv) -> std::io::Result<Verdict> {
        self.verified.fetch_add(1, Ordering::SeqCst);
        Ok(self.verdict)
    }

    fn peer_up(&mut self, peer: PeerId, addr: SocketAddr, iface: Option<&str>) {
        let up = (addr, iface.map(str::to_owned));
        self.hooks.lock().unwrap().sessions.push((peer, Some(up)));
    }

    fn peer_down(&mut self, peer: PeerId) {
        self.hooks.lock().unwrap().sessions.push((peer, None));
    }
}

fn keys() -> Vec<(String, String)> {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/keys.txt");
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
    sockets: Arc<Mutex<Vec<UdpSocket>>>,
    hooks: Arc<Mutex<HookSlots>>,
    ends: Arc<Mutex<Vec<UnixDatagram>>>,
    logs: Arc<Mutex<Vec<String>>>,
    /// How often `on verify` ran.
    verified: Arc<AtomicUsize>,
}

fn node(text: &str, sock: Option<UdpSocket>, timings: Timings) -> Node {
    node_verifying(text, sock, timings, Verdict::Accepted)
}

fn node_verifying(text: &str, sock: Option<UdpSocket>, timings: Timings, verdict: Verdict) -> Node {
    let cfg = config(text);
    let ends = Arc::new(Mutex::new(Vec::new()));
    let verified = Arc::new(AtomicUsize::new(0));
    let sockets = Arc::new(Mutex::new(Vec::new()));
    let hooks = Arc::new(Mutex::new(HookSlots::default()));
    let provider = PairProvider {
        ends: ends.clone(),
        sockets: sockets.clone(),
        hooks: hooks.clone(),
        verified: verified.clone(),
        verdict,
    };
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
        sockets,
        hooks,
        ends,
        logs,
        verified,
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

/// Packet 1 of a handshake from `secret`'s key to the engine at `to` (which does not know
/// that key).
fn foreign_handshake(secret: &str, to_key: &str, to: SocketAddr) -> Vec<u8> {
    use crate::handshake::{HandshakeConfig, Mode as HsMode, PeerConfig as HsPeer};
    let now = Instant::now();
    let config = HandshakeConfig::new(
        crate::keys::SecretKey::from_hex(secret).unwrap(),
        HsMode::Tun,
        1400,
        vec!["salsa2012+umac".into()],
    );
    let mut peer = HsPeer::new(
        "gw",
        PublicKey::from_hex(to_key).unwrap(),
        vec!["salsa2012+umac".into()],
        1400,
    );
    peer.remotes = vec![to];
    let mut hs = Handshake::new(config, vec![peer], now);
    hs.handle_timeout(now)
        .into_iter()
        .filter_map(|o| match o {
            Output::Send { bytes, .. } => Some(bytes),
            Output::Event(_) => None,
        })
        .next_back()
        .unwrap()
}

/// Within one turn an established peer's data is handled before handshake work; handshakes
/// from strangers beyond the turn's budget wait for later turns, and only beyond the
/// queue's bound are they dropped and counted.
#[test]
fn data_goes_before_handshakes_and_handshakes_are_budgeted() {
    let (mut a, mut b) = pair("salsa2012+umac", Timings::default());
    assert!(pump(
        &mut [&mut a, &mut b],
        |n| established(n[0]) && established(n[1]),
        Duration::from_secs(5)
    ));
    let dst = a
        .engine
        .sockets
        .iter()
        .flatten()
        .next()
        .unwrap()
        .bound
        .unwrap();
    let k = keys();
    let flood = foreign_handshake(&k[2].0, &k[0].1, dst);
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    // One receive batch: handshakes first, then a (forged) data packet from `b`'s address,
    // which `a` must look at before any of the handshakes.
    let first = io::BATCH - 8;
    for _ in 0..first {
        stranger.send_to(&flood, dst).unwrap();
    }
    let from_b = b.sockets.lock().unwrap()[0].try_clone().unwrap();
    from_b.send_to(&[0x00; 64], dst).unwrap();
    let before = a.logs.lock().unwrap().len();
    a.engine.poll_once(Duration::from_millis(100)).unwrap();
    let logs = a.logs.lock().unwrap()[before..].to_vec();
    let data_at = logs
        .iter()
        .position(|l| l.contains("dropping packet from 0"))
        .unwrap_or_else(|| panic!("the forged data was not handled: {logs:?}"));
    let hs_at = logs
        .iter()
        .position(|l| l.contains("unknown key"))
        .unwrap_or_else(|| panic!("no handshake was handled: {logs:?}"));
    assert!(data_at < hs_at, "{logs:?}");
    let unknown = logs.iter().filter(|l| l.contains("unknown key")).count();
    assert_eq!(unknown, first, "{logs:?}");
    // More than a turn's budget: the rest waits for the next turn, nothing is lost (a
    // gateway's whole population reconnecting at once must not cost anyone fastd's 20 s
    // handshake retry).
    let extra = 8;
    for _ in 0..HANDSHAKE_BUDGET + extra {
        stranger.send_to(&flood, dst).unwrap();
    }
    a.engine.poll_once(Duration::from_millis(100)).unwrap();
    let drops = a.engine.global_drops();
    assert_eq!(drops.get(DropReason::HandshakeBudget), 0);
    assert_eq!(
        drops.get(DropReason::Handshake),
        (first + HANDSHAKE_BUDGET) as u64
    );
    assert_eq!(a.engine.hs_queue.len(), extra);
    // The next turn has a fresh budget, and the deferred work goes first.
    a.engine.poll_once(Duration::from_millis(100)).unwrap();
    let handled = first + HANDSHAKE_BUDGET + extra;
    assert_eq!(
        a.engine.global_drops().get(DropReason::Handshake),
        handled as u64
    );
    assert!(a.engine.hs_queue.is_empty());
    // Only what exceeds the queue's bound is dropped and counted: a full queue gives up a
    // turn's budget of room, one more than that arrives.
    let meta = io::Meta {
        src: stranger.local_addr().unwrap(),
        local: None,
        len: flood.len(),
        truncated: false,
        seg: 0,
    };
    while a.engine.hs_queue.defer(0, meta, &flood) {}
    for _ in 0..HANDSHAKE_BUDGET + 1 {
        stranger.send_to(&flood, dst).unwrap();
    }
    a.engine.poll_once(Duration::from_millis(100)).unwrap();
    let drops = a.engine.global_drops();
    assert_eq!(drops.get(DropReason::HandshakeBudget), 1);
    assert_eq!(
        drops.get(DropReason::Handshake),
        (handled + HANDSHAKE_BUDGET) as u64
    );
    assert_eq!(a.engine.hs_queue.len(), hsq::HANDSHAKE_BACKLOG);
    assert!(established(&a));
}

/// Spoofed data from 300 addresses makes the gateway run a slow `on connect` for
/// each, which fills every hook slot of the privileged side (64). The legitimate peer's `on
/// establish` must still run once a slot frees, ahead of the waiting `on connect`s.
#[test]
fn establish_hook_survives_spoofed_connect_hooks() {
    const SLOTS: usize = 64;
    const SOURCES: usize = 300;
    let k = keys();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dst = sock.local_addr().unwrap();
    let gw = format!(
        "mode tun; interface \"a\"; method \"salsa2012+umac\"; secret \"{}\"; mtu 1400;\n\
         on connect \"sleep 30\"; on establish \"true\";\npeer \"b\" {{ key \"{}\"; }}\n",
        k[0].0, k[1].1
    );
    let client = format!(
        "mode tun; interface \"b\"; method \"salsa2012+umac\"; secret \"{}\"; mtu 1400;\n\
         peer \"a\" {{ key \"{}\"; remote {dst}; }}\n",
        k[1].0, k[0].1
    );
    let mut a = node(&gw, Some(sock), Timings::default());
    a.hooks.lock().unwrap().cap = Some(SLOTS);
    // Spoofed sources: loopback addresses other than b's 127.0.0.1.
    let spoofed: Vec<UdpSocket> = (0..SOURCES)
        .map(|i| UdpSocket::bind(format!("127.0.{}.{}:0", 1 + i / 200, 1 + i % 200)).unwrap())
        .collect();
    // In rounds of one turn's handshake budget; each packet is long enough to trigger a
    // handshake (and so `on connect`).
    for round in spoofed.chunks(HANDSHAKE_BUDGET) {
        for s in round {
            s.send_to(&[0u8; 64], dst).unwrap();
        }
        for _ in 0..20 {
            a.engine.poll_once(Duration::from_millis(1)).unwrap();
        }
    }
    {
        let h = a.hooks.lock().unwrap();
        let connects = h.ran.iter().filter(|k| **k == HookKind::Connect).count();
        assert_eq!((connects, h.running), (SLOTS, SLOTS));
    }
    assert_eq!(a.engine.queued_hooks(), (SOURCES - SLOTS, 0));
    let mut b = node(&client, None, Timings::default());
    assert!(pump(
        &mut [&mut a, &mut b],
        |n| established(n[0]) && established(n[1]),
        Duration::from_secs(5)
    ));
    assert!(!a.hooks.lock().unwrap().ran.contains(&HookKind::Establish));
    assert_eq!(a.engine.queued_hooks(), (SOURCES - SLOTS + 1, 0));
    // The slow hooks end; the helper says so.
    a.hooks.lock().unwrap().running = 0;
    a.engine.hooks_free();
    let h = a.hooks.lock().unwrap();
    assert_eq!(
        h.ran.get(SLOTS),
        Some(&HookKind::Establish),
        "the establish goes first"
    );
    assert_eq!(h.ran.len(), SLOTS + 1 + SLOTS);
    drop(h);
    assert_eq!(a.engine.queued_hooks(), (SOURCES - 2 * SLOTS, 0));
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

/// A listening node with no peers and `on verify`, and a client that knows it. The client
/// key is `keys()[1]`.
fn verify_pair(timings: Timings, verdict: Verdict) -> (Node, String, String) {
    let k = keys();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let a = format!(
        "mode tun; interface \"dyn-%k\"; method \"salsa2012+umac\"; secret \"{}\"; mtu 1400;\n\
         on verify \"./verify\";\n",
        k[0].0
    );
    let b = format!(
        "mode tun; interface \"b\"; method \"salsa2012+umac\"; secret \"{}\"; mtu 1400;\n\
         peer \"a\" {{ key \"{}\"; remote 127.0.0.1:{port}; }}\n",
        k[1].0, k[0].1
    );
    let client = format!("{{{}}}", &k[1].1[..16]);
    (node_verifying(&a, Some(sock), timings, verdict), b, client)
}

fn live_peers(n: &Node) -> Vec<PeerStatus> {
    n.engine.peer_status()
}

/// docs/config.md §4.4: a dynamic peer lives until it has been idle for the peer timeout. Traffic
/// keeps it; once its client is gone it is reset and deleted, and the same key coming back is
/// a new dynamic peer that `on verify` is asked about again.
#[test]
fn idle_dynamic_peer_is_deleted_and_verified_again_when_it_returns() {
    let timings = Timings {
        keepalive: Duration::from_millis(100),
        peer_timeout: Duration::from_millis(500),
        ..Timings::default()
    };
    let (mut a, b_conf, client) = verify_pair(timings, Verdict::Accepted);
    let mut b = node(&b_conf, None, timings);
    assert!(pump(
        &mut [&mut a, &mut b],
        |n| established(n[0]) && established(n[1]),
        Duration::from_secs(5)
    ));
    let first = live_peers(&a);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].name, None);
    let key_hex: String = first[0].key.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(key_hex, keys()[1].1);
    assert_eq!(a.verified.load(Ordering::SeqCst), 1);
    // Keepalives are valid packets: three timeouts later the peer is still there.
    pump(
        &mut [&mut a, &mut b],
        |_| false,
        Duration::from_millis(1500),
    );
    assert!(established(&a), "{:?}", a.logs.lock().unwrap());
    drop(b);
    assert!(
        pump(
            &mut [&mut a],
            |n| live_peers(n[0]).is_empty(),
            Duration::from_secs(3)
        ),
        "{:?}",
        a.logs.lock().unwrap()
    );
    let logs = a.logs.lock().unwrap().join("\n");
    for line in [
        format!("adding peer {client}"),
        format!("connection with {client} disestablished."),
        format!("deleting peer {client}"),
    ] {
        assert_eq!(logs.matches(&line).count(), 1, "{line}:\n{logs}");
    }
    // fastd's order: the reset, then the deletion.
    assert!(
        logs.find("disestablished") < logs.find("deleting peer"),
        "{logs}"
    );
    // The deleted peer is matched by nothing, and its timer does not fire again.
    assert_eq!(a.engine.peers.by_key(&first[0].key), None);
    pump(&mut [&mut a], |_| false, Duration::from_millis(700));
    let logs = a.logs.lock().unwrap().join("\n");
    assert_eq!(logs.matches("deleting peer").count(), 1, "{logs}");

    // The client comes back (restarted: a new port): verified again, a fresh peer.
    let mut b = node(&b_conf, None, timings);
    assert!(
        pump(
            &mut [&mut a, &mut b],
            |n| established(n[0]) && established(n[1]),
            Duration::from_secs(5)
        ),
        "{:?}",
        a.logs.lock().unwrap()
    );
    assert_eq!(a.verified.load(Ordering::SeqCst), 2);
    let second = live_peers(&a);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second[0].id, first[0].id);
    assert_eq!(
        second[0].iface.as_deref(),
        Some(&*format!("dyn-{}", &keys()[1].1[..11]))
    );
    // And it carries packets.
    send_through(&b, &[0x45; 60]);
    let mut got = None;
    let end = Instant::now() + Duration::from_secs(2);
    while got.is_none() && Instant::now() < end {
        b.engine.poll_once(Duration::from_millis(2)).unwrap();
        a.engine.poll_once(Duration::from_millis(2)).unwrap();
        let ends = a.ends.lock().unwrap();
        let mut buf = [0u8; 2048];
        got = ends
            .last()
            .and_then(|e| e.recv(&mut buf).ok())
            .map(|n| buf[..n].to_vec());
    }
    assert_eq!(got.as_deref(), Some(&[0x45; 60][..]));
}

/// A dynamic peer that lost its session without being idle (here: reset as an address
/// takeover or a session expiry would) still expires once it has been idle long enough.
#[test]
fn dynamic_peer_that_is_not_established_expires_too() {
    let timings = Timings {
        peer_timeout: Duration::from_millis(600),
        ..Timings::default()
    };
    let (mut a, b_conf, client) = verify_pair(timings, Verdict::Accepted);
    let mut b = node(&b_conf, None, timings);
    assert!(pump(
        &mut [&mut a, &mut b],
        |n| established(n[0]) && established(n[1]),
        Duration::from_secs(5)
    ));
    drop(b);
    let id = live_peers(&a)[0].id;
    a.engine.reset_peer(id, Instant::now());
    let st = live_peers(&a);
    assert!(st.len() == 1 && !st[0].established, "{st:?}");
    assert!(
        pump(
            &mut [&mut a],
            |n| live_peers(n[0]).is_empty(),
            Duration::from_secs(3)
        ),
        "{:?}",
        a.logs.lock().unwrap()
    );
    let logs = a.logs.lock().unwrap().join("\n");
    assert_eq!(logs.matches("disestablished").count(), 1, "{logs}");
    assert!(logs.contains(&format!("deleting peer {client}")), "{logs}");
}

/// `on verify` refuses: no peer, fastd's line for a refused verify, and the handshake layer
/// asks again only after its interval.
#[test]
fn refused_key_gets_no_dynamic_peer() {
    let (mut a, b_conf, client) = verify_pair(Timings::default(), Verdict::Refused);
    let mut b = node(&b_conf, None, Timings::default());
    let refused = format!("ignoring handshake from {client}[");
    assert!(pump(
        &mut [&mut a, &mut b],
        |n| n[0]
            .logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(&refused)),
        Duration::from_secs(5)
    ));
    pump(&mut [&mut a, &mut b], |_| false, Duration::from_millis(300));
    let logs = a.logs.lock().unwrap().join("\n");
    assert!(logs.contains("(verification failed)"), "{logs}");
    // The failure that only means "verdict pending" is not logged.
    assert!(!logs.contains("NotVerified"), "{logs}");
    assert!(live_peers(&a).is_empty());
    assert!(!established(&b));
    assert_eq!(a.verified.load(Ordering::SeqCst), 1);
}

/// An asynchronous `on verify` (fastd's default): the handshake waits while the command
/// runs, nothing else stops, and the verdict answers the stored handshake, so the client
/// need not retry.
#[test]
fn asynchronous_verify_answers_the_stored_handshake() {
    let (mut a, b_conf, client) = verify_pair(Timings::default(), Verdict::Pending);
    let mut b = node(&b_conf, None, Timings::default());
    assert!(pump(
        &mut [&mut a, &mut b],
        |n| n[0].verified.load(Ordering::SeqCst) == 1,
        Duration::from_secs(5)
    ));
    // While it runs: no session, no peer, and the engine goes on.
    pump(&mut [&mut a, &mut b], |_| false, Duration::from_millis(300));
    assert!(!established(&a) && !established(&b));
    assert_eq!(a.verified.load(Ordering::SeqCst), 1, "asked once");
    let key: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&keys()[1].1[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let key: [u8; 32] = key.try_into().unwrap();
    a.engine.verify_done(&[0x42; 32], true); // nobody waits for this one
    a.engine.verify_done(&key, true);
    // Well within the client's 20 s handshake retry: the stored handshake was answered.
    assert!(
        pump(
            &mut [&mut a, &mut b],
            |n| established(n[0]) && established(n[1]),
            Duration::from_secs(3)
        ),
        "{:?}",
        a.logs.lock().unwrap()
    );
    let logs = a.logs.lock().unwrap().join("\n");
    assert!(
        logs.contains(&format!("connection with {client} established.")),
        "{logs}"
    );
    assert!(!logs.contains("verification failed"), "{logs}");
}

/// A refusal from an asynchronous verify drops the handshake without fastd's synchronous
/// "(verification failed)" line.
#[test]
fn asynchronous_verify_refusal_drops_the_handshake() {
    let (mut a, b_conf, _client) = verify_pair(Timings::default(), Verdict::Pending);
    let mut b = node(&b_conf, None, Timings::default());
    assert!(pump(
        &mut [&mut a, &mut b],
        |n| n[0].verified.load(Ordering::SeqCst) == 1,
        Duration::from_secs(5)
    ));
    let key: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&keys()[1].1[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    a.engine.verify_done(&key.try_into().unwrap(), false);
    pump(&mut [&mut a, &mut b], |_| false, Duration::from_millis(500));
    assert!(!established(&a) && !established(&b));
    assert!(live_peers(&a).is_empty());
    let logs = a.logs.lock().unwrap().join("\n");
    assert!(!logs.contains("verification failed"), "{logs}");
}

/// `b`'s next data packet as `b` would send it (sealed by its current session), for tests
/// that deliver packets to `a` in an order of their choosing.
fn sealed_by(b: &mut Node, payload: &[u8]) -> Vec<u8> {
    let id = b.engine.peer_status()[0].id;
    let p = b.engine.peers.get_mut(id).unwrap();
    let s = p.sessions.for_send(Instant::now()).unwrap();
    let mut buf = vec![0u8; s.crypto.overhead()];
    buf.extend_from_slice(payload);
    s.crypto.encrypt(&mut buf).unwrap();
    buf
}

/// fastd_handle_receive(): a packet that arrives after a newer one but inside the replay
/// window counts in `rx` and in `rx_reordered`, both with its payload size; a duplicate
/// counts in neither.
#[test]
fn reordered_packets_count_in_rx_and_rx_reordered() {
    let (mut a, mut b) = pair("salsa2012+umac", Timings::default());
    assert!(pump(
        &mut [&mut a, &mut b],
        |n| established(n[0]) && established(n[1]),
        Duration::from_secs(5)
    ));
    let aid = a.engine.peer_status()[0].id;
    let before = a.engine.peer_status()[0].traffic;
    let pkts: Vec<Vec<u8>> = [100usize, 200, 300, 400]
        .iter()
        .map(|&n| sealed_by(&mut b, &vec![0x45; n]))
        .collect();
    // Sent order 1 2 3 4, received 1 3 2 2 4: packet 2 is late once, then a replay.
    for i in [0usize, 2, 1, 1, 3] {
        let mut pkt = pkts[i].clone();
        a.engine.on_data(aid, None, &mut pkt, 0, Instant::now());
    }
    let st = &a.engine.peer_status()[0];
    let t = st.traffic;
    assert_eq!(t.rx_packets - before.rx_packets, 4);
    assert_eq!(t.rx_bytes - before.rx_bytes, 1000);
    assert_eq!(t.rx_reordered_packets - before.rx_reordered_packets, 1);
    assert_eq!(t.rx_reordered_bytes - before.rx_reordered_bytes, 200);
    assert_eq!(st.drops.get(DropReason::Duplicate), 1);
    // Every accepted payload reached the interface once, in arrival order.
    let mut got = Vec::new();
    while let Some(p) = recv_at(&a) {
        got.push(p.len());
    }
    assert_eq!(got, [100, 300, 200, 400]);
    let logs = a.logs.lock().unwrap().join("\n");
    assert_eq!(
        logs.matches("DEBUG2: accepting reordered packet from <b> (age 1)")
            .count(),
        1,
        "{logs}"
    );
}

/// fastd_handle_receive(): in tap mode a payload shorter than an Ethernet header is dropped
/// before the statistics, so it counts in no `rx` counter.
#[test]
fn short_tap_frames_are_not_counted() {
    let k = keys();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let a = format!(
        "mode tap; interface \"a\"; method \"salsa2012+umac\"; secret \"{}\"; mtu 1400;\npeer \"b\" {{ key \"{}\"; }}\n",
        k[0].0, k[1].1
    );
    let b = format!(
        "mode tap; interface \"b\"; method \"salsa2012+umac\"; secret \"{}\"; mtu 1400;\npeer \"a\" {{ key \"{}\"; remote 127.0.0.1:{port}; }}\n",
        k[1].0, k[0].1
    );
    let (mut a, mut b) = (
        node(&a, Some(sock), Timings::default()),
        node(&b, None, Timings::default()),
    );
    assert!(pump(
        &mut [&mut a, &mut b],
        |n| established(n[0]) && established(n[1]),
        Duration::from_secs(5)
    ));
    let aid = a.engine.peer_status()[0].id;
    let mut frame = vec![0x02u8; 60];
    frame[0] = 0xff; // broadcast destination, unicast source
    for payload in [&[0x02u8; 13][..], &frame] {
        let mut pkt = sealed_by(&mut b, payload);
        a.engine.on_data(aid, None, &mut pkt, 0, Instant::now());
    }
    let st = &a.engine.peer_status()[0];
    assert_eq!((st.traffic.rx_packets, st.traffic.rx_bytes), (1, 60));
    assert_eq!(st.drops.get(DropReason::ShortFrame), 1);
}

/// `hide ip addresses` / `hide mac addresses` (docs/config.md §6.1): log lines show `[hidden]:<port>`
/// and `[hidden]`, as fastd v22 does (`sending handshake to <alpha>[[hidden]:10000]...`,
/// `[hidden]:10001 authenticated as <beta>`, `learned new MAC address [hidden] on peer
/// <beta>`); `bound to` lines keep the address. The setting belongs to each engine: `b` in
/// the same process shows addresses.
#[test]
fn hidden_addresses_in_log_lines() {
    let k = keys();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let a = format!(
        "mode tap; interface \"a\"; method \"salsa2012+umac\"; secret \"{}\"; mtu 1400;\n\
         hide ip addresses yes; hide mac addresses yes;\npeer \"b\" {{ key \"{}\"; }}\n",
        k[0].0, k[1].1
    );
    let b = format!(
        "mode tap; interface \"b\"; method \"salsa2012+umac\"; secret \"{}\"; mtu 1400;\n\
         peer \"a\" {{ key \"{}\"; remote 127.0.0.1:{port}; }}\n",
        k[1].0, k[0].1
    );
    let timings = Timings {
        mac_expiry: Duration::from_secs(1),
        maintenance: Duration::from_millis(100),
        ..Timings::default()
    };
    let (mut a, mut b) = (node(&a, Some(sock), timings), node(&b, None, timings));
    assert!(pump(
        &mut [&mut a, &mut b],
        |n| established(n[0]) && established(n[1]),
        Duration::from_secs(5)
    ));
    let aid = a.engine.peer_status()[0].id;
    let b_port = a.engine.peer_status()[0].addr.unwrap().port();
    let mut frame = vec![0x45u8; 60];
    frame[..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x0b]);
    let mut pkt = sealed_by(&mut b, &frame);
    a.engine.on_data(aid, None, &mut pkt, 0, Instant::now());
    assert!(
        pump(
            &mut [&mut a],
            |n| n[0]
                .logs
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("not seen for more than")),
            Duration::from_secs(3)
        ),
        "{:?}",
        a.logs.lock().unwrap()
    );
    let a_logs = a.logs.lock().unwrap().join("\n");
    for line in [
        format!("Info: bound to 127.0.0.1:{port}"),
        format!("Verbose: received handshake from <b>[[hidden]:{b_port}] using fastd v22"),
        format!("DEBUG: received handshake finish from <b>[[hidden]:{b_port}] using fastd v22"),
        format!("Verbose: [hidden]:{b_port} authenticated as <b>"),
        "DEBUG: learned new MAC address [hidden] on peer <b>".to_owned(),
        "DEBUG: MAC address [hidden] not seen for more than 1 seconds, removing".to_owned(),
    ] {
        assert!(a_logs.lines().any(|l| l == line), "{line}:\n{a_logs}");
    }
    // The address appears in no other line.
    let leaks: Vec<&str> = a_logs
        .lines()
        .filter(|l| l.contains("127.0.0.1") && !l.contains("bound to"))
        .collect();
    assert!(leaks.is_empty(), "{leaks:?}");
    assert!(!a_logs.contains("02:00:00:00:00:0b"), "{a_logs}");
    let b_logs = b.logs.lock().unwrap().join("\n");
    for line in [
        format!("Verbose: sending handshake to <a>[127.0.0.1:{port}]..."),
        format!("Verbose: received handshake response from <a>[127.0.0.1:{port}] using fastd v22"),
        format!("Verbose: 127.0.0.1:{port} authenticated as <a>"),
    ] {
        assert!(b_logs.lines().any(|l| l == line), "{line}:\n{b_logs}");
    }
}

/// An `on verify` peer with `hide ip addresses`: fastd v22 logged `received handshake finish
/// from {540c31b24905cccc}[[hidden]:10001] using fastd v22` and `[hidden]:10001 authenticated
/// as {540c31b24905cccc}`, and no `received handshake from` for the packet 1 it answered after
/// the asynchronous verify.
#[test]
fn dynamic_peer_lines_with_hidden_addresses() {
    let k = keys();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let a = format!(
        "mode tun; interface \"dyn-%k\"; method \"salsa2012+umac\"; secret \"{}\"; mtu 1400;\n\
         hide ip addresses yes;\non verify \"./verify\";\n",
        k[0].0
    );
    let b = format!(
        "mode tun; interface \"b\"; method \"salsa2012+umac\"; secret \"{}\"; mtu 1400;\n\
         peer \"a\" {{ key \"{}\"; remote 127.0.0.1:{port}; }}\n",
        k[1].0, k[0].1
    );
    let client = format!("{{{}}}", &k[1].1[..16]);
    let mut a = node_verifying(&a, Some(sock), Timings::default(), Verdict::Pending);
    let mut b = node(&b, None, Timings::default());
    assert!(pump(
        &mut [&mut a, &mut b],
        |n| n[0].verified.load(Ordering::SeqCst) == 1,
        Duration::from_secs(5)
    ));
    let key = PublicKey::from_hex(&k[1].1).unwrap();
    a.engine.verify_done(key.as_bytes(), true);
    assert!(pump(
        &mut [&mut a, &mut b],
        |n| established(n[0]) && established(n[1]),
        Duration::from_secs(3)
    ));
    let b_port = a.engine.peer_status()[0].addr.unwrap().port();
    let logs = a.logs.lock().unwrap().join("\n");
    for line in [
        format!(
            "DEBUG: received handshake finish from {client}[[hidden]:{b_port}] using fastd v22"
        ),
        format!("Verbose: [hidden]:{b_port} authenticated as {client}"),
    ] {
        assert!(logs.lines().any(|l| l == line), "{line}:\n{logs}");
    }
    assert!(!logs.contains("received handshake from"), "{logs}");
    let leaks = logs
        .lines()
        .filter(|l| l.contains("127.0.0.1") && !l.contains("bound to"));
    assert_eq!(leaks.count(), 0, "{logs}");
}

/// docs/config.md §6.8: a peer's counters start over when it is reset; the totals never go back.
#[test]
fn peer_counters_reset_with_the_peer_and_totals_keep_counting() {
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
    for i in 0..5u8 {
        send_through(&b, &[0x45, i, 0, 100]);
    }
    assert!(pump(
        &mut [&mut a, &mut b],
        |n| n[0].engine.peer_status()[0].traffic.rx_packets == 5,
        Duration::from_secs(3)
    ));
    assert_eq!(a.engine.peer_status()[0].traffic.rx_bytes, 20);
    // `b` falls silent: `a` resets it.
    assert!(pump(
        &mut [&mut a],
        |n| !established(n[0]),
        Duration::from_secs(3)
    ));
    let peer = a.engine.peer_status()[0].traffic;
    assert_eq!((peer.rx_packets, peer.rx_bytes), (0, 0));
    let total = a.engine.total_traffic();
    assert_eq!((total.rx_packets, total.rx_bytes), (5, 20));
}

/// fastd's `protocol_send` frees a packet for a peer without a session uncounted; only
/// `sendmsg`'s EAGAIN counts as `tx_dropped`. A fresh TUN device sends a router solicitation
/// (48 bytes) before the handshake: neither the peer nor the totals may show it.
#[test]
fn packets_before_the_session_are_not_counted_as_tx_dropped() {
    let (_a, mut b) = pair("salsa2012+umac", Timings::default());
    let solicitation = [0x60u8; 48];
    send_through(&b, &solicitation);
    // `b` reads the packet from its device; `a` never answers, so there is no session.
    pump(&mut [&mut b], |_| false, Duration::from_millis(200));
    assert!(!established(&b));
    let t = b.engine.peer_status()[0].traffic;
    assert_eq!((t.tx_dropped_packets, t.tx_dropped_bytes), (0, 0));
    assert_eq!((t.tx_packets, t.tx_bytes), (0, 0));
    let total = b.engine.total_traffic();
    assert_eq!((total.tx_dropped_packets, total.tx_dropped_bytes), (0, 0));
}

/// The privileged side hears of every session going up (with the address and interface
/// the gateway routes need) and down (reset, shutdown), once each: the runtime keeps the
/// redirect routes in step from these reports alone.
#[test]
fn sessions_up_and_down_are_reported_to_the_provider() {
    let (mut a, mut b) = pair("salsa2012+umac", Timings::default());
    let both = |n: &[&mut Node]| established(n[0]) && established(n[1]);
    assert!(pump(&mut [&mut a, &mut b], both, Duration::from_secs(5)));
    let b_addr = a.engine.peer_status()[0].addr.unwrap();
    let up = |n: &Node| n.hooks.lock().unwrap().sessions.clone();
    assert_eq!(
        up(&a),
        vec![(PeerId(0), Some((b_addr, Some("a".to_owned()))))]
    );
    assert_eq!(up(&b).len(), 1);
    // A reset takes the session down, once: the shutdown after it has nothing to report.
    a.engine.reset_all();
    assert_eq!(up(&a).get(1), Some(&(PeerId(0), None)));
    a.engine.shutdown();
    assert_eq!(up(&a).len(), 2, "{:?}", up(&a));
    // A shutdown takes an established session down.
    b.engine.shutdown();
    assert_eq!(up(&b).get(1), Some(&(PeerId(0), None)));
    assert_eq!(up(&b).len(), 2, "{:?}", up(&b));
}
