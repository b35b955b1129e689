//! A bounded flood of fastd handshake packet 1 with random sender keys, for
//! `benches/handshake-flood.sh` (issue 9). Run it inside a network namespace whose
//! interface carries the source addresses: it binds one UDP socket per address and sends
//! round-robin from them, so every packet comes from one of many "spoofed" sources.
//!
//! ```text
//! handshake_flood TARGET_IP:PORT GATEWAY_KEY_HEX RATE SECONDS SOURCE_IP...
//! ```
//!
//! `RATE` is packets per second, 0 for as fast as the sockets take them. `SECONDS` is capped
//! at 60 and the packet count at 20 million. Prints how many packets went out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use worker::handshake::{Handshake, HandshakeConfig, Mode, Output, PeerConfig};
use worker::keys::{PublicKey, SecretKey};

const MAX_SECONDS: u64 = 60;
const MAX_PACKETS: u64 = 20_000_000;
/// Packets between two looks at the clock.
const CHUNK: u64 = 64;

/// Packet 1 of a handshake from a fresh key to `gateway` at `target`, and where in it the
/// sender key and the sender handshake key are.
fn template(gateway: &PublicKey, target: SocketAddr) -> (Vec<u8>, usize, usize) {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).unwrap();
    let secret = SecretKey::from_random_bytes(seed);
    let own = secret.public();
    let now = Instant::now();
    let config = HandshakeConfig::new(secret, Mode::Tun, 1400, vec!["salsa2012+umac".into()]);
    let mut peer = PeerConfig::new("gw", *gateway, vec!["salsa2012+umac".into()], 1400);
    peer.remotes = vec![target];
    let mut hs = Handshake::new(config, vec![peer], now);
    let pkt = hs
        .handle_timeout(now)
        .into_iter()
        .filter_map(|o| match o {
            Output::Send { bytes, .. } => Some(bytes),
            Output::Event(_) => None,
        })
        .last()
        .expect("an initial handshake");
    let find = |needle: &[u8]| pkt.windows(32).position(|w| w == needle);
    let key_at = find(own.as_bytes()).expect("sender key in packet 1");
    // The sender handshake key is the other 32-byte record: the only one besides the
    // sender key and the recipient key (the gateway's).
    let hs_at = (0..pkt.len().saturating_sub(32))
        .find(|&i| {
            i != key_at
                && pkt.get(i.wrapping_sub(4)..i).is_some_and(|h| {
                    // TLV header: type 0x0008 (sender handshake key), length 32, little endian.
                    h == [0x08, 0x00, 0x20, 0x00]
                })
        })
        .expect("sender handshake key in packet 1");
    (pkt, key_at, hs_at)
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fill(&mut self, out: &mut [u8]) {
        for c in out.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            c.copy_from_slice(&r[..c.len()]);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        eprintln!(
            "usage: handshake_flood TARGET_IP:PORT GATEWAY_KEY_HEX RATE SECONDS SOURCE_IP..."
        );
        std::process::exit(2);
    }
    let target: SocketAddr = args[0].parse().expect("target address");
    let gateway = PublicKey::from_hex(&args[1]).expect("gateway key");
    let rate: u64 = args[2].parse().expect("rate");
    let seconds: u64 = args[3].parse::<u64>().expect("seconds").min(MAX_SECONDS);
    let sockets: Vec<UdpSocket> = args[4..]
        .iter()
        .map(|a| {
            let ip: IpAddr = a.parse().expect("source address");
            UdpSocket::bind(SocketAddr::new(ip, 0)).expect("bind a source address")
        })
        .collect();
    for s in &sockets {
        s.set_nonblocking(true).unwrap();
    }
    let (mut pkt, key_at, hs_at) = template(&gateway, target);
    let mut seed = [0u8; 8];
    getrandom::getrandom(&mut seed).unwrap();
    let mut rng = XorShift(u64::from_le_bytes(seed) | 1);
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let (mut sent, mut refused) = (0u64, 0u64);
    let mut attempts = 0u64;
    'outer: while attempts < MAX_PACKETS {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if rate > 0 {
            // Where we should be by now; sleep while ahead.
            let due = (now - start).as_secs_f64() * rate as f64;
            if attempts as f64 >= due {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
        }
        for _ in 0..CHUNK {
            if attempts >= MAX_PACKETS {
                break 'outer;
            }
            rng.fill(&mut pkt[key_at..key_at + 32]);
            rng.fill(&mut pkt[hs_at..hs_at + 32]);
            let s = &sockets[(attempts % sockets.len() as u64) as usize];
            attempts += 1;
            match s.send_to(&pkt, target) {
                Ok(_) => sent += 1,
                Err(_) => refused += 1,
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "flood: sent={sent} refused={refused} seconds={secs:.1} rate={:.0}/s sources={}",
        sent as f64 / secs,
        sockets.len()
    );
}
