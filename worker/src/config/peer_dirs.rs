//! Reading the `include peers from` directories (docs/config.md §6.3), at start and on SIGHUP.
//! Nothing here is fatal: a bad file is logged and skipped, as fastd does.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use super::error::Diagnostic;
use super::loader::Loader;
use super::source::ConfigSource;
use super::types::{Config, LogLevel, PeerConfig};

fn diag(level: LogLevel, message: String) -> Diagnostic {
    Diagnostic { level, message }
}

fn display(name: &Option<Vec<u8>>) -> String {
    name.as_deref().map_or_else(
        || "(null)".to_owned(),
        |n| String::from_utf8_lossy(n).into_owned(),
    )
}

/// Replaces the peers `config` read from peer directories earlier (the last
/// `config.dir_peers` of `config.peers`) by what the directories hold now, read through
/// `source`. Returns fastd's log lines for what was skipped.
///
/// A directory the system cannot open loses its peers, as in fastd. A listing that fails
/// without a system error (the helper refused it or could not answer) is no statement
/// about the directory: then `config` stays as it was and the lines come back as `Err`,
/// so a reload keeps the running peers and their sessions.
pub fn load_peer_dirs(
    config: &mut Config,
    source: &dyn ConfigSource,
) -> Result<Vec<Diagnostic>, Vec<Diagnostic>> {
    let statics = config.peers.len().saturating_sub(config.dir_peers);
    let mut found: Vec<PeerConfig> = Vec::new();
    let mut out = Vec::new();
    for (group, dir) in config.peer_dirs() {
        let names: Vec<OsString> = match source.read_dir(&dir) {
            Ok(names) => names,
            Err(e) if e.raw_os_error().is_none() => {
                out.push(diag(
                    LogLevel::Error,
                    format!(
                        "reading peer directory `{}' failed: {e}; keeping the configured peers",
                        dir.display()
                    ),
                ));
                return Err(out);
            }
            Err(e) => {
                out.push(diag(
                    LogLevel::Error,
                    format!("opening peer directory `{}' failed: {e}", dir.display()),
                ));
                continue;
            }
        };
        for name in names {
            let bytes = name.as_bytes();
            if bytes.first() == Some(&b'.') {
                continue;
            }
            if bytes.last() == Some(&b'~') {
                out.push(diag(
                    LogLevel::Verbose,
                    format!(
                        "ignoring file `{}' as it seems to be a backup file",
                        name.to_string_lossy()
                    ),
                ));
                continue;
            }
            let mut loader = Loader::new(source);
            let parsed = loader.parse_peer_dir_file(&dir, &name, group);
            out.extend(loader.take_diagnostics());
            match parsed {
                Ok(Some(peer)) => found.push(peer),
                Ok(None) => {}
                Err(e) => out.push(diag(LogLevel::Error, e.to_string())),
            }
        }
    }
    config.peers.truncate(statics);
    // A key used twice disables both peers (docs/config.md §1.9), also against the main config;
    // the warning names the first directory peer with that key, once.
    let statics: HashSet<[u8; 32]> = config.peers.iter().map(|p| p.key).collect();
    let mut uses: HashMap<[u8; 32], usize> = HashMap::with_capacity(found.len());
    for p in &found {
        *uses.entry(p.key).or_default() += 1;
    }
    let mut warned: HashSet<[u8; 32]> = HashSet::new();
    for p in &found {
        let clash = statics.contains(&p.key) || uses.get(&p.key).is_some_and(|&n| n > 1);
        if clash && warned.insert(p.key) {
            out.push(diag(
                LogLevel::Warn,
                format!(
                    "duplicate key used by peer {}, disabling it",
                    display(&p.name)
                ),
            ));
        }
    }
    found.retain(|p| !statics.contains(&p.key) && uses.get(&p.key) == Some(&1));
    config.dir_peers = found.len();
    config.peers.extend(found);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::MemSource;
    use std::path::Path;

    const K1: &str = "8cb5e8d70d34f52716b6c4de518af2edfd6794e68ef1b3f0608cf05dd6a2ef42";
    const K2: &str = "2598c5d7e72f171731658ce35734ff7599e1840367422e1a9c5943c327ab5ea9";

    fn config(src: &MemSource) -> Config {
        let mut l = Loader::new(src);
        l.load_file(Path::new("/etc/fastd/fastd.conf")).unwrap();
        l.finish().0
    }

    #[test]
    fn reads_files_skips_dotfiles_backups_and_broken_ones_and_rereads() {
        let mut src = MemSource::new();
        src = src.with_file(
            "/etc/fastd/fastd.conf",
            "secret \"5035de5b4ea448b74e9a373765207095057a9485fd9dca5fadb9c1b86347bd75\";\n\
             include peers from \"peers\";\n",
        );
        src = src.with_file("/etc/fastd/peers/alpha", &format!("key \"{K1}\";\n"));
        src = src.with_file("/etc/fastd/peers/.hidden", &format!("key \"{K2}\";\n"));
        src = src.with_file("/etc/fastd/peers/beta~", &format!("key \"{K2}\";\n"));
        src = src.with_file("/etc/fastd/peers/broken", "this is not a peer file\n");
        let mut c = config(&src);
        let diags = load_peer_dirs(&mut c, &src).unwrap();
        let names: Vec<_> = c.peers.iter().map(|p| display(&p.name)).collect();
        assert_eq!(names, ["alpha"]);
        assert_eq!(c.dir_peers, 1);
        assert!(
            diags.iter().any(|d| d.message.contains("backup file")),
            "{diags:?}"
        );
        assert!(
            diags.iter().any(|d| d.level == LogLevel::Error),
            "{diags:?}"
        );

        // SIGHUP: a new file appears, the old one stays; no peer is listed twice.
        src = src.with_file("/etc/fastd/peers/gamma", &format!("key \"{K2}\";\n"));
        load_peer_dirs(&mut c, &src).unwrap();
        let mut names: Vec<_> = c.peers.iter().map(|p| display(&p.name)).collect();
        names.sort();
        assert_eq!(names, ["alpha", "gamma"]);
        assert_eq!(c.dir_peers, 2);
    }

    #[test]
    fn a_duplicate_key_disables_the_directory_peers() {
        let mut src = MemSource::new();
        src = src.with_file(
            "/etc/fastd/fastd.conf",
            &format!(
                "secret \"5035de5b4ea448b74e9a373765207095057a9485fd9dca5fadb9c1b86347bd75\";\n\
                 peer \"static\" {{ key \"{K1}\"; }}\ninclude peers from \"peers\";\n"
            ),
        );
        src = src.with_file("/etc/fastd/peers/same", &format!("key \"{K1}\";\n"));
        let mut c = config(&src);
        let diags = load_peer_dirs(&mut c, &src).unwrap();
        assert_eq!(c.peers.len(), 1);
        assert_eq!(c.dir_peers, 0);
        assert!(diags.iter().any(|d| d.message.contains("duplicate key")));
    }
}
