//! How `--status` prints a [`Status`]: a table for people, in the spirit of `wg show`, or
//! one tab-separated line per peer for scripts (`--machine-readable`).

use super::doc::{Peer, Status};
use std::fmt::Write;

/// Length of the key prefix that stands for an unnamed peer.
const SHORT_KEY: usize = 16;

/// The human view: a summary line, then one row per peer in the daemon's order.
pub fn table(s: &Status) -> String {
    let established = s.peers.iter().filter(|p| p.connection.is_some()).count();
    let mut out = format!("up {}", duration(s.uptime_ms));
    if let Some(i) = &s.interface {
        let _ = write!(out, ", interface {}", clean(i));
    }
    let _ = writeln!(
        out,
        ", {established} of {} peers established, {} received, {} sent",
        s.peers.len(),
        bytes(s.statistics.rx.bytes),
        bytes(s.statistics.tx.bytes)
    );
    if s.peers.is_empty() {
        return out;
    }
    let tap = s.is_tap();
    let mut rows: Vec<Vec<String>> = vec![[
        "PEER",
        "ADDRESS",
        "INTERFACE",
        "METHOD",
        "ESTABLISHED",
        "RECEIVED",
        "SENT",
    ]
    .map(str::to_owned)
    .to_vec()];
    if tap {
        rows[0].push("MACS".to_owned());
    }
    for p in &s.peers {
        let iface = p.interface.as_ref().or(s.interface.as_ref());
        let mut row = vec![
            peer_label(p),
            clean(&p.address),
            iface.map_or_else(|| "-".to_owned(), |i| clean(i)),
        ];
        match &p.connection {
            Some(c) => {
                row.push(c.method.as_deref().map_or_else(|| "-".to_owned(), clean));
                row.push(format!("{} ago", duration(c.established_ms)));
                row.push(bytes(c.statistics.rx.bytes));
                row.push(bytes(c.statistics.tx.bytes));
                if tap {
                    let n = c.mac_addresses.as_ref().map_or(0, Vec::len);
                    row.push(n.to_string());
                }
            }
            None => {
                row.extend(["-", "not connected", "-", "-"].map(str::to_owned));
                if tap {
                    row.push("-".to_owned());
                }
            }
        }
        rows.push(row);
    }
    out.push('\n');
    out.push_str(&columns(&rows));
    out
}

/// One line per peer: key, name, address, interface, method, milliseconds since
/// established, rx packets, rx bytes, tx packets, tx bytes, MAC count. Absent values are
/// `-`; tabs, newlines and backslashes inside values are escaped (`\t`, `\n`, `\\`).
pub fn machine_readable(s: &Status) -> String {
    let mut out = String::new();
    for p in &s.peers {
        let dash = || "-".to_owned();
        let iface = p.interface.as_ref().or(s.interface.as_ref());
        let mut f = vec![
            escape(&p.key),
            p.name.as_deref().map_or_else(dash, escape),
            escape(&p.address),
            iface.map_or_else(dash, |i| escape(i)),
        ];
        match &p.connection {
            Some(c) => {
                let st = &c.statistics;
                f.push(c.method.as_deref().map_or_else(dash, escape));
                f.push(c.established_ms.to_string());
                for n in [st.rx.packets, st.rx.bytes, st.tx.packets, st.tx.bytes] {
                    f.push(n.to_string());
                }
                f.push(
                    c.mac_addresses
                        .as_ref()
                        .map_or_else(dash, |m| m.len().to_string()),
                );
            }
            None => f.extend(std::iter::repeat_n(dash(), 7)),
        }
        out.push_str(&f.join("\t"));
        out.push('\n');
    }
    out
}

fn peer_label(p: &Peer) -> String {
    match &p.name {
        Some(n) if !n.is_empty() => clean(n),
        _ => p.key.chars().take(SHORT_KEY).collect(),
    }
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn columns(rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            let w = c.chars().count();
            match widths.get_mut(i) {
                Some(x) => *x = (*x).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                let pad = widths.get(i).copied().unwrap_or(0) - c.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A name for the terminal: control characters (a tab in a peer file's name) are shown
/// escaped so that they cannot break the table or move the cursor.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A field for scripts: like [`clean`], and a backslash is doubled, so the line splits on
/// tabs unambiguously and the value can be recovered.
fn escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || c == '\\' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `3 minutes, 12 seconds`: the two largest non-zero units.
pub fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    if secs == 0 {
        return "less than a second".to_owned();
    }
    let units = [
        (secs / 86_400, "day"),
        (secs / 3600 % 24, "hour"),
        (secs / 60 % 60, "minute"),
        (secs % 60, "second"),
    ];
    let parts: Vec<String> = units
        .iter()
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n != 0)
        .map(|(n, u)| format!("{n} {u}{}", if *n == 1 { "" } else { "s" }))
        .collect();
    parts.join(", ")
}

/// `586 B`, `1.06 KiB`, `12.50 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    // Precision loss above 2^53 bytes does not show in two decimals.
    #[allow(clippy::cast_precision_loss)]
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2} {}", UNITS[unit])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::doc::sample;
    use super::*;

    #[test]
    fn units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1082), "1.06 KiB");
        assert_eq!(bytes(10 * 1024 * 1024 + 512 * 1024), "10.50 MiB");
        assert_eq!(bytes(u64::MAX), "16.00 EiB");
        assert_eq!(duration(999), "less than a second");
        assert_eq!(duration(1000), "1 second");
        assert_eq!(duration(12_224), "12 seconds");
        assert_eq!(duration(192_000), "3 minutes, 12 seconds");
        assert_eq!(duration(3_600_000), "1 hour");
        assert_eq!(duration(3_660_000 + 59_000), "1 hour, 1 minute");
        assert_eq!(duration(2 * 86_400_000 + 5_000), "2 days");
    }

    #[test]
    fn tap_table() {
        let t = table(&sample("tap-two-peers-one-dynamic"));
        let expected = "\
up 18 seconds, interface tapalpha, 2 of 2 peers established, 1.06 KiB received, 1.11 KiB sent

PEER              ADDRESS          INTERFACE  METHOD          ESTABLISHED     RECEIVED  SENT   MACS
anyremote         192.0.2.2:36528  tapalpha   salsa2012+umac  12 seconds ago  586 B     566 B  1
d28585393d771056  192.0.2.2:51275  tapalpha   salsa2012+umac  12 seconds ago  496 B     566 B  1
";
        assert_eq!(t, expected);
    }

    #[test]
    fn multitap_table_has_per_peer_interfaces_and_no_macs() {
        let t = table(&sample("multitap-persist-no-dynamic-peer"));
        let expected = "\
up 38 seconds, 1 of 2 peers established, 70 B received, 0 B sent

PEER              ADDRESS          INTERFACE        METHOD          ESTABLISHED     RECEIVED  SENT
anyremote         any              -                -               not connected   -         -
d28585393d771056  192.0.2.2:34135  mt-d28585393d77  salsa2012+umac  17 seconds ago  70 B      0 B
";
        assert_eq!(t, expected);
    }

    #[test]
    fn control_characters_in_names_are_escaped() {
        let t = table(&sample("tap-unconnected-peer-name-escaping"));
        assert!(
            t.ends_with(
                "\na/b\"c\\d é\\ttab  any      tap0       -       not connected  -         -     -\n"
            ),
            "{t}"
        );
        let m = machine_readable(&sample("tap-unconnected-peer-name-escaping"));
        assert_eq!(
            m,
            "de5ca41689e09365fff562ab6025292878772d497ecc0b7db745dc55ec24e677\t\
             a/b\"c\\\\d é\\ttab\tany\ttap0\t-\t-\t-\t-\t-\t-\t-\n"
        );
    }

    #[test]
    fn no_peers_is_one_line() {
        assert_eq!(
            table(&sample("tap-no-peers")),
            "up 1 second, interface tap0, 0 of 0 peers established, 0 B received, 0 B sent\n"
        );
        assert_eq!(machine_readable(&sample("tap-no-peers")), "");
    }

    #[test]
    fn machine_readable_tun() {
        let m = machine_readable(&sample("tun-named-peer-established"));
        assert_eq!(
            m,
            "b64e22d2c749ac0d4138dec2627d98bb7eb2e72b2e21125d4c7ca4b6f43acada\talpha\t\
             192.0.2.1:10000\tvpngateway\tsalsa2012+umac\t24238\t7\t876\t7\t736\t-\n"
        );
        let m = machine_readable(&sample("tap-two-peers-one-dynamic"));
        let lines: Vec<&str> = m.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with("d28585393d77"));
        assert!(lines[1].contains("\t-\t192.0.2.2:51275\ttapalpha\t"));
        assert!(lines[1].ends_with("\t12201\t6\t496\t7\t566\t1"));
        for l in lines {
            assert_eq!(l.split('\t').count(), 11);
        }
    }
}
