//! What the handshake needs to know about methods: the session key length (protocol.md §5.2)
//! and the smallest packet overhead (for the fast-reconnect trigger, §4.9).

fn cipher_key_length(cipher: &str) -> Option<usize> {
    match cipher {
        "null" => Some(0),
        "salsa20" | "salsa2012" => Some(32),
        "aes128-ctr" => Some(16),
        _ => None,
    }
}

/// Length of the UHASH key material after the cipher keys (1472 − 32).
const UHASH_KEY_LENGTH: usize = 1440;

/// Key material length of a method name, `None` for names v22 does not know.
///
/// `<c1>+<x>-gmac` stands for `<c1>+<x>-ctr+gmac`, `<x>-gcm` for `<x>-ctr+gmac`.
pub fn key_length(method: &str) -> Option<usize> {
    if method == "null" || method == "null@l2tp" {
        return Some(0);
    }
    if let Some(x) = method.strip_suffix("-gcm") {
        return key_length(&format!("{x}-ctr+gmac"));
    }
    let (ciphers, mac) = method.rsplit_once('+').unwrap_or(("", method));
    let (ciphers, mac) = match mac.strip_suffix("-gmac") {
        Some(x) if !ciphers.is_empty() => (format!("{ciphers}+{x}-ctr"), "gmac"),
        _ => (ciphers.to_owned(), mac),
    };
    let list: Vec<&str> = ciphers.split('+').collect();
    let mut sum = 0usize;
    for c in &list {
        sum += cipher_key_length(c)?;
    }
    match (mac, list.len()) {
        ("umac", 1 | 2) => Some(sum + UHASH_KEY_LENGTH),
        ("gmac", 1 | 2) => Some(sum),
        ("poly1305", 1) => Some(sum),
        _ => None,
    }
}

/// Overhead of a method's data packets.
pub fn overhead(method: &str) -> usize {
    match method {
        "null" => 1,
        "null@l2tp" => 8,
        _ => 24,
    }
}

/// Whether a packet 2 listing `methods` stays within fastd's 1232-byte handshake limit (§1.5);
/// fastd aborts when it would not, so the config should refuse such a method list.
pub fn method_list_fits(methods: &[String]) -> bool {
    const RESPONSE_FIXED: usize = 12 + 4 + 235;
    let list: usize = methods
        .iter()
        .map(|m| m.len() + 1)
        .sum::<usize>()
        .saturating_sub(1);
    RESPONSE_FIXED + list <= super::packet::MAX_HANDSHAKE_SIZE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_size_limit() {
        let one = vec!["x".repeat(981)];
        assert!(method_list_fits(&one));
        assert!(!method_list_fits(&[one[0].clone() + "x"]));
        let many: Vec<String> = (0..70).map(|_| "salsa2012+umac".to_owned()).collect();
        assert!(!method_list_fits(&many));
        assert!(method_list_fits(&many[..65]));
    }

    #[test]
    fn table_of_the_debian_build() {
        for (m, l) in [
            ("null", 0),
            ("null@l2tp", 0),
            ("salsa2012+umac", 1472),
            ("salsa20+umac", 1472),
            ("aes128-ctr+umac", 1456),
            ("salsa2012+gmac", 32),
            ("salsa20+gmac", 32),
            ("aes128-gcm", 16),
            ("salsa2012+poly1305", 32),
            ("salsa20+poly1305", 32),
            ("aes128-ctr+poly1305", 16),
            ("null+salsa2012+umac", 1472),
            ("null+salsa20+umac", 1472),
            ("null+aes128-ctr+umac", 1456),
            ("null+salsa2012+gmac", 32),
            ("null+salsa20+gmac", 32),
            ("null+aes128-gmac", 16),
            ("salsa2012+salsa20+umac", 1504),
        ] {
            assert_eq!(key_length(m), Some(l), "{m}");
        }
        for m in ["", "umac", "foo+umac", "salsa20", "a+b+c+umac", "x-gcm"] {
            assert_eq!(key_length(m), None, "{m}");
        }
    }
}
