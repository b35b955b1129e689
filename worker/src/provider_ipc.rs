//! The worker after start-up: the packet engine with its privileged side over the helper
//! socket. [`IpcProvider`] turns the engine's requests (interfaces, per-connection
//! sockets, hooks) into [`Request`]s; [`run`] drives the engine's loop, answers `Stop`,
//! serves the status socket and sends the gateway requests of issue 5:
//! - addresses after a device is opened and before its `on up` ([`interface_created`]);
//! - `Masquerade` once, after sealing;
//! - `PinHostRoute` + `RedirectGateway` when a peer with `redirect gateway` is
//!   established (again `PinHostRoute` when it floats), `Unredirect` when it is not.
//!
//! Established/disestablished are observed from the engine's peer table after each loop
//! turn (at most every [`SYNC_INTERVAL`]), so it works with and without hook scripts.

use crate::bootstrap::{Device, HookIds, Started};
use crate::config::{AddressFamily, Config, HookKind as CfgHook, LogLevel, Remote};
use crate::engine::{
    BoundSocket, Descriptors, Engine, HookCall, Iface, IfaceRequest, Logger, PeerStatus, Provider,
    Timings, Traffic, Verdict,
};
use crate::helper_client::{HelperClient, HelperSource, HookRun, IpcError, VerifyRun};
use crate::runtime::gateway::{interface_created, label};
use crate::status::{
    ConnectionStatus, Counter, MacAddress, ModeStatus, PeerAddress, PeerStatus as StatusPeer,
    Statistics, StatusServer, StatusSnapshot,
};
use policy::gateway::{
    nft_table_name, Family, GatewayManifest, GatewayRequest, IpNet, Masquerade, PeerGateway,
    PinHostRoute, RedirectGateway,
};
use policy::{
    HookEnv, HookKind, IfName, Manifest, Mode, Mtu, Notice, PeerId, PeerName, PeerRef, PeerSpec,
    PublicKey,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::ToSocketAddrs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the peer table is compared for gateway changes.
const SYNC_INTERVAL: Duration = Duration::from_millis(20);
/// The longest the loop waits before looking at notices and timers again.
const MAX_WAIT: Duration = Duration::from_millis(500);
/// Bound on helper notices handled in one loop turn (the helper has at most 64
/// asynchronous hooks out, so a turn normally drains them all).
const MAX_NOTICES_PER_TURN: usize = 256;
/// Token of the status socket in its own mio poll.
const STATUS_TOKEN: mio::Token = mio::Token(1000);

type Shared = Rc<RefCell<HelperClient>>;

type HostKey = (String, u16, AddressFamily);

/// Host names of `remote` statements, resolved once before the sandbox (the sandbox has
/// no sockets of its own and no files): PRIVSEP-DESIGN's first version. They are not
/// re-resolved later; a peer whose name pointed nowhere at start stays unreachable.
static RESOLVED: Mutex<Vec<(HostKey, Vec<SocketAddr>)>> = Mutex::new(Vec::new());

/// Resolves every hostname remote of `config` (system resolver). Call in stage 1, after
/// parsing and before `sandbox::enter`.
pub fn preresolve(config: &Config) {
    let mut out = Vec::new();
    for r in config.peers.iter().flat_map(|p| p.remotes.iter()) {
        let Remote::Host { name, port, family } = r else {
            continue;
        };
        let name = name.to_string_lossy().into_owned();
        let addrs: Vec<SocketAddr> = (name.as_str(), *port)
            .to_socket_addrs()
            .map(|it| {
                it.filter(|a| match family {
                    AddressFamily::Any => true,
                    AddressFamily::Ipv4 => a.is_ipv4(),
                    AddressFamily::Ipv6 => a.is_ipv6(),
                })
                .collect()
            })
            .unwrap_or_default();
        if addrs.is_empty() {
            eprintln!("Warning: resolving host `{name}' failed");
        }
        out.push(((name, *port, *family), addrs));
    }
    if let Ok(mut r) = RESOLVED.lock() {
        *r = out;
    }
}

fn io_err(e: IpcError) -> io::Error {
    match e {
        IpcError::Failed(reason, Some(errno)) => {
            io::Error::new(io::Error::from_raw_os_error(errno).kind(), reason)
        }
        other => io::Error::other(other.to_string()),
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

/// The engine's privileged side: everything goes to the helper.
pub struct IpcProvider {
    channel: Shared,
    manifest: Rc<Manifest>,
    hooks: HookIds,
    /// Devices the start-up opened (their `on up` ran already), handed out once.
    pre_opened: Vec<Device>,
    /// Peers whose next `on up` is the one start-up ran already.
    up_ran: Vec<u32>,
    log: Logger,
}

impl IpcProvider {
    fn spec(&self, peer: Option<crate::engine::PeerId>) -> Option<&PeerSpec> {
        peer.and_then(|p| self.manifest.peers.get(usize::try_from(p.0).ok()?))
    }
}

fn hook_kind(k: CfgHook) -> HookKind {
    match k {
        CfgHook::Up => HookKind::Up,
        CfgHook::Down => HookKind::Down,
        CfgHook::Connect => HookKind::Connect,
        CfgHook::Establish => HookKind::Establish,
        CfgHook::Disestablish => HookKind::Disestablish,
    }
}

fn unspecified_like(a: &SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    }
}

/// The typed environment the helper renders; addresses only where fastd sets them.
fn hook_env(kind: HookKind, call: &HookCall) -> io::Result<HookEnv> {
    let e = &call.env;
    let mut env = HookEnv {
        interface: e
            .interface
            .as_deref()
            .map(IfName::new)
            .transpose()
            .map_err(invalid)?,
        interface_mtu: e
            .interface_mtu
            .map(|m| Mtu::new(m.into()))
            .transpose()
            .map_err(invalid)?,
        peer_key: e.peer_key.map(PublicKey),
        peer_name: e
            .peer_name
            .as_deref()
            .map(PeerName::new)
            .transpose()
            .map_err(invalid)?,
        local: e.local,
        peer: e.remote,
    };
    match kind {
        HookKind::Up | HookKind::Down => {
            env.local = None;
            env.peer = None;
        }
        _ => {
            // Before the first reply the local address is not known yet; fastd then
            // reports the unspecified address.
            if let (None, Some(r)) = (env.local, env.peer) {
                env.local = Some(unspecified_like(&r));
            }
        }
    }
    Ok(env)
}

impl Provider for IpcProvider {
    fn open_iface(&mut self, req: &IfaceRequest) -> io::Result<Iface> {
        let peer_idx = req.peer.map(|p| p.0);
        let pre = self
            .pre_opened
            .iter()
            .position(|d| d.peer.map(|p| p.0) == peer_idx);
        if let Some(i) = pre {
            let d = self.pre_opened.swap_remove(i);
            self.up_ran.extend(peer_idx);
            return Ok(Iface {
                fd: d.fd,
                name: d.name.as_str().to_owned(),
            });
        }
        let name = req
            .name
            .as_deref()
            .map(IfName::new)
            .transpose()
            .map_err(invalid)?;
        let mtu = Mtu::new(req.mtu.into()).map_err(invalid)?;
        let mode = self.manifest.mode;
        let owner = match (mode, &req.owner) {
            (Mode::Tap, _) | (_, None) => None,
            (_, Some((key, name))) => Some(PeerRef {
                key: PublicKey(*key),
                name: name
                    .as_deref()
                    .map(PeerName::new)
                    .transpose()
                    .map_err(invalid)?,
            }),
        };
        let (fd, name) = self
            .channel
            .borrow_mut()
            .open_tun(name, mode, mtu, owner)
            .map_err(io_err)?;
        let manifest = Rc::clone(&self.manifest);
        interface_created(
            &mut self.channel.borrow_mut(),
            &self.log,
            &manifest,
            &name,
            self.spec(req.peer),
        );
        Ok(Iface {
            fd,
            name: name.as_str().to_owned(),
        })
    }

    fn peer_socket(
        &mut self,
        peer: crate::engine::PeerId,
        remote: SocketAddr,
    ) -> io::Result<OwnedFd> {
        let template = self
            .manifest
            .binds
            .iter()
            .find(|b| b.template && b.addr.is_ipv4() == remote.is_ipv4());
        let (addr, interface) = match template {
            Some(b) => (SocketAddr::new(b.addr.ip(), 0), b.interface.clone()),
            None => (unspecified_like(&remote), None),
        };
        let mark = self.manifest.packet_mark;
        let mut ch = self.channel.borrow_mut();
        let (fd, _) = ch
            .bind_udp(addr, interface, mark, Some(PeerId(peer.0)))
            .map_err(io_err)?;
        Ok(fd)
    }

    fn run_hook(&mut self, call: &HookCall) -> io::Result<()> {
        let kind = hook_kind(call.kind);
        if kind == HookKind::Up {
            let idx = call.peer.map(|p| p.0);
            if let Some(i) = self.up_ran.iter().position(|p| Some(*p) == idx) {
                self.up_ran.swap_remove(i);
                return Ok(());
            }
        }
        let Some(hook) = self.hooks.get(&(call.group.0, kind)).copied() else {
            return Ok(());
        };
        let env = hook_env(kind, call)?;
        match self
            .channel
            .borrow_mut()
            .run_hook(hook, env)
            .map_err(io_err)?
        {
            // The engine keeps the hook until the helper sends `HooksFree`.
            HookRun::Busy => Err(io::ErrorKind::WouldBlock.into()),
            HookRun::Done(_) => Ok(()),
        }
    }

    fn resolve(&mut self, host: &str, port: u16, family: AddressFamily) -> Vec<SocketAddr> {
        let Ok(r) = RESOLVED.lock() else {
            return Vec::new();
        };
        r.iter()
            .find(|((h, p, f), _)| h == host && *p == port && *f == family)
            .map(|(_, a)| a.clone())
            .unwrap_or_default()
    }

    fn close_iface(&mut self, name: &str) {
        let Ok(name) = IfName::new(name) else { return };
        if let Err(e) = self.channel.borrow_mut().close_tun(name) {
            self.log
                .log(LogLevel::Warn, || format!("unable to close interface: {e}"));
        }
    }

    fn verify(&mut self, env: &crate::engine::HookEnv) -> io::Result<Verdict> {
        let Some(hook) = self
            .hooks
            .iter()
            .find_map(|((_, k), id)| (*k == HookKind::Verify).then_some(*id))
        else {
            return Ok(Verdict::Refused);
        };
        let call = HookCall {
            kind: CfgHook::Connect,
            peer: None,
            group: crate::config::GroupId::ROOT,
            env: env.clone(),
        };
        let mut env = hook_env(HookKind::Verify, &call)?;
        env.peer_name = None;
        match self
            .channel
            .borrow_mut()
            .verify(hook, env)
            .map_err(io_err)?
        {
            VerifyRun::Verdict(ok) => Ok(Verdict::from(ok)),
            VerifyRun::Pending => Ok(Verdict::Pending),
        }
    }
}

/// What the gateway part of the loop remembers.
struct GatewayDriver {
    gm: Option<GatewayManifest>,
    labels: Vec<String>,
    /// Peers whose redirect is in place, with the pinned underlay address.
    redirected: HashMap<u32, IpAddr>,
    /// When each established peer was first seen established (status socket).
    established_at: HashMap<u32, Instant>,
    last_sync: Option<Instant>,
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn families(pg: &PeerGateway, gm: &GatewayManifest) -> Vec<Family> {
    if let Some(via) = pg.redirect.as_ref().and_then(|r| r.via) {
        return vec![Family::of(&via)];
    }
    let addrs = if pg.addresses.is_empty() {
        &gm.interface_addresses
    } else {
        &pg.addresses
    };
    let mut f: Vec<Family> = addrs.iter().map(|a| Family::of(&a.addr())).collect();
    f.sort();
    f.dedup();
    if f.is_empty() {
        f.push(Family::V4);
    }
    f
}

impl GatewayDriver {
    fn send(ch: &Shared, req: GatewayRequest, log: &Logger) -> bool {
        let what = format!("{req:?}");
        match ch.borrow_mut().gateway(req) {
            Ok(_) => {
                log.log(LogLevel::Verbose, || format!("gateway: {what}"));
                true
            }
            Err(e) => {
                log.log(LogLevel::Warn, || format!("gateway: {what}: {e}"));
                false
            }
        }
    }

    fn masquerade(&self, ch: &Shared, log: &Logger) {
        let Some(gm) = &self.gm else { return };
        let Some(m) = &gm.masquerade else { return };
        let req = GatewayRequest::Masquerade(Masquerade {
            table: nft_table_name(&gm.instance),
            prefixes: m.prefixes.clone(),
            out_ifname: m.out_ifname.clone(),
        });
        Self::send(ch, req, log);
    }

    fn sync(
        &mut self,
        peers: &[PeerStatus],
        shared_iface: Option<&str>,
        ch: &Shared,
        log: &Logger,
    ) {
        let now = Instant::now();
        for p in peers {
            if p.established {
                self.established_at.entry(p.id.0).or_insert(now);
            } else {
                self.established_at.remove(&p.id.0);
            }
            let Some(gm) = &self.gm else { continue };
            let Some(label) = self.labels.get(p.id.0 as usize) else {
                continue;
            };
            let pg = gm.peers.get(label).unwrap_or(&gm.default_peer);
            let Some(redirect) = &pg.redirect else {
                continue;
            };
            let addr = p.addr.map(|a| canonical_ip(a.ip()));
            match (p.established, addr) {
                (true, Some(ip)) => {
                    let before = self.redirected.get(&p.id.0).copied();
                    if before == Some(ip) {
                        continue;
                    }
                    let Some(ifname) = p
                        .iface
                        .as_deref()
                        .or(shared_iface)
                        .and_then(|n| policy::IfName::new(n).ok())
                    else {
                        continue;
                    };
                    let pin = GatewayRequest::PinHostRoute(PinHostRoute {
                        peer: label.clone(),
                        dest: IpNet::from(ip),
                    });
                    Self::send(ch, pin, log);
                    if before.is_none() {
                        for family in families(pg, gm) {
                            let req = GatewayRequest::RedirectGateway(RedirectGateway {
                                peer: label.clone(),
                                ifname: ifname.clone(),
                                via: redirect.via.filter(|v| Family::of(v) == family),
                                family,
                            });
                            Self::send(ch, req, log);
                        }
                    }
                    self.redirected.insert(p.id.0, ip);
                }
                _ => {
                    if self.redirected.remove(&p.id.0).is_some() {
                        let req = GatewayRequest::Unredirect {
                            peer: label.clone(),
                        };
                        Self::send(ch, req, log);
                    }
                }
            }
        }
    }
}

/// The status socket in its own mio poll, whose descriptor the engine watches.
struct StatusLoop {
    poll: mio::Poll,
    events: mio::Events,
    server: StatusServer,
}

impl StatusLoop {
    fn new(listener: OwnedFd) -> io::Result<Self> {
        let poll = mio::Poll::new()?;
        let mut server = StatusServer::new(listener, STATUS_TOKEN)?;
        server.register(poll.registry())?;
        Ok(Self {
            poll,
            events: mio::Events::with_capacity(16),
            server,
        })
    }

    fn fd(&self) -> RawFd {
        self.poll.as_raw_fd()
    }

    fn handle(&mut self, snapshot: &dyn Fn() -> StatusSnapshot, log: &Logger) {
        if let Err(e) = self.poll.poll(&mut self.events, Some(Duration::ZERO)) {
            log.log(LogLevel::Warn, || format!("status socket: {e}"));
            return;
        }
        for ev in self.events.iter() {
            if self.server.owns(ev.token()) {
                for n in self
                    .server
                    .handle(self.poll.registry(), ev.token(), snapshot)
                {
                    log.log(LogLevel::Debug, || format!("status socket: {n}"));
                }
            }
        }
    }
}

fn counter(packets: u64, bytes: u64) -> Counter {
    Counter { packets, bytes }
}

fn snapshot(
    config: &Config,
    peers: &[PeerStatus],
    total: &Traffic,
    shared_iface: Option<&str>,
    established_at: &HashMap<u32, Instant>,
    started: Instant,
) -> StatusSnapshot {
    let now = Instant::now();
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mode = match config.mode {
        crate::config::Mode::Tap => ModeStatus::Tap {
            interface: shared_iface.unwrap_or_default().to_owned(),
        },
        crate::config::Mode::Tun => ModeStatus::Tun,
        crate::config::Mode::Multitap => ModeStatus::Multitap,
    };
    let statistics = |t: &Traffic| Statistics {
        rx: counter(t.rx_packets, t.rx_bytes),
        rx_reordered: counter(t.rx_reordered_packets, t.rx_reordered_bytes),
        tx: counter(t.tx_packets, t.tx_bytes),
        tx_dropped: counter(t.tx_dropped_packets, t.tx_dropped_bytes),
        tx_error: counter(t.tx_error_packets, t.tx_error_bytes),
    };
    // Every peer the engine has, dynamic (`on verify`) ones included: the key comes from
    // the engine, not from the config's list.
    let list = peers
        .iter()
        .map(|p| {
            let stats = statistics(&p.traffic);
            let connection = p.established.then(|| ConnectionStatus {
                established_ms: established_at
                    .get(&p.id.0)
                    .map_or(0, |t| ms(now.saturating_duration_since(*t))),
                method: p.method.clone(),
                statistics: stats,
                mac_addresses: p.macs.iter().copied().map(MacAddress).collect(),
            });
            StatusPeer {
                key: p.key,
                name: p.name.clone(),
                address: p.addr.map_or(PeerAddress::Any, PeerAddress::from),
                interface: p.iface.clone(),
                connection,
            }
        })
        .collect();
    StatusSnapshot {
        uptime_ms: ms(now.saturating_duration_since(started)),
        mode,
        statistics: statistics(total),
        peers: list,
    }
}

/// SIGHUP (docs/config.md §6.3): the peer directories again, through the helper, which after
/// sealing reads only files directly inside the sealed directories. `None` without any,
/// and when a listing could not be had at all (the running peers stay).
fn reread_peer_dirs(config: &Config, channel: &Shared, log: &Logger) -> Option<Config> {
    if config.peer_dirs().is_empty() {
        return None;
    }
    let mut fresh = config.clone();
    let result = {
        let mut ch = channel.borrow_mut();
        let source = HelperSource::new(&mut ch, std::path::PathBuf::from("/"));
        crate::config::load_peer_dirs(&mut fresh, &source)
    };
    let (diags, fresh) = match result {
        Ok(diags) => (diags, Some(fresh)),
        Err(diags) => (diags, None),
    };
    for d in diags {
        log.log(d.level, || d.message.clone());
    }
    fresh
}

/// Reading thousands of peer files leaves the heap full of freed parser memory; glibc
/// keeps it unless asked to give it back (madvise/brk, both in the seccomp allow-list).
fn release_free_memory() {
    // SAFETY: malloc_trim only walks and trims the allocator's own free lists.
    unsafe { libc::malloc_trim(0) };
}

/// Runs the engine until the helper says `Stop` (0) or goes away (1).
pub fn run(started: Started) -> i32 {
    let t0 = Instant::now();
    let Started {
        helper: channel,
        mut config,
        manifest,
        devices,
        sockets,
        status,
        hooks,
        secret: _,
        log,
    } = started;
    let channel: Shared = Rc::new(RefCell::new(channel));
    let mut manifest = manifest;
    // After start-up the worker needs the configured peers' part of the manifest only to
    // find their gateway settings; without any, thousands of entries would only cost memory.
    if manifest.gateway.is_none() {
        manifest.peers = Vec::new();
    }
    let manifest = Rc::new(manifest);
    let mut tap = None;
    let mut pre_opened = Vec::new();
    for d in devices {
        match d.peer {
            Some(_) => pre_opened.push(d),
            None => {
                tap = Some(Iface {
                    fd: d.fd,
                    name: d.name.as_str().to_owned(),
                })
            }
        }
    }
    let desc = Descriptors {
        sockets: sockets
            .into_iter()
            .map(|(fd, addr)| BoundSocket { fd, addr })
            .collect(),
        tap,
    };
    let provider = IpcProvider {
        channel: Rc::clone(&channel),
        manifest: Rc::clone(&manifest),
        hooks,
        pre_opened,
        up_ran: Vec::new(),
        log: log.clone(),
    };
    let mut engine = match Engine::new(&config, desc, provider, log.clone(), Timings::default()) {
        Ok(e) => e,
        Err(e) => {
            log.log(LogLevel::Error, || e.to_string());
            return 1;
        }
    };
    release_free_memory();
    let chan_fd = channel.borrow().fd().as_raw_fd();
    if let Err(e) = engine.watch(channel.borrow().fd()) {
        log.log(LogLevel::Error, || e.to_string());
        return 1;
    }
    let mut status = match status.map(StatusLoop::new).transpose() {
        Ok(s) => s,
        Err(e) => {
            log.log(LogLevel::Error, || format!("status socket: {e}"));
            return 1;
        }
    };
    if let Some(s) = &status {
        // SAFETY: the mio poll outlives the engine's use of its descriptor: both live
        // until this function returns, and the engine only waits on it.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(s.fd()) };
        if let Err(e) = engine.watch(fd) {
            log.log(LogLevel::Error, || e.to_string());
            return 1;
        }
    }
    let shared_iface = (manifest.mode == Mode::Tap)
        .then(|| engine.interface_names().into_iter().next())
        .flatten();
    let mut gw = GatewayDriver {
        gm: manifest.gateway.clone(),
        labels: match manifest.gateway {
            Some(_) => manifest.peers.iter().map(label).collect(),
            None => Vec::new(),
        },
        redirected: HashMap::new(),
        established_at: HashMap::new(),
        last_sync: None,
    };
    gw.masquerade(&channel, &log);
    log.log(LogLevel::Verbose, || {
        format!(
            "worker running ({} ms after start)",
            t0.elapsed().as_millis()
        )
    });
    // The pid file, systemd and a --daemon parent learn now that start-up is over.
    if let Err(e) = channel.borrow_mut().ready() {
        log.log(LogLevel::Warn, || {
            format!("unable to announce readiness: {e}")
        });
    }
    let code = loop {
        let polled = match engine.poll_once(MAX_WAIT) {
            Ok(p) => p,
            Err(e) => {
                log.log(LogLevel::Error, || e.to_string());
                break 1;
            }
        };
        // Every notice waiting is handled in this turn: verdicts queued during calls
        // (each `on verify` started is a call) would otherwise wait a turn each, up to
        // MAX_WAIT, while their handshakes hold the handshake machine's verify slots;
        // new handshakes then find the slots full and only get in on their retry.
        let mut readable = polled.external.contains(&chan_fd);
        let mut stop = None;
        for _ in 0..MAX_NOTICES_PER_TURN {
            let notice = match channel.borrow_mut().next_notice(&mut readable) {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => {
                    log.log(LogLevel::Error, || e.to_string());
                    stop = Some(1);
                    break;
                }
            };
            match notice {
                Notice::Stop => {
                    stop = Some(0);
                    break;
                }
                Notice::ResetAll => engine.reset_all(),
                Notice::VerifyDone { key, accepted } => {
                    engine.verify_done(&key.0, accepted);
                    engine.hooks_free();
                }
                Notice::HooksFree => engine.hooks_free(),
                Notice::Reload => {
                    log.log(LogLevel::Info, || "reconfigure triggered".to_owned());
                    if let Some(fresh) = reread_peer_dirs(&config, &channel, &log) {
                        match engine.reload(&fresh) {
                            Ok(()) => config = fresh,
                            Err(e) => log.log(LogLevel::Error, || e.to_string()),
                        }
                    }
                    release_free_memory();
                }
                Notice::Start { .. } => log.log(LogLevel::Warn, || {
                    "unexpected Start from the helper".to_owned()
                }),
            }
        }
        if let Some(code) = stop {
            break code;
        }
        let now = Instant::now();
        let due = gw.last_sync.is_none_or(|t| now >= t + SYNC_INTERVAL);
        let status_ready = status
            .as_ref()
            .is_some_and(|s| polled.external.contains(&s.fd()));
        if due || status_ready {
            let peers = engine.peer_status();
            if due {
                gw.last_sync = Some(now);
                gw.sync(&peers, shared_iface.as_deref(), &channel, &log);
            }
            if let Some(s) = status.as_mut().filter(|_| status_ready) {
                let snap = || {
                    snapshot(
                        &config,
                        &peers,
                        &engine.total_traffic(),
                        shared_iface.as_deref(),
                        &gw.established_at,
                        t0,
                    )
                };
                s.handle(&snap, &log);
            }
        }
    };
    if code == 0 {
        engine.shutdown();
        let peers = engine.peer_status();
        gw.sync(&peers, shared_iface.as_deref(), &channel, &log);
    }
    code
}
