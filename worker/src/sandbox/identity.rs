//! Who the worker runs as. With `user` (and `group`) configured, that identity, as fastd.
//! Without `user`, fastd stays root; the worker must not, and a shared `nobody` would let
//! every other `nobody` service signal it. So it takes a dedicated identity: the system user
//! [`DEDICATED_USER`] if the administrator made one, else a uid (and gid) from systemd's
//! dynamic range that no account, group or running process uses. The first candidate is
//! derived from the instance (its command line and working directory), so a restarted
//! instance usually gets the same id and two instances get different ones.

use nix::unistd::{Gid, Group, Uid, User};
use std::collections::HashSet;
use std::ops::RangeInclusive;

/// A system user made for fastd-privsep (e.g. `adduser --system --group fastd-privsep`).
pub const DEDICATED_USER: &str = "fastd-privsep";
/// systemd's range for `DynamicUser=` ids; nothing should own files with these ids.
pub const DYNAMIC_IDS: RangeInclusive<u32> = 61184..=65519;

/// The worker's identity and its status socket's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// fastd creates the socket with its effective ids switched to `user`/`group` where
    /// configured and as root otherwise; 0 stands for root's.
    pub status_owner: (u32, u32),
}

/// Resolve `user`/`group` (names as in the config); `seed` picks the first dynamic candidate.
/// The errors are fastd's texts.
pub fn resolve(user: Option<&str>, group: Option<&str>, seed: u64) -> Result<Identity, String> {
    let user = user
        .map(|name| {
            User::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| format!("config error: unable to find user `{name}'."))
        })
        .transpose()?;
    let group_gid = group
        .map(|name| {
            Group::from_name(name)
                .ok()
                .flatten()
                .map(|g| g.gid.as_raw())
                .ok_or_else(|| format!("config error: unable to find group `{name}'."))
        })
        .transpose()?;
    if let Some(u) = user {
        let gid = group_gid.unwrap_or(u.gid.as_raw());
        return Ok(Identity {
            uid: u.uid.as_raw(),
            gid,
            status_owner: (u.uid.as_raw(), gid),
        });
    }
    let status_owner = (0, group_gid.unwrap_or(0));
    if let Some(u) = User::from_name(DEDICATED_USER).ok().flatten() {
        if !u.uid.is_root() {
            return Ok(Identity {
                uid: u.uid.as_raw(),
                gid: group_gid.unwrap_or(u.gid.as_raw()),
                status_owner,
            });
        }
    }
    let id = free_dynamic_id(seed, group_gid.is_none())
        .ok_or_else(|| "no free uid in the dynamic range 61184-65519".to_owned())?;
    Ok(Identity {
        uid: id,
        gid: group_gid.unwrap_or(id),
        status_owner,
    })
}

/// The first id of the range, starting at `seed`, that no account and no running process
/// has (as uid, or as gid too when `as_gid`).
fn free_dynamic_id(seed: u64, as_gid: bool) -> Option<u32> {
    let used = ids_of_processes();
    let start = *DYNAMIC_IDS.start();
    let len = DYNAMIC_IDS.end() - start + 1;
    (0..len)
        .map(|i| start + ((seed % u64::from(len)) as u32 + i) % len)
        .find(|&id| {
            !used.contains(&id)
                && User::from_uid(Uid::from_raw(id)).ok().flatten().is_none()
                && !(as_gid && Group::from_gid(Gid::from_raw(id)).ok().flatten().is_some())
        })
}

/// Every uid and gid (real, effective, saved, filesystem) of a process in /proc.
fn ids_of_processes() -> HashSet<u32> {
    let mut ids = HashSet::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return ids;
    };
    for entry in dir.flatten() {
        if !entry
            .file_name()
            .as_encoded_bytes()
            .iter()
            .all(u8::is_ascii_digit)
        {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        ids.extend(status_ids(&status));
    }
    ids
}

fn status_ids(status: &str) -> impl Iterator<Item = u32> + '_ {
    status
        .lines()
        .filter_map(|l| l.strip_prefix("Uid:").or_else(|| l.strip_prefix("Gid:")))
        .flat_map(str::split_whitespace)
        .filter_map(|w| w.parse().ok())
}

/// FNV-1a over the instance's command line and working directory: stable across builds.
pub fn instance_seed(args: &[String], cwd: &str) -> u64 {
    policy::fnv1a(
        args.iter()
            .map(String::as_str)
            .chain([cwd])
            .map(str::as_bytes),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn proc_status_ids_are_all_four_of_both() {
        let s = "Name:\tx\nUid:\t0\t1\t2\t3\nGid:\t4\t5\t6\t7\nGroups:\t8\n";
        let mut ids: Vec<u32> = status_ids(s).collect();
        ids.sort_unstable();
        assert_eq!(ids, [0, 1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn without_user_the_worker_gets_a_free_dynamic_id_not_nobody() {
        let seed = instance_seed(&["-c".into(), "/etc/fastd/x/fastd.conf".into()], "/");
        let id = resolve(None, None, seed).unwrap();
        if User::from_name(DEDICATED_USER).ok().flatten().is_none() {
            assert!(DYNAMIC_IDS.contains(&id.uid), "{id:?}");
            assert_eq!(id.gid, id.uid);
            assert!(!ids_of_processes().contains(&id.uid));
        }
        assert_ne!(id.uid, 65534);
        assert_eq!(id.status_owner, (0, 0));
        // The same instance gets the same id again; the seed moves the start.
        assert_eq!(resolve(None, None, seed).unwrap(), id);
        assert_ne!(instance_seed(&["a".into()], "/"), instance_seed(&[], "a"));
    }

    #[test]
    fn with_user_the_socket_is_the_users() {
        let id = resolve(Some("nobody"), None, 0).unwrap();
        assert_eq!(id.status_owner, (id.uid, id.gid));
        let id = resolve(None, Some("nogroup"), 0).unwrap();
        assert_eq!(id.status_owner, (0, id.gid));
        assert_eq!(
            resolve(Some("no-such-user-x"), None, 0).unwrap_err(),
            "config error: unable to find user `no-such-user-x'."
        );
    }
}
