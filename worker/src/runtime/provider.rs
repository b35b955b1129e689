//! The engine's privileged side in the worker: interfaces, per-connection sockets, hooks
//! and `on verify` become requests to the helper.

use super::gateway::{interface_created, GatewayDriver};
use super::Shared;
use crate::bootstrap::Device;
use crate::config::{AddressFamily, HookKind as CfgHook, LogLevel};
use crate::engine::{HookCall, Iface, IfaceRequest, Logger, Provider, Verdict};
use crate::helper_client::{HookRun, IpcError, VerifyRun};
use crate::manifest::HookIds;
use policy::{
    HookEnv, HookKind, IfName, Manifest, Mode, Mtu, PeerId, PeerName, PeerRef, PeerSpec, PublicKey,
};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::rc::Rc;

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
    pub(super) channel: Shared,
    pub(super) manifest: Rc<Manifest>,
    pub(super) hooks: HookIds,
    /// Devices the start-up opened (their `on up` ran already), handed out once.
    pub(super) pre_opened: Vec<Device>,
    /// Peers whose next `on up` is the one start-up ran already.
    pub(super) up_ran: Vec<u32>,
    pub(super) log: Logger,
    /// The redirect routes, kept in step with the sessions the engine reports.
    pub(super) gateway: GatewayDriver,
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

pub(super) fn unspecified_like(a: &SocketAddr) -> SocketAddr {
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
                offload: d.offload,
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
        let (fd, name, offload) = self
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
            offload,
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
        super::resolve::resolved(host, port, family)
    }

    fn close_iface(&mut self, name: &str) {
        let Ok(name) = IfName::new(name) else { return };
        if let Err(e) = self.channel.borrow_mut().close_tun(name) {
            self.log
                .log(LogLevel::Warn, || format!("unable to close interface: {e}"));
        }
    }

    fn peer_up(&mut self, peer: crate::engine::PeerId, addr: SocketAddr, iface: Option<&str>) {
        self.gateway
            .up(peer.0, addr, iface, &self.channel, &self.log);
    }

    fn peer_down(&mut self, peer: crate::engine::PeerId) {
        self.gateway.down(peer.0, &self.channel, &self.log);
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
