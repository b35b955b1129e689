//! How peer addresses and MAC addresses appear in log lines (docs/config.md §6.1), with
//! `hide ip addresses` / `hide mac addresses` (and `--hide-ip-addresses`,
//! `--hide-mac-addresses`) applied, as fastd's `%I` and `%E` conversions do.
//!
//! The setting lives in each engine's settings, not in a process global: several engines
//! with different settings may share one process (the tests do).
//!
//! What is never hidden: bind addresses (`bound to ...`, fastd's `%B`), the status socket,
//! and hook environments.

use std::fmt;
use std::net::SocketAddr;

use super::tap::Mac;

/// fastd's `hide ip addresses` and `hide mac addresses`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hide {
    pub ip: bool,
    pub mac: bool,
}

impl Hide {
    /// A peer address: `192.0.2.1:10000`, `[2001:db8::1]:10000`, or `[hidden]:10000`.
    pub fn addr(self, addr: &SocketAddr) -> ShownAddr {
        ShownAddr {
            addr: *addr,
            hide: self.ip,
        }
    }

    /// A MAC address: `aa:bb:cc:dd:ee:ff`, or `[hidden]`.
    pub fn mac(self, mac: &Mac) -> ShownMac {
        ShownMac {
            mac: *mac,
            hide: self.mac,
        }
    }
}

/// A peer address as a log line shows it (fastd's `%I`).
#[derive(Debug, Clone, Copy)]
pub struct ShownAddr {
    addr: SocketAddr,
    hide: bool,
}

impl fmt::Display for ShownAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The port stays: fastd prints `[hidden]:<port>` for both families.
        if self.hide {
            return write!(f, "[hidden]:{}", self.addr.port());
        }
        match &self.addr {
            SocketAddr::V4(v) => write!(f, "{v}"),
            SocketAddr::V6(v) => write!(f, "[{}]:{}", v.ip(), v.port()),
        }
    }
}

/// A MAC address as a log line shows it (fastd's `%E`).
#[derive(Debug, Clone, Copy)]
pub struct ShownMac {
    mac: Mac,
    hide: bool,
}

impl fmt::Display for ShownMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.hide {
            return f.write_str("[hidden]");
        }
        let [a, b, c, d, e, g] = self.mac;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SHOWN: Hide = Hide {
        ip: false,
        mac: false,
    };
    const HIDDEN: Hide = Hide {
        ip: true,
        mac: true,
    };

    #[test]
    fn addresses_as_fastd_prints_them() {
        let v4: SocketAddr = "192.0.2.1:10000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:10001".parse().unwrap();
        assert_eq!(SHOWN.addr(&v4).to_string(), "192.0.2.1:10000");
        assert_eq!(SHOWN.addr(&v6).to_string(), "[2001:db8::1]:10001");
        // Observed in fastd v22 with `hide ip addresses yes;` for IPv4 and IPv6 peers.
        assert_eq!(HIDDEN.addr(&v4).to_string(), "[hidden]:10000");
        assert_eq!(HIDDEN.addr(&v6).to_string(), "[hidden]:10001");
    }

    #[test]
    fn macs_as_fastd_prints_them() {
        let m = [0x02, 0xab, 0x00, 0x0c, 0xde, 0xff];
        assert_eq!(SHOWN.mac(&m).to_string(), "02:ab:00:0c:de:ff");
        assert_eq!(HIDDEN.mac(&m).to_string(), "[hidden]");
        // The two settings are independent.
        let ip_only = Hide {
            ip: true,
            mac: false,
        };
        assert_eq!(ip_only.mac(&m).to_string(), "02:ab:00:0c:de:ff");
    }
}
