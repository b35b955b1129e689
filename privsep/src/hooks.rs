//! Hooks as fastd runs them (docs/config.md 4.1-4.3): `/bin/sh -c CMD` (argv\[0\] `sh`) in
//! the statement's directory, fds above 2 closed, the signal mask cleared, SIGPIPE,
//! SIGTTIN, SIGTTOU and SIGUSR1 ignored, the helper's environment minus NOTIFY_SOCKET
//! plus FASTD_PID and the hook's variables. Every hook runs as root (a deliberate
//! difference from fastd with `user`, see README).

use policy::{HookEnv, HookKind, Mode, PublicKey};
use std::ffi::OsString;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command};

/// Every variable fastd manages; the others pass through unchanged.
pub const HOOK_VARS: [&str; 9] = [
    "INTERFACE",
    "INTERFACE_MTU",
    "LOCAL_KEY",
    "PEER_KEY",
    "PEER_NAME",
    "LOCAL_ADDRESS",
    "LOCAL_PORT",
    "PEER_ADDRESS",
    "PEER_PORT",
];

/// What to change in the inherited environment: variables to remove, then to set.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EnvDelta {
    pub remove: Vec<&'static str>,
    pub set: Vec<(&'static str, String)>,
}

fn address(addr: &SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => return v4.to_string(),
            None => v6,
        },
        IpAddr::V4(v4) => return v4.to_string(),
    };
    match addr {
        SocketAddr::V6(a) if a.scope_id() != 0 && (ip.segments()[0] & 0xffc0) == 0xfe80 => {
            let scope = nix::net::if_::if_indextoname(a.scope_id())
                .ok()
                .and_then(|c| c.into_string().ok())
                .unwrap_or_else(|| a.scope_id().to_string());
            format!("{ip}%{scope}")
        }
        _ => ip.to_string(),
    }
}

/// The variables of one hook run (docs/config.md 4.3). In the pre-up, post-down and TAP
/// up/down columns fastd leaves unset variables alone; elsewhere it removes them.
pub fn render(
    kind: HookKind,
    mode: Mode,
    pid: u32,
    local_key: &PublicKey,
    env: &HookEnv,
) -> EnvDelta {
    let mut d = EnvDelta::default();
    d.set.push(("FASTD_PID", pid.to_string()));
    let untouched = matches!(kind, HookKind::PreUp | HookKind::PostDown)
        || (mode == Mode::Tap && matches!(kind, HookKind::Up | HookKind::Down));
    if !untouched {
        d.remove.extend(HOOK_VARS);
        d.set.push(("LOCAL_KEY", local_key.to_hex()));
    }
    if let (Some(i), Some(m)) = (&env.interface, env.interface_mtu) {
        d.set.push(("INTERFACE", i.as_str().to_owned()));
        d.set.push(("INTERFACE_MTU", m.get().to_string()));
    }
    if untouched {
        return d;
    }
    if let Some(k) = &env.peer_key {
        d.set.push(("PEER_KEY", k.to_hex()));
    }
    if let Some(n) = &env.peer_name {
        d.set.push(("PEER_NAME", n.as_str().to_owned()));
    }
    if let Some(a) = &env.local {
        d.set.push(("LOCAL_ADDRESS", address(a)));
        d.set.push(("LOCAL_PORT", a.port().to_string()));
    }
    if let Some(a) = &env.peer {
        d.set.push(("PEER_ADDRESS", address(a)));
        d.set.push(("PEER_PORT", a.port().to_string()));
    }
    d
}

/// The environment the helper started with, minus NOTIFY_SOCKET (fastd removes it).
pub fn base_env() -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(k, _)| k != "NOTIFY_SOCKET")
        .collect()
}

/// Start `/bin/sh -c command` in `cwd`. The caller waits (sync) or lets SIGCHLD reap it.
pub fn spawn(
    command: &str,
    cwd: &str,
    base: &[(OsString, OsString)],
    delta: &EnvDelta,
) -> io::Result<Child> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg0("sh").arg("-c").arg(command).env_clear();
    for (k, v) in base {
        if !delta.remove.iter().any(|r| k == r) {
            cmd.env(k, v);
        }
    }
    for (k, v) in &delta.set {
        cmd.env(k, v);
    }
    let cwd = std::ffi::CString::new(cwd).map_err(|_| io::Error::other("NUL in directory"))?;
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe calls (chdir, signal, close_range, _exit) on data prepared
    // before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::chdir(cwd.as_ptr()) != 0 {
                libc::_exit(126);
            }
            for sig in [libc::SIGPIPE, libc::SIGTTIN, libc::SIGTTOU, libc::SIGUSR1] {
                libc::signal(sig, libc::SIG_IGN);
            }
            libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int);
            Ok(())
        });
    }
    cmd.spawn()
}

/// Wait for a synchronous hook and log like fastd. Returns the exit code, None for a
/// signal.
pub fn wait(mut child: Child, kind: HookKind) -> io::Result<Option<i32>> {
    let status = child.wait()?;
    report(kind, status.code(), status.signal());
    Ok(status.code())
}

/// Logs how a hook ended. fastd words a verify verdict differently: a refusal is
/// routine (debug), a verify killed by a signal an error (docs/config.md §4.4); other hooks
/// warn either way.
pub fn report(kind: HookKind, code: Option<i32>, signal: Option<i32>) {
    let verify = kind == HookKind::Verify;
    if let Some(sig) = signal {
        if verify {
            crate::log::error(&format!("verify command exited with signal {sig}"));
        } else {
            crate::log::warn(&format!("command exited with signal {sig}"));
        }
    } else if let Some(c) = code.filter(|&c| c != 0) {
        if verify {
            crate::log::debug(&format!("verify command exited with status {c}"));
        } else {
            crate::log::warn(&format!("command exited with status {c}"));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mapped_and_plain_addresses() {
        assert_eq!(
            address(&"[::ffff:192.0.2.1]:1".parse().unwrap()),
            "192.0.2.1"
        );
        assert_eq!(address(&"[2001:db8::1]:1".parse().unwrap()), "2001:db8::1");
        assert_eq!(address(&"192.0.2.2:1".parse().unwrap()), "192.0.2.2");
    }
}
