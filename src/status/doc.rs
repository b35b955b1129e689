//! The status socket's JSON document (docs/config.md §5.4) as a client reads it, from fastd
//! v22 or from our worker alike. Only what `--status` shows is kept; members we do not know
//! are ignored, so a newer daemon's additions do not break the view.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// One `{ "packets": n, "bytes": n }`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// `<stats>`: the counters of the daemon or of one peer's connection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Statistics {
    pub rx: Counter,
    pub rx_reordered: Counter,
    pub tx: Counter,
    pub tx_dropped: Counter,
    pub tx_error: Counter,
}

/// A peer's established session.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Connection {
    /// Milliseconds since the session was established.
    #[serde(rename = "established")]
    pub established_ms: u64,
    pub method: Option<String>,
    pub statistics: Statistics,
    /// The learned MAC addresses; only present in tap mode.
    pub mac_addresses: Option<Vec<String>>,
}

/// One enabled peer, in the daemon's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The public key, 64 hex digits.
    pub key: String,
    pub name: Option<String>,
    /// `a.b.c.d:port`, `[v6]:port` or `any`.
    pub address: String,
    /// The peer's own interface (tun, multitap); `None` in tap mode or before it exists.
    pub interface: Option<String>,
    pub connection: Option<Connection>,
}

#[derive(Deserialize)]
struct PeerBody {
    name: Option<String>,
    address: String,
    #[serde(default)]
    interface: Option<String>,
    connection: Option<Connection>,
}

/// The whole document.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Status {
    #[serde(rename = "uptime")]
    pub uptime_ms: u64,
    /// The one interface of tap mode.
    #[serde(default)]
    pub interface: Option<String>,
    pub statistics: Statistics,
    #[serde(deserialize_with = "peers_in_order")]
    pub peers: Vec<Peer>,
}

impl Status {
    /// Parses a document as the socket delivered it. fastd passes bytes >= 0x80 of names
    /// through raw, so a name need not be UTF-8: such bytes become U+FFFD rather than
    /// failing the whole view (they can only occur inside strings).
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_str(&String::from_utf8_lossy(bytes))
    }

    /// Tap mode: the daemon has one interface and peers have MAC addresses.
    pub fn is_tap(&self) -> bool {
        self.interface.is_some()
    }
}

/// The `peers` object in document order (the order the daemon added them), which a map
/// type would lose.
fn peers_in_order<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Peer>, D::Error> {
    struct InOrder;
    impl<'de> Visitor<'de> for InOrder {
        type Value = Vec<Peer>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of peers by key")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut peers = Vec::new();
            while let Some((key, body)) = map.next_entry::<String, PeerBody>()? {
                peers.push(Peer {
                    key,
                    name: body.name,
                    address: body.address,
                    interface: body.interface,
                    connection: body.connection,
                });
            }
            Ok(peers)
        }
    }
    d.deserialize_map(InOrder)
}

/// A recorded fastd status document from `testdata/status-samples/`, for the tests of this
/// module and of the view.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(super) fn sample(name: &str) -> Status {
    let path = format!(
        "{}/testdata/status-samples/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    Status::parse(&std::fs::read(&path).unwrap()).unwrap()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const ANYREMOTE: &str = "de5ca41689e09365fff562ab6025292878772d497ecc0b7db745dc55ec24e677";

    #[test]
    fn every_recorded_document_parses() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/status-samples");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            Status::parse(&bytes).unwrap();
            n += 1;
        }
        assert!(n >= 9, "only {n} samples");
    }

    #[test]
    fn tap_two_peers_in_document_order() {
        let s = sample("tap-two-peers-one-dynamic");
        assert_eq!(s.uptime_ms, 18536);
        assert_eq!(s.interface.as_deref(), Some("tapalpha"));
        assert!(s.is_tap());
        assert_eq!(
            s.statistics.rx,
            Counter {
                packets: 13,
                bytes: 1082
            }
        );
        assert_eq!(s.statistics.tx.bytes, 1132);
        let keys: Vec<&str> = s.peers.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                ANYREMOTE,
                "d28585393d7710566024f72c5dcec2cb004ba59a4547ad00ef7a307bab0593be"
            ]
        );
        let first = &s.peers[0];
        assert_eq!(first.name.as_deref(), Some("anyremote"));
        assert_eq!(first.address, "192.0.2.2:36528");
        assert_eq!(first.interface, None);
        let c = first.connection.as_ref().unwrap();
        assert_eq!(c.established_ms, 12224);
        assert_eq!(c.method.as_deref(), Some("salsa2012+umac"));
        assert_eq!(
            c.statistics.rx,
            Counter {
                packets: 7,
                bytes: 586
            }
        );
        assert_eq!(
            c.mac_addresses.as_deref(),
            Some(&["2e:dc:fc:00:04:a1".to_owned()][..])
        );
        assert_eq!(s.peers[1].name, None);
    }

    #[test]
    fn tun_peer_has_its_own_interface_and_no_macs() {
        let s = sample("tun-named-peer-established");
        assert!(!s.is_tap());
        let p = &s.peers[0];
        assert_eq!(p.name.as_deref(), Some("alpha"));
        assert_eq!(p.interface.as_deref(), Some("vpngateway"));
        let c = p.connection.as_ref().unwrap();
        assert_eq!(c.established_ms, 24238);
        assert_eq!(c.mac_addresses, None);
    }

    #[test]
    fn multitap_unconnected_peer_has_null_interface_and_connection() {
        let s = sample("multitap-persist-no-dynamic-peer");
        assert!(!s.is_tap());
        let p = &s.peers[0];
        assert_eq!(p.address, "any");
        assert_eq!(p.interface, None);
        assert_eq!(p.connection, None);
        assert_eq!(s.peers[1].interface.as_deref(), Some("mt-d28585393d77"));
    }

    #[test]
    fn escaped_name_is_unescaped() {
        let s = sample("tap-unconnected-peer-name-escaping");
        assert_eq!(s.peers[0].name.as_deref(), Some("a/b\"c\\d é\ttab"));
        assert_eq!(s.peers[0].connection, None);
    }

    #[test]
    fn no_peers() {
        let s = sample("tap-no-peers");
        assert!(s.peers.is_empty());
        assert_eq!(s.interface.as_deref(), Some("tap0"));
    }

    #[test]
    fn a_name_that_is_not_utf8_does_not_fail_the_document() {
        let doc = sample_bytes_with_name(b"caf\xe9");
        let s = Status::parse(&doc).unwrap();
        assert_eq!(s.peers[0].name.as_deref(), Some("caf\u{fffd}"));
    }

    fn sample_bytes_with_name(name: &[u8]) -> Vec<u8> {
        let mut v = b"{ \"uptime\": 1, \"interface\": \"tap0\", \"statistics\": ".to_vec();
        let stats = br#"{ "rx": { "packets": 0, "bytes": 0 }, "rx_reordered": { "packets": 0, "bytes": 0 }, "tx": { "packets": 0, "bytes": 0 }, "tx_dropped": { "packets": 0, "bytes": 0 }, "tx_error": { "packets": 0, "bytes": 0 } }"#;
        v.extend_from_slice(stats);
        v.extend_from_slice(b", \"peers\": { \"");
        v.extend_from_slice(ANYREMOTE.as_bytes());
        v.extend_from_slice(b"\": { \"name\": \"");
        v.extend_from_slice(name);
        v.extend_from_slice(b"\", \"address\": \"any\", \"connection\": null } } }");
        v
    }

    #[test]
    fn truncated_and_foreign_documents_are_errors() {
        let full = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/status-samples/tap-two-peers-one-dynamic.json"
        ))
        .unwrap();
        assert!(Status::parse(&full[..full.len() / 2]).is_err());
        assert!(Status::parse(b"").is_err());
        assert!(Status::parse(b"[1, 2]").is_err());
        assert!(Status::parse(b"{ \"uptime\": -1 }").is_err());
    }
}
