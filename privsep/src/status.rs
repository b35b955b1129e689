//! The status socket's listener, created as fastd does (docs/config.md 5.1): a `<path>.lock`
//! held with flock (never removed), a stale socket unlinked, bind, listen(4).
//!
//! Ownership is fastd's: it creates both files with its effective ids switched to `user`/
//! `group` where those are configured, else as root. The helper switches only this thread's
//! filesystem ids (setfsuid/setfsgid, CAP_SETUID/CAP_SETGID), so it needs no CAP_CHOWN, which
//! the systemd unit does not grant. As with fastd the directory must then be writable by
//! `user`. The worker needs no permission on the file: it gets the listening descriptor.
//!
//! A start that fails here leaves nothing behind: a lock file this call created and a socket
//! it bound are removed again (a lock file that was already there stays, as fastd's does).
//! The socket is unlinked at stop with the same ids, as fastd (by then `user`) does.

use nix::sys::socket::{
    bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

pub struct StatusSocket {
    pub listener: OwnedFd,
    /// Held for as long as the helper runs.
    pub lock: File,
}

/// Create the socket at `path` as `owner` (uid, gid; 0 = root's).
pub fn create(path: &str, owner: (u32, u32)) -> io::Result<StatusSocket> {
    let ids = FsIds::switch(owner)?;
    let made = create_files(path);
    if let Err(e) = ids.restore() {
        if made.is_ok() {
            let _ = std::fs::remove_file(path);
        }
        return Err(e);
    }
    made
}

/// Unlink the socket at stop, as `owner` again: the directory may be writable by the user only.
pub fn remove(path: &str, owner: (u32, u32)) -> io::Result<()> {
    let ids = FsIds::switch(owner)?;
    let removed = std::fs::remove_file(path);
    ids.restore()?;
    removed
}

fn create_files(path: &str) -> io::Result<StatusSocket> {
    let lock_path = format!("{path}.lock");
    let (lock, created) = open_lock(&lock_path)?;
    let forget_lock = |e: io::Error| {
        if created {
            let _ = std::fs::remove_file(&lock_path);
        }
        e
    };
    // SAFETY: flock on a descriptor we own for the duration of the call.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(forget_lock(io::Error::other(
            "status socket already in use",
        )));
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
    )
    .map_err(|e| forget_lock(e.into()))?;
    let addr = UnixAddr::new(path).map_err(|e| forget_lock(e.into()))?;
    bind(fd.as_raw_fd(), &addr).map_err(|e| forget_lock(e.into()))?;
    let backlog = Backlog::new(4).map_err(|e| forget_lock(e.into()))?;
    if let Err(e) = listen(&fd, backlog) {
        let _ = std::fs::remove_file(path);
        return Err(forget_lock(e.into()));
    }
    Ok(StatusSocket { listener: fd, lock })
}

/// Open `<path>.lock` (mode 0600), telling whether this call created it.
fn open_lock(lock_path: &str) -> io::Result<(File, bool)> {
    let open = |create_new: bool| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(create_new)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(lock_path)
    };
    match open(true) {
        Ok(f) => Ok((f, true)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => open(false).map(|f| (f, false)),
        Err(e) => Err(e),
    }
}

/// This thread's filesystem uid/gid switched to the owner's (nothing to do for root's).
struct FsIds {
    switched: bool,
}

impl FsIds {
    fn switch((uid, gid): (u32, u32)) -> io::Result<FsIds> {
        if (uid, gid) == (0, 0) {
            return Ok(FsIds { switched: false });
        }
        // SAFETY: setfsgid/setfsuid change only this thread's filesystem ids; called again
        // with the same id they report the current one, which checks that the switch took.
        let ok = unsafe {
            libc::setfsgid(gid);
            let g = libc::setfsgid(gid) as u32 == gid;
            libc::setfsuid(uid);
            g && libc::setfsuid(uid) as u32 == uid
        };
        let ids = FsIds { switched: true };
        if !ok {
            ids.restore()?;
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        Ok(ids)
    }

    /// Back to root's ids; the kernel puts the filesystem capabilities back with fsuid 0.
    fn restore(self) -> io::Result<()> {
        if !self.switched {
            return Ok(());
        }
        // SAFETY: as in `switch`.
        let ok = unsafe {
            libc::setfsuid(0);
            libc::setfsgid(0);
            libc::setfsuid(0) == 0 && libc::setfsgid(0) == 0
        };
        if ok {
            Ok(())
        } else {
            Err(io::Error::other(
                "unable to switch back to root's filesystem ids",
            ))
        }
    }
}
