//! The root helper of fastd-privsep: small and boring, in the style of OpenSSH's
//! monitor and OpenBSD's imsg. It starts the worker, answers its requests one at a time
//! after checking them against the sealed policy, relays signals, and undoes what it set
//! up when the worker stops or dies.
//!
//! Decisions written down here:
//! - A malformed, oversized or out-of-policy message is refused and logged; the helper
//!   keeps serving with its state intact. Only EOF (worker exit or death) ends the loop.
//!   An empty datagram cannot be told apart from EOF on SEQPACKET and is treated as EOF.
//! - The helper never blocks on the worker: requests are read and replies sent without
//!   waiting; what the socket does not take queues in an `ipc::Outbox` (bounded). A
//!   worker that lets it overflow or sit for `ipc::DRAIN_TIMEOUT` is not reading: it is
//!   killed and the helper tears down as after a crash (exit 1). Signals are only ever
//!   flags polled by the loop, so SIGTERM always gets through.
//! - Synchronous hooks run one at a time in the helper's thread; replies stay in request
//!   order. Asynchronous hooks (at most 64, of them at most 32 `on verify`) are reaped on
//!   SIGCHLD; an asynchronous verify's verdict goes to the worker as an unsolicited
//!   `VerifyDone`, between replies, never inside one. With every slot taken the answer is
//!   `Busy` (the worker keeps the hook), and the next slot to free is announced with an
//!   unsolicited `HooksFree`.
//! - Logging: stderr for everything until the manifest is sealed, then the config's
//!   destinations (syslog through libc, with fastd's ident and severities). The worker
//!   gets its own non-blocking /dev/log socket; the helper never relays its lines.
//! - The ready point (worker's `Ready`): pid file (root's, bare pid), systemd READY=1 with
//!   MAINPID, the `--daemon` parent's status byte.
//! - The helper never parses config text and never resolves host names.
//!
//! Where the helper trusts the worker, and why that is safe:
//! - Before sealing, `ReadFile`/`ReadDir`/`ResolveDir` of any path (size-limited, regular
//!   files only): the worker has read nothing but the helper's own messages and the
//!   admin's config bytes at that point, and fastd itself reads these files as root.
//! - The manifest is taken as the truth about the config: it comes from the same
//!   not-yet-exposed worker, is checked structurally (`Manifest::validate`: uid 0 refused,
//!   bounded sizes, hook references), and only narrows what may happen later.
//! - Hook events: the helper cannot know whether a peer really connected; it runs only
//!   sealed commands, in sealed directories, with typed, validated values (an open
//!   device, a configured key/name unless `on verify` or peer directories allow others,
//!   socket addresses). The worst a compromised worker can do is run the admin's own
//!   hooks with plausible values, as a spoofed handshake could with fastd.
//! - Interface names: only a configured literal (the admin's choice, as with fastd) or
//!   the `%n`/`%k` pattern expanded for the device's owner, whose name must fit
//!   `[A-Za-z0-9_.-]` (`policy::IfNameFill`), so `INTERFACE` never carries a shell
//!   metacharacter or glob the worker chose. Devices are only created (IFF_TUN_EXCL),
//!   never attached, and capped by what the config needs (`Policy::device_cap`: one
//!   per listed peer, 256 more for `on verify`/peer-directory peers; TAP: one).
//! - Pinned host routes: only for a peer the manifest lists, one that owns a device of
//!   ours, or one whose `on establish` ran (until `on disestablish`).
//! - Refusals are logged rate-limited (`log::REFUSALS_PER_INTERVAL` per
//!   `log::REFUSAL_INTERVAL`, then one `... suppressed N refusals` line).
//! - Per-connection sockets: any number for peers without a usable bind, on a random
//!   port of an unspecified or template address; the helper keeps no copy, the worker's
//!   RLIMIT_NOFILE bounds them.
//! - After sealing, files in sealed peer directories: the worker picks the name
//!   (no `/`, no leading `.`); opened with O_NOFOLLOW, regular files only, size-limited.
//! - `CloseTun`: the worker may remove a device it was given (and nothing else).
//! - Nothing the worker sends is ever parsed by a shell, used as a path outside the
//!   sealed ones, or used to choose a hook command.

pub mod files;
pub mod gateway;
pub mod gateway_wiring;
pub mod helper;
pub mod hooks;
pub mod ipc;
pub mod log;
pub mod netlink;
pub mod ready;
pub mod spawn;
pub mod status;
pub mod tun;
pub mod udp;

pub use helper::{Helper, MAX_ASYNC_HOOKS};
pub use spawn::{spawn_worker, WORKER_ARGV0, WORKER_COMM, WORKER_FD, WORKER_ROLE_ARG};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use policy::{AbsPath, FromHelper, Notice, Response, MAX_MESSAGE};
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a worker may take to exit after `Stop` before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a worker that closed the socket may take to exit.
const EXIT_GRACE: Duration = Duration::from_secs(1);

struct Signals {
    wake: UnixStream,
    /// The stop signal that arrived first (0: none yet).
    stop: Arc<AtomicUsize>,
    reload: Arc<AtomicBool>,
    reset: Arc<AtomicBool>,
}

fn signals() -> std::io::Result<Signals> {
    let (wake, notify) = UnixStream::pair()?;
    wake.set_nonblocking(true)?;
    notify.set_nonblocking(true)?;
    let stop = Arc::new(AtomicUsize::new(0));
    let reload = Arc::new(AtomicBool::new(false));
    let reset = Arc::new(AtomicBool::new(false));
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT] {
        let value = usize::try_from(sig).unwrap_or(usize::MAX);
        signal_hook::flag::register_usize(sig, Arc::clone(&stop), value)?;
    }
    signal_hook::flag::register(libc::SIGHUP, Arc::clone(&reload))?;
    signal_hook::flag::register(libc::SIGUSR2, Arc::clone(&reset))?;
    for sig in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGHUP,
        libc::SIGUSR2,
        libc::SIGCHLD,
    ] {
        signal_hook::low_level::pipe::register(sig, notify.try_clone()?)?;
    }
    // fastd ignores these (SIGUSR1 does not dump status in v22); left at their default
    // they would kill the helper. Hooks and the worker inherit the ignored state, as
    // fastd's hooks do.
    for sig in [libc::SIGUSR1, libc::SIGPIPE, libc::SIGTTIN, libc::SIGTTOU] {
        // SAFETY: SIG_IGN installs no handler code; nothing else in the helper sets these.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
    Ok(Signals {
        wake,
        stop,
        reload,
        reset,
    })
}

/// Reap finished asynchronous hooks; report whether the worker itself was reaped.
fn reap(
    worker: Pid,
    helper: &mut Helper,
    out: &mut Outlet<'_>,
) -> Result<Option<WaitStatus>, ipc::IpcError> {
    let mut worker_status = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return Ok(worker_status),
            Ok(s) if s.pid() == Some(worker) => worker_status = Some(s),
            Ok(s) => {
                let Some(pid) = s.pid() else { continue };
                crate::log::debug(&format!("child process {pid} finished"));
                let (code, signal) = match s {
                    WaitStatus::Exited(_, c) => (Some(c), None),
                    WaitStatus::Signaled(_, sig, _) => (None, Some(sig as i32)),
                    _ => (None, None),
                };
                if let Some(verdict) =
                    helper.child_finished(pid.as_raw().unsigned_abs(), code, signal)
                {
                    out.send(verdict, None)?;
                }
            }
        }
    }
}

/// After EOF the worker is exiting; one that closed the socket but lingers is killed.
fn await_worker(worker: Pid) -> Option<WaitStatus> {
    let deadline = Instant::now() + EXIT_GRACE;
    while Instant::now() < deadline {
        match waitpid(worker, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(10)),
            other => return other.ok(),
        }
    }
    let _ = kill(worker, Signal::SIGKILL);
    waitpid(worker, None).ok()
}

/// The helper's end of the socket with its queue of unsent messages.
struct Outlet<'a> {
    sock: &'a OwnedFd,
    outbox: ipc::Outbox,
}

impl Outlet<'_> {
    fn send(
        &mut self,
        msg: impl Into<FromHelper>,
        fd: Option<OwnedFd>,
    ) -> Result<(), ipc::IpcError> {
        match self.outbox.send(self.sock.as_fd(), &msg.into(), fd) {
            // A reply that does not fit a message is the helper's own fault, not the
            // worker's: the worker learns that the request failed and both go on.
            Err(ipc::IpcError::Encode(e)) => {
                crate::log::error(&format!("unable to encode a reply: {e}"));
                let failed = Response::Failed {
                    reason: format!("reply could not be encoded: {e}"),
                    errno: None,
                };
                self.outbox.send(self.sock.as_fd(), &failed.into(), None)
            }
            other => other,
        }
    }
}

/// The worker's RLIMIT_FSIZE 0 makes every write to a regular file fail, so a worker
/// whose stderr is a log file would lose its log: the worker gets a pipe as stderr
/// instead, and the helper copies it to its own. Returns (our saved stderr, read end);
/// while it is in place, fd 2 is the pipe, so the worker inherits it.
fn stderr_relay() -> Option<(OwnedFd, OwnedFd)> {
    let (reader, writer) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
    let saved = nix::unistd::dup(2).ok()?;
    // SAFETY: `saved` is a fresh descriptor nothing else owns.
    let saved = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(saved) };
    nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&writer), 2).ok()?;
    Some((saved, reader))
}

/// Put our own stderr back after the fork; the helper keeps only the read end.
fn restore_stderr(saved: OwnedFd, reader: OwnedFd) -> Option<OwnedFd> {
    nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&saved), 2).ok()?;
    Some(reader)
}

/// Copies the worker's log lines until it closes its end (the helper's thread does
/// nothing else; it ends with the worker).
fn copy_to_stderr(reader: OwnedFd) {
    let mut from = std::fs::File::from(reader);
    let mut to = std::io::stderr();
    let _ = std::io::copy(&mut from, &mut to);
}

/// Run the helper: `args` is the command line without argv\[0\]; `readiness` says what
/// to do at the ready point. Returns the exit code.
pub fn run(args: Vec<String>, readiness: ready::Readiness) -> i32 {
    let sig = match signals() {
        Ok(s) => s,
        Err(e) => {
            crate::log::error(&format!("unable to set up signal handling: {e}"));
            return 1;
        }
    };
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|d| d.to_str().and_then(|s| AbsPath::new(s).ok()));
    let Some(cwd) = cwd else {
        crate::log::error("unusable working directory");
        return 1;
    };
    // As fastd: run in `/`, so the daemon keeps no mount busy. Relative paths of the
    // command line are resolved against `cwd`, which the worker gets in `Start`.
    if let Err(e) = std::env::set_current_dir("/") {
        crate::log::error(&format!("chdir: {e}"));
        return 1;
    }
    let relay = stderr_relay();
    let spawned = spawn_worker("/proc/self/exe");
    let relay = relay.map(|(saved, reader)| restore_stderr(saved, reader));
    let (worker, sock) = match spawned {
        Ok(w) => w,
        Err(e) => {
            crate::log::error(&format!("unable to start the worker: {e}"));
            return 1;
        }
    };
    let (relayed, relay_done) = std::sync::mpsc::channel::<()>();
    if let Some(Some(reader)) = relay {
        std::thread::spawn(move || {
            copy_to_stderr(reader);
            let _ = relayed.send(());
        });
    }
    let mut helper = Helper::new(hooks::base_env(), std::process::id()).with_readiness(readiness);
    let mut stopping: Option<Instant> = None;
    let mut worker_status = None;
    let mut out = Outlet {
        sock: &sock,
        outbox: ipc::Outbox::default(),
    };
    let served = out.send(Notice::Start { args, cwd }, None).and_then(|()| {
        serve(
            &mut helper,
            &mut out,
            &sig,
            worker,
            &mut stopping,
            &mut worker_status,
        )
    });
    match served {
        Ok(()) | Err(ipc::IpcError::Eof) => {}
        Err(e @ ipc::IpcError::Wedged(_)) => {
            // It cannot be told to stop: it is not reading. Down hooks and the undo
            // follow as after a crash.
            crate::log::error(&format!("{e}, killing it"));
            let _ = kill(worker, Signal::SIGKILL);
        }
        Err(e) => crate::log::error(&format!("worker socket: {e}")),
    }
    if worker_status.is_none() {
        worker_status = await_worker(worker);
    }
    let orderly = stopping.is_some() && matches!(worker_status, Some(WaitStatus::Exited(_, 0)));
    // A worker that stops at start-up (config error, unknown user) has said why in
    // fastd's words already; the helper adds nothing, as fastd prints one line.
    let startup_failure =
        !helper.is_sealed() && matches!(worker_status, Some(WaitStatus::Exited(_, 1)));
    if !orderly && !startup_failure {
        let how = match worker_status {
            Some(WaitStatus::Exited(_, code)) => format!("with status {code}"),
            Some(WaitStatus::Signaled(_, sig, _)) => format!("by signal {}", sig.as_str()),
            _ => "for an unknown reason".to_owned(),
        };
        crate::log::error(&format!(
            "the worker exited unexpectedly ({how}); running the down hooks and cleaning up"
        ));
    }
    crate::log::flush_refusals(true);
    helper.teardown();
    // The worker's last lines (why it stopped) are still in the pipe: let the relay
    // finish before the process ends, bounded in case a stray holder keeps it open.
    let _ = relay_done.recv_timeout(EXIT_GRACE);
    if !orderly {
        return 1;
    }
    // Like fastd, end by the signal that stopped us (a shell sees 143/130/131), so a
    // supervisor can tell a requested stop from an exit.
    if let Ok(signal) = i32::try_from(sig.stop.load(Ordering::Relaxed)) {
        let _ = signal_hook::low_level::emulate_default_handler(signal);
    }
    0
}

fn serve(
    helper: &mut Helper,
    out: &mut Outlet<'_>,
    sig: &Signals,
    worker: Pid,
    stopping: &mut Option<Instant>,
    worker_status: &mut Option<WaitStatus>,
) -> Result<(), ipc::IpcError> {
    let sock = out.sock;
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    loop {
        if sig.stop.load(Ordering::Relaxed) != 0 && stopping.is_none() {
            crate::log::info("terminating fastd");
            *stopping = Some(Instant::now());
            out.send(Notice::Stop, None)?;
        }
        if sig.reload.swap(false, Ordering::Relaxed) {
            // The worker logs "reconfigure triggered" itself, once.
            out.send(Notice::Reload, None)?;
        }
        if sig.reset.swap(false, Ordering::Relaxed) {
            out.send(Notice::ResetAll, None)?;
        }
        if let Some(s) = reap(worker, helper, out)? {
            *worker_status = Some(s);
        }
        if stopping.is_some_and(|t| t.elapsed() > STOP_GRACE) {
            crate::log::warn("the worker did not stop in time, killing it");
            let _ = kill(worker, Signal::SIGKILL);
        }
        crate::log::flush_refusals(false);
        out.outbox.flush(sock.as_fd())?;
        out.outbox.check_stalled()?;
        let want_out = if out.outbox.is_empty() {
            PollFlags::POLLIN
        } else {
            PollFlags::POLLIN | PollFlags::POLLOUT
        };
        let mut fds = [
            PollFd::new(sock.as_fd(), want_out),
            PollFd::new(sig.wake.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                crate::log::error(&format!("poll: {e}"));
                return Ok(());
            }
        }
        let sock_readable = fds[0].revents().is_some_and(|r| {
            r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
        });
        if fds[1].any().unwrap_or(false) {
            let mut drain = [0u8; 64];
            while matches!((&sig.wake).read(&mut drain), Ok(n) if n > 0) {}
        }
        if !sock_readable {
            continue;
        }
        let reply = match ipc::recv(sock.as_fd(), &mut buf) {
            Ok(n) => helper.handle_bytes(buf.get(..n).unwrap_or(&[])),
            Err(ipc::IpcError::TooLarge) => {
                crate::log::refused("message too large");
                let reason = "message too large".to_owned();
                (Response::Refused { reason }, None)
            }
            Err(ipc::IpcError::WouldBlock) => continue,
            Err(ipc::IpcError::Eof) => return Ok(()),
            Err(e) => {
                crate::log::error(&format!("{e}"));
                return Ok(());
            }
        };
        out.send(reply.0, reply.1)?;
    }
}
