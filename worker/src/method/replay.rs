//! Receive-side replay protection and reordering window of a session (docs/protocol.md §5.8).
//!
//! Split in two on purpose: [`ReplayWindow::check`] runs before authentication and changes
//! nothing, [`ReplayWindow::commit`] runs only after the tag verified.

use std::time::{Duration, Instant};

/// How long after the newest packet older (reordered) packets are still accepted.
pub const REORDER_TIME: Duration = Duration::from_secs(10);
/// Number of nonces (of the peer's parity) behind the newest one that are remembered.
pub const WINDOW: i64 = 64;

/// Why the window refuses a nonce before authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowReject {
    /// Older than the 64-packet window.
    TooOld,
    /// Older than the newest packet, and more than 10 s passed since the newest was accepted.
    ReorderExpired,
    /// Nonce of the wrong parity (our own direction's numbers); fastd peers never send these.
    WrongParity,
}

/// Result of [`ReplayWindow::commit`] for an authenticated packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// The newest packet so far.
    New,
    /// An older packet seen for the first time (age in units of 2 nonces).
    Reordered(i64),
    /// Already seen: the payload must be dropped, but it still proves the peer alive.
    Duplicate(i64),
}

/// Receive state: the highest accepted nonce, a 64-bit bitmap of the ones before it, and the
/// deadline for reordered packets.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    highest: u64,
    seen: u64,
    reorder_deadline: Option<Instant>,
}

impl ReplayWindow {
    /// Initial state: the peer of an initiator (the responder) sends even nonces from 2, the
    /// peer of a responder odd ones from 3.
    pub fn new(initiator: bool) -> Self {
        Self {
            highest: if initiator { 0 } else { 1 },
            seen: 0,
            reorder_deadline: None,
        }
    }

    /// Highest accepted nonce.
    pub fn highest(&self) -> u64 {
        self.highest
    }

    /// The age of `nonce` relative to the highest accepted one, in steps of 2 (negative = newer).
    pub fn age(&self, nonce: u64) -> i64 {
        // Both are 48-bit, so the difference is exact in i64.
        (self.highest as i64 - nonce as i64) >> 1
    }

    /// Cheap check before authentication; returns the age to hand to [`Self::commit`].
    pub fn check(&self, nonce: u64, now: Instant) -> Result<i64, WindowReject> {
        if (nonce ^ self.highest) & 1 != 0 {
            return Err(WindowReject::WrongParity);
        }
        let age = self.age(nonce);
        if age >= 0 {
            match self.reorder_deadline {
                Some(deadline) if now <= deadline => {}
                _ => return Err(WindowReject::ReorderExpired),
            }
            if age > WINDOW {
                return Err(WindowReject::TooOld);
            }
        }
        Ok(age)
    }

    /// Bookkeeping after successful authentication of `nonce` (checked with [`Self::check`]).
    pub fn commit(&mut self, nonce: u64, now: Instant) -> Accept {
        let age = self.age(nonce);
        if age < 0 {
            let shift = age.unsigned_abs();
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            if shift <= 64 {
                self.seen |= 1 << (shift - 1);
            }
            self.highest = nonce;
            self.reorder_deadline = now.checked_add(REORDER_TIME);
            Accept::New
        } else if age == 0 || self.seen & (1 << (age - 1)) != 0 {
            Accept::Duplicate(age)
        } else {
            self.seen |= 1 << (age - 1);
            Accept::Reordered(age)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Initiator side: receives the responder's even nonces 2, 4, 6, ...
    fn accept(w: &mut ReplayWindow, n: u64, now: Instant) -> Result<Accept, WindowReject> {
        w.check(n, now).map(|_| w.commit(n, now))
    }

    #[test]
    fn duplicate_reordered_and_window_edges() {
        let t0 = Instant::now();
        let mut w = ReplayWindow::new(true);
        for k in 1..=70u64 {
            if k != 69 && k != 5 {
                assert_eq!(accept(&mut w, 2 * k, t0), Ok(Accept::New));
            }
        }
        assert_eq!(w.highest(), 140);
        // age 0: the newest packet again
        assert_eq!(accept(&mut w, 140, t0), Ok(Accept::Duplicate(0)));
        // age 1 and 2 (nonce 138 missing-> 69 skipped): first time reordered, then duplicate
        assert_eq!(accept(&mut w, 138, t0), Ok(Accept::Reordered(1)));
        assert_eq!(accept(&mut w, 138, t0), Ok(Accept::Duplicate(1)));
        assert_eq!(accept(&mut w, 136, t0), Ok(Accept::Duplicate(2)));
        // age 64 seen -> duplicate (passes the window check), age 65 rejected before auth
        assert_eq!(w.check(140 - 128, t0), Ok(64));
        assert_eq!(accept(&mut w, 140 - 128, t0), Ok(Accept::Duplicate(64)));
        assert_eq!(w.check(140 - 130, t0), Err(WindowReject::TooOld));
        // nonce 10 (k = 5) was never received but is out of the window now (age 65)
        assert_eq!(w.check(10, t0), Err(WindowReject::TooOld));
    }

    #[test]
    fn age_two_reordered_accepted_once() {
        let t0 = Instant::now();
        let mut w = ReplayWindow::new(false);
        assert_eq!(accept(&mut w, 3, t0), Ok(Accept::New));
        assert_eq!(accept(&mut w, 7, t0), Ok(Accept::New));
        assert_eq!(accept(&mut w, 9, t0), Ok(Accept::New));
        assert_eq!(accept(&mut w, 5, t0), Ok(Accept::Reordered(2)));
        assert_eq!(accept(&mut w, 5, t0), Ok(Accept::Duplicate(2)));
        assert_eq!(accept(&mut w, 3, t0), Ok(Accept::Duplicate(3)));
    }

    #[test]
    fn newer_packets_shift_the_bitmap() {
        let t0 = Instant::now();
        let mut w = ReplayWindow::new(true);
        accept(&mut w, 2, t0).unwrap();
        accept(&mut w, 4, t0).unwrap();
        // jump 10 ahead: 4 is now age 10, 2 age 11, 6..22 unseen
        accept(&mut w, 24, t0).unwrap();
        assert_eq!(accept(&mut w, 4, t0), Ok(Accept::Duplicate(10)));
        assert_eq!(accept(&mut w, 2, t0), Ok(Accept::Duplicate(11)));
        assert_eq!(accept(&mut w, 12, t0), Ok(Accept::Reordered(6)));
        // jump of exactly 64: the previous highest lands on bit 63, everything else drops out
        accept(&mut w, 24 + 128, t0).unwrap();
        assert_eq!(accept(&mut w, 24, t0), Ok(Accept::Duplicate(64)));
        assert_eq!(accept(&mut w, 26, t0), Ok(Accept::Reordered(63)));
        // jump of more than 64 forgets everything
        accept(&mut w, 24 + 128 + 200, t0).unwrap();
        assert_eq!(accept(&mut w, 24 + 128 + 198, t0), Ok(Accept::Reordered(1)));
    }

    /// A late packet is accepted as reordered but does not move the window: the next newer
    /// packet is in order again, and the late one cannot come twice.
    #[test]
    fn reordered_packet_leaves_the_newest_in_place() {
        let t0 = Instant::now();
        let mut w = ReplayWindow::new(true);
        assert_eq!(accept(&mut w, 2, t0), Ok(Accept::New));
        assert_eq!(accept(&mut w, 6, t0), Ok(Accept::New));
        assert_eq!(accept(&mut w, 4, t0), Ok(Accept::Reordered(1)));
        assert_eq!(w.highest(), 6);
        assert_eq!(accept(&mut w, 8, t0), Ok(Accept::New));
        assert_eq!(accept(&mut w, 4, t0), Ok(Accept::Duplicate(2)));
        // The oldest age the window takes, seen for the first time.
        for k in 5..=68u64 {
            if k != 10 {
                accept(&mut w, 2 * k, t0).unwrap();
            }
        }
        assert_eq!(w.highest(), 136);
        assert_eq!(accept(&mut w, 8, t0), Ok(Accept::Duplicate(64)));
        assert_eq!(accept(&mut w, 20, t0), Ok(Accept::Reordered(58)));
    }

    #[test]
    fn reorder_deadline() {
        let t0 = Instant::now();
        let mut w = ReplayWindow::new(true);
        // initially expired: even the initial nonce value itself (age 0) is refused
        assert_eq!(w.check(0, t0), Err(WindowReject::ReorderExpired));
        accept(&mut w, 2, t0).unwrap();
        accept(&mut w, 6, t0).unwrap();
        let late = t0 + REORDER_TIME + Duration::from_millis(1);
        assert_eq!(w.check(4, t0 + REORDER_TIME), Ok(1));
        assert_eq!(w.check(4, late), Err(WindowReject::ReorderExpired));
        assert_eq!(w.check(6, late), Err(WindowReject::ReorderExpired));
        // newer packets are never subject to the deadline, and renew it
        assert_eq!(accept(&mut w, 8, late), Ok(Accept::New));
        assert_eq!(accept(&mut w, 4, late), Ok(Accept::Reordered(2)));
    }

    #[test]
    fn check_changes_nothing_and_parity() {
        let t0 = Instant::now();
        let mut w = ReplayWindow::new(true);
        assert_eq!(w.check(3, t0), Err(WindowReject::WrongParity));
        assert_eq!(w.check(4, t0), Ok(-2));
        assert_eq!(w.check(4, t0), Ok(-2));
        assert_eq!(w.highest(), 0);
        assert_eq!(accept(&mut w, 4, t0), Ok(Accept::New));
    }
}
