//! Log lines in fastd's stderr format (config.md §6.1). The engine only formats a message when
//! its level is enabled, so debug lines cost nothing on the packet path.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::config::LogLevel;

type Sink = Arc<dyn Fn(LogLevel, &str) + Send + Sync>;

#[derive(Clone)]
pub struct Logger {
    level: Option<LogLevel>,
    sink: Sink,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger")
            .field("level", &self.level)
            .finish()
    }
}

/// `YYYY-MM-DD HH:MM:SS +ZZZZ` in local time.
fn timestamp() -> String {
    // SAFETY: time(NULL) has no memory effects.
    let t = unsafe { libc::time(std::ptr::null_mut()) };
    // SAFETY: an all-zero tm is a valid out-parameter.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to live locals.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return String::from("1970-01-01 00:00:00 +0000");
    }
    let off = tm.tm_gmtoff / 60;
    let sign = if off < 0 { '-' } else { '+' };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {}{:02}{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        sign,
        off.abs() / 60,
        off.abs() % 60
    )
}

/// Loads the local time zone now: call it before the sandbox is sealed, since libc reads
/// /etc/localtime only on first use (afterwards every timestamp would be UTC).
pub fn prepare_timezone() {
    // The first localtime_r initialises the zone.
    let _ = timestamp();
}

impl Logger {
    /// fastd's stderr format, messages up to `level`.
    pub fn stderr(level: Option<LogLevel>) -> Logger {
        Logger {
            level,
            sink: Arc::new(|l: LogLevel, msg: &str| {
                let line = format!("{} --- {}{}\n", timestamp(), l.prefix(), msg);
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }),
        }
    }

    /// Messages go to `sink` (tests collect them; the integrator may route to syslog).
    pub fn with_sink(
        level: Option<LogLevel>,
        sink: impl Fn(LogLevel, &str) + Send + Sync + 'static,
    ) -> Logger {
        Logger {
            level,
            sink: Arc::new(sink),
        }
    }

    /// A logger that remembers every line, for tests.
    pub fn memory(level: LogLevel) -> (Logger, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        let logger = Logger::with_sink(Some(level), move |l, m| {
            if let Ok(mut v) = l2.lock() {
                v.push(format!("{}{}", l.prefix(), m));
            }
        });
        (logger, lines)
    }

    pub fn enabled(&self, l: LogLevel) -> bool {
        self.level.is_some_and(|max| l <= max)
    }

    pub fn log(&self, l: LogLevel, msg: impl FnOnce() -> String) {
        if self.enabled(l) {
            (self.sink)(l, &msg());
        }
    }
}
