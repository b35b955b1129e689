//! fastd-privsep: a fastd v22 compatible VPN daemon with a privilege-separated root helper.

mod cli;
mod daemon;
mod log;
mod roles;
mod status;
mod worker_role;

use std::process::ExitCode;

fn main() -> anyhow::Result<ExitCode> {
    if let Some(code) = roles::dispatch() {
        return Ok(code);
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    cli::run(&args)
}
