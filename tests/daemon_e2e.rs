//! The running daemon with a session up (ours on both ends): the built-in `interface
//! address` is on the device before `on up` runs (in the config's directory), the status
//! socket serves the engine's state, and the established worker holds only what the
//! helper handed out, in its sandbox.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use support::*;

fn write_alpha(dir: &Path) {
    std::fs::write(
        dir.join("fastd.conf"),
        format!(
            "log level verbose;\nmode tun;\ninterface \"vpngateway\";\nmethod \"salsa2012+umac\";\n\
             bind 192.0.2.1:10000;\nsecret \"{ALPHA_SECRET}\";\nmtu 1448;\n\
             interface address 172.16.16.1/24;\npeer \"anyremote\" {{ key \"{AR_PUBLIC}\"; }}\n"
        ),
    )
    .unwrap();
}

fn write_anyremote(dir: &Path) {
    let settings = format!(
        "mode tun;\ninterface \"vpngateway\";\nmtu 1448;\ninterface address 172.16.16.2/24;\n\
         status socket \"{}\";\non up \"./interface-up\";\n",
        dir.join("status.sock").display()
    );
    let conf = client_conf(&settings, "alpha", "192.0.2.1:10000");
    std::fs::write(dir.join("fastd.conf"), conf).unwrap();
    write_exec(
        &dir.join("interface-up"),
        "#!/bin/sh\n{ pwd; ip -4 -o addr show dev \"$INTERFACE\"; ip -o link show dev \"$INTERFACE\"; } > up.seen\n",
    );
}

#[test]
fn address_before_on_up_status_socket_and_descriptors_while_established() {
    if !ready(&["ping", "socat"]) {
        return;
    }
    let (a, b, da, db, _dirs) = sides("alpha", "anyremote");
    write_alpha(&da);
    write_anyremote(&db);
    let alpha = Daemon::start(&a, OURS, &da.join("fastd.conf"));
    let anyremote = Daemon::start(&b, OURS, &db.join("fastd.conf"));
    let logs = || format!("alpha:\n{}\nanyremote:\n{}", alpha.log(), anyremote.log());
    assert!(b.ping_until("172.16.16.1", 50), "no tunnel; {}", logs());
    assert!(a.ping("172.16.16.2"), "{}", logs());

    // `on up` ran in the config's directory and already saw the address and the link up.
    let seen = std::fs::read_to_string(db.join("up.seen")).unwrap();
    let mut lines = seen.lines();
    assert_eq!(lines.next(), Some(db.to_str().unwrap()), "{seen}");
    assert!(seen.contains("inet 172.16.16.2/24"), "{seen}");
    assert!(seen.contains(",UP"), "{seen}");

    // The status socket: the engine's view, fastd's document. 32 clients at once each get
    // all of it, with exactly fastd's keys and value types (the recorded document of the same
    // setup), and nothing counted as dropped: fastd frees a packet sent before the session
    // (the device's first IPv6 packets) uncounted.
    let sock = db.join("status.sock");
    let fastd = status_doc::recorded("tun-named-peer-established.json");
    let docs = status_doc::fetch_at_once(&b, &sock, 32);
    for doc in &docs {
        status_doc::assert_same_shape(doc, &fastd);
        assert!(doc.contains(&format!("\"{ALPHA_PUBLIC}\"")), "{doc}");
        assert!(doc.contains("\"name\": \"alpha\""), "{doc}");
        assert!(doc.contains("\"method\": \"salsa2012+umac\""), "{doc}");
        assert!(doc.contains("\"interface\": \"vpngateway\""), "{doc}");
        let zero = "\"tx_dropped\": { \"packets\": 0, \"bytes\": 0 }";
        assert_eq!(doc.matches(zero).count(), 2, "{doc}");
    }

    // The established worker: sandboxed, and only the IPC socket, its per-connection UDP
    // socket, the status socket and the device (plus the loops' own epoll instances).
    let w = anyremote.worker().unwrap();
    // `log level verbose` shows the worker's sandbox report.
    assert!(
        anyremote
            .log()
            .lines()
            .any(|l| l.contains("Verbose: sandbox entered: uid ") && l.contains("no capabilities")),
        "{}",
        logs()
    );
    // Both processes answer to `pgrep fastd`; `ps` shows which one is the worker.
    let comm = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm(w), "fastd-worker\n");
    assert_eq!(comm(anyremote.pid()), "fastd-privsep\n");
    let cmdline = std::fs::read(format!("/proc/{w}/cmdline")).unwrap();
    assert_eq!(cmdline, b"fastd-privsep: worker\0--privsep-worker-role\0");
    for f in ["Uid", "Gid"] {
        assert!(!status_field(w, f).split(' ').any(|id| id == "0"), "{f}");
    }
    for f in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(w, f), "0000000000000000", "{f}");
    }
    assert_eq!(status_field(w, "NoNewPrivs"), "1");
    assert_eq!(status_field(w, "Seccomp"), "2");
    let fds: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{w}/fd"))
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().parse().unwrap(),
                std::fs::read_link(e.path()).unwrap().display().to_string(),
            )
        })
        .filter(|(fd, _)| *fd > 2)
        .collect();
    let count = |p: &dyn Fn(&str) -> bool| fds.iter().filter(|(_, t)| p(t)).count();
    let sockets = count(&|t| t.starts_with("socket:"));
    let tuns = count(&|t| t == "/dev/net/tun");
    let polls = count(&|t| t == "anon_inode:[eventpoll]");
    assert_eq!((sockets, tuns), (3, 1), "{fds:?}");
    assert!(polls <= 2 && sockets + tuns + polls == fds.len(), "{fds:?}");

    // SIGUSR1 is ignored and SIGUSR2 resets every connection (docs/config.md §6.2): the
    // helper lives on, the session ends and comes back.
    alpha.signal(libc::SIGUSR1);
    alpha.signal(libc::SIGUSR2);
    alpha.wait_for("the reset", || {
        alpha.log().contains("triggered reset of all connections")
            && alpha
                .log()
                .contains("connection with <anyremote> disestablished.")
    });
    assert!(
        b.ping_until("172.16.16.1", 50),
        "no tunnel after the reset; {}",
        logs()
    );
    assert_eq!(
        alpha
            .log()
            .matches("connection with <anyremote> established.")
            .count(),
        2,
        "{}",
        logs()
    );
    assert!(alpha.worker().is_some(), "{}", logs());

    let (status, log) = anyremote.stop();
    assert_stopped_by(status, libc::SIGTERM, &log);
    assert!(!sock.exists(), "status socket left behind");
    let (status, log) = alpha.stop();
    assert_stopped_by(status, libc::SIGTERM, &log);
    assert!(!a.has_link("vpngateway") && !b.has_link("vpngateway"));
}

/// `/etc/netns/<ns>/hosts`, which `ip netns exec` mounts over /etc/hosts; removed on drop.
struct NetnsHosts(std::path::PathBuf);

impl NetnsHosts {
    fn new(ns: &Netns, text: &str) -> Self {
        let dir = Path::new("/etc/netns").join(&ns.0);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hosts"), text).unwrap();
        NetnsHosts(dir)
    }
}

impl Drop for NetnsHosts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn hostname_remote_is_resolved_before_the_sandbox() {
    if !ready(&["ping"]) {
        return;
    }
    let (a, b, da, db, _dirs) = sides("alpha", "anyremote");
    let _hosts = NetnsHosts::new(&b, "127.0.0.1 localhost\n192.0.2.1 alpha.test\n");
    write_alpha(&da);
    let settings =
        "mode tun;\ninterface \"vpngateway\";\nmtu 1448;\ninterface address 172.16.16.2/24;\n";
    let conf = client_conf(settings, "alpha", "\"alpha.test\" port 10000");
    std::fs::write(db.join("fastd.conf"), conf).unwrap();
    let alpha = Daemon::start(&a, OURS, &da.join("fastd.conf"));
    let anyremote = Daemon::start(&b, OURS, &db.join("fastd.conf"));
    assert!(
        b.ping_until("172.16.16.1", 50),
        "alpha:\n{}\nanyremote:\n{}",
        alpha.log(),
        anyremote.log()
    );
    assert!(
        anyremote.log().contains("192.0.2.1:10000"),
        "{}",
        anyremote.log()
    );
}
