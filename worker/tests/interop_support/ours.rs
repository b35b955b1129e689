//! Our engine inside a namespace, driven without the privsep helper: [`DirectProvider`] opens
//! TUN/TAP devices and sockets itself and runs hooks with /bin/sh (the test runs as root in a
//! namespace, so the thread that owns the engine lives there).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs::OpenOptions;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use worker::config::{AddressFamily, Config, Loader, LogLevel, MemSource};
use worker::engine::{
    BoundSocket, Descriptors, Engine, HookCall, HookEnv, Iface, IfaceKind, IfaceRequest, Logger,
    PeerId, PeerStatus, Provider, Timings, Verdict,
};

use super::Netns;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
/// What the helper asks for on TUN devices (privsep/src/tun.rs), USO where the kernel has it.
const OFFLOADS: [libc::c_uint; 2] = [
    libc::TUN_F_CSUM
        | libc::TUN_F_TSO4
        | libc::TUN_F_TSO6
        | libc::TUN_F_TSO_ECN
        | libc::TUN_F_USO4
        | libc::TUN_F_USO6,
    libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN,
];

#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

pub struct DirectProvider {
    config: Config,
    /// Every hook call, for tests of the hook environment.
    pub calls: Arc<Mutex<Vec<HookCall>>>,
}

impl DirectProvider {
    pub fn new(config: Config) -> Self {
        DirectProvider {
            config,
            calls: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl Provider for DirectProvider {
    fn open_iface(&mut self, req: &IfaceRequest) -> io::Result<Iface> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")?;
        // Like the helper: TUN devices with a virtio-net header and offloads.
        let vnet = req.kind == IfaceKind::Tun;
        let mut ifr = IfReq {
            name: [0; 16],
            flags: IFF_NO_PI
                | if vnet {
                    IFF_TUN | IFF_VNET_HDR
                } else {
                    IFF_TAP
                },
            _pad: [0; 22],
        };
        if let Some(n) = &req.name {
            let b = n.as_bytes();
            ifr.name[..b.len().min(15)].copy_from_slice(&b[..b.len().min(15)]);
        }
        // SAFETY: TUNSETIFF reads and writes one ifreq, which ifr is (name + flags + padding).
        if unsafe { libc::ioctl(f.as_raw_fd(), TUNSETIFF, &mut ifr) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let offload = vnet.then(|| {
            OFFLOADS
                .into_iter()
                // SAFETY: TUNSETOFFLOAD takes its flags by value.
                .find(|flags| unsafe {
                    libc::ioctl(f.as_raw_fd(), libc::TUNSETOFFLOAD, libc::c_ulong::from(*flags))
                } == 0)
                .unwrap_or(0)
        });
        let len = ifr.name.iter().position(|b| *b == 0).unwrap_or(16);
        let name = String::from_utf8_lossy(&ifr.name[..len]).into_owned();
        let ok = Command::new("ip")
            .args(["link", "set", "dev", &name, "mtu", &req.mtu.to_string()])
            .status()?
            .success();
        if !ok {
            return Err(io::Error::other("setting the MTU failed"));
        }
        Ok(Iface {
            fd: OwnedFd::from(f),
            name,
            offload,
        })
    }

    fn peer_socket(&mut self, _peer: PeerId, remote: SocketAddr) -> io::Result<OwnedFd> {
        let s = if remote.is_ipv4() {
            UdpSocket::bind("0.0.0.0:0")?
        } else {
            UdpSocket::bind("[::]:0")?
        };
        Ok(OwnedFd::from(s))
    }

    fn run_hook(&mut self, call: &HookCall) -> io::Result<()> {
        self.calls.lock().unwrap().push(call.clone());
        let Some(hook) = self.config.hook_for(call.group, call.kind) else {
            return Ok(());
        };
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(&hook.command);
        let env = &call.env;
        if let Some(i) = &env.interface {
            c.env("INTERFACE", i);
        }
        if let Some(m) = env.interface_mtu {
            c.env("INTERFACE_MTU", m.to_string());
        }
        if let Some(n) = &env.peer_name {
            c.env("PEER_NAME", n);
        }
        let st = c.status()?;
        if !st.success() {
            return Err(io::Error::other(format!("hook exited with {st}")));
        }
        Ok(())
    }

    /// Test names: `<anything>.test` resolves to 198.51.100.1 (the alpha node).
    fn resolve(&mut self, host: &str, port: u16, _family: AddressFamily) -> Vec<SocketAddr> {
        if host.ends_with(".test") {
            vec![SocketAddr::from(([198, 51, 100, 1], port))]
        } else {
            Vec::new()
        }
    }

    fn verify(&mut self, env: &HookEnv) -> io::Result<Verdict> {
        let Some((hook, _)) = &self.config.on_verify else {
            return Ok(Verdict::Refused);
        };
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(&hook.command);
        if let Some(k) = env.peer_key {
            c.env(
                "PEER_KEY",
                k.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            );
        }
        Ok(Verdict::from(c.status()?.success()))
    }
}

pub fn parse_config(text: &str) -> Config {
    let src = MemSource::new().with_file("/fastd.conf", text);
    let mut l = Loader::new(&src);
    l.load_file(Path::new("/fastd.conf")).unwrap();
    l.finish().0
}

pub type EngineResult = Result<Vec<PeerStatus>, String>;

/// Our engine running on a thread inside a namespace; stopped on drop.
pub struct Ours {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<EngineResult>>,
    pub logs: Arc<Mutex<Vec<String>>>,
    pub status: Arc<Mutex<Vec<PeerStatus>>>,
    /// Hook calls the engine made.
    pub hooks: Arc<Mutex<Vec<HookCall>>>,
    reload: std::sync::mpsc::Sender<String>,
    /// The engine thread's kernel thread id (for pinning and its CPU time in /proc).
    pub tid: Arc<std::sync::atomic::AtomicI32>,
}

impl Ours {
    /// Starts the engine with `conf` (fastd syntax). `bind` sockets are opened here like the
    /// helper would; `timings` may shorten our timers.
    pub fn start(ns: &Netns, conf: &str, timings: Timings) -> Ours {
        let config = parse_config(conf);
        let stop = Arc::new(AtomicBool::new(false));
        let (logger, logs) = Logger::memory(LogLevel::Debug2);
        let status = Arc::new(Mutex::new(Vec::new()));
        let (st2, stop2) = (status.clone(), stop.clone());
        let hooks = Arc::new(Mutex::new(Vec::new()));
        let hooks2 = hooks.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (reload_tx, reload_rx) = std::sync::mpsc::channel::<String>();
        let tid = Arc::new(std::sync::atomic::AtomicI32::new(0));
        let tid2 = tid.clone();
        let handle = ns.spawn(move || -> EngineResult {
            // SAFETY: gettid has no arguments and no memory effects.
            tid2.store(unsafe { libc::gettid() }, Ordering::Relaxed);
            let mut sockets = Vec::new();
            for b in &config.binds {
                let addr: SocketAddr = match (&b.address, b.port) {
                    (worker::config::BindAddress::V4(a), Some(p)) => {
                        SocketAddr::new((*a).into(), p)
                    }
                    (worker::config::BindAddress::Any, Some(p)) => {
                        SocketAddr::new("::".parse().unwrap(), p)
                    }
                    (worker::config::BindAddress::V6 { addr, .. }, Some(p)) => {
                        SocketAddr::new((*addr).into(), p)
                    }
                    _ => continue,
                };
                let s = UdpSocket::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
                sockets.push(BoundSocket {
                    fd: OwnedFd::from(s),
                    addr,
                });
            }
            let desc = Descriptors {
                sockets,
                ..Descriptors::default()
            };
            let mut provider = DirectProvider::new(config.clone());
            provider.calls = hooks2;
            let e =
                Engine::new(&config, desc, provider, logger, timings).map_err(|e| e.to_string());
            let _ = ready_tx.send(());
            let mut e = e?;
            let mut last = Instant::now();
            while !stop2.load(Ordering::Relaxed) {
                e.poll_once(Duration::from_millis(100))
                    .map_err(|e| e.to_string())?;
                if let Ok(text) = reload_rx.try_recv() {
                    e.reload(&parse_config(&text)).map_err(|e| e.to_string())?;
                }
                if last.elapsed() > Duration::from_millis(100) {
                    *st2.lock().unwrap() = e.peer_status();
                    last = Instant::now();
                }
            }
            let st = e.peer_status();
            e.shutdown();
            Ok(st)
        });
        let _ = ready_rx.recv_timeout(Duration::from_secs(10));
        Ours {
            stop,
            handle: Some(handle),
            logs,
            status,
            hooks,
            reload: reload_tx,
            tid,
        }
    }

    /// Makes the engine reload with a new config text (as on SIGHUP).
    pub fn reload(&self, conf: &str) {
        self.reload.send(conf.to_owned()).unwrap();
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.log_text().contains(needle) {
                return true;
            }
            if self.handle.as_ref().is_some_and(|h| h.is_finished()) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn status(&self) -> Vec<PeerStatus> {
        self.status.lock().unwrap().clone()
    }

    /// Stops the engine and returns the final peer status.
    pub fn stop(mut self) -> EngineResult {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => h.join().map_err(|_| "engine thread panicked".to_owned())?,
            None => Err("already stopped".into()),
        }
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The real fastd as alpha on `lan.nodes[0]`, then our engine as anyremote on
/// `lan.nodes[1]` with `timings` (alpha first, so anyremote's first handshake is answered),
/// until fastd reports the session.
pub fn fastd_alpha_ours_anyremote(
    lan: &super::Lan,
    dir: &super::TempDir,
    alpha: &str,
    anyremote: &str,
    timings: Timings,
) -> (super::Fastd, Ours) {
    let f = super::Fastd::start(&lan.nodes[0], dir, "alpha", alpha);
    std::thread::sleep(Duration::from_millis(200));
    let ours = Ours::start(&lan.nodes[1], anyremote, timings);
    assert!(
        f.wait_log(
            "connection with <anyremote> established",
            Duration::from_secs(10)
        ),
        "{}\n{}",
        ours.log_text(),
        f.log_text()
    );
    (f, ours)
}
