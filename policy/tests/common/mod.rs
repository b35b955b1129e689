//! A manifest like the seed tutorial's alpha (TUN, one unnamed peer, bind 10000).
#![allow(dead_code)]

use policy::*;
use std::net::SocketAddr;

pub const ALPHA_KEY: [u8; 32] = [0x8c; 32];
pub const PEER_KEY: [u8; 32] = [0x25; 32];

pub fn hook(kind: HookKind, cmd: &str) -> HookSpec {
    HookSpec {
        kind,
        command: HookCommand::new(cmd).unwrap(),
        sync: matches!(kind, HookKind::PreUp | HookKind::PostDown),
        cwd: AbsPath::new("/etc/fastd/alpha").unwrap(),
    }
}

pub fn manifest() -> Manifest {
    let addr: SocketAddr = "0.0.0.0:10000".parse().unwrap();
    Manifest {
        mode: Mode::Tun,
        interface: IfNamePattern::new("vpngateway").unwrap(),
        mtu: Mtu::new(1448).unwrap(),
        persist_interface: true,
        binds: vec![BindSpec {
            addr,
            interface: None,
            template: false,
            dual_stack: false,
        }],
        packet_mark: None,
        peers: vec![PeerSpec {
            name: Some(PeerName::new("anyremote").unwrap()),
            key: PublicKey(PEER_KEY),
            interface: None,
            mtu: None,
            per_connection: true,
            down: Some(HookId(2)),
        }],
        dynamic_peers: false,
        hooks: vec![
            hook(HookKind::PreUp, "./pre-up"),
            hook(HookKind::Up, "./interface-up"),
            hook(HookKind::Down, "./interface-down"),
            hook(HookKind::PostDown, "./post-down"),
            hook(HookKind::Establish, "./establish"),
            hook(HookKind::Verify, "./verify"),
        ],
        root_down: Some(HookId(2)),
        status_socket: Some(AbsPath::new("/run/fastd-test.sock").unwrap()),
        peer_dirs: vec![],
        uid: 65534,
        gid: 65534,
        status_owner: (0, 0),
        local_key: PublicKey(ALPHA_KEY),
        gateway: None,
        log: Default::default(),
        offload: false,
    }
}
