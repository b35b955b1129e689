//! UDP sockets with fastd's options (docs/config.md 6.9): non-blocking, PKTINFO, FREEBIND,
//! path-MTU discovery off, V6ONLY unless `bind any`, SO_BINDTODEVICE, SO_MARK.

use nix::sys::socket::{
    bind, getsockname, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType,
    SockaddrStorage,
};
use std::ffi::OsString;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

fn set_int(fd: &OwnedFd, level: libc::c_int, opt: libc::c_int, val: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt with a pointer to a c_int that lives across the call and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&val as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub fn bind_udp(
    addr: SocketAddr,
    dual_stack: bool,
    interface: Option<&str>,
    mark: Option<u32>,
) -> io::Result<(OwnedFd, SocketAddr)> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(
        family,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    if addr.is_ipv4() {
        set_int(&fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
        set_int(
            &fd,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DONT,
        )?;
        set_int(&fd, libc::IPPROTO_IP, libc::IP_FREEBIND, 1)?;
    } else {
        setsockopt(&fd, sockopt::Ipv6V6Only, &!dual_stack)?;
        set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
        set_int(
            &fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DONT,
        )?;
        set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_FREEBIND, 1)?;
    }
    if let Some(dev) = interface {
        setsockopt(&fd, sockopt::BindToDevice, &OsString::from(dev))?;
    }
    if let Some(m) = mark {
        setsockopt(&fd, sockopt::Mark, &m)?;
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    let local: SockaddrStorage = getsockname(fd.as_raw_fd())?;
    let local = if let Some(v4) = local.as_sockaddr_in() {
        SocketAddr::from(std::net::SocketAddrV4::from(*v4))
    } else if let Some(v6) = local.as_sockaddr_in6() {
        SocketAddr::from(std::net::SocketAddrV6::from(*v6))
    } else {
        return Err(io::Error::other("unexpected local address family"));
    };
    Ok((fd, local))
}
