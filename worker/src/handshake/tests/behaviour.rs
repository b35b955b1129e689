//! Behaviour rules of §2.7–2.10 and §4, with two of our state machines (or hand-made packets)
//! talking to each other.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::support::{established, events, sends, Scripted};
use crate::handshake::tlv::{id, Records};
use crate::handshake::{
    classify, Event, FailReason, Handshake, HandshakeConfig, Mode, Output, PacketKind, PeerConfig,
    Role,
};
use crate::keys::{PublicKey, SecretKey};

const A_SECRET: &str = "78059e020a069a93b6c6d4fbc29e41bae75a0e63c7a84eda629dd5645be71354";
const B_SECRET: &str = "b0f1ab3fa2d1cb4c6ed6e9a79e0c31d0b8b1a5a2f1e07f8ef0a6a7c11f9b2c5f";
const C_SECRET: &str = "5035de5b4ea448b74e9a373765207095057a9485fd9dca5fadb9c1b86347bd35";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn a_addr() -> SocketAddr {
    addr("192.0.2.1:10000")
}

fn b_addr() -> SocketAddr {
    addr("198.51.100.1:10000")
}

fn public(secret: &str) -> PublicKey {
    SecretKey::from_hex(secret).unwrap().public()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

struct Side {
    secret: &'static str,
    methods: Vec<String>,
    mtu: u16,
    remotes: Vec<SocketAddr>,
    pre_v22: bool,
    on_verify: bool,
    secure_handshakes: bool,
}

impl Side {
    fn new(secret: &'static str) -> Side {
        Side {
            secret,
            methods: strings(&["salsa2012+umac"]),
            mtu: 1400,
            remotes: Vec::new(),
            pre_v22: false,
            on_verify: false,
            secure_handshakes: true,
        }
    }

    /// A machine knowing one peer with key `peer_secret`'s public key.
    fn build(&self, peer_secret: Option<&str>, t0: Instant, entropy: Scripted) -> Handshake {
        let mut config = HandshakeConfig::new(
            SecretKey::from_hex(self.secret).unwrap(),
            Mode::Tun,
            self.mtu,
            self.methods.clone(),
        );
        config.pre_v22 = self.pre_v22;
        config.on_verify = self.on_verify;
        config.secure_handshakes = self.secure_handshakes;
        let peers = peer_secret
            .map(|s| PeerConfig {
                name: "peer".into(),
                key: public(s),
                remotes: self.remotes.clone(),
                floating: false,
                methods: self.methods.clone(),
                mtu: self.mtu,
                limits: Vec::new(),
            })
            .into_iter()
            .collect();
        Handshake::with_entropy(config, peers, t0, Box::new(entropy))
    }
}

/// A initiates towards B (B is passive, A is its floating peer).
fn pair(a: Side, b: Side, t0: Instant) -> (Handshake, Handshake) {
    let a = Side {
        remotes: vec![b_addr()],
        ..a
    };
    let ha = a.build(Some(B_SECRET), t0, Scripted::default());
    let hb = b.build(Some(A_SECRET), t0, Scripted::default());
    (ha, hb)
}

/// The L2TP-style copy of A's initial handshake (the last datagram sent).
fn init_of(out: &[Output]) -> Vec<u8> {
    sends(out).pop().unwrap().1
}

fn single_send(out: &[Output]) -> Vec<u8> {
    let s = sends(out);
    assert_eq!(s.len(), 1, "{out:?}");
    s.into_iter().next().unwrap().1
}

fn reasons(out: &[Output]) -> Vec<FailReason> {
    events(out)
        .into_iter()
        .filter_map(|e| match e {
            Event::HandshakeFailed { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

/// Offset of a record's value in a framed datagram.
fn value_offset(datagram: &[u8], record: u16) -> usize {
    let PacketKind::Handshake { body, .. } = classify(datagram) else {
        panic!("not a handshake")
    };
    let header = datagram.len() - body.len() + 4;
    header
        + Records::parse(&body[4..])
            .value_offset(record)
            .expect("record present")
}

fn init_events(out: &[Output]) -> Vec<(Option<PublicKey>, SocketAddr, bool)> {
    events(out)
        .into_iter()
        .filter_map(|e| match e {
            Event::HandshakeSent {
                peer,
                remote,
                run_on_connect,
            } => Some((peer, remote, run_on_connect)),
            _ => None,
        })
        .collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn full_handshake_between_two_machines() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(Side::new(A_SECRET), Side::new(B_SECRET), t0);
    let a_first = a.handle_timeout(t0);
    let pkt1 = init_of(&a_first);
    let out = b.handle_handshake(&pkt1, a_addr(), t0);
    let pkt2 = single_send(&out);
    assert_eq!(&pkt2[..2], &[0xC8, 0x03]);
    let out = a.handle_handshake(&pkt2, b_addr(), t0 + ms(1));
    let ea = established(&out);
    let pkt3 = single_send(&out);
    let out = b.handle_handshake(&pkt3, a_addr(), t0 + ms(2));
    let eb = established(&out);
    assert_eq!((ea.len(), eb.len()), (1, 1));
    assert_eq!(ea[0].role, Role::Initiator);
    assert_eq!(eb[0].role, Role::Responder);
    assert_eq!(*ea[0].session_key, *eb[0].session_key);
    assert_eq!(ea[0].session_key.len(), 1472);
    assert!(!ea[0].compat && !eb[0].compat);
    assert_eq!(eb[0].peer, public(A_SECRET));
    assert_eq!(b.peer_address(&public(A_SECRET)), Some(a_addr()));
    // The initiator keeps a retry 17.5–22.5 s later until the session is confirmed.
    assert_eq!(a.poll_timeout(), Some(t0 + ms(1) + ms(17_500)));
    // The retry of an established peer does not run `on connect`; the first attempt did.
    let first = init_events(&a_first);
    assert_eq!(first, vec![(Some(public(B_SECRET)), b_addr(), true)]);
    let retry = a.handle_timeout(a.poll_timeout().unwrap());
    assert_eq!(
        init_events(&retry),
        vec![(Some(public(B_SECRET)), b_addr(), false)]
    );
    a.session_confirmed(&public(B_SECRET));
    assert_eq!(a.poll_timeout(), None);
    assert_eq!(b.poll_timeout(), None);
}

fn received(out: &[Output]) -> Vec<(PublicKey, SocketAddr, u8, Option<String>)> {
    events(out)
        .into_iter()
        .filter_map(|e| match e {
            Event::HandshakeReceived {
                peer,
                remote,
                packet,
                version,
            } => Some((peer, remote, packet, version)),
            _ => None,
        })
        .collect()
}

/// Each packet of a handshake that passes fastd's checks is reported once, for fastd's
/// `received handshake [response|finish] from <p>[addr] using fastd v22` lines; a repeated
/// packet 1 (not answered) and a reply for a forgotten handshake key are not.
#[test]
fn received_handshakes_are_reported_with_the_peer_version() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(Side::new(A_SECRET), Side::new(B_SECRET), t0);
    let v22 = Some("v22".to_owned());
    let pkt1 = init_of(&a.handle_timeout(t0));
    let out = b.handle_handshake(&pkt1, a_addr(), t0);
    assert_eq!(
        received(&out),
        vec![(public(A_SECRET), a_addr(), 1, v22.clone())]
    );
    let pkt2 = single_send(&out);
    // Not answered again within 15 s: no report either.
    assert!(received(&b.handle_handshake(&pkt1, a_addr(), t0 + ms(1))).is_empty());
    // A reply naming an ephemeral key we do not have is refused before the report.
    let mut stale = pkt2.clone();
    let at = value_offset(&pkt2, id::RECIPIENT_HANDSHAKE_KEY);
    stale[at] ^= 1;
    let out = a.handle_handshake(&stale, b_addr(), t0 + ms(1));
    assert!(received(&out).is_empty());
    assert_eq!(reasons(&out), vec![FailReason::UnknownHandshakeKey]);
    let out = a.handle_handshake(&pkt2, b_addr(), t0 + ms(1));
    assert_eq!(
        received(&out),
        vec![(public(B_SECRET), b_addr(), 2, v22.clone())]
    );
    let pkt3 = single_send(&out);
    let out = b.handle_handshake(&pkt3, a_addr(), t0 + ms(2));
    assert_eq!(received(&out), vec![(public(A_SECRET), a_addr(), 3, v22)]);
    assert_eq!(established(&out).len(), 1);
}

#[test]
fn tag_is_always_required_whatever_secure_handshakes_says() {
    for secure in [true, false] {
        let t0 = Instant::now();
        let a_side = Side {
            secure_handshakes: secure,
            ..Side::new(A_SECRET)
        };
        let (mut a, mut b) = pair(a_side, Side::new(B_SECRET), t0);
        let pkt1 = init_of(&a.handle_timeout(t0));
        let pkt2 = single_send(&b.handle_handshake(&pkt1, a_addr(), t0));
        let tag_at = value_offset(&pkt2, id::TLV_MAC);

        let mut bad_tag = pkt2.clone();
        bad_tag[tag_at + 31] ^= 1;
        let out = a.handle_handshake(&bad_tag, b_addr(), t0);
        assert!(sends(&out).is_empty() && established(&out).is_empty());
        assert_eq!(reasons(&out), vec![FailReason::InvalidTag]);

        // A covered byte changed (the version record): the tag no longer matches.
        let mut changed = pkt2.clone();
        let v_at = value_offset(&pkt2, id::VERSION_NAME);
        changed[v_at + 2] = b'3';
        assert_eq!(
            reasons(&a.handle_handshake(&changed, b_addr(), t0)),
            vec![FailReason::InvalidTag]
        );

        // Without a tag record (its type turned into an ignored one): dropped too.
        let mut untagged = pkt2.clone();
        untagged[tag_at - 4] = 0x1F;
        let out = a.handle_handshake(&untagged, b_addr(), t0);
        assert!(sends(&out).is_empty() && established(&out).is_empty());
        assert_eq!(reasons(&out), vec![FailReason::Malformed]);

        // The genuine packet still works afterwards.
        assert_eq!(
            established(&a.handle_handshake(&pkt2, b_addr(), t0)).len(),
            1
        );
    }
}

/// A v22 error reply in L2TP format: type, flags, reply code, error detail.
fn error_reply(ty: u8, code: u8, record: u8) -> Vec<u8> {
    let mut v = vec![
        0xC8, 0x03, 0x00, 0x0C, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0x14,
    ];
    v.extend_from_slice(&[
        0, 0, 1, 0, ty, 3, 0, 1, 0, 1, 1, 0, 1, 0, code, 2, 0, 1, 0, record,
    ]);
    v
}

#[test]
fn mtu_mismatch_is_answered_with_an_error() {
    let t0 = Instant::now();
    let b_side = Side {
        mtu: 1280,
        ..Side::new(B_SECRET)
    };
    let (mut a, mut b) = pair(Side::new(A_SECRET), b_side, t0);
    let pkt1 = init_of(&a.handle_timeout(t0));
    // Packet 1 carries no MTU, so B answers; A finds B's MTU in packet 2.
    let pkt2 = single_send(&b.handle_handshake(&pkt1, a_addr(), t0));
    let out = a.handle_handshake(&pkt2, b_addr(), t0);
    assert_eq!(single_send(&out), error_reply(3, 2, 0x0B));
    assert!(established(&out).is_empty());
    assert_eq!(
        reasons(&out),
        vec![FailReason::ErrorSent {
            code: 2,
            record: 0x0B
        }]
    );
    // B logs the received error and changes nothing.
    let out = b.handle_handshake(&error_reply(3, 2, 0x0B), a_addr(), t0);
    assert!(sends(&out).is_empty());
    assert_eq!(
        reasons(&out),
        vec![FailReason::ErrorReceived {
            code: 2,
            record: 0x0B
        }]
    );
}

#[test]
fn method_mismatch_and_negotiation() {
    let t0 = Instant::now();
    let b_side = Side {
        methods: strings(&["aes128-gcm"]),
        ..Side::new(B_SECRET)
    };
    let (mut a, mut b) = pair(Side::new(A_SECRET), b_side, t0);
    let pkt1 = init_of(&a.handle_timeout(t0));
    let pkt2 = single_send(&b.handle_handshake(&pkt1, a_addr(), t0));
    let out = a.handle_handshake(&pkt2, b_addr(), t0);
    assert_eq!(single_send(&out), error_reply(3, 2, 0x0E));
    assert!(established(&out).is_empty());

    // The responder's order decides.
    let a_side = Side {
        methods: strings(&["salsa2012+umac", "aes128-gcm"]),
        ..Side::new(A_SECRET)
    };
    let b_side = Side {
        methods: strings(&["null", "aes128-gcm", "salsa2012+umac"]),
        ..Side::new(B_SECRET)
    };
    let (mut a, mut b) = pair(a_side, b_side, t0);
    let pkt1 = init_of(&a.handle_timeout(t0));
    let pkt2 = single_send(&b.handle_handshake(&pkt1, a_addr(), t0));
    let out = a.handle_handshake(&pkt2, b_addr(), t0);
    assert_eq!(established(&out)[0].method, "aes128-gcm");
    assert_eq!(established(&out)[0].session_key.len(), 16);
    let pkt3 = single_send(&out);

    // A finish naming a method the responder does not have: error 0x0C as type 4, before the
    // tag is even looked at.
    let mut other = pkt3.clone();
    let m_at = value_offset(&pkt3, id::METHOD_NAME);
    other[m_at] = b'b';
    let out = b.handle_handshake(&other, a_addr(), t0);
    assert_eq!(single_send(&out), error_reply(4, 2, 0x0C));
    // Without a method name record at all: the same error.
    let mut nameless = pkt3.clone();
    nameless[m_at - 4] = 0x1C;
    assert_eq!(
        single_send(&b.handle_handshake(&nameless, a_addr(), t0)),
        error_reply(4, 2, 0x0C)
    );
    let out = b.handle_handshake(&pkt3, a_addr(), t0);
    assert_eq!(established(&out)[0].method, "aes128-gcm");
}

#[test]
fn unknown_key_is_refused_without_reply() {
    let t0 = Instant::now();
    // C knows B, but B does not know C.
    let c_side = Side {
        remotes: vec![b_addr()],
        ..Side::new(C_SECRET)
    };
    let mut c = c_side.build(Some(B_SECRET), t0, Scripted::default());
    let mut b = Side::new(B_SECRET).build(Some(A_SECRET), t0, Scripted::default());
    let pkt1 = init_of(&c.handle_timeout(t0));
    let out = b.handle_handshake(&pkt1, a_addr(), t0);
    assert!(sends(&out).is_empty());
    assert_eq!(reasons(&out), vec![FailReason::UnknownKey]);
}

/// A flood of handshakes with random sender keys must cost a lookup, not a point decoding:
/// the key is looked up by its bytes first. A key that is not even a curve point is
/// reported as unknown, not as malformed, and nothing was decoded.
#[test]
fn unknown_key_is_not_decoded() {
    let t0 = Instant::now();
    let c_side = Side {
        remotes: vec![b_addr()],
        ..Side::new(C_SECRET)
    };
    let mut c = c_side.build(Some(B_SECRET), t0, Scripted::default());
    let mut b = Side::new(B_SECRET).build(Some(A_SECRET), t0, Scripted::default());
    let mut pkt1 = init_of(&c.handle_timeout(t0));
    let not_a_point = (0u8..=255)
        .map(|i| [i; 32])
        .find(|k| PublicKey::from_bytes_allow_identity(k).is_err())
        .unwrap();
    let at = value_offset(&pkt1, id::SENDER_KEY);
    pkt1[at..at + 32].copy_from_slice(&not_a_point);
    let out = b.handle_handshake(&pkt1, a_addr(), t0);
    assert!(sends(&out).is_empty());
    assert_eq!(reasons(&out), vec![FailReason::UnknownKey]);
    let sender = events(&out).into_iter().find_map(|e| match e {
        Event::HandshakeFailed { sender, .. } => sender,
        _ => None,
    });
    assert_eq!(
        sender,
        Some(not_a_point),
        "the log line still names the key"
    );
    // A valid unknown key is not decoded either.
    let pkt1 = init_of(&c.handle_timeout(t0 + Duration::from_secs(30)));
    let out = b.handle_handshake(&pkt1, a_addr(), t0 + Duration::from_secs(30));
    assert_eq!(reasons(&out), vec![FailReason::UnknownKey]);
    assert_eq!(b.key_decodes(), 0);
    // With `on verify` an unknown key must be decoded (it may become a peer).
    let mut v = Side {
        on_verify: true,
        ..Side::new(B_SECRET)
    }
    .build(Some(A_SECRET), t0, Scripted::default());
    let _ = v.handle_handshake(&pkt1, a_addr(), t0 + Duration::from_secs(30));
    assert_eq!(v.key_decodes(), 1);
}

#[test]
fn unknown_key_with_on_verify() {
    let t0 = Instant::now();
    let c_side = Side {
        remotes: vec![b_addr()],
        ..Side::new(C_SECRET)
    };
    let mut c = c_side.build(Some(B_SECRET), t0, Scripted::default());
    let b_side = Side {
        on_verify: true,
        ..Side::new(B_SECRET)
    };
    let mut b = b_side.build(Some(A_SECRET), t0, Scripted::default());
    let pkt1 = init_of(&c.handle_timeout(t0));
    let out = b.handle_handshake(&pkt1, a_addr(), t0);
    assert!(sends(&out).is_empty());
    let asked: Vec<_> = events(&out)
        .into_iter()
        .filter_map(|e| match e {
            Event::VerifyRequested { key, remote } => Some((key, remote)),
            _ => None,
        })
        .collect();
    assert_eq!(asked, vec![(public(C_SECRET), a_addr())]);
    // A repeated packet within 10 s does not ask again.
    let out = b.handle_handshake(&pkt1, a_addr(), t0 + ms(100));
    assert!(events(&out)
        .iter()
        .all(|e| !matches!(e, Event::VerifyRequested { .. })));

    // Refused: nothing is sent.
    assert!(b.verify_result(&public(C_SECRET), false, t0).is_empty());

    // Accepted (after a new request): the pending packet 1 is answered, the handshake completes.
    let out = b.handle_handshake(&pkt1, a_addr(), t0 + ms(20_000));
    assert!(events(&out)
        .iter()
        .any(|e| matches!(e, Event::VerifyRequested { .. })));
    let out = b.verify_result(&public(C_SECRET), true, t0 + ms(20_001));
    let pkt2 = single_send(&out);
    let out = c.handle_handshake(&pkt2, b_addr(), t0 + ms(20_002));
    let pkt3 = single_send(&out);
    let eb = established(&b.handle_handshake(&pkt3, a_addr(), t0 + ms(20_003)));
    assert_eq!(eb.len(), 1);
    assert_eq!(eb[0].peer, public(C_SECRET));
    assert_eq!(*eb[0].session_key, *established(&out)[0].session_key);
}

#[test]
fn simultaneous_initiation_is_repaired_by_the_retry() {
    let t0 = Instant::now();
    let a_side = Side {
        remotes: vec![b_addr()],
        ..Side::new(A_SECRET)
    };
    let b_side = Side {
        remotes: vec![a_addr()],
        ..Side::new(B_SECRET)
    };
    let a_rng = Scripted::default();
    let b_rng = Scripted::default();
    // Retry jitter: A's first retry comes 17.5 s after establishing, B's 22.5 s (minus 1 ms).
    a_rng.jitter.lock().unwrap().extend([0, 0, 0]);
    b_rng.jitter.lock().unwrap().extend([0, 4_999, 4_999]);
    let mut a = a_side.build(Some(B_SECRET), t0, a_rng);
    let mut b = b_side.build(Some(A_SECRET), t0, b_rng);

    // Both send both formats at once; each answers the other's L2TP copy.
    let from_a = sends(&a.handle_timeout(t0));
    let from_b = sends(&b.handle_timeout(t0));
    assert_eq!((from_a.len(), from_b.len()), (2, 2));
    let mut to_a = Vec::new();
    let mut to_b = Vec::new();
    for (_, p) in &from_a {
        to_a.extend(sends(&b.handle_handshake(p, a_addr(), t0)));
    }
    for (_, p) in &from_b {
        to_b.extend(sends(&a.handle_handshake(p, b_addr(), t0)));
    }
    assert_eq!((to_a.len(), to_b.len()), (1, 1));
    // Each completes its own handshake as initiator...
    let out_a = a.handle_handshake(&to_a[0].1, b_addr(), t0 + ms(1));
    let out_b = b.handle_handshake(&to_b[0].1, a_addr(), t0 + ms(1));
    let (ea, eb) = (established(&out_a), established(&out_b));
    assert_eq!((ea[0].role, eb[0].role), (Role::Initiator, Role::Initiator));
    assert_ne!(*ea[0].session_key, *eb[0].session_key);
    // ...and ignores the other's finish (15 s rule).
    let out = b.handle_handshake(&single_send(&out_a), a_addr(), t0 + ms(2));
    assert_eq!(reasons(&out), vec![FailReason::RepeatedHandshake]);
    let out = a.handle_handshake(&single_send(&out_b), b_addr(), t0 + ms(2));
    assert_eq!(reasons(&out), vec![FailReason::RepeatedHandshake]);

    // A's retry runs first; B is past its 15 s window and answers; one consistent session.
    let retry_at = a.poll_timeout().unwrap();
    assert_eq!(retry_at, t0 + ms(1) + ms(17_500));
    assert!(b.poll_timeout().unwrap() > retry_at);
    let pkt1 = init_of(&a.handle_timeout(retry_at));
    let pkt2 = single_send(&b.handle_handshake(&pkt1, a_addr(), retry_at));
    let out_a = a.handle_handshake(&pkt2, b_addr(), retry_at + ms(1));
    let out_b = b.handle_handshake(&single_send(&out_a), a_addr(), retry_at + ms(2));
    let (ea, eb) = (established(&out_a), established(&out_b));
    assert_eq!((ea[0].role, eb[0].role), (Role::Initiator, Role::Responder));
    assert_eq!(*ea[0].session_key, *eb[0].session_key);
    // B was the responder of the new session: its own retry is cancelled.
    assert_eq!(b.poll_timeout(), None);
}

/// A machine with a floating peer, so data from unknown addresses may trigger handshakes.
fn floating_b(methods: &[&str], t0: Instant) -> Handshake {
    let b_side = Side {
        methods: strings(methods),
        ..Side::new(B_SECRET)
    };
    b_side.build(Some(A_SECRET), t0, Scripted::default())
}

#[test]
fn unknown_data_rate_limit_is_per_address_not_per_port() {
    let t0 = Instant::now();
    let mut b = floating_b(&["salsa2012+umac"], t0);
    let data = [0u8; 24];
    let out = b.handle_unknown_data(&data, addr("203.0.113.5:1000"), t0);
    let pkt = single_send(&out);
    // One handshake, L2TP-style, without recipient key (112 TLV bytes).
    assert_eq!(pkt.len(), 12 + 4 + 112);
    assert_eq!(&pkt[..2], &[0xC8, 0x03]);
    let PacketKind::Handshake { body, .. } = classify(&pkt) else {
        panic!()
    };
    let recs = Records::parse(&body[4..]);
    assert!(recs.get(id::RECIPIENT_KEY).is_none());
    assert_eq!(recs.get_u8(id::HANDSHAKE_TYPE), Some(1));

    assert_eq!(
        init_events(&out),
        vec![(None, addr("203.0.113.5:1000"), true)]
    );
    // Another port of the same address shares the limit.
    assert!(b
        .handle_unknown_data(&data, addr("203.0.113.5:2000"), t0 + ms(1000))
        .is_empty());
    // IPv4-mapped IPv6 is the same address.
    assert!(b
        .handle_unknown_data(&data, addr("[::ffff:203.0.113.5]:3000"), t0 + ms(1000))
        .is_empty());
    // Another address: a compat trigger gets a pre-v22 handshake.
    let mut compat = data;
    compat[0] = 0x02;
    let pkt = single_send(&b.handle_unknown_data(&compat, addr("203.0.113.6:1000"), t0));
    assert_eq!(pkt[0], 0x01);
    assert_eq!(pkt.len(), 4 + 112);
    // After 15 s the address may trigger again.
    assert_eq!(
        sends(&b.handle_unknown_data(&data, addr("203.0.113.5:2000"), t0 + ms(15_000))).len(),
        1
    );
}

#[test]
fn short_data_never_triggers_a_handshake() {
    let t0 = Instant::now();
    let mut b = floating_b(&["salsa2012+umac", "null@l2tp"], t0);
    assert_eq!(b.min_trigger_len(), 8);
    assert!(b
        .handle_unknown_data(&[0u8; 7], addr("203.0.113.5:1"), t0)
        .is_empty());
    // The L2TP header does not count.
    let mut wrapped = vec![0xC8, 0x03, 0, 0x0C, 0, 0, 0, 0, 0, 0, 0, 0];
    wrapped.extend_from_slice(&[0u8; 7]);
    assert!(b
        .handle_unknown_data(&wrapped, addr("203.0.113.5:1"), t0)
        .is_empty());
    assert_eq!(
        sends(&b.handle_unknown_data(&[0u8; 8], addr("203.0.113.5:1"), t0)).len(),
        1
    );

    let mut b = floating_b(&["salsa2012+umac"], t0);
    assert!(b
        .handle_unknown_data(&[0u8; 23], addr("203.0.113.5:1"), t0)
        .is_empty());
    assert!(b
        .handle_unknown_data(&[0x81; 30], addr("203.0.113.5:1"), t0)
        .is_empty());
    let mut b = floating_b(&["null"], t0);
    assert_eq!(
        sends(&b.handle_unknown_data(&[0u8], addr("203.0.113.5:1"), t0)).len(),
        1
    );

    // No floating peer and no `on verify`: unknown data is never answered.
    let b_side = Side {
        remotes: vec![a_addr()],
        ..Side::new(B_SECRET)
    };
    let mut b = b_side.build(Some(A_SECRET), t0, Scripted::default());
    assert!(!b.unknown_senders_allowed());
    assert!(b
        .handle_unknown_data(&[0u8; 100], addr("203.0.113.5:1"), t0)
        .is_empty());
}

#[test]
fn establishing_clears_the_unknown_address_limit() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(Side::new(A_SECRET), Side::new(B_SECRET), t0);
    assert_eq!(
        sends(&b.handle_unknown_data(&[0u8; 24], a_addr(), t0)).len(),
        1
    );
    let pkt1 = init_of(&a.handle_timeout(t0));
    let pkt2 = single_send(&b.handle_handshake(&pkt1, a_addr(), t0));
    let pkt3 = single_send(&a.handle_handshake(&pkt2, b_addr(), t0));
    assert_eq!(
        established(&b.handle_handshake(&pkt3, a_addr(), t0)).len(),
        1
    );
    let other_port = addr("192.0.2.1:20000");
    assert_eq!(
        sends(&b.handle_unknown_data(&[0u8; 24], other_port, t0 + ms(10))).len(),
        1
    );
}

#[test]
fn repeated_init_and_key_reuse() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(Side::new(A_SECRET), Side::new(B_SECRET), t0);
    let pkt1 = init_of(&a.handle_timeout(t0));
    let pkt2a = single_send(&b.handle_handshake(&pkt1, a_addr(), t0));
    let out = b.handle_handshake(&pkt1, a_addr(), t0 + ms(14_000));
    assert_eq!(reasons(&out), vec![FailReason::RepeatedInit]);
    // Another port is another address for this rule.
    let other_port = addr("192.0.2.1:10001");
    assert_eq!(
        sends(&b.handle_handshake(&pkt1, other_port, t0 + ms(14_000))).len(),
        1
    );
    let pkt2b = single_send(&b.handle_handshake(&pkt1, a_addr(), t0 + ms(15_000)));

    assert_eq!(
        established(&a.handle_handshake(&pkt2a, b_addr(), t0 + ms(1))).len(),
        1
    );
    // A second response to the same packet 1 (same own ephemeral key), after the 15 s window
    // but within the key's 30 s validity: no second session from one ephemeral key.
    let out = a.handle_handshake(&pkt2b, b_addr(), t0 + ms(14_000));
    assert_eq!(reasons(&out), vec![FailReason::RepeatedHandshake]);
    let out = a.handle_handshake(&pkt2b, b_addr(), t0 + ms(16_000));
    assert_eq!(reasons(&out), vec![FailReason::KeyReuse]);
    assert!(sends(&out).is_empty());
}

#[test]
fn previous_ephemeral_key_valid_for_30_seconds() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(Side::new(A_SECRET), Side::new(B_SECRET), t0);
    let old_pkt1 = init_of(&a.handle_timeout(t0));
    let late_pkt2 = single_send(&b.handle_handshake(&old_pkt1, a_addr(), t0));
    // The retry at 17.5 s uses a new ephemeral key (the first is no longer preferred).
    let retry = a.poll_timeout().unwrap();
    let new_pkt1 = init_of(&a.handle_timeout(retry));
    assert_ne!(new_pkt1, old_pkt1);
    let out = a.handle_handshake(&late_pkt2, b_addr(), t0 + ms(31_000));
    assert_eq!(reasons(&out), vec![FailReason::UnknownHandshakeKey]);
    let out = a.handle_handshake(&late_pkt2, b_addr(), t0 + ms(29_000));
    assert_eq!(established(&out).len(), 1);
}

#[test]
fn pre_v22_peer_gets_compat_session_and_replies() {
    let t0 = Instant::now();
    let a_side = Side {
        pre_v22: true,
        ..Side::new(A_SECRET)
    };
    let (mut a, mut b) = pair(a_side, Side::new(B_SECRET), t0);
    let out = a.handle_timeout(t0);
    let pkt1 = single_send(&out);
    assert_eq!(pkt1[0], 0x01);
    let pkt2 = single_send(&b.handle_handshake(&pkt1, a_addr(), t0));
    assert_eq!(pkt2[0], 0x01, "answered in pre-v22 format");
    let out = a.handle_handshake(&pkt2, b_addr(), t0);
    let pkt3 = single_send(&out);
    let eb = established(&b.handle_handshake(&pkt3, a_addr(), t0));
    assert!(eb[0].compat);
    assert_eq!(eb[0].data_type_byte(), 0x02);
    assert!(established(&out)[0].compat);

    // A handshake with control header but without the flag is processed, answered pre-v22.
    let (mut a, mut b) = pair(
        Side {
            pre_v22: true,
            ..Side::new(A_SECRET)
        },
        Side::new(B_SECRET),
        t0,
    );
    let mut wrapped = vec![0xC8, 0x03, 0, 0x0C, 0, 0, 0, 0, 0, 0, 0, 0];
    wrapped.extend(single_send(&a.handle_timeout(t0)));
    assert_eq!(
        single_send(&b.handle_handshake(&wrapped, a_addr(), t0))[0],
        0x01
    );
}

#[test]
fn bad_flags_protocol_and_mode_get_errors() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(Side::new(A_SECRET), Side::new(B_SECRET), t0);
    let pkt1 = init_of(&a.handle_timeout(t0));
    let flags_at = value_offset(&pkt1, id::FLAGS);
    let mut p = pkt1.clone();
    p[flags_at] = 0x03;
    assert_eq!(
        single_send(&b.handle_handshake(&p, a_addr(), t0)),
        error_reply(2, 2, 0x03)
    );
    let mode_at = value_offset(&pkt1, id::MODE);
    let mut p = pkt1.clone();
    p[mode_at] = 0x00;
    assert_eq!(
        single_send(&b.handle_handshake(&p, a_addr(), t0)),
        error_reply(2, 2, 0x04)
    );
    let proto_at = value_offset(&pkt1, id::PROTOCOL_NAME);
    // A NUL ends a string record, as in C: "ec25519\0fhmqvc" is a different protocol...
    let mut p = pkt1.clone();
    p[proto_at + 7] = 0;
    assert_eq!(
        single_send(&b.handle_handshake(&p, a_addr(), t0)),
        error_reply(2, 2, 0x05)
    );
    let mut p = pkt1.clone();
    p[proto_at] = b'x';
    assert_eq!(
        single_send(&b.handle_handshake(&p, a_addr(), t0)),
        error_reply(2, 2, 0x05)
    );
    // A wrong recipient key: dropped silently.
    let rk_at = value_offset(&pkt1, id::RECIPIENT_KEY);
    let mut p = pkt1.clone();
    p[rk_at..rk_at + 32].copy_from_slice(public(C_SECRET).as_bytes());
    let out = b.handle_handshake(&p, a_addr(), t0);
    assert!(sends(&out).is_empty());
    assert_eq!(reasons(&out), vec![FailReason::WrongRecipient]);
    // A header-less packet with the L2TP flag is the compat copy: ignored without a trace.
    assert!(b.handle_handshake(&pkt1[12..], a_addr(), t0).is_empty());
}

/// xorshift64*, enough for fuzz-style loops without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn hostile_packets_are_dropped_without_panic() {
    let t0 = Instant::now();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let b_side = Side {
        on_verify: true,
        methods: strings(&["null", "salsa2012+umac"]),
        ..Side::new(B_SECRET)
    };
    let mut b = b_side.build(Some(A_SECRET), t0, Scripted::default());
    let (mut a, mut b2) = pair(Side::new(A_SECRET), Side::new(B_SECRET), t0);
    let pkt1 = init_of(&a.handle_timeout(t0));
    let pkt2 = single_send(&b2.handle_handshake(&pkt1, a_addr(), t0));
    let seeds = [
        pkt1.clone(),
        pkt2.clone(),
        pkt1[12..].to_vec(),
        pkt2[12..].to_vec(),
    ];
    let from = addr("203.0.113.9:4000");

    // Every prefix of valid packets.
    for s in &seeds {
        for n in 0..s.len() {
            let _ = b.handle_handshake(&s[..n], from, t0);
            let out = a.handle_handshake(&s[..n], b_addr(), t0);
            assert!(established(&out).is_empty());
            let _ = b.handle_unknown_data(&s[..n], from, t0);
        }
    }
    // Random bytes, and random mutations of valid packets.
    for i in 0..3000u64 {
        let len = (rng.next() % 400) as usize;
        let mut junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 3 == 0 && !junk.is_empty() {
            junk[0] = if i % 2 == 0 { 0x01 } else { 0xC8 };
        }
        let _ = b.handle_handshake(&junk, from, t0);
        let _ = b.handle_unknown_data(&junk, from, t0);
        let mut m = seeds[(i % 4) as usize].clone();
        for _ in 0..1 + rng.next() % 4 {
            let at = (rng.next() as usize) % m.len();
            m[at] ^= 1 << (rng.next() % 8);
        }
        if i % 5 == 0 {
            m.truncate((rng.next() as usize) % m.len());
        }
        let _ = b.handle_handshake(&m, from, t0);
        let _ = a.handle_handshake(&m, b_addr(), t0);
    }
    // Pending `on verify` requests stay bounded.
    assert!(
        events(&b.handle_handshake(&pkt1, from, t0)).len() <= 2,
        "still works after the noise"
    );
    let _ = Output::Send {
        to: from,
        bytes: Vec::new(),
    };
}

/// B with two passive peers A and C, both in group "g" with an optional `peer limit`.
fn b_with_a_and_c(limit: Option<usize>, t0: Instant) -> Handshake {
    let config = HandshakeConfig::new(
        SecretKey::from_hex(B_SECRET).unwrap(),
        Mode::Tun,
        1400,
        strings(&["salsa2012+umac"]),
    );
    let peer = |name: &str, secret: &str| {
        let mut p = PeerConfig::new(name, public(secret), strings(&["salsa2012+umac"]), 1400);
        p.limits = limit
            .map(|max| crate::handshake::GroupLimit {
                group: "g".into(),
                max,
            })
            .into_iter()
            .collect();
        p
    };
    Handshake::with_entropy(
        config,
        vec![peer("a", A_SECRET), peer("c", C_SECRET)],
        t0,
        Box::new(Scripted::default()),
    )
}

/// A machine with `secret` that knows B at `b_addr()`.
fn initiator(secret: &'static str, t0: Instant) -> Handshake {
    Side {
        remotes: vec![b_addr()],
        ..Side::new(secret)
    }
    .build(Some(B_SECRET), t0, Scripted::default())
}

/// Runs a full handshake from `i` (at `from`) to `b`; returns B's outputs for packet 3.
fn connect(i: &mut Handshake, b: &mut Handshake, from: SocketAddr, now: Instant) -> Vec<Output> {
    let pkt1 = init_of(&i.handle_timeout(now));
    let out = b.handle_handshake(&pkt1, from, now);
    let Some(pkt2) = sends(&out).pop() else {
        return out;
    };
    let pkt3 = single_send(&i.handle_handshake(&pkt2.1, b_addr(), now));
    b.handle_handshake(&pkt3, from, now)
}

#[test]
fn an_established_floating_peer_is_rekeyed_at_its_current_address() {
    let t0 = Instant::now();
    // B knows A without any remote; A connects from a_addr(), later B rekeys (as the engine
    // asks when the session wants a refresh): the handshake goes to a_addr().
    let (mut a, mut b) = pair(Side::new(A_SECRET), Side::new(B_SECRET), t0);
    assert_eq!(established(&connect(&mut a, &mut b, a_addr(), t0)).len(), 1);
    let later = t0 + ms(3_600_000);
    let out = b.initiate(&public(A_SECRET), later);
    let s = sends(&out);
    assert_eq!(s.len(), 2);
    assert!(s.iter().all(|(to, _)| *to == a_addr()));
    let pkt2 = single_send(&a.handle_handshake(&s[1].1, b_addr(), later));
    let out = b.handle_handshake(&pkt2, a_addr(), later);
    assert_eq!(established(&out)[0].role, Role::Initiator);
    // Without a session and without remotes there is nobody to call.
    b.peer_reset(&public(A_SECRET), later);
    assert!(b.initiate(&public(A_SECRET), later + ms(20_000)).is_empty());
}

#[test]
fn peer_limit_blocks_handshakes_until_a_peer_leaves() {
    let t0 = Instant::now();
    let mut b = b_with_a_and_c(Some(1), t0);
    let mut a = initiator(A_SECRET, t0);
    let mut c = initiator(C_SECRET, t0);
    assert_eq!(established(&connect(&mut a, &mut b, a_addr(), t0)).len(), 1);
    let c_addr = addr("192.0.2.3:10000");
    let out = connect(&mut c, &mut b, c_addr, t0);
    assert!(sends(&out).is_empty());
    assert_eq!(reasons(&out), vec![FailReason::PeerLimit]);
    // A's session is gone: C may connect now.
    b.peer_reset(&public(A_SECRET), t0 + ms(1));
    let later = t0 + ms(20_000);
    assert_eq!(
        established(&connect(&mut c, &mut b, c_addr, later)).len(),
        1
    );

    // Without a limit both connect.
    let mut b = b_with_a_and_c(None, t0);
    let mut a = initiator(A_SECRET, t0);
    let mut c = initiator(C_SECRET, t0);
    assert_eq!(established(&connect(&mut a, &mut b, a_addr(), t0)).len(), 1);
    assert_eq!(established(&connect(&mut c, &mut b, c_addr, t0)).len(), 1);
}

#[test]
fn a_new_session_claims_the_address_from_another_peer() {
    let t0 = Instant::now();
    let mut b = b_with_a_and_c(None, t0);
    let mut a = initiator(A_SECRET, t0);
    let mut c = initiator(C_SECRET, t0);
    assert_eq!(established(&connect(&mut a, &mut b, a_addr(), t0)).len(), 1);
    // C now shows up at A's address (same NAT mapping reused): A loses it.
    let out = connect(&mut c, &mut b, a_addr(), t0 + ms(1));
    assert_eq!(established(&out).len(), 1);
    let claimed: Vec<_> = events(&out)
        .into_iter()
        .filter_map(|e| match e {
            Event::AddressClaimed {
                previous_owner,
                remote,
            } => Some((previous_owner, remote)),
            _ => None,
        })
        .collect();
    assert_eq!(claimed, vec![(public(A_SECRET), a_addr())]);
    assert_eq!(b.peer_address(&public(A_SECRET)), None);
    assert_eq!(b.peer_address(&public(C_SECRET)), Some(a_addr()));
}

#[test]
fn a_fixed_peer_keeps_its_address() {
    let t0 = Instant::now();
    // A is fixed at a_addr() (a `remote`, no `float`); C is floating but may not take it.
    let config = HandshakeConfig::new(
        SecretKey::from_hex(B_SECRET).unwrap(),
        Mode::Tun,
        1400,
        strings(&["salsa2012+umac"]),
    );
    let mut fixed_a = PeerConfig::new("a", public(A_SECRET), strings(&["salsa2012+umac"]), 1400);
    fixed_a.remotes = vec![a_addr()];
    let floating_c = PeerConfig::new("c", public(C_SECRET), strings(&["salsa2012+umac"]), 1400);
    let mut b = Handshake::with_entropy(
        config,
        vec![fixed_a, floating_c],
        t0,
        Box::new(Scripted::default()),
    );
    let mut c = initiator(C_SECRET, t0);
    let out = connect(&mut c, &mut b, a_addr(), t0);
    assert!(sends(&out).is_empty());
    assert_eq!(reasons(&out), vec![FailReason::AddressNotAllowed]);
    // A itself from another address: refused too (not floating).
    let mut a = initiator(A_SECRET, t0);
    let out = connect(&mut a, &mut b, addr("192.0.2.99:1"), t0);
    assert_eq!(reasons(&out), vec![FailReason::AddressNotAllowed]);
}
