//! The packet I/O: batched UDP (`recvmmsg`/`sendmmsg` with IP_PKTINFO to learn and choose the
//! local address) and TUN/TAP reads and writes on raw descriptors. Every buffer is allocated once;
//! packets are encrypted and decrypted in place inside them.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// Datagrams per `recvmmsg`/`sendmmsg` call.
pub const BATCH: usize = 32;
/// Room for the largest control message we use (in6_pktinfo), aligned.
const CMSG_SPACE: usize = 64;
/// Room for a source address plus UDP_SEGMENT.
const GSO_CMSG_SPACE: usize = 128;
/// Room for packet info plus UDP_GRO on receive.
const RECV_CMSG_SPACE: usize = 128;
/// Receive buffer for a socket with UDP_GRO: a run of datagrams of up to 64 KiB in all.
pub const GRO_RECV_LEN: usize = 65536;

/// A received datagram's addresses.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub src: SocketAddr,
    /// The local address it was sent to (from IP_PKTINFO / IPV6_PKTINFO).
    pub local: Option<IpAddr>,
    pub len: usize,
    /// The kernel cut the datagram (larger than our buffer).
    pub truncated: bool,
    /// UDP GRO: `len` bytes are a run of datagrams of this size (the last may be shorter);
    /// 0 for a single datagram.
    pub seg: usize,
}

pub(super) fn sockaddr_to_std(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in; storage is large and
            // aligned enough for every sockaddr type.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Writes `addr` into `ss`; returns the length to pass to the kernel.
fn std_to_sockaddr(addr: &SocketAddr, ss: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin =
                unsafe { &mut *(ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &mut *(ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Reads the destination address out of an IP_PKTINFO / IPV6_PKTINFO control message.
fn local_from_cmsg(msg: &libc::msghdr) -> Option<IpAddr> {
    // SAFETY: msg was filled by recvmmsg; CMSG_FIRSTHDR/NXTHDR stay within msg_controllen.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !cmsg.is_null() {
        // SAFETY: non-null cmsg pointers from CMSG_FIRSTHDR/NXTHDR point into our control buffer.
        let c = unsafe { &*cmsg };
        if c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_PKTINFO {
            // SAFETY: the kernel wrote an in_pktinfo behind this header; read_unaligned since
            // the control buffer is only byte-aligned for us.
            let pi = unsafe {
                std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in_pktinfo>())
            };
            return Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(pi.ipi_addr.s_addr))));
        }
        if c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_PKTINFO {
            // SAFETY: as above, an in6_pktinfo.
            let pi = unsafe {
                std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in6_pktinfo>())
            };
            let ip = Ipv6Addr::from(pi.ipi6_addr.s6_addr);
            return Some(match ip.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(ip),
            });
        }
        // SAFETY: as for CMSG_FIRSTHDR.
        cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
    }
    None
}

/// The segment size of a UDP GRO run, from its control message.
fn gro_from_cmsg(msg: &libc::msghdr) -> usize {
    // SAFETY: as in local_from_cmsg.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !cmsg.is_null() {
        // SAFETY: as in local_from_cmsg.
        let c = unsafe { &*cmsg };
        if c.cmsg_level == libc::SOL_UDP && c.cmsg_type == libc::UDP_GRO {
            // SAFETY: the kernel wrote an int behind this header.
            let v =
                unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>()) };
            return usize::try_from(v).unwrap_or(0);
        }
        // SAFETY: as in local_from_cmsg.
        cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
    }
    0
}

/// Asks for UDP GRO (Linux 5.0+): the kernel may hand over a run of datagrams from one
/// sender in one buffer of up to [`GRO_RECV_LEN`]. `false` where it refuses.
pub fn enable_gro(fd: BorrowedFd<'_>) -> bool {
    let one: libc::c_int = 1;
    // SAFETY: valid fd; the option value is a live c_int.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_GRO,
            (&one as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as _,
        ) == 0
    }
}

/// Sets the socket options every fastd UDP socket has (docs/config.md §6.9) that we can set without
/// privileges: non-blocking, packet info, no path-MTU discovery.
pub fn prepare_udp_socket(fd: BorrowedFd<'_>) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    set_nonblocking(raw)?;
    let one: libc::c_int = 1;
    let mut domain: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid fd, out-pointers to live locals of the advertised size.
    let rc = unsafe {
        libc::getsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut domain as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let set = |level, opt, val: libc::c_int| -> io::Result<()> {
        // SAFETY: valid fd; the option value is a live c_int.
        let rc = unsafe {
            libc::setsockopt(
                raw,
                level,
                opt,
                (&val as *const libc::c_int).cast(),
                mem::size_of::<libc::c_int>() as _,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    if domain == libc::AF_INET6 {
        set(libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, one)?;
        set(
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DONT,
        )?;
        // Dual-stack sockets also deliver IPv4 packet info.
        let _ = set(libc::IPPROTO_IP, libc::IP_PKTINFO, one);
        let _ = set(
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DONT,
        );
    } else {
        set(libc::IPPROTO_IP, libc::IP_PKTINFO, one)?;
        set(
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DONT,
        )?;
    }
    Ok(())
}

pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own have no memory effects.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Preallocated buffers for one `recvmmsg` batch.
pub struct RecvBatch {
    bufs: Box<[u8]>,
    buf_len: usize,
    addrs: Box<[libc::sockaddr_storage]>,
    ctrl: Box<[[u8; RECV_CMSG_SPACE]]>,
    iovs: Box<[libc::iovec]>,
    msgs: Box<[libc::mmsghdr]>,
    metas: Box<[Option<Meta>]>,
    count: usize,
}

// SAFETY: the raw pointers inside the msghdr/iovec arrays only ever point into buffers owned by
// the same struct, and are rewritten before every system call; moving the struct to another
// thread moves those buffers with it (they are boxed, so their addresses do not change).
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    pub fn new(buf_len: usize) -> Self {
        // SAFETY: all-zero bytes are valid for these plain C structs (null pointers, zero lengths).
        let zeroed_ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let zeroed_msg: libc::mmsghdr = unsafe { mem::zeroed() };
        RecvBatch {
            bufs: vec![0u8; buf_len * BATCH].into_boxed_slice(),
            buf_len,
            addrs: vec![zeroed_ss; BATCH].into_boxed_slice(),
            ctrl: vec![[0u8; RECV_CMSG_SPACE]; BATCH].into_boxed_slice(),
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                BATCH
            ]
            .into_boxed_slice(),
            msgs: vec![zeroed_msg; BATCH].into_boxed_slice(),
            metas: vec![None; BATCH].into_boxed_slice(),
            count: 0,
        }
    }

    /// Receives up to [`BATCH`] datagrams without blocking; returns how many arrived
    /// (0 when the socket is drained).
    pub fn recv(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        self.count = 0;
        let base = self.bufs.as_mut_ptr();
        for i in 0..BATCH {
            // SAFETY: i * buf_len + buf_len <= bufs.len() by construction.
            let p = unsafe { base.add(i * self.buf_len) };
            self.iovs[i] = libc::iovec {
                iov_base: p.cast(),
                iov_len: self.buf_len,
            };
            let hdr = &mut self.msgs[i].msg_hdr;
            hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &mut self.iovs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = self.ctrl[i].as_mut_ptr().cast();
            hdr.msg_controllen = RECV_CMSG_SPACE as _;
            hdr.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
        // SAFETY: every msghdr points at buffers owned by self that live across the call and
        // are sized as advertised; the kernel writes at most those sizes.
        let n = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                self.msgs.as_mut_ptr(),
                BATCH as _,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let n = n as usize;
        for i in 0..n {
            let m = &self.msgs[i];
            self.metas[i] = sockaddr_to_std(&self.addrs[i]).map(|src| Meta {
                src,
                local: local_from_cmsg(&m.msg_hdr),
                len: (m.msg_len as usize).min(self.buf_len),
                truncated: m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                seg: gro_from_cmsg(&m.msg_hdr),
            });
        }
        self.count = n;
        Ok(n)
    }

    /// Datagram `i` of the last batch: its metadata and its whole buffer (the datagram is
    /// `buf[..meta.len]`; decryption happens in place).
    pub fn get(&mut self, i: usize) -> Option<(Meta, &mut [u8])> {
        if i >= self.count {
            return None;
        }
        let meta = (*self.metas.get(i)?)?;
        let start = i * self.buf_len;
        let buf = self.bufs.get_mut(start..start + self.buf_len)?;
        Some((meta, buf))
    }
}

/// Preallocated buffers for one `sendmmsg` batch to a single socket. Callers fill a slot in
/// place (read a TUN packet behind the method's headroom, encrypt it there), then commit it
/// with a tag of their choosing; after a flush each tag comes back with its [`Outcome`].
pub struct SendBatch<T> {
    bufs: Box<[u8]>,
    buf_len: usize,
    lens: [usize; BATCH],
    starts: [usize; BATCH],
    addrs: Box<[libc::sockaddr_storage]>,
    addr_lens: [libc::socklen_t; BATCH],
    ctrl: Box<[[u8; CMSG_SPACE]]>,
    ctrl_lens: [usize; BATCH],
    /// Per message of a flush: the source address and UDP_SEGMENT.
    gso_ctrl: Box<[[u8; GSO_CMSG_SPACE]]>,
    /// UDP GSO is used until the kernel refuses it once (EIO: the route's device cannot
    /// checksum; EINVAL without a source address: no UDP_SEGMENT), then never again.
    gso: bool,
    iovs: Box<[libc::iovec]>,
    msgs: Box<[libc::mmsghdr]>,
    tags: [T; BATCH],
    outcomes: [Outcome; BATCH],
    count: usize,
    /// Datagrams the last flush handled (their outcomes are readable until the next commit).
    flushed: usize,
    fd: RawFd,
}

/// Result of a flush.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub ok: usize,
    pub failed: usize,
}

/// What became of one datagram.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    #[default]
    Sent,
    /// The kernel refused the source address we pinned (it is no longer ours: the host's
    /// address changed), so it went out again without one, from the source the kernel chose.
    /// Like fastd's send_type(): the caller should stop naming that address.
    Unpinned,
    /// The socket buffer was full (EAGAIN): fastd's `tx_dropped`.
    Dropped,
    /// Any other error: fastd's `tx_error`.
    Failed,
}

impl Outcome {
    fn of_error(e: &io::Error) -> Outcome {
        if e.kind() == io::ErrorKind::WouldBlock {
            Outcome::Dropped
        } else {
            Outcome::Failed
        }
    }
}

/// The errors with which the kernel refuses a pinned source address that is not (or no
/// longer) local: EINVAL (IPv6, and IPv4 for some addresses) or ENETUNREACH (IPv4's route
/// lookup). fastd retries on exactly these two.
fn stale_source(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENETUNREACH))
}

// SAFETY: as for RecvBatch: the pointers refer to the struct's own boxed buffers only.
unsafe impl<T: Send> Send for SendBatch<T> {}

impl<T: Copy + Default> SendBatch<T> {
    pub fn new(buf_len: usize) -> Self {
        // SAFETY: all-zero bytes are valid for these plain C structs.
        let zeroed_ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let zeroed_msg: libc::mmsghdr = unsafe { mem::zeroed() };
        SendBatch {
            bufs: vec![0u8; buf_len * BATCH].into_boxed_slice(),
            buf_len,
            lens: [0; BATCH],
            starts: [0; BATCH],
            addrs: vec![zeroed_ss; BATCH].into_boxed_slice(),
            addr_lens: [0; BATCH],
            ctrl: vec![[0u8; CMSG_SPACE]; BATCH].into_boxed_slice(),
            ctrl_lens: [0; BATCH],
            gso_ctrl: vec![[0u8; GSO_CMSG_SPACE]; BATCH].into_boxed_slice(),
            gso: true,
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                BATCH
            ]
            .into_boxed_slice(),
            msgs: vec![zeroed_msg; BATCH].into_boxed_slice(),
            tags: [T::default(); BATCH],
            outcomes: [Outcome::Sent; BATCH],
            count: 0,
            flushed: 0,
            fd: -1,
        }
    }

    pub fn buf_len(&self) -> usize {
        self.buf_len
    }

    pub fn is_full(&self) -> bool {
        self.count >= BATCH
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The socket the queued datagrams go to (-1 when empty).
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// The next free slot's buffer; `None` when the batch is full.
    pub fn slot(&mut self) -> Option<&mut [u8]> {
        if self.is_full() {
            return None;
        }
        let start = self.count * self.buf_len;
        self.bufs.get_mut(start..start + self.buf_len)
    }

    /// Queues the filled slot: `buf[start..start + len]` goes to `dst` from local address
    /// `src` (if known); `tag` comes back with the datagram's outcome. The caller flushes first
    /// when the batch is full or `fd` differs from the queued one.
    pub fn commit(
        &mut self,
        fd: RawFd,
        start: usize,
        len: usize,
        dst: &SocketAddr,
        src: Option<IpAddr>,
        tag: T,
    ) {
        let i = self.count;
        if i >= BATCH {
            return;
        }
        self.flushed = 0;
        self.fd = fd;
        self.tags[i] = tag;
        self.outcomes[i] = Outcome::Sent;
        self.starts[i] = start.min(self.buf_len);
        self.lens[i] = len.min(self.buf_len - self.starts[i]);
        self.addr_lens[i] = std_to_sockaddr(dst, &mut self.addrs[i]);
        self.ctrl_lens[i] = write_pktinfo(&mut self.ctrl[i], dst, src);
        self.count += 1;
    }

    /// How many datagrams the last flush handled.
    pub fn flushed(&self) -> usize {
        self.flushed
    }

    /// The tag and outcome of datagram `i` of the last flush.
    pub fn outcome(&self, i: usize) -> Option<(T, Outcome)> {
        if i >= self.flushed {
            return None;
        }
        Some((*self.tags.get(i)?, *self.outcomes.get(i)?))
    }

    /// Sends everything queued. Datagrams the kernel refuses are counted as failed and dropped:
    /// UDP gives no delivery guarantee anyway, and one unreachable peer must not block others.
    /// One whose pinned source address is refused is sent once more without it.
    ///
    /// Runs of datagrams to one destination, all of one size but the last, leave as one
    /// message with UDP_SEGMENT (UDP GSO, [`super::offload::gso`]); where the kernel refuses
    /// that, they go one by one (`sendmmsg`) and GSO stays off.
    pub fn flush(&mut self) -> Sent {
        let mut sent = Sent::default();
        let total = self.count;
        let base = self.bufs.as_mut_ptr();
        for i in 0..total {
            // SAFETY: i < BATCH and starts[i] + lens[i] <= buf_len, so the range lies inside bufs.
            let p = unsafe { base.add(i * self.buf_len + self.starts[i]) };
            self.iovs[i] = libc::iovec {
                iov_base: p.cast(),
                iov_len: self.lens[i],
            };
        }
        // Datagrams before this index go without GSO in this flush (a GSO run was refused
        // with EINVAL while it named a source address, which may be what was refused).
        let mut singles_until = 0;
        let mut ends = [0usize; BATCH];
        let mut d = 0;
        // Bounded: every turn sends or drops at least one datagram, or takes GSO or a source
        // address away, each at most once per datagram.
        while d < total {
            let nmsgs = self.build_messages(d, total, singles_until, &mut ends);
            // SAFETY: msgs[..nmsgs] point at iovecs, addresses and control buffers owned by
            // self, valid for the call; the kernel only reads them.
            let n = unsafe {
                libc::sendmmsg(
                    self.fd,
                    self.msgs.as_mut_ptr(),
                    nmsgs as _,
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                let last = ends[n as usize - 1];
                sent.ok += last - d;
                d = last;
                continue;
            }
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            let first_end = ends[0];
            if first_end - d > 1 && matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL)) {
                if e.raw_os_error() == Some(libc::EIO) || self.ctrl_lens[d] == 0 {
                    self.gso = false;
                } else {
                    singles_until = first_end;
                }
                continue;
            }
            if self.ctrl_lens[d] > 0 && stale_source(&e) {
                self.ctrl_lens[d] = 0;
                self.outcomes[d] = Outcome::Unpinned;
                continue;
            }
            // The first message cannot be sent (full queue, unreachable, bad address): drop it.
            for o in &mut self.outcomes[d..first_end] {
                *o = Outcome::of_error(&e);
            }
            sent.failed += first_end - d;
            d = first_end;
        }
        self.flushed = total;
        self.count = 0;
        self.fd = -1;
        sent
    }

    /// Fills `msgs` for datagrams `from..total`, a GSO run per message where allowed; `ends`
    /// gets each message's end. Returns the number of messages.
    fn build_messages(
        &mut self,
        from: usize,
        total: usize,
        singles_until: usize,
        ends: &mut [usize; BATCH],
    ) -> usize {
        let mut k = 0;
        let mut i = from;
        while i < total && k < BATCH {
            let end = if self.gso && i >= singles_until {
                let (addrs, addr_lens) = (&self.addrs, &self.addr_lens);
                let (ctrl, ctrl_lens) = (&self.ctrl, &self.ctrl_lens);
                let same = |j: usize| {
                    addr_lens[j] == addr_lens[i]
                        && sockaddr_bytes(&addrs[j], addr_lens[j])
                            == sockaddr_bytes(&addrs[i], addr_lens[i])
                        && ctrl_lens[j] == ctrl_lens[i]
                        && ctrl[j][..ctrl_lens[j]] == ctrl[i][..ctrl_lens[i]]
                };
                super::offload::gso::run_end(&self.lens[..total], same, i)
            } else {
                i + 1
            };
            let hdr = &mut self.msgs[k].msg_hdr;
            hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = self.addr_lens[i];
            hdr.msg_iov = &mut self.iovs[i];
            hdr.msg_iovlen = end - i;
            hdr.msg_flags = 0;
            let clen = self.ctrl_lens[i];
            if end - i > 1 {
                let c = &mut self.gso_ctrl[k];
                c.fill(0);
                c[..clen].copy_from_slice(&self.ctrl[i][..clen]);
                let seg = write_cmsg(
                    &mut c[clen..],
                    libc::SOL_UDP,
                    libc::UDP_SEGMENT,
                    self.lens[i] as u16,
                );
                hdr.msg_control = c.as_mut_ptr().cast();
                hdr.msg_controllen = (clen + seg) as _;
            } else if clen > 0 {
                hdr.msg_control = self.ctrl[i].as_mut_ptr().cast();
                hdr.msg_controllen = clen as _;
            } else {
                hdr.msg_control = std::ptr::null_mut();
                hdr.msg_controllen = 0;
            }
            ends[k] = end;
            k += 1;
            i = end;
        }
        k
    }
}

/// The bytes of an address the kernel will read (for comparing destinations).
fn sockaddr_bytes(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> &[u8] {
    let len = (len as usize).min(mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: sockaddr_storage is plain data of at least `len` bytes.
    unsafe { std::slice::from_raw_parts((ss as *const libc::sockaddr_storage).cast::<u8>(), len) }
}

/// Fills an IP_PKTINFO / IPV6_PKTINFO message choosing our source address; returns its length
/// (0 = none, let the kernel choose).
fn write_pktinfo(buf: &mut [u8; CMSG_SPACE], dst: &SocketAddr, src: Option<IpAddr>) -> usize {
    let Some(src) = src else { return 0 };
    if src.is_unspecified() {
        return 0;
    }
    match (dst, src) {
        (SocketAddr::V4(_), IpAddr::V4(s)) => {
            let pi = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(s).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            write_cmsg(buf, libc::IPPROTO_IP, libc::IP_PKTINFO, pi)
        }
        (SocketAddr::V6(_), IpAddr::V6(s)) => {
            let pi = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: s.octets(),
                },
                ipi6_ifindex: 0,
            };
            write_cmsg(buf, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, pi)
        }
        // A v4 destination on a dual-stack socket with a v4 source: the kernel picks (the
        // v4-mapped pktinfo form is not worth the complexity here).
        _ => 0,
    }
}

/// Writes one control message carrying `value` into `buf`; returns the control length (0 when
/// it does not fit).
fn write_cmsg<T: Copy>(buf: &mut [u8], level: i32, kind: i32, value: T) -> usize {
    let size = mem::size_of::<T>() as u32;
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(size) } as usize;
    if space > buf.len() {
        return 0;
    }
    let buf = &mut buf[..space];
    buf.fill(0);
    // SAFETY: a zeroed msghdr pointing at our buffer is only used for the CMSG_* arithmetic.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_control = buf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: the control buffer holds `space` bytes, enough for one header plus a `T`.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = level;
        (*c).cmsg_type = kind;
        (*c).cmsg_len = libc::CMSG_LEN(size) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<T>(), value);
    }
    space
}

/// Reads one packet from a TUN/TAP descriptor into `buf`; `Ok(None)` when nothing is queued.
pub fn tun_read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: buf is a live, writable slice of the given length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(n as usize))
}

/// Writes one packet to a TUN/TAP descriptor.
pub fn tun_write(fd: BorrowedFd<'_>, pkt: &[u8]) -> io::Result<()> {
    // SAFETY: pkt is a live slice of the given length.
    let n = unsafe { libc::write(fd.as_raw_fd(), pkt.as_ptr().cast(), pkt.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes one packet behind a virtio-net header to a device opened with IFF_VNET_HDR.
pub fn tun_write_vnet(fd: BorrowedFd<'_>, hdr: &[u8], pkt: &[u8]) -> io::Result<()> {
    let iov = [
        libc::iovec {
            iov_base: hdr.as_ptr() as *mut libc::c_void,
            iov_len: hdr.len(),
        },
        libc::iovec {
            iov_base: pkt.as_ptr() as *mut libc::c_void,
            iov_len: pkt.len(),
        },
    ];
    // SAFETY: both iovecs describe live slices; the kernel only reads them.
    let n = unsafe { libc::writev(fd.as_raw_fd(), iov.as_ptr(), 2) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A single datagram, for handshakes and keepalives (rare: no batching needed). As in
/// [`SendBatch::flush`], a refused source address is dropped and the datagram sent again;
/// `Ok(Outcome::Unpinned)` tells.
pub fn send_one(
    fd: BorrowedFd<'_>,
    pkt: &[u8],
    dst: &SocketAddr,
    src: Option<IpAddr>,
) -> io::Result<Outcome> {
    // SAFETY: zeroed C structs are valid.
    let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let sl = std_to_sockaddr(dst, &mut ss);
    let mut ctrl = [0u8; CMSG_SPACE];
    let cl = write_pktinfo(&mut ctrl, dst, src);
    let mut iov = libc::iovec {
        iov_base: pkt.as_ptr() as *mut libc::c_void,
        iov_len: pkt.len(),
    };
    // SAFETY: zeroed msghdr is valid; fields set below point at live locals.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&mut ss as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = sl;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if cl > 0 {
        msg.msg_control = ctrl.as_mut_ptr().cast();
        msg.msg_controllen = cl as _;
    }
    let mut outcome = Outcome::Sent;
    // Bounded: at most one retry without the source address, plus interrupted calls.
    loop {
        // SAFETY: msg points at live buffers for the duration of the call; the kernel only
        // reads.
        let n = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
        if n >= 0 {
            return Ok(outcome);
        }
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if msg.msg_controllen > 0 && stale_source(&e) {
            msg.msg_control = std::ptr::null_mut();
            msg.msg_controllen = 0;
            outcome = Outcome::Unpinned;
            continue;
        }
        return Err(e);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;

    #[test]
    fn batch_roundtrip_on_loopback_with_pktinfo() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        prepare_udp_socket(a.as_fd()).unwrap();
        prepare_udp_socket(b.as_fd()).unwrap();
        let bdst = b.local_addr().unwrap();
        let mut sb = SendBatch::<u8>::new(2048);
        for i in 0..40u8 {
            if sb.is_full() {
                assert_eq!(
                    sb.flush(),
                    Sent {
                        ok: BATCH,
                        failed: 0
                    }
                );
            }
            let s = sb.slot().unwrap();
            s[..3].copy_from_slice(&[i, i, i]);
            sb.commit(
                a.as_raw_fd(),
                0,
                3,
                &bdst,
                Some("127.0.0.1".parse().unwrap()),
                i,
            );
        }
        assert_eq!(sb.flush(), Sent { ok: 8, failed: 0 });
        let mut rb = RecvBatch::new(2048);
        let mut seen = Vec::new();
        for _ in 0..10 {
            let n = rb.recv(b.as_fd()).unwrap();
            for i in 0..n {
                let (m, buf) = rb.get(i).unwrap();
                assert_eq!(m.src, a.local_addr().unwrap());
                assert_eq!(m.local, Some("127.0.0.1".parse().unwrap()));
                assert_eq!(m.len, 3);
                assert!(!m.truncated);
                seen.push(buf[0]);
            }
            if seen.len() == 40 {
                break;
            }
        }
        assert_eq!(seen, (0..40).collect::<Vec<u8>>());
        assert_eq!(rb.recv(b.as_fd()).unwrap(), 0);
    }

    /// A run of equal-sized datagrams (and a shorter last one) to one destination leaves as
    /// one UDP GSO message, and arrives as the datagrams it was, in order; another
    /// destination in between ends the run.
    #[test]
    fn gso_runs_arrive_as_the_datagrams_they_were() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&a, &b, &c] {
            prepare_udp_socket(s.as_fd()).unwrap();
        }
        let (bdst, cdst) = (b.local_addr().unwrap(), c.local_addr().unwrap());
        let plan: [(usize, &SocketAddr); 7] = [
            (1000, &bdst),
            (1000, &bdst),
            (1000, &bdst),
            (400, &bdst),
            (1000, &cdst),
            (1000, &bdst),
            (1000, &bdst),
        ];
        let mut sb = SendBatch::<u8>::new(2048);
        for (i, (len, dst)) in plan.iter().enumerate() {
            let s = sb.slot().unwrap();
            s[..*len].fill(i as u8);
            sb.commit(a.as_raw_fd(), 0, *len, dst, None, i as u8);
        }
        assert_eq!(sb.flush(), Sent { ok: 7, failed: 0 });
        assert!(sb.gso, "the kernel refused UDP GSO on loopback");
        let mut rb = RecvBatch::new(2048);
        let mut got = Vec::new();
        for _ in 0..100 {
            for sock in [&b, &c] {
                let n = rb.recv(sock.as_fd()).unwrap();
                for i in 0..n {
                    let (m, buf) = rb.get(i).unwrap();
                    assert!(buf[..m.len].iter().all(|x| *x == buf[0]));
                    got.push((buf[0], m.len));
                }
            }
            if got.len() == plan.len() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        got.sort_unstable();
        let want: Vec<(u8, usize)> = plan
            .iter()
            .enumerate()
            .map(|(i, p)| (i as u8, p.0))
            .collect();
        assert_eq!(got, want);
    }

    /// A GSO run to a socket with UDP GRO arrives as one buffer with its segment size.
    #[test]
    fn gro_receives_a_run_in_one_buffer() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        prepare_udp_socket(a.as_fd()).unwrap();
        prepare_udp_socket(b.as_fd()).unwrap();
        assert!(enable_gro(b.as_fd()));
        let bdst = b.local_addr().unwrap();
        let mut sb = SendBatch::<u8>::new(2048);
        for (i, len) in [1000usize, 1000, 1000, 400].into_iter().enumerate() {
            let s = sb.slot().unwrap();
            s[..len].fill(i as u8);
            sb.commit(a.as_raw_fd(), 0, len, &bdst, None, i as u8);
        }
        assert_eq!(sb.flush(), Sent { ok: 4, failed: 0 });
        let mut rb = RecvBatch::new(GRO_RECV_LEN);
        let mut got = Vec::new();
        for _ in 0..100 {
            let n = rb.recv(b.as_fd()).unwrap();
            for i in 0..n {
                let (m, buf) = rb.get(i).unwrap();
                got.push((m.len, m.seg, buf[0], buf[m.len - 1]));
            }
            if !got.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(got, vec![(3400, 1000, 0, 3)]);
    }

    /// The host lost the address a session pinned (192.0.2.77 is not ours): the datagrams
    /// still go out, from the address the kernel picks, and the caller learns it.
    #[test]
    fn vanished_source_address_is_dropped_and_reported() {
        let a = UdpSocket::bind("0.0.0.0:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        prepare_udp_socket(a.as_fd()).unwrap();
        prepare_udp_socket(b.as_fd()).unwrap();
        let bdst = b.local_addr().unwrap();
        let gone: IpAddr = "192.0.2.77".parse().unwrap();
        let mut sb = SendBatch::<u8>::new(256);
        for i in 0..3u8 {
            let s = sb.slot().unwrap();
            s[0] = i;
            let src = (i != 1).then_some(gone);
            sb.commit(a.as_raw_fd(), 0, 1, &bdst, src, i);
        }
        assert_eq!(sb.flush(), Sent { ok: 3, failed: 0 });
        let got: Vec<_> = (0..sb.flushed()).filter_map(|i| sb.outcome(i)).collect();
        assert_eq!(
            got,
            vec![
                (0, Outcome::Unpinned),
                (1, Outcome::Sent),
                (2, Outcome::Unpinned)
            ]
        );
        assert_eq!(
            send_one(a.as_fd(), &[9], &bdst, Some(gone)).unwrap(),
            Outcome::Unpinned
        );
        let mut rb = RecvBatch::new(256);
        let mut seen = Vec::new();
        for _ in 0..100 {
            let n = rb.recv(b.as_fd()).unwrap();
            for i in 0..n {
                let (m, buf) = rb.get(i).unwrap();
                assert_eq!(m.src.ip(), IpAddr::from([127, 0, 0, 1]));
                seen.push(buf[0]);
            }
            if seen.len() == 4 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(seen, vec![0, 1, 2, 9]);
    }

    #[test]
    fn oversized_datagram_is_flagged_truncated() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        prepare_udp_socket(b.as_fd()).unwrap();
        a.send_to(&[7u8; 300], b.local_addr().unwrap()).unwrap();
        let mut rb = RecvBatch::new(100);
        let mut n = 0;
        for _ in 0..100 {
            n = rb.recv(b.as_fd()).unwrap();
            if n > 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(n, 1);
        let (m, _) = rb.get(0).unwrap();
        assert!(m.truncated);
        assert_eq!(m.len, 100);
    }
}
