//! The v23 rate limit for handshakes sent to unknown addresses (CVE-2025-24356, §4.9): one per
//! source IP (port ignored) per 15 s, in a bounded table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub const UNKNOWN_ADDRESS_INTERVAL: Duration = Duration::from_secs(15);
const DEFAULT_CAPACITY: usize = 4096;

#[derive(Debug, Clone)]
pub struct AddressRateLimit {
    until: HashMap<IpAddr, Instant>,
    capacity: usize,
}

impl Default for AddressRateLimit {
    fn default() -> Self {
        AddressRateLimit::new(DEFAULT_CAPACITY)
    }
}

impl AddressRateLimit {
    pub fn new(capacity: usize) -> AddressRateLimit {
        AddressRateLimit {
            until: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// True (and the address is charged) if a handshake may be sent to `ip` now.
    pub fn check_and_charge(&mut self, ip: IpAddr, now: Instant) -> bool {
        if let Some(until) = self.until.get(&ip) {
            if now < *until {
                return false;
            }
        }
        if self.until.len() >= self.capacity && !self.until.contains_key(&ip) {
            self.until.retain(|_, until| now < *until);
            if self.until.len() >= self.capacity {
                // Evicting early only allows one extra handshake to that address.
                let oldest = self
                    .until
                    .iter()
                    .min_by_key(|(_, u)| **u)
                    .map(|(ip, _)| *ip);
                if let Some(oldest) = oldest {
                    self.until.remove(&oldest);
                }
            }
        }
        self.until.insert(ip, now + UNKNOWN_ADDRESS_INTERVAL);
        true
    }

    /// A peer at `ip` became established: later reconnects from there must not be blocked.
    pub fn forget(&mut self, ip: IpAddr) {
        self.until.remove(&ip);
    }

    pub fn len(&self) -> usize {
        self.until.len()
    }

    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn per_ip_bounded() {
        let t = Instant::now();
        let mut rl = AddressRateLimit::new(2);
        let a = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let b = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
        let c = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3));
        assert!(rl.check_and_charge(a, t));
        assert!(!rl.check_and_charge(a, t + Duration::from_secs(14)));
        assert!(rl.check_and_charge(a, t + Duration::from_secs(15)));
        assert!(rl.check_and_charge(b, t + Duration::from_secs(16)));
        assert!(rl.check_and_charge(c, t + Duration::from_secs(16)));
        assert_eq!(rl.len(), 2);
        rl.forget(c);
        assert!(rl.check_and_charge(c, t + Duration::from_secs(17)));
    }
}
