//! The helper's own log lines, in fastd's formats (the logline crate). Until the manifest is
//! sealed every line goes to stderr, as fastd prints everything during start-up; after
//! that the config's destinations and levels apply, syslog through libc's `syslog()`
//! (which reconnects to /dev/log by itself).

use logline::stderr_line;
use policy::log::{LogLevel, LogSpec};
use std::ffi::CString;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
        let cut = text.get(..logline::MAX_MESSAGE).unwrap_or(&text);
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

/// Refusals logged in full per interval; the rest are counted and summed up once the
/// interval is over, so a worker that floods refusals cannot flood the log.
pub const REFUSALS_PER_INTERVAL: u32 = 20;
pub const REFUSAL_INTERVAL: Duration = Duration::from_secs(10);

/// Counts log lines of one kind per interval (`REFUSALS_PER_INTERVAL` per
/// `REFUSAL_INTERVAL`).
#[derive(Debug, Default)]
pub struct RateLimit {
    start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl RateLimit {
    /// One more line at `now`: whether to log it, and a number of lines suppressed in
    /// the interval that just ended, to be summed up first.
    pub fn note(&mut self, now: Instant) -> (bool, Option<u64>) {
        let summary = self.tick(now);
        if self.start.is_none() {
            self.start = Some(now);
            self.logged = 0;
        }
        if self.logged < REFUSALS_PER_INTERVAL {
            self.logged += 1;
            (true, summary)
        } else {
            self.suppressed += 1;
            (false, summary)
        }
    }

    /// Ends an interval that is over; returns what it suppressed, if anything.
    pub fn tick(&mut self, now: Instant) -> Option<u64> {
        match self.start {
            Some(t) if now.duration_since(t) >= REFUSAL_INTERVAL => {
                self.start = None;
                Some(std::mem::take(&mut self.suppressed)).filter(|&n| n > 0)
            }
            _ => None,
        }
    }

    /// Whatever is left (at the end).
    pub fn take(&mut self) -> Option<u64> {
        self.start = None;
        Some(std::mem::take(&mut self.suppressed)).filter(|&n| n > 0)
    }
}

static REFUSALS: Mutex<RateLimit> = Mutex::new(RateLimit {
    start: None,
    logged: 0,
    suppressed: 0,
});

fn suppressed(n: u64) {
    warn(&format!("... suppressed {n} refusals"));
}

/// A request from the worker was refused (rate-limited warning).
pub fn refused(reason: &str) {
    let (log, summary) = REFUSALS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .note(Instant::now());
    if let Some(n) = summary {
        suppressed(n);
    }
    if log {
        warn(&format!("refused request from the worker: {reason}"));
    }
}

/// Called from the helper's loop: sums up an interval that is over. `at_end` sums up
/// whatever is left.
pub fn flush_refusals(at_end: bool) {
    let mut r = REFUSALS.lock().unwrap_or_else(|p| p.into_inner());
    let n = if at_end {
        r.take()
    } else {
        r.tick(Instant::now())
    };
    drop(r);
    if let Some(n) = n {
        suppressed(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_flood_logs_a_bounded_number_of_lines() {
        let mut r = RateLimit::default();
        let t0 = Instant::now();
        let mut lines = 0;
        for i in 0..20_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i) * 85);
            let (log, summary) = r.note(now);
            lines += u32::from(log) + u32::from(summary.is_some());
        }
        // 1.7 s of refusals: one interval.
        assert_eq!(lines, REFUSALS_PER_INTERVAL);
        assert_eq!(r.tick(t0 + REFUSAL_INTERVAL), Some(20_000 - 20));
        assert_eq!(r.tick(t0 + REFUSAL_INTERVAL * 2), None);
        // A new interval logs again.
        assert_eq!(r.note(t0 + REFUSAL_INTERVAL * 3), (true, None));
    }
}
