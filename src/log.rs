//! fastd's stderr log line before logging is set up (every level: during start-up fastd
//! prints them all). The format is policy::log's, shared with both daemon processes.

use std::io::Write;
use worker::config::LogLevel;

pub fn log(level: LogLevel, message: &str) {
    // A failing stderr cannot be reported anywhere else.
    let _ = std::io::stderr()
        .lock()
        .write_all(&policy::log::stderr_line(level, message));
}

/// `Error: <message>`.
pub fn error(message: &str) {
    log(LogLevel::Error, message);
}
