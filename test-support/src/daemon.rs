//! Daemons in a namespace: [`Daemon`] (ours or the real fastd, stderr collected through a
//! pipe) and [`Fastd`] (the real fastd with its log in a file, restartable). Both are stopped
//! on drop (SIGTERM, bounded wait, then SIGKILL).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::{TempDir, FASTD};

/// SIGTERM, at most `grace` for the process to end, then SIGKILL; reaps it.
fn terminate(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(None)) {
        // SAFETY: kill on the pid of our own, not yet reaped child only sends a signal.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
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
        fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<i32>().ok()?;
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse::<i32>()
                .ok()?;
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
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
        terminate(&mut self.child, Duration::from_secs(5));
    }
}

pub fn pid_gone(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                == Some("Z")
        })
        .unwrap_or(true)
}

/// The real fastd running in a namespace; killed on drop. Its stderr goes to a log file.
pub struct Fastd {
    child: Option<Child>,
    pub log: PathBuf,
    pub conf: PathBuf,
    ns: String,
}

impl Fastd {
    pub fn start(ns: &Netns, dir: &TempDir, name: &str, conf: &str) -> Fastd {
        let conf_path = dir.write(&format!("{name}.conf"), conf);
        let log = dir.0.join(format!("{name}.log"));
        let mut f = Fastd {
            child: None,
            log,
            conf: conf_path,
            ns: ns.0.clone(),
        };
        f.restart();
        f
    }

    pub fn restart(&mut self) {
        self.stop();
        let logf = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, FASTD, "-c"])
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c, Duration::from_secs(5));
        }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The daemon's pid (`ip netns exec` execs fastd in place), for pinning and CPU time.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits (bounded) until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.log_text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn count_log(&self, needle: &str) -> usize {
        self.log_text().matches(needle).count()
    }
}

impl Drop for Fastd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A clean stop on a signal ends, as with fastd, by that same signal (shell: 143/130/131).
pub fn assert_stopped_by(status: ExitStatus, signal: i32, log: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(signal), "{status:?}; log:\n{log}");
    assert!(!log.contains("exited unexpectedly"), "{log}");
}

/// `/proc/PID/status` field, whitespace normalized.
pub fn status_field(pid: i32, field: &str) -> String {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| panic!("no {field} in status"))
}
