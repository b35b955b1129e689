//! The status socket's listener, created as fastd does (docs/config.md 5.1): a `<path>.lock`
//! held with flock (never removed), a stale socket unlinked, bind, listen(4). Both
//! files are handed to the worker's user, as fastd creates them under that identity.

use nix::sys::socket::{
    bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
};
use nix::unistd::{chown, Gid, Uid};
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

pub struct StatusSocket {
    pub listener: OwnedFd,
    /// Held for as long as the helper runs.
    pub lock: std::fs::File,
}

pub fn create(path: &str, uid: u32, gid: u32) -> io::Result<StatusSocket> {
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(format!("{path}.lock"))?;
    // SAFETY: flock on a descriptor we own for the duration of the call.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(io::Error::other("status socket already in use"));
    }
    match std::fs::remove_file(path) {
        Ok(()) => crate::log::info("removing old status socket"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => crate::log::warn(&format!("unable to remove old status socket: {e}")),
    }
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    let owner = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    chown(path, owner.0, owner.1)?;
    chown(format!("{path}.lock").as_str(), owner.0, owner.1)?;
    listen(&fd, Backlog::new(4)?)?;
    Ok(StatusSocket { listener: fd, lock })
}
