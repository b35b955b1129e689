//! The worker role: start-up (fastd's command line over the helper's reads, the manifest,
//! the sandbox), then the packet engine with its runtime.

use crate::log;

/// The worker's entry point; returns its exit status.
///
/// # Safety
/// Only in the worker role, with fd 3 being the helper's socket (see `privsep::spawn`).
pub unsafe fn run() -> i32 {
    // SAFETY: forwarded from the caller.
    match unsafe { worker::bootstrap::start() } {
        Ok(started) => worker::runtime::run(started),
        Err(e) => {
            log::error(&e.to_string());
            1
        }
    }
}
