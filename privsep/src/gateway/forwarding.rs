//! IP forwarding sysctls, written by the helper through /proc/sys.

use std::fs;

use policy::gateway::Family;

use super::GatewayError;

pub fn sysctl_path(family: Family) -> &'static str {
    match family {
        Family::V4 => "/proc/sys/net/ipv4/ip_forward",
        Family::V6 => "/proc/sys/net/ipv6/conf/all/forwarding",
    }
}

fn read(family: Family) -> Result<String, GatewayError> {
    let path = sysctl_path(family);
    fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| GatewayError::Sysctl(path, e))
}

fn write(family: Family, value: &str) -> Result<(), GatewayError> {
    let path = sysctl_path(family);
    fs::write(path, value).map_err(|e| GatewayError::Sysctl(path, e))
}

/// Turn forwarding on. Returns the old value when we changed it, which is
/// the only case in which it is restored later.
pub fn enable(family: Family) -> Result<Option<String>, GatewayError> {
    let old = read(family)?;
    if old == "1" {
        return Ok(None);
    }
    write(family, "1")?;
    Ok(Some(old))
}

/// Put back the value `enable` replaced, unless somebody has changed it
/// again since (then it is theirs).
pub fn restore(family: Family, old: &str) -> Result<(), GatewayError> {
    // Only plain numbers ever came from the sysctl; anything else means the
    // journal is not ours to trust.
    if old.is_empty() || !old.bytes().all(|b| b.is_ascii_digit()) {
        return Err(GatewayError::Sysctl(
            sysctl_path(family),
            std::io::Error::from(std::io::ErrorKind::InvalidData),
        ));
    }
    if read(family)? != "1" {
        return Ok(());
    }
    write(family, old)
}
