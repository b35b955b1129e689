//! Capability sets: the stage-1 reduction and the final drop.

use ::caps::{CapSet, Capability, CapsHashSet};

use super::SandboxError;

/// The kernel numbers capabilities below 64; the caps crate names those it knows, and a newer
/// kernel may have more in the bounding set, so that set is also walked by number.
const MAX_CAP_INDEX: u8 = 64;

fn caps_err(op: &'static str) -> impl FnOnce(::caps::errors::CapsError) -> SandboxError {
    move |e| SandboxError::Caps {
        op,
        reason: e.to_string(),
    }
}

/// The capabilities the worker keeps until [`super::enter`].
fn stage1_kept() -> CapsHashSet {
    [Capability::CAP_SETUID, Capability::CAP_SETGID]
        .into_iter()
        .collect()
}

/// See [`super::stage1`]. The bounding set is emptied first, while CAP_SETPCAP is still effective.
pub(super) fn stage1() -> Result<(), SandboxError> {
    drop_bounding()?;
    ::caps::clear(None, CapSet::Ambient).map_err(caps_err("clear ambient"))?;
    ::caps::clear(None, CapSet::Inheritable).map_err(caps_err("clear inheritable"))?;
    let kept = stage1_kept();
    // Effective first: the kernel refuses a permitted set smaller than the effective one.
    ::caps::set(None, CapSet::Effective, &kept).map_err(caps_err("set effective"))?;
    ::caps::set(None, CapSet::Permitted, &kept).map_err(caps_err("set permitted"))?;
    for (set, name) in [
        (CapSet::Effective, "effective"),
        (CapSet::Permitted, "permitted"),
    ] {
        let now = ::caps::read(None, set).map_err(caps_err("read"))?;
        if now != kept {
            return Err(SandboxError::CapsLeft {
                set: name,
                left: describe(&now),
            });
        }
    }
    verify_empty(CapSet::Inheritable, "inheritable")?;
    verify_empty(CapSet::Ambient, "ambient")?;
    Ok(())
}

/// Empty the bounding set. Needs CAP_SETPCAP unless the set is already empty (after stage 1).
pub(super) fn drop_bounding() -> Result<(), SandboxError> {
    ::caps::clear(None, CapSet::Bounding).map_err(caps_err("clear bounding"))?;
    for index in 0..MAX_CAP_INDEX {
        if bounding_has(index) == Some(true) {
            // SAFETY: PR_CAPBSET_DROP takes a capability number and no pointers.
            let rc =
                unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(index), 0, 0, 0) };
            if rc != 0 {
                return Err(SandboxError::Caps {
                    op: "PR_CAPBSET_DROP",
                    reason: std::io::Error::last_os_error().to_string(),
                });
            }
        }
    }
    Ok(())
}

/// `None` when the kernel does not know capability `index`.
fn bounding_has(index: u8) -> Option<bool> {
    // SAFETY: PR_CAPBSET_READ takes a capability number and no pointers.
    let rc = unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(index), 0, 0, 0) };
    match rc {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// Drop every capability from every set and check that all five sets are empty. Runs after the
/// uid switch, which already cleared effective, permitted and ambient; this makes it explicit and
/// independent of securebits.
pub(super) fn drop_all() -> Result<(), SandboxError> {
    ::caps::clear(None, CapSet::Ambient).map_err(caps_err("clear ambient"))?;
    ::caps::clear(None, CapSet::Inheritable).map_err(caps_err("clear inheritable"))?;
    ::caps::clear(None, CapSet::Effective).map_err(caps_err("clear effective"))?;
    ::caps::clear(None, CapSet::Permitted).map_err(caps_err("clear permitted"))?;
    drop_bounding()?;
    for (set, name) in [
        (CapSet::Effective, "effective"),
        (CapSet::Permitted, "permitted"),
        (CapSet::Inheritable, "inheritable"),
        (CapSet::Ambient, "ambient"),
        (CapSet::Bounding, "bounding"),
    ] {
        verify_empty(set, name)?;
    }
    if let Some(index) = (0..MAX_CAP_INDEX).find(|&i| bounding_has(i) == Some(true)) {
        return Err(SandboxError::CapsLeft {
            set: "bounding",
            left: format!("capability {index}"),
        });
    }
    Ok(())
}

fn verify_empty(set: CapSet, name: &'static str) -> Result<(), SandboxError> {
    let now = ::caps::read(None, set).map_err(caps_err("read"))?;
    if now.is_empty() {
        Ok(())
    } else {
        Err(SandboxError::CapsLeft {
            set: name,
            left: describe(&now),
        })
    }
}

fn describe(set: &CapsHashSet) -> String {
    let mut names: Vec<String> = set.iter().map(ToString::to_string).collect();
    names.sort();
    names.join(",")
}
