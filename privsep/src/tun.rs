//! TUN/TAP devices: `/dev/net/tun` + TUNSETIFF with IFF_NO_PI, as fastd does.
//! The helper never sets TUNSETPERSIST: like fastd, a device it creates lives as long as
//! a descriptor to it is open (the helper keeps one until teardown).
//!
//! Unlike fastd, it only ever creates devices (IFF_TUN_EXCL): a name that exists already,
//! such as another program's persistent `ip tuntap add` device that matches an `%n`/`%k`
//! pattern, fails with EBUSY instead of being attached, so its MTU, state and traffic are
//! never touched. No device of ours outlives the daemon (nothing sets TUNSETPERSIST and
//! both descriptors die with the processes), so `persist interface yes` never needs to
//! re-attach to one either: an existing name is always somebody else's.

use nix::errno::Errno;
use policy::{IfName, Mode};
use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

pub struct Device {
    pub fd: OwnedFd,
    pub name: IfName,
}

#[derive(Debug, thiserror::Error)]
pub enum TunError {
    #[error("unable to open /dev/net/tun: {0}")]
    Open(std::io::Error),
    #[error("TUNSETIFF ioctl failed: {0}")]
    SetIff(Errno),
    #[error("kernel returned an unusable interface name")]
    Name,
}

pub fn open(name: Option<&IfName>, mode: Mode) -> Result<Device, TunError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/net/tun")
        .map_err(TunError::Open)?;
    let kind = if mode.is_tap() {
        libc::IFF_TAP
    } else {
        libc::IFF_TUN
    };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (kind | libc::IFF_NO_PI | libc::IFF_TUN_EXCL) as libc::c_short,
        _pad: [0; 22],
    };
    if let Some(n) = name {
        // IfName guarantees at most 15 bytes, so the terminating NUL stays.
        for (dst, src) in req.name.iter_mut().zip(n.as_str().bytes()) {
            *dst = src;
        }
    }
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq`; IfReq has its size and layout
    // (16-byte name, then the flags in the union) and lives across the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(TunError::SetIff(Errno::last()));
    }
    let len = req
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(req.name.len());
    let got = std::str::from_utf8(req.name.get(..len).ok_or(TunError::Name)?)
        .map_err(|_| TunError::Name)?;
    let name = IfName::new(got).map_err(|_| TunError::Name)?;
    Ok(Device {
        fd: file.into(),
        name,
    })
}
