//! Traffic through a tunnel, sent from threads moved into a namespace (no tools besides `ip`):
//! ICMP echo, a TCP echo transfer, and [`assert_tunnel`] for the check nearly every interop
//! test makes.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::netns::Netns;

static ECHO_ID: AtomicU32 = AtomicU32::new(0);

fn icmp_checksum(b: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in b.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from(c[0]) << 8
        };
        sum += u32::from(w);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends ICMP echo requests from inside `ns` to `dst` (one per 50 ms) until a reply arrives
/// or `timeout` passes. Returns the round-trip time of the first reply.
pub fn ping(ns: &Netns, dst: Ipv4Addr, size: usize, timeout: Duration) -> Option<Duration> {
    ns.run_in(move || {
        // SAFETY: plain socket creation.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_ICMP,
            )
        };
        assert!(fd >= 0);
        // SAFETY: fd is a fresh descriptor we own.
        let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        // SAFETY: valid fd, pointer to a live timeval.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        let id = (std::process::id() as u16) ^ (ECHO_ID.fetch_add(1, Ordering::Relaxed) as u16);
        let start = Instant::now();
        let mut seq = 0u16;
        while start.elapsed() < timeout {
            seq = seq.wrapping_add(1);
            let mut pkt = vec![0u8; 8 + size];
            pkt[0] = 8;
            pkt[4..6].copy_from_slice(&id.to_be_bytes());
            pkt[6..8].copy_from_slice(&seq.to_be_bytes());
            for (i, b) in pkt[8..].iter_mut().enumerate() {
                *b = i as u8;
            }
            let c = icmp_checksum(&pkt);
            pkt[2..4].copy_from_slice(&c.to_be_bytes());
            let sent_at = Instant::now();
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(dst).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: live buffers of the advertised sizes.
            unsafe {
                libc::sendto(
                    sock.as_raw_fd(),
                    pkt.as_ptr().cast(),
                    pkt.len(),
                    0,
                    (&sin as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as u32,
                )
            };
            let wait_end = sent_at + Duration::from_millis(50);
            while Instant::now() < wait_end {
                let mut buf = [0u8; 70000];
                // SAFETY: buf is live and writable.
                let n =
                    unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n <= 0 {
                    break;
                }
                let n = n as usize;
                let ihl = usize::from(buf[0] & 0x0f) * 4;
                if n >= ihl + 8
                    && buf[ihl] == 0
                    && buf[ihl + 4..ihl + 6] == id.to_be_bytes()
                    && buf[12..16] == dst.octets()
                    && n - ihl - 8 == size
                {
                    return Some(sent_at.elapsed());
                }
            }
        }
        None
    })
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends `len` pseudo-random bytes over TCP from `client` to an echo server in `server` at
/// `addr` and checks that exactly the same bytes come back. Bounded by `timeout`.
pub fn tcp_echo(
    server: &Netns,
    client: &Netns,
    addr: SocketAddr,
    len: usize,
    timeout: Duration,
) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let srv = server.spawn(move || -> Result<(), String> {
        let l = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
        tx.send(()).ok();
        l.set_nonblocking(false).ok();
        let (mut s, _) = l.accept().map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(timeout)).ok();
        let mut buf = vec![0u8; 65536];
        loop {
            let n = s.read(&mut buf).map_err(|e| format!("server read: {e}"))?;
            if n == 0 {
                return Ok(());
            }
            s.write_all(&buf[..n])
                .map_err(|e| format!("server write: {e}"))?;
        }
    });
    rx.recv_timeout(Duration::from_secs(5))
        .map_err(|_| "server did not start".to_owned())?;
    let data = pattern(len, 0x9e37_79b9_7f4a_7c15);
    let cli = client.spawn(move || -> Result<(), String> {
        let s = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(timeout)).ok();
        s.set_write_timeout(Some(timeout)).ok();
        let mut w = s.try_clone().map_err(|e| e.to_string())?;
        let expect = data.clone();
        let writer = std::thread::spawn(move || -> Result<(), String> {
            w.write_all(&data)
                .map_err(|e| format!("client write: {e}"))?;
            w.shutdown(std::net::Shutdown::Write)
                .map_err(|e| e.to_string())
        });
        let mut got = Vec::with_capacity(len);
        let mut r = s;
        r.read_to_end(&mut got)
            .map_err(|e| format!("client read after {} bytes: {e}", got.len()))?;
        writer.join().map_err(|_| "writer panicked".to_owned())??;
        if got.len() != expect.len() {
            return Err(format!("echo length {} != {}", got.len(), expect.len()));
        }
        if got != expect {
            return Err("echoed bytes differ".to_owned());
        }
        Ok(())
    });
    let c = cli.join().map_err(|_| "client panicked".to_owned())?;
    let s = srv.join().map_err(|_| "server panicked".to_owned())?;
    c.and(s)
}

/// Lines of a fastd log that indicate packet problems.
pub fn packet_errors(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            let l2 = l.to_ascii_lowercase();
            (l2.contains("verification failed") || l2.contains("invalid") || l2.contains("failed"))
                && !l2.contains("resolving")
                && !l2.contains("invalidating old session")
        })
        .map(str::to_owned)
        .collect()
}

/// How long [`assert_tunnel`] waits for the first echo reply.
pub const TUNNEL_WAIT: Duration = Duration::from_secs(5);

/// Asserts that ICMP echoes with `size` payload bytes from `from` to `to` (one every 50 ms)
/// get a reply within [`TUNNEL_WAIT`]: the tunnel carries traffic both ways.
pub fn assert_tunnel(from: &Netns, to: &str, size: usize) {
    assert_tunnel_or(from, to, size, String::new);
}

/// [`assert_tunnel`], with `context` (say, the daemons' logs) in the failure message.
pub fn assert_tunnel_or(from: &Netns, to: &str, size: usize, context: impl FnOnce() -> String) {
    let dst: Ipv4Addr = to.parse().unwrap();
    if ping(from, dst, size, TUNNEL_WAIT).is_none() {
        panic!(
            "no echo reply from {to} ({size} bytes) in {} within {TUNNEL_WAIT:?}\n{}",
            from.0,
            context()
        );
    }
}

/// Whether an echo from `from` to `to` gets through within `limit`, trying for 500 ms at a
/// time (for a tunnel that is still being repaired).
pub fn tunnel_within(from: &Netns, to: &str, size: usize, limit: Duration) -> bool {
    let dst: Ipv4Addr = to.parse().unwrap();
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if ping(from, dst, size, Duration::from_millis(500)).is_some() {
            return true;
        }
    }
    false
}

/// Asserts that `len` bytes sent over TCP from `client` to an echo server in `server` at
/// `addr` come back unchanged within 30 s.
pub fn assert_transfer(server: &Netns, client: &Netns, addr: &str, len: usize) {
    if let Err(e) = tcp_echo(
        server,
        client,
        addr.parse().unwrap(),
        len,
        Duration::from_secs(30),
    ) {
        panic!("transfer of {len} bytes to {addr}: {e}");
    }
}
