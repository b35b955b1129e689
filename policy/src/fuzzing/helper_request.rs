//! The body of the `helper_request` fuzz target as a plain function (replayed by
//! `tests/fuzz_corpus.rs`). The helper's request handling after sealing: `policy::Policy::decide` (decode + the
//! one `check`) over a sequence of arbitrary datagrams, with the state the helper records
//! (`note_opened`, `note_hook`...) applied after every request it would carry out.
//!
//! Input: byte 0 picks one of two sealed manifests (even: tun with an `adv%n` pattern,
//! peer directories, `on verify`, a per-connection peer; odd: TAP with a literal name);
//! the rest is a sequence of datagrams, each a little-endian u16 length and that many
//! bytes.
//!
//! Properties besides "no panic": every decision is a typed refusal with a reason, or a
//! request that `check` accepts again; a device the helper would open has the configured
//! mode and MTU, stays within the device cap, and under the pattern carries a name whose
//! worker-chosen part is `[A-Za-z0-9_.-]` (no shell metacharacter, no leading `-`/`.`);
//! a hook's `INTERFACE` is an open device; a file read stays directly inside a sealed peer
//! directory; the manifest is never accepted twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::*;

fn hook(kind: HookKind) -> HookSpec {
    HookSpec {
        kind,
        command: HookCommand::new("true").unwrap(),
        sync: true,
        cwd: AbsPath::new("/etc/fastd").unwrap(),
    }
}

fn manifest(tap: bool) -> Manifest {
    let peer = |name: &str, key: u8, per_connection| PeerSpec {
        name: Some(PeerName::new(name).unwrap()),
        key: PublicKey([key; 32]),
        interface: None,
        mtu: None,
        per_connection,
        down: Some(HookId(2)),
    };
    Manifest {
        mode: if tap { Mode::Tap } else { Mode::Tun },
        interface: IfNamePattern::new(if tap { "fztap" } else { "adv%n" }).unwrap(),
        mtu: Mtu::new(1400).unwrap(),
        persist_interface: true,
        binds: vec![BindSpec {
            addr: "0.0.0.0:10000".parse().unwrap(),
            interface: None,
            template: false,
            dual_stack: false,
        }],
        packet_mark: None,
        peers: vec![peer("alpha", 0x25, false), peer("beta", 0x26, true)],
        dynamic_peers: !tap,
        hooks: vec![
            hook(HookKind::PreUp),
            hook(HookKind::Up),
            hook(HookKind::Down),
            hook(HookKind::Establish),
            hook(HookKind::Verify),
        ],
        root_down: Some(HookId(2)),
        status_socket: Some(AbsPath::new("/run/fz.sock").unwrap()),
        status_owner: (0, 0),
        peer_dirs: if tap {
            vec![]
        } else {
            vec![AbsPath::new("/etc/fastd/peers").unwrap()]
        },
        uid: 65534,
        gid: 65534,
        local_key: PublicKey([0x8c; 32]),
        gateway: None,
        log: Default::default(),
        offload: false,
    }
}

fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

fn check_action(p: &Policy, req: &Request) {
    let m = p.manifest();
    assert_eq!(p.check(req), Ok(()), "decide and check disagree");
    match req {
        Request::Manifest(_) | Request::ResolveDir { .. } => panic!("allowed after sealing"),
        Request::ReadFile { path } => {
            let (dir, name) = path.as_str().rsplit_once('/').unwrap();
            assert!(m.peer_dirs.iter().any(|d| d.as_str() == dir), "{path:?}");
            assert!(!name.is_empty() && !name.starts_with('.'), "{path:?}");
        }
        Request::OpenTun {
            name,
            mode,
            mtu,
            offload,
            ..
        } => {
            assert!(!offload || m.offload);
            assert_eq!(*mode, m.mode);
            assert!(*mtu == m.mtu || m.peers.iter().any(|q| q.mtu == Some(*mtu)));
            assert!(p.open_devices().len() < p.device_cap());
            if let (Some(n), Some((prefix, _, _))) = (name, m.interface.parts()) {
                let fill = n
                    .as_str()
                    .strip_prefix(prefix)
                    .expect("the pattern's prefix");
                assert!(fill.bytes().all(plain), "{n:?}");
                assert!(!fill.starts_with(['-', '.']), "{n:?}");
            }
        }
        Request::RunHook { hook, env } => {
            assert!(m.hook(*hook).is_some());
            if let Some(i) = &env.interface {
                assert!(p.open_devices().iter().any(|(n, _)| n == i), "{i:?}");
            }
        }
        _ => {}
    }
}

/// What the helper records after carrying a request out.
fn apply(p: &mut Policy, req: &Request, opened: &mut u32) {
    match req {
        Request::OpenTun { name, mtu, .. } => {
            let n = name.clone().unwrap_or_else(|| {
                *opened += 1;
                IfName::new(&format!("tun{opened}")).unwrap()
            });
            p.note_opened(n, *mtu);
        }
        Request::CloseTun { name } => p.note_closed(name),
        Request::StatusSocket => p.note_status_socket(),
        Request::Ready => p.note_ready(),
        Request::RunHook { hook, env } => {
            if let Some(kind) = p.manifest().hook(*hook).map(|h| h.kind) {
                p.note_hook(kind, env);
            }
        }
        _ => {}
    }
}

pub fn helper_request(data: &[u8]) {
    let Some((&which, mut rest)) = data.split_first() else {
        return;
    };
    let mut p = Policy::seal(manifest(which % 2 == 1)).unwrap();
    let mut opened = 0;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let end = (2 + len).min(rest.len());
        let msg = &rest[2..end];
        rest = &rest[end..];
        match p.decide(msg) {
            Decision::Refuse(r) => assert!(!r.0.is_empty()),
            Decision::Execute(req) => {
                check_action(&p, &req);
                apply(&mut p, &req, &mut opened);
            }
        }
    }
}
