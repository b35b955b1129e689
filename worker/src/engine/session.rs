//! Session lifetimes (docs/protocol.md §5.9, §5.10): the current and the old session of a peer, which
//! one decrypts and which one sends, when a refresh is due, and when the old one goes away.
//! Pure bookkeeping over a [`MethodSession`]; no sockets, no clocks of its own.

use std::time::{Duration, Instant};

use super::drops::DropReason;
use crate::method::{Decrypted, MethodSession};

/// fastd's session timings (docs/config.md §6.10); tests may shorten them for our side only.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub lifetime: Duration,
    pub refresh_after: Duration,
    pub refresh_splay: Duration,
    pub old_kept: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            lifetime: Duration::from_secs(3600),
            refresh_after: Duration::from_secs(55 * 60),
            refresh_splay: Duration::from_secs(5 * 60),
            old_kept: Duration::from_secs(60),
        }
    }
}

/// What the handshake decided about a new session.
#[derive(Debug, Clone, Copy)]
pub struct SessionInfo<'a> {
    pub method: &'a str,
    pub initiator: bool,
    pub compat: bool,
    /// False for the null methods, which never expire.
    pub expires: bool,
}

#[derive(Debug)]
pub struct Session<C> {
    pub crypto: C,
    pub method: String,
    pub initiator: bool,
    pub compat: bool,
    pub established: Instant,
    /// `None` for the null methods: they never expire.
    pub valid_until: Option<Instant>,
    /// Only the initiator of a session refreshes it.
    pub refresh_at: Option<Instant>,
    pub refreshing: bool,
    /// A packet has been authenticated on this session.
    pub received: bool,
}

impl<C: MethodSession> Session<C> {
    /// `splay` is a random fraction in [0, 1) of the refresh splay.
    pub fn new(crypto: C, info: SessionInfo<'_>, now: Instant, lt: &Lifetimes, splay: f64) -> Self {
        let SessionInfo {
            method,
            initiator,
            compat,
            expires,
        } = info;
        let (valid_until, refresh_at) = if expires {
            let early = lt.refresh_splay.mul_f64(splay.clamp(0.0, 1.0));
            let refresh = initiator.then(|| now + lt.refresh_after.saturating_sub(early));
            (Some(now + lt.lifetime), refresh)
        } else {
            (None, None)
        };
        Session {
            crypto,
            method: method.to_owned(),
            initiator,
            compat,
            established: now,
            valid_until,
            refresh_at,
            refreshing: false,
            received: false,
        }
    }

    pub fn is_valid(&self, now: Instant) -> bool {
        self.valid_until.is_none_or(|t| now < t) && self.crypto.is_valid()
    }

    /// True once: the session wants a new handshake now.
    pub fn take_refresh(&mut self, now: Instant) -> bool {
        if self.refreshing {
            return false;
        }
        let due = self.refresh_at.is_some_and(|t| now >= t) || self.crypto.want_refresh();
        if due {
            self.refreshing = true;
        }
        due
    }
}

/// Which session authenticated a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Old,
    Current,
    /// The first packet on the current session (the initiator answers it with a keepalive, and
    /// scheduled handshakes are cancelled, docs/protocol.md §4.4 step 7).
    CurrentFirst,
}

/// Boxed: a session with its method state is a few hundred bytes, and a gateway has
/// thousands of configured peers of which few have a session at any time.
#[derive(Debug)]
pub struct Sessions<C> {
    pub current: Option<Box<Session<C>>>,
    pub old: Option<Box<Session<C>>>,
    old_until: Option<Instant>,
}

impl<C> Default for Sessions<C> {
    fn default() -> Self {
        Sessions {
            current: None,
            old: None,
            old_until: None,
        }
    }
}

impl<C: MethodSession> Sessions<C> {
    pub fn is_established(&self) -> bool {
        self.current.is_some()
    }

    /// Installs a freshly established session. The previous current session becomes the old
    /// one if it is still valid, uses the same method, may overlap (not a null method) and no
    /// valid old session exists already.
    pub fn install(&mut self, new: Session<C>, now: Instant, lt: &Lifetimes) {
        if let Some(prev) = self.current.take() {
            let old_valid = self.old.as_ref().is_some_and(|o| self.old_is_valid(o, now));
            let keep = prev.is_valid(now)
                && prev.valid_until.is_some()
                && prev.method == new.method
                && !old_valid;
            if keep {
                let until = now + lt.old_kept;
                self.old_until = Some(prev.valid_until.map_or(until, |v| v.min(until)));
                self.old = Some(prev);
            } else if !old_valid {
                self.old = None;
            }
        }
        self.current = Some(Box::new(new));
    }

    fn old_is_valid(&self, old: &Session<C>, now: Instant) -> bool {
        old.is_valid(now) && self.old_until.is_none_or(|t| now < t)
    }

    /// Drops everything (peer reset).
    pub fn clear(&mut self) {
        self.current = None;
        self.old = None;
        self.old_until = None;
    }

    /// Tries the old session, then the current one (§5.9). Success on the current session ends
    /// the old one.
    pub fn decrypt(
        &mut self,
        buf: &mut [u8],
        now: Instant,
    ) -> Result<(Decrypted, Which), DropReason> {
        let mut first_err = None;
        let old_ok = self.old.as_ref().is_some_and(|o| self.old_is_valid(o, now));
        if !old_ok {
            self.old = None;
        }
        if let Some(old) = self.old.as_mut() {
            match old.crypto.receive(buf, now) {
                Ok(r) => {
                    old.received = true;
                    return Ok((r, Which::Old));
                }
                Err(e) => first_err = Some(DropReason::from(e)),
            }
        }
        let Some(cur) = self.current.as_mut() else {
            return Err(first_err.unwrap_or(DropReason::NoSession));
        };
        if !cur.is_valid(now) {
            return Err(DropReason::NoSession);
        }
        match cur.crypto.receive(buf, now).map_err(DropReason::from) {
            Ok(r) => {
                self.old = None;
                let which = if cur.received {
                    Which::Current
                } else {
                    Which::CurrentFirst
                };
                cur.received = true;
                Ok((r, which))
            }
            // Report the more telling reason: a replay on the current session beats a MAC
            // failure on the old one.
            Err(e) => Err(match (first_err, e) {
                (Some(o), DropReason::Auth) => o,
                (_, e) => e,
            }),
        }
    }

    /// The session to send on: the initiator of the current session keeps using the old one
    /// until the responder proves it has the new keys.
    pub fn for_send(&mut self, now: Instant) -> Option<&mut Session<C>> {
        let use_old = self
            .current
            .as_ref()
            .is_some_and(|c| c.initiator && !c.received)
            && self.old.as_ref().is_some_and(|o| self.old_is_valid(o, now));
        if use_old {
            self.old.as_deref_mut()
        } else {
            self.current.as_deref_mut().filter(|c| c.is_valid(now))
        }
    }

    /// Expires the old session; true if the current session is no longer valid (peer reset).
    pub fn expire(&mut self, now: Instant) -> bool {
        if self
            .old
            .as_ref()
            .is_some_and(|o| !self.old_is_valid(o, now))
        {
            self.old = None;
        }
        self.current.as_ref().is_some_and(|c| !c.is_valid(now))
    }

    /// Earliest instant at which [`expire`](Self::expire) or a refresh may change something.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut d: Option<Instant> = None;
        let mut add = |t: Option<Instant>| {
            if let Some(t) = t {
                d = Some(d.map_or(t, |x| x.min(t)));
            }
        };
        if let Some(c) = &self.current {
            add(c.valid_until);
            if !c.refreshing {
                add(c.refresh_at);
            }
        }
        if self.old.is_some() {
            add(self.old_until);
        }
        d
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::method::DropReason as MDrop;

    /// A fake method: the packet is [session tag, payload...]; it authenticates when the tag
    /// matches, and counts encryptions.
    #[derive(Debug)]
    struct Fake {
        tag: u8,
        sent: u32,
    }

    impl MethodSession for Fake {
        fn overhead(&self) -> usize {
            1
        }
        fn encrypt(&mut self, buf: &mut [u8]) -> Result<(), crate::method::MethodError> {
            buf[0] = self.tag;
            self.sent += 1;
            Ok(())
        }
        fn receive(&mut self, buf: &mut [u8], _now: Instant) -> Result<Decrypted, MDrop> {
            match buf.first() {
                Some(t) if *t == self.tag => Ok(Decrypted::in_order(1..buf.len())),
                Some(_) => Err(MDrop::AuthFailed),
                None => Err(MDrop::Truncated),
            }
        }
        fn want_refresh(&self) -> bool {
            false
        }
        fn is_valid(&self) -> bool {
            true
        }
    }

    fn info(method: &str, initiator: bool, expires: bool) -> SessionInfo<'_> {
        SessionInfo {
            method,
            initiator,
            compat: false,
            expires,
        }
    }

    fn session(tag: u8, initiator: bool, now: Instant, lt: &Lifetimes) -> Session<Fake> {
        Session::new(
            Fake { tag, sent: 0 },
            info("salsa2012+umac", initiator, true),
            now,
            lt,
            0.0,
        )
    }

    #[test]
    fn rekey_overlap_as_initiator() {
        let lt = Lifetimes::default();
        let t0 = Instant::now();
        let mut s = Sessions::default();
        s.install(session(1, true, t0, &lt), t0, &lt);
        assert_eq!(s.decrypt(&mut [1, 9], t0).unwrap().1, Which::CurrentFirst);
        assert_eq!(s.decrypt(&mut [1, 9], t0).unwrap().1, Which::Current);
        let t1 = t0 + Duration::from_secs(100);
        s.install(session(2, true, t1, &lt), t1, &lt);
        // The initiator keeps sending on the old session until the new one proves itself.
        assert_eq!(s.for_send(t1).unwrap().crypto.tag, 1);
        assert_eq!(s.decrypt(&mut [1, 9], t1).unwrap().1, Which::Old);
        assert_eq!(s.decrypt(&mut [2, 9], t1).unwrap().1, Which::CurrentFirst);
        assert!(s.old.is_none());
        assert_eq!(s.for_send(t1).unwrap().crypto.tag, 2);
        assert_eq!(s.decrypt(&mut [1, 9], t1), Err(DropReason::Auth));
    }

    #[test]
    fn responder_sends_on_new_and_old_expires_after_a_minute() {
        let lt = Lifetimes::default();
        let t0 = Instant::now();
        let mut s = Sessions::default();
        s.install(session(1, false, t0, &lt), t0, &lt);
        let t1 = t0 + Duration::from_secs(100);
        s.install(session(2, false, t1, &lt), t1, &lt);
        assert_eq!(s.for_send(t1).unwrap().crypto.tag, 2);
        assert_eq!(
            s.decrypt(&mut [1, 0], t1 + Duration::from_secs(59))
                .unwrap()
                .1,
            Which::Old
        );
        assert_eq!(s.next_deadline(), Some(t1 + Duration::from_secs(60)));
        assert!(!s.expire(t1 + Duration::from_secs(61)));
        assert!(s.old.is_none());
        assert_eq!(
            s.decrypt(&mut [1, 0], t1 + Duration::from_secs(61)),
            Err(DropReason::Auth)
        );
    }

    #[test]
    fn refresh_only_on_initiator_once_and_expiry_resets() {
        let lt = Lifetimes::default();
        let t0 = Instant::now();
        let mut i = session(1, true, t0, &lt);
        let mut r = session(1, false, t0, &lt);
        let due = t0 + Duration::from_secs(55 * 60);
        assert!(!i.take_refresh(due - Duration::from_secs(1)));
        assert!(i.take_refresh(due));
        assert!(!i.take_refresh(due));
        assert!(!r.take_refresh(due));
        let mut s = Sessions::default();
        s.install(r, t0, &lt);
        assert!(!s.expire(t0 + Duration::from_secs(3599)));
        assert!(s.expire(t0 + Duration::from_secs(3600)));
        assert!(s.for_send(t0 + Duration::from_secs(3600)).is_none());
    }

    #[test]
    fn null_sessions_never_expire_and_do_not_overlap() {
        let lt = Lifetimes::default();
        let t0 = Instant::now();
        let mut s = Sessions::default();
        let null = |tag| {
            Session::new(
                Fake { tag, sent: 0 },
                info("null", true, false),
                t0,
                &lt,
                0.0,
            )
        };
        s.install(null(1), t0, &lt);
        assert!(!s.expire(t0 + Duration::from_secs(1_000_000)));
        s.install(null(2), t0, &lt);
        assert!(s.old.is_none());
    }

    #[test]
    fn method_change_drops_old() {
        let lt = Lifetimes::default();
        let t0 = Instant::now();
        let mut s = Sessions::default();
        s.install(session(1, true, t0, &lt), t0, &lt);
        let other = Session::new(
            Fake { tag: 2, sent: 0 },
            info("aes128-gcm", true, true),
            t0,
            &lt,
            0.0,
        );
        s.install(other, t0, &lt);
        assert!(s.old.is_none());
    }
}
