//! Keys recorded from fastd v22 (`testdata/keys.txt`) and the tutorial's alpha/anyremote pair.

use std::fs;

pub const ALPHA_SECRET: &str = "5035de5b4ea448b74e9a373765207095057a9485fd9dca5fadb9c1b86347bd75";
pub const ALPHA_PUBLIC: &str = "8cb5e8d70d34f52716b6c4de518af2edfd6794e68ef1b3f0608cf05dd6a2ef42";
pub const AR_SECRET: &str = "c0a611e0d4f3075b45cf172d3221c8427008e2c6f541b5b6adda0368cb79f271";
pub const AR_PUBLIC: &str = "2598c5d7e72f171731658ce35734ff7599e1840367422e1a9c5943c327ab5ea9";

/// Key pairs recorded from fastd v22.
pub fn keypairs() -> Vec<(String, String)> {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/keys.txt");
    fs::read_to_string(p)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_owned(), it.next()?.to_owned()))
        })
        .collect()
}
