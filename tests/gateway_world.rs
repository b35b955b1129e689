//! The gateway statements in the tutorial's world (dist/demo.sh's topology), with the real binary:
//!
//! ```text
//! anyremote 192.0.2.2 -- router -- 198.51.100.1 alpha 203.0.113.1 -- inet 203.0.113.10
//!        tunnel 172.16.16.2 <-> 172.16.16.1
//! ```
//!
//! inet knows no route back to 172.16.16.0/24 or 192.0.2.0/24: an answer only comes
//! back when alpha masquerades, and the echo server tells which source it saw.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

struct World {
    ar: Netns,
    al: Netns,
    // Kept for their Drop: the router and the outside host.
    _rt: Netns,
    _inet: Netns,
    echo: Daemon,
    /// anyremote's `ip route` before any daemon ran.
    before: String,
}

fn world() -> World {
    let ar = Netns::new("anyremote");
    let rt = Netns::new("router");
    let al = Netns::new("alpha");
    let inet = Netns::new("inet");
    link(&ar, "ar0", "192.0.2.2/24", &rt, "rt-ar", "192.0.2.1/24");
    link(
        &al,
        "al0",
        "198.51.100.1/24",
        &rt,
        "rt-al",
        "198.51.100.254/24",
    );
    link(
        &al,
        "uplink",
        "203.0.113.1/24",
        &inet,
        "in0",
        "203.0.113.10/24",
    );
    rt.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    ar.run(&["ip", "route", "add", "default", "via", "192.0.2.1"]);
    al.run(&[
        "ip",
        "route",
        "add",
        "192.0.2.0/24",
        "via",
        "198.51.100.254",
    ]);
    let mut echo = inet.command("socat");
    echo.args(["-T", "5", "TCP-LISTEN:7007,fork,reuseaddr"])
        .arg("SYSTEM:echo \"peer $SOCAT_PEERADDR\"");
    let before = ar.routes();
    World {
        ar,
        al,
        _rt: rt,
        _inet: inet,
        echo: Daemon::spawn(echo),
        before,
    }
}

impl World {
    /// anyremote reaches inet through the tunnel, and inet sees alpha's uplink address.
    fn assert_through_tunnel(&self, logs: &dyn Fn() -> String) {
        assert!(
            self.ar.ping_until("203.0.113.10", 50),
            "inet unreachable; {}",
            logs()
        );
        let (_, route) = self.ar.exec(&["ip", "route", "get", "203.0.113.10"]);
        assert!(route.contains("dev vpngateway"), "{route}; {}", logs());
        let mut seen = String::new();
        for _ in 0..20 {
            let (ok, out) = self
                .ar
                .exec(&["socat", "-T", "5", "-", "TCP:203.0.113.10:7007"]);
            if ok && out.contains("peer") {
                seen = out;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(seen.trim(), "peer 203.0.113.1", "{}", logs());
        assert!(self.echo.pid() > 0);
    }

    /// anyremote's routes are exactly those before any daemon ran (bounded wait: an
    /// asynchronous `on disestablish` script may still be running).
    fn assert_routes_restored(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = self.ar.routes();
            if now == self.before {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "routes before:\n{}\nafter:\n{now}",
                self.before
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

struct Confs {
    _dir: tempfile::TempDir,
    alpha: PathBuf,
    anyremote: PathBuf,
}

fn count_lines(text: &str, prefix: &str) -> usize {
    text.lines().filter(|l| l.starts_with(prefix)).count()
}

const ALPHA_BASE: &str = "log level verbose;\nmode tun;\ninterface \"vpngateway\";\n\
    method \"salsa2012+umac\";\nmethod \"null\";\nbind 198.51.100.1:10000;\nmtu 1448;\n";
const AR_BASE: &str = "log level verbose;\nmode tun;\ninterface \"vpngateway\";\n\
    method \"salsa2012+umac\";\nmethod \"null\";\nmtu 1448;\n";

/// alpha and anyremote with fastd-privsep's built-ins and no hook scripts.
fn builtin_confs() -> Confs {
    let (dir, p) = tempdir();
    let alpha = p.join("alpha");
    let anyremote = p.join("anyremote");
    std::fs::create_dir_all(alpha.join("peers")).unwrap();
    std::fs::create_dir_all(anyremote.join("peers")).unwrap();
    std::fs::write(
        alpha.join("fastd.conf"),
        format!(
            "{ALPHA_BASE}secret \"{ALPHA_SECRET}\";\ninterface address 172.16.16.1/24;\n\
             masquerade from 172.16.16.0/24 out \"uplink\";\ninclude peer \"peers/anyremote\";\n"
        ),
    )
    .unwrap();
    std::fs::write(
        alpha.join("peers/anyremote"),
        format!("key \"{AR_PUBLIC}\";\n"),
    )
    .unwrap();
    std::fs::write(
        anyremote.join("fastd.conf"),
        format!(
            "{AR_BASE}secret \"{AR_SECRET}\";\ninterface address 172.16.16.2/24;\n\
             redirect gateway via 172.16.16.1;\ninclude peer \"peers/alpha\";\n"
        ),
    )
    .unwrap();
    std::fs::write(
        anyremote.join("peers/alpha"),
        format!("key \"{ALPHA_PUBLIC}\";\nremote 198.51.100.1:10000;\n"),
    )
    .unwrap();
    Confs {
        _dir: dir,
        alpha: alpha.join("fastd.conf"),
        anyremote: anyremote.join("fastd.conf"),
    }
}

/// The tutorial's literal scripts, REMOTEADDRESS set to alpha's test address.
fn tutorial_scripts(dir: &Path, addr: &str) {
    write_exec(
        &dir.join("interface-up"),
        &format!("#!/bin/bash\nip link set $INTERFACE up\nip addr add {addr} dev $INTERFACE\n"),
    );
    write_exec(
        &dir.join("interface-down"),
        "#!/bin/sh\nip addr del 172.16.16.1/24 dev $INTERFACE\nip link set $INTERFACE down\n",
    );
    write_exec(
        &dir.join("set-gateway"),
        "#!/bin/bash\n#ip link set $INTERFACE up\n#ip addr add 172.16.16.2/24 dev $INTERFACE\n\n\
         VPN_GATEWAY=172.16.16.1\n\
         ORIGINAL_GATEWAY=`ip route show | grep ^default | cut -d ' ' -f 2-5`\n\
         REMOTEADDRESS=198.51.100.1\n\n\
         ip route add $REMOTEADDRESS $ORIGINAL_GATEWAY\n\
         ip route add $VPN_GATEWAY dev $INTERFACE\n\
         ip route add 0.0.0.0/1 via $VPN_GATEWAY dev $INTERFACE\n\
         ip route add 128.0.0.0/1 via $VPN_GATEWAY dev $INTERFACE\n",
    );
    write_exec(
        &dir.join("restore-gateway"),
        "#!/bin/sh\n#ip addr del 172.16.16.2/24 dev $INTERFACE\n#ip link set $INTERFACE down\n\n\
         ORIGINAL_GATEWAY=`ip route show | grep ^default | cut -d ' ' -f 2-5`\n\
         REMOTEADDRESS=198.51.100.1\n\n\
         ip route del $REMOTEADDRESS $ORIGINAL_GATEWAY\n\
         ip route del $VPN_GATEWAY dev $INTERFACE\n\
         ip route del 0.0.0.0/1 dev $INTERFACE\n\
         ip route del 128.0.0.0/1 dev $INTERFACE\n",
    );
}

/// Both sides with the tutorial's hook scripts; alpha's masquerade is the built-in one
/// when `alpha_masquerade` (the tutorial does it with a separate firewall script).
fn hook_confs(alpha_masquerade: bool) -> Confs {
    let (dir, p) = tempdir();
    let alpha = p.join("alpha");
    let anyremote = p.join("anyremote");
    std::fs::create_dir_all(alpha.join("peers")).unwrap();
    std::fs::create_dir_all(anyremote.join("peers")).unwrap();
    let masq = if alpha_masquerade {
        "masquerade from 172.16.16.0/24 out \"uplink\";\n"
    } else {
        ""
    };
    std::fs::write(
        alpha.join("fastd.conf"),
        format!(
            "{ALPHA_BASE}secret \"{ALPHA_SECRET}\";\non up \"./interface-up\";\n\
             on down \"./interface-down\";\n{masq}include peer \"peers/anyremote\";\n"
        ),
    )
    .unwrap();
    std::fs::write(
        alpha.join("peers/anyremote"),
        format!("key \"{AR_PUBLIC}\";\n"),
    )
    .unwrap();
    tutorial_scripts(&alpha, "172.16.16.1/24");
    std::fs::write(
        anyremote.join("fastd.conf"),
        format!(
            "{AR_BASE}secret \"{AR_SECRET}\";\non up \"./interface-up\";\n\
             on down \"./interface-down\";\non establish \"./set-gateway\";\n\
             on disestablish \"./restore-gateway\";\ninclude peer \"peers/alpha\";\n"
        ),
    )
    .unwrap();
    std::fs::write(
        anyremote.join("peers/alpha"),
        format!("key \"{ALPHA_PUBLIC}\";\nremote 198.51.100.1:10000;\n"),
    )
    .unwrap();
    tutorial_scripts(&anyremote, "172.16.16.2/24");
    Confs {
        _dir: dir,
        alpha: alpha.join("fastd.conf"),
        anyremote: anyremote.join("fastd.conf"),
    }
}

fn logs2<'a>(a: &'a Daemon, b: &'a Daemon) -> impl Fn() -> String + 'a {
    move || format!("alpha:\n{}\nanyremote:\n{}", a.log(), b.log())
}

fn stop_ok(d: Daemon) {
    let (status, log) = d.stop();
    assert_stopped_by(status, libc::SIGTERM, &log);
}

#[test]
fn builtins_redirect_masquerade_stop_restart_and_crash_recovery() {
    if !ready(&["ping", "socat", "nft"]) {
        return;
    }
    let w = world();
    let forwarding_before = w.al.forwarding();
    let c = builtin_confs();
    let alpha = Daemon::start(&w.al, OURS, &c.alpha);
    let anyremote = Daemon::start(&w.ar, OURS, &c.anyremote);
    w.assert_through_tunnel(&logs2(&alpha, &anyremote));
    let up_routes = w.ar.routes();
    for half in [
        "0.0.0.0/1 via 172.16.16.1 dev vpngateway",
        "128.0.0.0/1 via 172.16.16.1 dev vpngateway",
        "198.51.100.1 via 192.0.2.1 dev ar0",
    ] {
        assert_eq!(count_lines(&up_routes, half), 1, "{up_routes}");
    }

    // Stopping the daemon that redirects puts anyremote's routes back exactly.
    stop_ok(anyremote);
    w.assert_routes_restored();
    assert!(!w.ar.has_link("vpngateway"));

    // Started again: the session and the routes come back.
    let anyremote = Daemon::start(&w.ar, OURS, &c.anyremote);
    w.assert_through_tunnel(&logs2(&alpha, &anyremote));

    // kill -9 anyremote's worker: its helper undoes the redirect and fails.
    let w_pid = anyremote.worker().unwrap();
    // SAFETY: kill on the worker of a daemon this test started.
    unsafe { libc::kill(w_pid, libc::SIGKILL) };
    let mut anyremote = anyremote;
    let (status, log) = anyremote.reap();
    assert_ne!(status.code(), Some(0), "{log}");
    w.assert_routes_restored();
    let anyremote = Daemon::start(&w.ar, OURS, &c.anyremote);
    w.assert_through_tunnel(&logs2(&alpha, &anyremote));

    // kill -9 both helpers (their workers follow), then start again.
    let (alpha_worker, ar_worker) = (alpha.worker().unwrap(), anyremote.worker().unwrap());
    alpha.signal(libc::SIGKILL);
    anyremote.signal(libc::SIGKILL);
    let (mut alpha, mut anyremote) = (alpha, anyremote);
    alpha.reap();
    anyremote.reap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while !(pid_gone(alpha_worker) && pid_gone(ar_worker)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        pid_gone(alpha_worker) && pid_gone(ar_worker),
        "workers outlived their helpers"
    );
    let alpha = Daemon::start(&w.al, OURS, &c.alpha);
    let anyremote = Daemon::start(&w.ar, OURS, &c.anyremote);
    w.assert_through_tunnel(&logs2(&alpha, &anyremote));
    let routes = w.ar.routes();
    for half in ["0.0.0.0/1 ", "128.0.0.0/1 ", "198.51.100.1 "] {
        assert_eq!(count_lines(&routes, half), 1, "duplicate routes:\n{routes}");
    }
    let tables = w.al.nft_tables();
    assert_eq!(tables.matches("fastd_privsep_").count(), 1, "{tables}");

    stop_ok(anyremote);
    stop_ok(alpha);
    w.assert_routes_restored();
    assert_eq!(w.al.forwarding(), forwarding_before);
    assert!(!w.al.nft_tables().contains("fastd_privsep_"));
    assert!(!w.al.has_link("vpngateway") && !w.ar.has_link("vpngateway"));
}

#[test]
fn tutorial_hook_scripts_both_sides() {
    if !ready(&["ping", "socat", "nft", "bash"]) {
        return;
    }
    let w = world();
    let c = hook_confs(true);
    let alpha = Daemon::start(&w.al, OURS, &c.alpha);
    let anyremote = Daemon::start(&w.ar, OURS, &c.anyremote);
    w.assert_through_tunnel(&logs2(&alpha, &anyremote));
    stop_ok(anyremote);
    w.assert_routes_restored();
    stop_ok(alpha);
    assert!(!w.al.nft_tables().contains("fastd_privsep_"));
}

#[test]
fn real_fastd_as_anyremote_ours_as_alpha() {
    if !ready(&["ping", "socat", "nft", "bash", FASTD]) {
        return;
    }
    let w = world();
    let forwarding_before = w.al.forwarding();
    let builtin = builtin_confs();
    let hooks = hook_confs(false);
    let alpha = Daemon::start(&w.al, OURS, &builtin.alpha);
    let anyremote = Daemon::start(&w.ar, FASTD, &hooks.anyremote);
    w.assert_through_tunnel(&logs2(&alpha, &anyremote));
    // fastd v22 ends by its signal; its status is not ours to check.
    let _ = anyremote.stop();
    w.assert_routes_restored();
    stop_ok(alpha);
    assert_eq!(w.al.forwarding(), forwarding_before);
    assert!(!w.al.nft_tables().contains("fastd_privsep_"));
}

#[test]
fn real_fastd_as_alpha_ours_as_anyremote() {
    if !ready(&["ping", "socat", "nft", "bash", FASTD]) {
        return;
    }
    let w = world();
    let builtin = builtin_confs();
    let hooks = hook_confs(false);
    // The tutorial's firewall step on alpha, by hand: fastd has no masquerade.
    w.al.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    w.al.run(&[
        "nft",
        "add table ip tutorial; add chain ip tutorial post { type nat hook postrouting priority srcnat; }; \
         add rule ip tutorial post ip saddr 172.16.16.0/24 oifname uplink masquerade",
    ]);
    let alpha = Daemon::start(&w.al, FASTD, &hooks.alpha);
    let anyremote = Daemon::start(&w.ar, OURS, &builtin.anyremote);
    w.assert_through_tunnel(&logs2(&alpha, &anyremote));
    stop_ok(anyremote);
    w.assert_routes_restored();
    assert!(!w.ar.has_link("vpngateway"));
}

/// Stop ALPHA (the gateway). fastd sends no goodbye, so anyremote
/// learns of it through fastd's 90 s peer timeout (docs/config.md §6.10), and then its routes are
/// exactly as before the session. Alpha started again: the session and the routes come back.
#[test]
fn stopping_alpha_restores_anyremotes_routes_and_a_restart_brings_them_back() {
    if !ready(&["ping", "socat", "nft"]) {
        return;
    }
    let w = world();
    let c = builtin_confs();
    // anyremote first: its interface (kept while disconnected, `persist interface yes`) and
    // address exist, but no session: that is the table a lost session must go back to.
    let anyremote = Daemon::start(&w.ar, OURS, &c.anyremote);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !w.ar.routes().contains("172.16.16.0/24 dev vpngateway") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let before_session = w.ar.routes();
    assert!(
        before_session.contains("172.16.16.0/24 dev vpngateway")
            && !before_session.contains("0.0.0.0/1"),
        "{before_session}"
    );
    let alpha = Daemon::start(&w.al, OURS, &c.alpha);
    w.assert_through_tunnel(&logs2(&alpha, &anyremote));

    stop_ok(alpha);
    // Bounded by the 90 s peer timeout plus the 10 s maintenance tick and some slack.
    let deadline = Instant::now() + Duration::from_secs(120);
    while w.ar.routes() != before_session && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(w.ar.routes(), before_session, "{}", anyremote.log());

    let alpha = Daemon::start(&w.al, OURS, &c.alpha);
    w.assert_through_tunnel(&logs2(&alpha, &anyremote));
    let routes = w.ar.routes();
    for half in ["0.0.0.0/1 ", "128.0.0.0/1 ", "198.51.100.1 "] {
        assert_eq!(count_lines(&routes, half), 1, "{routes}");
    }
    stop_ok(anyremote);
    stop_ok(alpha);
    w.assert_routes_restored();
}
