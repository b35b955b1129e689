//! Capturing a datagram on a namespace's `eth0` and injecting the same Ethernet frame again
//! from the sender's side (AF_PACKET), for the replay test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

fn packet_socket(ifname: &str) -> (OwnedFd, i32) {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket creation.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(proto),
        )
    };
    assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
    // SAFETY: fd is fresh and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let name = std::ffi::CString::new(ifname).unwrap();
    // SAFETY: name is a valid C string.
    let idx = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
    assert!(idx > 0);
    // SAFETY: zeroed sockaddr_ll is valid; fields set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = idx;
    // SAFETY: sll is a live sockaddr_ll of the given size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(rc, 0);
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: valid fd and timeval.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    (fd, idx)
}

/// Waits (bounded) for an incoming IPv4/UDP frame to `dst_port` whose payload satisfies `want`;
/// returns the whole Ethernet frame. Runs on a thread inside the capturing namespace.
pub fn capture_udp(
    ifname: &str,
    dst_port: u16,
    timeout: Duration,
    want: impl Fn(&[u8]) -> bool,
) -> Option<Vec<u8>> {
    capture(ifname, None, dst_port, timeout, want)
}

/// Like [`capture_udp`], but only datagrams from the IPv4 source `src` (with several peers,
/// another peer's packet would otherwise be replayed in the name of the wrong one).
pub fn capture_udp_from(
    ifname: &str,
    src: [u8; 4],
    dst_port: u16,
    timeout: Duration,
    want: impl Fn(&[u8]) -> bool,
) -> Option<Vec<u8>> {
    capture(ifname, Some(src), dst_port, timeout, want)
}

fn capture(
    ifname: &str,
    src: Option<[u8; 4]>,
    dst_port: u16,
    timeout: Duration,
    want: impl Fn(&[u8]) -> bool,
) -> Option<Vec<u8>> {
    let (fd, _) = packet_socket(ifname);
    let end = Instant::now() + timeout;
    let mut buf = vec![0u8; 65536];
    while Instant::now() < end {
        // SAFETY: zeroed sockaddr_ll is valid.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: buf and from are live and writable, from_len holds from's size.
        let n = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut from_len,
            )
        };
        // Only frames this node receives: our own outgoing packets to a peer that also listens
        // on `dst_port` would otherwise be captured (and replayed to the wrong node).
        if n <= 0 || from.sll_pkttype == libc::PACKET_OUTGOING {
            continue;
        }
        let f = &buf[..n as usize];
        if f.len() < 14 + 20 + 8 || f[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &f[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip[9] != 17 || ip.len() < ihl + 8 {
            continue;
        }
        let udp = &ip[ihl..];
        if u16::from_be_bytes([udp[2], udp[3]]) != dst_port {
            continue;
        }
        if src.is_some_and(|src| ip[12..16] != src) {
            continue;
        }
        if want(&udp[8..]) {
            return Some(f.to_vec());
        }
    }
    None
}

/// Sends a complete Ethernet frame out of `ifname` (a thread inside the sending namespace).
pub fn inject(ifname: &str, frame: &[u8]) {
    inject_all(ifname, &[frame.to_vec()]);
}

/// Sends complete Ethernet frames out of `ifname`, in order.
pub fn inject_all(ifname: &str, frames: &[Vec<u8>]) {
    let (fd, idx) = packet_socket(ifname);
    for (i, frame) in frames.iter().enumerate() {
        send_frame(&fd, idx, frame);
        // Pace bursts so the receiver's socket buffer does not overflow.
        if i % 32 == 31 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

fn send_frame(fd: &OwnedFd, idx: i32, frame: &[u8]) {
    // SAFETY: zeroed sockaddr_ll is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = idx;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&frame[..6]);
    // SAFETY: frame and sll are live for the call.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(
        n as usize,
        frame.len(),
        "inject: {}",
        std::io::Error::last_os_error()
    );
}
