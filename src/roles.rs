//! Which process this is: the sandboxed worker (hidden `--privsep-worker-role`, set by
//! the helper when it re-executes /proc/self/exe), or the command line's process, which
//! answers --help, --verify-config and the key tools itself and becomes the root helper for
//! a real start.

use std::ffi::OsString;
use std::process::ExitCode;

/// Runs the worker if this process is one (a real start reaches [`start_helper`] through
/// `cli`, after fastd's own checks and diagnostics).
pub fn dispatch() -> Option<ExitCode> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == privsep::WORKER_ROLE_ARG) {
        name_worker();
        // SAFETY: the helper started us with its socket on fd 3 and nothing else owns it.
        let code = unsafe { crate::worker_role::run() };
        return Some(exit_code(code));
    }
    None
}

/// The worker's comm: exec of /proc/self/exe left it as `exe`. Cosmetic, so a failure is
/// ignored.
fn name_worker() {
    if let Ok(name) = std::ffi::CString::new(privsep::WORKER_COMM) {
        let _ = nix::sys::prctl::set_name(&name);
    }
}

/// A real start: become the helper, which re-executes this binary as the worker and
/// passes it `args` (the command line without argv\[0\]).
pub fn start_helper(args: &[OsString], readiness: privsep::ready::Readiness) -> ExitCode {
    let args: Option<Vec<String>> = args.iter().map(|a| a.to_str().map(str::to_owned)).collect();
    let Some(args) = args else {
        eprintln!("Error: command line arguments must be UTF-8");
        return ExitCode::FAILURE;
    };
    exit_code(privsep::run(args, readiness))
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
