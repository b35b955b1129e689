//! The handshake state machine fed arbitrary datagrams from arbitrary addresses.
//!
//! Our side is the vectors' reference peer (`ref_secret`, and always the recorded
//! `ref_ephemeral_secret`), so the recorded packets of real fastd v22 complete handshakes:
//! `pkt1_init_sent_by_fastd` + `pkt3_finish_sent_by_fastd` of `resp-*.txt` (we respond), and
//! `pkt2_response_sent_by_fastd` of `init-*.txt` after a timer made us send packet 1.
//!
//! Input: `flags`, then steps `sel len_hi len_lo bytes[len] [address bytes]`:
//! * `flags`: bit 0 `on verify` configured, bit 1 behave like pre-v22 fastd, bit 2 the
//!   floating peer sits in a group with `peer limit 1`.
//! * `sel & 7` picks the source address (fastd's remote, other ports, IPv4-mapped, IPv6,
//!   or one made of the bytes after the datagram); `sel >> 3 & 7` the action: the datagram to
//!   `handle_handshake` (0, 7) or `handle_unknown_data` (1), advance time by `len` × 10 ms
//!   and run due timers (2), `initiate` (3), `session_confirmed`/`peer_reset` (4), answer the
//!   last `on verify` request (5), reload the peers (6).
//!
//! Properties: no panic; every datagram sent is within fastd's 1232-byte handshake limit
//! and classifies as a handshake; every established session uses one of our methods with a
//! session key the method module accepts.

use crate::method::DEBIAN_METHODS;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::handshake::packet::MAX_HANDSHAKE_SIZE;
use crate::handshake::{
    classify, Entropy, Event, GroupLimit, Handshake, HandshakeConfig, Mode, Output, PacketKind,
    PeerConfig,
};
use crate::keys::{PublicKey, SecretKey};

const REF_SECRET: &str = "78059e020a069a93b6c6d4fbc29e41bae75a0e63c7a84eda629dd5645be71354";
const REF_EPHEMERAL_SECRET: &str =
    "886a3bad56d21d71cc6caaec608b94fd23ab33db17de3f5833543a72d81c126c";
const FASTD_PUBLIC: &str = "8c3350a5db3d3bb21cc6855f5b8bb943ebb89d5cc43e4e374db59721345f8944";
/// The first key pair of `vectors/keys.txt`.
const OTHER_PUBLIC: &str = "c8dd91c1cd4dae115c172ec86b865e34ef705cbadc165e31dee5214224c63351";

/// Always the recorded ephemeral secret; no jitter.
struct Fixed;

impl Entropy for Fixed {
    fn ephemeral_secret(&mut self) -> SecretKey {
        secret(REF_EPHEMERAL_SECRET)
    }

    fn below(&mut self, _bound: u64) -> u64 {
        0
    }
}

fn secret(hex: &str) -> SecretKey {
    SecretKey::from_hex(hex).unwrap_or_else(|e| panic!("bad test secret: {e:?}"))
}

fn public(hex: &str) -> PublicKey {
    PublicKey::from_hex(hex).unwrap_or_else(|e| panic!("bad test key: {e:?}"))
}

fn fastd_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 10000)
}

fn methods() -> Vec<String> {
    DEBIAN_METHODS.iter().map(|m| (*m).to_owned()).collect()
}

fn peers(limited: bool) -> Vec<PeerConfig> {
    let mut fastd = PeerConfig::new("fastd", public(FASTD_PUBLIC), methods(), 1400);
    fastd.remotes = vec![fastd_addr()];
    let mut floater = PeerConfig::new("floater", public(OTHER_PUBLIC), methods(), 1400);
    floater.floating = true;
    if limited {
        floater.limits = vec![GroupLimit {
            group: "limited".into(),
            max: 1,
        }];
    }
    vec![fastd, floater]
}

/// Splits off `n` bytes.
fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, rest) = data.split_at_checked(n)?;
    *data = rest;
    Some(head)
}

fn address(sel: u8, data: &mut &[u8]) -> Option<SocketAddr> {
    let v4 = |a, b, c, d, port| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port);
    Some(match sel & 7 {
        0 => fastd_addr(),
        1 => v4(192, 0, 2, 1, 10001),
        2 => SocketAddr::new(
            IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped()),
            10000,
        ),
        3 => SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            10000,
        ),
        4 => v4(198, 51, 100, 7, 10000),
        5 => {
            let b = take(data, 6)?;
            v4(b[0], b[1], b[2], b[3], u16::from_be_bytes([b[4], b[5]]))
        }
        6 => {
            let b = take(data, 18)?;
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&b[..16]);
            SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(ip)),
                u16::from_be_bytes([b[16], b[17]]),
            )
        }
        _ => v4(0, 0, 0, 0, 0),
    })
}

/// `FUZZ_DEBUG=1` prints every output (to see what a seed reaches).
fn debug() -> bool {
    static DEBUG: OnceLock<bool> = OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("FUZZ_DEBUG").is_some())
}

fn check(out: &[Output], verify_key: &mut Option<PublicKey>) {
    for o in out {
        if debug() {
            eprintln!("{o:?}");
        }
        match o {
            Output::Send { bytes, .. } => {
                assert!(
                    bytes.len() <= MAX_HANDSHAKE_SIZE,
                    "sent a {}-byte handshake",
                    bytes.len()
                );
                assert!(
                    matches!(classify(bytes), PacketKind::Handshake { .. }),
                    "sent something that is no handshake: {bytes:02x?}"
                );
            }
            Output::Event(ev) => match &**ev {
                Event::SessionEstablished(e) => {
                    assert!(
                        DEBIAN_METHODS.contains(&e.method.as_str()),
                        "established with method `{}' we do not have",
                        e.method
                    );
                    let spec = crate::method::by_name(&e.method)
                        .unwrap_or_else(|| panic!("unknown method `{}'", e.method));
                    if let Err(err) = spec.session(&e.session_key, true, e.compat, Instant::now()) {
                        panic!("session key unusable for `{}': {err}", e.method);
                    }
                }
                Event::VerifyRequested { key, .. } => *verify_key = Some(*key),
                _ => {}
            },
        }
    }
}

pub fn handshake_packet(data: &[u8]) {
    let Some((&flags, mut data)) = data.split_first() else {
        return;
    };
    let t0 = Instant::now();
    let mut now = t0;
    let mut config = HandshakeConfig::new(secret(REF_SECRET), Mode::Tun, 1400, methods());
    config.on_verify = flags & 1 != 0;
    config.pre_v22 = flags & 2 != 0;
    let limited = flags & 4 != 0;
    let mut hs = Handshake::with_entropy(config, peers(limited), t0, Box::new(Fixed));
    let mut verify_key = None;

    while let Some(head) = take(&mut data, 3) {
        let sel = head[0];
        let len = usize::from(u16::from_be_bytes([head[1], head[2]]));
        let action = (sel >> 3) & 7;
        let datagram: &[u8] = if action == 2 {
            &[]
        } else {
            match take(&mut data, len) {
                Some(d) => d,
                None => data,
            }
        };
        let Some(from) = address(sel, &mut data) else {
            break;
        };
        let out = match action {
            1 => match classify(datagram) {
                PacketKind::Data { .. } => hs.handle_unknown_data(datagram, from, now),
                _ => Vec::new(),
            },
            2 => {
                now += Duration::from_millis(10 * len as u64);
                match hs.poll_timeout() {
                    Some(t) if t <= now => hs.handle_timeout(now),
                    _ => Vec::new(),
                }
            }
            3 => hs.initiate(&public(FASTD_PUBLIC), now),
            4 => {
                let key = if sel & 0x40 != 0 {
                    public(OTHER_PUBLIC)
                } else {
                    public(FASTD_PUBLIC)
                };
                if sel & 0x80 != 0 {
                    hs.peer_reset(&key, now);
                } else {
                    hs.session_confirmed(&key);
                }
                Vec::new()
            }
            5 => match verify_key.take() {
                Some(key) => hs.verify_result(&key, sel & 0x80 != 0, now),
                None => Vec::new(),
            },
            6 => {
                hs.set_peers(peers(limited), now);
                Vec::new()
            }
            _ => hs.handle_handshake(datagram, from, now),
        };
        check(&out, &mut verify_key);
        if datagram.len() < len && action != 2 {
            break;
        }
    }
}
