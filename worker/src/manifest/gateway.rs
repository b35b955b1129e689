//! The gateway part of the manifest from the config's extension statements
//! (`interface address`, `redirect gateway`, `masquerade`), with the inheritance
//! resolved here: peer block, then its groups (nearest first), then the top level.

use crate::config::{Config, GroupId, IpPrefix, PeerConfig, Remote};
use policy::gateway::{
    peer_label, GatewayManifest, IpNet, MasqueradeManifest, PeerGateway, RedirectManifest,
};
use std::collections::BTreeMap;

/// Names the nftables table: stable across restarts of the same daemon, different for
/// two daemons in one network namespace (they differ in interface, binds or peers).
fn instance(config: &Config) -> String {
    let mut keys: Vec<[u8; 32]> = config.peers.iter().map(|p| p.key).collect();
    keys.sort_unstable();
    let text = format!(
        "{:?}{:?}{:?}{keys:?}",
        config.mode, config.interface, config.binds
    );
    format!(
        "i{:016x}",
        policy::Fnv1a::default().write(text.as_bytes()).finish()
    )
}

fn net(p: &IpPrefix) -> Option<IpNet> {
    IpNet::new(p.addr, p.len).ok()
}

fn nets(ps: &[IpPrefix]) -> Vec<IpNet> {
    ps.iter().filter_map(net).collect()
}

/// The label gateway requests use for a configured peer.
pub fn label(p: &PeerConfig) -> String {
    let name = p
        .name
        .as_ref()
        .map(|n| String::from_utf8_lossy(n).into_owned());
    peer_label(name.as_deref(), &p.key)
}

/// The groups from `g` up to (but without) the root group.
fn non_root_ancestry(config: &Config, g: GroupId) -> Vec<GroupId> {
    config
        .ancestry(g)
        .into_iter()
        .filter(|g| *g != GroupId::ROOT)
        .collect()
}

fn peer_gateway(config: &Config, p: &PeerConfig) -> PeerGateway {
    let mut addresses = nets(&p.interface_addresses);
    if addresses.is_empty() {
        addresses = non_root_ancestry(config, p.group)
            .into_iter()
            .filter_map(|g| config.group(g))
            .map(|g| nets(&g.interface_addresses))
            .find(|a| !a.is_empty())
            .unwrap_or_default();
    }
    let redirect = p.redirect_gateway.or_else(|| {
        config
            .ancestry(p.group)
            .into_iter()
            .filter_map(|g| config.group(g))
            .find_map(|g| g.redirect_gateway)
    });
    let literal: Option<Vec<_>> = p
        .remotes
        .iter()
        .map(|r| match r {
            Remote::Address(a) => Some(a.ip()),
            Remote::Host { .. } => None,
        })
        .collect();
    let remotes = literal.filter(|r| !r.is_empty() && !p.float);
    PeerGateway {
        addresses,
        redirect: redirect.map(|r| RedirectManifest { via: r.via }),
        remotes,
    }
}

/// None when the config uses none of the extension statements.
pub fn build(config: &Config) -> Option<GatewayManifest> {
    let root = config.group(GroupId::ROOT)?;
    let used = !config.masquerade.is_empty()
        || config
            .groups
            .iter()
            .any(|g| !g.interface_addresses.is_empty() || g.redirect_gateway.is_some())
        || config
            .peers
            .iter()
            .any(|p| !p.interface_addresses.is_empty() || p.redirect_gateway.is_some());
    if !used {
        return None;
    }
    let interface_addresses = nets(&root.interface_addresses);
    let peers: BTreeMap<String, PeerGateway> = config
        .peers
        .iter()
        .map(|p| (label(p), peer_gateway(config, p)))
        .collect();
    let masquerade = config.masquerade.first().map(|m| {
        let prefixes = match &m.from {
            Some(p) => net(p).map(|n| vec![n.trunc()]).unwrap_or_default(),
            None => {
                let mut all: Vec<IpNet> = interface_addresses
                    .iter()
                    .chain(peers.values().flat_map(|p| p.addresses.iter()))
                    .map(IpNet::trunc)
                    .collect();
                all.sort();
                all.dedup();
                all
            }
        };
        MasqueradeManifest {
            prefixes,
            out_ifname: m.out.to_string_lossy().into_owned(),
        }
    });
    Some(GatewayManifest {
        instance: instance(config),
        interface_addresses,
        peers,
        default_peer: PeerGateway {
            addresses: Vec::new(),
            redirect: root
                .redirect_gateway
                .map(|r| RedirectManifest { via: r.via }),
            remotes: None,
        },
        masquerade,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::{Loader, MemSource};
    use std::path::Path;

    const K1: &str = "2598c5d7e72f171731658ce35734ff7599e1840367422e1a9c5943c327ab5ea9";
    const K2: &str = "8cb5e8d70d34f52716b6c4de518af2edfd6794e68ef1b3f0608cf05dd6a2ef42";

    fn load(text: &str) -> Config {
        let src = MemSource::new().with_file("t.conf", text);
        let mut l = Loader::new(&src);
        l.load_file(Path::new("t.conf")).unwrap();
        l.finish().0
    }

    #[test]
    fn no_extension_statements_no_gateway_part() {
        let c = load(&format!("mode tun;\npeer \"a\" {{ key \"{K1}\"; }}\n"));
        assert_eq!(build(&c), None);
    }

    #[test]
    fn inheritance_remotes_and_masquerade_defaults() {
        let c = load(&format!(
            "mode tun;\ninterface address 172.16.16.2/24;\nredirect gateway via 172.16.16.1;\n\
             masquerade out \"uplink\";\n\
             peer \"alpha\" {{ key \"{K2}\"; remote 198.51.100.1:10000; }}\n\
             peer group \"g\" {{ interface address 10.1.0.1/24;\n\
               peer \"b\" {{ key \"{K1}\"; float yes; remote 192.0.2.9:1; }} }}\n"
        ));
        let g = build(&c).unwrap();
        assert_eq!(
            g.interface_addresses,
            vec!["172.16.16.2/24".parse().unwrap()]
        );
        let alpha = g.peers.get("alpha").unwrap();
        assert!(alpha.addresses.is_empty(), "top level applies");
        assert_eq!(
            alpha.redirect.as_ref().unwrap().via,
            Some("172.16.16.1".parse().unwrap())
        );
        assert_eq!(alpha.remotes, Some(vec!["198.51.100.1".parse().unwrap()]));
        let b = g.peers.get("b").unwrap();
        assert_eq!(b.addresses, vec!["10.1.0.1/24".parse().unwrap()]);
        assert_eq!(b.remotes, None, "a floating peer may be anywhere");
        let m = g.masquerade.unwrap();
        assert_eq!(m.out_ifname, "uplink");
        assert_eq!(
            m.prefixes,
            vec![
                "10.1.0.0/24".parse().unwrap(),
                "172.16.16.0/24".parse().unwrap()
            ]
        );
        assert!(g.instance.starts_with('i') && g.instance.len() == 17);
        assert!(policy::gateway::GatewayPolicy::seal(build(&c).unwrap()).is_ok());
    }
}
