//! The helper's own log lines, in fastd's formats (policy::log). Until the manifest is
//! sealed every line goes to stderr, as fastd prints everything during start-up; after
//! that the config's destinations and levels apply, syslog through libc's `syslog()`
//! (which reconnects to /dev/log by itself).

use policy::log::{stderr_line, LogLevel, LogSpec};
use std::ffi::CString;
use std::io::Write;
use std::sync::Mutex;

static SPEC: Mutex<Option<LogSpec>> = Mutex::new(None);

fn with_spec<T>(f: impl FnOnce(&LogSpec) -> T) -> T {
    let guard = SPEC.lock().unwrap_or_else(|p| p.into_inner());
    match guard.as_ref() {
        Some(s) => f(s),
        None => f(&LogSpec::default()),
    }
}

/// Switches to the sealed destinations; opens syslog if the config asks for it.
pub fn apply(spec: &LogSpec) {
    if let Some(s) = &spec.syslog {
        // openlog keeps the pointer for the rest of the process: leak one small string.
        if let Ok(ident) = CString::new(s.ident.as_str()) {
            let ident: &'static std::ffi::CStr = Box::leak(ident.into_boxed_c_str());
            // SAFETY: ident is NUL-terminated and lives forever; the flags are constants.
            unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
        }
    }
    let mut guard = SPEC.lock().unwrap_or_else(|p| p.into_inner());
    *guard = Some(spec.clone());
}

pub fn log(level: LogLevel, message: &str) {
    let (to_stderr, to_syslog) = with_spec(|s| (s.to_stderr(level), s.to_syslog(level)));
    if to_stderr {
        // A failing stderr cannot be reported anywhere else.
        let _ = std::io::stderr()
            .lock()
            .write_all(&stderr_line(level, message));
    }
    if to_syslog {
        let text = message.replace('\0', " ");
        let cut = text.get(..policy::log::MAX_MESSAGE).unwrap_or(&text);
        if let Ok(m) = CString::new(cut) {
            let pri = libc::LOG_DAEMON | i32::from(level.syslog_severity());
            // SAFETY: both strings are NUL-terminated; "%s" consumes exactly one argument.
            unsafe { libc::syslog(pri, c"%s".as_ptr(), m.as_ptr()) };
        }
    }
}

pub fn error(message: &str) {
    log(LogLevel::Error, message);
}

pub fn warn(message: &str) {
    log(LogLevel::Warn, message);
}

pub fn info(message: &str) {
    log(LogLevel::Info, message);
}

pub fn verbose(message: &str) {
    log(LogLevel::Verbose, message);
}

pub fn debug(message: &str) {
    log(LogLevel::Debug, message);
}
