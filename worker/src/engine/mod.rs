//! The protocol engine: one single-threaded epoll loop over the UDP sockets and TUN/TAP
//! descriptors the helper hands over. Datagrams go to the handshake or to the peer's method
//! sessions; interface packets go to the peers. Everything privileged (new interfaces,
//! per-connection sockets, hooks) goes through a [`Provider`].
//!
//! Who drives it: `runtime::run` builds it ([`Engine::new`]) from what start-up handed
//! over, [`Engine::watch`]es the helper socket and the status socket, and calls
//! [`Engine::poll_once`] in a loop; notices from the helper become [`Engine::reset_all`],
//! [`Engine::reload`], [`Engine::verify_done`], [`Engine::hooks_free`] and, at `Stop`,
//! [`Engine::shutdown`].
//!
//! # The map
//!
//! [`Engine::poll_once`] waits on one epoll set (tokens: UDP sockets, interfaces, watched
//! descriptors), then runs due timers and flushes the send batch.
//!
//! Outbound, interface to network (`tx.rs`):
//!
//! 1. `on_iface_readable`: an interface is readable; a peer's own TUN device goes to
//!    `drain_peer_iface`, the shared TAP device to `drain_tap`.
//! 2. `drain_peer_iface`: up to `IFACE_BUDGET` packets, each read by [`io::tun_read`]
//!    straight into the next `sendmmsg` slot of the [`io::SendBatch`], behind `HEAD` bytes
//!    of headroom for the method header.
//!    `drain_tap` reads the frame into `scratch`, looks up the destination MAC
//!    ([`tap::MacTable`]) and `send_scratch_to_targets` copies it to each target's slot.
//! 3. `route`: the peer's socket, address and local address; a different socket than the
//!    batch's, or a full batch, `flush`es first.
//! 4. `encrypt_slot_and_commit`: the current session ([`session::Sessions::for_send`])
//!    encrypts in place ([`method::MethodSession`]) and the slot is committed with its
//!    destination and source address.
//! 5. `flush`: [`io::SendBatch::flush`] sends the batch with one `sendmmsg`; `tx` is
//!    counted per peer for what left, errors are counted as drops, and a source address
//!    that vanished goes to `local_address_gone`.
//!
//! Inbound, network to interface (`rx.rs`):
//!
//! 1. `on_socket_readable`: up to `UDP_BUDGET` batches, each one `recvmmsg`
//!    ([`io::RecvBatch::recv`]) into preallocated buffers, with the local address from
//!    IP_PKTINFO.
//! 2. `on_datagram`, in two passes over the batch (`rx::Pass`): first established
//!    peers' data, then everything else. It checks the sender ([`peer::PeerTable::by_addr`]) and
//!    the packet type (docs/protocol.md §1.3): data goes on to step 3; handshakes go to
//!    [`Handshake::handle_handshake`] within [`HANDSHAKE_BUDGET`], and their outputs to `handle_hs_output` (`events.rs`: send
//!    the reply, install a session, run hooks).
//! 3. `on_data`: the peer's sessions decrypt in place ([`session::Sessions::decrypt`]:
//!    replay window, key rollover); a first packet under new keys confirms the session.
//! 4. Delivery: [`io::tun_write`] to the peer's device (tun/multitap), or in tap mode
//!    `on_tap_frame_from_peer` (MAC learning, `forward` to other peers through the
//!    outbound steps 3-5).
//!
//! Timers (`ticks.rs`, `run_timers`): keepalives, handshake retries, peer timeouts,
//! session refresh and MAC expiry.
//!
//! Packet path: datagrams arrive in batches (`recvmmsg`) in preallocated buffers and are
//! decrypted in place; interface packets are read behind [`method::MAX_OVERHEAD`] bytes of
//! headroom in a `sendmmsg` slot and encrypted there. No allocation per packet. Every drop is
//! counted per peer and reason ([`PeerStatus::drops`]), or globally when no peer is known.

pub mod hide;
pub mod hs;
pub mod io;
pub mod log;
pub mod offload;
pub mod peer;
pub mod provider;
pub mod session;
pub mod tap;
pub mod timers;

mod drops;
mod events;
mod hookq;
mod hsq;
mod reload;
mod rx;
mod settings;
mod setup;
mod ticks;
mod tx;

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::config::{Config, HookKind, LogLevel, Mode};
use crate::handshake::{Event, Handshake, Output};
use crate::keys::PublicKey;
use crate::method::{self, MethodSession};

pub use hide::Hide;
pub use hookq::MAX_QUEUED_HOOKS;
pub use hs::{error_text, fail_line, HsSetupError};
pub use log::Logger;
pub use peer::{DropCounters, DropReason, PeerId, PeerParams, Traffic};
pub use provider::{HookCall, HookEnv, Iface, IfaceKind, IfaceRequest, Provider, Verdict};
pub use session::Lifetimes;
pub use settings::system_resolve;
pub use settings::{interface_name, SettingsError};

use io::{RecvBatch, SendBatch};
use peer::{canonical, PeerTable};
use session::{Session, SessionInfo, Which};
use tap::{Dest, MacTable};
use timers::{Timer, TimerQueue};

/// Headroom in front of every payload in the send buffers: the largest method header.
const HEAD: usize = method::MAX_OVERHEAD;
/// L2TP control header (docs/protocol.md §1.2).
const L2TP_CTRL: usize = 12;
/// Largest handshake packet fastd builds; the receive buffer holds at least this.
const MAX_HANDSHAKE: usize = 1232;
/// Interface packets handled per readiness event before looking at other descriptors.
const IFACE_BUDGET: usize = 256;
/// UDP batches handled per readiness event.
const UDP_BUDGET: usize = 8;
/// Handshakes (and handshake-triggering data) from addresses of no peer handled per loop
/// turn, so a flood delays established peers' packets by at most this much handshake work.
/// Beyond it they wait in a bounded queue (`hsq`) for later turns; beyond that they are
/// dropped and counted ([`DropReason::HandshakeBudget`]).
pub const HANDSHAKE_BUDGET: usize = 64;

/// fastd's timers (docs/config.md §6.10). Tests may shorten ours; the real fastd keeps its own.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    pub keepalive: Duration,
    pub peer_timeout: Duration,
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
    /// The socket's own address (getsockname), for the hooks' LOCAL_ADDRESS/LOCAL_PORT.
    local: Option<SocketAddr>,
}

struct IfaceSlot {
    fd: OwnedFd,
    name: String,
    mtu: u16,
    peer: Option<PeerId>,
    /// Packets carry a virtio-net header (reads may be super-packets to split).
    vnet: bool,
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

/// The socket index (and our local address) a handshake came in on, to answer through it.
type ReplyVia = Option<(usize, Option<IpAddr>)>;

pub struct Engine<P: Provider> {
    settings: settings::Settings,
    timings: Timings,
    provider: P,
    hs: Handshake,
    log: Logger,
    peers: PeerTable<method::Session>,
    ptimers: Vec<PeerTimers>,
    /// Traffic of peers before their last reset or deletion: the status socket's totals
    /// never go back, while a peer's own counters start over at every reset.
    retired: Traffic,
    /// Asynchronous `on verify` runs still out: the handshake's source and the socket to
    /// answer through. Bounded by the helper's cap on running hooks.
    pending_verify: std::collections::HashMap<[u8; 32], (SocketAddr, ReplyVia)>,
    /// `None` = closed (per-connection sockets of reset peers); indices are epoll tokens.
    sockets: Vec<Option<Sock>>,
    /// `None` = closed (non-persistent interfaces of reset peers); indices are epoll tokens.
    ifaces: Vec<Option<IfaceSlot>>,
    epoll: OwnedFd,
    recv: Option<RecvBatch>,
    /// Each queued datagram is tagged with its peer and payload size (for the statistics).
    send: SendBatch<Option<(PeerId, usize)>>,
    scratch: Box<[u8]>,
    /// Where super-packets from devices with a virtio-net header are read (allocated with
    /// the first such device).
    vnet_buf: Box<[u8]>,
    /// TCP segments from peers being coalesced for a device with a virtio-net header (UDP
    /// GRO on receive); allocated with the first such device.
    gro: Option<Box<offload::coalesce::Coalescer>>,
    targets: Vec<PeerId>,
    timers: TimerQueue,
    macs: MacTable,
    global_drops: DropCounters,
    rng: u64,
    /// The fd of the TAP interface in tap mode (index into `ifaces`).
    tap: Option<usize>,
    /// What is left of [`HANDSHAKE_BUDGET`] in this loop turn.
    hs_budget: usize,
    /// Handshake work beyond a turn's budget, for the next turns.
    hs_queue: hsq::HandshakeQueue,
    /// Hooks the privileged side had no free slot for ([`Engine::hooks_free`] runs them).
    hook_queue: hookq::HookQueue,
    /// `on connect` for handshakes to addresses of no peer: once per source address and
    /// interval.
    connect_rate_limit: crate::handshake::ratelimit::AddressRateLimit,
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
        let mut provider = provider;
        let mut settings =
            settings::Settings::from_config(config, &mut |h, p, f| provider.resolve(h, p, f))?;
        let hs = hs::from_config(config, &settings.peers, timings.pre_v22, Instant::now())?;
        // The peer table owns the parameters from here on; a second copy of every peer's
        // would only cost memory (thousands of peers on a gateway).
        let peers = PeerTable::new(std::mem::take(&mut settings.peers));
        // SAFETY: plain syscall; the result is checked and owned below.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(EngineError::Epoll(std::io::Error::last_os_error()));
        }
        // SAFETY: ep is a fresh descriptor that nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(ep) };
        let max_payload = usize::from(settings.max_mtu) + tap::ETH_HLEN;
        let mut recv_len = (max_payload + method::MAX_OVERHEAD + L2TP_CTRL).max(MAX_HANDSHAKE) + 1;
        if gro_mode(settings.mode) {
            recv_len = recv_len.max(io::GRO_RECV_LEN);
        }
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
            retired: Traffic::default(),
            pending_verify: std::collections::HashMap::new(),
            sockets: Vec::new(),
            ifaces: Vec::new(),
            epoll,
            recv: Some(RecvBatch::new(recv_len)),
            send: SendBatch::new(HEAD + max_payload + 64),
            scratch: vec![0u8; HEAD + max_payload + 64].into_boxed_slice(),
            vnet_buf: Box::default(),
            gro: None,
            targets: Vec::with_capacity(n),
            timers: TimerQueue::new(),
            macs: MacTable::new(timings.mac_expiry),
            global_drops: DropCounters::default(),
            rng: u64::from_le_bytes(seed) | 1,
            tap: None,
            hs_budget: HANDSHAKE_BUDGET,
            hs_queue: hsq::HandshakeQueue::default(),
            hook_queue: hookq::HookQueue::default(),
            connect_rate_limit: Default::default(),
            settings,
        };
        for s in desc.sockets {
            e.add_socket(s.fd, Some(s.addr), None)
                .map_err(EngineError::Epoll)?;
        }
        e.open_interfaces(desc.tap)?;
        let now = Instant::now();
        e.timers
            .push(now + e.timings.maintenance, Timer::Maintenance);
        Ok(e)
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

    /// All traffic since start (docs/config.md §6.8: the totals are never reset).
    pub fn total_traffic(&self) -> Traffic {
        let mut t = self.retired;
        for (_, p) in self.peers.iter().filter(|(_, p)| !p.deleted) {
            t.add(&p.traffic);
        }
        t
    }

    /// Folds a peer's counters into the totals and starts them over (peer reset).
    pub(super) fn retire_traffic(&mut self, id: PeerId) {
        if let Some(p) = self.peers.get_mut(id) {
            self.retired.add(&p.traffic);
            p.traffic = Traffic::default();
        }
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
        self.hs_budget = HANDSHAKE_BUDGET;
        self.run_deferred_handshakes();
        let now = Instant::now();
        let wait = match self.hs.poll_timeout() {
            // Deferred handshake work left: look at the sockets and come straight back.
            _ if !self.hs_queue.is_empty() => Duration::ZERO,
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

    /// SIGUSR2 (docs/config.md §6.2): every peer is reset (disestablish hooks, handshakes
    /// start over) and dynamic peers are deleted.
    pub fn reset_all(&mut self) {
        let now = Instant::now();
        self.log.log(LogLevel::Info, || {
            "triggered reset of all connections".to_owned()
        });
        // Deleted peers are skipped: a dynamic one is gone already, and resetting a deleted
        // one would reset the handshake state of a newer peer with the same key.
        let ids = self.live_ids();
        for id in ids {
            if self.peers.get(id).is_some_and(|p| p.dynamic) {
                self.delete_logged(id, now);
            } else {
                self.reset_peer(id, now);
            }
        }
        self.flush();
    }

    /// Peers not deleted, oldest first.
    fn live_ids(&self) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| !p.deleted)
            .map(|(id, _)| id)
            .collect()
    }

    /// Resets every peer (disestablish hooks and fastd's `disestablished` line, docs/config.md
    /// §4.2) and runs the `down` hooks of peer interfaces. Dynamic peers are deleted, with
    /// fastd's `deleting peer` line.
    pub fn shutdown(&mut self) {
        let now = Instant::now();
        let ids = self.live_ids();
        for id in ids.into_iter().rev() {
            if self.peers.get(id).is_some_and(|p| p.dynamic) {
                // Its interface (only while established) goes with the reset.
                self.delete_logged(id, now);
                continue;
            }
            if self
                .peers
                .get(id)
                .is_some_and(|p| p.sessions.is_established())
            {
                self.reset_peer(id, now);
            }
            if self.peers.get(id).is_some_and(|p| p.iface.is_some()) {
                self.run_hook(HookKind::Down, Some(id));
            }
        }
        self.flush();
    }

    pub(super) fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

/// Slot lookup in the socket table, skipping closed slots.
trait LiveSlots<T> {
    fn get_live(&self, i: usize) -> Option<&T>;
}

impl<T> LiveSlots<T> for Vec<Option<T>> {
    fn get_live(&self, i: usize) -> Option<&T> {
        self.get(i).and_then(Option::as_ref)
    }
}

fn socket_name(fd: &OwnedFd) -> Option<SocketAddr> {
    // SAFETY: a zeroed sockaddr_storage is a valid out-parameter.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: valid fd; ss and len are live and sized as advertised.
    let rc = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    io::sockaddr_to_std(&ss).map(canonical)
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

/// A bind address in `bound to` lines (fastd's `%B`): never hidden, whatever `hide ip
/// addresses` says.
fn fmt_bind(a: &SocketAddr) -> String {
    if a.ip().is_unspecified() && a.is_ipv6() {
        format!("any:{}", a.port())
    } else {
        Hide::default().addr(a).to_string()
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

/// Sockets get UDP GRO (and the receive buffers room for its runs) where the engine
/// coalesces what they carry: tun mode, whose devices have virtio-net headers.
fn gro_mode(mode: Mode) -> bool {
    mode == Mode::Tun
}

#[cfg(test)]
mod tests;
