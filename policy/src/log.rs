//! Log levels and destinations (docs/config.md §6.1): the [`LogSpec`] the worker declares
//! in its manifest. The line formats both processes write are in the `logline` crate.

use crate::types::TypeError;
use serde::{Deserialize, Serialize};

/// Log levels, quietest first (`fatal` < ... < `debug2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LogLevel {
    /// fastd's `fatal`.
    Fatal,
    /// fastd's `error`.
    Error,
    /// fastd's `warn`.
    Warn,
    /// fastd's `info`.
    Info,
    /// fastd's `verbose`.
    Verbose,
    /// fastd's `debug`.
    Debug,
    /// fastd's `debug2`.
    Debug2,
}

impl LogLevel {
    /// Parses a level name as the config and `--log-level` spell it.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "fatal" => LogLevel::Fatal,
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "verbose" => LogLevel::Verbose,
            "debug" => LogLevel::Debug,
            "debug2" => LogLevel::Debug2,
            _ => return None,
        })
    }

    /// The prefix of a stderr log line (`Error: `, `DEBUG: ` ...).
    pub fn prefix(self) -> &'static str {
        match self {
            LogLevel::Fatal => "Fatal: ",
            LogLevel::Error => "Error: ",
            LogLevel::Warn => "Warning: ",
            LogLevel::Info => "Info: ",
            LogLevel::Verbose => "Verbose: ",
            LogLevel::Debug => "DEBUG: ",
            LogLevel::Debug2 => "DEBUG2: ",
        }
    }

    /// fastd's syslog severity: one step louder than the name suggests for info and
    /// verbose (info is `notice`, verbose is `info`), as the v22 binary sends them.
    pub fn syslog_severity(self) -> u8 {
        match self {
            LogLevel::Fatal => 2,
            LogLevel::Error => 3,
            LogLevel::Warn => 4,
            LogLevel::Info => 5,
            LogLevel::Verbose => 6,
            LogLevel::Debug | LogLevel::Debug2 => 7,
        }
    }
}

/// A syslog ident (`--syslog-ident`, `log to syslog as "…"`): 1..=64 bytes of printable
/// ASCII without whitespace. The helper hands it to `openlog`, so no NUL or control byte
/// may reach it; fastd takes any string, but every real ident (`fastd`, `fastd@%I`) fits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SyslogIdent(String);

impl SyslogIdent {
    /// Longest ident, in bytes.
    pub const MAX: usize = 64;

    /// Checks an ident (see the type's rules).
    pub fn new(s: &str) -> Result<Self, TypeError> {
        let ok = !s.is_empty() && s.len() <= Self::MAX && s.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(TypeError::SyslogIdent)
        }
    }

    /// The ident as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SyslogIdent {
    type Error = TypeError;
    fn try_from(s: String) -> Result<Self, TypeError> {
        Self::new(&s)
    }
}

impl From<SyslogIdent> for String {
    fn from(i: SyslogIdent) -> String {
        i.0
    }
}

/// syslog is on, with this ident and level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyslogSpec {
    /// `log to syslog as`: the ident.
    pub ident: SyslogIdent,
    /// `log to syslog level`: the loudest level sent.
    pub level: LogLevel,
}

/// Where log lines go once start-up is over; `None` turns a destination off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSpec {
    /// `log level` on stderr; None: nothing on stderr.
    pub stderr: Option<LogLevel>,
    /// Syslog, if the config logs there.
    pub syslog: Option<SyslogSpec>,
}

impl Default for LogSpec {
    /// Before the config is known every message goes to stderr (docs/config.md §6.1).
    fn default() -> Self {
        LogSpec {
            stderr: Some(LogLevel::Debug2),
            syslog: None,
        }
    }
}

impl LogSpec {
    /// Does a line of level `l` go to stderr?
    pub fn to_stderr(&self, l: LogLevel) -> bool {
        self.stderr.is_some_and(|max| l <= max)
    }

    /// Does a line of level `l` go to syslog?
    pub fn to_syslog(&self, l: LogLevel) -> bool {
        self.syslog.as_ref().is_some_and(|s| l <= s.level)
    }

    /// The loudest level any destination takes (None: nothing is logged at all).
    pub fn max_level(&self) -> Option<LogLevel> {
        let s = self.syslog.as_ref().map(|s| s.level);
        match (self.stderr, s) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn idents_are_checked() {
        assert!(SyslogIdent::new("fastd@mesh-vpn").is_ok());
        for bad in ["", "a b", "a\0b", "x\n", &"z".repeat(65)] {
            assert!(SyslogIdent::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn spec_levels() {
        let s = LogSpec {
            stderr: None,
            syslog: Some(SyslogSpec {
                ident: SyslogIdent::new("fastd").unwrap(),
                level: LogLevel::Info,
            }),
        };
        assert!(!s.to_stderr(LogLevel::Error));
        assert!(s.to_syslog(LogLevel::Info));
        assert!(!s.to_syslog(LogLevel::Verbose));
        assert_eq!(s.max_level(), Some(LogLevel::Info));
        assert_eq!(LogSpec::default().max_level(), Some(LogLevel::Debug2));
    }
}
