//! The worker's seccomp allow-list: the one place that says which syscalls the worker may make.
//!
//! Everything not in [`ALLOWED_SYSCALLS`] is refused with the spec's [`DenyAction`] (EPERM by
//! default), among them: execve, execveat, socket, socketpair, open, openat, openat2, connect,
//! bind, listen, ptrace, process_vm_readv/writev, mount, umount2, pivot_root, chroot, unshare,
//! setns, clone, clone3, fork, vfork, kill, setuid/setgid and the whole set*id family, capset,
//! prctl, seccomp, bpf, perf_event_open, io_uring_setup, userfaultfd, keyctl, add_key, init_module,
//! reboot, and every filesystem call (stat, mkdir, unlink, ...).
//!
//! The worker only ever uses descriptors the helper handed over: the IPC socket, the TUN/TAP
//! device, the UDP sockets and the status socket; plus the epoll and eventfd descriptors its own
//! event loop creates. The list covers that packet loop (mio on epoll), timers, logging to stderr,
//! IPC with SCM_RIGHTS, the allocator, and Rust std's panic and abort paths.
//!
//! The filter is installed on the calling thread only (no TSYNC): the worker is single-threaded
//! and [`super::enter`] refuses to run otherwise.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::{DenyAction, SandboxError};

/// Argument checks on an allowed syscall. All compare 32-bit arguments (`Dword`), because the
/// kernel truncates them to `int`/`unsigned int` too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Args {
    /// Any arguments.
    Any,
    /// `arg & mask == 0`: the bits in `mask` must be clear (e.g. no PROT_EXEC).
    Clear { arg: u8, mask: u64 },
    /// `arg` is one of `values`.
    OneOf { arg: u8, values: &'static [u64] },
    /// `arg & mask` is one of `values`.
    MaskedOneOf {
        arg: u8,
        mask: u64,
        values: &'static [u64],
    },
    /// `(arg a, arg b)` is one of `pairs`.
    Pairs {
        a: u8,
        b: u8,
        pairs: &'static [(u64, u64)],
    },
    /// `tgkill(own pid, any tid, sig)`: the worker may send `sig` only to itself.
    SelfSignal { sig: u64 },
}

/// One entry of the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    /// The syscall's name, for logs and the closing note.
    pub name: &'static str,
    /// The syscall number on the running architecture.
    pub nr: i64,
    /// Conditions on the arguments.
    pub args: Args,
    /// Why the worker needs it.
    pub why: &'static str,
}

const fn any(name: &'static str, nr: i64, why: &'static str) -> Allowed {
    Allowed {
        name,
        nr,
        args: Args::Any,
        why,
    }
}

const fn with(name: &'static str, nr: i64, args: Args, why: &'static str) -> Allowed {
    Allowed {
        name,
        nr,
        args,
        why,
    }
}

const PROT_EXEC: u64 = libc::PROT_EXEC as u64;
const ACCEPT4_FLAGS: u64 = (libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) as u64;
/// The futex command without the PRIVATE and CLOCK_REALTIME modifier bits.
const FUTEX_CMD_MASK: u64 = !((libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME) as u64);
const UDP_GRO: u64 = 104;

const FCNTL_CMDS: &[u64] = &[
    libc::F_GETFD as u64,
    libc::F_SETFD as u64,
    libc::F_GETFL as u64,
    libc::F_SETFL as u64,
];
const IOCTL_CMDS: &[u64] = &[libc::FIONBIO];
const FUTEX_OPS: &[u64] = &[
    libc::FUTEX_WAIT as u64,
    libc::FUTEX_WAKE as u64,
    libc::FUTEX_WAIT_BITSET as u64,
    libc::FUTEX_WAKE_BITSET as u64,
];
const SOCKOPTS: &[(u64, u64)] = &[
    (libc::SOL_SOCKET as u64, libc::SO_RCVBUF as u64),
    (libc::SOL_SOCKET as u64, libc::SO_SNDBUF as u64),
    (libc::IPPROTO_IP as u64, libc::IP_PKTINFO as u64),
    (libc::IPPROTO_IPV6 as u64, libc::IPV6_RECVPKTINFO as u64),
    (libc::SOL_UDP as u64, UDP_GRO),
    (libc::IPPROTO_IP as u64, libc::IP_MTU_DISCOVER as u64),
    (libc::IPPROTO_IPV6 as u64, libc::IPV6_MTU_DISCOVER as u64),
];
/// Read-only socket options: the family of a handed-over socket.
const GETSOCKOPTS: &[(u64, u64)] = &[(libc::SOL_SOCKET as u64, libc::SO_DOMAIN as u64)];

/// The allow-list. Each entry says why the worker needs the syscall.
#[rustfmt::skip]
pub const ALLOWED_SYSCALLS: &[Allowed] = &[
    // Descriptor I/O
    any("read", libc::SYS_read, "TUN/TAP reads, IPC replies, eventfd and pipe drains"),
    any("write", libc::SYS_write, "TUN/TAP writes, log lines to stderr, eventfd wake-ups"),
    any("readv", libc::SYS_readv, "TUN/TAP reads into split buffers (offload header + packet)"),
    any("writev", libc::SYS_writev, "TUN/TAP writes from split buffers; std's stderr writes"),
    any("close", libc::SYS_close, "dropping a per-peer socket, a status client, an old fd"),
    // Sockets the helper handed over
    any("recvfrom", libc::SYS_recvfrom, "UDP receive with the peer address"),
    any("sendto", libc::SYS_sendto, "UDP send to a peer address"),
    any("recvmsg", libc::SYS_recvmsg, "IPC with SCM_RIGHTS from the helper; UDP with pktinfo"),
    any("sendmsg", libc::SYS_sendmsg, "IPC requests to the helper; UDP with a source address or GSO"),
    any("recvmmsg", libc::SYS_recvmmsg, "batched UDP receive"),
    any("sendmmsg", libc::SYS_sendmmsg, "batched UDP send"),
    with("accept4", libc::SYS_accept4, Args::Clear { arg: 3, mask: !ACCEPT4_FLAGS },
        "status socket clients; only the CLOEXEC and NONBLOCK flags"),
    any("getsockname", libc::SYS_getsockname, "the local address of a handed-over socket"),
    any("getpeername", libc::SYS_getpeername, "the address of a connected socket"),
    with("setsockopt", libc::SYS_setsockopt, Args::Pairs { a: 1, b: 2, pairs: SOCKOPTS },
        "unprivileged per-socket tuning only: buffer sizes, pktinfo, GRO, no path-MTU discovery (fastd)"),
    with("getsockopt", libc::SYS_getsockopt, Args::Pairs { a: 1, b: 2, pairs: GETSOCKOPTS },
        "the address family of a socket the helper handed over"),
    // Event loop
    any("epoll_create1", libc::SYS_epoll_create1, "the event loop's epoll instance (mio)"),
    any("epoll_ctl", libc::SYS_epoll_ctl, "registering sockets, the device and timers (mio)"),
    #[cfg(target_arch = "x86_64")]
    any("epoll_wait", libc::SYS_epoll_wait, "waiting for events (mio, glibc on x86_64)"),
    any("epoll_pwait", libc::SYS_epoll_pwait, "waiting for events (glibc's epoll_wait on aarch64)"),
    any("eventfd2", libc::SYS_eventfd2, "mio's Waker"),
    with("fcntl", libc::SYS_fcntl, Args::OneOf { arg: 1, values: FCNTL_CMDS },
        "O_NONBLOCK and FD_CLOEXEC on received descriptors; no dup, no locks, no F_SETOWN"),
    with("ioctl", libc::SYS_ioctl, Args::OneOf { arg: 1, values: IOCTL_CMDS },
        "FIONBIO only: std's set_nonblocking on a received socket"),
    // Time
    any("clock_gettime", libc::SYS_clock_gettime, "timestamps and timeouts when the vDSO falls back"),
    any("clock_nanosleep", libc::SYS_clock_nanosleep, "std::thread::sleep"),
    any("nanosleep", libc::SYS_nanosleep, "sleeping in older libc versions"),
    any("restart_syscall", libc::SYS_restart_syscall, "the kernel resumes an interrupted sleep"),
    // Memory (no new executable memory)
    with("mmap", libc::SYS_mmap, Args::Clear { arg: 2, mask: PROT_EXEC },
        "allocator; never PROT_EXEC"),
    with("mprotect", libc::SYS_mprotect, Args::Clear { arg: 2, mask: PROT_EXEC },
        "allocator and guard pages; never PROT_EXEC"),
    any("munmap", libc::SYS_munmap, "allocator"),
    any("mremap", libc::SYS_mremap, "allocator growing a large buffer in place"),
    any("madvise", libc::SYS_madvise, "allocator returning memory to the kernel"),
    any("brk", libc::SYS_brk, "allocator's heap"),
    // Synchronisation
    with("futex", libc::SYS_futex, Args::MaskedOneOf { arg: 1, mask: FUTEX_CMD_MASK, values: FUTEX_OPS },
        "std's locks and Once; plain wait/wake only, no PI or requeue operations"),
    any("sched_yield", libc::SYS_sched_yield, "spin-then-yield in std's locks"),
    // Randomness
    any("getrandom", libc::SYS_getrandom, "handshake keys, nonces, std's HashMap seeds"),
    // Signals, panics and aborts
    any("rt_sigreturn", libc::SYS_rt_sigreturn, "returning from a signal handler"),
    any("rt_sigprocmask", libc::SYS_rt_sigprocmask, "abort() blocks and unblocks signals"),
    any("rt_sigaction", libc::SYS_rt_sigaction, "std's SIGSEGV handler resets itself to die on a fault"),
    any("sigaltstack", libc::SYS_sigaltstack, "std's stack-overflow handler stack"),
    any("getpid", libc::SYS_getpid, "abort(): raise() names the own process"),
    any("gettid", libc::SYS_gettid, "abort(): raise() names the own thread"),
    with("tgkill", libc::SYS_tgkill, Args::SelfSignal { sig: libc::SIGABRT as u64 },
        "abort() on a panic: SIGABRT to the worker itself, nothing else"),
    // Exit
    any("exit", libc::SYS_exit, "thread exit"),
    any("exit_group", libc::SYS_exit_group, "process exit"),
];

/// The seccompiler architecture of the running binary.
fn target_arch() -> Result<TargetArch, SandboxError> {
    let arch = std::env::consts::ARCH;
    TargetArch::try_from(arch).map_err(|_| SandboxError::SeccompArch(arch))
}

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, SandboxError> {
    Ok(SeccompCondition::new(
        arg,
        SeccompCmpArgLen::Dword,
        op,
        value,
    )?)
}

/// The seccompiler rules for one entry; an empty list means "always allowed".
fn rules(args: Args) -> Result<Vec<SeccompRule>, SandboxError> {
    let rule = |conds: Vec<SeccompCondition>| -> Result<SeccompRule, SandboxError> {
        Ok(SeccompRule::new(conds)?)
    };
    match args {
        Args::Any => Ok(Vec::new()),
        Args::Clear { arg, mask } => Ok(vec![rule(vec![cond(
            arg,
            SeccompCmpOp::MaskedEq(mask),
            0,
        )?])?]),
        Args::OneOf { arg, values } => values
            .iter()
            .map(|&v| rule(vec![cond(arg, SeccompCmpOp::Eq, v)?]))
            .collect(),
        Args::MaskedOneOf { arg, mask, values } => values
            .iter()
            .map(|&v| rule(vec![cond(arg, SeccompCmpOp::MaskedEq(mask), v)?]))
            .collect(),
        Args::Pairs { a, b, pairs } => pairs
            .iter()
            .map(|&(va, vb)| {
                rule(vec![
                    cond(a, SeccompCmpOp::Eq, va)?,
                    cond(b, SeccompCmpOp::Eq, vb)?,
                ])
            })
            .collect(),
        Args::SelfSignal { sig } => {
            let pid = u64::from(std::process::id());
            Ok(vec![rule(vec![
                cond(0, SeccompCmpOp::Eq, pid)?,
                cond(2, SeccompCmpOp::Eq, sig)?,
            ])?])
        }
    }
}

/// Compile [`ALLOWED_SYSCALLS`] into a BPF program for the running architecture.
///
/// [`Args::SelfSignal`] embeds the calling process's pid, so the program must be built by the
/// process that installs it.
pub fn build_filter(on_denied: DenyAction) -> Result<BpfProgram, SandboxError> {
    let mut table: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for entry in ALLOWED_SYSCALLS {
        if table.insert(entry.nr, rules(entry.args)?).is_some() {
            return Err(SandboxError::SeccompDuplicate(entry.name));
        }
    }
    let mismatch = match on_denied {
        DenyAction::Errno => SeccompAction::Errno(libc::EPERM as u32),
        DenyAction::KillProcess => SeccompAction::KillProcess,
    };
    let filter = SeccompFilter::new(table, mismatch, SeccompAction::Allow, target_arch()?)?;
    Ok(filter.try_into()?)
}

/// Install `filter` on the calling thread. Must run in a single-threaded process.
pub(super) fn apply(filter: &BpfProgram) -> Result<(), SandboxError> {
    Ok(seccompiler::apply_filter(filter)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_unique_and_explained() {
        let mut names = std::collections::BTreeSet::new();
        let mut numbers = std::collections::BTreeSet::new();
        for entry in ALLOWED_SYSCALLS {
            assert!(names.insert(entry.name), "{} twice", entry.name);
            assert!(numbers.insert(entry.nr), "{} shares a number", entry.name);
            assert!(entry.why.len() > 5, "{} has no reason", entry.name);
        }
    }

    #[test]
    fn dangerous_syscalls_are_not_listed() {
        let denied = [
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_socket,
            libc::SYS_socketpair,
            libc::SYS_openat,
            libc::SYS_openat2,
            libc::SYS_connect,
            libc::SYS_bind,
            libc::SYS_ptrace,
            libc::SYS_mount,
            libc::SYS_setuid,
            libc::SYS_setresuid,
            libc::SYS_setgid,
            libc::SYS_setgroups,
            libc::SYS_capset,
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_kill,
            libc::SYS_prctl,
            libc::SYS_bpf,
            libc::SYS_unshare,
            libc::SYS_process_vm_readv,
            libc::SYS_io_uring_setup,
        ];
        for nr in denied {
            assert!(
                !ALLOWED_SYSCALLS.iter().any(|e| e.nr == nr),
                "syscall {nr} must not be allowed"
            );
        }
        #[cfg(target_arch = "x86_64")]
        for nr in [libc::SYS_open, libc::SYS_fork, libc::SYS_vfork] {
            assert!(!ALLOWED_SYSCALLS.iter().any(|e| e.nr == nr));
        }
    }

    #[test]
    fn filter_compiles_for_both_actions() {
        for action in [DenyAction::Errno, DenyAction::KillProcess] {
            let program = build_filter(action).unwrap();
            // Arch check + number load + at least one compare and return per entry.
            assert!(program.len() > 2 * ALLOWED_SYSCALLS.len());
        }
    }

    #[test]
    fn argument_rules_expand_as_written() {
        assert!(rules(Args::Any).unwrap().is_empty());
        assert_eq!(
            rules(Args::OneOf {
                arg: 1,
                values: FCNTL_CMDS
            })
            .unwrap()
            .len(),
            4
        );
        assert_eq!(
            rules(Args::Pairs {
                a: 1,
                b: 2,
                pairs: SOCKOPTS
            })
            .unwrap()
            .len(),
            SOCKOPTS.len()
        );
        assert_eq!(rules(Args::SelfSignal { sig: 6 }).unwrap().len(), 1);
    }
}
