//! Start the worker: a SEQPACKET socketpair, then fork + exec of our own binary with
//! the role argument, the worker's end of the socket on fd 3, nothing else open, an
//! empty environment and PR_SET_PDEATHSIG=SIGKILL.

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::unistd::{fork, ForkResult, Pid};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

/// The descriptor number the worker finds its end of the socket on.
pub const WORKER_FD: i32 = 3;
/// The hidden argument that selects the worker role.
pub const WORKER_ROLE_ARG: &str = "--privsep-worker-role";
/// The worker's argv\[0\], in the `ps` style of other privilege-separated daemons.
pub const WORKER_ARGV0: &str = "fastd-privsep: worker";
/// The worker's comm (15 bytes at most): starts with `fastd`, so `pgrep fastd` finds both
/// processes.
pub const WORKER_COMM: &str = "fastd-worker";

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("socketpair: {0}")]
    Socket(nix::Error),
    #[error("fork: {0}")]
    Fork(nix::Error),
    #[error("bad executable path")]
    Path,
}

/// Returns the worker's pid and the helper's end of the socket.
pub fn spawn_worker(exe: &str) -> Result<(Pid, OwnedFd), SpawnError> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(SpawnError::Socket)?;
    // Everything exec needs is prepared before fork: the child may only make
    // async-signal-safe calls.
    let path = CString::new(exe).map_err(|_| SpawnError::Path)?;
    // `ps` shows the role; the worker names its comm itself (`exe` after /proc/self/exe).
    let arg0 = CString::new(WORKER_ARGV0).map_err(|_| SpawnError::Path)?;
    let role = CString::new(WORKER_ROLE_ARG).map_err(|_| SpawnError::Path)?;
    let argv = [arg0.as_ptr(), role.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let parent = std::process::id();
    let child_fd = theirs.as_raw_fd();

    // SAFETY: the helper is single-threaded at this point (signal-hook's pipe backend
    // starts no thread), and the child branch only calls async-signal-safe functions
    // before execve or _exit.
    match unsafe { fork() }.map_err(SpawnError::Fork)? {
        ForkResult::Parent { child } => {
            drop(theirs);
            Ok((child, ours))
        }
        ForkResult::Child => {
            // SAFETY: plain syscalls on values prepared before fork; no allocation.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                // The parent may have died before PDEATHSIG was armed.
                if libc::getppid() as u32 != parent {
                    libc::_exit(1);
                }
                if child_fd == WORKER_FD {
                    libc::fcntl(WORKER_FD, libc::F_SETFD, 0);
                } else if libc::dup2(child_fd, WORKER_FD) < 0 {
                    libc::_exit(1);
                }
                libc::close_range(4, u32::MAX, 0);
                // Its own process group: a terminal's ^C or `timeout` reaches the helper,
                // which stops the worker in order.
                libc::setpgid(0, 0);
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127);
            }
        }
    }
}
