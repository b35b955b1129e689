#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The privilege split end to end, with the real binary, inside a network namespace
//! made for each test (nothing touches the host). Needs root: fails under CI=true when
//! not root, skips otherwise.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

const IFACE: &str = "fpstest0";

/// Starts the helper (it starts the worker) and waits until the `up` hook ran.
fn start(ns: &Netns, dir: &Path) -> Daemon {
    let _ = std::fs::remove_file(dir.join("up.done"));
    let d = Daemon::start(ns, OURS, &dir.join("fastd.conf"));
    d.wait_for("the up hook", || dir.join("up.done").exists());
    d
}

fn kill(pid: i32, sig: i32) {
    // SAFETY: kill on a pid this test started.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

/// The tutorial's alpha in TUN mode, with hooks that log to `hooks.log` in the config's
/// directory (relative paths: hooks run there, as in fastd).
fn setup(dir: &Path) {
    let conf = format!(
        r#"log to stderr level debug;
mode tun;
interface "{IFACE}";
method "salsa2012+umac";
bind 127.0.0.1:10000;
secret "{ALPHA_SECRET}";
mtu 1448;
status socket "{status}";
on pre-up "echo pre-up >> hooks.log";
on up "./interface-up";
on down "echo down $INTERFACE $PEER_NAME >> hooks.log";
on post-down "echo post-down >> hooks.log";
peer "anyremote" {{ key "{AR_PUBLIC}"; }}
"#,
        status = dir.join("status.sock").display()
    );
    std::fs::write(dir.join("fastd.conf"), conf).unwrap();
    let up = "#!/bin/sh\nip addr add 172.16.16.1/24 dev \"$INTERFACE\"\n\
              echo \"up $INTERFACE $INTERFACE_MTU $PEER_NAME $(id -u)\" >> hooks.log\ntouch up.done\n";
    std::fs::write(dir.join("interface-up"), up).unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(dir.join("interface-up"))
        .status()
        .unwrap();
}

fn hooks_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("hooks.log")).unwrap_or_default()
}

#[test]
fn worker_is_sandboxed_holds_only_its_descriptors_and_stops_in_order() {
    if !ready(&[]) {
        return;
    }
    let ns = Netns::new("sandbox");
    let (_keep, dir) = tempdir();
    setup(&dir);
    let mut d = start(&ns, &dir);
    let w = d.worker().expect("no worker");

    // Without `user`: a dedicated identity, neither root nor the shared `nobody`.
    for f in ["Uid", "Gid"] {
        assert!(
            !status_field(w, f)
                .split(' ')
                .any(|id| id == "0" || id == "65534"),
            "{f}: {}",
            status_field(w, f)
        );
    }
    for f in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(w, f), "0000000000000000", "{f}");
    }
    assert_eq!(status_field(w, "NoNewPrivs"), "1");
    assert_eq!(status_field(w, "Seccomp"), "2");

    // fd 0-2 are stdio; from 3 on only the IPC socket, the UDP socket, the status
    // socket and the device.
    let mut targets: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{w}/fd"))
        .unwrap()
        .flatten()
        .map(|e| {
            let fd: i32 = e.file_name().to_string_lossy().parse().unwrap();
            (
                fd,
                std::fs::read_link(e.path()).unwrap().display().to_string(),
            )
        })
        .filter(|(fd, _)| *fd > 2)
        .collect();
    targets.sort();
    // The event loops' own epoll instances (the engine's, the status socket's mio poll)
    // hold no resource the helper handed out.
    let polls = targets
        .iter()
        .filter(|(_, t)| t == "anon_inode:[eventpoll]")
        .count();
    assert!(polls <= 2, "{targets:?}");
    targets.retain(|(_, t)| t != "anon_inode:[eventpoll]");
    let sockets = targets
        .iter()
        .filter(|(_, t)| t.starts_with("socket:"))
        .count();
    let tuns = targets.iter().filter(|(_, t)| t == "/dev/net/tun").count();
    assert_eq!((sockets, tuns, targets.len()), (3, 1, 4), "{targets:?}");
    assert!(
        targets[0].0 == 3 && targets[0].1.starts_with("socket:"),
        "{targets:?}"
    );

    // The tutorial's up hook ran as root, in the config's directory, and configured the
    // address on the interface the helper created with the configured MTU.
    let (_, link) = ns.exec(&["ip", "link", "show", IFACE]);
    assert!(link.contains("mtu 1448") && link.contains(",UP"), "{link}");
    let (_, addr) = ns.exec(&["ip", "-4", "addr", "show", IFACE]);
    assert!(addr.contains("172.16.16.1/24"), "{addr}");
    // Without `user` the status socket and its lock are root's, as fastd's (the worker only
    // holds the listening descriptor), and only the owner may connect.
    for f in ["status.sock", "status.sock.lock"] {
        let meta = std::fs::symlink_metadata(dir.join(f)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{f}");
    }
    assert_eq!(
        std::fs::symlink_metadata(dir.join("status.sock.lock"))
            .unwrap()
            .mode()
            & 0o777,
        0o600
    );

    // SIGHUP reaches the worker as a Reload notice; the worker logs fastd's line, once.
    d.signal(libc::SIGHUP);
    d.wait_for("the reload notice", || {
        d.log().matches("reconfigure triggered").count() == 1
    });

    d.signal(libc::SIGTERM);
    let (status, log) = d.reap();
    assert_stopped_by(status, libc::SIGTERM, &log);
    assert_eq!(log.matches("reconfigure triggered").count(), 1, "{log}");
    assert_eq!(
        hooks_log(&dir),
        format!("pre-up\nup {IFACE} 1448 anyremote 0\ndown {IFACE} anyremote\npost-down\n"),
        "{log}"
    );
    assert!(!ns.has_link(IFACE), "device left behind");
    assert!(
        !dir.join("status.sock").exists(),
        "status socket left behind"
    );
}

#[test]
fn killing_the_worker_runs_the_down_hooks_removes_the_device_and_fails() {
    if !ready(&[]) {
        return;
    }
    let ns = Netns::new("killworker");
    let (_keep, dir) = tempdir();
    setup(&dir);
    let mut d = start(&ns, &dir);
    assert!(ns.has_link(IFACE));
    kill(d.worker().expect("no worker"), libc::SIGKILL);
    let (status, log) = d.reap();
    assert_ne!(status.code(), Some(0), "{log}");
    assert!(log.contains("the worker exited unexpectedly"), "{log}");
    let hooks = hooks_log(&dir);
    assert!(
        hooks.ends_with(&format!("down {IFACE} anyremote\npost-down\n")),
        "{hooks}"
    );
    assert!(!ns.has_link(IFACE), "device left behind");

    // A restart finds nothing stale.
    std::fs::remove_file(dir.join("hooks.log")).unwrap();
    let mut d = start(&ns, &dir);
    assert!(ns.has_link(IFACE));
    d.signal(libc::SIGINT);
    let (status, log) = d.reap();
    assert_stopped_by(status, libc::SIGINT, &log);
    assert!(!ns.has_link(IFACE));
}

#[test]
fn killing_the_helper_ends_the_worker_and_a_restart_is_clean() {
    if !ready(&[]) {
        return;
    }
    let ns = Netns::new("killhelper");
    let (_keep, dir) = tempdir();
    setup(&dir);
    let mut d = start(&ns, &dir);
    let w = d.worker().expect("no worker");
    d.signal(libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(1);
    // The worker is our grandchild; once it exits it is reaped by init, so its /proc
    // entry goes away (or turns into a zombie of the dead helper's parent).
    let gone = || pid_gone(w);
    while !gone() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        gone(),
        "worker still running a second after the helper died"
    );
    let (_status, _log) = d.reap();
    // Both descriptors of the non-persistent device are closed now: it is gone.
    assert!(!ns.has_link(IFACE), "device left behind");

    let mut d = start(&ns, &dir);
    let (_, links) = ns.exec(&["ip", "link"]);
    assert_eq!(links.matches(IFACE).count(), 1, "{links}");
    d.signal(libc::SIGTERM);
    let (status, log) = d.reap();
    assert_stopped_by(status, libc::SIGTERM, &log);
    assert!(log.contains("removing old status socket"), "{log}");
    assert!(!ns.has_link(IFACE));
}

/// `setup`'s config with a `user` line and the status socket at `sock`.
fn with_user_and_socket(dir: &Path, user: &str, sock: &Path) {
    setup(dir);
    let conf = std::fs::read_to_string(dir.join("fastd.conf")).unwrap();
    let user = match user {
        "" => String::new(),
        u => format!("user \"{u}\";\n"),
    };
    let conf = conf.replace(
        &format!("status socket \"{}\";", dir.join("status.sock").display()),
        &format!("{user}status socket \"{}\";", sock.display()),
    );
    std::fs::write(dir.join("fastd.conf"), conf).unwrap();
}

#[test]
fn with_user_the_status_socket_is_the_users_and_a_failed_start_leaves_no_files() {
    if !ready(&[]) {
        return;
    }
    let ns = Netns::new("sockowner");
    let (_keep, dir) = tempdir();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // As fastd, the socket is created as `user`, so in a directory that user may write.
    let run = dir.join("run");
    std::fs::create_dir(&run).unwrap();
    std::os::unix::fs::chown(&run, Some(65534), Some(65534)).unwrap();
    with_user_and_socket(&dir, "nobody", &run.join("status.sock"));
    let d = start(&ns, &dir);
    let w = d.worker().expect("no worker");
    assert_eq!(status_field(w, "Uid"), "65534 65534 65534 65534");
    assert_eq!(status_field(w, "CapEff"), "0000000000000000");
    for f in ["status.sock", "status.sock.lock"] {
        let meta = std::fs::symlink_metadata(run.join(f)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "{f}");
    }
    let (status, log) = d.stop();
    assert_stopped_by(status, libc::SIGTERM, &log);
    assert!(!run.join("status.sock").exists(), "{log}");

    // A start that cannot create its socket fails before anything else and leaves no
    // files: a directory `nobody` may not write, then a path too long for a socket
    // (the lock file fits, the socket does not).
    let closed = dir.join("closed");
    std::fs::create_dir(&closed).unwrap();
    let long = dir.join("l".repeat(110));
    std::fs::create_dir(&long).unwrap();
    for (user, sockdir) in [("nobody", &closed), ("", &long)] {
        with_user_and_socket(&dir, user, &sockdir.join("status.sock"));
        let _ = std::fs::remove_file(dir.join("hooks.log"));
        let mut d = Daemon::start(&ns, OURS, &dir.join("fastd.conf"));
        let (status, log) = d.reap();
        assert_eq!(status.code(), Some(1), "{log}");
        assert!(log.contains("unable to create status socket"), "{log}");
        let left: Vec<_> = std::fs::read_dir(sockdir).unwrap().flatten().collect();
        assert!(left.is_empty(), "{user}: {left:?}\n{log}");
        assert!(!hooks_log(&dir).contains("pre-up"), "{log}");
        assert!(!ns.has_link(IFACE));
    }
}
