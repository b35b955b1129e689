//! `hide ip addresses` / `hide mac addresses` against the real fastd v22: both sides hide, and
//! our lines read like fastd's (docs/config.md §6.1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod interop_support;

use std::time::Duration;

use interop_support::ours::Ours;
use interop_support::*;
use worker::engine::Timings;

const METHOD: &str = "salsa2012+umac";
const HIDE: &str = "hide ip addresses yes;\nhide mac addresses yes;\n";

/// Ours (alpha, 198.51.100.1:10000) and fastd (beta, 198.51.100.2:10001) in tap mode, each
/// with the other as remote; a ping makes both learn a MAC address behind the other.
#[test]
fn hidden_addresses_read_like_fastds() {
    if !prerequisites() {
        return;
    }
    let keys = keypairs();
    let lan = Lan::new("hide", 2);
    let dir = TempDir::new("hide");
    let mut a = ConfBuilder::new("tap", METHOD, &keys[0].0, "172.16.16.1/24");
    a.bind = Some("198.51.100.1:10000".into());
    a.extra = HIDE.into();
    let a = a
        .peer("beta", &keys[1].1, Some("198.51.100.2:10001"))
        .render();
    let mut b = ConfBuilder::new("tap", METHOD, &keys[1].0, "172.16.16.2/24");
    b.bind = Some("198.51.100.2:10001".into());
    b.extra = HIDE.into();
    let b = b
        .peer("alpha", &keys[0].1, Some("198.51.100.1:10000"))
        .render();
    let ours = Ours::start(&lan.nodes[0], &a, Timings::default());
    let fastd = Fastd::start(&lan.nodes[1], &dir, "beta", &b);
    let both = || format!("fastd:\n{}\nours:\n{}", fastd.log_text(), ours.log_text());
    assert!(
        fastd.wait_log(
            "connection with <alpha> established",
            Duration::from_secs(15)
        ),
        "{}",
        both()
    );
    assert!(
        ping(
            &lan.nodes[1],
            "172.16.16.1".parse().unwrap(),
            56,
            Duration::from_secs(5)
        )
        .is_some(),
        "{}",
        both()
    );
    assert!(
        ours.wait_log("learned new MAC address", Duration::from_secs(5))
            && fastd.wait_log("learned new MAC address", Duration::from_secs(5)),
        "{}",
        both()
    );
    // The same lines on both sides, with the names swapped (fastd prints them at these
    // levels: observed with v22).
    let fastd_log = fastd.log_text();
    let ours_log = ours.log_text();
    for (theirs, mine) in [
        (
            "Verbose: sending handshake to <alpha>[[hidden]:10000]...",
            "Verbose: sending handshake to <beta>[[hidden]:10001]...",
        ),
        (
            "Verbose: [hidden]:10000 authenticated as <alpha>",
            "Verbose: [hidden]:10001 authenticated as <beta>",
        ),
        (
            "DEBUG: learned new MAC address [hidden] on peer <alpha>",
            "DEBUG: learned new MAC address [hidden] on peer <beta>",
        ),
        (
            "Info: bound to 198.51.100.2:10001",
            "Info: bound to 198.51.100.1:10000",
        ),
    ] {
        assert!(fastd_log.contains(theirs), "fastd: {theirs}\n{}", both());
        assert!(
            ours_log.lines().any(|l| l == mine),
            "ours: {mine}\n{}",
            both()
        );
    }
    // Both sides initiate: which packets each one receives first depends on timing.
    for (log, peer) in [
        (&fastd_log, "<alpha>[[hidden]:10000]"),
        (&ours_log, "<beta>[[hidden]:10001]"),
    ] {
        let received = [
            "received handshake from ",
            "received handshake response from ",
        ]
        .iter()
        .any(|what| log.contains(&format!("Verbose: {what}{peer} using fastd v22")));
        assert!(received, "{peer}: {}", both());
    }
    // Neither the peer's address nor a MAC address shows anywhere else.
    let leaks: Vec<&str> = ours_log
        .lines()
        .filter(|l| l.contains("198.51.100.") && !l.contains("bound to"))
        .collect();
    assert!(leaks.is_empty(), "{leaks:?}\n{}", both());
    let mac_like = |l: &&str| {
        l.split(|c: char| c.is_whitespace() || c == ',')
            .any(|w| w.len() == 17 && w.matches(':').count() == 5)
    };
    let macs: Vec<&str> = ours_log.lines().filter(mac_like).collect();
    assert!(macs.is_empty(), "{macs:?}");
}
