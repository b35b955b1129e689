//! Our handshake state machine against the real fastd v22 over UDP, in a network namespace
//! created for the test: fastd runs in it as a process, our side on a thread moved into it.
//!
//! Needs root and /usr/bin/fastd: without them the tests skip, except with CI=true, where they
//! fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use test_support::{ready, Fastd, Netns, TempDir, FASTD};
use worker::handshake::{
    classify, Event, Handshake, HandshakeConfig, Mode, Output, PacketKind, PeerConfig, Role,
};
use worker::keys::SecretKey;

const OUR_SECRET: &str = "78059e020a069a93b6c6d4fbc29e41bae75a0e63c7a84eda629dd5645be71354";
const FASTD_SECRET: &str = "b0f1ab3fa2d1cb4c6ed6e9a79e0c31d0b8b1a5a2f1e07f8ef0a6a7c11f9b2c5f";
const FASTD_ADDR: &str = "192.0.2.1:10000";
const OUR_ADDR: &str = "192.0.2.2:20000";

/// In a new namespace (both addresses on `lo`): runs `ours` on a thread there, starts fastd
/// with `peer_block` and `mtu` 300 ms later, and returns (what `ours` returned, fastd's log)
/// once `ours` is done. The namespace and fastd go away on drop, also when the test fails.
fn with_fastd<T: Send + 'static>(
    case: &str,
    peer_block: &str,
    ours: impl FnOnce() -> T + Send + 'static,
) -> (T, String) {
    let ns = Netns::new(case);
    ns.ip(&["addr", "add", "192.0.2.1/32", "dev", "lo"]);
    ns.ip(&["addr", "add", "192.0.2.2/32", "dev", "lo"]);
    let dir = TempDir::new("hs");
    let conf = format!(
        "log level debug;\ninterface \"fhs0\";\nmode tun;\nmtu 1400;\n\
         method \"salsa2012+umac\";\nsecret \"{FASTD_SECRET}\";\nbind 192.0.2.1:10000;\n{peer_block}\n"
    );
    // Our side first, so that fastd's very first handshake finds our socket.
    let inner = ns.spawn(ours);
    std::thread::sleep(Duration::from_millis(300));
    let mut fastd = Fastd::start(&ns, &dir, "fastd", &conf);
    let out = inner.join();
    std::thread::sleep(Duration::from_millis(300));
    fastd.stop();
    let log = fastd.log_text();
    match out {
        Ok(out) => (out, log),
        Err(e) => {
            eprintln!("fastd:\n{log}");
            std::panic::resume_unwind(e)
        }
    }
}

fn prerequisites() -> bool {
    ready(&[FASTD])
}

/// What the state machine side saw.
#[derive(Default, Debug)]
struct Seen {
    established: Vec<(Role, String, bool, usize)>,
    data_after_establish: Vec<Vec<u8>>,
    failures: Vec<String>,
}

/// Drives our state machine over a real socket for up to `limit` or until `done`.
fn drive(
    remotes: Vec<SocketAddr>,
    mtu: u16,
    limit: Duration,
    done: impl Fn(&Seen) -> bool,
) -> Seen {
    drive_with(remotes, mtu, false, limit, done)
}

/// `kick`: start with a fast-reconnect handshake as if fastd had sent us data we cannot place.
fn drive_with(
    remotes: Vec<SocketAddr>,
    mtu: u16,
    kick: bool,
    limit: Duration,
    done: impl Fn(&Seen) -> bool,
) -> Seen {
    let sock = UdpSocket::bind(OUR_ADDR).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let fastd_key = SecretKey::from_hex(FASTD_SECRET).unwrap().public();
    let config = HandshakeConfig::new(
        SecretKey::from_hex(OUR_SECRET).unwrap(),
        Mode::Tun,
        mtu,
        vec!["salsa2012+umac".into()],
    );
    let peer = PeerConfig {
        name: "fastd".into(),
        key: fastd_key,
        remotes,
        floating: false,
        methods: vec!["salsa2012+umac".into()],
        mtu,
        limits: Vec::new(),
    };
    if !peer.remotes.is_empty() {
        // fastd is started after us: give it time to bind before our first handshake.
        std::thread::sleep(Duration::from_millis(800));
    }
    let start = Instant::now();
    let mut hs = Handshake::new(config, vec![peer], start);
    let mut seen = Seen::default();
    let mut buf = [0u8; 2048];
    let mut pending: Vec<Output> = Vec::new();
    if kick {
        std::thread::sleep(Duration::from_millis(800));
        let fastd: SocketAddr = FASTD_ADDR.parse().unwrap();
        pending = hs.handle_unknown_data(&[0u8; 24], fastd, Instant::now());
        assert_eq!(pending.len(), 2, "one handshake and its event");
    }
    while start.elapsed() < limit && !done(&seen) {
        let now = Instant::now();
        let mut outs: Vec<Output> = std::mem::take(&mut pending);
        if hs.poll_timeout().is_some_and(|t| t <= now) {
            outs.extend(hs.handle_timeout(now));
        }
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let pkt = &buf[..n];
            match classify(pkt) {
                PacketKind::Handshake { .. } => outs.extend(hs.handle_handshake(pkt, from, now)),
                PacketKind::Data { .. } if !seen.established.is_empty() => {
                    seen.data_after_establish.push(pkt.to_vec());
                }
                _ => {}
            }
        }
        for o in outs {
            match o {
                Output::Send { to, bytes } => {
                    sock.send_to(&bytes, to).unwrap();
                }
                Output::Event(e) => match *e {
                    Event::SessionEstablished(s) => seen.established.push((
                        s.role,
                        s.method.clone(),
                        s.compat,
                        s.session_key.len(),
                    )),
                    Event::HandshakeFailed { reason, .. } => {
                        seen.failures.push(format!("{reason:?}"))
                    }
                    _ => {}
                },
            }
        }
    }
    println!("SEEN {seen:?}");
    seen
}

/// Our side's peer block in fastd's config; `remote` is where fastd finds us, if it initiates.
fn ref_peer(remote: &str) -> String {
    let our_key = SecretKey::from_hex(OUR_SECRET).unwrap().public();
    format!("peer \"ref\" {{ key \"{}\";{remote} }}", our_key.to_hex())
}

#[test]
fn we_initiate() {
    if !prerequisites() {
        return;
    }
    let (seen, log) = with_fastd("we_initiate", &ref_peer(""), || {
        drive(
            vec![FASTD_ADDR.parse().unwrap()],
            1400,
            Duration::from_secs(5),
            |s| !s.data_after_establish.is_empty(),
        )
    });
    assert_eq!(
        seen.established,
        vec![(Role::Initiator, "salsa2012+umac".to_owned(), false, 1472)]
    );
    // fastd answered the finish with its keepalive: type 0x00, nonce 2, 24 bytes.
    let ka = &seen.data_after_establish[0];
    assert_eq!(ka.len(), 24);
    assert_eq!(&ka[..8], &[0, 0, 0, 0, 0, 0, 0, 2]);
    assert!(
        log.contains("new session with <ref> established using method `salsa2012+umac'"),
        "{log}"
    );
}

#[test]
fn fastd_initiates() {
    if !prerequisites() {
        return;
    }
    let block = ref_peer(" remote 192.0.2.2:20000;");
    let (seen, log) = with_fastd("fastd_initiates", &block, || {
        drive(Vec::new(), 1400, Duration::from_secs(8), |s| {
            !s.established.is_empty()
        })
    });
    assert_eq!(
        seen.established,
        vec![(Role::Responder, "salsa2012+umac".to_owned(), false, 1472)]
    );
    assert!(log.contains("new session with <ref> established"), "{log}");
}

#[test]
fn mtu_mismatch_error_reaches_fastd() {
    if !prerequisites() {
        return;
    }
    let (seen, log) = with_fastd("mtu_mismatch", &ref_peer(""), || {
        drive(
            vec![FASTD_ADDR.parse().unwrap()],
            1280,
            Duration::from_secs(2),
            |s| !s.failures.is_empty(),
        )
    });
    assert!(seen.established.is_empty());
    assert!(seen.failures[0].contains("ErrorSent"), "{seen:?}");
    assert!(
        log.contains("received error: MTU configuration differs with peer"),
        "{log}"
    );
}

#[test]
fn fastd_answers_our_fast_reconnect_handshake() {
    if !prerequisites() {
        return;
    }
    let (seen, log) = with_fastd("fast_reconnect", &ref_peer(""), || {
        // A floating peer, so that unknown data may trigger a handshake.
        drive_with(Vec::new(), 1400, true, Duration::from_secs(5), |s| {
            !s.data_after_establish.is_empty()
        })
    });
    assert_eq!(
        seen.established,
        vec![(Role::Initiator, "salsa2012+umac".to_owned(), false, 1472)]
    );
    assert_eq!(
        &seen.data_after_establish[0][..8],
        &[0, 0, 0, 0, 0, 0, 0, 2]
    );
    assert!(log.contains("new session with <ref> established"), "{log}");
}
