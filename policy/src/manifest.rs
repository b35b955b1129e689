//! What the worker declares, once, before it gets its first descriptor.

use crate::types::{
    AbsPath, HookCommand, HookId, IfName, IfNamePattern, Mode, Mtu, PeerName, PublicKey,
};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Upper bounds that keep a sealed policy small; a manifest that needs more is refused.
/// Large community gateways configure tens of thousands of peers in peer directories.
pub const MAX_PEERS: usize = 65536;
/// Most hook commands in a manifest.
pub const MAX_HOOKS: usize = 1024;
/// Most `bind` statements.
pub const MAX_BINDS: usize = 64;
/// Most `include peers from` directories.
pub const MAX_PEER_DIRS: usize = 64;

/// Everything the worker will ever ask the helper for, declared before the sandbox
/// and sealed into a [`crate::Policy`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The global `mode`.
    pub mode: Mode,
    /// The global `interface` (empty: the kernel chooses).
    pub interface: IfNamePattern,
    /// The global `mtu`.
    pub mtu: Mtu,
    /// fastd's `persist interface` (interfaces of static peers exist while the peer is
    /// configured, not only while a session is up). Not the kernel's TUNSETPERSIST.
    pub persist_interface: bool,
    /// The `bind` statements.
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
    /// `status socket`: the helper creates it here, once.
    pub status_socket: Option<AbsPath>,
    /// `include peers from` directories (absolute, physical), readable after sealing.
    pub peer_dirs: Vec<AbsPath>,
    /// The identity the worker runs as.
    pub uid: u32,
    /// The group the worker runs as.
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
    /// The worker handles virtio-net headers: it may ask for devices opened with
    /// IFF_VNET_HDR and TUNSETOFFLOAD (checksum, TSO, USO). Without it, offload is refused.
    pub offload: bool,
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
    /// The peer's name (None for an unnamed peer).
    pub name: Option<PeerName>,
    /// The peer's key.
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

/// When a hook runs (docs/config.md 4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HookKind {
    /// `on pre-up`.
    PreUp,
    /// `on up`.
    Up,
    /// `on down`.
    Down,
    /// `on post-down`.
    PostDown,
    /// `on connect`.
    Connect,
    /// `on establish`.
    Establish,
    /// `on disestablish`.
    Disestablish,
    /// `on verify`.
    Verify,
}

impl HookKind {
    /// fastd's name of the hook (`up`, `verify`, ...), for log lines.
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

/// One hook command of the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookSpec {
    /// When it runs.
    pub kind: HookKind,
    /// The shell command.
    pub command: HookCommand,
    /// fastd's sync flag (pre-up/post-down are always synchronous).
    pub sync: bool,
    /// The directory of the config file that holds the statement (docs/config.md 4.1).
    pub cwd: AbsPath,
}

/// Why a manifest cannot be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// More of something than the limits allow.
    #[error("too many {0}")]
    TooMany(&'static str),
    /// A hook id that does not name a hook of the right kind.
    #[error("hook id {0} out of range or of the wrong kind")]
    BadHookRef(u32),
    /// A hook that may exist once appears twice.
    #[error("more than one {0} hook")]
    Duplicate(&'static str),
    /// The worker's uid or gid is root's.
    #[error("the worker must not run as root")]
    RootWorker,
    /// The status socket would belong to someone else.
    #[error("the status socket's owner is neither root nor the worker's identity")]
    StatusOwner,
    /// A dual-stack bind on another address than `[::]`.
    #[error("dual-stack bind on an address that is not [::]")]
    BadDualStack,
    /// A `%n`/`%k` pattern in TAP mode.
    #[error("%n/%k interface pattern in TAP mode")]
    TapPattern,
    /// The gateway part is unusable.
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

    /// The hook `id` names.
    pub fn hook(&self, id: HookId) -> Option<&HookSpec> {
        self.hooks.get(usize::try_from(id.0).ok()?)
    }

    /// The first hook of `kind`.
    pub fn hook_of_kind(&self, kind: HookKind) -> Option<HookId> {
        let i = self.hooks.iter().position(|h| h.kind == kind)?;
        Some(HookId(u32::try_from(i).ok()?))
    }

    /// The configured peer with `key`.
    pub fn peer_by_key(&self, key: &PublicKey) -> Option<&PeerSpec> {
        self.peers.iter().find(|p| p.key == *key)
    }
}
