//! Shared pieces of the end-to-end tests: network namespaces and veth pairs that are
//! always deleted (Drop), daemons (ours or the real fastd) whose stderr is collected, and
//! bounded waits. Everything runs inside namespaces the test creates.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod status_doc;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const OURS: &str = env!("CARGO_BIN_EXE_fastd-privsep");
pub const FASTD: &str = "/usr/bin/fastd";

pub const ALPHA_SECRET: &str = "5035de5b4ea448b74e9a373765207095057a9485fd9dca5fadb9c1b86347bd75";
pub const ALPHA_PUBLIC: &str = "8cb5e8d70d34f52716b6c4de518af2edfd6794e68ef1b3f0608cf05dd6a2ef42";
pub const AR_SECRET: &str = "c0a611e0d4f3075b45cf172d3221c8427008e2c6f541b5b6adda0368cb79f271";
pub const AR_PUBLIC: &str = "2598c5d7e72f171731658ce35734ff7599e1840367422e1a9c5943c327ab5ea9";

/// Root is needed for namespaces and TUN. Under CI=true missing pieces fail the test.
pub fn ready(tools: &[&str]) -> bool {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            !ci,
            "CI runs the end-to-end tests as root; they must not skip"
        );
        eprintln!("skipped: needs root");
        return false;
    }
    for t in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !found {
            assert!(!ci, "{t} is missing (dist/deps.sh installs it)");
            eprintln!("skipped: {t} is missing");
            return false;
        }
    }
    true
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A network namespace, deleted on drop (with its veth ends and TUN devices).
pub struct Netns(pub String);

impl Netns {
    pub fn new(tag: &str) -> Self {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("fpe-{}-{n}-{tag}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        sh_ok("ip", &["netns", "add", &name]);
        let ns = Netns(name);
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command in the namespace; returns (success, stdout).
    pub fn exec(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Runs a command that must succeed.
    pub fn run(&self, args: &[&str]) -> String {
        let (ok, out) = self.exec(args);
        assert!(ok, "`{}` failed in {}", args.join(" "), self.0);
        out
    }

    pub fn sh(&self, script: &str) -> (bool, String) {
        self.exec(&["sh", "-c", script])
    }

    pub fn routes(&self) -> String {
        self.run(&["ip", "route"])
    }

    pub fn has_link(&self, name: &str) -> bool {
        self.exec(&["ip", "link", "show", name]).0
    }

    pub fn ping(&self, addr: &str) -> bool {
        self.exec(&["ping", "-c", "1", "-W", "1", addr]).0
    }

    /// Pings until one answer comes back, at most `tries` times.
    pub fn ping_until(&self, addr: &str, tries: usize) -> bool {
        (0..tries).any(|_| {
            if self.ping(addr) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
            false
        })
    }

    pub fn nft_tables(&self) -> String {
        self.run(&["nft", "list", "tables"])
    }

    pub fn forwarding(&self) -> String {
        self.run(&["sysctl", "-n", "net.ipv4.ip_forward"])
            .trim()
            .to_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

pub fn sh_ok(cmd: &str, args: &[&str]) {
    let ok = Command::new(cmd).args(args).status().unwrap().success();
    assert!(ok, "`{cmd} {}` failed", args.join(" "));
}

/// A veth pair between two namespaces with an address on each end.
pub fn link(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    sh_ok(
        "ip",
        &[
            "link", "add", a_if, "netns", &a.0, "type", "veth", "peer", "name", b_if, "netns", &b.0,
        ],
    );
    for (ns, ifname, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
        ns.run(&["ip", "addr", "add", addr, "dev", ifname]);
        ns.run(&["ip", "link", "set", ifname, "up"]);
    }
}

/// A daemon (ours or the real fastd) in a namespace; stderr collected; killed on drop.
pub struct Daemon {
    pub child: Child,
    log: Arc<Mutex<String>>,
}

/// Starts `cmd` in `/` with stderr collected by a thread (the pipe may outlive the
/// process: a `--daemon` child keeps it).
pub fn spawn_logged(mut cmd: Command) -> (Child, Arc<Mutex<String>>) {
    let mut child = cmd
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let mut stderr = child.stderr.take().unwrap();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (child, log)
}

impl Daemon {
    pub fn start(ns: &Netns, bin: &str, conf: &Path) -> Self {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.0, bin, "-c"]).arg(conf);
        Daemon::spawn(cmd)
    }

    /// Any command, with the same stderr collection and clean-up.
    pub fn spawn(cmd: Command) -> Self {
        let (child, log) = spawn_logged(cmd);
        Daemon { child, log }
    }

    /// Waits at most `limit` for the process to end.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until the collected stderr contains `text`.
    pub fn log_contains(&self, text: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.log().contains(text) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Our worker: the helper's child with the role argument.
    pub fn worker(&self) -> Option<i32> {
        let helper = self.pid();
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<i32>().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse::<i32>()
                .ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            (ppid == helper && String::from_utf8_lossy(&cmdline).contains("--privsep-worker-role"))
                .then_some(pid)
        })
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill on a pid we started and have not reaped.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits (bounded) until `cond` holds; panics with the log otherwise.
    pub fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM and wait (bounded: SIGKILL after 10 s).
    pub fn stop(mut self) -> (ExitStatus, String) {
        self.signal(libc::SIGTERM);
        self.reap()
    }

    /// Waits for the process to end (bounded: SIGKILL after 10 s).
    pub fn reap(&mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50));
                return (s, self.log());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal(libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn pid_gone(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                == Some("Z")
        })
        .unwrap_or(true)
}

/// A temporary directory with its physical path (hooks see that as their cwd).
pub fn tempdir() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = std::fs::canonicalize(d.path()).unwrap();
    (d, p)
}

pub fn write_exec(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    sh_ok("chmod", &["755", path.to_str().unwrap()]);
}

/// A clean stop on a signal ends, as with fastd, by that same signal (shell: 143/130/131).
pub fn assert_stopped_by(status: ExitStatus, signal: i32, log: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(signal), "{status:?}; log:\n{log}");
    assert!(!log.contains("exited unexpectedly"), "{log}");
}

/// `/proc/PID/status` field, whitespace normalized.
pub fn status_field(pid: i32, field: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| panic!("no {field} in status"))
}
