//! fastd-privsep: a fastd v22 compatible VPN daemon with a privilege-separated root helper.

mod cli;
mod log;

use std::process::ExitCode;

fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    cli::run(&args)
}
