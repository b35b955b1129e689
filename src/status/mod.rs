//! `fastd-privsep --status [SOCKET]`: shows a running daemon's peers by reading its status
//! socket as any client does (fastd v22's or ours; the document is the same). It starts
//! nothing and needs no privilege beyond connecting to the socket. Without SOCKET, the rest
//! of the command line is fastd's (`-c FILE`, `--status-socket`, ...) and names the socket.
//! This option is ours, so fastd's `--help` text does not show it (the man page does).

mod doc;
mod show;

use crate::log;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use worker::config::cli::{self, Parsed};

pub const OPTION: &str = "--status";
const MACHINE_READABLE: &str = "--machine-readable";

/// A daemon answers at once; one that does not within this time is reported, not awaited.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Far above a document for thousands of peers (about 600 bytes each).
const MAX_DOCUMENT: u64 = 64 << 20;

/// What `--status` was asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    /// The socket given right after `--status`.
    pub socket: Option<PathBuf>,
    /// The command line without `--status` and its socket.
    pub rest: Vec<OsString>,
}

/// `Some` if `--status` appears where fastd's parser would see an option (not as the value
/// of another option); `takes_value` says which of fastd's options take one.
pub fn request(args: &[OsString], takes_value: impl Fn(&OsStr) -> bool) -> Option<Request> {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if a == OPTION {
            let socket = args
                .get(i + 1)
                .filter(|v| !v.as_encoded_bytes().starts_with(b"-"))
                .map(PathBuf::from);
            let skip = if socket.is_some() { 2 } else { 1 };
            let mut rest = args.to_vec();
            rest.drain(i..i + skip);
            return Some(Request { socket, rest });
        }
        i += if takes_value(a) { 2 } else { 1 };
    }
    None
}

/// Where the socket is, from `--status SOCKET` or from the rest of the command line parsed
/// as fastd's (its diagnostics and errors printed as fastd prints them).
fn locate(req: &Request) -> anyhow::Result<Result<(PathBuf, bool), ExitCode>> {
    if let Some(s) = &req.socket {
        if let Some(other) = req.rest.iter().find(|a| *a != MACHINE_READABLE) {
            log::error(&format!(
                "command line error: `{OPTION} SOCKET' takes no option but `{MACHINE_READABLE}', \
                 found `{}'",
                other.to_string_lossy()
            ));
            return Ok(Err(ExitCode::FAILURE));
        }
        return Ok(Ok((
            s.clone(),
            req.rest.iter().any(|a| a == MACHINE_READABLE),
        )));
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    match cli::parse(&req.rest, &worker::config::FsSource, &cwd) {
        Parsed::Help => log::print_help().map(|()| Err(ExitCode::SUCCESS)),
        Parsed::Version => log::print_version().map(|()| Err(ExitCode::SUCCESS)),
        Parsed::Failed => Ok(Err(ExitCode::FAILURE)),
        Parsed::Run(config, modes) => match &config.status_socket {
            // fastd creates the socket after chdir("/"): a relative path is relative to `/`.
            Some(p) => Ok(Ok((Path::new("/").join(p), modes.machine_readable))),
            None => {
                log::error(&format!(
                    "no status socket configured; give it as `{OPTION} SOCKET' or in the config \
                     (`status socket \"PATH\";')"
                ));
                Ok(Err(ExitCode::FAILURE))
            }
        },
    }
}

/// Runs `--status`; the exit status is 0 once the view is printed, 1 on any error.
pub fn run(req: &Request) -> anyhow::Result<ExitCode> {
    let (socket, machine) = match locate(req)? {
        Ok(v) => v,
        Err(code) => return Ok(code),
    };
    let bytes = match fetch(&socket) {
        Ok(b) => b,
        Err(e) => {
            log::error(&format!(
                "unable to read status socket `{}': {e}",
                socket.display()
            ));
            return Ok(ExitCode::FAILURE);
        }
    };
    let status = match doc::Status::parse(&bytes) {
        Ok(s) => s,
        Err(e) => {
            log::error(&format!(
                "malformed status document from `{}': {e}",
                socket.display()
            ));
            return Ok(ExitCode::FAILURE);
        }
    };
    let text = if machine {
        show::machine_readable(&status)
    } else {
        show::table(&status)
    };
    log::print_stdout(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Connects and reads to EOF; the daemon sends one document and closes.
fn fetch(socket: &Path) -> std::io::Result<Vec<u8>> {
    let stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut bytes = Vec::new();
    stream.take(MAX_DOCUMENT).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    fn takes(a: &OsStr) -> bool {
        a == "-c" || a == "--on-up"
    }

    #[test]
    fn finds_status_where_fastd_sees_an_option() {
        let r = request(&args(&["--status", "/run/x.sock"]), takes).unwrap();
        assert_eq!(r.socket.as_deref(), Some(Path::new("/run/x.sock")));
        assert!(r.rest.is_empty());
        let r = request(
            &args(&["-c", "a.conf", "--status", "--machine-readable"]),
            takes,
        )
        .unwrap();
        assert_eq!(r.socket, None);
        assert_eq!(r.rest, args(&["-c", "a.conf", "--machine-readable"]));
        let r = request(&args(&["--status", "-c", "a.conf"]), takes).unwrap();
        assert_eq!(r.socket, None);
        assert_eq!(r.rest, args(&["-c", "a.conf"]));
        // A hook command that happens to read `--status` is a value, not our option.
        assert_eq!(
            request(&args(&["--on-up", "--status", "-c", "x"]), takes),
            None
        );
        assert_eq!(request(&args(&["-c", "--status"]), takes), None);
    }
}
