//! The protocol engine: one single-threaded epoll loop over the UDP sockets and TUN/TAP
//! descriptors the helper hands over. Datagrams go to the handshake or to the peer's method
//! sessions; interface packets go to the peers. Everything privileged (new interfaces,
//! per-connection sockets, hooks) goes through a [`Provider`].
//!
//! How the worker bootstrap starts it (after the sandbox is sealed):
//!
//! ```ignore
//! let desc = Descriptors {
//!     sockets: started.sockets.into_iter().map(|(fd, addr)| BoundSocket { fd, addr }).collect(),
//!     tap: /* the Device with peer None, as Iface { fd, name } */,
//!     peer_ifaces: /* Devices with Some(peer): (PeerId(index into config.peers), Iface) */,
//! };
//! let provider = IpcProvider { /* Request::OpenTun / BindUdp{peer} / RunHook over the channel */ };
//! let log = Logger::stderr(config.log.stderr_level);
//! let mut engine = Engine::new(&config, desc, provider, log, Timings::default())?;
//! engine.watch(channel.fd().as_fd())?;
//! loop {
//!     let polled = engine.poll_once(Duration::from_secs(1))?;
//!     if !polled.external.is_empty() { /* read the channel: Stop -> engine.shutdown(); break */ }
//! }
//! ```
//!
//! Packet path: datagrams arrive in batches (`recvmmsg`) in preallocated buffers and are
//! decrypted in place; interface packets are read behind [`method::MAX_OVERHEAD`] bytes of
//! headroom in a `sendmmsg` slot and encrypted there. No allocation per packet. Every drop is
//! counted per peer and reason ([`PeerStatus::drops`]), or globally when no peer is known.

pub mod hs;
pub mod io;
pub mod log;
pub mod peer;
pub mod provider;
pub mod session;
pub mod tap;
pub mod timers;

mod settings;

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::config::{Config, HookKind, LogLevel, Mode};
use crate::handshake::{Event, Handshake, Output};
use crate::keys::PublicKey;
use crate::method::{self, MethodSession, MethodSpec};

pub use hs::{error_text, fail_line, HsSetupError};
pub use log::Logger;
pub use peer::{DropCounters, DropReason, PeerId, PeerParams, Traffic};
pub use provider::{HookCall, HookEnv, Iface, IfaceKind, IfaceRequest, Provider};
pub use session::Lifetimes;
pub use settings::{interface_name, SettingsError};

use io::{RecvBatch, SendBatch};
use peer::{canonical, PeerTable};
use session::{Session, SessionInfo, Which};
use tap::{Dest, MacTable};
use timers::{Timer, TimerQueue};

/// Headroom in front of every payload in the send buffers: the largest method header.
const HEAD: usize = method::MAX_OVERHEAD;
/// L2TP control header (protocol.md §1.2).
const L2TP_CTRL: usize = 12;
/// Largest handshake packet fastd builds; the receive buffer holds at least this.
const MAX_HANDSHAKE: usize = 1232;
/// Interface packets handled per readiness event before looking at other descriptors.
const IFACE_BUDGET: usize = 256;
/// UDP batches handled per readiness event.
const UDP_BUDGET: usize = 8;

/// fastd's timers (config.md §6.10). Tests may shorten ours; the real fastd keeps its own.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    pub keepalive: Duration,
    pub peer_timeout: Duration,
    pub handshake_retry: Duration,
    pub handshake_jitter: Duration,
    /// Minimum between initial handshakes to one address, and the unknown-address limit.
    pub handshake_min_interval: Duration,
    pub mac_expiry: Duration,
    pub maintenance: Duration,
    pub lifetimes: Lifetimes,
    /// Test switch (kept here so production callers get v22 behaviour from `default()`):
    /// handshake like a pre-v22 fastd (no L2TP flag, compat sessions with 0x02 data).
    pub pre_v22: bool,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            keepalive: Duration::from_secs(20),
            peer_timeout: Duration::from_secs(90),
            handshake_retry: Duration::from_secs(20),
            handshake_jitter: Duration::from_millis(2500),
            handshake_min_interval: Duration::from_secs(15),
            mac_expiry: Duration::from_secs(300),
            maintenance: Duration::from_secs(10),
            lifetimes: Lifetimes::default(),
            pre_v22: false,
        }
    }
}

/// A UDP socket the helper bound for us (`bind` statements with a port).
#[derive(Debug)]
pub struct BoundSocket {
    pub fd: OwnedFd,
    pub addr: SocketAddr,
}

/// The descriptors the worker bootstrap received from the helper.
#[derive(Debug, Default)]
pub struct Descriptors {
    pub sockets: Vec<BoundSocket>,
    /// The single TAP interface (tap mode), if the helper already opened it (and ran its `up`
    /// hook). Otherwise the engine asks the provider and runs the hook.
    pub tap: Option<Iface>,
    /// Persistent per-peer interfaces (tun/multitap) the bootstrap already opened, with their
    /// `up` hooks done. `PeerId` = index into `Config::peers`. Peers missing here get theirs
    /// from the provider.
    pub peer_ifaces: Vec<(PeerId, Iface)>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Settings(#[from] SettingsError),
    #[error("unable to open TUN/TAP interface: {0}")]
    Iface(std::io::Error),
    #[error("epoll: {0}")]
    Epoll(std::io::Error),
    #[error("{0}")]
    Handshake(#[from] HsSetupError),
}

struct Sock {
    fd: OwnedFd,
    /// Bound address (`None` for per-connection sockets before we know it).
    bound: Option<SocketAddr>,
    v6: bool,
    /// Per-connection socket: only this peer's packets are accepted on it.
    peer: Option<PeerId>,
}

struct IfaceSlot {
    fd: OwnedFd,
    name: String,
    mtu: u16,
    peer: Option<PeerId>,
}

/// Per-peer engine state beyond the table (timers bookkeeping).
#[derive(Default, Clone, Copy)]
struct PeerTimers {
    /// The earliest pending queue entry for this peer.
    queued: Option<Instant>,
    last_keepalive: Option<Instant>,
}

/// Snapshot of one peer for tests and the status socket.
#[derive(Debug, Clone)]
pub struct PeerStatus {
    pub id: PeerId,
    pub key: [u8; 32],
    pub name: Option<String>,
    /// When the connection was established (status socket: `established` = now - this).
    pub connected_since: Option<Instant>,
    /// MAC addresses learned behind the peer (tap mode).
    pub macs: Vec<[u8; 6]>,
    pub established: bool,
    pub method: Option<String>,
    pub addr: Option<SocketAddr>,
    pub iface: Option<String>,
    pub drops: DropCounters,
    pub traffic: Traffic,
}

pub struct Engine<P: Provider> {
    settings: settings::Settings,
    timings: Timings,
    provider: P,
    hs: Handshake,
    log: Logger,
    peers: PeerTable<method::Session>,
    ptimers: Vec<PeerTimers>,
    sockets: Vec<Sock>,
    /// `None` = closed (non-persistent interfaces of reset peers); indices are epoll tokens.
    ifaces: Vec<Option<IfaceSlot>>,
    epoll: OwnedFd,
    recv: Option<RecvBatch>,
    send: SendBatch,
    scratch: Box<[u8]>,
    targets: Vec<PeerId>,
    timers: TimerQueue,
    macs: MacTable,
    global_drops: DropCounters,
    rng: u64,
    /// The fd of the TAP interface in tap mode (index into `ifaces`).
    tap: Option<usize>,
}

const TOKEN_SOCK: u64 = 0;
const TOKEN_IFACE: u64 = 1 << 32;
const TOKEN_EXTERNAL: u64 = 1 << 33;

/// What one [`Engine::poll_once`] saw besides packets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Polled {
    /// Watched descriptors that are readable.
    pub external: Vec<RawFd>,
}

fn epoll_add(epoll: RawFd, fd: RawFd, token: u64) -> std::io::Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: valid epoll and target descriptors; ev is a live local.
    if unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn family_matches(sock_v6: bool, bound: Option<SocketAddr>, dst: &SocketAddr) -> bool {
    match (sock_v6, dst) {
        (false, SocketAddr::V4(_)) => true,
        (true, SocketAddr::V6(_)) => true,
        // A dual-stack socket bound to `any` reaches IPv4 peers too.
        (true, SocketAddr::V4(_)) => bound.is_some_and(|b| b.ip().is_unspecified()),
        (false, SocketAddr::V6(_)) => false,
    }
}

/// The destination as the socket's family needs it (IPv4 via a dual-stack socket: mapped).
fn dst_for(sock_v6: bool, dst: SocketAddr) -> SocketAddr {
    match (sock_v6, dst) {
        (true, SocketAddr::V4(a)) => SocketAddr::new(IpAddr::V6(a.ip().to_ipv6_mapped()), a.port()),
        _ => dst,
    }
}

impl<P: Provider> Engine<P> {
    /// Builds the engine: peers from `config`, sockets and (tap mode) the interface from `desc`,
    /// per-peer interfaces (tun/multitap with `persist interface yes`) from the provider, whose
    /// `up` hooks run here.
    pub fn new(
        config: &Config,
        desc: Descriptors,
        provider: P,
        log: Logger,
        timings: Timings,
    ) -> Result<Self, EngineError> {
        let settings = settings::Settings::from_config(config)?;
        let hs = hs::from_config(config, &settings.peers, timings.pre_v22, Instant::now())?;
        let peers = PeerTable::new(settings.peers.clone());
        // SAFETY: plain syscall; the result is checked and owned below.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(EngineError::Epoll(std::io::Error::last_os_error()));
        }
        // SAFETY: ep is a fresh descriptor that nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(ep) };
        let max_payload = usize::from(settings.max_mtu) + tap::ETH_HLEN;
        let recv_len = (max_payload + method::MAX_OVERHEAD + L2TP_CTRL).max(MAX_HANDSHAKE) + 1;
        let mut seed = [0u8; 8];
        let _ = getrandom::getrandom(&mut seed);
        let n = peers.len();
        let mut e = Engine {
            timings,
            provider,
            hs,
            log,
            peers,
            ptimers: vec![PeerTimers::default(); n],
            sockets: Vec::new(),
            ifaces: Vec::new(),
            epoll,
            recv: Some(RecvBatch::new(recv_len)),
            send: SendBatch::new(HEAD + max_payload + 64),
            scratch: vec![0u8; HEAD + max_payload + 64].into_boxed_slice(),
            targets: Vec::with_capacity(n),
            timers: TimerQueue::new(),
            macs: MacTable::new(timings.mac_expiry),
            global_drops: DropCounters::default(),
            rng: u64::from_le_bytes(seed) | 1,
            tap: None,
            settings,
        };
        for s in desc.sockets {
            e.add_socket(s.fd, Some(s.addr), None)
                .map_err(EngineError::Epoll)?;
        }
        for (id, iface) in desc.peer_ifaces {
            let mtu = e.peers.get(id).map_or(e.settings.mtu, |p| p.params.mtu);
            let idx = e.add_iface(iface, mtu, Some(id))?;
            if let Some(p) = e.peers.get_mut(id) {
                p.iface = Some(idx);
            }
        }
        e.open_interfaces(desc.tap)?;
        let now = Instant::now();
        e.timers
            .push(now + e.timings.maintenance, Timer::Maintenance);
        Ok(e)
    }

    fn add_socket(
        &mut self,
        fd: OwnedFd,
        bound: Option<SocketAddr>,
        peer: Option<PeerId>,
    ) -> std::io::Result<usize> {
        io::prepare_udp_socket(fd.as_fd())?;
        let v6 = match bound {
            Some(a) => a.is_ipv6(),
            None => socket_is_v6(&fd),
        };
        let idx = self.sockets.len();
        epoll_add(
            self.epoll.as_raw_fd(),
            fd.as_raw_fd(),
            TOKEN_SOCK | idx as u64,
        )?;
        if let Some(b) = bound {
            self.log
                .log(LogLevel::Info, || format!("bound to {}", fmt_bind(&b)));
        }
        self.sockets.push(Sock {
            fd,
            bound,
            v6,
            peer,
        });
        Ok(idx)
    }

    fn add_iface(
        &mut self,
        iface: Iface,
        mtu: u16,
        peer: Option<PeerId>,
    ) -> Result<usize, EngineError> {
        io::set_nonblocking(iface.fd.as_raw_fd()).map_err(EngineError::Iface)?;
        let idx = self.ifaces.len();
        epoll_add(
            self.epoll.as_raw_fd(),
            iface.fd.as_raw_fd(),
            TOKEN_IFACE | idx as u64,
        )
        .map_err(EngineError::Epoll)?;
        self.ifaces.push(Some(IfaceSlot {
            fd: iface.fd,
            name: iface.name,
            mtu,
            peer,
        }));
        Ok(idx)
    }

    fn open_interfaces(&mut self, tap: Option<Iface>) -> Result<(), EngineError> {
        match self.settings.mode {
            Mode::Tap => {
                let (iface, opened) = match tap {
                    Some(i) => (i, false),
                    None => {
                        let req = IfaceRequest {
                            name: self.settings.tap_name.clone(),
                            kind: IfaceKind::Tap,
                            mtu: self.settings.mtu,
                            peer: None,
                        };
                        (
                            self.provider.open_iface(&req).map_err(EngineError::Iface)?,
                            true,
                        )
                    }
                };
                let idx = self.add_iface(iface, self.settings.mtu, None)?;
                self.tap = Some(idx);
                if opened {
                    self.run_hook(HookKind::Up, None);
                }
            }
            Mode::Tun | Mode::Multitap => {
                if !self.settings.persist_interface {
                    return Ok(());
                }
                // fastd creates persistent peer interfaces in reverse order of definition.
                let ids: Vec<PeerId> = self.peers.ids().collect();
                for id in ids.into_iter().rev() {
                    self.open_peer_iface(id)?;
                }
            }
        }
        Ok(())
    }

    fn iface_at(&self, idx: usize) -> Option<&IfaceSlot> {
        self.ifaces.get(idx).and_then(Option::as_ref)
    }

    /// Destroys a peer's interface (non-persistent or dynamic peers at reset): `down` hook
    /// first, then the descriptor is closed, which removes a non-persistent device.
    fn close_peer_iface(&mut self, id: PeerId) {
        let Some(idx) = self.peers.get(id).and_then(|p| p.iface) else {
            return;
        };
        self.run_hook(HookKind::Down, Some(id));
        if let Some(slot) = self.ifaces.get_mut(idx).and_then(Option::take) {
            // SAFETY: removing a descriptor we own from our epoll set; no memory is passed.
            unsafe {
                libc::epoll_ctl(
                    self.epoll.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    slot.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                )
            };
        }
        if let Some(p) = self.peers.get_mut(id) {
            p.iface = None;
        }
    }

    fn open_peer_iface(&mut self, id: PeerId) -> Result<(), EngineError> {
        let Some(p) = self.peers.get(id) else {
            return Ok(());
        };
        if p.iface.is_some() {
            return Ok(());
        }
        let req = IfaceRequest {
            name: p.params.ifname.clone(),
            kind: if self.settings.mode == Mode::Tun {
                IfaceKind::Tun
            } else {
                IfaceKind::Tap
            },
            mtu: p.params.mtu,
            peer: Some(id),
        };
        let iface = self.provider.open_iface(&req).map_err(EngineError::Iface)?;
        let idx = self.add_iface(iface, req.mtu, Some(id))?;
        if let Some(p) = self.peers.get_mut(id) {
            p.iface = Some(idx);
        }
        self.run_hook(HookKind::Up, Some(id));
        Ok(())
    }

    /// Applies a reloaded config (SIGHUP, config.md §6.3): peers are compared by key; unchanged
    /// ones keep their connection, changed ones are deleted and added again, new ones added,
    /// missing ones deleted. Mode, MTU and binds are not reloaded (fastd neither).
    pub fn reload(&mut self, config: &Config) -> Result<(), EngineError> {
        let now = Instant::now();
        let new = settings::Settings::from_config(config)?;
        let mut keep: Vec<PeerId> = Vec::new();
        let mut hs_peers = Vec::with_capacity(config.peers.len());
        for ((pc, pp), group) in config.peers.iter().zip(&new.peers).zip(&new.peer_groups) {
            let old = self.peers.by_key(&pp.key);
            let unchanged = old
                .and_then(|id| self.peers.get(id).map(|p| (id, p)))
                .filter(|(id, p)| {
                    !p.dynamic
                        && self.settings.peer_groups.get(id.0 as usize) == Some(group)
                        && p.params.float == pp.float
                        && p.params.remotes == pp.remotes
                        && p.params.ifname == pp.ifname
                });
            let id = match (old, unchanged) {
                (_, Some((id, p))) => {
                    let (was, now_name) = (p.to_string(), pp.name.clone());
                    if let Some(p) = self.peers.get_mut(id) {
                        p.params.name = now_name;
                    }
                    let is = self.peer_display(id);
                    if was == is {
                        self.log
                            .log(LogLevel::Verbose, || format!("peer {is} is unchanged"));
                    } else {
                        self.log.log(LogLevel::Verbose, || {
                            format!("peer {was} has been renamed to {is}")
                        });
                    }
                    id
                }
                (Some(old_id), None) => {
                    let was_dynamic = self.peers.get(old_id).is_some_and(|p| p.dynamic);
                    if !was_dynamic {
                        let n = self.peer_display(old_id);
                        self.log
                            .log(LogLevel::Verbose, || format!("peer {n} has changed"));
                    }
                    self.delete_peer(old_id, now);
                    self.add_peer(pp.clone(), *group)?
                }
                (None, None) => {
                    let id = self.add_peer(pp.clone(), *group)?;
                    let n = self.peer_display(id);
                    self.log
                        .log(LogLevel::Verbose, || format!("adding peer {n}"));
                    id
                }
            };
            keep.push(id);
            hs_peers.push(hs::hs_peer(config, pc, pp)?);
        }
        let stale: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(id, p)| !p.deleted && !p.dynamic && !keep.contains(id))
            .map(|(id, _)| id)
            .collect();
        for id in stale {
            let n = self.peer_display(id);
            self.log
                .log(LogLevel::Verbose, || format!("deleting peer {n}"));
            self.delete_peer(id, now);
        }
        self.hs.set_peers(hs_peers, now);
        self.settings.forward = new.forward;
        self.settings.verify_group = new.verify_group;
        Ok(())
    }

    fn add_peer(
        &mut self,
        params: PeerParams,
        group: crate::config::GroupId,
    ) -> Result<PeerId, EngineError> {
        let id = self.peers.add(params);
        self.ptimers.push(PeerTimers::default());
        self.settings.peer_groups.push(group);
        if self.settings.mode != Mode::Tap && self.settings.persist_interface {
            self.open_peer_iface(id)?;
        }
        Ok(id)
    }

    fn delete_peer(&mut self, id: PeerId, now: Instant) {
        if self
            .peers
            .get(id)
            .is_some_and(|p| p.sessions.is_established())
        {
            self.reset_peer(id, now, true);
        }
        if self.peers.get(id).is_some_and(|p| p.iface.is_some()) {
            self.close_peer_iface(id);
        }
        self.peers.delete(id);
    }

    /// The interface names, for tests and the integrator (`tap` first in tap mode).
    pub fn interface_names(&self) -> Vec<String> {
        self.ifaces
            .iter()
            .flatten()
            .map(|i| i.name.clone())
            .collect()
    }

    pub fn peer_status(&self) -> Vec<PeerStatus> {
        let now = Instant::now();
        self.peers
            .iter()
            .filter(|(_, p)| !p.deleted)
            .map(|(id, p)| PeerStatus {
                id,
                key: p.params.key,
                name: p.params.name.clone(),
                connected_since: p.connected_since,
                macs: self.macs.macs_of(id, now),
                established: p.sessions.is_established(),
                method: p.sessions.current.as_ref().map(|s| s.method.clone()),
                addr: p.addr,
                iface: p
                    .iface
                    .and_then(|i| self.iface_at(i))
                    .map(|i| i.name.clone()),
                drops: p.drops.clone(),
                traffic: p.traffic,
            })
            .collect()
    }

    /// Drops not attributable to a peer (unknown senders, invalid packets from nowhere).
    pub fn global_drops(&self) -> &DropCounters {
        &self.global_drops
    }

    /// Runs the loop until `stop` becomes true (checked at least every `maintenance` interval
    /// and after every wake-up).
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), EngineError> {
        while !stop.load(Ordering::Relaxed) {
            self.poll_once(Duration::from_millis(500))?;
        }
        self.shutdown();
        Ok(())
    }

    /// Adds a descriptor of the caller (the IPC channel to the helper, a signal fd) to the
    /// loop: [`poll_once`](Self::poll_once) reports when it is readable, the engine never
    /// reads it.
    pub fn watch(&mut self, fd: BorrowedFd<'_>) -> Result<(), EngineError> {
        epoll_add(
            self.epoll.as_raw_fd(),
            fd.as_raw_fd(),
            TOKEN_EXTERNAL | fd.as_raw_fd() as u32 as u64,
        )
        .map_err(EngineError::Epoll)
    }

    /// One loop iteration: waits at most `max_wait` for descriptors or timers. Returns the
    /// watched descriptors (see [`watch`](Self::watch)) that became readable.
    pub fn poll_once(&mut self, max_wait: Duration) -> Result<Polled, EngineError> {
        let mut polled = Polled::default();
        let now = Instant::now();
        let wait = match self.hs.poll_timeout() {
            Some(t) => t.saturating_duration_since(now).min(max_wait),
            None => max_wait,
        };
        let timeout = self.timers.timeout_ms(now, wait);
        // SAFETY: an all-zero epoll_event is valid; the array is a live local.
        let mut events: [libc::epoll_event; 32] = unsafe { std::mem::zeroed() };
        // SAFETY: events is writable for 32 entries.
        let n =
            unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), 32, timeout) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(polled);
            }
            return Err(EngineError::Epoll(e));
        }
        for ev in events.iter().take(n as usize) {
            let token = ev.u64;
            let idx = (token & 0xffff_ffff) as usize;
            if token & TOKEN_EXTERNAL != 0 {
                if let Ok(fd) = RawFd::try_from(idx) {
                    polled.external.push(fd);
                }
            } else if token & TOKEN_IFACE != 0 {
                self.on_iface_readable(idx);
            } else {
                self.on_socket_readable(idx);
            }
        }
        self.flush();
        self.run_timers(Instant::now());
        self.flush();
        Ok(polled)
    }

    /// Resets every peer (disestablish hooks) and runs the `down` hooks of peer interfaces.
    pub fn shutdown(&mut self) {
        let now = Instant::now();
        let ids: Vec<PeerId> = self.peers.ids().collect();
        for id in ids.into_iter().rev() {
            if self
                .peers
                .get(id)
                .is_some_and(|p| p.sessions.is_established())
            {
                self.reset_peer(id, now, false);
            }
            if self.peers.get(id).is_some_and(|p| p.iface.is_some()) {
                self.run_hook(HookKind::Down, Some(id));
            }
        }
        self.flush();
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    // ----- receive path -----

    fn on_socket_readable(&mut self, idx: usize) {
        let Some(mut recv) = self.recv.take() else {
            return;
        };
        for _ in 0..UDP_BUDGET {
            let Some(sock) = self.sockets.get(idx) else {
                break;
            };
            let n = match recv.recv(sock.fd.as_fd()) {
                Ok(n) => n,
                Err(e) => {
                    self.log.log(LogLevel::Debug, || format!("recvmmsg: {e}"));
                    0
                }
            };
            for i in 0..n {
                if let Some((meta, buf)) = recv.get(i) {
                    self.on_datagram(idx, meta, buf);
                }
            }
            if n < io::BATCH {
                break;
            }
        }
        self.recv = Some(recv);
    }

    fn count_drop(&mut self, peer: Option<PeerId>, r: DropReason) {
        match peer.and_then(|p| self.peers.get_mut(p)) {
            Some(p) => p.drops.count(r),
            None => self.global_drops.count(r),
        }
        self.log.log(LogLevel::Debug2, || {
            format!("dropping packet: {}", r.name())
        });
    }

    fn on_datagram(&mut self, sock_idx: usize, meta: io::Meta, buf: &mut [u8]) {
        let now = Instant::now();
        let src = canonical(meta.src);
        let mut peer = self.peers.by_addr(&src);
        if let Some(owner) = self.sockets.get(sock_idx).and_then(|s| s.peer) {
            // A per-connection socket only talks to its own peer (at its current address, or
            // at one of its remotes before a session exists).
            let allowed = match self.peers.get(owner) {
                Some(p) => match p.addr {
                    Some(a) => a == src,
                    None => p.params.remotes.iter().any(|r| canonical(*r) == src),
                },
                None => false,
            };
            if !allowed {
                self.count_drop(None, DropReason::InvalidType);
                return;
            }
            peer = Some(owner);
        }
        if meta.truncated {
            self.count_drop(peer, DropReason::Oversize);
            return;
        }
        let Some(pkt) = buf.get_mut(..meta.len) else {
            return;
        };
        let (off, has_ctrl) = match pkt.first() {
            None => {
                self.count_drop(peer, DropReason::Truncated);
                return;
            }
            Some(0xC8) => {
                if pkt.len() < L2TP_CTRL + 1 || pkt.get(1).is_none_or(|b| b & 0x0f != 3) {
                    self.count_drop(peer, DropReason::BadHeader);
                    return;
                }
                (L2TP_CTRL, true)
            }
            Some(_) => (0, false),
        };
        let Some(t) = pkt.get(off).copied() else {
            return;
        };
        let is_data = t & 0x80 == 0 && t != 0x01;
        let established = peer
            .and_then(|p| self.peers.get(p))
            .is_some_and(|p| p.sessions.is_established());
        if is_data && established {
            if let Some(p) = peer {
                self.on_data(p, sock_idx, meta.local, pkt, off, now);
            }
            return;
        }
        // Before a session exists, a non-floating peer is known by its configured remotes
        // (the handshake checks the key against the address itself).
        let known = peer.or_else(|| self.peers.by_remote(&src));
        if known.is_none() && !self.hs.unknown_senders_allowed() {
            self.count_drop(None, DropReason::NoSession);
            return;
        }
        let _ = has_ctrl;
        if t == 0x01 {
            let out = self.hs.handle_handshake(pkt, src, now);
            self.handle_hs_output(out, Some((sock_idx, meta.local)), now);
            return;
        }
        if is_data {
            // Data from an address without an established session (protocol.md §4.9): the
            // handshake answers at most once per IP per 15 s, never for short packets.
            let out = self.hs.handle_unknown_data(pkt, src, now);
            self.handle_hs_output(out, Some((sock_idx, meta.local)), now);
            self.count_drop(known, DropReason::NoSession);
            return;
        }
        self.count_drop(known, DropReason::InvalidType);
    }

    fn on_data(
        &mut self,
        id: PeerId,
        sock_idx: usize,
        local: Option<IpAddr>,
        pkt: &mut [u8],
        off: usize,
        now: Instant,
    ) {
        let Some(p) = self.peers.get_mut(id) else {
            return;
        };
        if let (Some(want), Some(got)) = (p.local, local) {
            if want != got && !want.is_unspecified() {
                p.drops.count(DropReason::WrongLocalAddress);
                return;
            }
        }
        let _ = sock_idx;
        let Some(body) = pkt.get_mut(off..) else {
            return;
        };
        let (range, which) = match p.sessions.decrypt(body, now) {
            Ok(v) => v,
            Err(r) => {
                if r == DropReason::Duplicate {
                    // Authenticated: a sign of life even though the payload is dropped.
                    p.last_recv = Some(now);
                }
                p.drops.count(r);
                self.log.log(LogLevel::Debug2, || {
                    format!("dropping packet from {}: {}", id.0, r.name())
                });
                return;
            }
        };
        p.last_recv = Some(now);
        if which == Which::CurrentFirst {
            // The peer has the new keys: scheduled handshakes (the initiator's retry) go.
            let key = p.params.key;
            if let Ok(k) = PublicKey::from_bytes(&key) {
                self.hs.session_confirmed(&k);
            }
            let Some(p) = self.peers.get_mut(id) else {
                return;
            };
            let initiator = p.sessions.current.as_ref().is_some_and(|s| s.initiator);
            if initiator {
                self.send_keepalive(id, now);
            }
        }
        let start = off + range.start;
        let len = range.len();
        if len == 0 {
            self.check_refresh(id, now);
            return;
        }
        if let Some(p) = self.peers.get_mut(id) {
            p.traffic.rx_packets += 1;
            p.traffic.rx_bytes += len as u64;
        }
        let Some(payload) = pkt.get(start..start + len) else {
            return;
        };
        match self.settings.mode {
            Mode::Tun | Mode::Multitap => {
                let iface = self.peers.get(id).and_then(|p| p.iface);
                if self.settings.mode == Mode::Multitap && len < tap::ETH_HLEN {
                    self.count_drop(Some(id), DropReason::ShortFrame);
                } else if let Some(i) = iface.and_then(|i| self.iface_at(i)) {
                    if io::tun_write(i.fd.as_fd(), payload).is_err() {
                        self.count_drop(Some(id), DropReason::InterfaceWrite);
                    }
                } else {
                    self.count_drop(Some(id), DropReason::InterfaceWrite);
                }
            }
            Mode::Tap => self.on_tap_frame_from_peer(id, payload, now),
        }
        self.check_refresh(id, now);
    }

    fn on_tap_frame_from_peer(&mut self, id: PeerId, frame: &[u8], now: Instant) {
        let Some((dst, src)) = tap::macs(frame) else {
            self.count_drop(Some(id), DropReason::ShortFrame);
            return;
        };
        self.macs.learn(src, id, now);
        if let Some(i) = self.tap.and_then(|t| self.iface_at(t)) {
            if io::tun_write(i.fd.as_fd(), frame).is_err() {
                self.count_drop(Some(id), DropReason::InterfaceWrite);
            }
        }
        if !self.settings.forward {
            return;
        }
        let dest = self.macs.lookup(&dst, now);
        self.targets.clear();
        match dest {
            Dest::Peer(p) if p == id => return,
            Dest::Peer(p) => self.targets.push(p),
            Dest::Flood => {
                for (pid, p) in self.peers.iter() {
                    if pid != id && p.sessions.is_established() {
                        self.targets.push(pid);
                    }
                }
            }
        }
        let n = frame.len();
        if let Some(s) = self.scratch.get_mut(HEAD..HEAD + n) {
            s.copy_from_slice(frame);
            self.send_scratch_to_targets(n, now);
        }
    }

    // ----- send path -----

    fn on_iface_readable(&mut self, idx: usize) {
        let now = Instant::now();
        let Some(slot) = self.iface_at(idx) else {
            return;
        };
        match slot.peer {
            Some(id) => self.drain_peer_iface(idx, id, now),
            None => self.drain_tap(idx, now),
        }
    }

    /// The socket and destination for a peer's data.
    fn route(&self, id: PeerId) -> Option<(usize, SocketAddr, Option<IpAddr>)> {
        let p = self.peers.get(id)?;
        Some((p.socket?, p.addr?, p.local))
    }

    fn drain_peer_iface(&mut self, idx: usize, id: PeerId, now: Instant) {
        let mut sent_any = false;
        for _ in 0..IFACE_BUDGET {
            let route = self.route(id);
            let fd = route
                .and_then(|(s, _, _)| self.sockets.get(s))
                .map(|s| s.fd.as_raw_fd());
            if let Some(fd) = fd {
                if self.send.is_full() || (!self.send.is_empty() && self.send.fd() != fd) {
                    self.flush();
                }
            }
            let Some(iface) = self.ifaces.get(idx).and_then(Option::as_ref) else {
                return;
            };
            let read = match self.send.slot() {
                Some(slot) => match slot.get_mut(HEAD..) {
                    Some(b) => io::tun_read(iface.fd.as_fd(), b),
                    None => return,
                },
                None => return,
            };
            let n = match read {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => {
                    self.log
                        .log(LogLevel::Debug, || format!("read from {}: {e}", iface.name));
                    break;
                }
            };
            if n == 0 {
                continue;
            }
            if self.encrypt_slot_and_commit(id, n, now) {
                sent_any = true;
            }
        }
        if sent_any {
            self.check_refresh(id, now);
        }
    }

    /// Encrypts the payload at `slot[HEAD..HEAD + n]` for peer `id` and queues it.
    fn encrypt_slot_and_commit(&mut self, id: PeerId, n: usize, now: Instant) -> bool {
        let Some((sock_idx, dst, local)) = self.route(id) else {
            if let Some(p) = self.peers.get_mut(id) {
                p.traffic.tx_dropped_packets += 1;
                p.traffic.tx_dropped_bytes += n as u64;
            }
            return false;
        };
        let Some(sock) = self.sockets.get(sock_idx) else {
            return false;
        };
        let (fd, v6) = (sock.fd.as_raw_fd(), sock.v6);
        let Some(p) = self.peers.get_mut(id) else {
            return false;
        };
        let Some(sess) = p.sessions.for_send(now) else {
            p.traffic.tx_dropped_packets += 1;
            p.traffic.tx_dropped_bytes += n as u64;
            return false;
        };
        let oh = sess.crypto.overhead();
        let Some(start) = HEAD.checked_sub(oh) else {
            return false;
        };
        let Some(slot) = self.send.slot() else {
            return false;
        };
        let Some(buf) = slot.get_mut(start..HEAD + n) else {
            return false;
        };
        if sess.crypto.encrypt(buf).is_err() {
            p.drops.count(DropReason::SendFailed);
            p.traffic.tx_error_packets += 1;
            p.traffic.tx_error_bytes += n as u64;
            return false;
        }
        p.last_send = Some(now);
        p.traffic.tx_packets += 1;
        p.traffic.tx_bytes += n as u64;
        self.send
            .commit(fd, start, oh + n, &dst_for(v6, dst), local);
        true
    }

    fn drain_tap(&mut self, idx: usize, now: Instant) {
        for _ in 0..IFACE_BUDGET {
            let Some(iface) = self.ifaces.get(idx).and_then(Option::as_ref) else {
                return;
            };
            let n = match self
                .scratch
                .get_mut(HEAD..)
                .map(|b| io::tun_read(iface.fd.as_fd(), b))
            {
                Some(Ok(Some(n))) => n,
                _ => break,
            };
            let Some(frame) = self.scratch.get(HEAD..HEAD + n) else {
                continue;
            };
            let Some((dst, _)) = tap::macs(frame) else {
                continue;
            };
            self.targets.clear();
            match self.macs.lookup(&dst, now) {
                Dest::Peer(p) => self.targets.push(p),
                Dest::Flood => {
                    for (pid, p) in self.peers.iter() {
                        if p.sessions.is_established() {
                            self.targets.push(pid);
                        }
                    }
                }
            }
            self.send_scratch_to_targets(n, now);
        }
    }

    /// Sends `scratch[HEAD..HEAD + n]` to every peer in `targets` (one copy each).
    fn send_scratch_to_targets(&mut self, n: usize, now: Instant) {
        let targets = std::mem::take(&mut self.targets);
        for &id in &targets {
            let Some((sock_idx, _, _)) = self.route(id) else {
                continue;
            };
            let Some(fd) = self.sockets.get(sock_idx).map(|s| s.fd.as_raw_fd()) else {
                continue;
            };
            if self.send.is_full() || (!self.send.is_empty() && self.send.fd() != fd) {
                self.flush();
            }
            let (Some(slot), Some(src)) = (self.send.slot(), self.scratch.get(HEAD..HEAD + n))
            else {
                continue;
            };
            let Some(d) = slot.get_mut(HEAD..HEAD + n) else {
                continue;
            };
            d.copy_from_slice(src);
            self.encrypt_slot_and_commit(id, n, now);
        }
        self.targets = targets;
    }

    fn flush(&mut self) {
        if self.send.is_empty() {
            return;
        }
        let sent = self.send.flush();
        if sent.failed > 0 {
            self.global_drops.count(DropReason::SendFailed);
        }
    }

    fn send_keepalive(&mut self, id: PeerId, now: Instant) {
        let Some((sock_idx, dst, local)) = self.route(id) else {
            return;
        };
        let Some(sock) = self.sockets.get(sock_idx) else {
            return;
        };
        let Some(p) = self.peers.get_mut(id) else {
            return;
        };
        let Some(sess) = p.sessions.for_send(now) else {
            return;
        };
        let mut out = [0u8; method::MAX_KEEPALIVE_BYTES];
        let Ok(pkt) = sess.crypto.keepalive(&mut out) else {
            return;
        };
        if io::send_one(sock.fd.as_fd(), pkt, &dst_for(sock.v6, dst), local).is_err() {
            p.drops.count(DropReason::SendFailed);
        }
        p.last_send = Some(now);
        if let Some(t) = self.ptimers.get_mut(id.0 as usize) {
            t.last_keepalive = Some(now);
        }
    }

    // ----- handshakes and sessions -----

    fn handle_hs_output(
        &mut self,
        outs: Vec<Output>,
        reply_via: Option<(usize, Option<IpAddr>)>,
        now: Instant,
    ) {
        // Initial handshakes name their peer only in the HandshakeSent event that follows.
        let mut sent_to: Vec<(SocketAddr, PeerId)> = Vec::new();
        for o in &outs {
            if let Output::Event(ev) = o {
                if let Event::HandshakeSent {
                    peer: Some(k),
                    remote,
                    ..
                } = ev.as_ref()
                {
                    if let Some(id) = self.peers.by_key(k.as_bytes()) {
                        sent_to.push((canonical(*remote), id));
                    }
                }
            }
        }
        for o in outs {
            match o {
                Output::Send { to, bytes } => {
                    let to = canonical(to);
                    let via = match reply_via {
                        Some(v) => Some(v),
                        None => {
                            let id = sent_to
                                .iter()
                                .find(|(a, _)| *a == to)
                                .map(|(_, id)| *id)
                                .or_else(|| self.peers.by_addr(&to));
                            match id {
                                Some(id) => self
                                    .peer_socket(id, to)
                                    .map(|s| (s, self.peers.get(id).and_then(|p| p.local))),
                                None => self.any_socket(&to).map(|s| (s, None)),
                            }
                        }
                    };
                    let Some((sidx, local)) = via else { continue };
                    let Some(s) = self.sockets.get(sidx) else {
                        continue;
                    };
                    if let Err(e) = io::send_one(s.fd.as_fd(), &bytes, &dst_for(s.v6, to), local) {
                        self.log.log(LogLevel::Debug, || {
                            format!("sending handshake to {}: {e}", fmt_addr(&to))
                        });
                    }
                }
                Output::Event(ev) => self.on_hs_event(*ev, reply_via, now),
            }
        }
    }

    fn on_hs_event(&mut self, ev: Event, via: Option<(usize, Option<IpAddr>)>, now: Instant) {
        match ev {
            Event::SessionEstablished(e) => {
                let known = self.peers.by_key(e.peer.as_bytes());
                let Some(id) = known.or_else(|| self.add_dynamic_peer(e.peer.as_bytes())) else {
                    self.log.log(LogLevel::Warn, || {
                        "session with a peer unknown to the engine".to_owned()
                    });
                    return;
                };
                let initiator = e.role == crate::handshake::Role::Initiator;
                self.establish(
                    id,
                    &e.method,
                    &e.session_key,
                    initiator,
                    e.compat,
                    e.remote,
                    via,
                    now,
                );
            }
            Event::HandshakeFailed {
                remote,
                peer,
                reason,
            } => {
                let mtu = peer
                    .as_ref()
                    .and_then(|k| self.peers.by_key(k.as_bytes()))
                    .and_then(|id| self.peers.get(id))
                    .map_or(self.settings.mtu, |p| p.params.mtu);
                let (level, line) = fail_line(&remote, peer.as_ref(), &reason, mtu);
                self.log.log(level, || line);
                let id = peer.as_ref().and_then(|k| self.peers.by_key(k.as_bytes()));
                self.count_drop(id, DropReason::Handshake);
            }
            Event::HandshakeSent {
                peer,
                remote,
                run_on_connect,
            } => {
                let id = peer.as_ref().and_then(|k| self.peers.by_key(k.as_bytes()));
                let name = id.map_or_else(String::new, |i| self.peer_display(i));
                self.log.log(LogLevel::Verbose, || {
                    format!("sending handshake to {name}[{}]...", fmt_addr(&remote))
                });
                if run_on_connect {
                    self.run_hook(HookKind::Connect, id);
                }
            }
            Event::AddressClaimed { previous_owner, .. } => {
                if let Some(other) = self.peers.by_key(previous_owner.as_bytes()) {
                    self.reset_peer(other, now, true);
                }
            }
            Event::VerifyRequested { key, remote } => {
                let mut accepted = false;
                if self.settings.verify_group.is_some() {
                    let env = HookEnv {
                        local_key: Some(*self.hs.own_public().as_bytes()),
                        peer_key: Some(*key.as_bytes()),
                        remote: Some(remote),
                        local: via
                            .and_then(|(s, l)| Some((l?, self.sockets.get(s)?.bound?.port())))
                            .map(|(l, port)| SocketAddr::new(l, port)),
                        interface: self
                            .tap
                            .and_then(|t| self.iface_at(t))
                            .map(|i| i.name.clone()),
                        ..HookEnv::default()
                    };
                    accepted = match self.provider.verify(&env) {
                        Ok(v) => v,
                        Err(e) => {
                            self.log
                                .log(LogLevel::Warn, || format!("on verify failed: {e}"));
                            false
                        }
                    };
                }
                if !accepted {
                    self.log.log(LogLevel::Verbose, || {
                        format!(
                            "ignoring handshake from {} (unknown key {})",
                            fmt_addr(&remote),
                            key.to_hex()
                        )
                    });
                }
                let out = self.hs.verify_result(&key, accepted, now);
                self.handle_hs_output(out, via, now);
            }
        }
    }

    /// A peer `on verify` accepted: it joins the verify group, floats, and gets its interface
    /// (tun/multitap) when established.
    fn add_dynamic_peer(&mut self, key: &[u8; 32]) -> Option<PeerId> {
        let group = self.settings.verify_group?;
        let params = PeerParams {
            name: None,
            key: *key,
            remotes: Vec::new(),
            float: true,
            ifname: self.settings.dynamic_interface(key),
            mtu: self.settings.mtu,
        };
        let id = self.peers.add(params);
        if let Some(p) = self.peers.get_mut(id) {
            p.dynamic = true;
        }
        self.ptimers.push(PeerTimers::default());
        self.settings.peer_groups.push(group);
        Some(id)
    }

    /// A bound socket that can reach `dst` (for handshakes to addresses of no peer).
    fn any_socket(&self, dst: &SocketAddr) -> Option<usize> {
        self.sockets
            .iter()
            .position(|s| s.peer.is_none() && family_matches(s.v6, s.bound, dst))
    }

    #[allow(clippy::too_many_arguments)]
    fn establish(
        &mut self,
        id: PeerId,
        method_name: &str,
        key: &[u8],
        initiator: bool,
        compat: bool,
        remote: SocketAddr,
        via: Option<(usize, Option<IpAddr>)>,
        now: Instant,
    ) {
        let Some(spec) = method::by_name(method_name) else {
            return;
        };
        let crypto = match spec.session(key, initiator, compat, now) {
            Ok(c) => c,
            Err(e) => {
                self.log
                    .log(LogLevel::Error, || format!("unable to set up session: {e}"));
                return;
            }
        };
        let remote = canonical(remote);
        if let Some(displaced) = self.peers.set_addr(id, remote) {
            self.reset_peer(displaced, now, true);
        }
        let splay = (self.next_random() % 1_000_000) as f64 / 1_000_000.0;
        let lt = self.timings.lifetimes;
        let info = SessionInfo {
            method: method_name,
            initiator,
            compat,
            expires: !spec.is_null(),
        };
        let session = Session::new(crypto, info, now, &lt, splay);
        let first = {
            let Some(p) = self.peers.get_mut(id) else {
                return;
            };
            if let Some((s, local)) = via {
                p.socket = Some(s);
                p.local = local;
            }
            p.sessions.install(session, now, &lt);
            p.last_recv = Some(now);
            let first = !p.connected;
            p.connected = true;
            if first {
                p.connected_since = Some(now);
            }
            first
        };
        if via.is_none() {
            let sock = self.peer_socket(id, remote);
            if let Some(p) = self.peers.get_mut(id) {
                p.socket = p.socket.or(sock);
            }
        }
        let dynamic = self.peers.get(id).is_some_and(|p| p.dynamic);
        if self.settings.mode != Mode::Tap && (!self.settings.persist_interface || dynamic) {
            let _ = self.open_peer_iface(id);
        }
        let name = self.peer_display(id);
        if first {
            self.log.log(LogLevel::Info, || {
                format!("connection with {name} established.")
            });
        }
        self.log.log(LogLevel::Verbose, || {
            format!(
                "new session with {name} established using method `{method_name}'{}.",
                if compat { " (compat mode)" } else { "" }
            )
        });
        if first {
            self.run_hook(HookKind::Establish, Some(id));
        }
        if !initiator {
            // The responder proves it has the keys at once (protocol.md §4.4 step 6).
            self.send_keepalive(id, now);
        }
        self.schedule(id, now);
    }

    /// The socket to reach `remote` for peer `id`: its current one, a bound one of the right
    /// family, or a new per-connection socket from the provider.
    fn peer_socket(&mut self, id: PeerId, remote: SocketAddr) -> Option<usize> {
        if let Some(s) = self.peers.get(id).and_then(|p| p.socket) {
            if self
                .sockets
                .get(s)
                .is_some_and(|s| family_matches(s.v6, s.bound, &remote) || s.peer == Some(id))
            {
                return Some(s);
            }
        }
        if let Some(i) = self.sockets.iter().position(|s| {
            s.peer.is_none() && s.bound.is_some() && family_matches(s.v6, s.bound, &remote)
        }) {
            return Some(i);
        }
        if let Some(i) = self.sockets.iter().position(|s| s.peer == Some(id)) {
            return Some(i);
        }
        match self.provider.peer_socket(id, remote) {
            Ok(fd) => match self.add_socket(fd, None, Some(id)) {
                Ok(i) => {
                    if let Some(p) = self.peers.get_mut(id) {
                        p.socket = Some(i);
                    }
                    Some(i)
                }
                Err(_) => None,
            },
            Err(e) => {
                self.log.log(LogLevel::Error, || {
                    format!("unable to open socket for {}: {e}", id.0)
                });
                None
            }
        }
    }

    fn peer_display(&self, id: PeerId) -> String {
        self.peers
            .get(id)
            .map(|p| p.to_string())
            .unwrap_or_else(|| "(null)".into())
    }

    fn check_refresh(&mut self, id: PeerId, now: Instant) {
        let due = self
            .peers
            .get_mut(id)
            .and_then(|p| p.sessions.current.as_mut())
            .is_some_and(|s| s.take_refresh(now));
        if due {
            let key = self.peers.get(id).map(|p| p.params.key);
            if let Some(k) = key.and_then(|k| PublicKey::from_bytes(&k).ok()) {
                let name = self.peer_display(id);
                self.log.log(LogLevel::Verbose, || {
                    format!("refreshing session with {name}")
                });
                let out = self.hs.initiate(&k, now);
                self.handle_hs_output(out, None, now);
            }
        }
    }

    fn reset_peer(&mut self, id: PeerId, now: Instant, log_it: bool) {
        let name = self.peer_display(id);
        let was = self
            .peers
            .get(id)
            .is_some_and(|p| p.sessions.is_established());
        if was {
            self.run_hook(HookKind::Disestablish, Some(id));
        }
        let mut key = None;
        if let Some(p) = self.peers.get_mut(id) {
            p.sessions.clear();
            p.connected = false;
            p.connected_since = None;
            p.local = None;
            p.last_recv = None;
            key = Some(p.params.key);
        }
        if let Some(k) = key.and_then(|k| PublicKey::from_bytes(&k).ok()) {
            self.hs.peer_reset(&k, now);
        }
        self.peers.clear_addr(id);
        self.macs.forget_peer(id);
        let dynamic = self.peers.get(id).is_some_and(|p| p.dynamic);
        if was && self.settings.mode != Mode::Tap && (dynamic || !self.settings.persist_interface) {
            self.close_peer_iface(id);
        }
        if was && log_it {
            self.log.log(LogLevel::Info, || {
                format!("connection with {name} disestablished.")
            });
        }
        self.schedule(id, now);
    }

    // ----- timers -----

    /// Makes sure a queue entry exists no later than the peer's next deadline.
    fn schedule(&mut self, id: PeerId, now: Instant) {
        let Some(p) = self.peers.get(id) else { return };
        let mut next: Option<Instant> = None;
        let mut add = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if p.sessions.is_established() {
            let base = p.last_send.unwrap_or(now);
            add(base + self.timings.keepalive);
            add(p.last_recv.unwrap_or(now) + self.timings.peer_timeout);
            if let Some(d) = p.sessions.next_deadline() {
                add(d);
            }
        }
        let Some(at) = next else { return };
        let Some(t) = self.ptimers.get_mut(id.0 as usize) else {
            return;
        };
        if t.queued.is_none_or(|q| at < q) {
            t.queued = Some(at);
            self.timers.push(at, Timer::Peer(id));
        }
    }

    fn run_timers(&mut self, now: Instant) {
        if self.hs.poll_timeout().is_some_and(|t| t <= now) {
            let out = self.hs.handle_timeout(now);
            self.handle_hs_output(out, None, now);
        }
        // Bounded: each peer has at most a few live entries, and every tick reschedules into
        // the future.
        for _ in 0..(self.timers.len() + 1) {
            let Some((at, t)) = self.timers.pop_due(now) else {
                break;
            };
            match t {
                Timer::Maintenance => {
                    self.macs.expire(now);
                    self.timers
                        .push(now + self.timings.maintenance, Timer::Maintenance);
                }
                Timer::Peer(id) => {
                    let Some(pt) = self.ptimers.get_mut(id.0 as usize) else {
                        continue;
                    };
                    if pt.queued != Some(at) {
                        continue;
                    }
                    pt.queued = None;
                    self.peer_tick(id, now);
                    self.schedule(id, now);
                }
            }
        }
    }

    fn peer_tick(&mut self, id: PeerId, now: Instant) {
        let Some(p) = self.peers.get_mut(id) else {
            return;
        };
        if p.sessions.is_established() {
            let timed_out = p
                .last_recv
                .is_some_and(|t| now >= t + self.timings.peer_timeout);
            let expired = p.sessions.expire(now);
            if timed_out || expired {
                self.reset_peer(id, now, true);
                return;
            }
            self.check_refresh(id, now);
            let Some(p) = self.peers.get(id) else { return };
            let forced = p
                .sessions
                .current
                .as_ref()
                .and_then(|s| method::by_name(&s.method))
                .is_some_and(|m| m.forces_keepalives());
            let last = if forced {
                self.ptimers
                    .get(id.0 as usize)
                    .and_then(|t| t.last_keepalive)
            } else {
                p.last_send
            };
            if last.is_none_or(|t| now >= t + self.timings.keepalive) {
                self.send_keepalive(id, now);
            }
        }
    }

    // ----- hooks -----

    fn run_hook(&mut self, kind: HookKind, peer: Option<PeerId>) {
        let group = peer
            .and_then(|p| self.settings.peer_groups.get(p.0 as usize).copied())
            .unwrap_or(crate::config::GroupId::ROOT);
        if !self.settings.has_hook(group, kind) {
            return;
        }
        let mut env = HookEnv {
            local_key: Some(*self.hs.own_public().as_bytes()),
            ..HookEnv::default()
        };
        let iface = match (self.settings.mode, peer) {
            (Mode::Tap, _) => self.tap,
            (_, Some(p)) => self.peers.get(p).and_then(|p| p.iface),
            _ => None,
        };
        if let Some(i) = iface.and_then(|i| self.iface_at(i)) {
            env.interface = Some(i.name.clone());
            env.interface_mtu = Some(i.mtu);
        }
        if let Some(p) = peer.and_then(|p| self.peers.get(p)) {
            env.peer_key = Some(p.params.key);
            env.peer_name = p.params.name.clone();
            env.remote = p.addr;
            if let (Some(l), Some(s)) = (p.local, p.socket.and_then(|s| self.sockets.get(s))) {
                env.local = Some(SocketAddr::new(l, s.bound.map_or(0, |b| b.port())));
            }
        }
        if self.settings.mode == Mode::Tap && matches!(kind, HookKind::Up | HookKind::Down) {
            env.local_key = None;
        }
        let call = HookCall {
            kind,
            peer,
            group,
            env,
        };
        if let Err(e) = self.provider.run_hook(&call) {
            self.log.log(LogLevel::Warn, || format!("hook failed: {e}"));
        }
    }
}

fn socket_is_v6(fd: &OwnedFd) -> bool {
    let mut domain: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid fd; out-pointers to live locals of the advertised size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut domain as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0 && domain == libc::AF_INET6
}

/// `192.0.2.1:10000`, `[2001:db8::1]:10000` (config.md §6.1).
pub fn fmt_addr(a: &SocketAddr) -> String {
    match a {
        SocketAddr::V4(v) => v.to_string(),
        SocketAddr::V6(v) => format!("[{}]:{}", v.ip(), v.port()),
    }
}

fn fmt_bind(a: &SocketAddr) -> String {
    if a.ip().is_unspecified() && a.is_ipv6() {
        format!("any:{}", a.port())
    } else {
        fmt_addr(a)
    }
}

#[allow(dead_code)]
fn _assert_send<P: Provider + Send>(e: Engine<P>) -> impl Send {
    e
}

impl<P: Provider> Drop for Engine<P> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A [`MethodSpec`] list check: every configured method exists (the config loader checks the
/// names; this guards the engine's own use).
pub fn methods_of(names: &[String]) -> Vec<MethodSpec> {
    names.iter().filter_map(|n| method::by_name(n)).collect()
}
