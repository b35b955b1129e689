//! The worker role's start-up (docs/privsep.md), everything through [`HelperClient`]:
//!
//! 1. stage 1 of the sandbox (keep only CAP_SETUID/CAP_SETGID) before reading anything;
//! 2. the command line from the helper's `Start`, parsed by [`crate::config::cli`] over the
//!    config files the helper reads ([`HelperSource`]); peer directories; host names of
//!    `remote` statements resolved with the system resolver (the helper never resolves:
//!    a DNS parser does not belong in the privileged process); user/group;
//! 3. build the [`Manifest`] ([`crate::manifest`]), then [`crate::sandbox::enter`];
//! 4. send the manifest, which the helper seals;
//! 5. ask for the descriptors in fastd's order (status socket, binds, `on pre-up`,
//!    devices with their `on up`), and hand everything over in a [`Started`] to
//!    the runtime's loop (`runtime::run`).

use crate::config::cli::{self, early_log, Parsed};
use crate::config::{self, Config, ConfigSource, GroupId, LogLevel};
use crate::engine::Logger;
use crate::helper_client::{HelperClient, HelperSource, IpcError};
use crate::manifest::{build_manifest, ifname, BuildError, HookIds};
use crate::sandbox::identity::Identity;
use crate::sandbox::{self, SandboxSpec};
use policy::{HookEnv, HookId, HookKind, IfName, Manifest, Mode, Mtu, PeerId, PeerRef, PeerSpec};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("IPC with the helper: {0}")]
    Ipc(#[from] IpcError),
    #[error("sandbox: {0}")]
    Sandbox(#[from] sandbox::SandboxError),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Manifest(#[from] BuildError),
}

fn cfg_err(e: impl std::fmt::Display) -> BootError {
    BootError::Config(e.to_string())
}

/// A TUN/TAP device the helper opened for us.
#[derive(Debug)]
pub struct Device {
    pub fd: OwnedFd,
    pub name: IfName,
    pub mtu: Mtu,
    /// The static peer it belongs to (tun/multitap), None for the TAP interface.
    pub peer: Option<PeerId>,
    /// The offloads the helper set (virtio-net header on), as in [`policy::Response::Tun`].
    pub offload: Option<u32>,
}

/// Everything the packet engine takes over.
pub struct Started {
    pub helper: HelperClient,
    pub config: Config,
    pub manifest: Manifest,
    pub devices: Vec<Device>,
    /// The sockets of the `bind` statements with a port, with their bound addresses.
    pub sockets: Vec<(OwnedFd, SocketAddr)>,
    pub status: Option<OwnedFd>,
    /// Which sealed hook to run for a group's hook kind (pre-up, post-down and verify
    /// are under the root group).
    pub hooks: HookIds,
    pub secret: [u8; 32],
    /// The destinations the config asked for (syslog through the helper's socket).
    pub log: Logger,
}

/// fastd's command line, parsed over the helper's reads as the front end parsed it on
/// the file system; fastd's messages are printed here, the error only says that start-up
/// ends. The peer directories and host names are read and resolved now, before sealing.
fn load(source: &dyn ConfigSource, args: &[String], cwd: &Path) -> Result<Config, BootError> {
    let aborted = || BootError::Config("start-up aborted".to_owned());
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    // --daemon and --pid-file were handled by the process that became the helper.
    let mut config = match cli::parse(&args, source, cwd) {
        Parsed::Run(config, _) => *config,
        Parsed::Help | Parsed::Version | Parsed::Failed => return Err(aborted()),
    };
    let report = |e: config::ConfigError| {
        early_log(LogLevel::Error, &e.to_string());
        aborted()
    };
    config.verify().map_err(report)?;
    for d in config.check_start().map_err(report)? {
        early_log(d.level, &d.message);
    }
    // fastd reads peer directories after its privilege switch; ours reads them through the
    // helper before sealing, so their peers are part of the sealed policy.
    let diags = config::load_peer_dirs(&mut config, source).unwrap_or_else(|d| d);
    for d in diags {
        early_log(d.level, &d.message);
    }
    // Still before the sandbox: host names of `remote` statements are resolved now.
    crate::runtime::resolve::preresolve(&config);
    Ok(config)
}

/// `user`/`group`, or without `user` a dedicated identity (see [`sandbox::identity`]).
fn resolve_ids(config: &Config, args: &[String], cwd: &Path) -> Result<Identity, BootError> {
    let name = |o: &Option<OsString>| o.as_ref().map(|s| s.to_string_lossy().into_owned());
    let seed = sandbox::identity::instance_seed(args, &cwd.to_string_lossy());
    sandbox::identity::resolve(
        name(&config.user).as_deref(),
        name(&config.group).as_deref(),
        seed,
    )
    .map_err(cfg_err)
}

/// The name of a static peer's interface (docs/config.md 6.7, rules 1-4).
pub(crate) fn peer_ifname(
    config: &Config,
    m: &Manifest,
    peer: &PeerSpec,
) -> Result<Option<IfName>, BootError> {
    if let Some(n) = &peer.interface {
        return Ok(Some(n.clone()));
    }
    // The helper admits only this expansion (policy::IfNamePattern::expand); a peer
    // name that does not fit an interface name fails here, at start, as fastd's
    // TUNSETIFF would for a static peer's interface.
    match m.interface.expand(peer.name.as_ref(), &peer.key) {
        Some(name) => name.map(Some).map_err(cfg_err),
        None => {
            let only_one = config.peers.len() == 1 && m.peer_dirs.is_empty() && !m.dynamic_peers;
            if only_one && !m.interface.as_str().is_empty() {
                Ok(Some(ifname(m.interface.as_str().as_bytes())?))
            } else {
                Ok(None)
            }
        }
    }
}

fn run_hook(ch: &mut HelperClient, id: Option<&HookId>, env: HookEnv) -> Result<(), BootError> {
    if let Some(hook) = id {
        ch.run_hook(*hook, env)?;
    }
    Ok(())
}

/// Steps 1-5.
///
/// # Safety
/// Must be called once, in the worker role, with fd 3 being the helper's socket.
pub unsafe fn start() -> Result<Started, BootError> {
    sandbox::stage1()?;
    // SAFETY: forwarded from the caller.
    let mut ch = unsafe { HelperClient::from_helper_fd() };
    let (args, cwd) = ch.start()?;
    let cwd = PathBuf::from(cwd.as_str());
    let config = {
        let source = HelperSource::new(&mut ch, cwd.clone());
        load(&source, &args, &cwd)?
    };
    let secret = config.secret_key_bytes().map_err(cfg_err)?;
    let local =
        crate::keys::SecretKey::from_bytes(secret).map_err(|_| cfg_err("invalid secret key"))?;
    let id = resolve_ids(&config, &args, &cwd)?;
    let (manifest, hooks) = build_manifest(&config, id, *local.public().as_bytes())?;

    let report = sandbox::enter(&SandboxSpec::new(id.uid, id.gid))?;

    ch.seal(&manifest)?;
    // Without /dev/log the daemon runs on, as fastd does (its syslog() drops the lines).
    let (syslog, syslog_err) = match open_syslog(&mut ch, &manifest) {
        Ok(s) => (s, None),
        Err(e) => (None, Some(e)),
    };
    let log = Logger::destinations(manifest.log.clone(), syslog);
    // Through the configured destinations and level, like every other line.
    log.log(LogLevel::Verbose, || report.to_string());
    if let Some(e) = syslog_err {
        log.log(LogLevel::Warn, || format!("unable to open syslog: {e}"));
    }
    let status = match manifest.status_socket {
        Some(_) => Some(ch.status_socket()?),
        None => None,
    };
    let mut sockets = Vec::new();
    for b in manifest.binds.iter().filter(|b| !b.template) {
        // The engine logs fastd's "bound to" line, with fastd's address format.
        sockets.push(ch.bind_udp(b.addr, b.interface.clone(), manifest.packet_mark, None)?);
    }
    let root = GroupId::ROOT.0;
    run_hook(
        &mut ch,
        hooks.get(&(root, HookKind::PreUp)),
        HookEnv::default(),
    )?;
    let mut devices = Vec::new();
    if manifest.mode == Mode::Tap {
        let name = (!manifest.interface.as_str().is_empty())
            .then(|| ifname(manifest.interface.as_str().as_bytes()).map_err(BootError::from))
            .transpose()?;
        let (fd, name, offload) = ch.open_tun(name, Mode::Tap, manifest.mtu, None)?;
        crate::runtime::gateway::interface_created(&mut ch, &log, &manifest, &name, None);
        let env = HookEnv {
            interface: Some(name.clone()),
            interface_mtu: Some(manifest.mtu),
            ..HookEnv::default()
        };
        run_hook(&mut ch, hooks.get(&(root, HookKind::Up)), env)?;
        devices.push(Device {
            fd,
            name,
            mtu: manifest.mtu,
            peer: None,
            offload,
        });
    } else if manifest.persist_interface {
        // fastd sets up static peers in reverse order of definition.
        for (i, (peer, cfg_peer)) in manifest.peers.iter().zip(&config.peers).enumerate().rev() {
            let mtu = peer.mtu.unwrap_or(manifest.mtu);
            let name = peer_ifname(&config, &manifest, peer)?;
            let (fd, name, offload) = ch.open_tun(
                name,
                manifest.mode,
                mtu,
                Some(PeerRef {
                    key: peer.key,
                    name: peer.name.clone(),
                }),
            )?;
            crate::runtime::gateway::interface_created(&mut ch, &log, &manifest, &name, Some(peer));
            let env = HookEnv {
                interface: Some(name.clone()),
                interface_mtu: Some(mtu),
                peer_key: Some(peer.key),
                peer_name: peer.name.clone(),
                ..HookEnv::default()
            };
            run_hook(&mut ch, hooks.get(&(cfg_peer.group.0, HookKind::Up)), env)?;
            let id = PeerId(u32::try_from(i).map_err(cfg_err)?);
            devices.push(Device {
                fd,
                name,
                mtu,
                peer: Some(id),
                offload,
            });
        }
    }
    Ok(Started {
        helper: ch,
        config,
        manifest,
        devices,
        sockets,
        status,
        hooks,
        secret,
        log,
    })
}

/// The syslog socket, when the config logs to syslog.
fn open_syslog(
    ch: &mut HelperClient,
    m: &Manifest,
) -> Result<Option<std::os::unix::net::UnixDatagram>, IpcError> {
    if m.log.syslog.is_none() {
        return Ok(None);
    }
    ch.open_syslog().map(Some)
}
