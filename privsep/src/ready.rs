//! The "ready" point (docs/config.md §6.11): the pid file, systemd's `READY=1`, and the byte
//! that lets a `--daemon` parent exit 0. All three happen once, when the worker says that
//! start-up is over; a worker that dies before never triggers them, so the parent of a
//! failed `--daemon` start sees EOF and exits 1, and systemd sees the main process exit.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// What a real start asked for on the command line (the root process parsed it; nothing
/// here comes from the worker).
#[derive(Debug, Default)]
pub struct Readiness {
    /// `--pid-file`, already absolute (fastd resolves it against `/`).
    pub pid_file: Option<PathBuf>,
    /// The write end of the pipe a `--daemon` parent waits on.
    pub parent: Option<OwnedFd>,
}

impl Readiness {
    /// Announces readiness; failures are logged, never fatal (as with fastd).
    pub fn announce(&mut self) {
        let pid = std::process::id();
        if let Some(path) = &self.pid_file {
            // fastd writes the bare number, no newline. The file stays root's: a pid
            // file the unprivileged user could rewrite would let it aim the init
            // script's `kill` at any process.
            if let Err(e) = std::fs::write(path, pid.to_string()) {
                // fastd's text: strerror only, without Rust's "(os error N)".
                let why = e.raw_os_error().map_or_else(
                    || e.to_string(),
                    |n| nix::errno::Errno::from_raw(n).desc().to_owned(),
                );
                crate::log::error(&format!("can't write PID file: {why}"));
            }
        }
        let state = [
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::MainPid(pid),
        ];
        if let Err(e) = sd_notify::notify(&state) {
            crate::log::warn(&format!("unable to notify systemd: {e}"));
        }
        if let Some(fd) = self.parent.take() {
            let _ = std::fs::File::from(fd).write_all(&[0]);
        }
    }
}
