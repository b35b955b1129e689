//! The config loader on arbitrary file contents (config files are semi-trusted: the root
//! helper hands the worker whatever bytes it finds on disk).
//!
//! Input: `main [NUL other]`. `main` is `/etc/fastd/fastd.conf`; `other` (if there is a NUL)
//! is every file the main one may reach by a simple name: `inc.conf` (for `include`),
//! `peer.conf` (for `include peer`) and `peers/p1` (for `include peers from "peers"`).
//!
//! Properties:
//! * no panic, whatever the bytes;
//! * every error is either located (`file:line:col`, inside the file it names) or one of
//!   the errors fastd itself reports without a position;
//! * a method list that passes `Config::verify` is one the method module can build and whose
//!   key length the handshake computes the same way (the three places that know method
//!   names must agree on every name the config lets through).

use std::path::{Path, PathBuf};

use crate::config::{ConfigError, ConfigSource, Loader, LocatedKind, MemSource};

const DIR: &str = "/etc/fastd";

pub fn config_parse(data: &[u8]) {
    let (main, other) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], data.get(i + 1..)),
        None => (data, None),
    };
    let mut src = MemSource::new();
    src.cwd = PathBuf::from(DIR);
    src.files.insert(file("fastd.conf"), main.to_vec());
    if let Some(other) = other {
        for name in ["inc.conf", "peer.conf", "peers/p1"] {
            src.files.insert(file(name), other.to_vec());
        }
    }

    let mut loader = Loader::new(&src);
    let loaded = loader.load_file(Path::new("fastd.conf"));
    let _ = loader.take_diagnostics();
    if let Err(e) = loaded {
        check_error(&e, &src);
        return;
    }
    let (mut config, _) = loader.finish();
    let _ = config.secret_key_bytes();
    if config.verify().is_ok() {
        for g in &config.groups {
            for m in &g.methods {
                check_method_name(m);
            }
        }
        let _ = config.check_start();
    }

    // A real start then reads every peer-directory file (run time, never fatal).
    let mut loader = Loader::new(&src);
    for (group, dir) in config.peer_dirs() {
        let Ok(names) = src.read_dir(&dir) else {
            continue;
        };
        for name in names {
            if let Err(e) = loader.parse_peer_dir_file(&dir, &name, group) {
                check_error(&e, &src);
            }
        }
    }
}

fn file(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}

fn check_error(e: &ConfigError, src: &MemSource) {
    // Formatting must not panic either: this is what the user sees.
    let _ = e.to_string();
    let _ = e.detail_line();
    match e {
        ConfigError::Located(l) => {
            assert!(!l.file.is_empty(), "located error without a file: {e:?}");
            assert!(l.pos.line >= 1, "line 0 in {e:?}");
            if l.kind == LocatedKind::Io {
                return;
            }
            assert!(l.pos.col >= 1, "column 0 in {e:?}");
            // The position must lie inside the file it names (or just past its last byte).
            let Some(bytes) = src.files.get(&file(&l.file)) else {
                return;
            };
            let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
            let line = usize::try_from(l.pos.line).unwrap_or(usize::MAX);
            let Some(text) = lines.get(line - 1) else {
                panic!("{e:?}: line beyond the {} lines of the file", lines.len());
            };
            let col = usize::try_from(l.pos.col).unwrap_or(usize::MAX);
            assert!(
                col <= text.len() + 1,
                "{e:?}: column beyond the {} bytes of the line",
                text.len()
            );
        }
        // fastd reports these without a position too.
        ConfigError::CantOpen { .. }
        | ConfigError::IncludeDepth
        | ConfigError::ProtocolNotSupported(_)
        | ConfigError::CipherImplementation { .. }
        | ConfigError::MacImplementation { .. } => {}
        other => panic!("config parsing produced an error without a position: {other:?}"),
    }
}

fn check_method_name(m: &str) {
    let spec = crate::method::by_name(m)
        .unwrap_or_else(|| panic!("config accepts method `{m}' but method::by_name does not"));
    let hs = crate::handshake::methods::key_length(m);
    assert_eq!(
        hs,
        Some(spec.key_len()),
        "method `{m}': handshake key length {hs:?}, method module {}",
        spec.key_len()
    );
}
