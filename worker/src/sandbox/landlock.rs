//! A Landlock domain that grants no filesystem access at all.
//!
//! The ruleset handles every filesystem access right (and the TCP bind/connect rights and the
//! signal and abstract-socket scopes) of the newest ABI this crate knows, and adds no rule, so
//! nothing is allowed. It is best effort: on a kernel without Landlock, or with an older ABI, the
//! supported subset is enforced and the returned state says how much, for the worker to log.
//! The signal scope keeps the worker from signalling the helper; the worker's seccomp filter
//! refuses `kill` as well.

use std::fmt;

use ::landlock::{
    Access, AccessFs, AccessNet, LandlockStatus, Ruleset, RulesetAttr, RulesetStatus, Scope, ABI,
};

use super::SandboxError;

/// The newest ABI whose rights are requested; the kernel's own ABI may be older (best effort).
const REQUESTED_ABI: ABI = ABI::V10;

/// How much of the ruleset the running kernel enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LandlockState {
    /// Every requested restriction is enforced.
    FullyEnforced,
    /// The kernel's Landlock ABI is older: some restrictions are enforced.
    PartiallyEnforced,
    /// The kernel has no Landlock (not built, or not enabled at boot).
    NotEnforced,
}

impl fmt::Display for LandlockState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LandlockState::FullyEnforced => "fully enforced",
            LandlockState::PartiallyEnforced => "partially enforced",
            LandlockState::NotEnforced => "not enforced (kernel without Landlock)",
        })
    }
}

/// Restrict the calling thread; returns the enforced state and the kernel's ABI version.
pub(super) fn restrict() -> Result<(LandlockState, Option<i32>), SandboxError> {
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(REQUESTED_ABI))?
        .handle_access(AccessNet::from_all(REQUESTED_ABI))?
        .scope(Scope::from_all(REQUESTED_ABI))?
        .create()?
        .restrict_self()?;
    let state = match status.ruleset {
        RulesetStatus::FullyEnforced => LandlockState::FullyEnforced,
        RulesetStatus::PartiallyEnforced => LandlockState::PartiallyEnforced,
        RulesetStatus::NotEnforced => LandlockState::NotEnforced,
    };
    let abi = match status.landlock {
        LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => Some(kernel_abi.unwrap_or(effective_abi as i32)),
        LandlockStatus::NotEnabled | LandlockStatus::NotImplemented => None,
    };
    Ok((state, abi))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};

    /// The Landlock layer alone, without seccomp masking it: a restricted child cannot open a
    /// world-readable file. Needs no root (Landlock is unprivileged under NO_NEW_PRIVS).
    #[test]
    fn restricted_child_cannot_open_files() {
        // SAFETY: the child only restricts itself, tries one open and _exit()s.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let code = match restrict() {
                    Ok((LandlockState::NotEnforced, _)) => 3,
                    Ok(_) => match std::fs::File::open("/etc/passwd") {
                        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => 0,
                        Err(_) => 4,
                        Ok(_) => 1,
                    },
                    Err(_) => 2,
                };
                // SAFETY: leaves the forked child without running the harness's code.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                // SAFETY: LANDLOCK_CREATE_RULESET_VERSION takes no attribute pointer.
                let abi = unsafe {
                    libc::syscall(
                        libc::SYS_landlock_create_ruleset,
                        std::ptr::null::<u8>(),
                        0usize,
                        1u32,
                    )
                };
                let expected = if abi > 0 { 0 } else { 3 };
                assert_eq!(
                    waitpid(child, None).unwrap(),
                    WaitStatus::Exited(child, expected),
                    "kernel Landlock ABI {abi}"
                );
            }
        }
    }
}
