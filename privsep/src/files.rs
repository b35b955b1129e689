//! Config bytes for the worker. The helper reads, it never parses.

use policy::{AbsPath, DirEntry, EntryKind, MAX_FILE, MAX_FILE_TOTAL};
use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;

/// Most entries a directory may hold (the helper reads all names for every piece of a
/// listing; 10,000 peer files are what large gateways have).
const MAX_ENTRIES: usize = 1 << 20;

/// Room for the entries of one reply: a message minus the framing.
const DIR_BUDGET: usize = MAX_FILE;

/// A piece of a file: up to [`MAX_FILE`] bytes from `offset`, and the file's size.
#[derive(Debug, PartialEq, Eq)]
pub struct FilePiece {
    pub bytes: Vec<u8>,
    pub size: u64,
}

impl FilePiece {
    /// Whether this piece reaches the end of the file.
    pub fn is_last(&self, offset: u64) -> bool {
        offset.saturating_add(self.bytes.len() as u64) >= self.size
    }
}

/// A regular file of at most MAX_FILE_TOTAL bytes, the piece from `offset`. After
/// sealing, `nofollow` is set so that a symlink planted in a peer directory cannot point
/// the helper at another file.
pub fn read_file(path: &str, offset: u64, nofollow: bool) -> io::Result<FilePiece> {
    let mut flags = libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_FILE_TOTAL as u64 {
        return Err(io::Error::other("file too large"));
    }
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))?;
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE as u64).read_to_end(&mut bytes)?;
    // A file that grew since the stat is read up to this piece; the size tells the worker
    // whether more follows.
    let size = meta.len().max(offset.saturating_add(bytes.len() as u64));
    Ok(FilePiece { bytes, size })
}

/// Bytes an entry takes in an encoded reply (length prefix, name, kind).
fn encoded_len(e: &DirEntry) -> usize {
    8 + e.name.len() + 4
}

/// The entries whose names sort after `after` (all with None), with their `stat` kind
/// (following symlinks, as fastd), as many as fit one reply; `true` when that was all.
/// Sorting lets the worker go on from a name: entries that stay in the directory while
/// it is listed are seen exactly once, also when others come and go meanwhile.
pub fn read_dir(path: &str, after: Option<&str>) -> io::Result<(Vec<DirEntry>, bool)> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        // fastd would take a name that is not UTF-8 too; our peer names are UTF-8.
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if after.is_some_and(|a| name.as_str() <= a) {
            continue;
        }
        if names.len() >= MAX_ENTRIES {
            return Err(io::Error::other("too many directory entries"));
        }
        names.push(name);
    }
    names.sort_unstable();
    let dir = std::path::Path::new(path);
    let mut entries = Vec::new();
    let mut used = 0;
    for name in names {
        let kind = match std::fs::metadata(dir.join(&name)) {
            Ok(m) if m.is_file() => EntryKind::File,
            Ok(m) if m.is_dir() => EntryKind::Dir,
            Ok(_) => EntryKind::Other,
            Err(_) => EntryKind::Unreadable,
        };
        let entry = DirEntry { name, kind };
        used += encoded_len(&entry);
        if used > DIR_BUDGET {
            return Ok((entries, false));
        }
        entries.push(entry);
    }
    Ok((entries, true))
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use policy::{encode, FromHelper, Response};

    #[test]
    fn a_large_listing_comes_in_pieces_that_each_encode() {
        let dir = tempfile::tempdir().unwrap();
        let long = "n".repeat(200);
        for i in 0..1000 {
            std::fs::write(dir.path().join(format!("{long}{i:04}")), b"x").unwrap();
        }
        std::fs::write(dir.path().join("a b"), b"x").unwrap();
        let path = dir.path().to_str().unwrap();
        let mut after: Option<String> = None;
        let mut seen = Vec::new();
        for _ in 0..100 {
            let (entries, last) = read_dir(path, after.as_deref()).unwrap();
            assert!(!entries.is_empty());
            let reply = if last {
                Response::Dir {
                    entries: entries.clone(),
                }
            } else {
                Response::DirPart {
                    entries: entries.clone(),
                }
            };
            assert!(encode(&reply).is_ok());
            after = entries.last().map(|e| e.name.clone());
            seen.extend(entries.into_iter().map(|e| e.name));
            if last {
                break;
            }
        }
        assert_eq!(seen.len(), 1001);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_large_file_comes_in_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let path = path.to_str().unwrap();
        let mut got = Vec::new();
        loop {
            let piece = read_file(path, got.len() as u64, true).unwrap();
            let reply = Response::FilePart {
                bytes: piece.bytes.clone(),
                size: piece.size,
            };
            assert!(encode(&FromHelper::Reply(reply)).is_ok());
            let last = piece.is_last(got.len() as u64);
            got.extend(piece.bytes);
            if last {
                break;
            }
        }
        assert_eq!(got, content);
    }
}
