//! The real sandbox, entered in forked children (a forked child has one thread, as the worker
//! does). The parent inspects the child through /proc while the child waits on a pipe, and the
//! child reports what it tried through another pipe.
//!
//! Tests that need root skip when not root, except with CI=true, where they fail.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe, ForkResult, Pid};
use worker::sandbox::{self, DenyAction, LandlockState, SandboxSpec};

const NOBODY: u32 = 65534;
const NOGROUP: u32 = 65534;

/// One forked test child at a time: a child inherits every descriptor of the test process, so a
/// concurrent test's pipe ends would otherwise linger in it.
static FORK_LOCK: Mutex<()> = Mutex::new(());

/// The child's ends of the two pipes.
struct ChildIo {
    from_parent: File,
    to_parent: File,
}

impl ChildIo {
    fn say(&mut self, text: &str) {
        // A failed write shows up in the parent as a missing line.
        let _ = self.to_parent.write_all(text.as_bytes());
    }

    fn wait_for_parent(&mut self) {
        let mut byte = [0u8; 1];
        let _ = self.from_parent.read_exact(&mut byte);
    }
}

/// A forked child; killed and reaped on drop if the test fails half-way.
struct Child {
    pid: Pid,
    to_child: Option<File>,
    from_child: File,
    reaped: bool,
}

impl Child {
    /// Fork; the child runs `body` and exits with its return value, never returning here.
    fn spawn(body: impl FnOnce(&mut ChildIo) -> i32) -> Child {
        let (p2c_r, p2c_w) = pipe().unwrap();
        let (c2p_r, c2p_w) = pipe().unwrap();
        // SAFETY: the child only runs `body` and then _exit()s; glibc keeps malloc usable after
        // fork, and the child touches no lock another thread of the harness could hold except
        // stderr on a panic.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                drop(p2c_w);
                drop(c2p_r);
                let mut io = ChildIo {
                    from_parent: File::from(p2c_r),
                    to_parent: File::from(c2p_w),
                };
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&mut io)))
                    .unwrap_or(101);
                drop(io);
                // SAFETY: _exit never returns and runs no atexit handlers of the harness.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => Child {
                pid: child,
                to_child: Some(File::from(p2c_w)),
                from_child: File::from(c2p_r),
                reaped: false,
            },
        }
    }

    /// Read until the child writes `\n`; a hung child fails the test instead of hanging it.
    fn read_line(&mut self) -> String {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            wait_readable(self.from_child.as_raw_fd());
            match self.from_child.read(&mut byte).unwrap() {
                0 => break,
                _ if byte[0] == b'\n' => break,
                _ => line.push(byte[0]),
            }
        }
        String::from_utf8(line).unwrap()
    }

    /// Read everything until the child closes its end (exits).
    fn read_rest(&mut self) -> String {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            wait_readable(self.from_child.as_raw_fd());
            match self.from_child.read(&mut buf).unwrap() {
                0 => break,
                n => all.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8(all).unwrap()
    }

    fn go(&mut self) {
        if let Some(mut pipe) = self.to_child.take() {
            pipe.write_all(b"G").unwrap();
        }
    }

    fn wait(&mut self) -> WaitStatus {
        let status = waitpid(self.pid, None).unwrap();
        self.reaped = true;
        status
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
    }
}

/// Guards against a hung child only; the tests never pass or fail on timing.
fn wait_readable(fd: RawFd) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, 120_000) };
    assert!(n > 0, "the sandboxed child did not answer");
}

/// stage1 + enter, then "ready" or the error, as the first line to the parent.
fn enter_sandbox(io: &mut ChildIo, spec: &SandboxSpec) -> bool {
    let result = sandbox::stage1().and_then(|()| sandbox::enter(spec));
    match result {
        Ok(report) => {
            io.say(&format!("ready {:?} ({report})\n", report.landlock));
            true
        }
        Err(e) => {
            io.say(&format!("error {e}\n"));
            false
        }
    }
}

fn expect_ready(child: &mut Child) -> String {
    let line = child.read_line();
    assert!(line.starts_with("ready"), "child could not sandbox: {line}");
    line
}

/// `Key:\tvalue` lines of /proc/<pid>/status.
fn proc_status(pid: Pid) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// `name=value` lines from the child.
fn results(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// "ok" for a non-negative return, else "errno N".
fn outcome(rc: libc::c_long) -> String {
    if rc >= 0 {
        "ok".to_string()
    } else {
        format!("errno {}", errno())
    }
}

#[test]
fn sandboxed_worker_has_no_privileges_and_is_refused_dangerous_syscalls() {
    if !test_support::ready(&[]) {
        return;
    }
    let _lock = FORK_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let parent = std::process::id() as libc::pid_t;
    let true_path = CString::new("/bin/true").unwrap();
    let passwd = CString::new("/etc/passwd").unwrap();

    let mut child = Child::spawn(|io| {
        if !enter_sandbox(io, &SandboxSpec::new(NOBODY, NOGROUP)) {
            return 1;
        }
        io.wait_for_parent();
        let mut report = String::new();
        let argv = [true_path.as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null()];
        // SAFETY: NUL-terminated argv/envp arrays of valid C strings.
        let rc = unsafe { libc::execve(true_path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        report += &format!("execve={}\n", outcome(rc.into()));
        // SAFETY: plain integer arguments.
        let rc = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
        report += &format!("socket={}\n", outcome(rc.into()));
        let mut pair = [0 as libc::c_int; 2];
        // SAFETY: `pair` has room for the two descriptors.
        let rc =
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, pair.as_mut_ptr()) };
        report += &format!("socketpair={}\n", outcome(rc.into()));
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: a valid C string and flags; the raw syscall skips libc's openat mapping.
            let rc = unsafe { libc::syscall(libc::SYS_open, passwd.as_ptr(), libc::O_RDONLY) };
            report += &format!("open={}\n", outcome(rc));
        }
        // SAFETY: a valid C string and flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_openat,
                libc::AT_FDCWD,
                passwd.as_ptr(),
                libc::O_RDONLY,
            )
        };
        report += &format!("openat={}\n", outcome(rc));
        // SAFETY: raw setuid(0), so libc's thread broadcast is not involved.
        let rc = unsafe { libc::syscall(libc::SYS_setuid, 0) };
        report += &format!("setuid={}\n", outcome(rc));
        // SAFETY: a refused fork returns -1; a grandchild, if any, exits at once.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: the grandchild leaves without touching anything.
            unsafe { libc::_exit(0) }
        }
        report += &format!("fork={}\n", outcome(pid.into()));
        // SAFETY: signal 0 only probes; a refusal is the expected outcome.
        let rc = unsafe { libc::kill(parent, 0) };
        report += &format!("kill={}\n", outcome(rc.into()));
        // SAFETY: PTRACE_TRACEME takes no pointers.
        let rc = unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
        report += &format!("ptrace={}\n", outcome(rc));
        // SAFETY: an anonymous mapping the kernel chooses; it is never touched.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        report += &format!(
            "mmap_exec={}\n",
            if addr == libc::MAP_FAILED {
                format!("errno {}", errno())
            } else {
                "ok".into()
            }
        );
        io.say(&report);
        0
    });

    let line = expect_ready(&mut child);
    let status = proc_status(child.pid);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.pid)).unwrap();
    child.go();
    let report = results(&child.read_rest());
    assert_eq!(child.wait(), WaitStatus::Exited(child.pid, 0));

    for key in ["Uid", "Gid"] {
        let ids: Vec<&str> = status[key].split_whitespace().collect();
        assert_eq!(ids, ["65534"; 4], "{key}: {}", status[key]);
    }
    assert_eq!(status["Groups"], "65534");
    for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status[key], "0000000000000000", "{key}");
    }
    assert_eq!(status["NoNewPrivs"], "1");
    assert_eq!(status["Seccomp"], "2");
    for (name, unit) in [
        ("Max core file size", "bytes"),
        ("Max processes", "processes"),
        ("Max file size", "bytes"),
    ] {
        let row = limits.lines().find(|l| l.starts_with(name)).unwrap();
        let fields: Vec<&str> = row[name.len()..].split_whitespace().collect();
        assert_eq!(fields, ["0", "0", unit], "{row}");
    }

    let eperm = format!("errno {}", libc::EPERM);
    let mut expected = vec![
        "execve",
        "socket",
        "socketpair",
        "openat",
        "setuid",
        "fork",
        "kill",
        "ptrace",
        "mmap_exec",
    ];
    if cfg!(target_arch = "x86_64") {
        expected.push("open");
    }
    for name in expected {
        assert_eq!(report.get(name), Some(&eperm), "{name} in {report:?}");
    }
    eprintln!("sandboxed child: {line}");
}

#[test]
fn sandboxed_worker_can_still_do_its_job() {
    if !test_support::ready(&[]) {
        return;
    }
    let _lock = FORK_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let (ipc_parent, ipc_child) = test_support::seqpacket_pair();
    let ipc_child_fd = ipc_child.as_raw_fd();
    let ipc_parent_fd = ipc_parent.as_raw_fd();

    let mut child = Child::spawn(move |io| {
        // SAFETY: the child's copy of the parent's end; the OwnedFd is never dropped here
        // because the child leaves with _exit.
        unsafe { libc::close(ipc_parent_fd) };
        if !enter_sandbox(io, &SandboxSpec::new(NOBODY, NOGROUP)) {
            return 1;
        }
        io.say(&allowed_probes(ipc_child_fd));
        0
    });
    drop(ipc_child);
    expect_ready(&mut child);

    // Hand the child a pipe's write end the way the helper hands over a socket.
    let (passed_r, passed_w) = pipe().unwrap();
    let cmsg = [ControlMessage::ScmRights(&[passed_w.as_raw_fd()])];
    sendmsg::<()>(
        ipc_parent.as_raw_fd(),
        &[IoSlice::new(b"ping")],
        &cmsg,
        MsgFlags::empty(),
        None,
    )
    .unwrap();
    drop(passed_w);

    let report = results(&child.read_rest());
    assert_eq!(child.wait(), WaitStatus::Exited(child.pid, 0));
    let mut via_fd = String::new();
    File::from(passed_r).read_to_string(&mut via_fd).unwrap();
    let mut reply = [0u8; 16];
    // SAFETY: reading into a local buffer of the stated length.
    let n = unsafe {
        libc::read(
            ipc_parent.as_raw_fd(),
            reply.as_mut_ptr().cast(),
            reply.len(),
        )
    };
    assert_eq!(&reply[..usize::try_from(n).unwrap()], b"pong");
    assert_eq!(
        via_fd,
        "written through a descriptor received by SCM_RIGHTS"
    );

    for name in [
        "recvmsg_scm_rights",
        "write_passed_fd",
        "reply",
        "clock_gettime",
        "sleep",
        "vec_16mib",
        "getrandom",
        "hashmap",
        "epoll_eventfd",
        "fcntl_nonblock",
        "ioctl_fionbio",
    ] {
        assert_eq!(
            report.get(name).map(String::as_str),
            Some("ok"),
            "{name} in {report:?}"
        );
    }
    // The argument filters refuse the variants that are not needed.
    let eperm = format!("errno {}", libc::EPERM);
    for name in ["fcntl_dupfd", "ioctl_fionread", "accept4_bad_flags"] {
        assert_eq!(report.get(name), Some(&eperm), "{name} in {report:?}");
    }
}

/// What the worker's packet loop does, run inside the sandbox; one `name=ok` line per probe.
fn allowed_probes(ipc: RawFd) -> String {
    let mut out = String::new();
    let mut line = |name: &str, ok: Result<(), String>| {
        out += &format!("{name}={}\n", ok.err().unwrap_or_else(|| "ok".into()));
    };

    // IPC: receive a descriptor, use it, answer.
    let mut buf = [0u8; 16];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let received = recvmsg::<()>(ipc, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(|e| e.to_string())
        .and_then(|msg| {
            msg.cmsgs()
                .map_err(|e| e.to_string())?
                .find_map(|c| match c {
                    ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                    _ => None,
                })
                .ok_or_else(|| "no descriptor".to_string())
        });
    line(
        "recvmsg_scm_rights",
        received.as_ref().map(drop).map_err(Clone::clone),
    );
    if let Ok(fd) = received {
        // SAFETY: the descriptor was just received and is owned by nobody else.
        let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        line(
            "write_passed_fd",
            file.write_all(b"written through a descriptor received by SCM_RIGHTS")
                .map_err(|e| e.to_string()),
        );
    }
    let sent = sendmsg::<()>(ipc, &[IoSlice::new(b"pong")], &[], MsgFlags::empty(), None);
    line("reply", sent.map(drop).map_err(|e| e.to_string()));

    // Time, through the syscall rather than the vDSO.
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into.
    let rc = unsafe { libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, &mut ts) };
    line("clock_gettime", check(rc));
    std::thread::sleep(std::time::Duration::from_millis(1));
    line("sleep", Ok(()));

    // The allocator: grow well past the mmap threshold (mmap, mremap, munmap).
    let mut v: Vec<u8> = Vec::new();
    for i in 0..16 * 1024 * 1024 {
        v.push((i % 251) as u8);
    }
    let sum: u64 = v.iter().map(|&b| u64::from(b)).sum();
    drop(v);
    line(
        "vec_16mib",
        if sum > 0 { Ok(()) } else { Err("empty".into()) },
    );

    let mut key = [0u8; 32];
    line(
        "getrandom",
        getrandom::getrandom(&mut key)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                if key.iter().any(|&b| b != 0) {
                    Ok(())
                } else {
                    Err("all zero".into())
                }
            }),
    );
    let mut map = std::collections::HashMap::new();
    map.insert("peer", 1);
    line(
        "hashmap",
        if map["peer"] == 1 {
            Ok(())
        } else {
            Err("lookup".into())
        },
    );

    line("epoll_eventfd", epoll_with_eventfd());

    // SAFETY: fcntl on an open descriptor with integer arguments.
    let flags = unsafe { libc::fcntl(ipc, libc::F_GETFL) };
    // SAFETY: as above.
    let rc = unsafe { libc::fcntl(ipc, libc::F_SETFL, flags | libc::O_NONBLOCK) };
    line("fcntl_nonblock", check(flags.min(rc).into()));
    // SAFETY: as above; the filter must refuse F_DUPFD.
    let rc = unsafe { libc::fcntl(ipc, libc::F_DUPFD, 0) };
    line("fcntl_dupfd", check(rc.into()));
    let mut on: libc::c_int = 1;
    // SAFETY: FIONBIO reads an int from the pointer.
    let rc = unsafe { libc::ioctl(ipc, libc::FIONBIO, &mut on) };
    line("ioctl_fionbio", check(rc.into()));
    let mut pending: libc::c_int = 0;
    // SAFETY: FIONREAD writes an int to the pointer; the filter must refuse it.
    let rc = unsafe { libc::ioctl(ipc, libc::FIONREAD, &mut pending) };
    line("ioctl_fionread", check(rc.into()));
    // SAFETY: accept4 with null address pointers; the filter must refuse the flag before the
    // kernel looks at the (non-listening) descriptor.
    let rc = unsafe { libc::accept4(ipc, std::ptr::null_mut(), std::ptr::null_mut(), 0x4000_0000) };
    line("accept4_bad_flags", check(rc.into()));
    out
}

fn check(rc: libc::c_long) -> Result<(), String> {
    if rc >= 0 {
        Ok(())
    } else {
        Err(format!("errno {}", errno()))
    }
}

/// The mio waker pattern: an eventfd registered in epoll, written, then reported ready.
fn epoll_with_eventfd() -> Result<(), String> {
    // SAFETY: plain integer flags; the result is checked.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    check(ep.into())?;
    // SAFETY: as above.
    let ev = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    check(ev.into())?;
    // SAFETY: both descriptors were just created and are owned here.
    let (ep, ev) = unsafe { (OwnedFd::from_raw_fd(ep), OwnedFd::from_raw_fd(ev)) };
    let mut event = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: 7,
    };
    // SAFETY: valid descriptors and a valid event.
    let rc = unsafe {
        libc::epoll_ctl(
            ep.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            ev.as_raw_fd(),
            &mut event,
        )
    };
    check(rc.into())?;
    let one: u64 = 1;
    // SAFETY: eventfd takes an 8-byte counter.
    let rc = unsafe { libc::write(ev.as_raw_fd(), (&one as *const u64).cast(), 8) };
    check(rc as libc::c_long)?;
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
    // SAFETY: the buffer holds `events.len()` entries.
    let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), events.as_mut_ptr(), 4, 10_000) };
    check(n.into())?;
    let token = events[0].u64;
    if n == 1 && token == 7 {
        Ok(())
    } else {
        Err(format!("{n} events, token {token}"))
    }
}

#[test]
fn kill_process_mode_kills_on_a_refused_syscall() {
    if !test_support::ready(&[]) {
        return;
    }
    let _lock = FORK_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = Child::spawn(|io| {
        let spec = SandboxSpec {
            on_denied: DenyAction::KillProcess,
            ..SandboxSpec::new(NOBODY, NOGROUP)
        };
        if !enter_sandbox(io, &spec) {
            return 1;
        }
        io.wait_for_parent();
        // SAFETY: plain integer arguments; this call must not return.
        unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
        io.say("survived\n");
        0
    });
    expect_ready(&mut child);
    child.go();
    let rest = child.read_rest();
    assert!(!rest.contains("survived"));
    assert!(
        matches!(child.wait(), WaitStatus::Signaled(_, Signal::SIGSYS, _)),
        "the child must die of SIGSYS"
    );
}

#[test]
fn stage1_keeps_only_setuid_and_setgid() {
    if !test_support::ready(&[]) {
        return;
    }
    let _lock = FORK_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = Child::spawn(|io| {
        match sandbox::stage1() {
            Ok(()) => io.say("ready\n"),
            Err(e) => io.say(&format!("error {e}\n")),
        }
        io.wait_for_parent();
        0
    });
    expect_ready(&mut child);
    let status = proc_status(child.pid);
    child.go();
    assert_eq!(child.wait(), WaitStatus::Exited(child.pid, 0));
    // CAP_SETGID is 6 and CAP_SETUID is 7.
    assert_eq!(status["CapEff"], "00000000000000c0");
    assert_eq!(status["CapPrm"], "00000000000000c0");
    for key in ["CapInh", "CapBnd", "CapAmb"] {
        assert_eq!(status[key], "0000000000000000", "{key}");
    }
    assert!(status["Uid"].split_whitespace().all(|id| id == "0"));
    assert_eq!(status["Seccomp"], "0");
}

#[test]
fn enter_refuses_root_targets_and_threads_without_changing_anything() {
    let _lock = FORK_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let euid = nix::unistd::geteuid().as_raw();
    let mut child = Child::spawn(|io| {
        let root = sandbox::enter(&SandboxSpec::new(0, NOGROUP));
        let root_group = sandbox::enter(&SandboxSpec::new(NOBODY, 0));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let _ = rx.recv();
        });
        let threaded = sandbox::enter(&SandboxSpec::new(NOBODY, NOGROUP));
        drop(tx);
        let _ = thread.join();
        io.say(&format!(
            "root={}\nroot_group={}\nthreaded={}\neuid={}\n",
            matches!(root, Err(sandbox::SandboxError::RootTarget { .. })),
            matches!(root_group, Err(sandbox::SandboxError::RootTarget { .. })),
            matches!(threaded, Err(sandbox::SandboxError::MultiThreaded(2))),
            nix::unistd::geteuid().as_raw(),
        ));
        0
    });
    let report = results(&child.read_rest());
    assert_eq!(child.wait(), WaitStatus::Exited(child.pid, 0));
    assert_eq!(report["root"], "true");
    assert_eq!(report["root_group"], "true");
    assert_eq!(report["threaded"], "true");
    assert_eq!(report["euid"], euid.to_string());
}

#[test]
fn landlock_state_matches_the_kernel() {
    if !test_support::ready(&[]) {
        return;
    }
    let _lock = FORK_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = Child::spawn(|io| {
        if enter_sandbox(io, &SandboxSpec::new(NOBODY, NOGROUP)) {
            0
        } else {
            1
        }
    });
    let line = expect_ready(&mut child);
    assert_eq!(child.wait(), WaitStatus::Exited(child.pid, 0));
    // The kernel answers the version query with an ABI number when Landlock is enabled.
    // No attribute, size 0, flag LANDLOCK_CREATE_RULESET_VERSION: the kernel's ABI version.
    let (attr, size, flags) = (std::ptr::null::<u8>(), 0usize, 1u32);
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION takes no attribute pointer.
    let abi = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, attr, size, flags) };
    let expected = if abi > 0 {
        [
            LandlockState::FullyEnforced,
            LandlockState::PartiallyEnforced,
        ]
        .map(|s| format!("ready {s:?} "))
        .to_vec()
    } else {
        vec![format!("ready {:?} ", LandlockState::NotEnforced)]
    };
    assert!(
        expected.iter().any(|e| line.starts_with(e.as_str())),
        "kernel ABI {abi}, child said {line}"
    );
}

/// A panic in the release worker aborts, and a memory fault must kill it, not loop: the
/// allow-list keeps the paths abort() and std's SIGSEGV handler take (rt_sigprocmask, getpid,
/// gettid, tgkill with SIGABRT to itself, rt_sigaction to restore the default action).
#[test]
fn abort_and_faults_still_terminate_the_sandboxed_worker() {
    if !test_support::ready(&[]) {
        return;
    }
    let _lock = FORK_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut aborting = Child::spawn(|io| {
        if !enter_sandbox(io, &SandboxSpec::new(NOBODY, NOGROUP)) {
            return 1;
        }
        io.wait_for_parent();
        std::process::abort()
    });
    expect_ready(&mut aborting);
    aborting.go();
    aborting.read_rest();
    assert!(
        matches!(aborting.wait(), WaitStatus::Signaled(_, Signal::SIGABRT, _)),
        "abort() must end the sandboxed child with SIGABRT"
    );

    let mut faulting = Child::spawn(|io| {
        // Mapped before the sandbox so that only the fault itself happens inside it.
        // SAFETY: an anonymous inaccessible page the kernel chooses.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if page == libc::MAP_FAILED || !enter_sandbox(io, &SandboxSpec::new(NOBODY, NOGROUP)) {
            return 1;
        }
        io.wait_for_parent();
        // SAFETY: deliberately faults on a PROT_NONE page owned by this child; the write
        // never completes, because the process dies of SIGSEGV.
        unsafe { std::ptr::write_volatile(page.cast::<u8>(), 1) };
        io.say("survived\n");
        0
    });
    expect_ready(&mut faulting);
    faulting.go();
    assert!(!faulting.read_rest().contains("survived"));
    assert!(
        matches!(faulting.wait(), WaitStatus::Signaled(_, Signal::SIGSEGV, _)),
        "a fault must end the sandboxed child with SIGSEGV"
    );
}

#[test]
fn sandboxed_worker_dies_with_its_parent() {
    if !test_support::ready(&[]) {
        return;
    }
    let _lock = FORK_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // The child plays the helper: it forks the "worker", which arms the parent-death signal as
    // the real worker does before exec, then sandboxes itself (the uid change clears the signal).
    let mut helper = Child::spawn(|io| {
        // SAFETY: the forked grandchild only uses async-signal-safe calls plus the sandbox set-up,
        // as the test children above do.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
                if !enter_sandbox(io, &SandboxSpec::new(NOBODY, NOGROUP)) {
                    // SAFETY: _exit never returns.
                    unsafe { libc::_exit(1) }
                }
                // Bounded: a worker that outlives its parent by a minute fails the test.
                std::thread::sleep(std::time::Duration::from_secs(60));
                io.say("worker outlived its helper\n");
                // SAFETY: _exit never returns.
                unsafe { libc::_exit(0) }
            }
            Ok(ForkResult::Parent { .. }) => {
                io.wait_for_parent();
                0
            }
            Err(_) => 1,
        }
    });
    expect_ready(&mut helper);
    helper.go();
    assert!(matches!(helper.wait(), WaitStatus::Exited(_, 0)));
    // EOF comes once the worker's copy of the pipe closes, i.e. when it died.
    let rest = helper.read_rest();
    assert!(!rest.contains("outlived"), "{rest}");
}
