//! Method-level tests: name registry, the real-fastd recordings, and malformed input.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::cipher::tests::hex;
use super::*;

const VECTOR_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/handshake");

/// Further names fastd v22 accepts (checked with `fastd --verify-config`).
const OTHER_VALID: [&str; 6] = [
    "salsa2012+salsa20+umac",
    "salsa20+aes128-gmac",
    "salsa2012+salsa20+gmac",
    "salsa20+aes128-ctr+umac",
    "aes128-ctr+aes128-ctr+umac",
    "aes128-ctr+aes128-gmac",
];

/// Names fastd v22 rejects (checked with `fastd --verify-config`).
const INVALID: [&str; 27] = [
    "null+umac",
    "null+gmac",
    "null+poly1305",
    "aes128-ctr+gmac",
    "null+null+umac",
    "aes128-gmac",
    "null+salsa20+poly1305",
    "null+aes128-gcm",
    "salsa20+null+umac",
    "null+null+gmac",
    "salsa2012+aes128-gcm",
    "null+salsa2012+salsa20+umac",
    "aes128-gcm+umac",
    "AES128-GCM",
    "salsa20+aes128-ctr+gmac",
    "null+aes128-ctr+gmac",
    "salsa20-gcm",
    "salsa20-gmac",
    "null+salsa20-gmac",
    "aes128+umac",
    "aes128-ctr",
    "aes128-ctr+salsa2012+poly1305",
    "salsa2012+gcm",
    "+umac",
    "umac",
    "salsa20++umac",
    "null@l2tp+umac",
];

#[test]
fn registry_accepts_exactly_fastds_names() {
    for name in DEBIAN_METHODS.iter().chain(&OTHER_VALID) {
        let spec = by_name(name).unwrap_or_else(|| panic!("{name} rejected"));
        assert_eq!(spec.name(), *name);
    }
    for name in INVALID {
        assert!(by_name(name).is_none(), "{name} accepted");
    }
    assert!(by_name("").is_none());
}

#[test]
fn registry_key_lengths_and_overheads() {
    // docs/protocol.md §5.2
    let table = [
        ("null", 0, 1),
        ("null@l2tp", 0, 8),
        ("salsa2012+umac", 1472, 24),
        ("salsa20+umac", 1472, 24),
        ("aes128-ctr+umac", 1456, 24),
        ("salsa2012+gmac", 32, 24),
        ("salsa20+gmac", 32, 24),
        ("aes128-gcm", 16, 24),
        ("salsa2012+poly1305", 32, 24),
        ("salsa20+poly1305", 32, 24),
        ("aes128-ctr+poly1305", 16, 24),
        ("null+salsa2012+umac", 1472, 24),
        ("null+salsa20+umac", 1472, 24),
        ("null+aes128-ctr+umac", 1456, 24),
        ("null+salsa2012+gmac", 32, 24),
        ("null+salsa20+gmac", 32, 24),
        ("null+aes128-gmac", 16, 24),
        ("salsa2012+salsa20+umac", 1504, 24),
        ("salsa20+aes128-gmac", 48, 24),
    ];
    for (name, key, overhead) in table {
        let spec = by_name(name).unwrap();
        assert_eq!((spec.key_len(), spec.overhead()), (key, overhead), "{name}");
        assert_eq!(spec.is_null(), name.starts_with("null") && key == 0);
    }
    assert!(by_name("null@l2tp").unwrap().forces_keepalives());
    assert!(!by_name("null").unwrap().forces_keepalives());
    let spec = by_name("salsa2012+umac").unwrap();
    let err = spec.session(&[0; 32], true, false, Instant::now()).err();
    assert_eq!(
        err,
        Some(MethodError::KeyLength {
            method: "salsa2012+umac".into(),
            expected: 1472,
            got: 32
        })
    );
}

struct Recording {
    file: String,
    fields: BTreeMap<String, String>,
}

impl Recording {
    fn get(&self, k: &str) -> &str {
        self.fields
            .get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{}: no {k}", self.file))
    }

    /// (packet, plaintext) pairs sent by `who` ("fastd" or "ref"), in send order.
    fn packets(&self, who: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        for n in 1.. {
            let Some(pkt) = self.fields.get(&format!("data_from_{who}_{n}")) else {
                break;
            };
            out.push((
                hex(pkt),
                hex(self.get(&format!("data_from_{who}_{n}_plain"))),
            ));
        }
        out
    }
}

fn recordings() -> Vec<Recording> {
    let mut files: Vec<_> = std::fs::read_dir(VECTOR_DIR)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let fields = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    l.split_once(" = ")
                        .or_else(|| l.strip_suffix(" =").map(|k| (k, "")))
                })
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            Recording {
                file: p.display().to_string(),
                fields,
            }
        })
        .collect()
}

/// What the dispatcher does before a method sees a datagram (docs/protocol.md §1.2).
fn strip_control_header(pkt: &[u8]) -> &[u8] {
    if pkt.first() == Some(&0xc8) {
        &pkt[12..]
    } else {
        pkt
    }
}

fn seal(s: &mut Session, plain: &[u8]) -> Vec<u8> {
    if plain.is_empty() {
        let mut out = [0u8; MAX_KEEPALIVE_BYTES];
        return s.keepalive(&mut out).unwrap().to_vec();
    }
    let mut buf = vec![0u8; s.overhead()];
    buf.extend_from_slice(plain);
    s.encrypt(&mut buf).unwrap();
    buf
}

fn open(s: &mut Session, pkt: &[u8], now: Instant) -> Result<Vec<u8>, DropReason> {
    let mut buf = strip_control_header(pkt).to_vec();
    let r = s.decrypt(&mut buf, now)?;
    Ok(buf[r].to_vec())
}

/// Every recorded exchange with the real fastd v22: our side (the reference peer's role) decrypts
/// everything fastd sent and re-encrypts its own payloads to the recorded bytes; a session in
/// fastd's role does the same the other way round. Once per backend this CPU has (Salsa20, NH).
#[test]
fn real_fastd_recordings() {
    for backend in simd::Backend::available() {
        simd::tests::forcing(backend, check_recordings);
    }
}

fn check_recordings() {
    let recs = recordings();
    assert_eq!(recs.len(), 22);
    let now = Instant::now();
    let mut methods = std::collections::BTreeSet::new();
    let mut checked = 0;
    for rec in &recs {
        let spec = by_name(rec.get("method")).unwrap();
        methods.insert(spec.name().to_string());
        let key = hex(rec
            .fields
            .get("session_key")
            .map(String::as_str)
            .unwrap_or(""));
        assert_eq!(key.len(), spec.key_len(), "{}", rec.file);
        let we_initiate = rec.get("role_of_reference_peer") == "initiator";
        let compat = rec.get("compat") == "1";
        let mut ours = spec.session(&key, we_initiate, compat, now).unwrap();
        let mut theirs = spec.session(&key, !we_initiate, compat, now).unwrap();
        let from_fastd = rec.packets("fastd");
        let from_ref = rec.packets("ref");
        assert_eq!((from_fastd.len(), from_ref.len()), (4, 4), "{}", rec.file);
        for fastd_sends in [true, false] {
            let (sender, receiver, packets) = if fastd_sends {
                (&mut theirs, &mut ours, &from_fastd)
            } else {
                (&mut ours, &mut theirs, &from_ref)
            };
            for (pkt, plain) in packets {
                assert_eq!(&open(receiver, pkt, now).unwrap(), plain, "{}", rec.file);
                assert_eq!(&seal(sender, plain), pkt, "{}", rec.file);
                checked += 1;
            }
            // A recorded packet played back is a duplicate, not a forgery (null has no window).
            let again = open(receiver, &packets[1].0, now);
            if spec.is_null() {
                assert!(again.is_ok());
            } else {
                assert_eq!(again, Err(DropReason::Duplicate), "{}", rec.file);
            }
        }
    }
    assert_eq!(checked, 22 * 8);
    // every method of the Debian build is covered
    assert_eq!(methods.len(), 17);
    assert!(DEBIAN_METHODS.iter().all(|m| methods.contains(*m)));
}

/// xorshift64*: deterministic pseudo-random input for the malformed-packet tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn pair(name: &str, rng: &mut Rng, now: Instant) -> (Session, Session) {
    let spec = by_name(name).unwrap();
    let key = rng.bytes(spec.key_len());
    let a = spec.session(&key, true, false, now).unwrap();
    let b = spec.session(&key, false, false, now).unwrap();
    (a, b)
}

fn all_methods() -> impl Iterator<Item = &'static str> {
    DEBIAN_METHODS.iter().chain(&OTHER_VALID).copied()
}

#[test]
fn roundtrip_all_lengths() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let now = Instant::now();
    for name in all_methods() {
        let (mut a, mut b) = pair(name, &mut rng, now);
        for len in (0..70).chain([1023, 1024, 1025, 1400, 2048, 2049, 3000]) {
            let plain = rng.bytes(len);
            let pkt = seal(&mut a, &plain);
            assert_eq!(open(&mut b, &pkt, now).unwrap(), plain, "{name} {len}");
            let pkt = seal(&mut b, &plain);
            assert_eq!(open(&mut a, &pkt, now).unwrap(), plain, "{name} {len}");
        }
    }
}

/// `receive` tells a late packet from one in order (fastd's `reordered` flag); methods
/// without nonces never report one.
#[test]
fn receive_reports_reordered_packets() {
    let mut rng = Rng(0x5eed_0f0b_de5e_ed00);
    let now = Instant::now();
    for name in all_methods() {
        let (mut a, mut b) = pair(name, &mut rng, now);
        let pkts: Vec<Vec<u8>> = (1..=4usize).map(|n| seal(&mut a, &vec![7; n])).collect();
        let mut order = Vec::new();
        for i in [0usize, 2, 1, 3] {
            let mut buf = pkts[i].clone();
            let d = b.receive(&mut buf, now).unwrap();
            assert_eq!(d.payload.len(), i + 1, "{name}");
            order.push(d.reordered);
        }
        let expected = if by_name(name).unwrap().is_null() {
            [None; 4]
        } else {
            [None, None, Some(1), None]
        };
        assert_eq!(order, expected, "{name}");
    }
}

#[test]
fn tampering_never_authenticates() {
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    let now = Instant::now();
    for name in all_methods().filter(|n| !n.starts_with("null") || n.contains('+')) {
        let (mut a, mut b) = pair(name, &mut rng, now);
        for len in [0usize, 1, 15, 16, 17, 63, 64, 100, 1024, 1025, 1400] {
            let pkt = seal(&mut a, &rng.bytes(len));
            // every single-bit flip in header and tag, and a sample in the payload
            let mut positions: Vec<usize> = (0..24 * 8).collect();
            positions.extend((0..64).map(|_| 24 * 8 + rng.below(len * 8 + 1)));
            for bit in positions.into_iter().filter(|b| *b < pkt.len() * 8) {
                let mut bad = pkt.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                let r = open(&mut b, &bad, now);
                assert!(
                    matches!(r, Err(e) if !e.authenticated()),
                    "{name} len {len} bit {bit}"
                );
            }
            // every truncation (and one extra byte) fails
            for cut in 0..pkt.len() {
                assert!(open(&mut b, &pkt[..cut], now).is_err(), "{name} cut {cut}");
            }
            let mut longer = pkt.clone();
            longer.push(0);
            assert_eq!(
                open(&mut b, &longer, now),
                Err(DropReason::AuthFailed),
                "{name}"
            );
            // and the untouched packet still goes through: failures changed no state
            assert!(open(&mut b, &pkt, now).is_ok(), "{name} len {len}");
        }
        // random datagrams, also with a plausible header
        for _ in 0..300 {
            let len = rng.below(200);
            let mut junk = rng.bytes(len);
            if len >= 8 && rng.below(2) == 0 {
                junk[0] = 0;
                junk[1] = 0;
                junk[2..8].copy_from_slice(&[0, 0, 0, 0, 0, 3 + 2 * rng.below(10) as u8]);
            }
            let r = open(&mut b, &junk, now);
            assert!(matches!(r, Err(e) if !e.authenticated()), "{name}");
        }
    }
}

#[test]
fn null_methods_never_panic() {
    let mut rng = Rng(42);
    let now = Instant::now();
    for name in ["null", "null@l2tp"] {
        let (_, mut b) = pair(name, &mut rng, now);
        for _ in 0..500 {
            let len = rng.below(40);
            let mut junk = rng.bytes(len);
            if let Ok(r) = b.decrypt(&mut junk, now) {
                assert!(r.start <= r.end && r.end == len);
            }
        }
        let mut empty = [];
        assert_eq!(b.decrypt(&mut empty, now), Err(DropReason::Truncated));
        assert_eq!(b.encrypt(&mut []), Err(MethodError::BufferTooSmall));
    }
    // null@l2tp header checks
    let (_, mut b) = pair("null@l2tp", &mut rng, now);
    for bad in [
        [0x80, 3, 0, 0, 0, 0, 0, 1],
        [0x00, 2, 0, 0, 0, 0, 0, 1],
        [0x00, 3, 0, 0, 0, 0, 0, 2],
        [0x00, 3, 0, 0, 1, 0, 0, 1],
    ] {
        assert_eq!(b.decrypt(&mut bad.clone(), now), Err(DropReason::BadHeader));
    }
    assert_eq!(
        b.decrypt(&mut [0x10, 0x13, 9, 9, 0, 0, 0, 1, 7], now),
        Ok(8..9)
    );
    // null accepts any data type byte and uses 0x02 in compat sessions
    let spec = by_name("null").unwrap();
    let mut c = spec.session(&[], true, true, now).unwrap();
    assert_eq!(seal(&mut c, b"x"), b"\x02x");
    assert_eq!(c.decrypt(&mut [0x00, 1, 2], now), Ok(1..3));
    assert_eq!(c.decrypt(&mut [0x05], now), Ok(1..1));
}

#[test]
fn header_checks_before_authentication() {
    let mut rng = Rng(7);
    let now = Instant::now();
    let (mut a, mut b) = pair("salsa2012+umac", &mut rng, now);
    let pkt = seal(&mut a, b"payload");
    let mut p = pkt.clone();
    p[0] = 0x02;
    assert_eq!(open(&mut b, &p, now), Err(DropReason::BadType));
    let mut p = pkt.clone();
    p[1] = 0x01;
    assert_eq!(open(&mut b, &p, now), Err(DropReason::BadFlags));
    let mut p = pkt.clone();
    p[7] ^= 1; // nonce 3 -> 2: our own direction's parity
    assert_eq!(open(&mut b, &p, now), Err(DropReason::BadNonce));
    assert_eq!(open(&mut b, &pkt[..23], now), Err(DropReason::Truncated));
    let mut p = pkt.clone();
    p[10] ^= 1;
    assert_eq!(open(&mut b, &p, now), Err(DropReason::AuthFailed));
    assert_eq!(open(&mut b, &pkt, now).unwrap(), b"payload");
    assert_eq!(open(&mut b, &pkt, now), Err(DropReason::Duplicate));

    // compat sessions send and require 0x02
    let spec = by_name("aes128-gcm").unwrap();
    let key = rng.bytes(16);
    let mut a = spec.session(&key, true, true, now).unwrap();
    let mut b = spec.session(&key, false, true, now).unwrap();
    let mut n = spec.session(&key, false, false, now).unwrap();
    let pkt = seal(&mut a, b"compat");
    assert_eq!(pkt[0], 0x02);
    assert_eq!(open(&mut n, &pkt, now), Err(DropReason::BadType));
    assert_eq!(open(&mut b, &pkt, now).unwrap(), b"compat");
}

#[test]
fn reordering_through_a_session() {
    let mut rng = Rng(99);
    let t0 = Instant::now();
    let (mut a, mut b) = pair("salsa2012+poly1305", &mut rng, t0);
    let pkts: Vec<Vec<u8>> = (0..70).map(|i| seal(&mut a, &[i as u8; 10])).collect();
    assert_eq!(open(&mut b, &pkts[0], t0).unwrap(), [0; 10]);
    assert_eq!(open(&mut b, &pkts[3], t0).unwrap(), [3; 10]);
    assert_eq!(open(&mut b, &pkts[1], t0).unwrap(), [1; 10]);
    assert_eq!(open(&mut b, &pkts[1], t0), Err(DropReason::Duplicate));
    let late = t0 + Duration::from_secs(11);
    assert_eq!(
        open(&mut b, &pkts[2], late),
        Err(DropReason::ReorderExpired)
    );
    assert_eq!(open(&mut b, &pkts[69], late).unwrap(), [69; 10]);
    assert_eq!(open(&mut b, &pkts[4], late), Err(DropReason::TooOld));
    assert_eq!(open(&mut b, &pkts[5], late).unwrap(), [5; 10]);
}

#[test]
fn nonce_space_edges() {
    let mut rng = Rng(5);
    let now = Instant::now();
    let (mut a, mut b) = pair("salsa20+gmac", &mut rng, now);
    assert!(a.is_valid() && !a.want_refresh());
    a.set_send_nonce(0xfeff_ffff_ffff);
    assert!(!a.want_refresh());
    let pkt = seal(&mut a, b"x");
    assert_eq!(&pkt[2..8], &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(open(&mut b, &pkt, now).unwrap(), b"x");
    assert!(a.want_refresh() && a.is_valid());
    a.set_send_nonce(0xffff_0000_0001);
    assert!(!a.is_valid());
    let mut buf = [0u8; 30];
    assert_eq!(a.encrypt(&mut buf), Err(MethodError::NonceExhausted));
    assert_eq!(a.encrypt(&mut buf[..23]), Err(MethodError::NonceExhausted));
    let (mut c, _) = pair("salsa20+gmac", &mut rng, now);
    assert_eq!(c.encrypt(&mut buf[..23]), Err(MethodError::BufferTooSmall));
    // a failed encrypt consumed no nonce
    let pkt = seal(&mut c, b"");
    assert_eq!(&pkt[2..8], &[0, 0, 0, 0, 0, 3]);
}
