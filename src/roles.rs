//! Which process this is: the sandboxed worker (hidden `--privsep-worker-role`, set by
//! the helper when it re-executes /proc/self/exe), the root helper (a real start), or
//! neither (everything `cli` answers by itself: --help, --verify-config, key tools).

use std::ffi::OsString;
use std::process::ExitCode;

/// Options that make fastd do something other than run the daemon.
const NOT_A_START: [&str; 8] = [
    "--verify-config",
    "--generate-key",
    "--show-key",
    "--help",
    "-h",
    "--version",
    "-v",
    "--machine-readable",
];

/// Runs the worker or the helper if this process is one of them.
pub fn dispatch() -> Option<ExitCode> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == privsep::WORKER_ROLE_ARG) {
        // SAFETY: the helper started us with its socket on fd 3 and nothing else owns it.
        let code = unsafe { crate::worker_role::run() };
        return Some(exit_code(code));
    }
    let is_start = args.iter().any(|a| a == "-c" || a == "--config")
        && !args.iter().any(|a| NOT_A_START.iter().any(|n| a == n));
    if !is_start {
        return None;
    }
    let args: Option<Vec<String>> = args.into_iter().map(|a| a.into_string().ok()).collect();
    let Some(args) = args else {
        eprintln!("Error: command line arguments must be UTF-8");
        return Some(ExitCode::FAILURE);
    };
    Some(exit_code(privsep::run(args)))
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
