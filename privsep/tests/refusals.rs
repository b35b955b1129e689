#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Out-of-policy requests are refused, and the helper keeps serving with its state
//! intact. Drives the helper's request handler in-process and over a SEQPACKET
//! socketpair (no root needed: nothing here opens a device).

use policy::*;
use privsep::{ipc, Helper};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::Path;
use test_support::manifest;

/// The wire shape of `Request`, with plain strings where policy has typed values, so
/// that a hostile worker's bytes can be produced.
#[derive(serde::Serialize)]
#[allow(dead_code)]
enum RawRequest {
    ReadFile,
    ReadDir,
    ResolveDir,
    Manifest,
    OpenTun {
        name: Option<String>,
        mode: Mode,
        mtu: u32,
        owner: Option<([u8; 32], Option<String>)>,
        offload: bool,
    },
    CloseTun,
    BindUdp,
    StatusSocket,
    RunHook {
        hook: u32,
        env: RawEnv,
    },
}

#[derive(serde::Serialize, Default)]
struct RawEnv {
    interface: Option<String>,
    interface_mtu: Option<u32>,
    peer_key: Option<[u8; 32]>,
    peer_name: Option<String>,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
}

const KEY: [u8; 32] = [0x25; 32];

fn manifest(dir: &Path) -> Manifest {
    let d = dir.to_str().unwrap();
    let mut m = manifest::one_hook(d, HookKind::PreUp, "echo pre-up > pre-up.marker");
    let mut establish = m.hooks[0].clone();
    establish.kind = HookKind::Establish;
    establish.command = HookCommand::new(
        "echo \"$PEER_NAME $LOCAL_ADDRESS:$LOCAL_PORT $PEER_ADDRESS\" >> establish.marker",
    )
    .unwrap();
    m.hooks.push(establish);
    m.interface = IfNamePattern::new("fpsref0").unwrap();
    m.binds = vec![BindSpec {
        addr: "127.0.0.1:0".parse().unwrap(),
        interface: None,
        template: false,
        dual_stack: false,
    }];
    m.peers = vec![manifest::alpha_peer()];
    m.status_socket = Some(AbsPath::new(dir.join("status.sock").to_str().unwrap()).unwrap());
    m
}

fn sealed(dir: &Path) -> Helper {
    let mut h = Helper::new(vec![], 4242);
    let (r, _) = h.handle_bytes(&encode(&Request::Manifest(Box::new(manifest(dir)))).unwrap());
    assert_eq!(r, Response::Sealed);
    h
}

fn refused(h: &mut Helper, bytes: &[u8]) -> String {
    match h.handle_bytes(bytes) {
        (Response::Refused { reason }, None) => reason,
        other => panic!("expected a refusal, got {:?}", other.0),
    }
}

fn establish_env(peer_name: Option<&str>) -> RawEnv {
    RawEnv {
        peer_key: Some(KEY),
        peer_name: peer_name.map(str::to_owned),
        local: Some("192.0.2.1:10000".parse().unwrap()),
        peer: Some("192.0.2.2:50607".parse().unwrap()),
        ..RawEnv::default()
    }
}

fn run_establish(h: &mut Helper, name: &str) -> Response {
    let raw = RawRequest::RunHook {
        hook: 1,
        env: establish_env(Some(name)),
    };
    h.handle_bytes(&encode(&raw).unwrap()).0
}

#[test]
fn nothing_but_reads_before_the_manifest() {
    let mut h = Helper::new(vec![], 1);
    let req = Request::OpenTun {
        offload: false,
        name: None,
        mode: Mode::Tun,
        mtu: Mtu::new(1400).unwrap(),
        owner: None,
    };
    refused(&mut h, &encode(&req).unwrap());
    refused(&mut h, &encode(&Request::StatusSocket).unwrap());
    let mut bad = manifest(Path::new("/tmp"));
    bad.uid = 0;
    refused(&mut h, &encode(&Request::Manifest(Box::new(bad))).unwrap());
    assert!(!h.is_sealed());
}

#[test]
fn out_of_policy_requests_are_refused_and_serving_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = sealed(dir.path());

    // Another interface name, another mode, another MTU.
    for (name, mode, mtu) in [
        (Some("eth0"), Mode::Tun, 1400),
        (Some("fpsref0"), Mode::Tap, 1400),
        (Some("fpsref0"), Mode::Tun, 9000),
        (None, Mode::Tap, 1400),
    ] {
        let raw = RawRequest::OpenTun {
            offload: false,
            name: name.map(str::to_owned),
            mode,
            mtu,
            owner: Some((KEY, Some("alpha".to_owned()))),
        };
        refused(&mut h, &encode(&raw).unwrap());
    }
    // A hostile owner name.
    let raw = RawRequest::OpenTun {
        offload: false,
        name: Some("fpsref0".to_owned()),
        mode: Mode::Tun,
        mtu: 1400,
        owner: Some((KEY, Some("; rm -rf /".to_owned()))),
    };
    refused(&mut h, &encode(&raw).unwrap());
    // Another port, another address.
    for addr in ["127.0.0.1:5353", "0.0.0.0:0"] {
        let req = Request::BindUdp {
            addr: addr.parse().unwrap(),
            interface: None,
            mark: None,
            peer: None,
        };
        refused(&mut h, &encode(&req).unwrap());
    }
    // A per-connection socket for a peer that may not have one, or an unknown peer.
    for peer in [0, 7] {
        let req = Request::BindUdp {
            addr: "0.0.0.0:0".parse().unwrap(),
            interface: None,
            mark: None,
            peer: Some(PeerId(peer)),
        };
        refused(&mut h, &encode(&req).unwrap());
    }
    // A hook that is not in the config.
    refused(
        &mut h,
        &encode(&RawRequest::RunHook {
            hook: 99,
            env: RawEnv::default(),
        })
        .unwrap(),
    );
    // Hostile environment values: each fails validation before any shell sees it.
    let long = "A".repeat(10 * 1024);
    for hostile in [
        "; rm -rf /",
        "alpha\nEVIL=1",
        long.as_str(),
        "$(touch pwned)",
        "",
    ] {
        refused(
            &mut h,
            &encode(&RawRequest::RunHook {
                hook: 1,
                env: establish_env(Some(hostile)),
            })
            .unwrap(),
        );
        let mut env = establish_env(None);
        env.interface = Some(hostile.to_owned());
        env.interface_mtu = Some(1400);
        refused(
            &mut h,
            &encode(&RawRequest::RunHook { hook: 1, env }).unwrap(),
        );
    }
    // INTERFACE must be a device the helper opened.
    let mut env = establish_env(Some("alpha"));
    env.interface = Some("lo".to_owned());
    env.interface_mtu = Some(1400);
    refused(
        &mut h,
        &encode(&RawRequest::RunHook { hook: 1, env }).unwrap(),
    );
    // The name of another peer.
    assert!(matches!(
        run_establish(&mut h, "mallory"),
        Response::Refused { .. }
    ));
    // Garbage, an unknown variant, trailing bytes, an oversized message.
    refused(&mut h, b"\xff\xff\xff\xff garbage");
    refused(&mut h, &[]);
    let mut trailing = encode(&Request::StatusSocket).unwrap();
    trailing.push(0);
    refused(&mut h, &trailing);
    refused(&mut h, &vec![0u8; MAX_MESSAGE + 1]);
    // A second manifest.
    refused(
        &mut h,
        &encode(&Request::Manifest(Box::new(manifest(dir.path())))).unwrap(),
    );

    assert!(!dir.path().join("establish.marker").exists(), "no hook ran");
    assert!(!dir.path().join("pwned").exists());

    // Still serving, with the sealed state intact: the allowed hook runs once per
    // request, with the rendered environment, in the configured directory.
    assert_eq!(
        run_establish(&mut h, "alpha"),
        Response::HookDone { status: Some(0) }
    );
    let marker = std::fs::read_to_string(dir.path().join("establish.marker")).unwrap();
    assert_eq!(marker, "alpha 192.0.2.1:10000 192.0.2.2\n");
    let (r, fd) = h.handle_bytes(
        &encode(&Request::BindUdp {
            addr: "127.0.0.1:0".parse().unwrap(),
            interface: None,
            mark: None,
            peer: None,
        })
        .unwrap(),
    );
    assert!(matches!(r, Response::Udp { local } if local.ip().is_loopback() && local.port() != 0));
    assert!(fd.is_some());
    // pre-up: once.
    let pre = Request::RunHook {
        hook: HookId(0),
        env: HookEnv::default(),
    };
    assert_eq!(
        h.handle_bytes(&encode(&pre).unwrap()).0,
        Response::HookDone { status: Some(0) }
    );
    assert!(dir.path().join("pre-up.marker").exists());
    refused(&mut h, &encode(&pre).unwrap());
}

#[test]
fn oversized_datagrams_are_detected_on_the_socket() {
    let (a, b) = test_support::seqpacket_pair();
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    let big = vec![0u8; MAX_MESSAGE + 100];
    nix::sys::socket::send(
        std::os::fd::AsRawFd::as_raw_fd(&a),
        &big,
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
    assert!(matches!(
        ipc::recv(b.as_fd(), &mut buf),
        Err(ipc::IpcError::TooLarge)
    ));
    // The next datagram is read normally: one datagram, one message.
    let ok = encode(&Request::StatusSocket).unwrap();
    nix::sys::socket::send(
        std::os::fd::AsRawFd::as_raw_fd(&a),
        &ok,
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
    let n = ipc::recv(b.as_fd(), &mut buf).unwrap();
    assert_eq!(decode::<Request>(&buf[..n]).unwrap(), Request::StatusSocket);
    // A reply with a descriptor travels as SCM_RIGHTS.
    let file = std::fs::File::open("/dev/null").unwrap();
    ipc::send(
        b.as_fd(),
        &Response::StatusSocket.into(),
        Some(file.as_fd()),
    )
    .unwrap();
    drop(a);
    // A hook another test of this binary forks may hold a copy of `a` until it execs; the
    // end of the stream shows once every copy is closed.
    let mut r = ipc::recv(b.as_fd(), &mut buf);
    for _ in 0..500 {
        if !matches!(r, Err(ipc::IpcError::WouldBlock)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        r = ipc::recv(b.as_fd(), &mut buf);
    }
    assert!(matches!(r, Err(ipc::IpcError::Eof)), "{r:?}");
}

#[test]
fn status_socket_is_created_once_and_removed_at_teardown() {
    if !test_support::ready(&[]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut h = sealed(dir.path());
    let (r, fd) = h.handle_bytes(&encode(&Request::StatusSocket).unwrap());
    assert_eq!(r, Response::StatusSocket);
    assert!(fd.is_some());
    let sock = dir.path().join("status.sock");
    assert!(sock.exists());
    refused(&mut h, &encode(&Request::StatusSocket).unwrap());
    h.teardown();
    assert!(!sock.exists());
    assert!(
        dir.path().join("status.sock.lock").exists(),
        "fastd leaves the lock file"
    );
}

/// A compromised worker may not compose an interface name under an `%n` pattern: the
/// name is the pattern expanded for the owner, whose name must fit an interface name.
#[test]
fn interface_names_under_a_pattern_are_the_owners() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = manifest(dir.path());
    m.interface = IfNamePattern::new("adv%n").unwrap();
    // Peer directories: peers the manifest does not list may own interfaces.
    m.peer_dirs = vec![AbsPath::new(dir.path().to_str().unwrap()).unwrap()];
    let mut h = Helper::new(vec![], 1);
    let (r, _) = h.handle_bytes(&encode(&Request::Manifest(Box::new(m))).unwrap());
    assert_eq!(r, Response::Sealed);
    for (name, owner) in [
        ("adv$(id>x)", "alpha"),
        ("adv`id`", "alpha"),
        ("adv*", "alpha"),
        ("adv-rf", "alpha"),
        ("adv.x", "alpha"),
        ("advbeta", "alpha"),
        // Fits the peer-name alphabet, not an interface name's.
        ("adva+b", "a+b"),
        ("adva@b", "a@b"),
    ] {
        let raw = RawRequest::OpenTun {
            offload: false,
            name: Some(name.to_owned()),
            mode: Mode::Tun,
            mtu: 1400,
            owner: Some(([0x77; 32], Some(owner.to_owned()))),
        };
        let reason = refused(&mut h, &encode(&raw).unwrap());
        assert!(reason.contains("interface name"), "{name}: {reason}");
    }
    assert!(h.handle_bytes(&encode(&Request::Ready).unwrap()).0 == Response::Done);
}
