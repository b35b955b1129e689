//! The one gate of tests that need root, namespaces or a tool: under `CI=true` a missing
//! prerequisite fails the test (CI runs them as root and must not skip); elsewhere it skips.

use std::process::{Command, Stdio};

/// Whether this process runs as root and every tool in `tools` (a name on `PATH` or an
/// absolute path) is there. Panics under `CI=true` instead of returning false.
pub fn ready(tools: &[&str]) -> bool {
    needs(true, tools)
}

/// Whether every tool in `tools` is there (root or not). Panics under `CI=true` instead of
/// returning false.
pub fn have_tools(tools: &[&str]) -> bool {
    needs(false, tools)
}

fn needs(root: bool, tools: &[&str]) -> bool {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    // SAFETY: geteuid has no preconditions.
    if root && unsafe { libc::geteuid() } != 0 {
        assert!(
            !ci,
            "CI runs the end-to-end tests as root; they must not skip"
        );
        eprintln!("skipped: needs root");
        return false;
    }
    for t in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !found {
            assert!(!ci, "{t} is missing (dist/deps.sh installs it)");
            eprintln!("skipped: {t} is missing");
            return false;
        }
    }
    true
}

/// The interop tests' gate: root, `ip` and the real fastd.
pub fn prerequisites() -> bool {
    ready(&["ip", crate::FASTD])
}
