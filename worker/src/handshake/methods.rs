//! What the handshake needs to know about methods: the session key length (docs/protocol.md §5.2)
//! and the smallest packet overhead (for the fast-reconnect trigger, §4.9), both from the
//! method registry.

/// Key material length of a method name, `None` for names v22 does not know.
pub fn key_length(method: &str) -> Option<usize> {
    crate::method::by_name(method).map(|m| m.key_len())
}

/// Overhead of a method's data packets (24 for names v22 does not know: the common header).
pub fn overhead(method: &str) -> usize {
    crate::method::by_name(method).map_or(24, |m| m.overhead())
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
