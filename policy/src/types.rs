//! Typed values with validating constructors. Deserialization goes through the same
//! constructors (`serde(try_from)`), so no invalid value survives `decode`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    #[error("invalid interface name")]
    IfName,
    #[error("invalid interface name pattern")]
    IfNamePattern,
    #[error("invalid peer name")]
    PeerName,
    #[error("MTU out of range 576..=65535")]
    Mtu,
    #[error("invalid path (must be absolute, without NUL, at most 4096 bytes)")]
    Path,
    #[error("invalid hook command (empty, NUL byte or longer than 4096 bytes)")]
    HookCommand,
    #[error("invalid syslog ident (1 to 64 printable characters without spaces)")]
    SyslogIdent,
}

/// Linux' IFNAMSIZ minus the terminating NUL.
pub const IFNAME_MAX: usize = 15;

/// A concrete network interface name as the kernel accepts it (`dev_valid_name`), and
/// stricter: 1..=15 bytes of printable ASCII, no `/`, `:`, `%` or whitespace, not `.`/`..`.
/// A name that passes this is safe both in `TUNSETIFF` and as a hook's `INTERFACE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfName(String);

impl IfName {
    pub fn new(name: &str) -> Result<Self, TypeError> {
        let ok = !name.is_empty()
            && name.len() <= IFNAME_MAX
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b':' | b'%'));
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(TypeError::IfName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IfName {
    type Error = TypeError;
    fn try_from(s: String) -> Result<Self, TypeError> {
        Self::new(&s)
    }
}

impl From<IfName> for String {
    fn from(n: IfName) -> String {
        n.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// fastd's global `interface` value: empty (the kernel chooses), a plain name, or a name
/// with exactly one `%n` (peer name) or `%k` (first 16 hex digits of the peer key)
/// somewhere in it (docs/config.md 1.6, 6.7). The expansion is cut to 15 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfNamePattern(String);

/// What a `%` in an [`IfNamePattern`] stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternKind {
    PeerName,
    PeerKey,
}

impl IfNamePattern {
    pub fn new(pattern: &str) -> Result<Self, TypeError> {
        if pattern.len() > 255 || pattern.contains('/') {
            return Err(TypeError::IfNamePattern);
        }
        let (prefix, rest) = match pattern.split_once('%') {
            None => (pattern, None),
            Some((p, r)) => (p, Some(r)),
        };
        let literal_ok = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b':' | b'%'))
        };
        let ok = match rest {
            None => literal_ok(prefix),
            Some(r) => {
                let suffix = r.strip_prefix('n').or_else(|| r.strip_prefix('k'));
                matches!(suffix, Some(s) if literal_ok(s)) && literal_ok(prefix)
            }
        };
        if ok {
            Ok(Self(pattern.to_owned()))
        } else {
            Err(TypeError::IfNamePattern)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `(prefix, kind, suffix)` when the pattern holds `%n`/`%k`.
    pub fn parts(&self) -> Option<(&str, PatternKind, &str)> {
        let (prefix, rest) = self.0.split_once('%')?;
        if let Some(s) = rest.strip_prefix('n') {
            Some((prefix, PatternKind::PeerName, s))
        } else {
            rest.strip_prefix('k')
                .map(|s| (prefix, PatternKind::PeerKey, s))
        }
    }

    /// Does `name` come out of this pattern for some peer? For `%k` the middle must be
    /// 16 lowercase hex digits (or the part of them that survived the cut to 15 bytes).
    pub fn admits(&self, name: &IfName) -> bool {
        let name = name.as_str();
        match self.parts() {
            None => truncate(&self.0) == name,
            Some((prefix, kind, suffix)) => {
                let Some(middle_and_suffix) = name.strip_prefix(truncate(prefix)) else {
                    return false;
                };
                if prefix.len() >= IFNAME_MAX {
                    return middle_and_suffix.is_empty() && kind == PatternKind::PeerName;
                }
                // The cut may have eaten all or part of the suffix, so any middle whose
                // expansion reproduces `name` is acceptable.
                (0..=middle_and_suffix.len()).any(|split| {
                    let (middle, tail) = middle_and_suffix.split_at(split);
                    let middle_ok = match kind {
                        PatternKind::PeerName => !middle.is_empty(),
                        PatternKind::PeerKey => {
                            middle.len() <= 16
                                && middle
                                    .bytes()
                                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                                && (middle.len() == 16 || prefix.len() + middle.len() == IFNAME_MAX)
                        }
                    };
                    middle_ok
                        && (tail == suffix
                            || (name.len() == IFNAME_MAX && suffix.starts_with(tail)))
                })
            }
        }
    }
}

fn truncate(s: &str) -> &str {
    s.get(..IFNAME_MAX.min(s.len())).unwrap_or(s)
}

impl TryFrom<String> for IfNamePattern {
    type Error = TypeError;
    fn try_from(s: String) -> Result<Self, TypeError> {
        Self::new(&s)
    }
}

impl From<IfNamePattern> for String {
    fn from(n: IfNamePattern) -> String {
        n.0
    }
}

/// A peer name as the helper will put it into `PEER_NAME`. fastd allows any string; the
/// privileged side accepts 1..=64 bytes of `[A-Za-z0-9._+@=,-]`, not starting with `-` or
/// `.`, which covers host-style names and peer-directory file names without ever handing
/// a shell metacharacter, whitespace or control character to a hook.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerName(String);

impl PeerName {
    pub const MAX: usize = 64;

    pub fn new(name: &str) -> Result<Self, TypeError> {
        let ok = !name.is_empty()
            && name.len() <= Self::MAX
            && !name.starts_with(['-', '.'])
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+@=,-".contains(&b));
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(TypeError::PeerName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PeerName {
    type Error = TypeError;
    fn try_from(s: String) -> Result<Self, TypeError> {
        Self::new(&s)
    }
}

impl From<PeerName> for String {
    fn from(n: PeerName) -> String {
        n.0
    }
}

/// Interface MTU, 576..=65535 (docs/config.md 1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Mtu(u32);

impl Mtu {
    pub fn new(mtu: u32) -> Result<Self, TypeError> {
        if (576..=65535).contains(&mtu) {
            Ok(Self(mtu))
        } else {
            Err(TypeError::Mtu)
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Mtu {
    type Error = TypeError;
    fn try_from(v: u32) -> Result<Self, TypeError> {
        Self::new(v)
    }
}

impl From<Mtu> for u32 {
    fn from(m: Mtu) -> u32 {
        m.0
    }
}

/// fastd's `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    Tap,
    Multitap,
    Tun,
}

impl Mode {
    /// Whether the device is a TAP (Ethernet) device.
    pub fn is_tap(self) -> bool {
        matches!(self, Mode::Tap | Mode::Multitap)
    }
}

/// A Curve25519 public key, rendered as 64 lowercase hex digits in hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Index of a configured peer in [`crate::Manifest::peers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerId(pub u32);

/// Index of a hook in [`crate::Manifest::hooks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HookId(pub u32);

/// An absolute path: starts with `/`, no NUL, at most 4096 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AbsPath(String);

impl AbsPath {
    pub fn new(path: &str) -> Result<Self, TypeError> {
        if path.starts_with('/') && !path.contains('\0') && path.len() <= 4096 {
            Ok(Self(path.to_owned()))
        } else {
            Err(TypeError::Path)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AbsPath {
    type Error = TypeError;
    fn try_from(s: String) -> Result<Self, TypeError> {
        Self::new(&s)
    }
}

impl From<AbsPath> for String {
    fn from(n: AbsPath) -> String {
        n.0
    }
}

/// A hook command string from the config, passed to `/bin/sh -c` unchanged, as fastd
/// does. It comes from the configuration (trusted), is sealed before the first hook, and
/// is never built from run-time data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HookCommand(String);

impl HookCommand {
    pub fn new(cmd: &str) -> Result<Self, TypeError> {
        if !cmd.is_empty() && !cmd.contains('\0') && cmd.len() <= 4096 {
            Ok(Self(cmd.to_owned()))
        } else {
            Err(TypeError::HookCommand)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HookCommand {
    type Error = TypeError;
    fn try_from(s: String) -> Result<Self, TypeError> {
        Self::new(&s)
    }
}

impl From<HookCommand> for String {
    fn from(n: HookCommand) -> String {
        n.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ifname_rules() {
        assert!(IfName::new("vpngateway").is_ok());
        assert!(IfName::new("fpstest0").is_ok());
        assert!(IfName::new("123456789012345").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "a\nb",
            "a:b",
            "tun%d",
            "1234567890123456",
            "; rm -rf /",
            "é",
        ] {
            assert_eq!(IfName::new(bad), Err(TypeError::IfName), "{bad:?}");
        }
    }

    #[test]
    fn pattern_rules_follow_fastd() {
        for good in ["", "vpn", "mt-%k", "%n", "peer-%n-x"] {
            assert!(IfNamePattern::new(good).is_ok(), "{good:?}");
        }
        for bad in ["a/b", "%d", "%n%k", "tun%", "a%x", "a b%n"] {
            assert!(IfNamePattern::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pattern_admits_expansions() {
        let p = IfNamePattern::new("mt-%k").unwrap();
        // docs/config.md 6.7: `mt-%k` gave `mt-d28585393d77`.
        assert!(p.admits(&IfName::new("mt-d28585393d77").unwrap()));
        assert!(!p.admits(&IfName::new("mt-d28585393d7").unwrap()));
        assert!(!p.admits(&IfName::new("mt-zzzzzzzzzzzz").unwrap()));
        assert!(!p.admits(&IfName::new("eth0").unwrap()));
        let p = IfNamePattern::new("p-%n-x").unwrap();
        assert!(p.admits(&IfName::new("p-alpha-x").unwrap()));
        assert!(!p.admits(&IfName::new("p--x").unwrap()));
        assert!(!p.admits(&IfName::new("p-alpha-y").unwrap()));
        let p = IfNamePattern::new("vpngateway").unwrap();
        assert!(p.admits(&IfName::new("vpngateway").unwrap()));
        assert!(!p.admits(&IfName::new("vpngateway2").unwrap()));
        let long = IfNamePattern::new("averyveryverylongname").unwrap();
        assert!(long.admits(&IfName::new("averyveryverylo").unwrap()));
    }

    #[test]
    fn peer_name_rules() {
        for good in ["anyremote", "alpha", "node-1.example", "a_b+c@d=e,f"] {
            assert!(PeerName::new(good).is_ok(), "{good:?}");
        }
        let long = "x".repeat(10 * 1024);
        for bad in [
            "",
            "; rm -rf /",
            "a\nb",
            "a b",
            "$(id)",
            "-x",
            ".hidden",
            &long,
        ] {
            assert_eq!(PeerName::new(bad), Err(TypeError::PeerName), "{bad:?}");
        }
    }

    #[test]
    fn mtu_range() {
        assert!(Mtu::new(575).is_err());
        assert!(Mtu::new(576).is_ok());
        assert!(Mtu::new(65535).is_ok());
        assert!(Mtu::new(65536).is_err());
    }

    #[test]
    fn key_hex_is_lowercase() {
        let k = PublicKey([0xAB; 32]);
        assert_eq!(k.to_hex(), "ab".repeat(32));
    }
}
