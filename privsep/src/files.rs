//! Config bytes for the worker. The helper reads, it never parses.

use policy::{AbsPath, DirEntry, EntryKind, MAX_FILE};
use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;

/// Most entries a directory listing may carry (the reply must fit one message).
const MAX_ENTRIES: usize = 512;

/// A regular file of at most MAX_FILE bytes. After sealing, `nofollow` is set so that
/// a symlink planted in a peer directory cannot point the helper at another file.
pub fn read_file(path: &str, nofollow: bool) -> io::Result<Vec<u8>> {
    let mut flags = libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > MAX_FILE {
        return Err(io::Error::other("file too large"));
    }
    Ok(bytes)
}

/// Entries in `readdir` order with their `stat` kind (following symlinks, as fastd).
pub fn read_dir(path: &str) -> io::Result<Vec<DirEntry>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if entries.len() >= MAX_ENTRIES {
            return Err(io::Error::other("too many directory entries"));
        }
        let kind = match std::fs::metadata(entry.path()) {
            Ok(m) if m.is_file() => EntryKind::File,
            Ok(m) if m.is_dir() => EntryKind::Dir,
            Ok(_) => EntryKind::Other,
            Err(_) => EntryKind::Unreadable,
        };
        entries.push(DirEntry { name, kind });
    }
    Ok(entries)
}

/// The physical path of a directory; errors like `chdir` (ENOENT, ENOTDIR, ...).
pub fn resolve_dir(path: &str) -> io::Result<AbsPath> {
    let p = std::fs::canonicalize(path)?;
    if !std::fs::metadata(&p)?.is_dir() {
        return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
    }
    p.to_str()
        .and_then(|s| AbsPath::new(s).ok())
        .ok_or_else(|| io::Error::other("unusable path"))
}
