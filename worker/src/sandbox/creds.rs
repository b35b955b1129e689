//! The switch to the unprivileged uid and gid.

use nix::unistd::{self, Gid, Uid};

use super::SandboxError;

fn creds_err(op: &'static str) -> impl FnOnce(nix::Error) -> SandboxError {
    move |source| SandboxError::Creds { op, source }
}

/// setgroups([gid]), then real, effective and saved gid, then real, effective and saved uid, so
/// no saved id allows a way back. Then it checks the result and that uid 0 and gid 0 are out of
/// reach. Needs CAP_SETGID and CAP_SETUID; the uid change clears the capability sets.
pub(super) fn switch(uid: u32, gid: u32) -> Result<(), SandboxError> {
    let (u, g) = (Uid::from_raw(uid), Gid::from_raw(gid));
    unistd::setgroups(&[g]).map_err(creds_err("setgroups"))?;
    unistd::setresgid(g, g, g).map_err(creds_err("setresgid"))?;
    unistd::setresuid(u, u, u).map_err(creds_err("setresuid"))?;
    verify(uid, gid)?;
    if unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(SandboxError::RegainedRoot("setuid(0)"));
    }
    if unistd::setgid(Gid::from_raw(0)).is_ok() {
        return Err(SandboxError::RegainedRoot("setgid(0)"));
    }
    Ok(())
}

fn verify(uid: u32, gid: u32) -> Result<(), SandboxError> {
    let ruid = unistd::getresuid().map_err(creds_err("getresuid"))?;
    let rgid = unistd::getresgid().map_err(creds_err("getresgid"))?;
    let groups = unistd::getgroups().map_err(creds_err("getgroups"))?;
    let uids = [ruid.real, ruid.effective, ruid.saved].map(Uid::as_raw);
    let gids = [rgid.real, rgid.effective, rgid.saved].map(Gid::as_raw);
    let groups: Vec<u32> = groups.into_iter().map(Gid::as_raw).collect();
    if uids != [uid; 3] || gids != [gid; 3] || groups != [gid] {
        return Err(SandboxError::CredsMismatch {
            found: format!("uids {uids:?} gids {gids:?} groups {groups:?}"),
            uid,
            gid,
        });
    }
    Ok(())
}
