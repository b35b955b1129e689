//! A sealed-manifest skeleton for the tests that play the worker against the helper.
//! (`policy`'s own tests keep theirs: `policy` cannot dev-depend on a crate that depends on it.)

use policy::*;

/// A tun manifest with one synchronous hook (`kind`, run in `dir`) and nothing else
/// configured; tests set the fields their case is about.
pub fn one_hook(dir: &str, kind: HookKind, command: &str) -> Manifest {
    Manifest {
        mode: Mode::Tun,
        interface: IfNamePattern::new("").unwrap(),
        mtu: Mtu::new(1400).unwrap(),
        persist_interface: true,
        binds: vec![],
        packet_mark: None,
        peers: vec![],
        dynamic_peers: false,
        hooks: vec![HookSpec {
            kind,
            command: HookCommand::new(command).unwrap(),
            sync: true,
            cwd: AbsPath::new(dir).unwrap(),
        }],
        root_down: None,
        status_socket: None,
        status_owner: (0, 0),
        peer_dirs: vec![],
        uid: 65534,
        gid: 65534,
        local_key: PublicKey([0x8c; 32]),
        gateway: None,
        log: Default::default(),
        offload: false,
    }
}

/// The peer `alpha` with key 0x25…, no per-peer settings.
pub fn alpha_peer() -> PeerSpec {
    PeerSpec {
        name: Some(PeerName::new("alpha").unwrap()),
        key: PublicKey([0x25; 32]),
        interface: None,
        mtu: None,
        per_connection: false,
        down: None,
    }
}
