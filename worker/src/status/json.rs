//! The status document's bytes: json-c's "spaced" output as fastd writes it (docs/config.md §5.3).
//!
//! serde_json does the structure and the escaping of quotes, backslashes and control characters;
//! [`JsonCSpaced`], a `serde_json::ser::Formatter`, supplies json-c's spacing (`{ "k": v }`,
//! `[ a, b ]`, `{ }`, `[ ]`) and its one extra escape, `/` as `\/`. Member order comes from the
//! hand-written `Serialize` views below, which follow §5.4 and leave out the (tap) / (not tap)
//! members per mode.

use std::io;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::ser::{CharEscape, Formatter};

use super::snapshot::{
    ConnectionStatus, Counter, MacAddress, ModeStatus, PeerStatus, Statistics, StatusSnapshot,
};

/// The document could not be serialized.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// serde_json failed; with an in-memory buffer this means a bug in the views.
    #[error("cannot serialize the status document: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// The status document for `snapshot`, byte for byte as fastd v22 writes it (no trailing newline).
pub fn to_json(snapshot: &StatusSnapshot) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::with_capacity(512 + 700 * snapshot.peers.len());
    write_json(&mut out, snapshot)?;
    Ok(out)
}

/// Writes the status document for `snapshot` to `writer`.
pub fn write_json<W: io::Write>(writer: W, snapshot: &StatusSnapshot) -> Result<(), JsonError> {
    let mut ser = serde_json::Serializer::with_formatter(writer, JsonCSpaced);
    Document(snapshot).serialize(&mut ser)?;
    Ok(())
}

/// json-c's `JSON_C_TO_STRING_SPACED` style (json-c 0.16, what Debian's fastd 22 links).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCSpaced;

impl Formatter for JsonCSpaced {
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b" }")
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        w.write_all(if first { b" " } else { b", " })
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b" ]")
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        w.write_all(if first { b" " } else { b", " })
    }

    /// serde_json passes everything it does not escape itself through here; json-c also
    /// escapes the solidus.
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut parts = fragment.split('/');
        if let Some(first) = parts.next() {
            w.write_all(first.as_bytes())?;
        }
        for part in parts {
            w.write_all(b"\\/")?;
            w.write_all(part.as_bytes())?;
        }
        Ok(())
    }

    /// Spelled out rather than inherited so that json-c's choices (short escapes for exactly
    /// these five, lowercase `\u00xx` for the other bytes below 0x20) stay pinned here.
    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        match escape {
            CharEscape::Quote => w.write_all(b"\\\""),
            CharEscape::ReverseSolidus => w.write_all(b"\\\\"),
            CharEscape::Solidus => w.write_all(b"\\/"),
            CharEscape::Backspace => w.write_all(b"\\b"),
            CharEscape::FormFeed => w.write_all(b"\\f"),
            CharEscape::LineFeed => w.write_all(b"\\n"),
            CharEscape::CarriageReturn => w.write_all(b"\\r"),
            CharEscape::Tab => w.write_all(b"\\t"),
            CharEscape::AsciiControl(byte) => w.write_all(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
        }
    }
}

/// The top-level object.
struct Document<'a>(&'a StatusSnapshot);

impl Serialize for Document<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let snap = self.0;
        let tap = matches!(snap.mode, ModeStatus::Tap { .. });
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("uptime", &snap.uptime_ms)?;
        if let ModeStatus::Tap { interface } = &snap.mode {
            map.serialize_entry("interface", interface)?;
        }
        map.serialize_entry("statistics", &Stats(&snap.statistics))?;
        map.serialize_entry(
            "peers",
            &Peers {
                peers: &snap.peers,
                tap,
            },
        )?;
        map.end()
    }
}

struct Stats<'a>(&'a Statistics);

impl Serialize for Stats<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let st = self.0;
        let mut map = s.serialize_map(Some(5))?;
        map.serialize_entry("rx", &Count(&st.rx))?;
        map.serialize_entry("rx_reordered", &Count(&st.rx_reordered))?;
        map.serialize_entry("tx", &Count(&st.tx))?;
        map.serialize_entry("tx_dropped", &Count(&st.tx_dropped))?;
        map.serialize_entry("tx_error", &Count(&st.tx_error))?;
        map.end()
    }
}

struct Count<'a>(&'a Counter);

impl Serialize for Count<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("packets", &self.0.packets)?;
        map.serialize_entry("bytes", &self.0.bytes)?;
        map.end()
    }
}

struct Peers<'a> {
    peers: &'a [PeerStatus],
    tap: bool,
}

impl Serialize for Peers<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.peers.len()))?;
        for peer in self.peers {
            map.serialize_entry(
                &KeyHex(&peer.key),
                &Peer {
                    peer,
                    tap: self.tap,
                },
            )?;
        }
        map.end()
    }
}

/// A public key as 64 lowercase hex digits (fastd's `describe_peer`).
struct KeyHex<'a>(&'a [u8; 32]);

impl Serialize for KeyHex<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 64];
        for (pair, byte) in buf.chunks_exact_mut(2).zip(self.0) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0xf)];
        }
        // Hex digits are ASCII, so this never falls back.
        s.serialize_str(std::str::from_utf8(&buf).unwrap_or_default())
    }
}

struct Peer<'a> {
    peer: &'a PeerStatus,
    tap: bool,
}

impl Serialize for Peer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.peer;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("name", &p.name)?;
        map.serialize_entry("address", &p.address.to_string())?;
        if !self.tap {
            map.serialize_entry("interface", &p.interface)?;
        }
        let connection = p.connection.as_ref().map(|conn| Connection {
            conn,
            tap: self.tap,
        });
        map.serialize_entry("connection", &connection)?;
        map.end()
    }
}

struct Connection<'a> {
    conn: &'a ConnectionStatus,
    tap: bool,
}

impl Serialize for Connection<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.conn;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("established", &c.established_ms)?;
        map.serialize_entry("method", &c.method)?;
        map.serialize_entry("statistics", &Stats(&c.statistics))?;
        if self.tap {
            map.serialize_entry("mac_addresses", &Macs(&c.mac_addresses))?;
        }
        map.end()
    }
}

/// fastd keeps its MAC table sorted by address and lists a peer's entries in table order.
struct Macs<'a>(&'a [MacAddress]);

impl Serialize for Macs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut sorted = self.0.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut seq = s.serialize_seq(Some(sorted.len()))?;
        for mac in &sorted {
            seq.serialize_element(&mac.to_string())?;
        }
        seq.end()
    }
}

/// Serializes any value in json-c's spaced style; for tests of the formatter on its own.
pub fn to_json_c_spaced<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, JsonCSpaced);
    value.serialize(&mut ser)?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn empty_containers_have_one_space() {
        let empty: std::collections::BTreeMap<String, u8> = Default::default();
        assert_eq!(to_json_c_spaced(&empty).unwrap(), b"{ }");
        assert_eq!(to_json_c_spaced::<[u8]>(&[]).unwrap(), b"[ ]");
        assert_eq!(to_json_c_spaced(&[1u8, 2]).unwrap(), b"[ 1, 2 ]");
    }

    #[test]
    fn solidus_is_escaped_in_every_fragment() {
        assert_eq!(to_json_c_spaced("/").unwrap(), br#""\/""#);
        assert_eq!(to_json_c_spaced("a//b\"/").unwrap(), br#""a\/\/b\"\/""#);
    }
}
