//! Replays every exchange recorded against the real fastd v22 (`vectors/handshake/`): with our
//! recorded ephemeral secret injected, the state machine must produce every handshake byte the
//! reference peer sent and the recorded session key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::support::{established, sends, unhex, Scripted};
use crate::handshake::fhmqvc::{self, Participants, Side};
use crate::handshake::{Handshake, HandshakeConfig, Mode, PeerConfig, Role};
use crate::keys::{PublicKey, SecretKey};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/handshake");

fn load(path: &std::path::Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            l.split_once(" = ")
                .or_else(|| l.strip_suffix(" =").map(|k| (k, "")))
        })
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn fastd_addr() -> SocketAddr {
    "192.0.2.1:10000".parse().unwrap()
}

fn check_crypto(v: &HashMap<String, String>, initiator_is_ref: bool) {
    let pk = |k: &str| PublicKey::from_hex(&v[k]).unwrap();
    let (ref_pub, fastd_pub) = (pk("ref_public"), pk("fastd_public"));
    let (ref_eph, fastd_eph) = (pk("ref_ephemeral_public"), pk("fastd_ephemeral_public"));
    let secret = SecretKey::from_hex(&v["ref_secret"]).unwrap();
    let eph = SecretKey::from_hex(&v["ref_ephemeral_secret"]).unwrap();
    assert_eq!(secret.public(), ref_pub);
    assert_eq!(eph.public(), ref_eph);
    let (p, side) = if initiator_is_ref {
        (
            Participants {
                initiator_key: &ref_pub,
                responder_key: &fastd_pub,
                initiator_handshake_key: &ref_eph,
                responder_handshake_key: &fastd_eph,
            },
            Side::Initiator,
        )
    } else {
        (
            Participants {
                initiator_key: &fastd_pub,
                responder_key: &ref_pub,
                initiator_handshake_key: &fastd_eph,
                responder_handshake_key: &ref_eph,
            },
            Side::Responder,
        )
    };
    let shared = fhmqvc::shared_secret(side, &secret, &eph, &p).unwrap();
    assert_eq!(hex(shared.sigma()), v["sigma"]);
    assert_eq!(hex(shared.k1()), v["K1_handshake_key"]);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn machine(
    v: &HashMap<String, String>,
    methods: Vec<String>,
    remotes: Vec<SocketAddr>,
    pre_v22: bool,
    t0: Instant,
) -> Handshake {
    let mut config = HandshakeConfig::new(
        SecretKey::from_hex(&v["ref_secret"]).unwrap(),
        Mode::Tun,
        v["mtu"].parse().unwrap(),
        methods.clone(),
    );
    config.pre_v22 = pre_v22;
    let peer = PeerConfig {
        name: "fastd".into(),
        key: PublicKey::from_hex(&v["fastd_public"]).unwrap(),
        remotes,
        floating: false,
        methods,
        mtu: v["mtu"].parse().unwrap(),
        limits: Vec::new(),
    };
    Handshake::with_entropy(
        config,
        vec![peer],
        t0,
        Box::new(Scripted::with_secret(&v["ref_ephemeral_secret"])),
    )
}

fn replay_initiator(v: &HashMap<String, String>) {
    check_crypto(v, true);
    let t0 = Instant::now();
    let pre_v22 = v["compat"] == "1" && !v["pkt1_init_sent_by_ref"].starts_with("c8");
    let mut hs = machine(
        v,
        vec![v["method"].clone()],
        vec![fastd_addr()],
        pre_v22,
        t0,
    );
    assert_eq!(hs.poll_timeout(), Some(t0));
    let out = hs.handle_timeout(t0);
    let pkt1 = unhex(&v["pkt1_init_sent_by_ref"]);
    let sent = sends(&out);
    if pre_v22 {
        assert_eq!(sent, vec![(fastd_addr(), pkt1)]);
    } else {
        // Both formats, pre-v22 copy first (§1.4).
        assert_eq!(
            sent,
            vec![(fastd_addr(), pkt1[12..].to_vec()), (fastd_addr(), pkt1)]
        );
    }

    let out = hs.handle_handshake(
        &unhex(&v["pkt2_response_sent_by_fastd"]),
        fastd_addr(),
        t0 + Duration::from_millis(5),
    );
    assert_eq!(
        sends(&out),
        vec![(fastd_addr(), unhex(&v["pkt3_finish_sent_by_ref"]))]
    );
    let est = established(&out);
    assert_eq!(est.len(), 1);
    let e = &est[0];
    assert_eq!(e.role, Role::Initiator);
    assert_eq!(e.method, v["method"]);
    assert_eq!(hex(&e.session_key), v["session_key"]);
    assert_eq!(
        e.session_key.len(),
        v["session_key_length"].parse::<usize>().unwrap()
    );
    assert_eq!(e.compat, v["compat"] == "1");
    assert_eq!(e.remote, fastd_addr());
    assert_eq!(e.peer.to_hex(), v["fastd_public"]);
    data_type_matches(e, v);
}

fn replay_responder(v: &HashMap<String, String>) {
    check_crypto(v, false);
    let t0 = Instant::now();
    let methods: Vec<String> = v["methods_offered_by_ref"]
        .split(',')
        .map(str::to_owned)
        .collect();
    let mut hs = machine(v, methods, Vec::new(), false, t0);
    assert_eq!(hs.poll_timeout(), None);
    let pkt1 = unhex(&v["pkt1_init_sent_by_fastd"]);
    // The compat copy of fastd's initial handshake is ignored, the L2TP copy answered.
    assert!(sends(&hs.handle_handshake(&pkt1[12..], fastd_addr(), t0)).is_empty());
    let out = hs.handle_handshake(&pkt1, fastd_addr(), t0);
    assert_eq!(
        sends(&out),
        vec![(fastd_addr(), unhex(&v["pkt2_response_sent_by_ref"]))]
    );
    assert!(established(&out).is_empty());

    let out = hs.handle_handshake(
        &unhex(&v["pkt3_finish_sent_by_fastd"]),
        fastd_addr(),
        t0 + Duration::from_millis(5),
    );
    assert!(sends(&out).is_empty());
    let est = established(&out);
    assert_eq!(est.len(), 1, "{out:?}");
    let e = &est[0];
    assert_eq!(e.role, Role::Responder);
    assert_eq!(e.method, v["method"]);
    assert_eq!(hex(&e.session_key), v["session_key"]);
    assert_eq!(e.compat, v["compat"] == "1");
    data_type_matches(e, v);
}

/// The type byte of fastd's first data packet (`null@l2tp` keepalives carry an L2TP header).
fn data_type_matches(e: &crate::handshake::Established, v: &HashMap<String, String>) {
    let first = unhex(&v["data_from_fastd_1"]);
    if first[0] != 0xC8 {
        assert_eq!(e.data_type_byte(), first[0]);
    }
}

#[test]
fn every_recorded_exchange_replays() {
    let mut names: Vec<_> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    names.sort();
    let (mut init, mut resp) = (0, 0);
    for path in &names {
        let v = load(path);
        match v["role_of_reference_peer"].as_str() {
            "initiator" => {
                replay_initiator(&v);
                init += 1;
            }
            "responder" => {
                replay_responder(&v);
                resp += 1;
            }
            other => panic!("{}: role {other}", path.display()),
        }
    }
    assert_eq!((init, resp), (19, 3));
}
