//! Bounded waits: every loop in a test ends.

use std::time::{Duration, Instant};

/// Polls `f` every 50 ms until it holds (true) or `timeout` has passed (false); `f` is
/// asked at least once, and once more when the time is up.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
