//! What the worker declares, once, before it gets its first descriptor.

use crate::types::{
    AbsPath, HookCommand, HookId, IfName, IfNamePattern, Mode, Mtu, PeerName, PublicKey,
};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Upper bounds that keep a sealed policy small; a manifest that needs more is refused.
/// Large community gateways configure tens of thousands of peers in peer directories.
pub const MAX_PEERS: usize = 65536;
pub const MAX_HOOKS: usize = 1024;
pub const MAX_BINDS: usize = 64;
pub const MAX_PEER_DIRS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub mode: Mode,
    /// The global `interface` (empty: the kernel chooses).
    pub interface: IfNamePattern,
    /// The global `mtu`.
    pub mtu: Mtu,
    /// fastd's `persist interface` (interfaces of static peers exist while the peer is
    /// configured, not only while a session is up). Not the kernel's TUNSETPERSIST.
    pub persist_interface: bool,
    pub binds: Vec<BindSpec>,
    /// `packet mark` (SO_MARK on every UDP socket), None when 0/unset.
    pub packet_mark: Option<u32>,
    /// Configured peers; [`crate::PeerId`] indexes this list.
    pub peers: Vec<PeerSpec>,
    /// `on verify` is configured: unknown keys may appear in hooks and get interfaces.
    pub dynamic_peers: bool,
    /// Every hook command of the config; [`crate::HookId`] indexes this list.
    pub hooks: Vec<HookSpec>,
    /// The root group's `on down` (TAP interface, and fallback on teardown).
    pub root_down: Option<HookId>,
    pub status_socket: Option<AbsPath>,
    /// `include peers from` directories (absolute, physical), readable after sealing.
    pub peer_dirs: Vec<AbsPath>,
    /// The identity the worker runs as.
    pub uid: u32,
    pub gid: u32,
    /// The status socket's owner (uid, gid): as in fastd, the configured `user`'s uid and
    /// `group`'s (or the user's) gid, each 0 (root's) where not configured. Never an id
    /// other than 0 or the worker's own.
    pub status_owner: (u32, u32),
    /// Our own public key (`LOCAL_KEY`).
    pub local_key: PublicKey,
    /// The gateway extension: sealed into a [`crate::gateway::GatewayPolicy`];
    /// None when the config uses none of its statements.
    pub gateway: Option<crate::gateway::GatewayManifest>,
    /// Where the helper's own log lines go after sealing, and whether the worker may ask
    /// for a syslog socket.
    pub log: crate::log::LogSpec,
}

/// One `bind` statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindSpec {
    /// Address and port; port 0 = a random port chosen once at start.
    pub addr: SocketAddr,
    /// `bind … interface "<if>"`: SO_BINDTODEVICE.
    pub interface: Option<IfName>,
    /// `bind <addr>` without a port: only a template for per-connection sockets.
    pub template: bool,
    /// `bind any`: one IPv6 socket with IPV6_V6ONLY off.
    pub dual_stack: bool,
}

/// One configured peer (main config, `include peer`, and peer-directory files read
/// before sealing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSpec {
    pub name: Option<PeerName>,
    pub key: PublicKey,
    /// The peer's own `interface`.
    pub interface: Option<IfName>,
    /// The peer's own `mtu` (tun/multitap).
    pub mtu: Option<Mtu>,
    /// The peer may get per-connection sockets (no usable `bind`, docs/config.md 6.9).
    pub per_connection: bool,
    /// The `on down` hook that applies to this peer (nearest group that has one).
    pub down: Option<HookId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HookKind {
    PreUp,
    Up,
    Down,
    PostDown,
    Connect,
    Establish,
    Disestablish,
    Verify,
}

impl HookKind {
    pub fn name(self) -> &'static str {
        match self {
            HookKind::PreUp => "pre-up",
            HookKind::Up => "up",
            HookKind::Down => "down",
            HookKind::PostDown => "post-down",
            HookKind::Connect => "connect",
            HookKind::Establish => "establish",
            HookKind::Disestablish => "disestablish",
            HookKind::Verify => "verify",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookSpec {
    pub kind: HookKind,
    pub command: HookCommand,
    /// fastd's sync flag (pre-up/post-down are always synchronous).
    pub sync: bool,
    /// The directory of the config file that holds the statement (docs/config.md 4.1).
    pub cwd: AbsPath,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("too many {0}")]
    TooMany(&'static str),
    #[error("hook id {0} out of range or of the wrong kind")]
    BadHookRef(u32),
    #[error("more than one {0} hook")]
    Duplicate(&'static str),
    #[error("the worker must not run as root")]
    RootWorker,
    #[error("the status socket's owner is neither root nor the worker's identity")]
    StatusOwner,
    #[error("dual-stack bind on an address that is not [::]")]
    BadDualStack,
    #[error("%n/%k interface pattern in TAP mode")]
    TapPattern,
    #[error("gateway: {0}")]
    Gateway(String),
}

impl Manifest {
    /// Structural checks done once, when the helper seals the manifest.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.peers.len() > MAX_PEERS {
            return Err(ManifestError::TooMany("peers"));
        }
        if self.hooks.len() > MAX_HOOKS {
            return Err(ManifestError::TooMany("hooks"));
        }
        if self.binds.len() > MAX_BINDS {
            return Err(ManifestError::TooMany("binds"));
        }
        if self.peer_dirs.len() > MAX_PEER_DIRS {
            return Err(ManifestError::TooMany("peer directories"));
        }
        if self.uid == 0 {
            return Err(ManifestError::RootWorker);
        }
        let (su, sg) = self.status_owner;
        if (su != 0 && su != self.uid) || (sg != 0 && sg != self.gid) {
            return Err(ManifestError::StatusOwner);
        }
        if self.mode == Mode::Tap && self.interface.parts().is_some() {
            return Err(ManifestError::TapPattern);
        }
        for b in &self.binds {
            let any6 = matches!(b.addr, SocketAddr::V6(a) if a.ip().is_unspecified());
            if b.dual_stack && !any6 {
                return Err(ManifestError::BadDualStack);
            }
        }
        for kind in [HookKind::PreUp, HookKind::PostDown, HookKind::Verify] {
            if self.hooks.iter().filter(|h| h.kind == kind).count() > 1 {
                return Err(ManifestError::Duplicate(kind.name()));
            }
        }
        let down_refs = self
            .peers
            .iter()
            .filter_map(|p| p.down)
            .chain(self.root_down);
        for id in down_refs {
            if self.hook(id).map(|h| h.kind) != Some(HookKind::Down) {
                return Err(ManifestError::BadHookRef(id.0));
            }
        }
        Ok(())
    }

    pub fn hook(&self, id: HookId) -> Option<&HookSpec> {
        self.hooks.get(usize::try_from(id.0).ok()?)
    }

    pub fn hook_of_kind(&self, kind: HookKind) -> Option<HookId> {
        let i = self.hooks.iter().position(|h| h.kind == kind)?;
        Some(HookId(u32::try_from(i).ok()?))
    }

    pub fn peer_by_key(&self, key: &PublicKey) -> Option<&PeerSpec> {
        self.peers.iter().find(|p| p.key == *key)
    }
}
