//! fastd's stderr log line before logging is set up: `<%F %T %z> --- <Prefix><message>`.

use std::io::Write;
use worker::config::LogLevel;

/// fastd cuts a message at 1023 bytes.
const MAX_MESSAGE: usize = 1023;

/// The local time as `strftime("%F %T %z")`.
pub fn timestamp() -> String {
    let mut now: libc::time_t = 0;
    // SAFETY: time() writes one time_t through a valid pointer.
    unsafe { libc::time(&mut now) };
    // SAFETY: tm is plain data; all-zero is a valid bit pattern that localtime_r overwrites.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is the thread-safe variant.
    if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() {
        return String::from("1970-01-01 00:00:00 +0000");
    }
    let mut buf = [0u8; 64];
    let fmt = c"%F %T %z";
    // SAFETY: buf is writable for buf.len() bytes, fmt is NUL-terminated, tm was filled above.
    let n = unsafe {
        libc::strftime(
            buf.as_mut_ptr().cast::<libc::c_char>(),
            buf.len(),
            fmt.as_ptr(),
            &tm,
        )
    };
    String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned()
}

/// Writes one log line to stderr (every level: before start-up, fastd prints them all).
pub fn log(level: LogLevel, message: &str) {
    let mut m = message.as_bytes();
    if m.len() > MAX_MESSAGE {
        m = m.get(..MAX_MESSAGE).unwrap_or(m);
    }
    let mut line = format!("{} --- {}", timestamp(), level.prefix()).into_bytes();
    line.extend_from_slice(m);
    line.push(b'\n');
    // A failing stderr cannot be reported anywhere else.
    let _ = std::io::stderr().lock().write_all(&line);
}

/// `Error: <message>`.
pub fn error(message: &str) {
    log(LogLevel::Error, message);
}
