#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The privileged helper links no crypto, protocol or worker code.

use std::process::Command;

fn tree(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            package,
            "--prefix",
            "none",
            "-e",
            "normal,build",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    tree.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn banned_in(crates: &[String]) -> Vec<String> {
    crates
        .iter()
        .filter(|c| BANNED.iter().any(|b| c.contains(b)) && !c.starts_with("zerocopy"))
        .cloned()
        .collect()
}

#[test]
fn cargo_tree_has_no_crypto_protocol_or_worker_crate() {
    let crates = tree("privsep");
    assert!(
        crates.iter().any(|c| c == "privsep") && crates.iter().any(|c| c == "policy"),
        "{crates:?}"
    );
    assert_eq!(banned_in(&crates), Vec::<String>::new(), "{crates:?}");
}

#[test]
fn the_check_would_see_the_worker_crypto() {
    let hits = banned_in(&tree("worker"));
    assert!(hits.iter().any(|c| c.starts_with("curve25519")), "{hits:?}");
}

const BANNED: [&str; 22] = [
    "curve25519",
    "x25519",
    "ed25519",
    "salsa20",
    "chacha20",
    "poly1305",
    "aes",
    "ghash",
    "gcm",
    "umac",
    "uhash",
    "sodium",
    "openssl",
    "ring",
    "sha2",
    "digest",
    "subtle",
    "zeroize",
    "getrandom",
    "rand",
    "worker",
    "fastd",
];
