//! [`Loader`]: applies config files and command-line options in command-line order.

use super::error::{strerror, ConfigError, Diagnostic, LocatedKind, Pos};
use super::lexer::tokenize;
use super::parser::Parser;
use super::source::{is_read_error, normalize, ConfigSource};
use super::types::{
    display_peer, Config, GroupId, InterfaceName, IpPrefix, LogLevel, PeerConfig, RedirectGateway,
    Remote,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// At most this many nested files (fastd's MAX_CONFIG_DEPTH).
const MAX_DEPTH: usize = 10;

/// A function that says whether 32 key bytes are a usable public key (a curve point
/// that is not the identity). The key math lives in `worker::keys`.
pub type KeyValidator = fn(&[u8; 32]) -> bool;

/// The context a file is parsed in.
pub(crate) enum FileCtx<'p> {
    /// Main config (root group or the group of the including file, which is `Main` too).
    Main(GroupId),
    /// Group context (file included from inside a `peer group`).
    Group(GroupId),
    /// Peer context.
    Peer(&'p mut PeerBuilder),
}

/// A peer being defined.
#[derive(Debug, Clone)]
pub(crate) struct PeerBuilder {
    pub(crate) name: Option<Vec<u8>>,
    pub(crate) group: GroupId,
    pub(crate) key: Option<[u8; 32]>,
    pub(crate) remotes: Vec<Remote>,
    pub(crate) float: bool,
    pub(crate) interface: Option<InterfaceName>,
    pub(crate) mtu: Option<u16>,
    pub(crate) interface_addresses: Vec<IpPrefix>,
    pub(crate) redirect_gateway: Option<RedirectGateway>,
}

impl PeerBuilder {
    pub(crate) fn new(name: Option<Vec<u8>>, group: GroupId) -> Self {
        PeerBuilder {
            name,
            group,
            key: None,
            remotes: Vec::new(),
            float: false,
            interface: None,
            mtu: None,
            interface_addresses: Vec::new(),
            redirect_gateway: None,
        }
    }
}

/// Builds a [`Config`] from config files and command-line options, applied in the order
/// they are given (docs/config.md §3.1). Warnings and debug lines that fastd prints while
/// parsing are collected; take them with [`Loader::take_diagnostics`] and print them
/// before an error returned by the same call.
pub struct Loader<'s> {
    source: &'s dyn ConfigSource,
    pub(crate) config: Config,
    diagnostics: Vec<Diagnostic>,
    key_validator: KeyValidator,
}

/// fastd's check of a configured peer key: a curve point that is not the identity.
fn valid_public_key(k: &[u8; 32]) -> bool {
    crate::keys::PublicKey::from_bytes(k).is_ok()
}

/// Decodes exactly 64 hex digits (either case).
pub fn decode_hex32(s: &[u8]) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let hi = (*pair.first()? as char).to_digit(16)?;
        let lo = (*pair.get(1)? as char).to_digit(16)?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

impl<'s> Loader<'s> {
    /// A loader with fastd's defaults. Peer keys must be 64 hex digits that decode to a
    /// usable curve point ([`crate::keys::PublicKey::from_bytes`]); tests may replace that
    /// check with [`Loader::with_key_validator`].
    pub fn new(source: &'s dyn ConfigSource) -> Self {
        Loader {
            source,
            config: Config::default(),
            diagnostics: Vec::new(),
            key_validator: valid_public_key,
        }
    }

    /// Sets the check that 32 key bytes are a valid public key.
    pub fn with_key_validator(mut self, f: KeyValidator) -> Self {
        self.key_validator = f;
        self
    }

    /// The configuration built so far (command-line options change it directly).
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    /// The configuration built so far.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Messages logged so far (warnings, debug lines, non-fatal errors), oldest first.
    pub fn take_diagnostics(&mut self) -> Vec<Diagnostic> {
        std::mem::take(&mut self.diagnostics)
    }

    pub(crate) fn log(&mut self, level: LogLevel, message: String) {
        self.diagnostics.push(Diagnostic { level, message });
    }

    pub(crate) fn warn(&mut self, message: String) {
        self.log(LogLevel::Warn, message);
    }

    /// `-c FILE`: parses a main config file now (relative to the working directory).
    pub fn load_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let cwd = self.cwd();
        self.read_config(
            path.as_os_str().as_bytes(),
            &cwd,
            FileCtx::Main(GroupId::ROOT),
            0,
        )
    }

    /// `-c -`: parses standard input as a main config file (named `(null)` in errors).
    pub fn load_stdin(&mut self) -> Result<(), ConfigError> {
        let cwd = self.cwd();
        let bytes = self.source.read_stdin().map_err(|_| {
            ConfigError::located("(null)", Pos { line: 1, col: 0 }, LocatedKind::Io, None)
        })?;
        self.parse_bytes(
            &bytes,
            "(null)".into(),
            cwd,
            FileCtx::Main(GroupId::ROOT),
            0,
        )
    }

    /// `--config-peer FILE`: parses a file as one unnamed peer of the root group.
    pub fn load_peer_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let cwd = self.cwd();
        let mut peer = PeerBuilder::new(None, GroupId::ROOT);
        self.read_config(
            path.as_os_str().as_bytes(),
            &cwd,
            FileCtx::Peer(&mut peer),
            0,
        )?;
        self.add_peer(peer)
            .map_err(|_| ConfigError::InvalidPeerDefinition)
    }

    /// `--config-peer-dir DIR`: adds a peer directory to the root group (relative to the
    /// working directory). A directory that cannot be entered is logged, not fatal.
    pub fn add_peer_dir_option(&mut self, dir: &Path) {
        let cwd = self.cwd();
        self.add_peer_dir(GroupId::ROOT, &cwd, dir.as_os_str().as_bytes());
    }

    fn cwd(&self) -> PathBuf {
        self.source
            .current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
    }

    /// Parses a peer-directory file as a peer named after it (docs/config.md §6.3): relative
    /// paths are resolved against `dir`, the file name appears bare in errors. `Ok(None)`:
    /// the file has no valid key and is skipped (the warning is in the diagnostics).
    /// Nothing here is fatal for the daemon: the caller logs an `Err` and skips the file,
    /// and handles duplicate keys against the peers it already has.
    pub fn parse_peer_dir_file(
        &mut self,
        dir: &Path,
        file_name: &OsStr,
        group: GroupId,
    ) -> Result<Option<PeerConfig>, ConfigError> {
        let path = dir.join(file_name);
        let bytes = self
            .source
            .read_file(&path)
            .map_err(|e| ConfigError::CantOpen {
                path: file_name.to_string_lossy().into_owned(),
                source: e,
            })?;
        let mut peer = PeerBuilder::new(Some(file_name.as_bytes().to_vec()), group);
        self.parse_bytes(
            &bytes,
            file_name.to_string_lossy().into_owned(),
            dir.to_path_buf(),
            FileCtx::Peer(&mut peer),
            0,
        )?;
        Ok(self.build_peer(peer).ok())
    }

    /// Opens `path` (relative to `base`) and parses it in `ctx`.
    pub(crate) fn read_config(
        &mut self,
        path: &[u8],
        base: &Path,
        ctx: FileCtx<'_>,
        depth: usize,
    ) -> Result<(), ConfigError> {
        if depth >= MAX_DEPTH {
            return Err(ConfigError::IncludeDepth);
        }
        let name = String::from_utf8_lossy(path).into_owned();
        if path.is_empty() {
            // fopen("") fails with ENOENT; joining "" would name the directory instead.
            return Err(ConfigError::CantOpen {
                path: name,
                source: std::io::Error::from_raw_os_error(2), // ENOENT
            });
        }
        let rel = Path::new(OsStr::from_bytes(path));
        let full = base.join(rel);
        let bytes = match self.source.read_file(&full) {
            Ok(b) => b,
            Err(e) if is_read_error(&e) => {
                return Err(ConfigError::located(
                    &name,
                    Pos { line: 1, col: 0 },
                    LocatedKind::Io,
                    Some(strerror(&e)),
                ))
            }
            Err(e) => {
                return Err(ConfigError::CantOpen {
                    path: name,
                    source: e,
                })
            }
        };
        let parent = full.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = self
            .source
            .canonicalize_dir(&parent)
            .unwrap_or_else(|_| normalize(&parent));
        self.parse_bytes(&bytes, name, dir, ctx, depth)
    }

    fn parse_bytes(
        &mut self,
        bytes: &[u8],
        file: String,
        dir: PathBuf,
        mut ctx: FileCtx<'_>,
        depth: usize,
    ) -> Result<(), ConfigError> {
        let (toks, lex_err) = tokenize(bytes);
        let mut p = Parser {
            loader: self,
            file,
            dir,
            depth,
            toks,
            lex_err,
            i: 0,
        };
        p.run(&mut ctx)
    }

    /// `include peers from`: registers a directory (absolute physical path).
    pub(crate) fn add_peer_dir(&mut self, group: GroupId, base: &Path, dir: &[u8]) {
        let full = base.join(OsStr::from_bytes(dir));
        match self.source.canonicalize_dir(&full) {
            Ok(abs) => {
                if let Some(g) = self.config.groups.get_mut(group.0) {
                    g.peer_dirs.push(abs);
                }
            }
            Err(e) => self.log(
                LogLevel::Error,
                format!(
                    "change from directory `{}' to `{}' failed: {}",
                    base.display(),
                    String::from_utf8_lossy(dir),
                    strerror(&e)
                ),
            ),
        }
    }

    /// `key "<hex>";`: `None` (cleared) unless 64 hex digits that pass the validator.
    pub(crate) fn parse_peer_key(&self, s: &[u8]) -> Option<[u8; 32]> {
        decode_hex32(s).filter(|k| (self.key_validator)(k))
    }

    fn build_peer(&mut self, p: PeerBuilder) -> Result<PeerConfig, String> {
        let Some(key) = p.key else {
            let n = display_peer(p.name.as_deref(), None);
            self.warn(format!("no valid key configured for peer {n}"));
            return Err(format!("peer {n} has no valid key (64 hex digits)"));
        };
        Ok(PeerConfig {
            name: p.name,
            key,
            group: p.group,
            remotes: p.remotes,
            float: p.float,
            interface: p.interface,
            mtu: p.mtu,
            interface_addresses: p.interface_addresses,
            redirect_gateway: p.redirect_gateway,
        })
    }

    /// End of a peer definition (docs/config.md §1.9). `Err` carries a detail for the
    /// `invalid peer definition` error; the warning is already logged.
    pub(crate) fn add_peer(&mut self, p: PeerBuilder) -> Result<(), String> {
        let peer = self.build_peer(p)?;
        if let Some(old) = self.config.peers.iter().find(|o| o.key == peer.key) {
            let (new_n, old_n) = (peer.display_name(), old.display_name());
            self.warn(format!(
                "duplicate key used by peers {new_n} and {old_n}, disabling both"
            ));
            return Err(format!("peers {new_n} and {old_n} have the same key"));
        }
        self.config.peers.push(peer);
        Ok(())
    }

    /// `method "<name>";` / `--method`: appends unless already in that group's list.
    pub fn add_method(&mut self, group: GroupId, name: String) {
        let Some(g) = self.config.groups.get_mut(group.0) else {
            return;
        };
        if g.methods.contains(&name) {
            self.log(
                LogLevel::Debug,
                format!("duplicate method name `{name}', ignoring"),
            );
        } else {
            g.methods.push(name);
        }
    }

    /// `protocol` / `--protocol`: only `ec25519-fhmqvc` exists.
    pub fn set_protocol(&mut self, name: &str) -> Result<(), ConfigError> {
        if name == "ec25519-fhmqvc" {
            Ok(())
        } else {
            Err(ConfigError::ProtocolNotSupported(name.to_owned()))
        }
    }

    pub(crate) fn set_cipher_implementation(
        &mut self,
        cipher: String,
        implementation: String,
    ) -> Result<(), ConfigError> {
        let ok = matches!(
            (cipher.as_str(), implementation.as_str()),
            ("salsa2012" | "salsa20", "xmm" | "nacl")
                | ("aes128-ctr", "openssl")
                | ("null", "memcpy")
        );
        if !ok {
            return Err(ConfigError::CipherImplementation {
                cipher,
                implementation,
            });
        }
        self.config
            .cipher_implementations
            .push((cipher, implementation));
        Ok(())
    }

    pub(crate) fn set_mac_implementation(
        &mut self,
        mac: String,
        implementation: String,
    ) -> Result<(), ConfigError> {
        let ok = matches!(
            (mac.as_str(), implementation.as_str()),
            ("ghash", "pclmulqdq" | "builtin") | ("uhash", "builtin")
        );
        if !ok {
            return Err(ConfigError::MacImplementation {
                mac,
                implementation,
            });
        }
        self.config.mac_implementations.push((mac, implementation));
        Ok(())
    }

    /// Ends loading: if neither stderr nor syslog logging is set, stderr gets `verbose`
    /// (docs/config.md §6.1). The checks that depend on the mode of operation are
    /// [`Config::verify`] (`--verify-config` and a real start) and
    /// [`Config::check_start`] (a real start).
    pub fn finish(mut self) -> (Config, Vec<Diagnostic>) {
        if self.config.log.stderr_level.is_none() && self.config.log.syslog_level.is_none() {
            self.config.log.stderr_level = Some(LogLevel::Verbose);
        }
        (self.config, self.diagnostics)
    }
}
