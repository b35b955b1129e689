//! Host names of `remote` statements. The sandbox has no sockets of its own and no
//! files, so the names are resolved once with the system resolver, before the sandbox is
//! entered, and the engine's provider answers from that list.

use crate::config::{AddressFamily, Config, Remote};
use std::net::SocketAddr;
use std::sync::Mutex;

type HostKey = (String, u16, AddressFamily);

/// The resolved names. They are not re-resolved later: a peer whose name pointed nowhere
/// at start stays unreachable.
static RESOLVED: Mutex<Vec<(HostKey, Vec<SocketAddr>)>> = Mutex::new(Vec::new());

/// Resolves every hostname remote of `config` (system resolver). Call in stage 1, after
/// parsing and before `sandbox::enter`.
pub fn preresolve(config: &Config) {
    let mut out = Vec::new();
    for r in config.peers.iter().flat_map(|p| p.remotes.iter()) {
        let Remote::Host { name, port, family } = r else {
            continue;
        };
        let name = name.to_string_lossy().into_owned();
        let addrs = crate::engine::system_resolve(&name, *port, *family);
        if addrs.is_empty() {
            eprintln!("Warning: resolving host `{name}' failed");
        }
        out.push(((name, *port, *family), addrs));
    }
    if let Ok(mut r) = RESOLVED.lock() {
        *r = out;
    }
}

/// The addresses `preresolve` found for a name (none for a name it did not see).
pub(crate) fn resolved(host: &str, port: u16, family: AddressFamily) -> Vec<SocketAddr> {
    let Ok(r) = RESOLVED.lock() else {
        return Vec::new();
    };
    r.iter()
        .find(|((h, p, f), _)| h == host && *p == port && *f == family)
        .map(|(_, a)| a.clone())
        .unwrap_or_default()
}
