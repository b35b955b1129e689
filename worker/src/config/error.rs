//! Errors of config parsing, with fastd v22's exact message texts.

use std::fmt;
use std::io;

/// A position in a config file: 1-based line and 1-based byte column (TAB = 1).
///
/// Column 0 is used for "the file could not be read at all" (`I/O error at f:1:0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based byte column.
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// The message part of a located config error (fastd's fixed vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocatedKind {
    /// `syntax error`
    Syntax,
    /// `unterminated string`
    UnterminatedString,
    /// `unterminated block comment`
    UnterminatedComment,
    /// `I/O error`
    Io,
    /// `invalid MTU`
    InvalidMtu,
    /// `invalid port`
    InvalidPort,
    /// `invalid interface name`
    InvalidInterfaceName,
    /// `invalid peer definition`
    InvalidPeerDefinition,
    /// `invalid peer limit`
    InvalidPeerLimit,
    /// Extension statements only: an invalid prefix length (`invalid prefix length`).
    InvalidPrefixLength,
}

impl LocatedKind {
    /// fastd's text for this error.
    pub fn as_str(self) -> &'static str {
        match self {
            LocatedKind::Syntax => "syntax error",
            LocatedKind::UnterminatedString => "unterminated string",
            LocatedKind::UnterminatedComment => "unterminated block comment",
            LocatedKind::Io => "I/O error",
            LocatedKind::InvalidMtu => "invalid MTU",
            LocatedKind::InvalidPort => "invalid port",
            LocatedKind::InvalidInterfaceName => "invalid interface name",
            LocatedKind::InvalidPeerDefinition => "invalid peer definition",
            LocatedKind::InvalidPeerLimit => "invalid peer limit",
            LocatedKind::InvalidPrefixLength => "invalid prefix length",
        }
    }
}

/// A config error with a position, printed as fastd does:
/// `config error: <message> at <file>:<line>:<col>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The file name exactly as it was given (`(null)` for stdin, the bare name for peer-dir files).
    pub file: String,
    /// Where the error is.
    pub pos: Pos,
    /// fastd's message.
    pub kind: LocatedKind,
    /// What the parser found and what it expected, for a second, more helpful line
    /// in the project's `file:line:col: message` shape (fastd itself prints only `kind`).
    pub detail: Option<String>,
}

/// Every error that config loading and its checks can produce. `Display` gives fastd's
/// text without the `Error: ` log prefix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A located error (syntax, value range, peer definition).
    #[error("config error: {} at {}:{}", .0.kind.as_str(), .0.file, .0.pos)]
    Located(Located),
    /// A file given to `-c`, `include`, `include peer` or `--config-peer` cannot be opened.
    #[error("can't open config file `{path}': {}", strerror(.source))]
    CantOpen {
        /// The path as written.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// More than 10 nested files.
    #[error("maximum config include depth exceeded")]
    IncludeDepth,
    /// `protocol "x";` / `--protocol x` with anything but `ec25519-fhmqvc`.
    #[error("config error: protocol `{0}' not supported")]
    ProtocolNotSupported(String),
    /// `cipher "c" use "impl";` that this build does not know.
    #[error("config error: implementation `{implementation}' is not supported for cipher `{cipher}' (or cipher `{cipher}' is not supported)")]
    CipherImplementation {
        /// The cipher name.
        cipher: String,
        /// The implementation name.
        implementation: String,
    },
    /// `mac "m" use "impl";` that this build does not know.
    #[error("config error: implementation `{implementation}' is not supported for MAC `{mac}' (or MAC `{mac}' is not supported)")]
    MacImplementation {
        /// The MAC name.
        mac: String,
        /// The implementation name.
        implementation: String,
    },
    /// An unknown method name (checked by [`Config::verify`](super::Config::verify)).
    #[error("config error: method `{0}' not supported")]
    MethodNotSupported(String),
    /// `offload l2tp yes;` outside multitap mode.
    #[error("L2TP offload is available in multi-TAP mode only")]
    L2tpNeedsMultitap,
    /// `offload l2tp yes;` with persistent interfaces.
    #[error("`persist iface' must be set to `no' for L2TP offload")]
    L2tpNeedsNoPersist,
    /// `--config-peer` file without a valid or with a duplicate key (no position).
    #[error("invalid peer definition")]
    InvalidPeerDefinition,
    /// A real start without any peer source.
    #[error("config error: neither fixed peers nor peer dirs have been configured")]
    NoPeers,
    /// `--show-key` or a real start without `secret`.
    #[error("no secret key configured")]
    NoSecret,
    /// `secret` is not 64 hex digits with the low 3 bits of the first byte clear.
    #[error("invalid secret key")]
    InvalidSecret,
}

impl ConfigError {
    pub(crate) fn located(file: &str, pos: Pos, kind: LocatedKind, detail: Option<String>) -> Self {
        ConfigError::Located(Located {
            file: file.to_owned(),
            pos,
            kind,
            detail,
        })
    }

    /// The located part, if this error has a position.
    pub fn location(&self) -> Option<&Located> {
        match self {
            ConfigError::Located(l) => Some(l),
            _ => None,
        }
    }

    /// The project's `file:line:col: message` form of a located error, including the
    /// detail of what was expected; `None` for errors without a position.
    pub fn detail_line(&self) -> Option<String> {
        let l = self.location()?;
        let msg = match &l.detail {
            Some(d) => format!("{}: {}", l.kind.as_str(), d),
            None => l.kind.as_str().to_owned(),
        };
        Some(format!("{}:{}:{}: {}", l.file, l.pos.line, l.pos.col, msg))
    }
}

/// glibc's `strerror` text for an I/O error (Rust appends " (os error N)", fastd does not).
pub fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.split_once(" (os error ") {
        Some((text, _)) => text.to_owned(),
        None => s,
    }
}

/// A non-fatal message produced while loading (fastd logs these at once, on stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Log level of the line.
    pub level: super::LogLevel,
    /// The message, without timestamp or level prefix.
    pub message: String,
}
