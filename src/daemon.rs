//! `--daemon` as fastd does it (docs/config.md §6.11): fork, `setsid`, fork again. The started
//! process waits for one status byte on a pipe and exits with it: 0 once the daemon is
//! ready, 1 when the pipe closes first (the daemon died during start-up). stdin, stdout
//! and stderr stay as they were, as with fastd.

use nix::unistd::{fork, setsid, ForkResult};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::ExitCode;

pub enum Daemonized {
    /// The started process: its exit code, after the daemon reported.
    Parent(ExitCode),
    /// The daemon: the write end of the status pipe.
    Daemon(OwnedFd),
}

/// # Safety
/// The process must be single-threaded (nothing but `main` has run yet), so the forked
/// children inherit no lock held by another thread.
pub unsafe fn daemonize() -> std::io::Result<Daemonized> {
    let (reader, writer) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: the caller guarantees a single thread.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => {
            drop(writer);
            // The intermediate process exits at once; reap it so it is no zombie.
            let _ = nix::sys::wait::waitpid(child, None);
            let mut byte = [1u8; 1];
            let code = match std::fs::File::from(reader).read(&mut byte) {
                Ok(1) => byte[0],
                _ => 1,
            };
            Ok(Daemonized::Parent(ExitCode::from(code)))
        }
        ForkResult::Child => {
            drop(reader);
            setsid()?;
            // SAFETY: still single-threaded (we are the only thread of the child).
            match unsafe { fork() }? {
                // SAFETY: _exit skips atexit handlers and stdio flushing, which belong to
                // the process that goes on.
                ForkResult::Parent { .. } => unsafe { libc::_exit(0) },
                ForkResult::Child => Ok(Daemonized::Daemon(writer)),
            }
        }
    }
}
