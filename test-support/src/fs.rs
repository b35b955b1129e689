//! Temporary directories and files for configs, keys, hooks and logs.

use std::fs;
use std::path::{Path, PathBuf};

use crate::netns::{sh_ok, unique};

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique(tag));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A temporary directory with its physical path (hooks see that as their cwd).
pub fn tempdir() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = fs::canonicalize(d.path()).unwrap();
    (d, p)
}

/// Writes an executable script.
pub fn write_exec(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    sh_ok("chmod", &["755", path.to_str().unwrap()]);
}
