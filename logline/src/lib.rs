//! fastd's two log line formats (docs/config.md §6.1). Both processes log, and an operator
//! greps one stream: the helper's lines must look exactly like the worker's, so both
//! format them here. The local time comes from libc (`localtime_r` + `strftime`), which
//! is why this is not part of the boundary crate `policy`.

use policy::log::{LogLevel, SyslogIdent};

/// fastd cuts a message at 1023 bytes.
pub const MAX_MESSAGE: usize = 1023;

fn cut(message: &str) -> &[u8] {
    let m = message.as_bytes();
    m.get(..MAX_MESSAGE).unwrap_or(m)
}

/// The local time through `strftime`; the zone is whatever libc loaded first (a
/// sandboxed process must format one timestamp before it loses /etc/localtime).
fn local_time(fmt: &std::ffi::CStr) -> String {
    // SAFETY: time(NULL) has no memory effects.
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    // SAFETY: tm is plain data; all-zero is a valid bit pattern that localtime_r overwrites.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to live locals; localtime_r is the thread-safe variant.
    if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() {
        return String::new();
    }
    let mut buf = [0u8; 64];
    // SAFETY: buf is writable for buf.len() bytes, fmt is NUL-terminated, tm was filled.
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

/// `YYYY-MM-DD HH:MM:SS +ZZZZ` in local time.
pub fn timestamp() -> String {
    let t = local_time(c"%F %T %z");
    if t.is_empty() {
        String::from("1970-01-01 00:00:00 +0000")
    } else {
        t
    }
}

/// One stderr line: `<timestamp> --- <Prefix><message>\n`.
pub fn stderr_line(level: LogLevel, message: &str) -> Vec<u8> {
    let mut line = format!("{} --- {}", timestamp(), level.prefix()).into_bytes();
    line.extend_from_slice(cut(message));
    line.push(b'\n');
    line
}

/// Facility `daemon`, as fastd's `openlog(ident, LOG_PID, LOG_DAEMON)`.
const LOG_DAEMON: u8 = 3 << 3;

/// One datagram for `/dev/log` in the format glibc's `syslog()` sends:
/// `<PRI>Mmm dd HH:MM:SS ident[pid]: message`, without prefix or trailing newline.
pub fn syslog_datagram(level: LogLevel, ident: &SyslogIdent, pid: u32, message: &str) -> Vec<u8> {
    let pri = LOG_DAEMON | level.syslog_severity();
    let mut d = format!(
        "<{pri}>{} {}[{pid}]: ",
        local_time(c"%h %e %T"),
        ident.as_str()
    )
    .into_bytes();
    d.extend_from_slice(cut(message));
    d
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn severities_follow_fastd() {
        let pri = |l: LogLevel| LOG_DAEMON | l.syslog_severity();
        assert_eq!(pri(LogLevel::Error), 27);
        assert_eq!(pri(LogLevel::Warn), 28);
        assert_eq!(pri(LogLevel::Info), 29);
        assert_eq!(pri(LogLevel::Verbose), 30);
        assert_eq!(pri(LogLevel::Debug2), 31);
    }

    #[test]
    fn datagram_shape() {
        let ident = SyslogIdent::new("fastd@test").unwrap();
        let d = String::from_utf8(syslog_datagram(LogLevel::Info, &ident, 42, "x")).unwrap();
        assert!(d.starts_with("<29>"), "{d}");
        assert!(d.ends_with(" fastd@test[42]: x"), "{d}");
        // "<29>" + "Mmm dd HH:MM:SS" (15) + " "
        assert_eq!(d.as_bytes().get(19), Some(&b' '), "{d}");
        let long = "y".repeat(5000);
        let d = syslog_datagram(LogLevel::Info, &ident, 1, &long);
        assert!(d.len() < 1100);
    }
}
