#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The helper only creates TUN/TAP devices: another program's persistent device whose
//! name fits the pattern is neither attached nor changed. Each test runs in a network
//! namespace of its own thread (unshare), which disappears with the thread.

use policy::*;
use privsep::Helper;
use std::process::Command;
use test_support::manifest;

const ALPHA: [u8; 32] = [0x25; 32];
const BETA: [u8; 32] = [0x26; 32];

fn root() -> bool {
    test_support::ready(&[])
}

/// This thread (and what it spawns) gets a fresh network namespace.
fn own_netns() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
}

fn ip(args: &str) -> String {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn peer(name: &str, key: [u8; 32]) -> PeerSpec {
    PeerSpec {
        name: Some(PeerName::new(name).unwrap()),
        key: PublicKey(key),
        interface: None,
        mtu: None,
        per_connection: false,
        down: Some(HookId(0)),
    }
}

fn sealed(dir: &str) -> Helper {
    let m = Manifest {
        interface: IfNamePattern::new("fps-%n").unwrap(),
        peers: vec![peer("alpha", ALPHA), peer("beta", BETA)],
        root_down: Some(HookId(0)),
        ..manifest::one_hook(dir, HookKind::Down, "echo \"$INTERFACE\" >> down.marker")
    };
    let mut h = Helper::new(vec![], 1);
    let (r, _) = h.handle_bytes(&encode(&Request::Manifest(Box::new(m))).unwrap());
    assert_eq!(r, Response::Sealed);
    h
}

fn open(h: &mut Helper, name: &str, key: [u8; 32], peer: &str) -> (Response, bool) {
    let req = Request::OpenTun {
        offload: false,
        name: Some(IfName::new(name).unwrap()),
        mode: Mode::Tun,
        mtu: Mtu::new(1400).unwrap(),
        owner: Some(PeerRef {
            key: PublicKey(key),
            name: Some(PeerName::new(peer).unwrap()),
        }),
    };
    let (r, fd) = h.handle_bytes(&encode(&req).unwrap());
    (r, fd.is_some())
}

#[test]
fn a_foreign_persistent_device_is_not_taken_over() {
    if !root() {
        return;
    }
    std::thread::spawn(|| {
        own_netns();
        let dir = tempfile::tempdir().unwrap();
        ip("tuntap add dev fps-alpha mode tun");
        ip("link set dev fps-alpha mtu 1280");
        let before = ip("-o link show dev fps-alpha");
        assert!(!before.contains(",UP"), "{before}");

        let mut h = sealed(dir.path().to_str().unwrap());
        let (r, fd) = open(&mut h, "fps-alpha", ALPHA, "alpha");
        assert!(
            matches!(&r, Response::Failed { reason, .. } if reason.contains("TUNSETIFF")),
            "{r:?}"
        );
        assert!(!fd, "no descriptor of the foreign device");
        assert_eq!(
            ip("-o link show dev fps-alpha"),
            before,
            "MTU/state changed"
        );

        // A fresh name still works, and teardown removes only ours.
        let (r, fd) = open(&mut h, "fps-beta", BETA, "beta");
        assert!(matches!(r, Response::Tun { .. }), "{r:?}");
        assert!(fd);
        assert!(ip("-o link show dev fps-beta").contains("mtu 1400"));
        h.teardown();
        assert_eq!(
            ip("-o link show dev fps-alpha"),
            before,
            "teardown touched it"
        );
        assert!(!ip("-o link show").contains("fps-beta"));
        let down = std::fs::read_to_string(dir.path().join("down.marker")).unwrap();
        assert_eq!(down, "fps-beta\n", "on down only for our own device");
    })
    .join()
    .unwrap();
}

/// Not a check: prints how long teardown takes with 200 devices, each with an `on down`
/// (`cargo test --profile ci -p privsep --test foreign_tun -- --ignored --nocapture`).
#[test]
#[ignore]
fn teardown_of_200_devices() {
    if !root() {
        return;
    }
    std::thread::spawn(|| {
        own_netns();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let mut m = Manifest {
            interface: IfNamePattern::new("fps%k").unwrap(),
            peer_dirs: vec![AbsPath::new(d).unwrap()],
            ..manifest_for_measure(d)
        };
        m.hooks[0].command = HookCommand::new("true").unwrap();
        let mut h = Helper::new(vec![], 1);
        let (r, _) = h.handle_bytes(&encode(&Request::Manifest(Box::new(m))).unwrap());
        assert_eq!(r, Response::Sealed);
        for i in 0..200u8 {
            let key = [i; 32];
            let name = format!("fps{}", &PublicKey(key).to_hex()[..12]);
            let req = Request::OpenTun {
                offload: false,
                name: Some(IfName::new(&name).unwrap()),
                mode: Mode::Tun,
                mtu: Mtu::new(1400).unwrap(),
                owner: Some(PeerRef {
                    key: PublicKey(key),
                    name: None,
                }),
            };
            let (r, _) = h.handle_bytes(&encode(&req).unwrap());
            assert!(matches!(r, Response::Tun { .. }), "{i}: {r:?}");
        }
        let t = std::time::Instant::now();
        h.teardown();
        eprintln!("teardown of 200 devices: {:?}", t.elapsed());
    })
    .join()
    .unwrap();
}

fn manifest_for_measure(dir: &str) -> Manifest {
    Manifest {
        dynamic_peers: true,
        root_down: Some(HookId(0)),
        ..manifest::one_hook(dir, HookKind::Down, "true")
    }
}
