//! The gateway extension in the helper's request loop (see the call order in
//! [`crate::gateway`]): sealing next to the policy, interface registration, carrying out
//! requests the policy accepted, and the undo on stop or worker death.
//!
//! The state file's name is the helper's own: derived from its command line, working
//! directory and network namespace, never from the worker, so a worker cannot make the
//! helper undo another instance's journal. The worker's instance name only names the
//! nftables table, which the kernel ties to the helper's socket (NFT_TABLE_F_OWNER).
//!
//! Where the gateway part trusts the worker:
//! - When a peer is established: the helper cannot tell, so a compromised worker can
//!   set or take down the configured redirect of a configured peer at will (as a
//!   spoofed handshake could flap a tunnel with fastd's hook scripts).
//! - Which underlay address gets pinned: one of the peer's literal remotes, or for a
//!   floating peer any unicast address outside the tunnel prefixes (bounded number of
//!   pins, each a /32 or /128 through the route the kernel already uses for it).
//! - Addresses only from the sealed list, only on devices this helper created;
//!   masquerade only the sealed prefixes and out-interface, in the daemon's own table.
//! - Everything is journaled and undone on stop, on worker death, and (via the state
//!   file in [`state_dir`]) by the next start after the helper itself died.

use crate::gateway::Gateway;
use policy::gateway::{GatewayRequest, IfaceOwner};
use policy::{IfName, PeerRef, Policy, Response};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// Where journals are mirrored for crash recovery without a unit (root-only directory).
const STATE_DIR: &str = "/run/fastd-privsep";

/// The state directory: under systemd the unit's own runtime directory (`RuntimeDirectory=`,
/// per instance and preserved across stops and restarts, passed as `$RUNTIME_DIRECTORY`), so
/// that stopping one instance cannot take another's journal and a restart finds its own;
/// else [`STATE_DIR`]. Only the first entry of the list counts, and only an absolute path.
pub fn state_dir() -> PathBuf {
    std::env::var_os("RUNTIME_DIRECTORY")
        .and_then(|list| {
            let first = list.as_bytes().split(|b| *b == b':').next()?.to_vec();
            let dir = PathBuf::from(std::ffi::OsString::from_vec(first));
            dir.is_absolute().then_some(dir)
        })
        .unwrap_or_else(|| PathBuf::from(STATE_DIR))
}

/// This helper's instance: the same command line started in the same directory and
/// network namespace is the same instance (and cleans up after its killed predecessor).
pub fn instance() -> String {
    let mut parts: Vec<Vec<u8>> = std::env::args_os()
        .skip(1)
        .map(|a| a.as_bytes().to_vec())
        .collect();
    if let Ok(cwd) = std::env::current_dir() {
        parts.push(cwd.as_os_str().as_bytes().to_vec());
    }
    if let Ok(ns) = std::fs::metadata("/proc/self/ns/net") {
        parts.push(format!("{}:{}", ns.dev(), ns.ino()).into_bytes());
    }
    format!("i{:016x}", policy::fnv1a(parts.iter().map(Vec::as_slice)))
}

fn state_path(instance: &str) -> PathBuf {
    state_dir().join(format!("{instance}.gateway"))
}

/// After sealing a manifest with a gateway part: the netlink/nftables state, with what a
/// killed predecessor left behind undone first.
pub fn open(policy: &Policy) -> Result<Option<Gateway>, String> {
    if policy.manifest().gateway.is_none() {
        return Ok(None);
    }
    match Gateway::with_state(&state_path(&instance())) {
        Ok((gw, errors)) => {
            for e in errors {
                crate::log::warn(&format!("gateway clean-up of a previous run: {e}"));
            }
            Ok(Some(gw))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The helper opened a device (for `owner`, checked by the policy): gateway requests
/// may now name it.
pub fn opened(policy: &mut Policy, name: &IfName, owner: Option<&PeerRef>) {
    let owner = match owner {
        Some(o) => IfaceOwner::Peer(policy::gateway::peer_label(
            o.name.as_ref().map(|n| n.as_str()),
            &o.key.0,
        )),
        None => IfaceOwner::Shared,
    };
    if let Some(g) = policy.gateway_mut() {
        g.register_interface(name.as_str(), owner);
    }
}

/// The helper closed a device; the kernel took its addresses and routes with it.
pub fn closed(policy: &mut Policy, gw: Option<&mut Gateway>, name: &IfName) {
    if let Some(gw) = gw {
        gw.forget_interface(name.as_str());
    }
    if let Some(g) = policy.gateway_mut() {
        g.unregister_interface(name.as_str());
    }
}

/// Carry out a request `Policy::check` accepted.
pub fn apply(policy: &mut Policy, gw: Option<&mut Gateway>, req: &GatewayRequest) -> Response {
    let Some(gw) = gw else {
        return Response::Refused {
            reason: "no gateway statements configured".to_owned(),
        };
    };
    match gw.apply(req) {
        Ok(()) => {
            if let Some(g) = policy.gateway_mut() {
                g.applied(req);
            }
            Response::Done
        }
        Err(e) => {
            crate::log::error(&format!("gateway: {e}"));
            Response::Failed {
                reason: e.to_string(),
                errno: e.errno(),
            }
        }
    }
}

/// Stop or worker death: undo everything the gateway did, newest first.
pub fn undo(gw: Option<Gateway>) {
    if let Some(mut gw) = gw {
        for e in gw.undo_all() {
            crate::log::warn(&format!("gateway clean-up: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_are_short_and_plain() {
        let i = instance();
        assert_eq!(i.len(), 17);
        assert!(i.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}
