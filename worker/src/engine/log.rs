//! Log lines in fastd's stderr format (docs/config.md §6.1). The engine only formats a message when
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

impl Logger {
    /// The daemon's logger: stderr and syslog, each with its own level. `syslog` is the
    /// helper's non-blocking socket to /dev/log; a line that does not fit is dropped
    /// rather than stalling the packet loop.
    pub fn destinations(
        spec: policy::log::LogSpec,
        syslog: Option<std::os::unix::net::UnixDatagram>,
    ) -> Logger {
        let pid = std::process::id();
        let level = spec.max_level();
        Logger {
            level,
            sink: Arc::new(move |l: LogLevel, msg: &str| {
                if spec.to_stderr(l) {
                    let _ = std::io::stderr()
                        .lock()
                        .write_all(&logline::stderr_line(l, msg));
                }
                if let (Some(sock), Some(s)) = (&syslog, &spec.syslog) {
                    if spec.to_syslog(l) {
                        let d = logline::syslog_datagram(l, &s.ident, pid, msg);
                        let _ = sock.send(&d);
                    }
                }
            }),
        }
    }

    /// Messages go to `sink` (tests collect them).
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
