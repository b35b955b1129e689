//! The status document against the samples recorded from the real fastd v22, and the
//! non-blocking server against real sockets (abstract AF_UNIX names, nothing on disk).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, SocketAddrV6};
use std::os::fd::OwnedFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use mio::{Events, Poll, Token};
use serde_json::Value;
use worker::status::{
    to_json, ConnectionStatus, Counter, MacAddress, ModeStatus, PeerAddress, PeerStatus, Progress,
    Statistics, StatusNotice, StatusServer, StatusSnapshot, StatusWriter, MAX_STATUS_CLIENTS,
};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/status-samples");
const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testdata/status-sample.json"
);

// ---------------------------------------------------------------------------------------------
// Test-only conversion: a recorded document -> typed snapshot. Every value is parsed into the
// engine's types (key bytes, socket addresses, MAC bytes), so the serializer has to rebuild
// every byte from data, not copy strings.

fn counter(v: &Value) -> Counter {
    let obj = v.as_object().unwrap();
    assert_eq!(obj.keys().collect::<Vec<_>>(), ["packets", "bytes"]);
    Counter {
        packets: obj["packets"].as_u64().unwrap(),
        bytes: obj["bytes"].as_u64().unwrap(),
    }
}

fn statistics(v: &Value) -> Statistics {
    let obj = v.as_object().unwrap();
    let keys = ["rx", "rx_reordered", "tx", "tx_dropped", "tx_error"];
    assert_eq!(obj.keys().collect::<Vec<_>>(), keys);
    Statistics {
        rx: counter(&obj["rx"]),
        rx_reordered: counter(&obj["rx_reordered"]),
        tx: counter(&obj["tx"]),
        tx_dropped: counter(&obj["tx_dropped"]),
        tx_error: counter(&obj["tx_error"]),
    }
}

fn key(hex: &str) -> [u8; 32] {
    assert_eq!(hex.len(), 64);
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn address(s: &str) -> PeerAddress {
    if s == "any" {
        return PeerAddress::Any;
    }
    if let Some((bracketed, port)) = s.strip_prefix('[').and_then(|r| r.rsplit_once("]:")) {
        let (ip, scope) = match bracketed.split_once('%') {
            Some((ip, scope)) => (ip, Some(scope.to_owned())),
            None => (bracketed, None),
        };
        let addr = SocketAddrV6::new(ip.parse().unwrap(), port.parse().unwrap(), 0, 0);
        return PeerAddress::Inet {
            addr: SocketAddr::V6(addr),
            scope_ifname: scope,
        };
    }
    PeerAddress::from(s.parse::<SocketAddr>().unwrap())
}

fn mac(s: &str) -> MacAddress {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).unwrap())
        .collect();
    MacAddress(parts.try_into().unwrap())
}

fn opt_str(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => panic!("expected string or null, got {other}"),
    }
}

fn mode_from_file_name(name: &str, doc: &Value) -> ModeStatus {
    if name.starts_with("tap-") {
        ModeStatus::Tap {
            interface: doc["interface"].as_str().unwrap().to_owned(),
        }
    } else if name.starts_with("multitap-") {
        ModeStatus::Multitap
    } else if name.starts_with("tun-") {
        ModeStatus::Tun
    } else {
        panic!("sample {name}: mode not in the file name")
    }
}

fn connection(v: &Value, tap: bool) -> Option<ConnectionStatus> {
    let obj = v.as_object()?;
    let mut keys = vec!["established", "method", "statistics"];
    if tap {
        keys.push("mac_addresses");
    }
    assert_eq!(obj.keys().collect::<Vec<_>>(), keys);
    Some(ConnectionStatus {
        established_ms: obj["established"].as_u64().unwrap(),
        method: opt_str(&obj["method"]),
        statistics: statistics(&obj["statistics"]),
        mac_addresses: obj
            .get("mac_addresses")
            .map(|m| {
                m.as_array()
                    .unwrap()
                    .iter()
                    .map(|s| mac(s.as_str().unwrap()))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

fn snapshot_from_sample(name: &str, text: &str) -> StatusSnapshot {
    let doc: Value = serde_json::from_str(text).unwrap();
    let mode = mode_from_file_name(name, &doc);
    let tap = matches!(mode, ModeStatus::Tap { .. });
    let top = doc.as_object().unwrap();
    let expected_top: &[&str] = if tap {
        &["uptime", "interface", "statistics", "peers"]
    } else {
        &["uptime", "statistics", "peers"]
    };
    assert_eq!(top.keys().collect::<Vec<_>>(), expected_top, "{name}");
    let peers = top["peers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(hex, p)| {
            let p = p.as_object().unwrap();
            PeerStatus {
                key: key(hex),
                name: opt_str(&p["name"]),
                address: address(p["address"].as_str().unwrap()),
                interface: p.get("interface").and_then(opt_str),
                connection: connection(&p["connection"], tap),
            }
        })
        .collect();
    StatusSnapshot {
        uptime_ms: top["uptime"].as_u64().unwrap(),
        mode,
        statistics: statistics(&top["statistics"]),
        peers,
    }
}

fn samples() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(SAMPLES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// The document

#[test]
fn every_recorded_sample_is_reproduced_byte_for_byte() {
    let samples = samples();
    assert_eq!(
        samples.len(),
        9,
        "status-samples/ changed; update this test"
    );
    for (name, bytes) in &samples {
        let snap = snapshot_from_sample(name, std::str::from_utf8(bytes).unwrap());
        let ours = to_json(&snap).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(bytes),
            "{name}"
        );
        assert_eq!(&ours, bytes, "{name}");
    }
}

/// The tutorial sample built the way the engine would: from typed values, not from JSON.
fn tutorial_alpha() -> StatusSnapshot {
    let stats = Statistics {
        rx: Counter {
            packets: 11,
            bytes: 1328,
        },
        tx: Counter {
            packets: 7,
            bytes: 984,
        },
        ..Statistics::default()
    };
    StatusSnapshot {
        uptime_ms: 26168,
        mode: ModeStatus::Tun,
        statistics: stats,
        peers: vec![PeerStatus {
            key: key("2598c5d7e72f171731658ce35734ff7599e1840367422e1a9c5943c327ab5ea9"),
            name: None,
            address: PeerAddress::from(SocketAddr::from(([192, 0, 2, 2], 38169))),
            interface: Some("vpngateway".into()),
            connection: Some(ConnectionStatus {
                established_ms: 8978,
                method: Some("salsa2012+umac".into()),
                statistics: stats,
                // Not tap: must not be written.
                mac_addresses: vec![MacAddress([2, 0, 0, 0, 0, 1])],
            }),
        }],
    }
}

#[test]
fn hand_built_tutorial_snapshot_matches_status_sample() {
    let expected = std::fs::read(SAMPLE).unwrap();
    assert_eq!(to_json(&tutorial_alpha()).unwrap(), expected);
}

#[test]
fn peer_name_escaping_sample() {
    let name = "tap-unconnected-peer-name-escaping.json";
    let expected = std::fs::read(Path::new(SAMPLES).join(name)).unwrap();
    let snap = StatusSnapshot {
        uptime_ms: 1073,
        mode: ModeStatus::Tap {
            interface: "tap0".into(),
        },
        statistics: Statistics::default(),
        peers: vec![PeerStatus {
            key: key("de5ca41689e09365fff562ab6025292878772d497ecc0b7db745dc55ec24e677"),
            name: Some("a/b\"c\\d \u{e9}\ttab".into()),
            address: PeerAddress::Any,
            // Tap: a per-peer interface must not be written.
            interface: Some("ignored".into()),
            connection: None,
        }],
    };
    assert_eq!(to_json(&snap).unwrap(), expected);
}

/// Recorded from the json-c 0.16 that Debian's fastd links (json_object_to_json_string on an
/// object built through ctypes): every control byte, DEL, the escaped trio and multi-byte UTF-8,
/// also in a member name; empty array and object; null in an array.
#[test]
fn escaping_matches_json_c() {
    let mut value: String = (1u8..0x20).map(char::from).collect();
    value.push_str("\u{7f} \"\\/ \u{e9} \u{20ac} \u{1f600}");
    let mut obj = serde_json::Map::new();
    obj.insert("k/\"\u{1}".into(), Value::String(value));
    obj.insert("arr".into(), Value::Array(vec![]));
    obj.insert(
        "a2".into(),
        Value::Array(vec![(-5).into(), Value::Null, i64::MAX.into()]),
    );
    obj.insert("o".into(), Value::Object(serde_json::Map::new()));
    let ours = worker::status::json::to_json_c_spaced(&Value::Object(obj)).unwrap();
    let json_c: &[u8] = b"{ \"k\\/\\\"\\u0001\": \"\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\x7f \\\"\\\\\\/ \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\", \"arr\": [ ], \"a2\": [ -5, null, 9223372036854775807 ], \"o\": { } }";
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(json_c)
    );
}

#[test]
fn tap_macs_are_sorted_and_empty_list_is_written() {
    let mut snap = StatusSnapshot {
        uptime_ms: 5,
        mode: ModeStatus::Tap {
            interface: "t".into(),
        },
        statistics: Statistics::default(),
        peers: vec![PeerStatus {
            key: [0xab; 32],
            name: Some("p".into()),
            address: PeerAddress::Inet {
                addr: "[fe80::1]:10000".parse().unwrap(),
                scope_ifname: Some("eth0".into()),
            },
            interface: None,
            connection: Some(ConnectionStatus {
                established_ms: 1,
                method: None,
                statistics: Statistics::default(),
                mac_addresses: vec![
                    MacAddress([0x16, 0x0b, 0x1d, 0xcb, 0x2f, 0x3a]),
                    MacAddress([0x02, 0xff, 0, 0, 0, 0x0a]),
                ],
            }),
        }],
    };
    let zero = r#"{ "rx": { "packets": 0, "bytes": 0 }, "rx_reordered": { "packets": 0, "bytes": 0 }, "tx": { "packets": 0, "bytes": 0 }, "tx_dropped": { "packets": 0, "bytes": 0 }, "tx_error": { "packets": 0, "bytes": 0 } }"#;
    let head = format!(
        r#"{{ "uptime": 5, "interface": "t", "statistics": {zero}, "peers": {{ "{}": {{ "name": "p", "address": "[fe80::1%eth0]:10000", "connection": {{ "established": 1, "method": null, "statistics": {zero}, "mac_addresses": "#,
        "ab".repeat(32)
    );
    let json = String::from_utf8(to_json(&snap).unwrap()).unwrap();
    assert_eq!(
        json,
        format!(r#"{head}[ "02:ff:00:00:00:0a", "16:0b:1d:cb:2f:3a" ] }} }} }} }}"#)
    );
    if let Some(conn) = snap.peers[0].connection.as_mut() {
        conn.mac_addresses.clear();
    }
    let json = String::from_utf8(to_json(&snap).unwrap()).unwrap();
    assert_eq!(json, format!(r#"{head}[ ] }} }} }} }}"#));
}

// ---------------------------------------------------------------------------------------------
// Serving

/// The serving tests run one at a time: the sandboxed one forks, and a child holding a copy of
/// another test's accepted stream would keep that test's client from seeing EOF.
static SOCKETS: Mutex<()> = Mutex::new(());

fn sockets_lock() -> MutexGuard<'static, ()> {
    SOCKETS.lock().unwrap_or_else(|e| e.into_inner())
}

fn abstract_listener() -> (UnixListener, UnixAddr) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "fastd-privsep-status-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
    (UnixListener::bind_addr(&addr).unwrap(), addr)
}

/// A document far larger than a socket buffer: many peers with long names.
fn big_snapshot(peers: usize) -> StatusSnapshot {
    let mut snap = tutorial_alpha();
    let template = snap.peers[0].clone();
    snap.peers = (0..peers)
        .map(|i| {
            let mut p = template.clone();
            p.key[..8].copy_from_slice(&(i as u64).to_be_bytes());
            p.name = Some(format!("peer/{i}/{}", "x".repeat(200)));
            p
        })
        .collect();
    snap
}

#[test]
fn writer_survives_a_slow_reader_and_closes_at_the_end() {
    let _lock = sockets_lock();
    let doc: Rc<[u8]> = Rc::from(to_json(&big_snapshot(3000)).unwrap());
    assert!(doc.len() > 1 << 20);
    let (ours, mut theirs) = mio::net::UnixStream::pair().unwrap();
    let mut writer = StatusWriter::new(ours, Rc::clone(&doc));
    let mut received = Vec::new();
    let mut chunk = vec![0u8; 4096];
    let mut rounds = 0;
    while writer.write_some().unwrap() == Progress::Pending {
        rounds += 1;
        // The socket is full, so a blocking-style read finds data; a small chunk per round
        // keeps the writer hitting EAGAIN again.
        let n = loop {
            match theirs.read(&mut chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            }
        };
        assert!(n > 0);
        received.extend_from_slice(&chunk[..n]);
    }
    assert!(rounds > 1, "the document never filled the socket");
    assert_eq!(writer.written(), doc.len());
    drop(writer);
    let mut theirs: UnixStream = {
        let fd: OwnedFd = theirs.into();
        fd.into()
    };
    theirs.set_nonblocking(false).unwrap();
    theirs.read_to_end(&mut received).unwrap();
    assert_eq!(&received[..], &doc[..]);
}

#[test]
fn writer_reports_a_client_that_hung_up() {
    let _lock = sockets_lock();
    let doc: Rc<[u8]> = Rc::from(to_json(&big_snapshot(10)).unwrap());
    let (ours, theirs) = mio::net::UnixStream::pair().unwrap();
    drop(theirs);
    let mut writer = StatusWriter::new(ours, doc);
    let err = writer.write_some().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
}

/// Drives `server` until every client has read to EOF; returns what each client got.
fn serve_until_eof(
    poll: &mut Poll,
    server: &mut StatusServer,
    clients: &mut [UnixStream],
    snap: &StatusSnapshot,
    notices: &mut Vec<StatusNotice>,
) -> Vec<Vec<u8>> {
    for c in clients.iter() {
        c.set_nonblocking(true).unwrap();
    }
    let mut got = vec![Vec::new(); clients.len()];
    let mut eof = vec![false; clients.len()];
    let mut events = Events::with_capacity(64);
    let mut buf = vec![0u8; 65536];
    for _ in 0..100_000 {
        if eof.iter().all(|&e| e) {
            return got;
        }
        poll.poll(&mut events, Some(Duration::from_millis(10)))
            .unwrap();
        for ev in events.iter() {
            assert!(server.owns(ev.token()));
            notices.extend(server.handle(poll.registry(), ev.token(), || snap.clone()));
        }
        for (i, c) in clients.iter_mut().enumerate() {
            while !eof[i] {
                match c.read(&mut buf) {
                    Ok(0) => eof[i] = true,
                    Ok(n) => got[i].extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
    panic!("clients never reached EOF");
}

/// fastd serves every client (a thread each); the worker writes to at most
/// [`MAX_STATUS_CLIENTS`] at once and leaves the rest queued, so a crowd larger than that,
/// behind the helper's `listen(4)`, still gets one complete document per client (the
/// 9th client used to get an empty reply, which exporters read as a decode error).
#[test]
fn server_gives_a_crowd_beyond_the_cap_one_complete_document_each() {
    let _lock = sockets_lock();
    let (listener, addr) = abstract_listener();
    // The helper's backlog: most of the crowd waits inside connect().
    nix::sys::socket::listen(&listener, nix::sys::socket::Backlog::new(4).unwrap()).unwrap();
    let mut poll = Poll::new().unwrap();
    let base = Token(100);
    let mut server = StatusServer::new(OwnedFd::from(listener), base).unwrap();
    server.register(poll.registry()).unwrap();
    assert!(server.owns(Token(100)) && server.owns(Token(100 + MAX_STATUS_CLIENTS)));
    assert!(!server.owns(Token(99)) && !server.owns(Token(101 + MAX_STATUS_CLIENTS)));

    // Larger than a socket buffer, so the writers are still busy while more clients arrive.
    let snap = big_snapshot(1000);
    let doc = to_json(&snap).unwrap();
    assert!(doc.len() > 256 * 1024, "{}", doc.len());
    let crowd: Vec<std::thread::JoinHandle<Vec<u8>>> = (0..MAX_STATUS_CLIENTS + 16)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut c = UnixStream::connect_addr(&addr).unwrap();
                // Guards against a stuck server only; never a pass/fail criterion.
                c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                let mut got = Vec::new();
                let _ = c.read_to_end(&mut got);
                got
            })
        })
        .collect();
    let mut notices = Vec::new();
    let mut events = Events::with_capacity(64);
    for _ in 0..100_000 {
        if crowd.iter().all(|c| c.is_finished()) {
            break;
        }
        poll.poll(&mut events, Some(Duration::from_millis(10)))
            .unwrap();
        for ev in events.iter() {
            assert!(server.owns(ev.token()));
            notices.extend(server.handle(poll.registry(), ev.token(), || snap.clone()));
        }
    }
    let got: Vec<Vec<u8>> = crowd.into_iter().map(|c| c.join().unwrap()).collect();
    let lengths: Vec<usize> = got.iter().map(Vec::len).collect();
    for g in &got {
        assert!(g[..] == doc[..], "lengths: {lengths:?}; {notices:?}");
        serde_json::from_slice::<Value>(g).unwrap();
    }
    assert!(notices.is_empty(), "{notices:?}");
    assert_eq!(server.active_clients(), 0);

    // A later client gets the whole (small) document at once.
    let small = tutorial_alpha();
    let mut late = vec![UnixStream::connect_addr(&addr).unwrap()];
    let got = serve_until_eof(&mut poll, &mut server, &mut late, &small, &mut notices);
    assert_eq!(got[0], std::fs::read(SAMPLE).unwrap());
}

#[test]
fn server_cleans_up_after_a_client_that_leaves_early() {
    let _lock = sockets_lock();
    let (listener, addr) = abstract_listener();
    let mut poll = Poll::new().unwrap();
    let mut server = StatusServer::new(OwnedFd::from(listener), Token(0)).unwrap();
    server.register(poll.registry()).unwrap();
    let snap = big_snapshot(2000);
    let quitter = UnixStream::connect_addr(&addr).unwrap();
    let mut events = Events::with_capacity(8);
    let mut notices = Vec::new();
    while server.active_clients() == 0 {
        poll.poll(&mut events, None).unwrap();
        for ev in events.iter() {
            notices.extend(server.handle(poll.registry(), ev.token(), || snap.clone()));
        }
    }
    drop(quitter);
    while server.active_clients() != 0 {
        poll.poll(&mut events, None).unwrap();
        for ev in events.iter() {
            notices.extend(server.handle(poll.registry(), ev.token(), || snap.clone()));
        }
    }
    assert!(
        notices.iter().any(
            |n| matches!(n, StatusNotice::WriteFailed(e) if e.kind() == ErrorKind::BrokenPipe)
        ),
        "{notices:?}"
    );
}

/// The whole serving path inside the real worker sandbox (seccomp deny action: kill), so a
/// syscall outside the allow-list kills the child and the document arrives incomplete.
#[test]
fn server_works_inside_the_worker_sandbox() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    use nix::unistd::{fork, pipe, ForkResult};
    use std::io::Write;
    use worker::sandbox::{self, DenyAction, SandboxSpec};

    if !test_support::ready(&[]) {
        return;
    }
    let _lock = sockets_lock();
    let (listener, addr) = abstract_listener();
    let snap = big_snapshot(2000);
    let doc = to_json(&snap).unwrap();
    let (from_child, to_parent) = pipe().unwrap();

    // SAFETY: the child only sandboxes itself and serves, then _exit()s or is killed; glibc
    // keeps malloc usable after fork.
    let child = match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            drop(from_child);
            let mut to_parent = std::fs::File::from(to_parent);
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut spec = SandboxSpec::new(65534, 65534);
                spec.on_denied = DenyAction::KillProcess;
                if let Err(e) = sandbox::stage1().and_then(|()| sandbox::enter(&spec)) {
                    let _ = writeln!(to_parent, "error {e}");
                    return 1;
                }
                let mut poll = Poll::new().unwrap();
                let mut server = StatusServer::new(OwnedFd::from(listener), Token(1)).unwrap();
                server.register(poll.registry()).unwrap();
                let _ = writeln!(to_parent, "ready");
                let mut events = Events::with_capacity(16);
                loop {
                    poll.poll(&mut events, None).unwrap();
                    for ev in events.iter() {
                        for n in server.handle(poll.registry(), ev.token(), || snap.clone()) {
                            let _ = writeln!(to_parent, "notice {n}");
                        }
                    }
                }
            }))
            .unwrap_or(101);
            // SAFETY: _exit never returns and runs no atexit handlers of the harness.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    };
    drop(to_parent);
    drop(listener);
    let mut from_child = std::fs::File::from(from_child);
    let mut line = [0u8; 6];
    from_child.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"ready\n", "the child could not sandbox itself");

    let mut clients: Vec<UnixStream> = (0..2)
        .map(|_| {
            let c = UnixStream::connect_addr(&addr).unwrap();
            // Guards against a hung child only; never a pass/fail criterion.
            c.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
            c
        })
        .collect();
    let mut got = Vec::new();
    for c in clients.iter_mut() {
        let mut buf = Vec::new();
        let result = c.read_to_end(&mut buf);
        got.push((result.map_err(|e| e.kind()), buf.len(), buf == doc));
    }
    let alive = waitpid(child, Some(WaitPidFlag::WNOHANG)).unwrap();
    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    let _ = waitpid(child, None);
    let mut rest = String::new();
    from_child.read_to_string(&mut rest).unwrap();

    assert_eq!(alive, WaitStatus::StillAlive, "child died; it said: {rest}");
    assert_eq!(rest, "", "the child reported notices");
    for (result, len, same) in got {
        assert_eq!(result, Ok(doc.len()), "read {len} bytes");
        assert!(same);
    }
}
