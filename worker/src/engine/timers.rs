//! A deadline queue. Entries are hints: whoever pops one re-checks the real state (a peer's
//! keepalive deadline moves with every packet sent, and re-pushing on every packet would cost an
//! allocation-free but needless heap operation per packet). Stale entries are simply ignored.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::peer::PeerId;

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// Check a peer's keepalive, timeout, session expiry and handshake schedule.
    Peer(PeerId),
    /// Periodic housekeeping (MAC expiry, rate-limit tables).
    Maintenance,
}

#[derive(Debug, Default)]
pub struct TimerQueue {
    heap: BinaryHeap<Reverse<(Instant, Timer)>>,
}

impl TimerQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, at: Instant, t: Timer) {
        self.heap.push(Reverse((at, t)));
    }

    /// The earliest due entry (with its deadline), removed from the queue.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, Timer)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Milliseconds to wait in epoll_wait: rounded up so we never spin before a deadline,
    /// capped so the loop still wakes for housekeeping.
    pub fn timeout_ms(&self, now: Instant, cap: Duration) -> i32 {
        let wait = match self.next_deadline() {
            Some(at) => at.saturating_duration_since(now).min(cap),
            None => cap,
        };
        let ms = wait.as_micros().div_ceil(1000);
        i32::try_from(ms).unwrap_or(i32::MAX)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_only_when_due() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new();
        q.push(t0 + Duration::from_secs(5), Timer::Peer(PeerId(2)));
        q.push(t0 + Duration::from_secs(1), Timer::Peer(PeerId(1)));
        q.push(t0 + Duration::from_secs(3), Timer::Maintenance);
        assert_eq!(q.pop_due(t0), None);
        assert_eq!(q.timeout_ms(t0, Duration::from_secs(10)), 1000);
        let t = t0 + Duration::from_secs(4);
        assert_eq!(
            q.pop_due(t),
            Some((t0 + Duration::from_secs(1), Timer::Peer(PeerId(1))))
        );
        assert_eq!(
            q.pop_due(t),
            Some((t0 + Duration::from_secs(3), Timer::Maintenance))
        );
        assert_eq!(q.pop_due(t), None);
        assert_eq!(q.len(), 1);
        assert_eq!(q.timeout_ms(t, Duration::from_millis(200)), 200);
    }
}
