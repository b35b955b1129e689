//! File access for the config loader.
//!
//! The unprivileged worker never opens config files itself in the real daemon: the root
//! helper reads them and hands over the bytes. Everything the loader needs from the file
//! system therefore goes through [`ConfigSource`].

use std::ffi::OsString;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// What the config loader needs from the file system.
pub trait ConfigSource {
    /// The whole content of a file. A directory must give an error (fastd reports
    /// `I/O error at <file>:1:0` for it).
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// The entry names of a directory, in `readdir` order (not sorted).
    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>>;
    /// The absolute physical path of a directory (symlinks resolved); errors like `chdir`.
    fn canonicalize_dir(&self, path: &Path) -> io::Result<PathBuf>;
    /// The process's working directory (the base for relative command-line paths).
    fn current_dir(&self) -> io::Result<PathBuf>;
    /// Standard input, for `-c -`.
    fn read_stdin(&self) -> io::Result<Vec<u8>>;
}

/// Whether `read_file` failed because the path could not be opened (fatal
/// `can't open config file`) or because reading it failed (`I/O error`).
pub fn is_read_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(EISDIR)
}

/// Linux `EISDIR`: `fopen` of a directory works in fastd, the read fails.
const EISDIR: i32 = 21;

/// [`ConfigSource`] on the real file system with `std::fs`.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsSource;

impl ConfigSource for FsSource {
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect()
    }

    fn canonicalize_dir(&self, path: &Path) -> io::Result<PathBuf> {
        let p = std::fs::canonicalize(path)?;
        if !std::fs::metadata(&p)?.is_dir() {
            return Err(io::Error::from_raw_os_error(20)); // ENOTDIR, as chdir reports it
        }
        Ok(p)
    }

    fn current_dir(&self) -> io::Result<PathBuf> {
        std::env::current_dir()
    }

    fn read_stdin(&self) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        io::stdin().lock().read_to_end(&mut v)?;
        Ok(v)
    }
}

/// An in-memory [`ConfigSource`] for tests: files by absolute path.
#[derive(Debug, Default, Clone)]
pub struct MemSource {
    /// Files by absolute path.
    pub files: std::collections::BTreeMap<PathBuf, Vec<u8>>,
    /// The working directory reported by `current_dir`.
    pub cwd: PathBuf,
    /// What `read_stdin` returns.
    pub stdin: Vec<u8>,
}

impl MemSource {
    /// An empty source with `/` as working directory.
    pub fn new() -> Self {
        MemSource {
            files: Default::default(),
            cwd: PathBuf::from("/"),
            stdin: Vec::new(),
        }
    }

    /// Adds a file (path relative to the working directory or absolute).
    pub fn with_file(mut self, path: &str, content: &str) -> Self {
        let p = self.cwd.join(path);
        self.files.insert(p, content.as_bytes().to_vec());
        self
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.files.keys().any(|f| f.starts_with(path) && f != path)
    }
}

impl ConfigSource for MemSource {
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let p = self.cwd.join(path);
        match self.files.get(&p) {
            Some(b) => Ok(b.clone()),
            None if self.is_dir(&p) => Err(io::Error::from_raw_os_error(EISDIR)),
            None => Err(io::Error::from_raw_os_error(2)),
        }
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let p = self.cwd.join(path);
        let mut names: Vec<OsString> = self
            .files
            .keys()
            .filter_map(|f| f.strip_prefix(&p).ok())
            .filter_map(|rest| rest.components().next())
            .map(|c| c.as_os_str().to_owned())
            .collect();
        names.dedup();
        if names.is_empty() {
            return Err(io::Error::from_raw_os_error(2));
        }
        Ok(names)
    }

    fn canonicalize_dir(&self, path: &Path) -> io::Result<PathBuf> {
        let p = normalize(&self.cwd.join(path));
        if p == Path::new("/") || self.is_dir(&p) {
            Ok(p)
        } else {
            Err(io::Error::from_raw_os_error(2))
        }
    }

    fn current_dir(&self) -> io::Result<PathBuf> {
        Ok(self.cwd.clone())
    }

    fn read_stdin(&self) -> io::Result<Vec<u8>> {
        Ok(self.stdin.clone())
    }
}

/// Removes `.` and `..` components lexically.
pub(crate) fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}
