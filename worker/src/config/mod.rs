//! fastd v22 configuration: the complete config language (config.md §1), applied in
//! command-line order with the command-line options (§3.1), into a typed [`Config`].
//!
//! Entry points: [`Loader`] (`load_file`, `load_stdin`, `load_peer_file`,
//! `add_peer_dir_option`, `config_mut` for options, `finish`), then [`Config::verify`]
//! (`--verify-config` checks), [`Config::check_start`] and [`Config::secret_key_bytes`].
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
mod error;
mod lexer;
mod loader;
mod parser;
mod source;
mod types;

pub use checks::is_valid_method;
pub use error::{strerror, ConfigError, Diagnostic, Located, LocatedKind, Pos};
pub use lexer::{tokenize, LexError, Tok, Token};
pub use loader::{decode_hex32, KeyValidator, Loader};
pub use source::{ConfigSource, FsSource, MemSource};
pub use types::{
    AddressFamily, Bind, BindAddress, Config, DropCapabilities, GroupHooks, GroupId, Hook,
    HookKind, InterfaceName, IpPrefix, LogConfig, LogLevel, Masquerade, Mode, PeerConfig,
    PeerGroup, Pmtu, RedirectGateway, Remote,
};

#[cfg(test)]
mod tests;
