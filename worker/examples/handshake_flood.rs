//! A bounded flood of fastd handshake packet 1 with random sender keys, for
//! `benches/handshake-flood.sh`. Run it inside a network namespace whose
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
/// Packets per `sendmmsg` (all from one source), between two looks at the clock.
const CHUNK: u64 = 16;

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
        .next_back()
        .expect("an initial handshake");
    let find = |needle: &[u8]| pkt.windows(32).position(|w| w == needle);
    let key_at = find(own.as_bytes()).expect("sender key in packet 1");
    // The sender handshake key is the other 32-byte record: the only one besides the
    // sender key and the recipient key (the gateway's).
    let hs_at = (4..=pkt.len().saturating_sub(32))
        .find(|&i| {
            i != key_at
                && pkt.get(i - 4..i).is_some_and(|h| {
                    // TLV header: type 0x0008 (sender handshake key), length 32, little endian.
                    h == [0x08, 0x00, 0x20, 0x00]
                })
        })
        .expect("sender handshake key in packet 1");
    (pkt, key_at, hs_at)
}

/// Sends every buffer through the connected socket `s`; returns how many went out.
fn send_batch(s: &UdpSocket, bufs: &mut [Vec<u8>]) -> u64 {
    use std::os::fd::AsRawFd;
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: an all-zero mmsghdr is valid (no name, no control data).
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    // SAFETY: every header points at an iovec and buffer that live across the call.
    let n = unsafe {
        libc::sendmmsg(
            s.as_raw_fd(),
            msgs.as_mut_ptr(),
            msgs.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    u64::try_from(n).unwrap_or(0)
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
            let s = UdpSocket::bind(SocketAddr::new(ip, 0)).expect("bind a source address");
            s.connect(target).expect("connect");
            s
        })
        .collect();
    for s in &sockets {
        s.set_nonblocking(true).unwrap();
    }
    let (pkt, key_at, hs_at) = template(&gateway, target);
    let mut bufs = vec![pkt; CHUNK as usize];
    let mut seed = [0u8; 8];
    getrandom::getrandom(&mut seed).unwrap();
    let mut rng = XorShift(u64::from_le_bytes(seed) | 1);
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let (mut sent, mut refused) = (0u64, 0u64);
    let (mut attempts, mut batches) = (0u64, 0u64);
    while attempts < MAX_PACKETS {
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
        // One batch from the next source: CHUNK packets, each with its own random keys.
        let s = &sockets[(batches % sockets.len() as u64) as usize];
        batches += 1;
        for b in bufs.iter_mut() {
            rng.fill(&mut b[key_at..key_at + 32]);
            rng.fill(&mut b[hs_at..hs_at + 32]);
        }
        let n = send_batch(s, &mut bufs);
        attempts += CHUNK;
        sent += n;
        refused += CHUNK - n;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "flood: sent={sent} refused={refused} seconds={secs:.1} rate={:.0}/s sources={}",
        sent as f64 / secs,
        sockets.len()
    );
}
