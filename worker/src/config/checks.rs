//! Checks after parsing (docs/config.md §1.10) and method names (§1.11).

use super::error::{ConfigError, Diagnostic};
use super::loader::decode_hex32;
use super::types::{Config, LogLevel, Mode};

/// Whether fastd v22 (Debian build) knows this method name (docs/config.md §1.11). The rules live in
/// one place, the method registry, so the parser, the handshake and the data path cannot disagree.
pub fn is_valid_method(name: &str) -> bool {
    crate::method::by_name(name).is_some()
}

impl Config {
    /// The checks of `--verify-config` (also done at a real start, not by the key tools):
    /// L2TP offload constraints, then every method name.
    pub fn verify(&self) -> Result<(), ConfigError> {
        if self.offload_l2tp {
            if self.mode != Mode::Multitap {
                return Err(ConfigError::L2tpNeedsMultitap);
            }
            if self.persist_interface {
                return Err(ConfigError::L2tpNeedsNoPersist);
            }
        }
        for g in &self.groups {
            if let Some(bad) = g.methods.iter().find(|m| !is_valid_method(m)) {
                return Err(ConfigError::MethodNotSupported(bad.clone()));
            }
        }
        Ok(())
    }

    /// The checks of a real start after [`Config::verify`]: some peer source must exist,
    /// and a root group without methods gets `null` (with fastd's warning).
    pub fn check_start(&mut self) -> Result<Vec<Diagnostic>, ConfigError> {
        let mut diags = Vec::new();
        let has_dirs = self.groups.iter().any(|g| !g.peer_dirs.is_empty());
        if self.peers.is_empty() && !has_dirs && self.on_verify.is_none() {
            return Err(ConfigError::NoPeers);
        }
        if let Some(root) = self.groups.first_mut() {
            if root.methods.is_empty() {
                diags.push(Diagnostic {
                    level: LogLevel::Warn,
                    message: "no encryption method configured, falling back to method `null' (unencrypted)".into(),
                });
                root.methods.push("null".into());
            }
        }
        Ok(diags)
    }

    /// The secret as 32 bytes: present, 64 hex digits (either case), and the low 3 bits
    /// of the first byte clear (`--show-key`, real start).
    pub fn secret_key_bytes(&self) -> Result<[u8; 32], ConfigError> {
        let s = self.secret.as_ref().ok_or(ConfigError::NoSecret)?;
        let k = decode_hex32(s.as_bytes()).ok_or(ConfigError::InvalidSecret)?;
        if k.first().is_some_and(|b| b & 7 != 0) {
            return Err(ConfigError::InvalidSecret);
        }
        Ok(k)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::is_valid_method;

    #[test]
    fn debian_methods() {
        for m in crate::method::DEBIAN_METHODS
            .into_iter()
            .chain(["salsa2012+salsa20+umac"])
        {
            assert!(is_valid_method(m), "{m}");
        }
        for m in [
            "aes128-ctr+gmac",
            "salsa2012+foo",
            "foo",
            "null+umac",
            "null+gmac",
            "",
            "salsa2012",
            "null@foo",
        ] {
            assert!(!is_valid_method(m), "{m}");
        }
    }
}
