//! The binary's front end of fastd's command line (docs/config.md §3): the parser is the
//! worker's ([`worker::config::cli`]); here `--help`, `--version`, `--verify-config`, the
//! key tools, `--daemon`, and handing a real start to the helper.

use crate::log;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use worker::config::cli::{self, Modes, Parsed};
use worker::config::{Config, ConfigError, FsSource, LogLevel};

/// Runs fastd's command line on the real file system; returns the exit status.
pub fn run(args: &[OsString]) -> anyhow::Result<ExitCode> {
    // `--status` is ours, not fastd's: it shows a running daemon instead of starting one.
    if let Some(req) = crate::status::request(args, cli::takes_argument) {
        return crate::status::run(&req);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    match cli::parse(args, &FsSource, &cwd) {
        Parsed::Help => log::print_help().map(|()| ExitCode::SUCCESS),
        Parsed::Version => log::print_version().map(|()| ExitCode::SUCCESS),
        Parsed::Failed => Ok(ExitCode::FAILURE),
        Parsed::Run(config, modes) => execute(*config, &modes, args),
    }
}

/// Acts on a parsed command line: the special modes, or the daemon (through the helper).
fn execute(mut config: Config, modes: &Modes, args: &[OsString]) -> anyhow::Result<ExitCode> {
    if modes.verify_config {
        return Ok(match config.verify() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        });
    }
    if modes.generate_key {
        return generate_key(modes.machine_readable);
    }
    let secret = match config.secret_key_bytes().and_then(|b| {
        worker::keys::SecretKey::from_bytes(b).map_err(|_| ConfigError::InvalidSecret)
    }) {
        Ok(k) => k,
        Err(e) => return Ok(fail(e)),
    };
    if modes.show_key {
        let public = secret.public().to_hex();
        let out = if modes.machine_readable {
            format!("{public}\n")
        } else {
            format!("Public: {public}\n")
        };
        log::print_stdout(out.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Err(e) = config.verify() {
        return Ok(fail(e));
    }
    match config.check_start() {
        Ok(diags) => {
            for d in diags {
                log::log(d.level, &d.message);
            }
        }
        Err(e) => return Ok(fail(e)),
    }
    // fastd runs in `/` from here on, so a relative pid file is relative to `/`.
    let mut readiness = privsep::ready::Readiness {
        pid_file: modes.pid_file.as_ref().map(|p| Path::new("/").join(p)),
        parent: None,
    };
    if modes.daemon {
        // SAFETY: nothing has started a thread yet: config parsing and the checks above
        // run in main's thread, and the helper's threads come after this point.
        match unsafe { crate::daemon::daemonize() } {
            Ok(crate::daemon::Daemonized::Parent(code)) => return Ok(code),
            Ok(crate::daemon::Daemonized::Daemon(fd)) => readiness.parent = Some(fd),
            Err(e) => {
                log::error(&format!("fork: {e}"));
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    // The checks above print fastd's own diagnostics; from here the helper takes over and
    // the sandboxed worker parses the same command line again over the helper's reads.
    Ok(crate::roles::start_helper(args, readiness))
}

fn fail(e: ConfigError) -> ExitCode {
    cli::report_config_error(&e);
    ExitCode::FAILURE
}

fn generate_key(machine_readable: bool) -> anyhow::Result<ExitCode> {
    if !machine_readable {
        log::log(LogLevel::Info, "Reading 32 bytes from /dev/random...");
    }
    let secret = match worker::keys::SecretKey::try_generate() {
        Ok(k) => k,
        Err(e) => {
            log::error(&format!("unable to read random bytes: {e}"));
            return Ok(ExitCode::FAILURE);
        }
    };
    let out = if machine_readable {
        format!("{}\n", secret.to_hex())
    } else {
        format!(
            "Secret: {}\nPublic: {}\n",
            secret.to_hex(),
            secret.public().to_hex()
        )
    };
    log::print_stdout(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
