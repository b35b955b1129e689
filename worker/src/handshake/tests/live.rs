//! Interop with the real fastd v22 over UDP, in a network namespace created for the test.
//!
//! Needs root, `ip` and /usr/bin/fastd: without them the tests skip, except with CI=true,
//! where they fail. Run alone with `cargo test -p worker --lib handshake::tests::live`.
//! The outer test builds the namespace and starts fastd; the state machine side runs in a child
//! process (this test binary again) inside the namespace.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::handshake::{
    classify, Event, Handshake, HandshakeConfig, Mode, Output, PacketKind, PeerConfig, Role,
};
use crate::keys::SecretKey;

const OUR_SECRET: &str = "78059e020a069a93b6c6d4fbc29e41bae75a0e63c7a84eda629dd5645be71354";
const FASTD_SECRET: &str = "b0f1ab3fa2d1cb4c6ed6e9a79e0c31d0b8b1a5a2f1e07f8ef0a6a7c11f9b2c5f";
const FASTD_ADDR: &str = "192.0.2.1:10000";
const OUR_ADDR: &str = "192.0.2.2:20000";

/// Deletes the namespace and stops fastd even when the test fails.
struct Cleanup {
    ns: String,
    fastd: Option<Child>,
    dir: std::path::PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut c) = self.fastd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.ns])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(args: &[&str]) {
    let st = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(st.success(), "{args:?}");
}

/// Sets up the namespace, starts fastd with `peer_block`, runs `inner` in the namespace and
/// returns (inner's stdout, fastd's log).
fn with_fastd(case: &str, peer_block: &str, mtu: u16) -> (String, String) {
    let ns = format!("fhs-{}-{case}", std::process::id());
    let dir = std::env::temp_dir().join(&ns);
    std::fs::create_dir_all(&dir).unwrap();
    let mut guard = Cleanup {
        ns: ns.clone(),
        fastd: None,
        dir: dir.clone(),
    };
    run(&["ip", "netns", "add", &ns]);
    let ipns = |a: &[&str]| {
        let mut v = vec!["ip", "netns", "exec", &ns];
        v.extend_from_slice(a);
        run(&v);
    };
    ipns(&["ip", "link", "set", "lo", "up"]);
    ipns(&["ip", "addr", "add", "192.0.2.1/32", "dev", "lo"]);
    ipns(&["ip", "addr", "add", "192.0.2.2/32", "dev", "lo"]);
    let conf = dir.join("fastd.conf");
    let mut f = std::fs::File::create(&conf).unwrap();
    write!(
        f,
        "log level debug;\ninterface \"fhs0\";\nmode tun;\nmtu 1400;\n\
         method \"salsa2012+umac\";\nsecret \"{FASTD_SECRET}\";\nbind 192.0.2.1:10000;\n{peer_block}\n"
    )
    .unwrap();
    // Our side first, so that fastd's very first handshake finds our socket.
    let exe = std::env::current_exe().unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(exe)
        .args([
            "--exact",
            "--nocapture",
            &format!("handshake::tests::live::{case}"),
        ])
        .env("FHS_INNER", "1")
        .env("FHS_MTU", mtu.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let log = dir.join("fastd.log");
    let fastd = Command::new("ip")
        .args(["netns", "exec", &ns, "fastd", "-c"])
        .arg(&conf)
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("fastd.err")).unwrap(),
        ))
        .spawn()
        .unwrap();
    guard.fastd = Some(fastd);
    let out = child.wait_with_output().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(guard.fastd.take().map(|mut c| {
        let _ = c.kill();
        c.wait()
    }));
    let log = std::fs::read_to_string(&log).unwrap_or_default()
        + &std::fs::read_to_string(dir.join("fastd.err")).unwrap_or_default();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "inner failed:\n{stdout}\n{}\nfastd:\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    (stdout, log)
}

fn inner() -> bool {
    std::env::var("FHS_INNER").is_ok()
}

/// Whether the outer test can run here; CI=true never skips.
fn prerequisites(test: &str) -> bool {
    let missing = if !nix::unistd::geteuid().is_root() {
        Some("root")
    } else if !std::path::Path::new("/usr/bin/fastd").exists() {
        Some("/usr/bin/fastd")
    } else {
        None
    };
    match missing {
        None => true,
        Some(what) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test} needs {what}, and CI=true does not allow skipping it"
            );
            eprintln!("skipping {test}: needs {what}");
            false
        }
    }
}

/// What the state machine side saw.
#[derive(Default, Debug)]
struct Seen {
    established: Vec<(Role, String, bool, usize)>,
    data_after_establish: Vec<Vec<u8>>,
    failures: Vec<String>,
}

/// Drives our state machine over a real socket for up to `limit` or until `done`.
fn drive(remotes: Vec<SocketAddr>, limit: Duration, done: impl Fn(&Seen) -> bool) -> Seen {
    drive_with(remotes, false, limit, done)
}

/// `kick`: start with a fast-reconnect handshake as if fastd had sent us data we cannot place.
fn drive_with(
    remotes: Vec<SocketAddr>,
    kick: bool,
    limit: Duration,
    done: impl Fn(&Seen) -> bool,
) -> Seen {
    let mtu: u16 = std::env::var("FHS_MTU").unwrap().parse().unwrap();
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

#[test]
fn we_initiate() {
    if !inner() && !prerequisites("we_initiate") {
        return;
    }
    if inner() {
        let seen = drive(
            vec![FASTD_ADDR.parse().unwrap()],
            Duration::from_secs(5),
            |s| !s.data_after_establish.is_empty(),
        );
        assert_eq!(
            seen.established,
            vec![(Role::Initiator, "salsa2012+umac".to_owned(), false, 1472)]
        );
        // fastd answered the finish with its keepalive: type 0x00, nonce 2, 24 bytes.
        let ka = &seen.data_after_establish[0];
        assert_eq!(ka.len(), 24);
        assert_eq!(&ka[..8], &[0, 0, 0, 0, 0, 0, 0, 2]);
        return;
    }
    let our_key = SecretKey::from_hex(OUR_SECRET).unwrap().public();
    let (_, log) = with_fastd(
        "we_initiate",
        &format!("peer \"ref\" {{ key \"{}\"; }}", our_key.to_hex()),
        1400,
    );
    assert!(
        log.contains("new session with <ref> established using method `salsa2012+umac'"),
        "{log}"
    );
}

#[test]
fn fastd_initiates() {
    if !inner() && !prerequisites("fastd_initiates") {
        return;
    }
    if inner() {
        let seen = drive(Vec::new(), Duration::from_secs(8), |s| {
            !s.established.is_empty()
        });
        assert_eq!(
            seen.established,
            vec![(Role::Responder, "salsa2012+umac".to_owned(), false, 1472)]
        );
        return;
    }
    let our_key = SecretKey::from_hex(OUR_SECRET).unwrap().public();
    let block = format!(
        "peer \"ref\" {{ key \"{}\"; remote 192.0.2.2:20000; }}",
        our_key.to_hex()
    );
    let (_, log) = with_fastd("fastd_initiates", &block, 1400);
    assert!(log.contains("new session with <ref> established"), "{log}");
}

#[test]
fn mtu_mismatch_error_reaches_fastd() {
    if !inner() && !prerequisites("mtu_mismatch_error_reaches_fastd") {
        return;
    }
    if inner() {
        let seen = drive(
            vec![FASTD_ADDR.parse().unwrap()],
            Duration::from_secs(2),
            |s| !s.failures.is_empty(),
        );
        assert!(seen.established.is_empty());
        assert!(seen.failures[0].contains("ErrorSent"), "{seen:?}");
        return;
    }
    let our_key = SecretKey::from_hex(OUR_SECRET).unwrap().public();
    let (_, log) = with_fastd(
        "mtu_mismatch_error_reaches_fastd",
        &format!("peer \"ref\" {{ key \"{}\"; }}", our_key.to_hex()),
        1280,
    );
    assert!(
        log.contains("received error: MTU configuration differs with peer"),
        "{log}"
    );
}

#[test]
fn fastd_answers_our_fast_reconnect_handshake() {
    if !inner() && !prerequisites("fastd_answers_our_fast_reconnect_handshake") {
        return;
    }
    if inner() {
        // A floating peer, so that unknown data may trigger a handshake.
        let seen = drive_with(Vec::new(), true, Duration::from_secs(5), |s| {
            !s.data_after_establish.is_empty()
        });
        assert_eq!(
            seen.established,
            vec![(Role::Initiator, "salsa2012+umac".to_owned(), false, 1472)]
        );
        assert_eq!(
            &seen.data_after_establish[0][..8],
            &[0, 0, 0, 0, 0, 0, 0, 2]
        );
        return;
    }
    let our_key = SecretKey::from_hex(OUR_SECRET).unwrap().public();
    let (_, log) = with_fastd(
        "fastd_answers_our_fast_reconnect_handshake",
        &format!("peer \"ref\" {{ key \"{}\"; }}", our_key.to_hex()),
        1400,
    );
    assert!(log.contains("new session with <ref> established"), "{log}");
}
