//! The worker role's start-up (PRIVSEP-DESIGN.md steps 1-5):
//!
//! 1. stage 1 of the sandbox (keep only CAP_SETUID/CAP_SETGID) before reading anything;
//! 2. the command line from the helper's `Start`, the config files through
//!    `ReadFile`/`ReadDir`/`ResolveDir` ([`HelperSource`]); parse; resolve user/group;
//! 3. build the [`Manifest`], then [`crate::sandbox::enter`];
//! 4. send the manifest, which the helper seals;
//! 5. ask for the descriptors in fastd's order (status socket, binds, `on pre-up`,
//!    devices with their `on up`), and hand everything over in a [`Started`].
//!
//! Host names in `remote "host"` are resolved by the worker, never by the helper (a DNS
//! parser does not belong in the privileged process). Decision for the engine: a small
//! resolver in the worker on a UDP socket the helper hands over (a request still to be
//! added, allowed only when the manifest lists hostname remotes, connected to the
//! nameservers of `/etc/resolv.conf`, whose bytes the worker reads with `ReadFile`
//! before sealing). Not implemented yet: the bootstrap resolves nothing.

use crate::config::{self, BindAddress, Config, ConfigSource, GroupId, Loader, LogLevel};
use crate::engine::Logger;
use crate::helper_client::{HelperClient, HelperSource, IpcError};
use crate::sandbox::identity::Identity;
use crate::sandbox::{self, SandboxSpec};
use policy::{
    AbsPath, BindSpec, HookCommand, HookEnv, HookId, HookKind, HookSpec, IfName, IfNamePattern,
    Manifest, Mode, Mtu, PeerId, PeerName, PeerRef, PeerSpec, PublicKey,
};
use std::collections::HashMap;
use std::ffi::OsString;
use std::net::{SocketAddr, SocketAddrV6};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("IPC with the helper: {0}")]
    Ipc(#[from] IpcError),
    #[error("sandbox: {0}")]
    Sandbox(#[from] sandbox::SandboxError),
    #[error("{0}")]
    Config(String),
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

/// Which sealed hook runs for a (group index, hook kind).
pub type HookIds = HashMap<(usize, HookKind), HookId>;

/// Parses the command line into a config, reading files through `source`.
pub type LoadFn = dyn Fn(&dyn ConfigSource, &[String], &Path) -> Result<Config, String>;

/// The config options of a real start: `-c`/`--config`, `--config-peer`,
/// `--config-peer-dir`. The binary may pass its full command-line parser instead.
pub fn load_basic_cli(
    source: &dyn ConfigSource,
    args: &[String],
    _cwd: &Path,
) -> Result<Config, String> {
    let mut loader = Loader::new(source);
    let mut it = args.iter();
    while let Some(opt) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("option `{opt}' needs an argument"))
        };
        let r = match opt.as_str() {
            "-c" | "--config" => match value()?.as_str() {
                "-" => loader.load_stdin(),
                v => loader.load_file(Path::new(v)),
            },
            "--config-peer" => loader.load_peer_file(Path::new(value()?.as_str())),
            "--config-peer-dir" => {
                loader.add_peer_dir_option(Path::new(value()?.as_str()));
                Ok(())
            }
            other => return Err(format!("option `{other}' is not supported by the worker")),
        };
        for d in loader.take_diagnostics() {
            eprintln!("{}", d.message);
        }
        r.map_err(|e| e.to_string())?;
    }
    let (mut config, diags) = loader.finish();
    for d in diags {
        eprintln!("{}", d.message);
    }
    config.verify().map_err(|e| e.to_string())?;
    for d in config.check_start().map_err(|e| e.to_string())? {
        eprintln!("{}", d.message);
    }
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

fn ifname(raw: &[u8]) -> Result<IfName, BootError> {
    let s = std::str::from_utf8(raw).map_err(cfg_err)?;
    IfName::new(s.get(..15.min(s.len())).unwrap_or(s))
        .map_err(|e| cfg_err(format!("interface `{s}': {e}")))
}

fn abs(p: &Path) -> Result<AbsPath, BootError> {
    let p = Path::new("/").join(p);
    p.to_str()
        .and_then(|s| AbsPath::new(s).ok())
        .ok_or_else(|| cfg_err(format!("unusable path `{}'", p.display())))
}

fn bind_spec(b: &config::Bind) -> Result<BindSpec, BootError> {
    let port = b.port.unwrap_or(0);
    let (addr, dual_stack) = match &b.address {
        BindAddress::Any => (
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
            true,
        ),
        BindAddress::V4(a) => (SocketAddr::from((*a, port)), false),
        BindAddress::V6 { addr, scope } => {
            let scope_id = match scope {
                None => 0,
                Some(s) => match s.to_str().and_then(|s| s.parse().ok()) {
                    Some(n) => n,
                    None => {
                        let c = std::ffi::CString::new(s.as_bytes()).map_err(cfg_err)?;
                        // SAFETY: if_nametoindex reads a NUL-terminated string that lives
                        // across the call.
                        match unsafe { libc::if_nametoindex(c.as_ptr()) } {
                            0 => {
                                return Err(cfg_err(format!(
                                    "unknown interface `{}'",
                                    s.to_string_lossy()
                                )))
                            }
                            n => n,
                        }
                    }
                },
            };
            (
                SocketAddr::V6(SocketAddrV6::new(*addr, port, 0, scope_id)),
                false,
            )
        }
    };
    let interface = b
        .interface
        .as_ref()
        .map(|i| ifname(i.as_bytes()))
        .transpose()?;
    Ok(BindSpec {
        addr,
        interface,
        template: b.port.is_none(),
        dual_stack,
    })
}

struct HookTable {
    specs: Vec<HookSpec>,
    ids: HookIds,
}

impl HookTable {
    fn add(
        &mut self,
        group: usize,
        kind: HookKind,
        hook: &config::Hook,
    ) -> Result<HookId, BootError> {
        let spec = HookSpec {
            kind,
            command: HookCommand::new(&hook.command.to_string_lossy()).map_err(cfg_err)?,
            sync: hook.sync,
            cwd: abs(&hook.cwd)?,
        };
        let id = match self.specs.iter().position(|s| *s == spec) {
            Some(i) => i,
            None => {
                self.specs.push(spec);
                self.specs.len() - 1
            }
        };
        let id = HookId(u32::try_from(id).map_err(cfg_err)?);
        self.ids.insert((group, kind), id);
        Ok(id)
    }
}

const GROUP_KINDS: [(config::HookKind, HookKind); 5] = [
    (config::HookKind::Up, HookKind::Up),
    (config::HookKind::Down, HookKind::Down),
    (config::HookKind::Connect, HookKind::Connect),
    (config::HookKind::Establish, HookKind::Establish),
    (config::HookKind::Disestablish, HookKind::Disestablish),
];

/// The manifest of a parsed config: everything the worker will ever ask the helper for.
pub fn build_manifest(
    config: &Config,
    id: Identity,
    local_key: [u8; 32],
) -> Result<(Manifest, HookIds), BootError> {
    let mode = match config.mode {
        config::Mode::Tap => Mode::Tap,
        config::Mode::Multitap => Mode::Multitap,
        config::Mode::Tun => Mode::Tun,
    };
    let pattern = config.interface.as_ref().map_or(&[][..], |i| &i.0[..]);
    let interface =
        IfNamePattern::new(std::str::from_utf8(pattern).map_err(cfg_err)?).map_err(cfg_err)?;
    let mut table = HookTable {
        specs: Vec::new(),
        ids: HashMap::new(),
    };
    for (kind, hook) in [
        (HookKind::PreUp, &config.on_pre_up),
        (HookKind::PostDown, &config.on_post_down),
    ] {
        if let Some(h) = hook {
            table.add(GroupId::ROOT.0, kind, h)?;
        }
    }
    if let Some((h, g)) = &config.on_verify {
        table.add(g.0, HookKind::Verify, h)?;
    }
    // Every group gets the hooks it inherits, so lookups need no ancestry walk.
    for g in 0..config.groups.len() {
        for (ck, pk) in GROUP_KINDS {
            if let Some(h) = config.hook_for(GroupId(g), ck) {
                table.add(g, pk, h)?;
            }
        }
    }
    let binds: Vec<BindSpec> = config
        .binds
        .iter()
        .map(bind_spec)
        .collect::<Result<_, _>>()?;
    let per_connection = !binds.iter().any(|b| !b.template);
    let peers = config
        .peers
        .iter()
        .map(|p| {
            let name = match &p.name {
                None => None,
                Some(n) => {
                    let s = String::from_utf8_lossy(n);
                    Some(PeerName::new(&s).map_err(|e| cfg_err(format!("peer `{s}': {e}")))?)
                }
            };
            Ok(PeerSpec {
                name,
                key: PublicKey(p.key),
                interface: p.interface.as_ref().map(|i| ifname(&i.0)).transpose()?,
                mtu: p
                    .mtu
                    .map(|m| Mtu::new(m.into()))
                    .transpose()
                    .map_err(cfg_err)?,
                per_connection: per_connection && !p.remotes.is_empty(),
                down: table.ids.get(&(p.group.0, HookKind::Down)).copied(),
            })
        })
        .collect::<Result<Vec<_>, BootError>>()?;
    let manifest = Manifest {
        mode,
        interface,
        mtu: Mtu::new(config.mtu.into()).map_err(cfg_err)?,
        persist_interface: config.persist_interface,
        binds,
        packet_mark: (config.packet_mark != 0).then_some(config.packet_mark),
        peers,
        dynamic_peers: config.on_verify.is_some(),
        root_down: table.ids.get(&(GroupId::ROOT.0, HookKind::Down)).copied(),
        hooks: table.specs,
        status_socket: config.status_socket.as_deref().map(abs).transpose()?,
        peer_dirs: config
            .peer_dirs()
            .iter()
            .map(|(_, d)| abs(d))
            .collect::<Result<_, _>>()?,
        uid: id.uid,
        gid: id.gid,
        status_owner: id.status_owner,
        local_key: PublicKey(local_key),
        gateway: crate::gateway_manifest::build(config),
        log: log_spec(config)?,
    };
    Ok((manifest, table.ids))
}

/// The destinations of docs/config.md §6.1 after start-up. The loader already turned "neither
/// set" into stderr = verbose.
pub fn log_spec(config: &Config) -> Result<policy::log::LogSpec, BootError> {
    let syslog = match config.log.syslog_level {
        Some(level) => Some(policy::log::SyslogSpec {
            ident: policy::log::SyslogIdent::new(&config.log.syslog_ident).map_err(cfg_err)?,
            level,
        }),
        None => None,
    };
    Ok(policy::log::LogSpec {
        stderr: config.log.stderr_level,
        syslog,
    })
}

/// The name of a static peer's interface (docs/config.md 6.7, rules 1-4).
fn peer_ifname(
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
                ifname(m.interface.as_str().as_bytes()).map(Some)
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

/// Steps 1-5. `load` parses the command line (see [`load_basic_cli`]).
///
/// # Safety
/// Must be called once, in the worker role, with fd 3 being the helper's socket.
pub unsafe fn start(load: &LoadFn) -> Result<Started, BootError> {
    sandbox::stage1()?;
    // SAFETY: forwarded from the caller.
    let mut ch = unsafe { HelperClient::from_helper_fd() };
    let (args, cwd) = ch.start()?;
    let cwd = PathBuf::from(cwd.as_str());
    let config = {
        let source = HelperSource::new(&mut ch, cwd.clone());
        load(&source, &args, &cwd).map_err(BootError::Config)?
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
            .then(|| ifname(manifest.interface.as_str().as_bytes()))
            .transpose()?;
        let (fd, name) = ch.open_tun(name, Mode::Tap, manifest.mtu, None)?;
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
        });
    } else if manifest.persist_interface {
        // fastd sets up static peers in reverse order of definition.
        for (i, (peer, cfg_peer)) in manifest.peers.iter().zip(&config.peers).enumerate().rev() {
            let mtu = peer.mtu.unwrap_or(manifest.mtu);
            let name = peer_ifname(&config, &manifest, peer)?;
            let (fd, name) = ch.open_tun(
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::MemSource;

    const CONF: &str = r#"mode tun;
interface "vpn-%n";
bind 192.0.2.1:10000;
bind 0.0.0.0 interface "eth0";
secret "5035de5b4ea448b74e9a373765207095057a9485fd9dca5fadb9c1b86347bd75";
mtu 1448;
method "salsa2012+umac";
packet mark 7;
status socket "run/status.sock";
on pre-up "./pre-up";
on up "./up";
on down "./down";
peer "alpha" { key "2598c5d7e72f171731658ce35734ff7599e1840367422e1a9c5943c327ab5ea9"; }
peer group "sub" {
  on down "./sub-down";
  peer "beta" { key "d28585393d7710566024f72c5dcec2cb004ba59a4547ad00ef7a307bab0593be"; mtu 1400; }
}
"#;

    const NOBODY: Identity = Identity {
        uid: 65534,
        gid: 65534,
        status_owner: (0, 0),
    };

    fn config() -> Config {
        let mut src = MemSource {
            cwd: PathBuf::from("/etc/fastd"),
            ..MemSource::default()
        };
        src.files.insert(
            PathBuf::from("/etc/fastd/fastd.conf"),
            CONF.as_bytes().to_vec(),
        );
        load_basic_cli(
            &src,
            &["-c".into(), "fastd.conf".into()],
            Path::new("/etc/fastd"),
        )
        .unwrap()
    }

    #[test]
    fn manifest_of_a_config() {
        let cfg = config();
        let (m, ids) = build_manifest(&cfg, NOBODY, [1; 32]).unwrap();
        assert_eq!(m.mode, Mode::Tun);
        assert_eq!(m.mtu.get(), 1448);
        assert_eq!(m.packet_mark, Some(7));
        assert_eq!(
            m.status_socket.as_ref().unwrap().as_str(),
            "/run/status.sock"
        );
        assert_eq!(m.binds.len(), 2);
        assert!(!m.binds[0].template && m.binds[1].template);
        assert_eq!(m.binds[1].interface.as_ref().unwrap().as_str(), "eth0");
        assert_eq!(m.peers.len(), 2);
        assert_eq!(m.peers[1].mtu.unwrap().get(), 1400);
        // Hooks run in the config's directory; the sub group inherits `up`, has its own `down`.
        let root_down = m.root_down.unwrap();
        assert_eq!(m.hook(root_down).unwrap().command.as_str(), "./down");
        assert_eq!(
            m.hook(m.peers[0].down.unwrap()).unwrap().command.as_str(),
            "./down"
        );
        assert_eq!(
            m.hook(m.peers[1].down.unwrap()).unwrap().command.as_str(),
            "./sub-down"
        );
        assert_eq!(ids[&(1, HookKind::Up)], ids[&(0, HookKind::Up)]);
        assert!(m.hooks.iter().all(|h| h.cwd.as_str() == "/etc/fastd"));
        // A bind with a port exists, so no peer gets per-connection sockets.
        assert!(m.peers.iter().all(|p| !p.per_connection));
        // The helper accepts it.
        assert!(policy::Policy::seal(m.clone()).is_ok());
        assert_eq!(
            peer_ifname(&cfg, &m, &m.peers[0])
                .unwrap()
                .unwrap()
                .as_str(),
            "vpn-alpha"
        );
    }

    #[test]
    fn unsupported_options_are_refused() {
        let src = MemSource::default();
        let err = load_basic_cli(&src, &["--daemon".into()], Path::new("/"))
            .err()
            .unwrap();
        assert!(err.contains("--daemon"), "{err}");
    }
}
