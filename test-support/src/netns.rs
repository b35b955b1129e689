//! Network namespaces with unique names, veth links between them and a bridged LAN; every
//! namespace is deleted on drop (with its veth ends and TUN devices), also when a test panics.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A unique short tag for names of namespaces and temporary directories.
pub fn unique(tag: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("fp{}{}{}", std::process::id() % 100000, tag, n)
}

/// A command that must succeed.
pub fn sh_ok(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "`{cmd} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace, deleted on drop.
pub struct Netns(pub String);

impl Netns {
    /// A namespace with a unique name made from `tag`.
    pub fn new(tag: &str) -> Self {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        Netns::named(format!("fpe-{}-{n}-{tag}", std::process::id()))
    }

    /// A namespace called `name` (a stale one of that name is deleted first), `lo` up.
    pub fn named(name: String) -> Self {
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        sh_ok("ip", &["netns", "add", &name]);
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.0
    }

    /// `ip -n NS ARGS`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let mut v = vec!["-n", &self.0];
        v.extend_from_slice(args);
        sh_ok("ip", &v);
    }

    /// `ip -n NS ARGS`; whether it succeeded.
    pub fn try_ip(&self, args: &[&str]) -> bool {
        Command::new("ip")
            .args(["-n", &self.0])
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// A command inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, program]);
        c
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

    /// One `ping` (the tool) with a 1 s wait.
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

    /// Runs `f` on a thread that lives in this namespace (sockets and TUN devices it creates
    /// belong here; processes it spawns start here).
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            enter_netns(&path);
            f()
        })
    }

    pub fn run_in<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.spawn(f).join().unwrap()
    }

    /// Runs `f` on a scoped thread that has entered this namespace (netlink sockets and
    /// /proc/sys/net opened there belong to it); `f` may borrow from the caller.
    pub fn enter<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        std::thread::scope(|s| {
            s.spawn(move || {
                self.join_here();
                f()
            })
            .join()
            .unwrap()
        })
    }

    /// Moves the calling thread into this namespace.
    pub fn join_here(&self) {
        enter_netns(&format!("/run/netns/{}", self.0));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

/// Moves the calling thread into the namespace at `path`.
pub fn enter_netns(path: &str) {
    let f = File::open(path).unwrap();
    // SAFETY: setns on a valid namespace fd only changes this thread's network namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
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

/// Namespaces on one underlay segment: a bridge in a hub namespace, each node attached by a
/// veth, node i has 198.51.100.(i+1)/24 on `eth0`.
pub struct Lan {
    pub nodes: Vec<Netns>,
    pub hub: Netns,
}

impl Lan {
    pub fn new(tag: &str, count: usize) -> Lan {
        let base = unique(tag);
        let hub = Netns::named(format!("{base}h"));
        hub.ip(&["link", "add", "br0", "type", "bridge"]);
        hub.ip(&["link", "set", "br0", "up"]);
        let mut nodes = Vec::new();
        for i in 0..count {
            let ns = Netns::named(format!("{base}n{i}"));
            let hv = format!("v{i}");
            hub.ip(&[
                "link", "add", &hv, "type", "veth", "peer", "name", "eth0", "netns", &ns.0,
            ]);
            hub.ip(&["link", "set", &hv, "master", "br0", "up"]);
            ns.ip(&[
                "addr",
                "add",
                &format!("198.51.100.{}/24", i + 1),
                "dev",
                "eth0",
            ]);
            ns.ip(&["link", "set", "eth0", "up"]);
            nodes.push(ns);
        }
        Lan { nodes, hub }
    }

    pub fn underlay(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 51, 100, (i + 1) as u8)
    }
}

/// Two namespaces joined by `veth0`: the first has 192.0.2.1/24, the second 192.0.2.2/24
/// (the tutorial's alpha and anyremote).
pub fn veth_pair(a_tag: &str, b_tag: &str) -> (Netns, Netns) {
    let a = Netns::new(a_tag);
    let b = Netns::new(b_tag);
    link(&a, "veth0", "192.0.2.1/24", &b, "veth0", "192.0.2.2/24");
    (a, b)
}

/// The temporary directories behind [`sides`]' paths.
pub type Dirs = (tempfile::TempDir, tempfile::TempDir);

/// A [`veth_pair`] and a config directory for each side (physical paths, see
/// [`crate::tempdir`]): `(a, b, a_dir, b_dir, dirs)`; keep `dirs` bound as long as the paths
/// are used.
pub fn sides(a_tag: &str, b_tag: &str) -> (Netns, Netns, PathBuf, PathBuf, Dirs) {
    let (a, b) = veth_pair(a_tag, b_tag);
    let (ta, da) = crate::tempdir();
    let (tb, db) = crate::tempdir();
    (a, b, da, db, (ta, tb))
}
