#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A compromised worker that floods the helper with requests and never reads a reply
//! must not wedge it: the helper kills the worker, runs the teardown (post-down) and
//! exits non-zero, and SIGTERM keeps working throughout.
//!
//! The real helper loop (`privsep::run`) runs in a child process of this test binary;
//! it starts `/proc/self/exe --privsep-worker-role`, which is this binary again, where
//! `main` plays the hostile worker. The scenario travels as the helper's command line,
//! which the helper hands to the worker in `Start`.

use policy::*;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use test_support::manifest;

const HELPER_ENV: &str = "FPS_WEDGED_WORKER_HELPER";
/// Requests the worker sends at most; far more than the socket buffer and the helper's
/// queue together hold.
const FLOOD: usize = 20_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(privsep::WORKER_ROLE_ARG) {
        fake_worker();
        std::process::exit(0);
    }
    if std::env::var_os(HELPER_ENV).is_some() {
        let code = privsep::run(args[1..].to_vec(), Default::default());
        std::process::exit(code);
    }
    if !test_support::ready(&[]) {
        return;
    }
    for (name, test) in [
        (
            "flooding_worker_is_killed_and_torn_down",
            flooding_worker_is_killed_and_torn_down as fn(),
        ),
        ("sigterm_works_during_a_flood", sigterm_works_during_a_flood),
    ] {
        eprintln!("test {name} ...");
        test();
        eprintln!("test {name} ... ok");
    }
}

fn recv(sock: &OwnedFd, buf: &mut [u8]) -> FromHelper {
    let n =
        nix::sys::socket::recv(sock.as_raw_fd(), buf, nix::sys::socket::MsgFlags::empty()).unwrap();
    decode(&buf[..n]).unwrap()
}

fn send(sock: &OwnedFd, req: &Request, flags: nix::sys::socket::MsgFlags) -> nix::Result<usize> {
    nix::sys::socket::send(sock.as_raw_fd(), &encode(req).unwrap(), flags)
}

fn manifest(dir: &str) -> Manifest {
    manifest::one_hook(dir, HookKind::PostDown, "echo down > post-down.marker")
}

/// The hostile worker: seal a manifest, then send requests (each refused, so each gets
/// a reply) without ever reading one.
fn fake_worker() {
    // SAFETY: the helper put our end of the socket on fd 3 and nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(privsep::WORKER_FD) };
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    let FromHelper::Notice(Notice::Start { args, .. }) = recv(&sock, &mut buf) else {
        return;
    };
    let dir = args[0].clone();
    let m = Request::Manifest(Box::new(manifest(&dir)));
    send(&sock, &m, nix::sys::socket::MsgFlags::empty()).unwrap();
    assert_eq!(recv(&sock, &mut buf), Response::Sealed.into());
    std::fs::write(
        Path::new(&dir).join("flooding"),
        std::process::id().to_string(),
    )
    .unwrap();
    let refused = Request::ResolveDir {
        path: AbsPath::new("/").unwrap(),
    };
    let mut sent = 0;
    let mut waits = 0;
    while sent < FLOOD && waits < 3000 {
        match send(&sock, &refused, nix::sys::socket::MsgFlags::MSG_DONTWAIT) {
            Ok(_) => sent += 1,
            Err(nix::errno::Errno::EAGAIN) => {
                // The helper stopped reading: it is stuck, or about to kill us.
                waits += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => return,
        }
    }
    // Hold the socket open without reading, as a wedged worker would.
    std::thread::sleep(Duration::from_secs(120));
}

struct Helper {
    child: Option<Child>,
    log: std::path::PathBuf,
}

impl Helper {
    fn start(dir: &Path) -> Self {
        let log = dir.join("helper.log");
        let child = Command::new(std::env::current_exe().unwrap())
            .arg(dir)
            .env(HELPER_ENV, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self {
            child: Some(child),
            log,
        }
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn log(&self) -> String {
        let mut s = String::new();
        std::fs::File::open(&self.log)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if c.try_wait().ok().flatten().is_none() {
                // Its worker dies with it (PDEATHSIG).
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn wait_for(path: &Path) {
    for _ in 0..600 {
        if path.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} did not appear", path.display());
}

fn assert_torn_down(dir: &Path, helper: &Helper, status: Option<ExitStatus>) {
    let full = helper.log();
    let lines: Vec<&str> = full.lines().collect();
    let log = lines[lines.len().saturating_sub(20)..].join("\n");
    let status = status.unwrap_or_else(|| panic!("the helper is wedged; its log ends:\n{log}"));
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        dir.join("post-down.marker").exists(),
        "post-down did not run:\n{log}"
    );
    let worker: i32 = std::fs::read_to_string(dir.join("flooding"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        !Path::new(&format!("/proc/{worker}")).exists(),
        "the worker still runs"
    );
}

fn flooding_worker_is_killed_and_torn_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut helper = Helper::start(dir.path());
    wait_for(&dir.path().join("flooding"));
    let status = helper.wait_exit(Duration::from_secs(60));
    assert_torn_down(dir.path(), &helper, status);
    let log = helper.log();
    assert!(log.contains("does not read its replies"), "{log}");
    // Thousands of refusals, a bounded number of log lines and a summary.
    let lines = log.matches("refused request from the worker").count();
    let limit = privsep::log::REFUSALS_PER_INTERVAL as usize;
    assert!((1..=limit).contains(&lines), "{lines} refusal lines");
    assert!(
        log.contains("refusals"),
        "no summary of the suppressed refusals"
    );
}

fn sigterm_works_during_a_flood() {
    let dir = tempfile::tempdir().unwrap();
    let mut helper = Helper::start(dir.path());
    wait_for(&dir.path().join("flooding"));
    std::thread::sleep(Duration::from_millis(200));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(helper.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = helper.wait_exit(Duration::from_secs(60));
    assert_torn_down(dir.path(), &helper, status);
}
