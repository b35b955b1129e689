//! Which process this is: the sandboxed worker (hidden `--privsep-worker-role`, set by
//! the helper when it re-executes /proc/self/exe), the root helper (a real start), or
//! neither (everything `cli` answers by itself: --help, --verify-config, key tools).

use std::ffi::OsString;
use std::process::ExitCode;

/// Until `cli` hands real starts to [`start_helper`] (after its own checks, where it now
/// says "not yet supported"), a real start goes to the helper only when this variable is
/// set, so that `cli`'s exact diagnostics stay in force. The end-to-end tests set it.
pub const START_ENV: &str = "FASTD_PRIVSEP_START_HELPER";

/// Runs the worker, or the helper for a real start, if this process is one of them.
pub fn dispatch() -> Option<ExitCode> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == privsep::WORKER_ROLE_ARG) {
        // SAFETY: the helper started us with its socket on fd 3 and nothing else owns it.
        let code = unsafe { crate::worker_role::run() };
        return Some(exit_code(code));
    }
    if std::env::var_os(START_ENV).is_some() {
        return Some(start_helper(&args));
    }
    None
}

/// A real start: become the helper, which re-executes this binary as the worker and
/// passes it `args` (the command line without argv\[0\]).
pub fn start_helper(args: &[OsString]) -> ExitCode {
    let args: Option<Vec<String>> = args.iter().map(|a| a.to_str().map(str::to_owned)).collect();
    let Some(args) = args else {
        eprintln!("Error: command line arguments must be UTF-8");
        return ExitCode::FAILURE;
    };
    exit_code(privsep::run(args))
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
