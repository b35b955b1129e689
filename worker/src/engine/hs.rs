//! Glue between the config, the handshake state machine and the engine: building
//! [`Handshake`] from a [`Config`], and fastd's log lines for handshake events.

use std::net::SocketAddr;
use std::time::Instant;

use super::hide::Hide;
use super::peer::{PeerParams, Unnamed};
use crate::config::{Config, GroupId, LogLevel, Mode};
use crate::handshake::{self, FailReason, Handshake, HandshakeConfig};
use crate::keys::{PublicKey, SecretKey};

#[derive(Debug, thiserror::Error)]
pub enum HsSetupError {
    #[error("invalid secret key")]
    Secret,
    #[error("invalid public key of peer {0}")]
    PeerKey(String),
}

/// Builds the handshake state machine for `config`; `peers` are the engine's resolved peers
/// (same order as `config.peers`).
pub fn from_config(
    config: &Config,
    peers: &[PeerParams],
    pre_v22: bool,
    now: Instant,
) -> Result<Handshake, HsSetupError> {
    let secret = config
        .secret_key_bytes()
        .map_err(|_| HsSetupError::Secret)?;
    let secret = SecretKey::from_bytes(secret).map_err(|_| HsSetupError::Secret)?;
    let mode = match config.mode {
        Mode::Tun => handshake::Mode::Tun,
        Mode::Tap | Mode::Multitap => handshake::Mode::Tap,
    };
    let mut hc = HandshakeConfig::new(
        secret,
        mode,
        config.mtu,
        config.methods_for(GroupId::ROOT).to_vec(),
    );
    hc.on_verify = config.on_verify.is_some();
    hc.pre_v22 = pre_v22;
    hc.secure_handshakes = config.secure_handshakes.unwrap_or(true);
    let mut list = Vec::with_capacity(peers.len());
    for (pc, pp) in config.peers.iter().zip(peers) {
        list.push(hs_peer(config, pc, pp)?);
    }
    Ok(Handshake::new(hc, list, now))
}

/// The handshake's view of one configured peer.
pub fn hs_peer(
    config: &Config,
    pc: &crate::config::PeerConfig,
    pp: &PeerParams,
) -> Result<handshake::PeerConfig, HsSetupError> {
    let key =
        PublicKey::from_bytes(&pc.key).map_err(|_| HsSetupError::PeerKey(pc.display_name()))?;
    Ok(handshake::PeerConfig {
        name: pp.name.clone().unwrap_or_default(),
        key,
        remotes: pp.remotes.clone(),
        floating: pc.float,
        methods: config.methods_for(pc.group).to_vec(),
        mtu: pp.mtu,
        limits: config
            .ancestry(pc.group)
            .into_iter()
            .filter_map(|g| {
                let grp = config.group(g)?;
                let max = usize::try_from(grp.peer_limit?).ok()?;
                // Group names need not be unique: the index makes the counter key unique.
                Some(handshake::GroupLimit {
                    group: format!("{}#{}", String::from_utf8_lossy(&grp.name), g.0),
                    max,
                })
            })
            .collect(),
    })
}

fn record_name(id: u16) -> &'static str {
    match id {
        0x00 => "handshake type",
        0x01 => "reply code",
        0x02 => "error detail",
        0x03 => "flags",
        0x04 => "mode",
        0x05 => "protocol name",
        0x06 => "sender key",
        0x07 => "recipient key",
        0x08 => "sender handshake key",
        0x09 => "recipient handshake key",
        0x0b => "MTU",
        0x0c => "method name",
        0x0d => "version name",
        0x0e => "method list",
        0x0f => "TLV authentication tag",
        _ => "(unknown)",
    }
}

/// fastd's text for an error reply (docs/protocol.md §2.7).
pub fn error_text(code: u8, record: u16, mtu: u16) -> String {
    if code == 1 {
        return format!("mandatory field `{}' missing", record_name(record));
    }
    match record {
        0x04 => "TUN/TAP mode mismatch".to_owned(),
        0x05 => "peer doesn't use the handshake protocol `ec25519-fhmqvc'".to_owned(),
        0x0b => format!("MTU configuration differs with peer (local MTU is {mtu})"),
        0x0c | 0x0e => "no common methods are configured".to_owned(),
        r => format!("unacceptable value for field `{}'", record_name(r)),
    }
}

/// The level of [`fail_line`]'s line for `reason`.
pub fn fail_level(reason: &FailReason) -> LogLevel {
    match reason {
        FailReason::ErrorSent { .. }
        | FailReason::ErrorReceived { .. }
        | FailReason::NoReplyCode
        | FailReason::InvalidTag => LogLevel::Warn,
        FailReason::UnknownKey => LogLevel::Verbose,
        _ => LogLevel::Debug,
    }
}

/// The log line for a failed handshake, in fastd's wording where fastd has one. `hide`
/// decides how the address shows.
pub fn fail_line(
    remote: &SocketAddr,
    key: Option<&[u8; 32]>,
    reason: &FailReason,
    mtu: u16,
    hide: Hide,
) -> (LogLevel, String) {
    let a = hide.addr(remote);
    match reason {
        FailReason::ErrorSent { code, record } => (
            LogLevel::Warn,
            format!(
                "Handshake with {a} failed: sending error: {}",
                error_text(*code, *record, mtu)
            ),
        ),
        FailReason::ErrorReceived { code, record } => (
            LogLevel::Warn,
            format!(
                "Handshake with {a} failed: received error: {}",
                error_text(*code, *record, mtu)
            ),
        ),
        FailReason::NoReplyCode => (
            LogLevel::Warn,
            format!("received handshake reply without reply code from {a}"),
        ),
        FailReason::UnknownKey => (
            LogLevel::Verbose,
            format!(
                "ignoring handshake from {a} (unknown key {})",
                key.map(|k| crate::keys::encode_hex(k.as_slice()))
                    .unwrap_or_default()
            ),
        ),
        FailReason::AddressNotAllowed => (
            LogLevel::Debug,
            format!(
                "ignoring handshake from {a} with key {} (incorrect source address)",
                key.map(|k| crate::keys::encode_hex(k.as_slice()))
                    .unwrap_or_default()
            ),
        ),
        // fastd's line when `on verify` refused the key (or its acceptance ran out); the
        // engine does not log the failure that only means "verdict pending".
        FailReason::NotVerified => match key {
            Some(k) => (
                LogLevel::Debug,
                format!(
                    "ignoring handshake from {}[{a}] (verification failed)",
                    Unnamed(k)
                ),
            ),
            None => (
                LogLevel::Debug,
                format!("ignoring handshake from {a} (verification failed)"),
            ),
        },
        FailReason::InvalidTag => (
            LogLevel::Warn,
            format!("received invalid handshake from {a}: invalid authentication tag"),
        ),
        other => (
            LogLevel::Debug,
            format!("ignoring handshake from {a}: {other:?}"),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fail_level_is_the_level_of_the_line() {
        let a: SocketAddr = "192.0.2.2:1".parse().unwrap();
        for r in [
            FailReason::ErrorSent { code: 2, record: 4 },
            FailReason::ErrorReceived { code: 2, record: 4 },
            FailReason::NoReplyCode,
            FailReason::UnknownKey,
            FailReason::AddressNotAllowed,
            FailReason::Malformed,
            FailReason::RepeatedHandshake,
            FailReason::RepeatedInit,
            FailReason::WrongRecipient,
            FailReason::UnknownHandshakeKey,
            FailReason::InvalidTag,
            FailReason::KeyReuse,
            FailReason::PeerLimit,
            FailReason::CryptoFailure,
            FailReason::NotVerified,
        ] {
            let key = [7u8; 32];
            let (level, _) = fail_line(&a, Some(&key), &r, 1400, Hide::default());
            assert_eq!(fail_level(&r), level, "{r:?}");
        }
    }

    #[test]
    fn fastd_error_texts() {
        let a: SocketAddr = "192.0.2.2:46610".parse().unwrap();
        let (l, m) = fail_line(
            &a,
            None,
            &FailReason::ErrorReceived {
                code: 2,
                record: 0x0b,
            },
            1448,
            Hide::default(),
        );
        assert_eq!(l, LogLevel::Warn);
        assert_eq!(
            m,
            "Handshake with 192.0.2.2:46610 failed: received error: MTU configuration differs with peer (local MTU is 1448)"
        );
        let (_, m) = fail_line(
            &a,
            None,
            &FailReason::ErrorSent {
                code: 2,
                record: 0x04,
            },
            1448,
            Hide::default(),
        );
        assert_eq!(
            m,
            "Handshake with 192.0.2.2:46610 failed: sending error: TUN/TAP mode mismatch"
        );
        assert_eq!(error_text(2, 0x0e, 0), "no common methods are configured");
        assert_eq!(
            error_text(2, 0x03, 0),
            "unacceptable value for field `flags'"
        );
    }

    /// With `hide ip addresses yes;` fastd v22 printed (IPv4 and IPv6 peers alike):
    /// `Handshake with [hidden]:10001 failed: received error: MTU configuration differs with
    /// peer (local MTU is 1300)` and `ignoring handshake from [hidden]:10001 (unknown key
    /// 540c...)`. Our `{key}[addr]` form hides the address the same way.
    #[test]
    fn hidden_addresses_keep_the_port() {
        let hide = Hide {
            ip: true,
            mac: false,
        };
        let key =
            PublicKey::from_hex("540c31b24905cccc4ad7bd7b4277ffda37ffc77429ccd2682c2b5c7a160be4c8")
                .unwrap();
        for a in ["198.51.100.2:10001", "[2001:db8::2]:10001"] {
            let a: SocketAddr = a.parse().unwrap();
            let line = |reason| fail_line(&a, Some(key.as_bytes()), &reason, 1300, hide).1;
            assert_eq!(
                line(FailReason::ErrorReceived {
                    code: 2,
                    record: 0x0b
                }),
                "Handshake with [hidden]:10001 failed: received error: MTU configuration differs with peer (local MTU is 1300)"
            );
            assert_eq!(
                line(FailReason::UnknownKey),
                format!(
                    "ignoring handshake from [hidden]:10001 (unknown key {})",
                    key.to_hex()
                )
            );
            assert_eq!(
                line(FailReason::NotVerified),
                "ignoring handshake from {540c31b24905cccc}[[hidden]:10001] (verification failed)"
            );
        }
    }
}
