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
//!
//! With `offload` (sealed in the manifest) the device carries a virtio-net header
//! on every packet (IFF_VNET_HDR) and the kernel may hand over TCP/UDP super-packets with
//! partial checksums (TUNSETOFFLOAD); the worker splits them. A kernel that refuses either
//! ioctl gets the plain device or fewer offloads: the reply says which.

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
    /// The TUNSETOFFLOAD flags accepted, when the device carries virtio-net headers.
    pub offload: Option<u32>,
}

/// The offloads asked for, most first: checksum + TSO (with ECN) + USO, then without USO
/// (before Linux 6.2), then checksum alone, then none (the header stays, all zero).
const OFFLOAD_STEPS: [libc::c_uint; 4] = [
    libc::TUN_F_CSUM
        | libc::TUN_F_TSO4
        | libc::TUN_F_TSO6
        | libc::TUN_F_TSO_ECN
        | libc::TUN_F_USO4
        | libc::TUN_F_USO6,
    libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN,
    libc::TUN_F_CSUM,
    0,
];

#[derive(Debug, thiserror::Error)]
pub enum TunError {
    #[error("unable to open /dev/net/tun: {0}")]
    Open(std::io::Error),
    #[error("TUNSETIFF ioctl failed: {0}")]
    SetIff(Errno),
    #[error("kernel returned an unusable interface name")]
    Name,
}

pub fn open(name: Option<&IfName>, mode: Mode, offload: bool) -> Result<Device, TunError> {
    if offload {
        match open_with(name, mode, libc::IFF_VNET_HDR) {
            Ok(mut d) => {
                d.offload = Some(set_offload(&d.fd));
                return Ok(d);
            }
            // A kernel without IFF_VNET_HDR: the plain device.
            Err(TunError::SetIff(Errno::EINVAL)) => {}
            Err(e) => return Err(e),
        }
    }
    open_with(name, mode, 0)
}

/// The first of [`OFFLOAD_STEPS`] the kernel accepts.
fn set_offload(fd: &OwnedFd) -> u32 {
    for flags in OFFLOAD_STEPS {
        // SAFETY: TUNSETOFFLOAD takes its flags by value; no memory is read or written.
        let rc = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                libc::TUNSETOFFLOAD,
                libc::c_ulong::from(flags),
            )
        };
        if rc == 0 {
            return flags;
        }
    }
    0
}

fn open_with(name: Option<&IfName>, mode: Mode, extra: libc::c_int) -> Result<Device, TunError> {
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
        flags: (kind | libc::IFF_NO_PI | libc::IFF_TUN_EXCL | extra) as libc::c_short,
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
        offload: None,
    })
}
