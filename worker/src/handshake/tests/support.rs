//! Helpers shared by the handshake tests.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::handshake::{Entropy, Established, Event, Output};
use crate::keys::SecretKey;

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Ephemeral secrets from a queue (then random), jitter from a queue (then 0).
#[derive(Clone, Default)]
pub struct Scripted {
    pub secrets: Arc<Mutex<VecDeque<SecretKey>>>,
    pub jitter: Arc<Mutex<VecDeque<u64>>>,
}

impl Scripted {
    pub fn with_secret(hex: &str) -> Scripted {
        let s = Scripted::default();
        s.secrets
            .lock()
            .unwrap()
            .push_back(SecretKey::from_hex(hex).unwrap());
        s
    }
}

impl Entropy for Scripted {
    fn ephemeral_secret(&mut self) -> SecretKey {
        self.secrets
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(SecretKey::generate)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.jitter.lock().unwrap().pop_front().unwrap_or(0) % bound
    }
}

pub fn sends(out: &[Output]) -> Vec<(SocketAddr, Vec<u8>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to, bytes } => Some((*to, bytes.clone())),
            Output::Event(_) => None,
        })
        .collect()
}

pub fn established(out: &[Output]) -> Vec<Established> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(ev) => match &**ev {
                Event::SessionEstablished(e) => Some(e.clone()),
                _ => None,
            },
            Output::Send { .. } => None,
        })
        .collect()
}

pub fn events(out: &[Output]) -> Vec<Event> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some((**e).clone()),
            Output::Send { .. } => None,
        })
        .collect()
}
