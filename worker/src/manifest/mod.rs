//! The manifest of a parsed config: everything the worker will ever ask the helper for
//! (devices, binds, hooks, peers, paths, the gateway part in [`gateway`]), which the helper
//! seals before the worker reads its first network byte.

pub mod gateway;

use crate::config::{self, BindAddress, Config, GroupId};
use crate::sandbox::identity::Identity;
use policy::{
    AbsPath, BindSpec, HookCommand, HookId, HookKind, HookSpec, IfName, IfNamePattern, Manifest,
    Mode, Mtu, PeerName, PeerSpec, PublicKey,
};
use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV6};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A config that cannot be put into a manifest (a name or path the helper would refuse).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(String);

fn cfg_err(e: impl std::fmt::Display) -> BuildError {
    BuildError(e.to_string())
}

/// Which sealed hook runs for a (group index, hook kind).
pub type HookIds = HashMap<(usize, HookKind), HookId>;

pub(crate) fn ifname(raw: &[u8]) -> Result<IfName, BuildError> {
    let s = std::str::from_utf8(raw).map_err(cfg_err)?;
    IfName::new(s.get(..15.min(s.len())).unwrap_or(s))
        .map_err(|e| cfg_err(format!("interface `{s}': {e}")))
}

fn abs(p: &Path) -> Result<AbsPath, BuildError> {
    let p = Path::new("/").join(p);
    p.to_str()
        .and_then(|s| AbsPath::new(s).ok())
        .ok_or_else(|| cfg_err(format!("unusable path `{}'", p.display())))
}

fn bind_spec(b: &config::Bind) -> Result<BindSpec, BuildError> {
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
    ) -> Result<HookId, BuildError> {
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
) -> Result<(Manifest, HookIds), BuildError> {
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
        .collect::<Result<Vec<_>, BuildError>>()?;
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
        gateway: gateway::build(config),
        log: log_spec(config)?,
        offload: offload_for(mode),
    };
    Ok((manifest, table.ids))
}

/// The destinations of docs/config.md §6.1 after start-up. The loader already turned "neither
/// set" into stderr = verbose.
pub fn log_spec(config: &Config) -> Result<policy::log::LogSpec, BuildError> {
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

/// Whether devices get a virtio-net header and offloads: TUN devices, whose super-packets
/// the engine splits (engine::offload); TAP frames go as they are.
pub fn offload_for(mode: Mode) -> bool {
    mode == Mode::Tun
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::MemSource;
    use std::path::PathBuf;

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
        let args = ["-c".into(), "fastd.conf".into()];
        match crate::config::cli::parse(&args, &src, Path::new("/etc/fastd")) {
            crate::config::cli::Parsed::Run(config, _) => *config,
            _ => panic!("the config does not parse"),
        }
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
            crate::bootstrap::peer_ifname(&cfg, &m, &m.peers[0])
                .unwrap()
                .unwrap()
                .as_str(),
            "vpn-alpha"
        );
    }
}
