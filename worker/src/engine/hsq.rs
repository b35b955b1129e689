//! Handshake work deferred beyond a loop turn's budget.
//!
//! The per-turn budget ([`super::HANDSHAKE_BUDGET`]) keeps a flood of handshakes from
//! delaying established peers' data. Dropping what exceeds it, though, also drops legitimate
//! bursts: when a gateway restarts, all of its peers' handshakes (and their finishing
//! packets) arrive within a few turns, and every one dropped costs that peer fastd's 20 s
//! handshake retry. So the excess waits here, first come first served, and is handled in
//! later turns within their budget; only what exceeds the queue's bound is dropped.

use super::io::Meta;
use std::collections::VecDeque;

/// Datagrams the queue holds at most (each at most one receive buffer): enough for a
/// gateway's whole population to reconnect at once, and a bound on memory under a flood.
pub const HANDSHAKE_BACKLOG: usize = 1024;

/// One deferred datagram: the socket it came in on, its addresses and its bytes.
#[derive(Debug)]
pub struct Deferred {
    pub sock_idx: usize,
    pub meta: Meta,
    pub bytes: Vec<u8>,
}

/// A bounded FIFO of deferred handshake work.
#[derive(Debug, Default)]
pub struct HandshakeQueue {
    items: VecDeque<Deferred>,
}

impl HandshakeQueue {
    /// Queues a copy of `pkt`; `false` (and nothing queued) when the queue is full.
    pub fn defer(&mut self, sock_idx: usize, meta: Meta, pkt: &[u8]) -> bool {
        if self.items.len() >= HANDSHAKE_BACKLOG {
            return false;
        }
        self.items.push_back(Deferred {
            sock_idx,
            meta: Meta {
                len: pkt.len(),
                seg: 0,
                ..meta
            },
            bytes: pkt.to_vec(),
        });
        true
    }

    pub fn pop(&mut self) -> Option<Deferred> {
        self.items.pop_front()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            src: "192.0.2.1:1".parse().unwrap_or_else(|_| unreachable!()),
            local: None,
            len: 9999,
            truncated: false,
            seg: 0,
        }
    }

    #[test]
    fn keeps_order_and_refuses_beyond_its_bound() {
        let mut q = HandshakeQueue::default();
        for i in 0..HANDSHAKE_BACKLOG {
            assert!(q.defer(i, meta(), &[1, 2, 3]));
        }
        assert!(!q.defer(0, meta(), &[1]));
        assert_eq!(q.len(), HANDSHAKE_BACKLOG);
        let first = q.pop();
        assert!(first
            .as_ref()
            .is_some_and(|d| d.sock_idx == 0 && d.meta.len == 3 && d.bytes == [1, 2, 3]));
        assert!(q.defer(7, meta(), &[4]));
        let mut last = None;
        while let Some(d) = q.pop() {
            last = Some(d.sock_idx);
        }
        assert_eq!(last, Some(7));
        assert!(q.is_empty());
    }
}
