#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use policy::*;
use std::net::SocketAddr;

fn sealed() -> Policy {
    Policy::seal(manifest()).unwrap()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn open(p: &mut Policy) {
    p.note_opened(IfName::new("vpngateway").unwrap(), Mtu::new(1448).unwrap());
}

fn owner() -> Option<PeerRef> {
    Some(PeerRef {
        key: PublicKey(PEER_KEY),
        name: Some(PeerName::new("anyremote").unwrap()),
    })
}

fn up_env() -> HookEnv {
    HookEnv {
        interface: Some(IfName::new("vpngateway").unwrap()),
        interface_mtu: Some(Mtu::new(1448).unwrap()),
        peer_key: Some(PublicKey(PEER_KEY)),
        peer_name: Some(PeerName::new("anyremote").unwrap()),
        ..HookEnv::default()
    }
}

#[test]
fn before_sealing_only_reads_and_the_manifest() {
    assert!(check_unsealed(&Request::ReadFile {
        path: AbsPath::new("/etc/fastd/fastd.conf").unwrap()
    })
    .is_ok());
    assert!(check_unsealed(&Request::Manifest(Box::new(manifest()))).is_ok());
    assert!(check_unsealed(&Request::StatusSocket).is_err());
    let tun = Request::OpenTun {
        offload: false,
        name: None,
        mode: Mode::Tun,
        mtu: Mtu::new(1448).unwrap(),
        owner: owner(),
    };
    assert!(check_unsealed(&tun).is_err());
}

#[test]
fn manifest_checks() {
    let mut m = manifest();
    m.uid = 0;
    assert_eq!(Policy::seal(m).unwrap_err(), ManifestError::RootWorker);
    // The status socket is root's or the worker's, never somebody else's.
    for owner in [(1000, 0), (0, 1000), (65534, 1000)] {
        let mut m = manifest();
        m.status_owner = owner;
        assert_eq!(Policy::seal(m).unwrap_err(), ManifestError::StatusOwner);
    }
    for owner in [(0, 0), (65534, 0), (65534, 65534)] {
        let mut m = manifest();
        m.status_owner = owner;
        assert!(Policy::seal(m).is_ok(), "{owner:?}");
    }
    let mut m = manifest();
    m.root_down = Some(HookId(1));
    assert!(matches!(Policy::seal(m), Err(ManifestError::BadHookRef(1))));
    let mut m = manifest();
    m.hooks.push(hook(HookKind::PreUp, "again"));
    assert!(matches!(Policy::seal(m), Err(ManifestError::Duplicate(_))));
    let mut m = manifest();
    m.mode = Mode::Tap;
    m.interface = IfNamePattern::new("tap-%n").unwrap();
    assert_eq!(Policy::seal(m).unwrap_err(), ManifestError::TapPattern);
}

#[test]
fn sealed_refuses_a_second_manifest() {
    assert!(sealed()
        .check(&Request::Manifest(Box::new(manifest())))
        .is_err());
}

#[test]
fn open_tun_only_as_configured() {
    let p = sealed();
    let mtu = Mtu::new(1448).unwrap();
    let ok = Request::OpenTun {
        offload: false,
        name: Some(IfName::new("vpngateway").unwrap()),
        mode: Mode::Tun,
        mtu,
        owner: owner(),
    };
    assert!(p.check(&ok).is_ok());
    let other = Request::OpenTun {
        offload: false,
        name: Some(IfName::new("eth0").unwrap()),
        mode: Mode::Tun,
        mtu,
        owner: owner(),
    };
    assert!(p.check(&other).is_err());
    let tap = Request::OpenTun {
        offload: false,
        name: Some(IfName::new("vpngateway").unwrap()),
        mode: Mode::Tap,
        mtu,
        owner: None,
    };
    assert!(p.check(&tap).is_err());
    let big = Request::OpenTun {
        offload: false,
        name: Some(IfName::new("vpngateway").unwrap()),
        mode: Mode::Tun,
        mtu: Mtu::new(9000).unwrap(),
        owner: owner(),
    };
    assert!(p.check(&big).is_err());
    // The owner must be a configured peer, with its name, and only in tun/multitap mode.
    let owned = |key: [u8; 32], name: Option<&str>| Request::OpenTun {
        offload: false,
        name: Some(IfName::new("vpngateway").unwrap()),
        mode: Mode::Tun,
        mtu,
        owner: Some(PeerRef {
            key: PublicKey(key),
            name: name.map(|n| PeerName::new(n).unwrap()),
        }),
    };
    assert!(p.check(&owned(PEER_KEY, Some("anyremote"))).is_ok());
    assert!(p.check(&owned(PEER_KEY, None)).is_err(), "name missing");
    assert!(p.check(&owned(PEER_KEY, Some("other"))).is_err());
    assert!(p.check(&owned([9; 32], None)).is_err(), "unknown key");
    let ownerless = Request::OpenTun {
        offload: false,
        name: Some(IfName::new("vpngateway").unwrap()),
        mode: Mode::Tun,
        mtu,
        owner: None,
    };
    assert!(p.check(&ownerless).is_err());
    let mut p = p;
    open(&mut p);
    assert!(p.check(&ok).is_err(), "the same device twice");
}

/// One peer, no `on verify`, no peer directories: one device at most, whatever name
/// the kernel would give a second one.
#[test]
fn devices_are_capped_by_what_the_config_needs() {
    let mut p = sealed();
    assert_eq!(p.device_cap(), 1);
    open(&mut p);
    let second = Request::OpenTun {
        offload: false,
        name: None,
        mode: Mode::Tun,
        mtu: Mtu::new(1448).unwrap(),
        owner: owner(),
    };
    let err = p.check(&second).unwrap_err();
    assert!(err.0.contains("too many devices"), "{err}");
    let mut m = manifest();
    m.dynamic_peers = true;
    let p = Policy::seal(m).unwrap();
    assert_eq!(p.device_cap(), 1 + MAX_UNLISTED_PEER_DEVICES);
}

#[test]
fn bind_only_configured_addresses() {
    let p = sealed();
    let req = |addr: &str, peer| Request::BindUdp {
        addr: sa(addr),
        interface: None,
        mark: None,
        peer,
    };
    assert!(p.check(&req("0.0.0.0:10000", None)).is_ok());
    assert!(
        p.check(&req("0.0.0.0:10001", None)).is_err(),
        "another port"
    );
    assert!(
        p.check(&req("192.0.2.1:10000", None)).is_err(),
        "another address"
    );
    let marked = Request::BindUdp {
        addr: sa("0.0.0.0:10000"),
        interface: None,
        mark: Some(7),
        peer: None,
    };
    assert!(p.check(&marked).is_err());
    let dev = Request::BindUdp {
        addr: sa("0.0.0.0:10000"),
        interface: Some(IfName::new("eth0").unwrap()),
        mark: None,
        peer: None,
    };
    assert!(p.check(&dev).is_err());
    assert!(
        p.check(&req("0.0.0.0:0", Some(PeerId(0)))).is_ok(),
        "per-connection"
    );
    assert!(p.check(&req("[::]:0", Some(PeerId(0)))).is_ok());
    assert!(
        p.check(&req("0.0.0.0:53", Some(PeerId(0)))).is_err(),
        "fixed port"
    );
    assert!(
        p.check(&req("0.0.0.0:0", Some(PeerId(1)))).is_err(),
        "unknown peer"
    );
}

#[test]
fn status_socket_once() {
    let mut p = sealed();
    assert!(p.check(&Request::StatusSocket).is_ok());
    p.note_status_socket();
    assert!(p.check(&Request::StatusSocket).is_err());
    let mut m = manifest();
    m.status_socket = None;
    assert!(Policy::seal(m)
        .unwrap()
        .check(&Request::StatusSocket)
        .is_err());
}

#[test]
fn hooks_by_id_with_fitting_env() {
    let mut p = sealed();
    open(&mut p);
    let run = |hook, env| Request::RunHook {
        hook: HookId(hook),
        env,
    };
    assert!(p.check(&run(1, up_env())).is_ok());
    assert!(
        p.check(&run(99, up_env())).is_err(),
        "hook not in the config"
    );
    assert!(p.check(&run(0, HookEnv::default())).is_ok(), "pre-up");
    p.note_hook(HookKind::PreUp, &HookEnv::default());
    assert!(
        p.check(&run(0, HookEnv::default())).is_err(),
        "pre-up twice"
    );
    assert!(p.check(&run(0, up_env())).is_err());
    assert!(
        p.check(&run(3, HookEnv::default())).is_err(),
        "post-down is the helper's"
    );
    let mut e = up_env();
    e.interface = Some(IfName::new("eth0").unwrap());
    assert!(p.check(&run(1, e)).is_err(), "INTERFACE not opened");
    let mut e = up_env();
    e.interface_mtu = Some(Mtu::new(1500).unwrap());
    assert!(p.check(&run(1, e)).is_err());
    let mut e = up_env();
    e.peer_key = Some(PublicKey([1; 32]));
    assert!(p.check(&run(1, e)).is_err(), "unknown key");
    let mut e = up_env();
    e.peer_name = Some(PeerName::new("other").unwrap());
    assert!(p.check(&run(1, e)).is_err(), "name of another peer");
    let mut est = up_env();
    est.local = Some(sa("192.0.2.1:10000"));
    est.peer = Some(sa("192.0.2.2:50607"));
    assert!(p.check(&run(4, est.clone())).is_ok());
    assert!(p.check(&run(1, est)).is_err(), "addresses in up");
}

#[test]
fn peer_dirs_after_sealing() {
    let mut m = manifest();
    m.peer_dirs = vec![AbsPath::new("/etc/fastd/peers").unwrap()];
    let p = Policy::seal(m).unwrap();
    let file = |s: &str| Request::ReadFile {
        path: AbsPath::new(s).unwrap(),
    };
    assert!(p.check(&file("/etc/fastd/peers/alpha")).is_ok());
    assert!(p.check(&file("/etc/fastd/peers/.hidden")).is_err());
    assert!(p.check(&file("/etc/fastd/peers/sub/alpha")).is_err());
    assert!(p.check(&file("/etc/shadow")).is_err());
    assert!(p.check(&file("/etc/fastd/peers/../fastd.conf")).is_err());
    assert!(p.check(&file("/etc/fastd/peers/..")).is_err());
    assert!(p
        .check(&Request::ReadDir {
            path: AbsPath::new("/etc/fastd/peers").unwrap()
        })
        .is_ok());
    assert!(p
        .check(&Request::ReadDir {
            path: AbsPath::new("/etc").unwrap()
        })
        .is_err());
}

#[test]
fn syslog_only_when_configured_and_ready_once() {
    let p = sealed();
    assert!(
        p.check(&Request::OpenSyslog).is_err(),
        "no syslog configured"
    );
    assert!(check_unsealed(&Request::OpenSyslog).is_err());
    assert!(check_unsealed(&Request::Ready).is_err());
    let mut m = manifest();
    m.log.syslog = Some(policy::log::SyslogSpec {
        ident: policy::log::SyslogIdent::new("fastd@alpha").unwrap(),
        level: policy::log::LogLevel::Info,
    });
    let mut p = Policy::seal(m).unwrap();
    assert!(p.check(&Request::OpenSyslog).is_ok());
    assert!(p.check(&Request::Ready).is_ok());
    p.note_ready();
    assert!(p.check(&Request::Ready).is_err(), "ready twice");
    assert!(p.check(&Request::OpenSyslog).is_ok());
}

#[test]
fn a_syslog_ident_with_control_bytes_does_not_decode() {
    let mut m = manifest();
    m.log.syslog = Some(policy::log::SyslogSpec {
        ident: policy::log::SyslogIdent::new("qzident").unwrap(),
        level: policy::log::LogLevel::Info,
    });
    let bytes = encode(&Request::Manifest(Box::new(m))).unwrap();
    // Same length, so only the ident's validation can reject it.
    let at = bytes.windows(7).position(|w| w == b"qzident").unwrap();
    let mut bad = bytes.clone();
    bad[at + 2] = b'\n';
    assert!(decode::<Request>(&bad).is_err());
    assert!(decode::<Request>(&bytes).is_ok());
}

/// Offloads (virtio-net headers, TUNSETOFFLOAD) only where the sealed manifest asked for
/// them; the same device request without them stays allowed.
#[test]
fn offload_only_if_the_manifest_asked() {
    let req = Request::OpenTun {
        offload: true,
        name: Some(IfName::new("vpngateway").unwrap()),
        mode: Mode::Tun,
        mtu: Mtu::new(1448).unwrap(),
        owner: owner(),
    };
    let err = sealed().check(&req).unwrap_err();
    assert!(err.0.contains("offload"), "{err}");
    let plain = Request::OpenTun {
        offload: false,
        name: Some(IfName::new("vpngateway").unwrap()),
        mode: Mode::Tun,
        mtu: Mtu::new(1448).unwrap(),
        owner: owner(),
    };
    assert!(sealed().check(&plain).is_ok());
    let mut m = manifest();
    m.offload = true;
    let p = Policy::seal(m).unwrap();
    assert!(p.check(&req).is_ok());
}
