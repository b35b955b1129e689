//! What the engine takes from the parsed [`Config`]: mode, MTUs, peers with resolved remotes and
//! interface names (fastd's naming rules, docs/config.md §6.7), and which hooks exist.

use std::net::{SocketAddr, ToSocketAddrs};

use super::hide::Hide;
use super::peer::PeerParams;
use crate::config::{
    AddressFamily, Config, GroupId, HookKind, InterfaceName, Mode, PeerConfig, Remote,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("invalid TUN/TAP device name: `%n' and `%k' patterns can't be used in TAP mode")]
    PatternInTapMode,
    #[error("invalid `%n' interface pattern for peer without name")]
    UnnamedPeerPattern,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    pub mtu: u16,
    /// Largest MTU of any interface (sizes the buffers).
    pub max_mtu: u16,
    pub forward: bool,
    pub persist_interface: bool,
    pub peers: Vec<PeerParams>,
    pub peer_groups: Vec<GroupId>,
    pub tap_name: Option<String>,
    /// The group `on verify` peers join, if `on verify` is configured.
    pub verify_group: Option<GroupId>,
    /// Interface name of `on verify` peers (tun/multitap): the global one if it is a `%k`
    /// pattern, else the kernel's choice.
    pub dynamic_ifname: Option<InterfaceName>,
    /// `hide ip addresses` / `hide mac addresses`: how log lines show addresses.
    pub hide: Hide,
    hooks: Vec<(GroupId, HookKind)>,
}

fn expand(pattern: &InterfaceName, p: &PeerConfig) -> Result<String, SettingsError> {
    let raw = &pattern.0;
    let mut out = Vec::with_capacity(raw.len() + 16);
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b == b'%' {
            match raw.get(i + 1) {
                Some(b'n') => out
                    .extend_from_slice(p.name.as_deref().ok_or(SettingsError::UnnamedPeerPattern)?),
                Some(b'k') => {
                    for k in p.key.iter().take(8) {
                        out.extend_from_slice(format!("{k:02x}").as_bytes());
                    }
                }
                _ => out.push(b),
            }
            i += 2;
        } else {
            out.push(b);
            i += 1;
        }
    }
    out.truncate(15);
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The interface name of a peer in tun/multitap mode; `None` = the kernel picks.
pub fn interface_name(config: &Config, p: &PeerConfig) -> Result<Option<String>, SettingsError> {
    let only_one =
        config.peers.len() == 1 && config.peer_dirs().is_empty() && config.on_verify.is_none();
    let chosen = match (&p.interface, &config.interface) {
        (Some(own), _) => Some(own),
        (None, Some(g)) if g.is_pattern() || only_one => Some(g),
        _ => None,
    };
    match chosen {
        Some(n) if !n.0.is_empty() => expand(n, p).map(Some),
        _ => Ok(None),
    }
}

/// Resolves a hostname remote with the system resolver (getaddrinfo), applying the family
/// restriction. Only usable where the resolver works (before the sandbox is sealed, or in tests).
pub fn system_resolve(name: &str, port: u16, family: AddressFamily) -> Vec<SocketAddr> {
    (name, port)
        .to_socket_addrs()
        .map(|it| {
            it.filter(|a| match family {
                AddressFamily::Any => true,
                AddressFamily::Ipv4 => a.is_ipv4(),
                AddressFamily::Ipv6 => a.is_ipv6(),
            })
            .collect()
        })
        .unwrap_or_default()
}

fn resolve(
    r: &Remote,
    resolver: &mut dyn FnMut(&str, u16, AddressFamily) -> Vec<SocketAddr>,
) -> Vec<SocketAddr> {
    match r {
        Remote::Address(a) => vec![*a],
        Remote::Host { name, port, family } => resolver(&name.to_string_lossy(), *port, *family),
    }
}

impl Settings {
    /// `resolver` turns hostname remotes into addresses (the engine asks its provider).
    pub fn from_config(
        config: &Config,
        resolver: &mut dyn FnMut(&str, u16, AddressFamily) -> Vec<SocketAddr>,
    ) -> Result<Settings, SettingsError> {
        if config.mode == Mode::Tap && config.interface.as_ref().is_some_and(|i| i.is_pattern()) {
            return Err(SettingsError::PatternInTapMode);
        }
        let mut peers = Vec::with_capacity(config.peers.len());
        let mut groups = Vec::with_capacity(config.peers.len());
        let mut max_mtu = config.mtu;
        for p in &config.peers {
            let ifname = if config.mode == Mode::Tap {
                None
            } else {
                interface_name(config, p)?
            };
            let mtu = if config.mode == Mode::Tap {
                config.mtu
            } else {
                p.mtu.unwrap_or(config.mtu)
            };
            max_mtu = max_mtu.max(mtu);
            peers.push(PeerParams {
                name: p
                    .name
                    .as_ref()
                    .map(|n| String::from_utf8_lossy(n).into_owned()),
                key: p.key,
                remotes: p
                    .remotes
                    .iter()
                    .flat_map(|r| resolve(r, resolver))
                    .collect(),
                float: p.float,
                ifname,
                mtu,
            });
            groups.push(p.group);
        }
        let kinds = [
            HookKind::Up,
            HookKind::Down,
            HookKind::Connect,
            HookKind::Establish,
            HookKind::Disestablish,
        ];
        let mut hooks = Vec::new();
        for gi in 0..config.groups.len() {
            for k in kinds {
                if config.hook_for(GroupId(gi), k).is_some() {
                    hooks.push((GroupId(gi), k));
                }
            }
        }
        Ok(Settings {
            mode: config.mode,
            mtu: config.mtu,
            max_mtu,
            forward: config.forward,
            persist_interface: config.persist_interface,
            peers,
            peer_groups: groups,
            tap_name: config
                .interface
                .as_ref()
                .filter(|i| !i.0.is_empty())
                .map(|i| String::from_utf8_lossy(&i.0).into_owned()),
            verify_group: config.on_verify.as_ref().map(|(_, g)| *g),
            dynamic_ifname: config
                .interface
                .clone()
                .filter(|i| i.is_pattern() && !i.0.windows(2).any(|w| w == b"%n")),
            hide: Hide {
                ip: config.hide_ip_addresses,
                mac: config.hide_mac_addresses,
            },
            hooks,
        })
    }

    /// The interface name of an `on verify` peer with `key`.
    pub fn dynamic_interface(&self, key: &[u8; 32]) -> Option<String> {
        let pattern = self.dynamic_ifname.as_ref()?;
        let p = PeerConfig {
            name: None,
            key: *key,
            group: GroupId::ROOT,
            remotes: Vec::new(),
            float: true,
            interface: None,
            mtu: None,
            interface_addresses: Vec::new(),
            redirect_gateway: None,
        };
        expand(pattern, &p).ok()
    }

    pub fn has_hook(&self, group: GroupId, kind: HookKind) -> bool {
        self.hooks.iter().any(|(g, k)| *g == group && *k == kind)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn peer(name: Option<&str>, key: u8) -> PeerConfig {
        PeerConfig {
            name: name.map(|n| n.as_bytes().to_vec()),
            key: [key; 32],
            group: GroupId::ROOT,
            remotes: vec![],
            float: false,
            interface: None,
            mtu: None,
            interface_addresses: vec![],
            redirect_gateway: None,
        }
    }

    #[test]
    fn naming_rules() {
        let mut c = Config {
            interface: InterfaceName::parse(b"vpngateway"),
            mode: Mode::Tun,
            ..Config::default()
        };
        c.peers.push(peer(Some("anyremote"), 1));
        // One static peer: the global name is used as is.
        assert_eq!(
            interface_name(&c, &c.peers[0]).unwrap().as_deref(),
            Some("vpngateway")
        );
        c.peers.push(peer(Some("b"), 2));
        // Two peers, no pattern: the kernel picks.
        assert_eq!(interface_name(&c, &c.peers[0]).unwrap(), None);
        c.interface = InterfaceName::parse(b"mt-%k");
        assert_eq!(
            interface_name(&c, &c.peers[1]).unwrap().as_deref(),
            Some("mt-020202020202")
        );
        c.interface = InterfaceName::parse(b"fastd-%n-long-suffix");
        assert_eq!(
            interface_name(&c, &c.peers[0]).unwrap().as_deref(),
            Some("fastd-anyremote")
        );
        let unnamed = peer(None, 3);
        assert_eq!(
            interface_name(&c, &unnamed),
            Err(SettingsError::UnnamedPeerPattern)
        );
        let mut own = peer(Some("x"), 4);
        own.interface = InterfaceName::parse(b"own0");
        assert_eq!(interface_name(&c, &own).unwrap().as_deref(), Some("own0"));
    }

    #[test]
    fn pattern_in_tap_mode_is_refused() {
        let c = Config {
            interface: InterfaceName::parse(b"tap-%n"),
            ..Config::default()
        };
        assert_eq!(
            Settings::from_config(&c, &mut system_resolve).unwrap_err(),
            SettingsError::PatternInTapMode
        );
    }
}
