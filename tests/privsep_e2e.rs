#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The privilege split end to end, with the real binary, inside a network namespace
//! made for each test (nothing touches the host). Needs root: fails under CI=true when
//! not root, skips otherwise.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fastd-privsep");
const IFACE: &str = "fpstest0";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs these as root; they must not skip"
        );
        eprintln!("skipped: needs root");
    }
    root
}

/// A network namespace that is deleted even when the test fails.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Self {
        let name = format!("fpst-{}-{tag}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        assert!(Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success());
        Netns(name)
    }

    fn ip(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.0)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    fn has_link(&self, name: &str) -> bool {
        self.ip(&["link", "show", name]).0
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

struct Daemon {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    /// Start the helper (it starts the worker) and wait until the `up` hook ran.
    fn start(ns: &Netns, dir: &Path) -> Self {
        let _ = std::fs::remove_file(dir.join("up.done"));
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.0, BIN, "-c"])
            .arg(dir.join("fastd.conf"))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // A pipe, not a file: the worker's RLIMIT_FSIZE 0 forbids writing to files.
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
        let d = Daemon { child, log };
        d.wait_for(|| dir.join("up.done").exists(), "the up hook");
        d
    }

    fn wait_for(&self, cond: impl Fn() -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn worker(&self) -> i32 {
        let helper = self.pid();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if ppid == Some(helper)
                && String::from_utf8_lossy(&cmdline).contains("--privsep-worker-role")
            {
                return pid;
            }
        }
        panic!("no worker found; log:\n{}", self.log());
    }

    fn signal(&self, pid: i32, sig: i32) {
        // SAFETY: kill on a pid we started.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    fn wait(mut self) -> (ExitStatus, String) {
        let status = self.child.wait().unwrap();
        // Let the reader thread drain what is left.
        std::thread::sleep(Duration::from_millis(50));
        (status, self.log())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const KEY_ALPHA_SECRET: &str = "5035de5b4ea448b74e9a373765207095057a9485fd9dca5fadb9c1b86347bd75";
const KEY_ANY_PUBLIC: &str = "2598c5d7e72f171731658ce35734ff7599e1840367422e1a9c5943c327ab5ea9";

/// The tutorial's alpha in TUN mode, with hooks that log to `hooks.log` in the config's
/// directory (relative paths: hooks run there, as in fastd).
fn setup(dir: &Path) {
    let conf = format!(
        r#"log to stderr level debug;
mode tun;
interface "{IFACE}";
method "salsa2012+umac";
bind 127.0.0.1:10000;
secret "{KEY_ALPHA_SECRET}";
mtu 1448;
status socket "{status}";
on pre-up "echo pre-up >> hooks.log";
on up "./interface-up";
on down "echo down $INTERFACE $PEER_NAME >> hooks.log";
on post-down "echo post-down >> hooks.log";
peer "anyremote" {{ key "{KEY_ANY_PUBLIC}"; }}
"#,
        status = dir.join("status.sock").display()
    );
    std::fs::write(dir.join("fastd.conf"), conf).unwrap();
    let up = "#!/bin/sh\nip addr add 172.16.16.1/24 dev \"$INTERFACE\"\n\
              echo \"up $INTERFACE $INTERFACE_MTU $PEER_NAME $(id -u)\" >> hooks.log\ntouch up.done\n";
    std::fs::write(dir.join("interface-up"), up).unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(dir.join("interface-up"))
        .status()
        .unwrap();
}

fn hooks_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("hooks.log")).unwrap_or_default()
}

fn status_field(pid: i32, field: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| panic!("no {field} in status"))
}

fn tempdir() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = std::fs::canonicalize(d.path()).unwrap();
    (d, p)
}

#[test]
fn worker_is_sandboxed_holds_only_its_descriptors_and_stops_in_order() {
    if !is_root() {
        return;
    }
    let ns = Netns::new("sandbox");
    let (_keep, dir) = tempdir();
    setup(&dir);
    let d = Daemon::start(&ns, &dir);
    let w = d.worker();

    for f in ["Uid", "Gid"] {
        assert!(
            !status_field(w, f).split(' ').any(|id| id == "0"),
            "{f}: {}",
            status_field(w, f)
        );
    }
    for f in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(w, f), "0000000000000000", "{f}");
    }
    assert_eq!(status_field(w, "NoNewPrivs"), "1");
    assert_eq!(status_field(w, "Seccomp"), "2");

    // fd 0-2 are stdio; from 3 on only the IPC socket, the UDP socket, the status
    // socket and the device.
    let mut targets: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{w}/fd"))
        .unwrap()
        .flatten()
        .map(|e| {
            let fd: i32 = e.file_name().to_string_lossy().parse().unwrap();
            (
                fd,
                std::fs::read_link(e.path()).unwrap().display().to_string(),
            )
        })
        .filter(|(fd, _)| *fd > 2)
        .collect();
    targets.sort();
    // The event loops' own epoll instances (the engine's, the status socket's mio poll)
    // hold no resource the helper handed out.
    let polls = targets
        .iter()
        .filter(|(_, t)| t == "anon_inode:[eventpoll]")
        .count();
    assert!(polls <= 2, "{targets:?}");
    targets.retain(|(_, t)| t != "anon_inode:[eventpoll]");
    let sockets = targets
        .iter()
        .filter(|(_, t)| t.starts_with("socket:"))
        .count();
    let tuns = targets.iter().filter(|(_, t)| t == "/dev/net/tun").count();
    assert_eq!((sockets, tuns, targets.len()), (3, 1, 4), "{targets:?}");
    assert!(
        targets[0].0 == 3 && targets[0].1.starts_with("socket:"),
        "{targets:?}"
    );

    // The tutorial's up hook ran as root, in the config's directory, and configured the
    // address on the interface the helper created with the configured MTU.
    let (_, link) = ns.ip(&["link", "show", IFACE]);
    assert!(link.contains("mtu 1448") && link.contains(",UP"), "{link}");
    let (_, addr) = ns.ip(&["-4", "addr", "show", IFACE]);
    assert!(addr.contains("172.16.16.1/24"), "{addr}");
    assert!(dir.join("status.sock").exists());

    // SIGHUP reaches the worker as a Reload notice (helper and worker both log it).
    d.signal(d.pid(), libc::SIGHUP);
    d.wait_for(
        || d.log().matches("reconfigure triggered").count() == 2,
        "the reload notice",
    );

    d.signal(d.pid(), libc::SIGTERM);
    let (status, log) = d.wait();
    assert_eq!(status.code(), Some(0), "{log}");
    assert_eq!(
        hooks_log(&dir),
        format!("pre-up\nup {IFACE} 1448 anyremote 0\ndown {IFACE} anyremote\npost-down\n"),
        "{log}"
    );
    assert!(!ns.has_link(IFACE), "device left behind");
    assert!(
        !dir.join("status.sock").exists(),
        "status socket left behind"
    );
}

#[test]
fn killing_the_worker_runs_the_down_hooks_removes_the_device_and_fails() {
    if !is_root() {
        return;
    }
    let ns = Netns::new("killworker");
    let (_keep, dir) = tempdir();
    setup(&dir);
    let d = Daemon::start(&ns, &dir);
    assert!(ns.has_link(IFACE));
    d.signal(d.worker(), libc::SIGKILL);
    let (status, log) = d.wait();
    assert_ne!(status.code(), Some(0), "{log}");
    assert!(log.contains("the worker exited unexpectedly"), "{log}");
    let hooks = hooks_log(&dir);
    assert!(
        hooks.ends_with(&format!("down {IFACE} anyremote\npost-down\n")),
        "{hooks}"
    );
    assert!(!ns.has_link(IFACE), "device left behind");

    // A restart finds nothing stale.
    std::fs::remove_file(dir.join("hooks.log")).unwrap();
    let d = Daemon::start(&ns, &dir);
    assert!(ns.has_link(IFACE));
    d.signal(d.pid(), libc::SIGINT);
    let (status, log) = d.wait();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(!ns.has_link(IFACE));
}

#[test]
fn killing_the_helper_ends_the_worker_and_a_restart_is_clean() {
    if !is_root() {
        return;
    }
    let ns = Netns::new("killhelper");
    let (_keep, dir) = tempdir();
    setup(&dir);
    let d = Daemon::start(&ns, &dir);
    let w = d.worker();
    d.signal(d.pid(), libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(1);
    // The worker is our grandchild; once it exits it is reaped by init, so its /proc
    // entry goes away (or turns into a zombie of the dead helper's parent).
    let gone = || {
        std::fs::read_to_string(format!("/proc/{w}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().next())
                    == Some("Z")
            })
            .unwrap_or(true)
    };
    while !gone() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        gone(),
        "worker still running a second after the helper died"
    );
    let (_status, _log) = d.wait();
    // Both descriptors of the non-persistent device are closed now: it is gone.
    assert!(!ns.has_link(IFACE), "device left behind");

    let d = Daemon::start(&ns, &dir);
    let (_, links) = ns.ip(&["link"]);
    assert_eq!(links.matches(IFACE).count(), 1, "{links}");
    d.signal(d.pid(), libc::SIGTERM);
    let (status, log) = d.wait();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("removing old status socket"), "{log}");
    assert!(!ns.has_link(IFACE));
}
