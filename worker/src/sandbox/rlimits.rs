//! Resource limits: no core dumps, no new processes, no file writes.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

use super::SandboxError;

/// Soft and hard limits both, so the worker cannot raise them again. Set after the uid switch:
/// RLIMIT_NPROC counts the processes of the real uid, and lowering it before the switch would
/// mark the switch itself as exceeding it.
pub(super) fn apply(max_fds: Option<u64>) -> Result<(), SandboxError> {
    // A core dump would write session keys to disk.
    set(Resource::RLIMIT_CORE, "RLIMIT_CORE", 0)?;
    // No fork, no threads: a second layer under the seccomp filter, which refuses clone too.
    set(Resource::RLIMIT_NPROC, "RLIMIT_NPROC", 0)?;
    // The worker writes no files; Landlock and seccomp also keep it from opening any.
    set(Resource::RLIMIT_FSIZE, "RLIMIT_FSIZE", 0)?;
    if let Some(n) = max_fds {
        // Raising the hard limit would need CAP_SYS_RESOURCE, which the worker never had.
        let (_, hard) =
            getrlimit(Resource::RLIMIT_NOFILE).map_err(|source| SandboxError::Rlimit {
                resource: "RLIMIT_NOFILE",
                source,
            })?;
        set(Resource::RLIMIT_NOFILE, "RLIMIT_NOFILE", n.min(hard))?;
    }
    Ok(())
}

fn set(resource: Resource, name: &'static str, value: u64) -> Result<(), SandboxError> {
    setrlimit(resource, value, value).map_err(|source| SandboxError::Rlimit {
        resource: name,
        source,
    })
}
