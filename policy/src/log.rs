//! Log levels and fastd's two line formats (docs/config.md §6.1). Both processes log, and an
//! operator greps one stream: the helper's lines must look exactly like the worker's, so
//! the formats live here, next to the [`LogSpec`] the worker declares in its manifest.

use crate::types::TypeError;
use serde::{Deserialize, Serialize};

/// Log levels, quietest first (`fatal` < ... < `debug2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LogLevel {
    Fatal,
    Error,
    Warn,
    Info,
    Verbose,
    Debug,
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
    pub const MAX: usize = 64;

    pub fn new(s: &str) -> Result<Self, TypeError> {
        let ok = !s.is_empty() && s.len() <= Self::MAX && s.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(TypeError::SyslogIdent)
        }
    }

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
    pub ident: SyslogIdent,
    pub level: LogLevel,
}

/// Where log lines go once start-up is over; `None` turns a destination off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSpec {
    pub stderr: Option<LogLevel>,
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
    pub fn to_stderr(&self, l: LogLevel) -> bool {
        self.stderr.is_some_and(|max| l <= max)
    }

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

/// fastd cuts a message at 1023 bytes.
pub const MAX_MESSAGE: usize = 1023;

fn cut(message: &str) -> &[u8] {
    let m = message.as_bytes();
    m.get(..MAX_MESSAGE).unwrap_or(m)
}

/// The local time through `strftime`; the zone is whatever libc loaded first (a
/// sandboxed process must format one timestamp before it loses /etc/localtime).
fn local_time(fmt: &std::ffi::CStr) -> String {
    // SAFETY: time(NULL) has no memory effects.
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    // SAFETY: tm is plain data; all-zero is a valid bit pattern that localtime_r overwrites.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to live locals; localtime_r is the thread-safe variant.
    if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() {
        return String::new();
    }
    let mut buf = [0u8; 64];
    // SAFETY: buf is writable for buf.len() bytes, fmt is NUL-terminated, tm was filled.
    let n = unsafe {
        libc::strftime(
            buf.as_mut_ptr().cast::<libc::c_char>(),
            buf.len(),
            fmt.as_ptr(),
            &tm,
        )
    };
    String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned()
}

/// `YYYY-MM-DD HH:MM:SS +ZZZZ` in local time.
pub fn timestamp() -> String {
    let t = local_time(c"%F %T %z");
    if t.is_empty() {
        String::from("1970-01-01 00:00:00 +0000")
    } else {
        t
    }
}

/// One stderr line: `<timestamp> --- <Prefix><message>\n`.
pub fn stderr_line(level: LogLevel, message: &str) -> Vec<u8> {
    let mut line = format!("{} --- {}", timestamp(), level.prefix()).into_bytes();
    line.extend_from_slice(cut(message));
    line.push(b'\n');
    line
}

/// Facility `daemon`, as fastd's `openlog(ident, LOG_PID, LOG_DAEMON)`.
const LOG_DAEMON: u8 = 3 << 3;

/// One datagram for `/dev/log` in the format glibc's `syslog()` sends:
/// `<PRI>Mmm dd HH:MM:SS ident[pid]: message`, without prefix or trailing newline.
pub fn syslog_datagram(level: LogLevel, ident: &SyslogIdent, pid: u32, message: &str) -> Vec<u8> {
    let pri = LOG_DAEMON | level.syslog_severity();
    let mut d = format!(
        "<{pri}>{} {}[{pid}]: ",
        local_time(c"%h %e %T"),
        ident.as_str()
    )
    .into_bytes();
    d.extend_from_slice(cut(message));
    d
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn severities_follow_fastd() {
        let pri = |l: LogLevel| LOG_DAEMON | l.syslog_severity();
        assert_eq!(pri(LogLevel::Error), 27);
        assert_eq!(pri(LogLevel::Warn), 28);
        assert_eq!(pri(LogLevel::Info), 29);
        assert_eq!(pri(LogLevel::Verbose), 30);
        assert_eq!(pri(LogLevel::Debug2), 31);
    }

    #[test]
    fn datagram_shape() {
        let ident = SyslogIdent::new("fastd@test").unwrap();
        let d = String::from_utf8(syslog_datagram(LogLevel::Info, &ident, 42, "x")).unwrap();
        assert!(d.starts_with("<29>"), "{d}");
        assert!(d.ends_with(" fastd@test[42]: x"), "{d}");
        // "<29>" + "Mmm dd HH:MM:SS" (15) + " "
        assert_eq!(d.as_bytes().get(19), Some(&b' '), "{d}");
        let long = "y".repeat(5000);
        let d = syslog_datagram(LogLevel::Info, &ident, 1, &long);
        assert!(d.len() < 1100);
    }

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
