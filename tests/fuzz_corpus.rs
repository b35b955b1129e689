//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the same functions the
//! libFuzzer targets call, so every input a fuzzing run kept (and every crash input added
//! after a fix) is checked again by the ordinary test suite, without libFuzzer.
//!
//! A missing or empty corpus directory fails the test: a replay that finds nothing must not
//! pass silently.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Every file of `fuzz/corpus/<target>/`, sorted.
fn corpus(target: &str) -> Vec<PathBuf> {
    files(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target),
    )
}

/// Every file of `dir`, sorted; panics if there is none.
fn files(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e} (see fuzz/README.md)", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display())))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    assert!(
        !files.is_empty(),
        "corpus {} holds no input (see fuzz/README.md)",
        dir.display()
    );
    files.sort();
    files
}

/// Feeds every input of `target`'s corpus to `run`; fails naming every input that panicked.
fn replay(target: &str, run: fn(&[u8])) {
    let files = corpus(target);
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = std::fs::read(path)
                .unwrap_or_else(|e| panic!("corpus input {}: {e}", path.display()));
            catch_unwind(AssertUnwindSafe(|| run(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: {} of {} corpus inputs fail (replay one with \
         fuzz/target/x86_64-unknown-linux-gnu/release/{target} FILE):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn config_parse() {
    replay("config_parse", worker::fuzzing::config_parse);
}

#[test]
fn handshake_packet() {
    replay("handshake_packet", worker::fuzzing::handshake_packet);
}

#[test]
fn method_decrypt() {
    replay("method_decrypt", worker::fuzzing::method_decrypt);
}

#[test]
fn policy_decode() {
    replay("policy_decode", policy::fuzzing::policy_decode);
}

#[test]
#[should_panic(expected = "holds no input")]
fn an_empty_corpus_fails() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    files(dir.path());
}

#[test]
#[should_panic(expected = "No such file or directory")]
fn a_missing_corpus_fails() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    files(&dir.path().join("none"));
}

#[test]
fn helper_request() {
    replay("helper_request", policy::fuzzing::helper_request);
}
