//! Typed values with validating constructors. Deserialization goes through the same
//! constructors (`serde(try_from)`), so no invalid value survives `decode`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    /// Not a valid kernel interface name.
    #[error("invalid interface name")]
    IfName,
    /// Not a valid `interface` pattern.
    #[error("invalid interface name pattern")]
    IfNamePattern,
    /// A peer name or key part that cannot stand in an interface name.
    #[error(
        "`{0}' does not fit an interface name (letters, digits, `_', and `-' or `.' not first)"
    )]
    IfNameFill(String),
    /// `%n` in the pattern, but the peer has no name.
    #[error("invalid `%n' interface pattern for peer without name")]
    UnnamedPeerPattern,
    /// Not a valid peer name.
    #[error("invalid peer name")]
    PeerName,
    /// MTU outside fastd's range.
    #[error("MTU out of range 576..=65535")]
    Mtu,
    /// Not an absolute, NUL-free path of bounded length.
    #[error("invalid path (must be absolute, without NUL, at most 4096 bytes)")]
    Path,
    /// Not a usable hook command.
    #[error("invalid hook command (empty, NUL byte or longer than 4096 bytes)")]
    HookCommand,
    /// Not a usable syslog ident.
    #[error("invalid syslog ident (1 to 64 printable characters without spaces)")]
    SyslogIdent,
}

/// Linux' IFNAMSIZ minus the terminating NUL.
pub const IFNAME_MAX: usize = 15;

/// A concrete network interface name as the kernel accepts it (`dev_valid_name`), and
/// stricter: 1..=15 bytes of printable ASCII, no `/`, `:`, `%` or whitespace, not `.`/`..`.
/// Every interface name that crosses the boundary has this type.
///
/// This alone does not make a name safe for a hook that re-parses `INTERFACE` (eval, a
/// nested `sh -c`): a literal name from the config is the admin's choice, as with fastd.
/// What the worker can choose is narrower: the policy only admits names that are a
/// configured literal or a pattern expanded with an [`IfNameFill`], so the worker never
/// adds a shell metacharacter, a glob or a leading `-` of its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfName(String);

impl IfName {
    /// Checks a kernel interface name.
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

    /// The name.
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

/// The part of an interface name that a `%n`/`%k` pattern takes from the peer (its name,
/// or 16 hex digits of its key): 1..=15 bytes of `[A-Za-z0-9_.-]`, not starting with `-`
/// or `.`. This is what keeps a worker-chosen part out of a shell's or a glob's way in
/// every `on up`/`on down` that uses `$INTERFACE`.
///
/// fastd pastes any peer name in and lets TUNSETIFF decide; a name the kernel refuses
/// (a space, `/`, `:`) fails that peer's interface there, and so does a name outside this
/// alphabet here (`+`, `@`, `=`, `,` would pass the kernel).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IfNameFill(String);

impl IfNameFill {
    /// Checks the part of a name a pattern's `%n`/`%k` stands for.
    pub fn new(fill: &str) -> Result<Self, TypeError> {
        let ok = !fill.is_empty()
            && !fill.starts_with(['-', '.'])
            && fill
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        // The expansion is cut to 15 bytes anyway; a longer fill is fine (and cut).
        if ok {
            Ok(Self(fill.to_owned()))
        } else {
            Err(TypeError::IfNameFill(fill.chars().take(64).collect()))
        }
    }

    /// The part.
    pub fn as_str(&self) -> &str {
        &self.0
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
    /// `%n`: the peer's name.
    PeerName,
    /// `%k`: the first 16 hex digits of the peer's key.
    PeerKey,
}

impl IfNamePattern {
    /// Checks an `interface` pattern.
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

    /// The pattern as configured.
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

    /// The interface name of a peer under this pattern (docs/config.md 6.7): `%n` takes the
    /// peer's name, `%k` the first 16 hex digits of its key, the result is cut to 15
    /// bytes. None for a pattern without `%n`/`%k`.
    pub fn expand(
        &self,
        name: Option<&PeerName>,
        key: &PublicKey,
    ) -> Option<Result<IfName, TypeError>> {
        let (prefix, kind, suffix) = self.parts()?;
        let fill = match kind {
            PatternKind::PeerName => match name {
                Some(n) => IfNameFill::new(n.as_str()),
                None => Err(TypeError::UnnamedPeerPattern),
            },
            PatternKind::PeerKey => IfNameFill::new(key.to_hex().get(..16).unwrap_or_default()),
        };
        Some(fill.and_then(|f| {
            let full = format!("{prefix}{}{suffix}", f.as_str());
            // Cut at a character boundary: the literal parts are ASCII-checked already.
            IfName::new(truncate(&full))
        }))
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
                        PatternKind::PeerName => IfNameFill::new(middle).is_ok(),
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

/// A peer name as the helper will put it into `PEER_NAME`: what fastd can produce, a
/// peer-directory file name (any bytes but `/` and NUL, e.g. `node one`, `Müller`,
/// `node(1)`) or the string of `peer "<name>"`. The helper passes it in the environment of
/// `/bin/sh -c COMMAND`, never as part of the command, so shell metacharacters are data;
/// NUL (which fastd's C strings cannot hold and `execve` could not pass), the empty
/// string and names longer than [`PeerName::MAX`] bytes are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerName(String);

impl PeerName {
    /// Longer than any file name (255 bytes on Linux) and any sane `peer "<name>"`.
    pub const MAX: usize = 1024;

    /// Checks a peer name.
    pub fn new(name: &str) -> Result<Self, TypeError> {
        if !name.is_empty() && name.len() <= Self::MAX && !name.contains('\0') {
            Ok(Self(name.to_owned()))
        } else {
            Err(TypeError::PeerName)
        }
    }

    /// The name.
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
    /// Checks an MTU.
    pub fn new(mtu: u32) -> Result<Self, TypeError> {
        if (576..=65535).contains(&mtu) {
            Ok(Self(mtu))
        } else {
            Err(TypeError::Mtu)
        }
    }

    /// The MTU.
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
    /// One TAP device for all peers.
    Tap,
    /// One TAP device per peer.
    Multitap,
    /// One TUN device per peer.
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
    /// Lowercase hex, as fastd prints keys.
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
    /// Checks an absolute path.
    pub fn new(path: &str) -> Result<Self, TypeError> {
        if path.starts_with('/') && !path.contains('\0') && path.len() <= 4096 {
            Ok(Self(path.to_owned()))
        } else {
            Err(TypeError::Path)
        }
    }

    /// The path.
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
    /// Checks a hook command.
    pub fn new(cmd: &str) -> Result<Self, TypeError> {
        if !cmd.is_empty() && !cmd.contains('\0') && cmd.len() <= 4096 {
            Ok(Self(cmd.to_owned()))
        } else {
            Err(TypeError::HookCommand)
        }
    }

    /// The command as configured.
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
    fn worker_chosen_parts_are_plain() {
        let p = IfNamePattern::new("adv%n").unwrap();
        let key = PublicKey([0xd2; 32]);
        let name = |n: &str| PeerName::new(n).ok();
        let ok = p.expand(name("node-1.x").as_ref(), &key).unwrap().unwrap();
        assert_eq!(ok.as_str(), "advnode-1.x");
        assert!(p.admits(&ok));
        // Characters a peer name may have but an interface name from a pattern may not.
        for bad in ["a+b", "a@b", "a=b", "a,b", "-x", "_ok"] {
            let got = p.expand(name(bad).as_ref(), &key);
            assert_eq!(got.is_some_and(|r| r.is_ok()), bad == "_ok", "{bad:?}");
        }
        assert_eq!(
            p.expand(None, &key),
            Some(Err(TypeError::UnnamedPeerPattern))
        );
        // What a hostile worker could ask for under `adv%n`.
        for hostile in [
            "adv$(id>x)",
            "adv`id`",
            "adv;id",
            "adv*",
            "adv?",
            "adv[a]",
            "adv-",
            "adv.x",
            "adv'",
            "adv\"",
            "adv&",
            "adv|x",
            "adv>x",
            "adv~",
            "adv!",
        ] {
            let Ok(n) = IfName::new(hostile) else {
                continue;
            };
            assert!(!p.admits(&n), "{hostile:?}");
        }
        let k = IfNamePattern::new("mt-%k").unwrap();
        let got = k.expand(None, &key).unwrap().unwrap();
        assert_eq!(got.as_str(), "mt-d2d2d2d2d2d2");
        assert_eq!(
            IfNamePattern::new("plain").unwrap().expand(None, &key),
            None
        );
    }

    #[test]
    fn peer_name_rules() {
        // Everything fastd takes as a peer-directory file name or `peer "<name>"`.
        let long = "x".repeat(255);
        for good in [
            "anyremote",
            "node-1.example",
            "node one",
            "Müller",
            "node(1)",
            "; rm -rf /",
            "$(id)",
            "a\nb",
            "-x",
            &long,
        ] {
            assert_eq!(PeerName::new(good).unwrap().as_str(), good);
        }
        let too_long = "x".repeat(PeerName::MAX + 1);
        for bad in ["", "a\0b", "\0", &too_long] {
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
