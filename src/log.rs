//! What the front end prints: fastd's stderr log lines before logging is set up (every
//! level: during start-up fastd prints them all; the format is policy::log's, shared with
//! both daemon processes), and its stdout output.

use anyhow::Context;
use std::io::Write;
use worker::config::cli::early_log;
use worker::config::LogLevel;

pub fn log(level: LogLevel, message: &str) {
    early_log(level, message);
}

/// `Error: <message>`.
pub fn error(message: &str) {
    log(LogLevel::Error, message);
}

pub fn print_stdout(b: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(b).context("writing to stdout")?;
    out.flush().context("writing to stdout")
}

/// `--help`: fastd's text, byte for byte.
pub fn print_help() -> anyhow::Result<()> {
    print_stdout(worker::config::cli::help_text().as_bytes())
}

/// `--version`: fastd's two words first (tools parse the second), then which daemon this is.
pub fn print_version() -> anyhow::Result<()> {
    print_stdout(
        concat!(
            "fastd v22 (fastd-privsep ",
            env!("CARGO_PKG_VERSION"),
            ")\n"
        )
        .as_bytes(),
    )
}
