//! Hooks waiting for a free slot. The privileged side runs a bounded number of
//! asynchronous hooks at once; when all slots are taken it answers "busy" and the hook waits
//! here instead of being lost. Hooks of authenticated peers (`on establish`, `on
//! disestablish`) go first; `on connect`, which anyone can trigger with a spoofed packet, is
//! what the bound drops first.

use std::collections::VecDeque;

use super::provider::HookCall;
use crate::config::HookKind;

/// Hooks kept waiting at most.
pub const MAX_QUEUED_HOOKS: usize = 512;

/// The statement that configures `kind`, for log lines.
pub fn statement(kind: HookKind) -> &'static str {
    match kind {
        HookKind::Up => "on up",
        HookKind::Down => "on down",
        HookKind::Connect => "on connect",
        HookKind::Establish => "on establish",
        HookKind::Disestablish => "on disestablish",
    }
}

#[derive(Debug, Default)]
pub struct HookQueue {
    /// In order: a peer's establish and disestablish must not overtake each other.
    authenticated: VecDeque<HookCall>,
    /// `on connect`, triggered by unauthenticated packets.
    connect: VecDeque<HookCall>,
    dropped: u64,
}

impl HookQueue {
    pub fn is_empty(&self) -> bool {
        self.authenticated.is_empty() && self.connect.is_empty()
    }

    pub fn len(&self) -> usize {
        self.authenticated.len() + self.connect.len()
    }

    /// Hooks dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Queues `call`; returns the hook dropped to make room, if any (the oldest `on
    /// connect`, else the oldest authenticated hook).
    pub fn push(&mut self, call: HookCall) -> Option<HookCall> {
        if call.kind == HookKind::Connect {
            self.connect.push_back(call);
        } else {
            self.authenticated.push_back(call);
        }
        if self.len() <= MAX_QUEUED_HOOKS {
            return None;
        }
        self.dropped += 1;
        self.connect
            .pop_front()
            .or_else(|| self.authenticated.pop_front())
    }

    /// The next hook to run (authenticated ones first).
    pub fn pop(&mut self) -> Option<HookCall> {
        self.authenticated
            .pop_front()
            .or_else(|| self.connect.pop_front())
    }

    /// Puts back a hook [`pop`](Self::pop) returned that could not run yet.
    pub fn unpop(&mut self, call: HookCall) {
        if call.kind == HookKind::Connect {
            self.connect.push_front(call);
        } else {
            self.authenticated.push_front(call);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::GroupId;
    use crate::engine::HookEnv;
    use std::net::SocketAddr;

    fn call(kind: HookKind, port: u16) -> HookCall {
        HookCall {
            kind,
            peer: None,
            group: GroupId::ROOT,
            env: HookEnv {
                remote: Some(SocketAddr::from(([192, 0, 2, 1], port))),
                ..HookEnv::default()
            },
        }
    }

    fn port(c: &HookCall) -> u16 {
        c.env.remote.unwrap().port()
    }

    #[test]
    fn authenticated_first_and_connect_dropped_first() {
        let mut q = HookQueue::default();
        assert!(q.push(call(HookKind::Establish, 1)).is_none());
        for p in 0..(MAX_QUEUED_HOOKS - 1) as u16 {
            assert!(q.push(call(HookKind::Connect, 100 + p)).is_none());
        }
        assert_eq!(q.len(), MAX_QUEUED_HOOKS);
        // Full: a new hook pushes out the oldest `on connect`, never the establish.
        let out = q.push(call(HookKind::Disestablish, 2)).unwrap();
        assert_eq!((out.kind, port(&out)), (HookKind::Connect, 100));
        let out = q.push(call(HookKind::Connect, 9)).unwrap();
        assert_eq!((out.kind, port(&out)), (HookKind::Connect, 101));
        assert_eq!(q.dropped(), 2);
        assert_eq!(q.len(), MAX_QUEUED_HOOKS);
        let first = q.pop().unwrap();
        assert_eq!(first.kind, HookKind::Establish);
        q.unpop(first);
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).take(3).collect();
        assert_eq!(order[0].kind, HookKind::Establish);
        assert_eq!(order[1].kind, HookKind::Disestablish);
        assert_eq!((order[2].kind, port(&order[2])), (HookKind::Connect, 102));
    }

    #[test]
    fn only_authenticated_hooks_left_drop_the_oldest_of_them() {
        let mut q = HookQueue::default();
        for p in 0..=MAX_QUEUED_HOOKS as u16 {
            let out = q.push(call(HookKind::Establish, p));
            assert_eq!(
                out.map(|c| port(&c)),
                (p as usize == MAX_QUEUED_HOOKS).then_some(0)
            );
        }
        assert!(!q.is_empty());
    }
}
