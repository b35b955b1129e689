//! The worker's sandbox, entered before the worker holds a single descriptor from the helper.
//!
//! Two steps, both called from the worker's `main` before anything else runs:
//!
//! 1. [`stage1`] runs first thing, still as uid 0. It keeps CAP_SETUID and CAP_SETGID (the
//!    only capabilities the rest of the start-up needs) and nothing else.
//! 2. [`enter`] runs after the config has been parsed and `user`/`group` resolved. In this order:
//!    setgroups/setgid/setuid (and a check that uid 0 cannot be regained), every capability
//!    dropped from every set, `PR_SET_NO_NEW_PRIVS`, non-dumpable, rlimits, a Landlock ruleset
//!    that grants no filesystem access, and the seccomp allow-list of [`seccomp::ALLOWED_SYSCALLS`].
//!
//! Both operate on the calling thread only (capabilities, Landlock domains and seccomp filters are
//! per thread), so both must run while the process has exactly one thread; [`enter`] checks this.

mod caps;
mod creds;
pub mod identity;
mod landlock;
mod rlimits;
pub mod seccomp;

use std::fmt;

pub use self::landlock::LandlockState;

/// What the worker becomes when it enters the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    /// The uid to run as (fastd's `user`, or a dedicated one, see [`identity`]). Must not be 0.
    pub uid: u32,
    /// The gid to run as (fastd's `group`, the user's primary group, or the dedicated one). Must not be 0.
    pub gid: u32,
    /// If set, RLIMIT_NOFILE (soft and hard) becomes this value. The worker receives one
    /// descriptor per per-peer socket at run time, so the caller sizes it from the peer count;
    /// `None` keeps the inherited limit.
    pub max_fds: Option<u64>,
    /// What a syscall outside the allow-list does.
    pub on_denied: DenyAction,
}

impl SandboxSpec {
    /// A spec with the default deny action ([`DenyAction::Errno`]) and the inherited fd limit.
    pub fn new(uid: u32, gid: u32) -> Self {
        Self {
            uid,
            gid,
            max_fds: None,
            on_denied: DenyAction::default(),
        }
    }
}

/// The seccomp filter's answer to a syscall that is not on the allow-list.
///
/// The default is [`DenyAction::Errno`]: the syscall fails with EPERM. A refused call is then an
/// ordinary error the worker reports over IPC (and the helper logs), instead of a silent
/// SIGSYS death that looks like a crash; a library that probes an optional syscall degrades
/// instead of killing the data path; and the refusal can be asserted in tests. It grants nothing:
/// the call never reaches the kernel. [`DenyAction::KillProcess`] is the stricter choice for
/// deployments that prefer a dead worker (the helper then cleans up and exits non-zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DenyAction {
    /// The syscall returns -1 with errno EPERM.
    #[default]
    Errno,
    /// The whole process is killed with SIGSYS.
    KillProcess,
}

impl fmt::Display for DenyAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenyAction::Errno => f.write_str("EPERM"),
            DenyAction::KillProcess => f.write_str("kill process"),
        }
    }
}

/// What [`enter`] actually enforced, for the worker to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxReport {
    /// The uid the worker now runs as.
    pub uid: u32,
    /// The gid the worker now runs as.
    pub gid: u32,
    /// How much of the Landlock ruleset the running kernel enforces (best effort).
    pub landlock: LandlockState,
    /// The Landlock ABI the kernel offers, if Landlock is available at all.
    pub landlock_abi: Option<i32>,
    /// The number of entries in the seccomp allow-list.
    pub allowed_syscalls: usize,
    /// The action for every other syscall.
    pub deny_action: DenyAction,
}

impl fmt::Display for SandboxReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sandbox entered: uid {} gid {}, no capabilities, no_new_privs, landlock {}",
            self.uid, self.gid, self.landlock
        )?;
        if let Some(abi) = self.landlock_abi {
            write!(f, " (ABI {abi})")?;
        }
        write!(
            f,
            ", seccomp allow-list of {} syscalls, others {}",
            self.allowed_syscalls, self.deny_action
        )
    }
}

/// Why the sandbox could not be entered. Every variant is fatal for the worker.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The spec names uid 0 or gid 0.
    #[error("refusing to sandbox into uid {uid} gid {gid}: the worker must not keep root")]
    RootTarget { uid: u32, gid: u32 },
    /// The process has more than one thread, so other threads would escape the sandbox.
    #[error("the process has {0} threads, but the sandbox only covers the calling thread")]
    MultiThreaded(usize),
    /// /proc/self/task could not be read to count threads.
    #[error("cannot count this process's threads: {0}")]
    ThreadCount(#[source] std::io::Error),
    /// A capability operation failed.
    #[error("capabilities: {op}: {reason}")]
    Caps { op: &'static str, reason: String },
    /// A capability set is not empty (or not what stage 1 wants) after the drop.
    #[error("capability set {set} still holds {left} after the drop")]
    CapsLeft { set: &'static str, left: String },
    /// setgroups/setgid/setuid failed.
    #[error("{op} failed: {source}")]
    Creds {
        op: &'static str,
        #[source]
        source: nix::Error,
    },
    /// The credentials after the switch are not the requested ones.
    #[error("credentials after the switch are {found}, expected uid {uid} gid {gid}")]
    CredsMismatch { found: String, uid: u32, gid: u32 },
    /// setuid(0) or setgid(0) succeeded after the switch.
    #[error("{0} succeeded after dropping privileges")]
    RegainedRoot(&'static str),
    /// The helper died before the parent-death signal was armed again.
    #[error("the parent process died during the sandbox set-up")]
    ParentGone,
    /// A prctl failed.
    #[error("prctl {op}: {source}")]
    Prctl {
        op: &'static str,
        #[source]
        source: nix::Error,
    },
    /// setrlimit failed.
    #[error("setrlimit {resource}: {source}")]
    Rlimit {
        resource: &'static str,
        #[source]
        source: nix::Error,
    },
    /// The signal disposition for SIGXFSZ could not be set.
    #[error("ignoring SIGXFSZ: {0}")]
    Signal(#[source] nix::Error),
    /// Building or applying the Landlock ruleset failed (an unsupported kernel is not an error).
    #[error("landlock: {0}")]
    Landlock(#[from] ::landlock::RulesetError),
    /// The allow-list table could not be compiled into a filter.
    #[error("building the seccomp filter: {0}")]
    SeccompBuild(#[from] ::seccompiler::BackendError),
    /// The allow-list table names a syscall twice.
    #[error("the seccomp allow-list names {0} twice")]
    SeccompDuplicate(&'static str),
    /// The running architecture has no seccomp filter support.
    #[error("no seccomp filter for architecture {0}")]
    SeccompArch(&'static str),
    /// Installing the seccomp filter failed.
    #[error("installing the seccomp filter: {0}")]
    SeccompApply(#[from] ::seccompiler::Error),
}

/// Stage 1: keep only CAP_SETUID and CAP_SETGID, effective and permitted.
///
/// Called first thing in the worker, still as uid 0, before it reads anything untrusted.
/// Inheritable and ambient are cleared. The bounding set is emptied here, not just reduced to
/// the two kept capabilities: the bounding set can only shrink with CAP_SETPCAP, which this
/// stage does not keep, so leaving CAP_SETUID/CAP_SETGID in it would make an empty bounding set
/// in [`enter`] impossible. Emptying it costs nothing, because the bounding set only limits
/// what an execve could grant, and the worker never executes anything.
///
/// Must be called while the process is single-threaded: capabilities are per thread.
pub fn stage1() -> Result<(), SandboxError> {
    caps::stage1()
}

/// Enter the sandbox described by `spec`; see the module documentation for the order.
///
/// Must be called while the process is single-threaded (it returns
/// [`SandboxError::MultiThreaded`] otherwise, before changing anything), and after [`stage1`]
/// or with CAP_SETUID, CAP_SETGID and CAP_SETPCAP. On error the process is half-sandboxed and
/// must exit. After it returns `Ok`, the process can no longer open files, create sockets,
/// execute programs or fork; it keeps the descriptors it already has and receives new ones with
/// `recvmsg` (SCM_RIGHTS).
pub fn enter(spec: &SandboxSpec) -> Result<SandboxReport, SandboxError> {
    if spec.uid == 0 || spec.gid == 0 {
        return Err(SandboxError::RootTarget {
            uid: spec.uid,
            gid: spec.gid,
        });
    }
    let threads = thread_count()?;
    if threads != 1 {
        return Err(SandboxError::MultiThreaded(threads));
    }
    // Built before anything is dropped so that a broken table fails the start-up cleanly.
    let filter = seccomp::build_filter(spec.on_denied)?;

    // A no-op after stage1; without it, the bounding set must go while CAP_SETPCAP remains.
    caps::drop_bounding()?;
    let parent = nix::unistd::getppid();
    creds::switch(spec.uid, spec.gid)?;
    rearm_parent_death_signal(parent)?;
    caps::drop_all()?;
    set_no_new_privs()?;
    rlimits::apply(spec.max_fds)?;
    ignore_sigxfsz()?;
    let (landlock, landlock_abi) = landlock::restrict()?;
    seccomp::apply(&filter)?;

    Ok(SandboxReport {
        uid: spec.uid,
        gid: spec.gid,
        landlock,
        landlock_abi,
        allowed_syscalls: seccomp::ALLOWED_SYSCALLS.len(),
        deny_action: spec.on_denied,
    })
}

fn thread_count() -> Result<usize, SandboxError> {
    let tasks = std::fs::read_dir("/proc/self/task").map_err(SandboxError::ThreadCount)?;
    let mut count = 0;
    for task in tasks {
        task.map_err(SandboxError::ThreadCount)?;
        count += 1;
    }
    Ok(count)
}

/// The kernel clears PR_SET_PDEATHSIG on a uid change, and seccomp forbids prctl afterwards, so
/// the worker re-arms it here; without it the worker would only notice its helper's death through
/// end-of-file on the IPC socket. The parent check closes the race with a helper that died before.
fn rearm_parent_death_signal(parent: nix::unistd::Pid) -> Result<(), SandboxError> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(|source| {
        SandboxError::Prctl {
            op: "PR_SET_PDEATHSIG",
            source,
        }
    })?;
    if nix::unistd::getppid() != parent {
        return Err(SandboxError::ParentGone);
    }
    Ok(())
}

/// NO_NEW_PRIVS (required by Landlock and seccomp for an unprivileged process) and
/// non-dumpable: a non-dumpable process cannot be ptraced or have its memory read through /proc
/// by other processes of the same uid (other `nobody` services), which would otherwise expose the
/// session keys. The kernel already resets dumpability on the uid change according to
/// fs.suid_dumpable; this makes it independent of that sysctl.
fn set_no_new_privs() -> Result<(), SandboxError> {
    use nix::sys::prctl;
    prctl::set_no_new_privs().map_err(|source| SandboxError::Prctl {
        op: "PR_SET_NO_NEW_PRIVS",
        source,
    })?;
    prctl::set_dumpable(false).map_err(|source| SandboxError::Prctl {
        op: "PR_SET_DUMPABLE",
        source,
    })
}

/// With RLIMIT_FSIZE 0, a write to a regular file raises SIGXFSZ, which kills by default. If
/// stderr was redirected to a file, the first log line would kill the worker; ignored, the write
/// just fails with EFBIG.
fn ignore_sigxfsz() -> Result<(), SandboxError> {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: SIG_IGN installs no handler code, so no async-signal-safety requirement arises.
    unsafe { signal(Signal::SIGXFSZ, SigHandler::SigIgn) }
        .map(drop)
        .map_err(SandboxError::Signal)
}
