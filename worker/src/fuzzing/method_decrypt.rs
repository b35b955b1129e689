//! Every method of docs/config.md §1.11: a receiving session from a fixed key decrypts arbitrary
//! datagrams and packets of a matching sending session, some of them altered.
//!
//! Input: `method flags`, then steps `op ...`:
//! * `method % 17` picks the method; `flags` bit 0: compat session, bit 1: the receiver is
//!   the initiator.
//! * `op % 4 == 0`, `len_hi len_lo bytes[len]`: decrypt `bytes` as they are.
//! * `op % 4 == 1`, `len payload[len] pos_hi pos_lo mask`: the sender encrypts `payload`;
//!   if `mask != 0`, byte `pos % packet length` is XORed with `mask`; then decrypt.
//! * `op % 4 == 2`, `k`: decrypt again the unaltered packet `k % sent` the sender made.
//! * `op % 4 == 3`, `t`: time passes, `t` × 100 ms.
//!
//! Properties (for every method but `null`/`null@l2tp`, which authenticate nothing): no
//! panic; nothing authenticates unless the sender made exactly these bytes; an altered packet
//! never authenticates; a fresh unaltered packet always decrypts to its payload; no packet is
//! accepted twice. For the null methods: no panic, and the payload range lies in the buffer.

use std::time::{Duration, Instant};

use crate::method::{by_name, DropReason, MethodSession, MethodSpec, Session, DEBIAN_METHODS};

fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, rest) = data.split_at_checked(n)?;
    *data = rest;
    Some(head)
}

fn byte(data: &mut &[u8]) -> Option<u8> {
    take(data, 1).map(|b| b[0])
}

fn session(spec: &MethodSpec, initiator: bool, compat: bool, now: Instant) -> Session {
    // A fixed key, different from every recorded session key of the vectors.
    let key: Vec<u8> = (0..spec.key_len())
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(7))
        .collect();
    spec.session(&key, initiator, compat, now)
        .unwrap_or_else(|e| panic!("session for `{}': {e}", spec.name()))
}

/// A packet the sender made, and whether the receiver accepted it already.
struct Sent {
    bytes: Vec<u8>,
    payload: Vec<u8>,
    accepted: bool,
}

struct Run {
    authenticates: bool,
    receiver: Session,
    sent: Vec<Sent>,
    now: Instant,
}

impl Run {
    /// Decrypts a copy of `packet`; `Ok(payload)` if it was delivered.
    fn decrypt(&mut self, packet: &[u8]) -> Result<Vec<u8>, DropReason> {
        let mut buf = packet.to_vec();
        let range = self.receiver.decrypt(&mut buf, self.now)?;
        match buf.get(range.clone()) {
            Some(p) => Ok(p.to_vec()),
            None => panic!(
                "payload range {range:?} outside the {}-byte packet",
                buf.len()
            ),
        }
    }

    fn check_rejected(&self, r: &Result<Vec<u8>, DropReason>, what: &str) {
        if !self.authenticates {
            return;
        }
        match r {
            Ok(_) => panic!("{what} authenticated"),
            Err(e) => assert!(!e.authenticated(), "{what} authenticated ({e})"),
        }
    }

    fn raw(&mut self, bytes: &[u8]) {
        let r = self.decrypt(bytes);
        // Only a packet the sender made may authenticate, and only once.
        match self.sent.iter().position(|s| s.bytes == bytes) {
            Some(i) => self.delivered_again(i, &r),
            None => self.check_rejected(&r, "random data"),
        }
    }

    fn delivered_again(&mut self, i: usize, r: &Result<Vec<u8>, DropReason>) {
        if !self.authenticates {
            return;
        }
        if self.sent[i].accepted {
            assert!(r.is_err(), "packet {i} accepted twice");
        } else if r.is_ok() {
            self.sent[i].accepted = true;
        }
    }

    fn send(&mut self, sender: &mut Session, payload: &[u8], pos: usize, mask: u8) {
        let mut packet = vec![0u8; sender.overhead() + payload.len()];
        packet[sender.overhead()..].copy_from_slice(payload);
        sender
            .encrypt(&mut packet)
            .unwrap_or_else(|e| panic!("encrypt: {e}"));
        let pos = pos % packet.len();
        let mut altered = packet.clone();
        altered[pos] ^= mask;
        self.sent.push(Sent {
            bytes: packet,
            payload: payload.to_vec(),
            accepted: false,
        });
        let i = self.sent.len() - 1;
        let r = self.decrypt(&altered);
        if mask != 0 {
            self.check_rejected(&r, &format!("packet with byte {pos} ^ {mask:#04x}"));
            return;
        }
        // The newest packet from a matching sender: always delivered, payload intact.
        match r {
            Ok(p) => assert_eq!(p, payload, "payload changed on the way"),
            Err(e) => panic!("fresh packet refused: {e}"),
        }
        self.sent[i].accepted = true;
    }
}

pub fn method_decrypt(data: &[u8]) {
    let mut data = data;
    let (Some(m), Some(flags)) = (byte(&mut data), byte(&mut data)) else {
        return;
    };
    let name = DEBIAN_METHODS[usize::from(m) % DEBIAN_METHODS.len()];
    let spec = by_name(name).unwrap_or_else(|| panic!("method `{name}' unknown"));
    let (compat, receiver_initiator) = (flags & 1 != 0, flags & 2 != 0);
    let now = Instant::now();
    let mut sender = session(&spec, !receiver_initiator, compat, now);
    let mut run = Run {
        authenticates: !spec.is_null(),
        receiver: session(&spec, receiver_initiator, compat, now),
        sent: Vec::new(),
        now,
    };

    while let Some(op) = byte(&mut data) {
        match op % 4 {
            0 => {
                let Some(len) = take(&mut data, 2) else {
                    break;
                };
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                let bytes = take(&mut data, len).unwrap_or(data);
                run.raw(bytes);
                if bytes.len() < len {
                    break;
                }
            }
            1 => {
                let Some(len) = byte(&mut data) else {
                    break;
                };
                let Some(payload) = take(&mut data, usize::from(len)) else {
                    break;
                };
                let Some(alter) = take(&mut data, 3) else {
                    break;
                };
                let pos = usize::from(u16::from_be_bytes([alter[0], alter[1]]));
                run.send(&mut sender, payload, pos, alter[2]);
            }
            2 => {
                let Some(k) = byte(&mut data) else {
                    break;
                };
                if run.sent.is_empty() {
                    continue;
                }
                let i = usize::from(k) % run.sent.len();
                let packet = run.sent[i].bytes.clone();
                let r = run.decrypt(&packet);
                run.delivered_again(i, &r);
                if let Ok(p) = &r {
                    assert_eq!(*p, run.sent[i].payload, "a replayed payload changed");
                }
            }
            _ => {
                let Some(t) = byte(&mut data) else {
                    break;
                };
                run.now += Duration::from_millis(100 * u64::from(t));
            }
        }
    }
}
