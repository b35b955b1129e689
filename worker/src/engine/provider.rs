//! What the engine asks of its privileged side: the privsep helper over IPC in production, a
//! direct implementation in the tests (which run as root in a network namespace).

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use super::peer::PeerId;
use crate::config::{AddressFamily, GroupId, HookKind};

/// TUN (IP packets) or TAP (Ethernet frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfaceKind {
    Tun,
    Tap,
}

/// An interface to create (or attach to, if a persistent device of that name exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceRequest {
    /// The name after fastd's naming rules; `None` lets the kernel pick (`tun0`, `tap0`...).
    pub name: Option<String>,
    pub kind: IfaceKind,
    pub mtu: u16,
    /// The peer it is for (tun/multitap), `None` for the single TAP interface.
    pub peer: Option<PeerId>,
    /// That peer's key and name: a peer from a reloaded directory or `on verify` has no
    /// fixed index the privileged side could know it by.
    pub owner: Option<([u8; 32], Option<String>)>,
}

/// An open interface: its descriptor (non-blocking is set by the engine) and actual name.
#[derive(Debug)]
pub struct Iface {
    pub fd: OwnedFd,
    pub name: String,
    /// The device carries a virtio-net header on every packet, with these TUNSETOFFLOAD
    /// flags accepted; None: plain packets. Providers ask for it on TUN devices.
    pub offload: Option<u32>,
}

/// Typed hook environment (docs/config.md §4.3); the privileged side renders fastd's variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookEnv {
    pub interface: Option<String>,
    pub interface_mtu: Option<u16>,
    pub local_key: Option<[u8; 32]>,
    pub peer_key: Option<[u8; 32]>,
    pub peer_name: Option<String>,
    pub local: Option<SocketAddr>,
    pub remote: Option<SocketAddr>,
}

/// A hook to run: which one (resolved for the peer's group), and its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookCall {
    pub kind: HookKind,
    pub peer: Option<PeerId>,
    /// The peer's group (root for global hooks): the hook to run is the nearest one set on
    /// the way up from it (`Config::hook_for`).
    pub group: GroupId,
    pub env: HookEnv,
}

pub trait Provider {
    /// Opens a TUN/TAP interface.
    fn open_iface(&mut self, req: &IfaceRequest) -> io::Result<Iface>;
    /// A per-connection UDP socket on a random port for a peer that no bound socket reaches
    /// (docs/config.md §6.9), of the family of `remote`.
    fn peer_socket(&mut self, peer: PeerId, remote: SocketAddr) -> io::Result<OwnedFd>;
    /// Runs a hook (sync hooks return when it finished).
    fn run_hook(&mut self, call: &HookCall) -> io::Result<()>;
    /// The engine closed its descriptor of interface `name` (non-persistent or dynamic
    /// peer reset): the privileged side removes the device.
    fn close_iface(&mut self, name: &str) {
        let _ = name;
    }
    /// Addresses of a hostname `remote` (docs/config.md §6.4). The default uses the system
    /// resolver, which does not work inside the sandbox: the worker resolves names before
    /// sealing (or through a socket the helper hands over) and answers from that.
    fn resolve(&mut self, host: &str, port: u16, family: AddressFamily) -> Vec<SocketAddr> {
        super::settings::system_resolve(host, port, family)
    }

    /// A peer's session is up: newly established, or established again from another
    /// address (a float). `iface` is the interface the peer's packets go to.
    fn peer_up(&mut self, peer: PeerId, addr: SocketAddr, iface: Option<&str>) {
        let _ = (peer, addr, iface);
    }

    /// A peer's session is gone (reset, timeout, deletion, shutdown).
    fn peer_down(&mut self, peer: PeerId) {
        let _ = peer;
    }

    /// Asks the `on verify` command about an unknown key (`PEER_KEY`, the addresses in
    /// `env`). Only called when `on verify` is configured. A `Pending` verdict arrives
    /// later through [`super::Engine::verify_done`].
    fn verify(&mut self, env: &HookEnv) -> io::Result<Verdict> {
        let _ = env;
        Ok(Verdict::Refused)
    }
}

/// What `on verify` said, or that it is still running (asynchronous verify).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Refused,
    Pending,
}

impl From<bool> for Verdict {
    fn from(accepted: bool) -> Self {
        if accepted {
            Verdict::Accepted
        } else {
            Verdict::Refused
        }
    }
}
