#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The decoder never panics on any input, and every valid message round-trips.
mod common;

use policy::*;
use proptest::prelude::*;
use std::net::{IpAddr, SocketAddr};

fn ifname() -> impl Strategy<Value = IfName> {
    "[a-z][a-z0-9_.-]{0,14}".prop_map(|s| IfName::new(&s).unwrap())
}

fn peer_name() -> impl Strategy<Value = PeerName> {
    "[a-zA-Z0-9][a-zA-Z0-9._+@=,-]{0,40}".prop_map(|s| PeerName::new(&s).unwrap())
}

fn sockaddr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| SocketAddr::new(IpAddr::from(a), p)),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(a, p)| SocketAddr::new(IpAddr::from(a), p)),
    ]
}

fn mtu() -> impl Strategy<Value = Mtu> {
    (576u32..=65535).prop_map(|m| Mtu::new(m).unwrap())
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Tap), Just(Mode::Multitap), Just(Mode::Tun)]
}

fn env() -> impl Strategy<Value = HookEnv> {
    (
        proptest::option::of(ifname()),
        proptest::option::of(mtu()),
        proptest::option::of(any::<[u8; 32]>().prop_map(PublicKey)),
        proptest::option::of(peer_name()),
        proptest::option::of(sockaddr()),
        proptest::option::of(sockaddr()),
    )
        .prop_map(
            |(interface, interface_mtu, peer_key, peer_name, local, peer)| HookEnv {
                interface,
                interface_mtu,
                peer_key,
                peer_name,
                local,
                peer,
            },
        )
}

fn path() -> impl Strategy<Value = AbsPath> {
    "/[a-z/._-]{0,60}".prop_map(|s| AbsPath::new(&s).unwrap())
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        path().prop_map(|path| Request::ReadFile { path }),
        path().prop_map(|path| Request::ReadDir { path }),
        path().prop_map(|path| Request::ResolveDir { path }),
        Just(Request::Manifest(Box::new(common::manifest()))),
        (
            proptest::option::of(ifname()),
            mode(),
            mtu(),
            proptest::option::of((any::<[u8; 32]>(), proptest::option::of(peer_name())))
        )
            .prop_map(|(name, mode, mtu, owner)| Request::OpenTun {
                offload: false,
                name,
                mode,
                mtu,
                owner: owner.map(|(k, name)| PeerRef {
                    key: PublicKey(k),
                    name
                }),
            }),
        ifname().prop_map(|name| Request::CloseTun { name }),
        (
            sockaddr(),
            proptest::option::of(ifname()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>().prop_map(PeerId))
        )
            .prop_map(|(addr, interface, mark, peer)| Request::BindUdp {
                addr,
                interface,
                mark,
                peer
            }),
        Just(Request::StatusSocket),
        (any::<u32>(), env()).prop_map(|(h, env)| Request::RunHook {
            hook: HookId(h),
            env
        }),
    ]
}

proptest! {
    #[test]
    fn decode_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode::<Request>(&bytes);
        let _ = decode::<Response>(&bytes);
    }

    #[test]
    fn requests_round_trip(req in request()) {
        let bytes = encode(&req).unwrap();
        prop_assert_eq!(decode::<Request>(&bytes).unwrap(), req);
    }

    #[test]
    fn trailing_bytes_rejected(req in request(), extra in proptest::collection::vec(any::<u8>(), 1..16)) {
        let mut bytes = encode(&req).unwrap();
        bytes.extend_from_slice(&extra);
        prop_assert!(decode::<Request>(&bytes).is_err());
    }

    #[test]
    fn mutated_messages_never_panic(req in request(), pos in any::<usize>(), val in any::<u8>()) {
        let mut bytes = encode(&req).unwrap();
        if !bytes.is_empty() {
            let i = pos % bytes.len();
            bytes[i] = val;
        }
        let _ = decode::<Request>(&bytes);
    }
}

#[test]
fn unknown_variant_rejected() {
    let bytes = 200u32.to_le_bytes();
    assert!(matches!(
        decode::<Request>(&bytes),
        Err(WireError::Malformed(_))
    ));
    assert!(matches!(
        decode::<Response>(&bytes),
        Err(WireError::Malformed(_))
    ));
}

#[test]
fn oversized_rejected() {
    let big = vec![0u8; MAX_MESSAGE + 1];
    assert!(matches!(decode::<Request>(&big), Err(WireError::TooLarge)));
    let file = Response::File {
        bytes: vec![0; MAX_MESSAGE],
    };
    assert!(matches!(encode(&file), Err(WireError::TooLarge)));
    assert!(encode(&Response::File {
        bytes: vec![0; MAX_FILE]
    })
    .is_ok());
}

#[test]
fn invalid_values_fail_to_decode() {
    // A length-prefixed string where a PeerName/IfName is expected is re-validated.
    #[derive(serde::Serialize)]
    enum Raw {
        _ReadFile,
        _ReadDir,
        _ResolveDir,
        _Manifest,
        _OpenTun,
        CloseTun { name: String },
    }
    for bad in ["; rm -rf /", "a\nb", &"x".repeat(10 * 1024)] {
        let bytes = encode(&Raw::CloseTun {
            name: bad.to_owned(),
        })
        .unwrap();
        assert!(decode::<Request>(&bytes).is_err(), "{bad:?}");
    }
    let good = encode(&Raw::CloseTun {
        name: "tun0".into(),
    })
    .unwrap();
    assert_eq!(
        decode::<Request>(&good).unwrap(),
        Request::CloseTun {
            name: IfName::new("tun0").unwrap()
        }
    );
}
