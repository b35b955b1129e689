//! Shared plumbing for the interop tests: network namespaces joined by veth (always torn down,
//! also on panic), the real fastd as a child process, and ping / TCP transfer helpers that run
//! on threads moved into a namespace (no external tools besides `ip` and `fastd`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod capture;
pub mod ours;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const FASTD: &str = "/usr/bin/fastd";

/// Whether the live tests can run here. In CI (CI=true) a missing prerequisite is a failure.
pub fn prerequisites() -> bool {
    let root = unsafe_free_is_root();
    let fastd = Path::new(FASTD).exists();
    let ip = Command::new("ip").arg("-V").output().is_ok();
    let ok = root && fastd && ip;
    if !ok {
        let msg = format!("interop prerequisites missing: root={root} fastd={fastd} ip={ip}");
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg}");
        }
        eprintln!("SKIP: {msg}");
    }
    ok
}

fn unsafe_free_is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique short tag for names of namespaces and temp dirs.
pub fn unique(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("fp{}{}{}", std::process::id() % 100000, tag, n)
}

/// A network namespace, deleted on drop (which also deletes the veth ends inside it).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn ip(&self, args: &[&str]) {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        run(&v);
    }

    pub fn try_ip(&self, args: &[&str]) -> bool {
        Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// A command inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `f` on a thread that lives in this namespace (sockets and TUN devices it creates
    /// belong here; processes it spawns start here).
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            enter_netns(&path);
            f()
        })
    }

    pub fn run_in<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.spawn(f).join().unwrap()
    }
}

pub fn enter_netns(path: &str) {
    let f = File::open(path).unwrap();
    // SAFETY: setns on a valid namespace fd only changes this thread's network namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
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
        let hub = Netns::new(format!("{base}h"));
        hub.ip(&["link", "add", "br0", "type", "bridge"]);
        hub.ip(&["link", "set", "br0", "up"]);
        let mut nodes = Vec::new();
        for i in 0..count {
            let ns = Netns::new(format!("{base}n{i}"));
            let hv = format!("v{i}");
            hub.ip(&[
                "link", "add", &hv, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
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

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique(tag));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Key pairs recorded from fastd v22.
pub fn keypairs() -> Vec<(String, String)> {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/keys.txt");
    fs::read_to_string(p)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_owned(), it.next()?.to_owned()))
        })
        .collect()
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
            ns: ns.name.clone(),
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
            // SAFETY: kill on the pid of our own child only sends a signal.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
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

/// A fastd config in the style of the tutorial. `listen` = bind address, `peers` = (name, key,
/// remote) lines, `tunnel` = the node's tunnel address/prefix.
pub struct ConfBuilder {
    pub mode: &'static str,
    pub methods: Vec<String>,
    pub secret: String,
    pub mtu: u16,
    pub bind: Option<String>,
    pub interface: String,
    pub tunnel: String,
    pub peers: Vec<(String, String, Option<String>)>,
    pub extra: String,
}

impl ConfBuilder {
    pub fn new(mode: &'static str, method: &str, secret: &str, tunnel: &str) -> ConfBuilder {
        ConfBuilder {
            mode,
            methods: vec![method.to_owned()],
            secret: secret.to_owned(),
            mtu: if mode == "tun" { 1448 } else { 1434 },
            bind: None,
            interface: "vpngateway".to_owned(),
            tunnel: tunnel.to_owned(),
            peers: Vec::new(),
            extra: String::new(),
        }
    }

    pub fn peer(mut self, name: &str, key: &str, remote: Option<&str>) -> Self {
        self.peers
            .push((name.to_owned(), key.to_owned(), remote.map(str::to_owned)));
        self
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        s += "log level debug2;\n";
        s += &format!("mode {};\n", self.mode);
        s += &format!("interface \"{}\";\n", self.interface);
        for m in &self.methods {
            s += &format!("method \"{m}\";\n");
        }
        if let Some(b) = &self.bind {
            s += &format!("bind {b};\n");
        }
        s += &format!("secret \"{}\";\n", self.secret);
        s += &format!("mtu {};\n", self.mtu);
        s += &format!(
            "on up \"ip link set $INTERFACE up; ip addr add {} dev $INTERFACE\";\n",
            self.tunnel
        );
        s += &self.extra;
        for (name, key, remote) in &self.peers {
            s += &format!("peer \"{name}\" {{\n  key \"{key}\";\n");
            if let Some(r) = remote {
                s += &format!("  remote {r};\n");
            }
            s += "}\n";
        }
        s
    }
}

fn icmp_checksum(b: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in b.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from(c[0]) << 8
        };
        sum += u32::from(w);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends ICMP echo requests from inside `ns` to `dst` (one per 50 ms) until a reply arrives
/// or `timeout` passes. Returns the round-trip time of the first reply.
pub fn ping(ns: &Netns, dst: Ipv4Addr, size: usize, timeout: Duration) -> Option<Duration> {
    ns.run_in(move || {
        // SAFETY: plain socket creation.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_ICMP,
            )
        };
        assert!(fd >= 0);
        // SAFETY: fd is a fresh descriptor we own.
        let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        // SAFETY: valid fd, pointer to a live timeval.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        let id = (std::process::id() as u16) ^ (COUNTER.fetch_add(1, Ordering::Relaxed) as u16);
        let start = Instant::now();
        let mut seq = 0u16;
        while start.elapsed() < timeout {
            seq = seq.wrapping_add(1);
            let mut pkt = vec![0u8; 8 + size];
            pkt[0] = 8;
            pkt[4..6].copy_from_slice(&id.to_be_bytes());
            pkt[6..8].copy_from_slice(&seq.to_be_bytes());
            for (i, b) in pkt[8..].iter_mut().enumerate() {
                *b = i as u8;
            }
            let c = icmp_checksum(&pkt);
            pkt[2..4].copy_from_slice(&c.to_be_bytes());
            let sent_at = Instant::now();
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(dst).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: live buffers of the advertised sizes.
            unsafe {
                libc::sendto(
                    sock.as_raw_fd(),
                    pkt.as_ptr().cast(),
                    pkt.len(),
                    0,
                    (&sin as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as u32,
                )
            };
            let wait_end = sent_at + Duration::from_millis(50);
            while Instant::now() < wait_end {
                let mut buf = [0u8; 70000];
                // SAFETY: buf is live and writable.
                let n =
                    unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n <= 0 {
                    break;
                }
                let n = n as usize;
                let ihl = usize::from(buf[0] & 0x0f) * 4;
                if n >= ihl + 8
                    && buf[ihl] == 0
                    && buf[ihl + 4..ihl + 6] == id.to_be_bytes()
                    && buf[12..16] == dst.octets()
                    && n - ihl - 8 == size
                {
                    return Some(sent_at.elapsed());
                }
            }
        }
        None
    })
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends `len` pseudo-random bytes over TCP from `client` to an echo server in `server` at
/// `addr` and checks that exactly the same bytes come back. Bounded by `timeout`.
pub fn tcp_echo(
    server: &Netns,
    client: &Netns,
    addr: SocketAddr,
    len: usize,
    timeout: Duration,
) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let srv = server.spawn(move || -> Result<(), String> {
        let l = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
        tx.send(()).ok();
        l.set_nonblocking(false).ok();
        let (mut s, _) = l.accept().map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(timeout)).ok();
        let mut buf = vec![0u8; 65536];
        loop {
            let n = s.read(&mut buf).map_err(|e| format!("server read: {e}"))?;
            if n == 0 {
                return Ok(());
            }
            s.write_all(&buf[..n])
                .map_err(|e| format!("server write: {e}"))?;
        }
    });
    rx.recv_timeout(Duration::from_secs(5))
        .map_err(|_| "server did not start".to_owned())?;
    let data = pattern(len, 0x9e37_79b9_7f4a_7c15);
    let cli = client.spawn(move || -> Result<(), String> {
        let s = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(timeout)).ok();
        s.set_write_timeout(Some(timeout)).ok();
        let mut w = s.try_clone().map_err(|e| e.to_string())?;
        let expect = data.clone();
        let writer = std::thread::spawn(move || -> Result<(), String> {
            w.write_all(&data)
                .map_err(|e| format!("client write: {e}"))?;
            w.shutdown(std::net::Shutdown::Write)
                .map_err(|e| e.to_string())
        });
        let mut got = Vec::with_capacity(len);
        let mut r = s;
        r.read_to_end(&mut got)
            .map_err(|e| format!("client read after {} bytes: {e}", got.len()))?;
        writer.join().map_err(|_| "writer panicked".to_owned())??;
        if got.len() != expect.len() {
            return Err(format!("echo length {} != {}", got.len(), expect.len()));
        }
        if got != expect {
            return Err("echoed bytes differ".to_owned());
        }
        Ok(())
    });
    let c = cli.join().map_err(|_| "client panicked".to_owned())?;
    let s = srv.join().map_err(|_| "server panicked".to_owned())?;
    c.and(s)
}

/// Lines of a fastd log that indicate packet problems.
pub fn packet_errors(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            let l2 = l.to_ascii_lowercase();
            (l2.contains("verification failed") || l2.contains("invalid") || l2.contains("failed"))
                && !l2.contains("resolving")
                && !l2.contains("invalidating old session")
        })
        .map(str::to_owned)
        .collect()
}
