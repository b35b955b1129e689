//! The one place where the helper decides whether a request is allowed.
//!
//! [`check_unsealed`] covers the time before the manifest arrives; [`Policy::check`]
//! everything after. The helper tells the policy what it handed out
//! ([`Policy::note_opened`] and friends) so that checks can depend on it.

use crate::gateway::GatewayPolicy;
use crate::manifest::{HookKind, Manifest, ManifestError};
use crate::message::{HookEnv, PeerRef, Request};
use crate::types::{IfName, Mode, Mtu, PeerName, PublicKey};
use std::net::SocketAddr;

/// Why a request was refused; goes back to the worker and into the helper's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

fn refuse<T>(why: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal(why.into()))
}

/// Devices for peers the sealed manifest does not list (`on verify` peers, peers that a
/// reload adds from a peer directory), at most, on top of one per listed peer.
pub const MAX_UNLISTED_PEER_DEVICES: usize = 256;

/// What the helper does with one datagram from the worker: refuse it, or carry out
/// exactly this request. The only way from bytes to an action ([`Policy::decide`],
/// [`decide_unsealed`]); pure, so it can be fuzzed without a helper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The request is outside the policy (or malformed); the helper answers `Refused`.
    Refuse(Refusal),
    /// The request fits the policy; the helper carries it out.
    Execute(Request),
}

fn decode_request(bytes: &[u8]) -> Result<Request, Refusal> {
    crate::decode(bytes).map_err(|e| Refusal(format!("undecodable message ({e})")))
}

/// [`Decision`] before the manifest is sealed.
pub fn decide_unsealed(bytes: &[u8]) -> Decision {
    match decode_request(bytes).and_then(|r| check_unsealed(&r).map(|()| r)) {
        Ok(r) => Decision::Execute(r),
        Err(e) => Decision::Refuse(e),
    }
}

/// Before sealing only file reads and the manifest itself are allowed.
pub fn check_unsealed(req: &Request) -> Result<(), Refusal> {
    match req {
        Request::ReadFile { .. }
        | Request::ReadFileFrom { .. }
        | Request::ReadDir { .. }
        | Request::ReadDirFrom { .. }
        | Request::ResolveDir { .. }
        | Request::Manifest(_)
        | Request::ManifestPart { .. } => Ok(()),
        _ => refuse("not allowed before the manifest is sealed"),
    }
}

/// A sealed manifest plus what the helper has handed out under it.
#[derive(Debug, Clone)]
pub struct Policy {
    manifest: Manifest,
    open: Vec<(IfName, Mtu)>,
    status_socket_given: bool,
    pre_up_ran: bool,
    ready: bool,
    gateway: Option<GatewayPolicy>,
}

impl Policy {
    /// Validates the worker's manifest and seals it: from here on every request is checked
    /// against it.
    pub fn seal(manifest: Manifest) -> Result<Self, ManifestError> {
        manifest.validate()?;
        let mut gateway = manifest
            .gateway
            .clone()
            .map(GatewayPolicy::seal)
            .transpose()
            .map_err(|e| ManifestError::Gateway(e.to_string()))?;
        if let Some(g) = &mut gateway {
            let listed = manifest
                .peers
                .iter()
                .map(|p| crate::gateway::peer_label(p.name.as_ref().map(|n| n.as_str()), &p.key.0));
            g.listed_peers(listed.collect());
        }
        Ok(Self {
            manifest,
            open: Vec::new(),
            status_socket_given: false,
            pre_up_ran: false,
            ready: false,
            gateway,
        })
    }

    /// The sealed gateway part; the helper records what it did there.
    pub fn gateway_mut(&mut self) -> Option<&mut GatewayPolicy> {
        self.gateway.as_mut()
    }

    /// The sealed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Devices the helper holds open, oldest first.
    pub fn open_devices(&self) -> &[(IfName, Mtu)] {
        &self.open
    }

    /// The helper opened device `name` with `mtu` (hooks may name it from now on).
    pub fn note_opened(&mut self, name: IfName, mtu: Mtu) {
        self.open.push((name, mtu));
    }

    /// The helper closed device `name`.
    pub fn note_closed(&mut self, name: &IfName) {
        self.open.retain(|(n, _)| n != name);
    }

    /// The status socket was handed out (it is handed out once).
    pub fn note_status_socket(&mut self) {
        self.status_socket_given = true;
    }

    /// The worker announced readiness (`Ready` is allowed once).
    pub fn note_ready(&mut self) {
        self.ready = true;
    }

    /// A hook the policy accepted is run. `on establish`/`on disestablish` tell the
    /// gateway part which peers have a session (pins are only for those, or for peers
    /// the manifest lists).
    pub fn note_hook(&mut self, kind: HookKind, env: &HookEnv) {
        if kind == HookKind::PreUp {
            self.pre_up_ran = true;
        }
        let (Some(g), Some(key)) = (self.gateway.as_mut(), env.peer_key) else {
            return;
        };
        let label = crate::gateway::peer_label(env.peer_name.as_ref().map(|n| n.as_str()), &key.0);
        match kind {
            HookKind::Establish => g.session(label, true),
            HookKind::Disestablish => g.session(label, false),
            _ => {}
        }
    }

    /// [`Decision`] under the sealed policy.
    pub fn decide(&self, bytes: &[u8]) -> Decision {
        match decode_request(bytes).and_then(|r| self.check(&r).map(|()| r)) {
            Ok(r) => Decision::Execute(r),
            Err(e) => Decision::Refuse(e),
        }
    }

    /// The one check of a decoded request against the sealed policy.
    pub fn check(&self, req: &Request) -> Result<(), Refusal> {
        match req {
            Request::Manifest(_) | Request::ManifestPart { .. } => {
                refuse("the manifest is already sealed")
            }
            Request::ResolveDir { .. } => refuse("not allowed after sealing"),
            Request::ReadDir { path } | Request::ReadDirFrom { path, .. } => {
                if self.manifest.peer_dirs.contains(path) {
                    Ok(())
                } else {
                    refuse("not a sealed peer directory")
                }
            }
            Request::ReadFile { path } | Request::ReadFileFrom { path, .. } => {
                self.check_peer_file(path.as_str())
            }
            Request::OpenTun {
                name,
                mode,
                mtu,
                owner,
                offload,
            } => {
                if *offload && !self.manifest.offload {
                    return refuse("offload was not asked for in the manifest");
                }
                match (owner, mode) {
                    (None, Mode::Tap) => {}
                    (Some(_), Mode::Tap) | (None, _) => {
                        return refuse("interface owner does not fit the mode")
                    }
                    (Some(o), _) => self.check_peer(&o.key, o.name.as_ref())?,
                }
                self.check_open_tun(name.as_ref(), *mode, *mtu, owner.as_ref())
            }
            Request::CloseTun { name } => {
                if self.open.iter().any(|(n, _)| n == name) {
                    Ok(())
                } else {
                    refuse("no such open device")
                }
            }
            Request::BindUdp {
                addr,
                interface,
                mark,
                peer,
            } => {
                if *mark != self.manifest.packet_mark {
                    return refuse("packet mark differs from the configured one");
                }
                match peer {
                    None => self.check_bind(addr, interface.as_ref()),
                    Some(id) => self.check_per_connection(id.0, addr, interface.as_ref()),
                }
            }
            Request::StatusSocket => match (&self.manifest.status_socket, self.status_socket_given)
            {
                (None, _) => refuse("no status socket configured"),
                (Some(_), true) => refuse("status socket already handed out"),
                (Some(_), false) => Ok(()),
            },
            Request::OpenSyslog => match self.manifest.log.syslog {
                Some(_) => Ok(()),
                None => refuse("syslog is not configured"),
            },
            Request::Ready if self.ready => refuse("ready was already announced"),
            Request::Ready => Ok(()),
            Request::RunHook { hook, env } => {
                let Some(spec) = self.manifest.hook(*hook) else {
                    return refuse("no such hook");
                };
                self.check_hook_env(spec.kind, env)
            }
            Request::Gateway(g) => match &self.gateway {
                None => refuse("no gateway statements configured"),
                Some(gw) => gw.check(g).map_err(|e| Refusal(e.to_string())),
            },
        }
    }

    fn check_peer_file(&self, path: &str) -> Result<(), Refusal> {
        let Some((dir, name)) = path.rsplit_once('/') else {
            return refuse("not a file in a sealed peer directory");
        };
        let dir_ok = self
            .manifest
            .peer_dirs
            .iter()
            .any(|d| d.as_str().trim_end_matches('/') == dir);
        if dir_ok && !name.is_empty() && !name.starts_with('.') {
            Ok(())
        } else {
            refuse("not a file in a sealed peer directory")
        }
    }

    fn check_open_tun(
        &self,
        name: Option<&IfName>,
        mode: Mode,
        mtu: Mtu,
        owner: Option<&PeerRef>,
    ) -> Result<(), Refusal> {
        let m = &self.manifest;
        if mode != m.mode {
            return refuse("mode differs from the configured one");
        }
        if self.open.len() >= self.device_cap() {
            return refuse(format!(
                "too many devices (the configuration needs at most {})",
                self.device_cap()
            ));
        }
        let mtu_ok =
            mtu == m.mtu || (mode != Mode::Tap && m.peers.iter().any(|p| p.mtu == Some(mtu)));
        if !mtu_ok {
            return refuse("MTU differs from the configured ones");
        }
        match name {
            None if mode != Mode::Tap || m.interface.as_str().is_empty() => Ok(()),
            None => refuse("a configured interface name must be used"),
            Some(n) if self.open.iter().any(|(o, _)| o == n) => refuse("device already open"),
            Some(n) => self.check_ifname(n, mode, owner),
        }
    }

    /// The name of a device: the owner's own `interface` (a literal, the admin's choice),
    /// the global literal, or the global pattern expanded for the owner, never a name
    /// the worker composed (docs/config.md 6.7).
    fn check_ifname(&self, n: &IfName, mode: Mode, owner: Option<&PeerRef>) -> Result<(), Refusal> {
        let m = &self.manifest;
        let configured = owner.and_then(|o| m.peer_by_key(&o.key));
        if mode != Mode::Tap && configured.is_some_and(|p| p.interface.as_ref() == Some(n)) {
            return Ok(());
        }
        match m.interface.parts() {
            None if !m.interface.as_str().is_empty() && m.interface.admits(n) => Ok(()),
            None => refuse("interface name not in the configuration"),
            Some(_) => {
                let Some(o) = owner else {
                    return refuse("interface name not in the configuration");
                };
                match m.interface.expand(o.name.as_ref(), &o.key) {
                    Some(Ok(want)) if want == *n => Ok(()),
                    Some(Err(e)) => refuse(format!("interface name of this peer: {e}")),
                    _ => refuse("interface name is not the pattern's for this peer"),
                }
            }
        }
    }

    /// Devices the configuration can need at once: the TAP interface, or one per listed
    /// peer plus [`MAX_UNLISTED_PEER_DEVICES`] when peers can come from elsewhere.
    pub fn device_cap(&self) -> usize {
        let m = &self.manifest;
        if m.mode == Mode::Tap {
            return 1;
        }
        let unlisted = m.dynamic_peers || !m.peer_dirs.is_empty();
        m.peers.len()
            + if unlisted {
                MAX_UNLISTED_PEER_DEVICES
            } else {
                0
            }
    }

    fn check_bind(&self, addr: &SocketAddr, iface: Option<&IfName>) -> Result<(), Refusal> {
        let ok = self
            .manifest
            .binds
            .iter()
            .any(|b| !b.template && b.addr == *addr && b.interface.as_ref() == iface);
        if ok {
            Ok(())
        } else {
            refuse("address/port/interface not among the configured binds")
        }
    }

    fn check_per_connection(
        &self,
        id: u32,
        addr: &SocketAddr,
        iface: Option<&IfName>,
    ) -> Result<(), Refusal> {
        let peer = usize::try_from(id)
            .ok()
            .and_then(|i| self.manifest.peers.get(i));
        if !peer.is_some_and(|p| p.per_connection) {
            return refuse("peer may not get per-connection sockets");
        }
        if addr.port() != 0 {
            return refuse("per-connection sockets use a random port");
        }
        let unspecified = addr.ip().is_unspecified() && iface.is_none();
        let template = self
            .manifest
            .binds
            .iter()
            .any(|b| b.template && b.addr.ip() == addr.ip() && b.interface.as_ref() == iface);
        if unspecified || template {
            Ok(())
        } else {
            refuse("per-connection address not allowed")
        }
    }

    /// A key that may appear in a hook: a configured peer's, or any when peers can come
    /// from somewhere the sealed manifest does not list (on verify, peer-dir reloads).
    fn key_ok(&self, key: &PublicKey) -> bool {
        let m = &self.manifest;
        m.dynamic_peers || !m.peer_dirs.is_empty() || m.peer_by_key(key).is_some()
    }

    /// A peer key (and name) that may appear in a hook or own an interface.
    fn check_peer(&self, key: &PublicKey, name: Option<&PeerName>) -> Result<(), Refusal> {
        let m = &self.manifest;
        if !self.key_ok(key) {
            return refuse("PEER_KEY is not a configured peer's key");
        }
        match (m.peer_by_key(key), name) {
            (Some(p), _) if p.name.as_ref() != name => refuse("PEER_NAME does not match the peer"),
            (None, Some(_)) if m.peer_dirs.is_empty() => refuse("PEER_NAME of an unknown peer"),
            _ => Ok(()),
        }
    }

    fn check_hook_env(&self, kind: HookKind, env: &HookEnv) -> Result<(), Refusal> {
        let m = &self.manifest;
        let tap = m.mode == Mode::Tap;
        if let Some(iface) = &env.interface {
            match self.open.iter().find(|(n, _)| n == iface) {
                None => return refuse("INTERFACE is not a device the helper opened"),
                Some((_, mtu)) if env.interface_mtu != Some(*mtu) => {
                    return refuse("INTERFACE_MTU differs from the device's MTU")
                }
                Some(_) => {}
            }
        } else if env.interface_mtu.is_some() {
            return refuse("INTERFACE_MTU without INTERFACE");
        }
        match (&env.peer_key, &env.peer_name) {
            (Some(key), name) => self.check_peer(key, name.as_ref())?,
            (None, Some(_)) => return refuse("PEER_NAME without PEER_KEY"),
            (None, None) => {}
        }
        let addrs = env.local.is_some() || env.peer.is_some();
        let both_addrs = env.local.is_some() && env.peer.is_some();
        let peerless = env.peer_key.is_none() && env.peer_name.is_none();
        let ok = match kind {
            HookKind::PreUp => *env == HookEnv::default() && !self.pre_up_ran,
            HookKind::PostDown => false,
            HookKind::Up | HookKind::Down if tap => env.interface.is_some() && peerless && !addrs,
            HookKind::Up | HookKind::Down => {
                env.interface.is_some() && env.peer_key.is_some() && !addrs
            }
            HookKind::Connect => both_addrs,
            HookKind::Establish | HookKind::Disestablish => both_addrs && env.peer_key.is_some(),
            HookKind::Verify => {
                both_addrs
                    && env.peer_key.is_some()
                    && env.peer_name.is_none()
                    && (tap || env.interface.is_none())
            }
        };
        if ok {
            Ok(())
        } else {
            refuse(format!(
                "environment does not fit an `on {}` hook",
                kind.name()
            ))
        }
    }
}
