//! The daemon as a process, through the built binary (docs/config.md 6.1, 6.11, 6.13): the
//! systemd readiness datagram (`Type=notify`), `--daemon` with `--pid-file`, and syslog
//! as Debian's `fastd@.service` runs it. Every daemon runs in network namespaces made
//! for the test; the syslog tests also get a private mount namespace in which /dev is a
//! small directory of the test's (with the test's socket as /dev/log), so the host's /dev
//! is never touched. Every wait is bounded; every process the test starts is killed on
//! drop, and whatever is left in the test's namespace is swept (by pid) before it is
//! deleted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const IFACE: &str = "vpngateway";

// ---------------------------------------------------------------------------------------
// Processes

/// A process the test started: the support module's [`Daemon`] (stderr collected, SIGTERM
/// then SIGKILL on drop), with extra environment variables.
type Proc = Daemon;

/// `ip netns exec NS args...` (which execs, so the pid is the program's).
fn in_ns(ns: &Netns, args: &[&str], env: &[(&str, &Path)]) -> Proc {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.0]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Daemon::spawn(cmd)
}

/// `fastd-privsep --daemon --pid-file PID_FILE -c CONF` in `ns`, and the started process'
/// exit status (it must return within 20 s).
fn start_daemon_mode(ns: &Netns, pid_file: &Path, conf: &Path) -> (Proc, ExitStatus) {
    let mut starter = in_ns(
        ns,
        &[
            OURS,
            "--daemon",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "-c",
            conf.to_str().unwrap(),
        ],
        &[],
    );
    let status = starter
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| {
            panic!(
                "the started process did not return within 20 s; log:\n{}",
                starter.log()
            )
        });
    (starter, status)
}

/// The fields of `/proc/PID/stat` after the command name: state, ppid, pgrp, session, ...
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        s.rsplit_once(')')?
            .1
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    )
}

fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Live (not zombie) processes, as pids.
fn live_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|&p| stat_fields(p).is_some_and(|f| f.first().map(String::as_str) != Some("Z")))
        .collect()
}

/// Our worker: the helper's child with the role argument.
fn worker_of(helper: i32) -> Option<i32> {
    live_pids().into_iter().find(|&p| {
        stat_fields(p).and_then(|f| f.get(1).and_then(|s| s.parse::<i32>().ok())) == Some(helper)
            && cmdline(p).iter().any(|a| a == "--privsep-worker-role")
    })
}

/// The identity of a network namespace (nsfs device and inode).
fn netns_id(path: &str) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Live processes in the namespace: only this test starts any there.
fn pids_in(id: (u64, u64)) -> Vec<i32> {
    live_pids()
        .into_iter()
        .filter(|p| netns_id(&format!("/proc/{p}/ns/net")) == Some(id))
        .collect()
}

/// Declared after the namespace (so dropped before it is deleted): SIGKILLs, by pid,
/// whatever still runs in it, e.g. a `--daemon` child whose parent the test never had.
struct Sweep {
    id: (u64, u64),
}

impl Sweep {
    fn new(ns: &Netns) -> Self {
        Sweep {
            id: netns_id(&format!("/run/netns/{}", ns.0)).expect("the namespace's nsfs file"),
        }
    }

    fn pids(&self) -> Vec<i32> {
        pids_in(self.id)
    }

    /// Waits (bounded) until nothing runs in the namespace any more.
    fn empty_within(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.pids().is_empty() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sweep {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = self.pids();
            if left.is_empty() || Instant::now() > deadline {
                return;
            }
            for p in left {
                // SAFETY: kill on a process in the namespace this test created.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The end after SIGTERM: fastd kills itself with the same signal (docs/config.md 6.2).
fn assert_clean_stop(status: Option<ExitStatus>, log: &str) {
    let status = status.unwrap_or_else(|| panic!("still running 15 s after SIGTERM; {log}"));
    assert_stopped_by(status, libc::SIGTERM, log);
}

/// A UDP socket bound inside the namespace (a thread enters it, binds, and ends).
fn udp_in(ns: &Netns, addr: &str) -> std::net::UdpSocket {
    let path = format!("/run/netns/{}", ns.0);
    let addr = addr.to_owned();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).unwrap();
        // SAFETY: setns on a namespace fd we hold; it changes only this thread, which
        // ends right after the bind.
        let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        std::net::UdpSocket::bind(addr.as_str()).unwrap()
    })
    .join()
    .unwrap()
}

// ---------------------------------------------------------------------------------------
// Configs

/// The tutorial's alpha in TUN mode: one static peer, so (persist interface yes) the
/// interface exists from the start. `extra` goes before the peer, `peer_extra` into it.
fn write_conf(dir: &Path, extra: &str, peer_extra: &str) -> PathBuf {
    let conf = dir.join("fastd.conf");
    std::fs::write(
        &conf,
        format!(
            "mode tun;\ninterface \"{IFACE}\";\nmethod \"salsa2012+umac\";\n\
             bind 192.0.2.1:10000;\nsecret \"{ALPHA_SECRET}\";\nmtu 1448;\n{extra}\
             peer \"anyremote\" {{ key \"{AR_PUBLIC}\";{peer_extra} }}\n"
        ),
    )
    .unwrap();
    conf
}

/// Two namespaces joined by a veth: 192.0.2.1 on `a`, 192.0.2.2 (nobody listening) on `b`.
fn namespaces(tag: &str) -> (Netns, Netns) {
    veth_pair(tag, "far")
}

// ---------------------------------------------------------------------------------------
// 1. systemd readiness

#[test]
fn notify_socket_gets_one_ready_datagram_after_the_interface_and_on_up() {
    if !ready(&["env", "mv"]) {
        return;
    }
    let (_t, d) = tempdir();
    let (a, _b) = namespaces("notify");
    let _sweep = Sweep::new(&a);
    let conf = write_conf(&d, "log level info;\non up \"./up-hook\";\n", "");
    write_exec(
        &d.join("up-hook"),
        "#!/bin/sh\nenv > up.env.tmp && mv up.env.tmp up.env\n",
    );
    let sock_path = d.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();

    let mut daemon = in_ns(
        &a,
        &[OURS, "-c", conf.to_str().unwrap()],
        &[("NOTIFY_SOCKET", &sock_path)],
    );
    let mut buf = [0u8; 4096];
    let n = match sock.recv(&mut buf) {
        Ok(n) => n,
        Err(e) => panic!(
            "no datagram on NOTIFY_SOCKET within 20 s ({e}); log:\n{}",
            daemon.log()
        ),
    };
    // Right when it arrives: the interface exists and `on up` has finished.
    let link_there = a.has_link(IFACE);
    let up_env = std::fs::read_to_string(d.join("up.env"));
    // fastd sends no final newline, the sd-notify crate does; systemd takes both.
    let got = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert_eq!(
        got.strip_suffix('\n').unwrap_or(&got),
        format!("READY=1\nMAINPID={}", daemon.pid()),
        "the readiness datagram (MAINPID is the started process, the helper); log:\n{}",
        daemon.log()
    );
    assert!(
        link_there,
        "READY=1 came before `{IFACE}` existed; log:\n{}",
        daemon.log()
    );
    let up_env = up_env.unwrap_or_else(|e| {
        panic!(
            "READY=1 came before `on up` had run (up.env: {e}); log:\n{}",
            daemon.log()
        )
    });
    assert!(
        up_env.lines().any(|l| l == format!("INTERFACE={IFACE}")),
        "up.env is not the up hook's environment:\n{up_env}"
    );
    assert!(
        !up_env.lines().any(|l| l.starts_with("NOTIFY_SOCKET=")),
        "the hook inherited NOTIFY_SOCKET:\n{up_env}"
    );
    // `log level info`: no verbose line, the worker's sandbox report included.
    let log = daemon.log();
    assert!(log.contains("Info: fastd v22 starting"), "{log}");
    assert!(!log.contains("Verbose:"), "{log}");

    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    match sock.recv(&mut buf) {
        Ok(n) => panic!(
            "a second datagram: {:?}; log:\n{}",
            String::from_utf8_lossy(&buf[..n]),
            daemon.log()
        ),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
    }

    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(15));
    assert_clean_stop(status, &daemon.log());
}

// ---------------------------------------------------------------------------------------
// 2. --daemon and --pid-file

#[test]
fn daemon_mode_returns_when_ready_and_the_pid_file_names_the_detached_daemon() {
    if !ready(&[]) {
        return;
    }
    let (_t, d) = tempdir();
    let (a, _b) = namespaces("daemon");
    let sweep = Sweep::new(&a);
    let conf = write_conf(&d, "", "");
    let pid_file = d.join("fastd.pid");
    let (starter, status) = start_daemon_mode(&a, &pid_file, &conf);
    let link_there = a.has_link(IFACE);
    assert_eq!(
        status.code(),
        Some(0),
        "the started process; log:\n{}",
        starter.log()
    );
    assert!(
        link_there,
        "the started process returned before `{IFACE}` existed; log:\n{}",
        starter.log()
    );

    let text = std::fs::read_to_string(&pid_file).unwrap_or_else(|e| {
        panic!(
            "pid file {}: {e}; log:\n{}",
            pid_file.display(),
            starter.log()
        )
    });
    let pid: i32 = text.parse().unwrap_or_else(|_| {
        panic!("the pid file holds {text:?}, not a bare decimal pid (no newline)")
    });
    let me = starter.pid();
    assert_ne!(pid, me, "the pid file names the started process");
    assert!(
        !pid_gone(pid),
        "the daemon {pid} from the pid file is not running; log:\n{}",
        starter.log()
    );
    assert!(
        sweep.pids().contains(&pid),
        "{pid} does not run in the test's namespace"
    );
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe, std::fs::canonicalize(OURS).unwrap(), "/proc/{pid}/exe");
    let args = cmdline(pid);
    assert!(
        !args.iter().any(|a| a == "--privsep-worker-role"),
        "the pid file names the worker: {args:?}"
    );
    assert!(
        args.iter().any(|a| a == conf.to_str().unwrap()),
        "{pid} is not the daemon started with {}: {args:?}",
        conf.display()
    );
    let fields = stat_fields(pid).unwrap();
    let own = stat_fields(std::process::id() as i32).unwrap();
    assert_ne!(
        fields[1],
        me.to_string(),
        "the daemon's parent is the started process"
    );
    assert_ne!(
        fields[3], own[3],
        "the daemon is still in the test's session (no setsid)"
    );

    // SAFETY: kill on the daemon this test started (checked above: ours, in our namespace).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert!(
        wait_until(Duration::from_secs(15), || pid_gone(pid)),
        "the daemon {pid} still runs 15 s after SIGTERM; log:\n{}",
        starter.log()
    );
    assert!(
        wait_until(Duration::from_secs(5), || !a.has_link(IFACE)),
        "`{IFACE}` is left after the daemon stopped; log:\n{}",
        starter.log()
    );
    assert!(
        sweep.empty_within(Duration::from_secs(5)),
        "processes left in the namespace: {:?}",
        sweep.pids()
    );
    assert!(
        pid_file.exists(),
        "the pid file was removed (fastd leaves it behind)"
    );
    // stdin/stdout/stderr are not redirected: the daemon's shutdown line reached the
    // stderr the test gave the started process.
    assert!(
        starter.log_contains("terminating fastd", Duration::from_secs(2)),
        "the daemon's stderr is not the one it was started with; log:\n{}",
        starter.log()
    );
}

#[test]
fn daemon_mode_start_failure_after_the_fork_exits_1_and_leaves_no_process() {
    if !ready(&[]) {
        return;
    }
    let (_t, d) = tempdir();
    let (a, _b) = namespaces("dfail");
    let sweep = Sweep::new(&a);
    let conf = write_conf(&d, "", "");
    let pid_file = d.join("fastd.pid");
    // The port is taken (fastd binds with IP_FREEBIND, so an absent address would not
    // fail): binding is fatal, after the fork.
    let _taken = udp_in(&a, "192.0.2.1:10000");
    let (starter, status) = start_daemon_mode(&a, &pid_file, &conf);
    assert_eq!(
        status.code(),
        Some(1),
        "the started process after a failed start; log:\n{}",
        starter.log()
    );
    assert!(
        starter.log_contains("unable to bind to 192.0.2.1:10000", Duration::from_secs(2)),
        "not the bind failure; log:\n{}",
        starter.log()
    );
    let conf_text = conf.to_str().unwrap().to_owned();
    let with_conf = || -> Vec<i32> {
        live_pids()
            .into_iter()
            .filter(|&p| cmdline(p).iter().any(|a| a.contains(&conf_text)))
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(5), || with_conf().is_empty()),
        "a daemon is left: {:?}; log:\n{}",
        with_conf(),
        starter.log()
    );
    assert!(
        sweep.empty_within(Duration::from_secs(5)),
        "processes left in the namespace: {:?}; log:\n{}",
        sweep.pids(),
        starter.log()
    );
    assert!(
        !pid_file.exists(),
        "a pid file was written for a daemon that never became ready"
    );
}

// ---------------------------------------------------------------------------------------
// 3. syslog

/// One datagram as glibc's syslog() sends it to /dev/log:
/// `<PRI>Mmm dd HH:MM:SS IDENT[PID]: MESSAGE` (no hostname, no trailing newline or NUL).
#[derive(Debug, Clone)]
struct Entry {
    pri: u32,
    ident: String,
    pid: i32,
    msg: String,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Local time now: (month abbreviation, day of month, second of the day).
fn local_now() -> (&'static str, u32, i64) {
    let mut now: libc::time_t = 0;
    // SAFETY: time() writes one time_t through a valid pointer.
    unsafe { libc::time(&mut now) };
    // SAFETY: tm is plain data; all-zero is valid and localtime_r overwrites it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    assert!(!unsafe { libc::localtime_r(&now, &mut tm) }.is_null());
    (
        MONTHS[tm.tm_mon as usize],
        tm.tm_mday as u32,
        i64::from(tm.tm_hour) * 3600 + i64::from(tm.tm_min) * 60 + i64::from(tm.tm_sec),
    )
}

fn two_digits(s: &str, max: u32) -> Option<u32> {
    (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
        .filter(|&v| v <= max)
}

/// Parses one datagram; `at` is the local time it was received (the timestamp must be
/// within two minutes of it, in local time as glibc writes it).
fn parse_syslog(raw: &[u8], at: (&str, u32, i64)) -> Result<Entry, String> {
    let s = std::str::from_utf8(raw).map_err(|e| format!("not UTF-8: {e}"))?;
    let rest = s.strip_prefix('<').ok_or("no `<PRI>`")?;
    let (pri, rest) = rest.split_once('>').ok_or("no `>` after PRI")?;
    if pri.is_empty() || !pri.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad PRI {pri:?}"));
    }
    let pri: u32 = pri.parse().map_err(|_| "bad PRI")?;
    if rest.len() < 16 || !rest.is_char_boundary(16) {
        return Err("too short for a timestamp".into());
    }
    let (ts, rest) = rest.split_at(16);
    let month = &ts[0..3];
    if !MONTHS.contains(&month) {
        return Err(format!("bad month {month:?}"));
    }
    let day = &ts[4..6];
    let day_ok = match day.as_bytes() {
        [b' ', d] => (b'1'..=b'9').contains(d),
        [b'1'..=b'3', b'0'..=b'9'] => day <= "31",
        _ => false,
    };
    if !day_ok || &ts[3..4] != " " || &ts[6..7] != " " || &ts[15..16] != " " {
        return Err(format!(
            "bad timestamp {ts:?} (`Mmm dd HH:MM:SS `, day space-padded)"
        ));
    }
    let (h, m, sec) = (
        two_digits(&ts[7..9], 23),
        two_digits(&ts[10..12], 59),
        two_digits(&ts[13..15], 60),
    );
    let (Some(h), Some(m), Some(sec)) = (h, m, sec) else {
        return Err(format!("bad time in {ts:?}"));
    };
    if &ts[9..10] != ":" || &ts[12..13] != ":" {
        return Err(format!("bad time in {ts:?}"));
    }
    let secs = i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(sec);
    let diff = (secs - at.2).rem_euclid(86_400);
    if diff.min(86_400 - diff) > 120 {
        return Err(format!("timestamp {ts:?} is not the local time now"));
    }
    let near_midnight = at.2 < 120 || at.2 > 86_400 - 120;
    let day_num: u32 = day.trim().parse().map_err(|_| "bad day")?;
    if !near_midnight && (month != at.0 || day_num != at.1) {
        return Err(format!("timestamp {ts:?} is not today ({} {})", at.0, at.1));
    }
    let (ident, rest) = rest.split_once('[').ok_or("no `IDENT[`")?;
    let (pid, msg) = rest.split_once("]: ").ok_or("no `]: ` after the pid")?;
    if ident.is_empty() || ident.contains(' ') {
        return Err(format!("bad ident {ident:?}"));
    }
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad pid {pid:?}"));
    }
    if msg.ends_with('\n') || msg.ends_with('\0') {
        return Err("a trailing newline or NUL (glibc sends none on a datagram socket)".into());
    }
    Ok(Entry {
        pri,
        ident: ident.to_owned(),
        pid: pid.parse().map_err(|_| "bad pid")?,
        msg: msg.to_owned(),
    })
}

type Received = Arc<Mutex<Vec<(Vec<u8>, (&'static str, u32, i64))>>>;

/// The test's /dev/log: a datagram socket drained by a thread (a full queue, 10
/// datagrams by default, would block the daemon's syslog()).
struct Syslog {
    got: Received,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Syslog {
    fn bind(path: &Path) -> Self {
        let sock = UnixDatagram::bind(path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let got: Received = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (sink, halt) = (Arc::clone(&got), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !halt.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    sink.lock().unwrap().push((buf[..n].to_vec(), local_now()));
                }
            }
        });
        Syslog {
            got,
            stop,
            thread: Some(thread),
        }
    }

    /// Everything received so far: parsed, or the raw text with the parse error.
    fn entries(&self) -> Vec<Result<Entry, String>> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(raw, at)| {
                parse_syslog(raw, *at)
                    .map_err(|e| format!("{e}: {:?}", String::from_utf8_lossy(raw)))
            })
            .collect()
    }

    fn dump(&self) -> String {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(raw, _)| format!("{:?}\n", String::from_utf8_lossy(raw)))
            .collect()
    }

    fn has(&self, pred: impl Fn(&Entry) -> bool) -> bool {
        self.entries().iter().flatten().any(pred)
    }
}

impl Drop for Syslog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A private mount namespace (inside `ip netns exec`'s) in which /dev is `dir/dev`: the
/// device nodes the daemon needs bound in, and the test's socket as /dev/log. `exec`
/// keeps the pid: the started process is the daemon.
fn start_with_private_dev(ns: &Netns, dir: &Path, args: &[&str]) -> (Syslog, Proc) {
    let dev = dir.join("dev");
    std::fs::create_dir_all(dev.join("net")).unwrap();
    for f in ["null", "urandom", "random", "net/tun"] {
        std::fs::write(dev.join(f), "").unwrap();
    }
    let syslog = Syslog::bind(&dev.join("log"));
    let d = dev.display();
    let mut script = String::from("set -e\n");
    for f in ["null", "urandom", "random", "net/tun"] {
        script.push_str(&format!("mount --bind /dev/{f} '{d}/{f}'\n"));
    }
    // --rbind: the file bind mounts above sit on top of `dir/dev` and must come along.
    script.push_str(&format!("mount --rbind '{d}' /dev\nexec '{OURS}'"));
    for a in args {
        script.push_str(&format!(" '{a}'"));
    }
    script.push('\n');
    let path = dir.join("start.sh");
    std::fs::write(&path, script).unwrap();
    let daemon = in_ns(
        ns,
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            path.to_str().unwrap(),
        ],
        &[],
    );
    (syslog, daemon)
}

/// Checks every datagram: the BSD format, the ident, facility daemon, and a pid that is
/// the helper's or its worker's.
fn check_all(syslog: &Syslog, helper: i32, worker: Option<i32>, log: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for e in syslog.entries() {
        let e = e.unwrap_or_else(|e| panic!("not a syslog() datagram: {e}; stderr:\n{log}"));
        assert_eq!(e.ident, "fastd@test", "{e:?}");
        assert_eq!(e.pri / 8, 3, "not facility daemon: {e:?}");
        assert!(
            e.pid == helper || Some(e.pid) == worker,
            "{e:?} is from neither the helper {helper} nor the worker {worker:?}"
        );
        out.push(e);
    }
    out
}

#[test]
fn syslog_as_debian_runs_it_info_level_in_bsd_format() {
    if !ready(&["unshare", "mount", "mv"]) {
        return;
    }
    let (_t, d) = tempdir();
    let (a, _b) = namespaces("syslog");
    let sweep = Sweep::new(&a);
    // A remote, so that handshakes are sent (`Verbose: sending handshake ...`, which
    // must not reach syslog at level info), and a `connect` hook to know when.
    let conf = write_conf(
        &d,
        "on up \"./up-hook\";\non connect \"touch connect.seen\";\non down \"exit 3\";\n",
        " remote 192.0.2.2:10000;",
    );
    write_exec(
        &d.join("up-hook"),
        "#!/bin/sh\nip -o link show dev \"$INTERFACE\" > up.tmp && mv up.tmp up.seen\n",
    );
    let (syslog, mut daemon) = start_with_private_dev(
        &a,
        &d,
        &[
            "--syslog-level",
            "info",
            "--syslog-ident",
            "fastd@test",
            "-c",
            conf.to_str().unwrap(),
        ],
    );
    let helper = daemon.pid();
    let logs = |daemon: &Proc| format!("stderr:\n{}\nsyslog:\n{}", daemon.log(), syslog.dump());

    // The harness: the daemon came up under the private /dev (TUN, hooks).
    assert!(
        wait_until(Duration::from_secs(20), || d.join("up.seen").exists()),
        "the daemon did not come up (`on up` did not run) under the private /dev; {}",
        logs(&daemon)
    );
    assert!(a.has_link(IFACE), "{}", logs(&daemon));
    assert!(
        wait_until(Duration::from_secs(20), || d.join("connect.seen").exists()),
        "no handshake was sent; {}",
        logs(&daemon)
    );
    let worker = worker_of(helper);
    assert!(
        wait_until(Duration::from_secs(10), || {
            syslog.has(|e| e.msg == "fastd v22 starting")
                && syslog.has(|e| e.msg.starts_with("bound to 192.0.2.1:10000"))
        }),
        "no `fastd v22 starting` and `bound to` on /dev/log; {}",
        logs(&daemon)
    );
    // Time for the handshake's verbose line to be (wrongly) sent.
    std::thread::sleep(Duration::from_millis(500));

    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(15));
    assert!(
        wait_until(Duration::from_secs(3), || syslog
            .has(|e| e.msg == "terminating fastd")),
        "no `terminating fastd` on /dev/log; {}",
        logs(&daemon)
    );
    let all = check_all(&syslog, helper, worker, &daemon.log());
    let find = |pred: &dyn Fn(&Entry) -> bool| all.iter().find(|e| pred(e)).cloned();

    let start = find(&|e| e.msg == "fastd v22 starting").unwrap();
    assert_eq!(
        (start.pri, start.pid),
        (29, helper),
        "`fastd v22 starting`: daemon.notice from the helper; {}",
        logs(&daemon)
    );
    let bound = find(&|e| e.msg.starts_with("bound to 192.0.2.1:10000")).unwrap();
    assert_eq!(bound.pri, 29, "info is notice: {bound:?}");
    let term = find(&|e| e.msg == "terminating fastd").unwrap();
    assert_eq!(term.pri, 29, "info is notice: {term:?}");
    let warn = find(&|e| e.msg == "command exited with status 3").unwrap_or_else(|| {
        panic!(
            "no `command exited with status 3` from `on down`; {}",
            logs(&daemon)
        )
    });
    assert_eq!(warn.pri, 28, "warn is warning: {warn:?}");
    let loud: Vec<&Entry> = all.iter().filter(|e| e.pri % 8 > 5).collect();
    assert!(
        loud.is_empty(),
        "verbose/debug messages at --syslog-level info: {loud:?}"
    );

    // Only --syslog-level: stderr is unset once start-up is over.
    assert!(
        !daemon.log().contains("terminating fastd"),
        "stderr still logs after start-up; {}",
        logs(&daemon)
    );
    assert_clean_stop(status, &logs(&daemon));
    assert!(
        sweep.empty_within(Duration::from_secs(5)),
        "left: {:?}",
        sweep.pids()
    );
}

#[test]
fn syslog_verbose_level_maps_verbose_to_info_and_error_to_err() {
    if !ready(&["unshare", "mount"]) {
        return;
    }
    let (_t, d) = tempdir();
    let (a, _b) = namespaces("sysverb");
    let _sweep = Sweep::new(&a);
    // An async `connect` hook: its reaping is a debug line, which level verbose leaves out.
    let conf = write_conf(
        &d,
        "on connect \"touch connect.seen\";\n",
        " remote 192.0.2.2:10000;",
    );
    // A pid file that cannot be written: `Error: can't write PID file: ...`, not fatal,
    // logged after syslog was opened.
    let pid_file = d.join("missing").join("fastd.pid");
    let (syslog, mut daemon) = start_with_private_dev(
        &a,
        &d,
        &[
            "--syslog-level",
            "verbose",
            "--syslog-ident",
            "fastd@test",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "-c",
            conf.to_str().unwrap(),
        ],
    );
    let helper = daemon.pid();
    let logs = |daemon: &Proc| format!("stderr:\n{}\nsyslog:\n{}", daemon.log(), syslog.dump());
    let handshake = "sending handshake to <anyremote>[192.0.2.2:10000]...";
    assert!(
        wait_until(Duration::from_secs(20), || syslog
            .has(|e| e.msg == handshake)
            && syslog.has(
                |e| e.msg == "can't write PID file: No such file or directory"
            )),
        "no `{handshake}` and `can't write PID file` on /dev/log; {}",
        logs(&daemon)
    );
    assert!(
        wait_until(Duration::from_secs(10), || d.join("connect.seen").exists()),
        "the connect hook did not run; {}",
        logs(&daemon)
    );
    let worker = worker_of(helper);
    // Time for the hook's reaping (a debug line) to be (wrongly) sent.
    std::thread::sleep(Duration::from_millis(500));
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(15));
    let all = check_all(&syslog, helper, worker, &daemon.log());
    let find = |pred: &dyn Fn(&Entry) -> bool| all.iter().find(|e| pred(e)).cloned();

    let start = find(&|e| e.msg == "fastd v22 starting")
        .unwrap_or_else(|| panic!("no `fastd v22 starting`; {}", logs(&daemon)));
    assert_eq!((start.pri, start.pid), (29, helper), "{start:?}");
    let hs = find(&|e| e.msg == handshake).unwrap();
    assert_eq!(hs.pri, 30, "verbose is info: {hs:?}");
    let err = find(&|e| e.msg == "can't write PID file: No such file or directory").unwrap();
    assert_eq!(err.pri, 27, "error is err: {err:?}");
    let debug: Vec<&Entry> = all.iter().filter(|e| e.pri % 8 > 6).collect();
    assert!(
        debug.is_empty(),
        "debug messages at --syslog-level verbose: {debug:?}"
    );
    assert_clean_stop(status, &logs(&daemon));
}
