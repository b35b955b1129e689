//! The worker role: fastd's full command line (the same parser as a normal start, over
//! the file bytes the helper reads), then the packet engine with its IPC provider.

use crate::cli::{self, Parsed};
use crate::log;
use std::ffi::OsString;
use std::path::Path;
use worker::config::{Config, ConfigSource};

/// Parses the command line the helper forwarded; fastd's messages are printed here, the
/// error only says that start-up ends.
fn load(source: &dyn ConfigSource, args: &[String], cwd: &Path) -> Result<Config, String> {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    // --daemon and --pid-file were handled by the process that became the helper.
    let mut config = match cli::parse(&args, source, cwd) {
        Ok(Parsed::Run(config, _)) => *config,
        Ok(Parsed::Exit(_)) => return Err("start-up aborted".to_owned()),
        Err(e) => return Err(e.to_string()),
    };
    let report = |e: worker::config::ConfigError| {
        log::error(&e.to_string());
        "start-up aborted".to_owned()
    };
    config.verify().map_err(report)?;
    for d in config.check_start().map_err(report)? {
        log::log(d.level, &d.message);
    }
    // fastd reads peer directories after its privilege switch; ours reads them through the
    // helper before sealing, so their peers are part of the sealed policy.
    let diags = worker::config::load_peer_dirs(&mut config, source).unwrap_or_else(|d| d);
    for d in diags {
        log::log(d.level, &d.message);
    }
    // Still before the sandbox: host names of `remote` statements are resolved now.
    worker::runtime::resolve::preresolve(&config);
    Ok(config)
}

/// The worker's entry point; returns its exit status.
///
/// # Safety
/// Only in the worker role, with fd 3 being the helper's socket (see `privsep::spawn`).
pub unsafe fn run() -> i32 {
    // SAFETY: forwarded from the caller.
    match unsafe { worker::bootstrap::start(&load) } {
        Ok(started) => worker::runtime::run(started),
        Err(e) => {
            log::error(&e.to_string());
            1
        }
    }
}
