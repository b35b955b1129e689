//! The man page fastd-privsep(8) (dist/fastd-privsep.8, roff source) documents every option
//! that `--help` lists, and the options of ours that `--help` must not list.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fastd-privsep");
const MAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/fastd-privsep.8");
const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");

/// The option spellings of `--help`: the leading `-x, --xyz` of each option line.
fn help_options() -> Vec<String> {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut opts = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("  -")) {
        for word in line.split_whitespace() {
            let word = word.trim_end_matches(',');
            if !word.starts_with('-') {
                break;
            }
            opts.push(word.to_owned());
        }
    }
    opts
}

/// The man page's words with roff's `\-` read as `-` and font escapes removed.
fn man_words() -> Vec<String> {
    let src = std::fs::read_to_string(MAN).unwrap();
    let plain = src
        .replace("\\-", "-")
        .replace("\\fB", " ")
        .replace("\\fI", " ")
        .replace("\\fR", " ");
    plain
        .split(|c: char| {
            c.is_whitespace() || matches!(c, ',' | '(' | ')' | '"' | '[' | ']' | ';' | ':')
        })
        .map(|w| w.trim_end_matches('.').to_owned())
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
fn every_help_option_is_in_the_man_page() {
    let opts = help_options();
    assert!(opts.len() >= 40, "{opts:?}");
    let words = man_words();
    let missing: Vec<&String> = opts.iter().filter(|o| !words.contains(o)).collect();
    assert!(
        missing.is_empty(),
        "not in dist/fastd-privsep.8: {missing:?}"
    );
}

#[test]
fn our_own_options_are_documented_but_not_in_help() {
    let words = man_words();
    let readme = std::fs::read_to_string(README).unwrap();
    let ours = "--status";
    assert!(
        words.iter().any(|w| w == ours),
        "{ours} not in the man page"
    );
    assert!(readme.contains(ours), "{ours} not in README.md");
    assert!(
        !help_options().iter().any(|o| o == ours),
        "{ours} in --help"
    );
    for section in [
        "OPTIONS",
        "EXTENSION STATEMENTS",
        "DIFFERENCES FROM FASTD",
        "FILES",
        "SIGNALS",
        "EXIT STATUS",
    ] {
        let src = std::fs::read_to_string(MAN).unwrap();
        assert!(
            src.contains(&format!(".SH {section}\n")),
            "no {section} section"
        );
    }
    for statement in ["interface address", "redirect gateway", "masquerade"] {
        let src = std::fs::read_to_string(MAN).unwrap();
        assert!(src.contains(statement), "{statement} not in the man page");
    }
}
