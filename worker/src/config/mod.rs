//! fastd v22 configuration: the complete config language (docs/config.md §1), applied in
//! command-line order with the command-line options (§3.1), into a typed [`Config`].
//!
//! Entry points, in the order a start goes through them:
//!
//! 1. [`Loader::new`] on a [`ConfigSource`] ([`FsSource`] for the real file system; the
//!    worker gets file bytes from the root helper instead).
//! 2. In command-line order: [`Loader::load_file`] (`-c FILE`), [`Loader::load_stdin`]
//!    (`-c -`), [`Loader::load_peer_file`] (`--config-peer`), [`Loader::add_peer_dir_option`]
//!    (`--config-peer-dir`), [`Loader::add_method`], [`Loader::set_protocol`] and
//!    [`Loader::config_mut`] for the other options. After each call print
//!    [`Loader::take_diagnostics`] (warnings fastd prints while parsing), then the error.
//! 3. [`Loader::finish`] gives the [`Config`] (default stderr log level applied).
//! 4. [`Config::verify`] (`--verify-config` checks), [`Config::secret_key_bytes`] (the
//!    key tools and a start), [`Config::check_start`] (a real start).
//! 5. At run time: [`Loader::parse_peer_dir_file`] for each peer-directory file.
//!
//! Errors print as fastd's (`Display` of [`ConfigError`], after `Error: `); located ones
//! also give [`ConfigError::detail_line`]: `file:line:col: message: what was found/expected`.
//!
//! fastd-privsep EXTENSIONS to the v22 grammar (each is a syntax error in real fastd):
//!
//! * `interface address <addr>/<prefixlen>;`: repeatable, IPv4 (`10.0.0.1/24`) or IPv6
//!   (`[fd00::1]/64`); at top level (root group), in `peer group` and in peer context.
//!   Stored in [`PeerGroup::interface_addresses`] / [`PeerConfig::interface_addresses`].
//! * `redirect gateway [via <addr>];`: top level, `peer group`, peer context
//!   ([`RedirectGateway`]).
//! * `masquerade [from <prefix>] out "<ifname>";`: top level only ([`Masquerade`]).
//!
//! The extension keywords are `address`, `gateway`, `masquerade`, `out`, `redirect`, `via`.

mod checks;
pub mod cli;
mod error;
mod lexer;
mod loader;
mod parser;
mod peer_dirs;
mod source;
mod types;

pub use checks::is_valid_method;
pub use error::{strerror, ConfigError, Diagnostic, Located, LocatedKind, Pos};
pub use lexer::{tokenize, LexError, Tok, Token};
pub use loader::{decode_hex32, KeyValidator, Loader};
pub use peer_dirs::load_peer_dirs;
pub use source::{ConfigSource, FsSource, MemSource};
pub use types::{
    AddressFamily, Bind, BindAddress, Config, DropCapabilities, GroupHooks, GroupId, Hook,
    HookKind, InterfaceName, IpPrefix, LogConfig, LogLevel, Masquerade, Mode, PeerConfig,
    PeerGroup, Pmtu, RedirectGateway, Remote,
};

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
