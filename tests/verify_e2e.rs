//! `on verify` through the fastd-privsep BINARY (helper + sandboxed worker + engine) against
//! the real /usr/bin/fastd v22 (docs/config.md §4.4, §6.6): alpha has no peers at all, only a
//! verify command. The real fastd connects with the tutorial's anyremote key; the helper runs
//! the verify script, the worker gets a dynamic peer with its own TUN device (named after
//! alpha's `%k` pattern, §6.7), the hooks see fastd's variables, and the device goes with
//! the daemon. A script that exits 1 refuses the key and the daemon goes on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

/// The dynamic peer's device: `peer-%k` with anyremote's key, cut to 15 bytes as fastd does.
fn dynamic_ifname() -> String {
    format!("peer-{}", &AR_PUBLIC[..10])
}

/// fastd's form of the unnamed (dynamic) peer in log lines.
fn dynamic_display() -> String {
    format!("{{{}}}", &AR_PUBLIC[..16])
}

/// Alpha: no peer, `on verify` with the given exit status, hooks that record their
/// environment in the config's directory.
fn write_alpha(dir: &Path, verify_status: u8) {
    std::fs::write(
        dir.join("fastd.conf"),
        format!(
            "log level debug;\nmode tun;\ninterface \"peer-%k\";\nmethod \"salsa2012+umac\";\n\
             bind 192.0.2.1:10000;\nsecret \"{ALPHA_SECRET}\";\nmtu 1448;\n\
             interface address 172.16.16.1/24;\non verify \"./verify\";\n\
             on establish \"./record establish\";\non disestablish \"./record disestablish\";\n\
             status socket \"{}\";\n",
            dir.join("status.sock").display()
        ),
    )
    .unwrap();
    write_exec(
        &dir.join("verify"),
        &format!(
            "#!/bin/sh\necho \"key=$PEER_KEY name=${{PEER_NAME-unset}} \
             peer=$PEER_ADDRESS:$PEER_PORT\" >> verify.seen\nexit {verify_status}\n"
        ),
    );
    write_exec(
        &dir.join("record"),
        "#!/bin/sh\necho \"$1 key=$PEER_KEY name=${PEER_NAME-unset} if=${INTERFACE-unset}\" \
         >> hooks.seen\n",
    );
}

/// The client: the real fastd with alpha as its one peer; its `on up` addresses the tunnel.
fn write_client(dir: &Path) {
    let settings = "mode tun;\ninterface \"vpnalpha\";\nmtu 1448;\n\
         on up \"ip addr add 172.16.16.2/24 dev $INTERFACE; ip link set up dev $INTERFACE\";\n";
    let conf = client_conf(settings, "alpha", "192.0.2.1:10000");
    std::fs::write(dir.join("fastd.conf"), conf).unwrap();
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

struct World {
    a: Netns,
    b: Netns,
    _ta: tempfile::TempDir,
    da: std::path::PathBuf,
    _tb: tempfile::TempDir,
    db: std::path::PathBuf,
}

fn world(verify_status: u8) -> World {
    let (a, b) = veth_pair("alpha", "client");
    let (ta, da) = tempdir();
    let (tb, db) = tempdir();
    write_alpha(&da, verify_status);
    write_client(&db);
    World {
        a,
        b,
        _ta: ta,
        da,
        _tb: tb,
        db,
    }
}

#[test]
fn verify_accepts_an_unknown_key_as_a_dynamic_peer() {
    if !ready(&[FASTD, "ping", "socat"]) {
        return;
    }
    let w = world(0);
    let alpha = Daemon::start(&w.a, OURS, &w.da.join("fastd.conf"));
    let client = Daemon::start(&w.b, FASTD, &w.db.join("fastd.conf"));
    let logs = || format!("alpha:\n{}\nclient:\n{}", alpha.log(), client.log());

    client.wait_for("the session", || {
        client.log().contains("connection with <alpha> established")
    });
    // The verify hook ran once, with the client's key and address and no name.
    let seen = read(&w.da.join("verify.seen"));
    assert_eq!(seen.lines().count(), 1, "{seen}\n{}", logs());
    assert!(
        seen.starts_with(&format!("key={AR_PUBLIC} name=unset peer=192.0.2.2:")),
        "{seen}\n{}",
        logs()
    );
    assert!(w.b.ping_until("172.16.16.1", 50), "no tunnel; {}", logs());
    assert!(w.a.ping("172.16.16.2"), "alpha -> client; {}", logs());
    // The dynamic peer's own device, named after the `%k` pattern.
    assert!(w.a.has_link(&dynamic_ifname()), "{}", logs());
    // The status socket lists the dynamic peer, unnamed, with its session.
    let (ok, doc) = w.a.exec(&[
        "socat",
        "-T",
        "5",
        "-",
        &format!("UNIX-CONNECT:{}", w.da.join("status.sock").display()),
    ]);
    assert!(ok, "{}", logs());
    let entry = format!("\"{AR_PUBLIC}\": {{ \"name\": null, \"address\": \"192.0.2.2:");
    assert!(doc.contains(&entry), "{doc}");
    assert!(doc.contains("\"method\": \"salsa2012+umac\""), "{doc}");
    assert!(
        doc.contains(&format!("\"interface\": \"{}\"", dynamic_ifname())),
        "{doc}"
    );
    let ours = alpha.log();
    let who = dynamic_display();
    assert!(!ours.contains("NotVerified"), "{}", logs());
    for line in [
        format!("Verbose: adding peer {who}"),
        format!("Info: connection with {who} established."),
    ] {
        assert!(ours.contains(&line), "{line}: {}", logs());
    }
    // `on establish`: the client's key, no PEER_NAME, the dynamic device.
    let want = format!(
        "establish key={AR_PUBLIC} name=unset if={}",
        dynamic_ifname()
    );
    assert!(
        wait_until(Duration::from_secs(5), || read(&w.da.join("hooks.seen"))
            .contains(&want)),
        "{}\n{}",
        read(&w.da.join("hooks.seen")),
        logs()
    );

    let (status, log) = alpha.stop();
    assert_stopped_by(status, libc::SIGTERM, &log);
    // fastd's shutdown of a dynamic peer: the reset, then the deletion.
    let gone = format!("Info: connection with {who} disestablished.");
    let deleted = format!("Verbose: deleting peer {who}");
    assert!(
        log.find(&gone)
            .is_some_and(|g| log.find(&deleted).is_some_and(|d| g < d)),
        "{log}"
    );
    assert!(
        !w.a.has_link(&dynamic_ifname()),
        "dynamic device left behind"
    );
    // Asynchronous like fastd's: it may finish after the daemon.
    let want = format!("disestablish key={AR_PUBLIC} name=unset");
    assert!(
        wait_until(Duration::from_secs(5), || read(&w.da.join("hooks.seen"))
            .contains(&want)),
        "{}",
        read(&w.da.join("hooks.seen"))
    );
    drop(client);
}

/// A refusing script, with fastd's default asynchronous verify and with `on verify sync`:
/// no session, the daemon goes on, and the log lines are fastd's for each kind.
#[test]
fn verify_refusal_ignores_the_handshake_and_the_daemon_goes_on() {
    if !ready(&[FASTD, "ping"]) {
        return;
    }
    for sync in [false, true] {
        refusal(sync);
    }
}

fn refusal(sync: bool) {
    let w = world(1);
    if sync {
        let conf = w.da.join("fastd.conf");
        let text = std::fs::read_to_string(&conf).unwrap();
        std::fs::write(&conf, text.replace("on verify ", "on verify sync ")).unwrap();
    }
    let mut alpha = Daemon::start(&w.a, OURS, &w.da.join("fastd.conf"));
    let client = Daemon::start(&w.b, FASTD, &w.db.join("fastd.conf"));
    let logs = || {
        format!(
            "sync {sync}\nalpha:\n{}\nclient:\n{}",
            alpha.log(),
            client.log()
        )
    };

    alpha.wait_for("the verify hook", || {
        read(&w.da.join("verify.seen")).contains(&format!("key={AR_PUBLIC} name=unset"))
    });
    // The helper words the verdict as fastd does: routine, at debug level.
    alpha.wait_for("the verdict", || {
        alpha
            .log()
            .contains("DEBUG: verify command exited with status 1")
    });
    assert!(
        !alpha.log().contains("Warning: command exited"),
        "{}",
        logs()
    );
    // fastd's "(verification failed)" line belongs to a synchronous verify only.
    let refused = format!(
        "DEBUG: ignoring handshake from {}[192.0.2.2:",
        dynamic_display()
    );
    if sync {
        alpha.wait_for("the refusal", || alpha.log().contains(&refused));
        assert!(alpha.log().contains("(verification failed)"), "{}", logs());
    }
    // No session within a few seconds, no device, no peer, and the daemon is still running.
    assert!(!w.b.ping_until("172.16.16.1", 10), "{}", logs());
    if !sync {
        assert!(!alpha.log().contains("(verification failed)"), "{}", logs());
    }
    assert!(!client.log().contains("established"), "{}", logs());
    assert!(!alpha.log().contains("established"), "{}", logs());
    assert!(!alpha.log().contains("adding peer"), "{}", logs());
    assert!(!w.a.has_link(&dynamic_ifname()), "{}", logs());
    assert!(!read(&w.da.join("hooks.seen")).contains("establish"));
    drop(client);
    assert!(alpha.child.try_wait().unwrap().is_none(), "{}", alpha.log());
    let (status, log) = alpha.stop();
    assert_stopped_by(status, libc::SIGTERM, &log);
}

/// A third key pair from testdata/keys.txt (fastd v22's own output).
const SLOW_SECRET: &str = "2015c1e63f209ac4eeec53d40950f2b7c11e1af33cdf1872fa18d54bd954547e";
const SLOW_PUBLIC: &str = "c8dd91c1cd4dae115c172ec86b865e34ef705cbadc165e31dee5214224c63351";

/// One misbehaving peer never affects the others: while `on verify` takes seconds for an
/// unknown key, the established dynamic peer's tunnel keeps working, and the slow key is
/// refused in the end.
#[test]
fn a_slow_verify_does_not_stall_established_peers() {
    if !ready(&[FASTD, "ping"]) {
        return;
    }
    let w = world(0);
    // A second client on its own link; alpha listens on both.
    let c = Netns::new("slow");
    link(
        &w.a,
        "veth1",
        "198.51.100.1/24",
        &c,
        "veth0",
        "198.51.100.2/24",
    );
    let conf = w.da.join("fastd.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        text.replace("bind 192.0.2.1:10000;", "bind any:10000;"),
    )
    .unwrap();
    write_exec(
        &w.da.join("verify"),
        &format!(
            "#!/bin/sh\necho \"key=$PEER_KEY\" >> verify.seen\n\
             [ \"$PEER_KEY\" = {AR_PUBLIC} ] && exit 0\nsleep 4\nexit 1\n"
        ),
    );
    let (_tc, dc) = tempdir();
    std::fs::write(
        dc.join("fastd.conf"),
        format!(
            "log level verbose;\nmode tun;\ninterface \"vpnslow\";\nmethod \"salsa2012+umac\";\n\
             secret \"{SLOW_SECRET}\";\nmtu 1448;\n\
             peer \"alpha\" {{ key \"{ALPHA_PUBLIC}\"; remote 198.51.100.1:10000; }}\n"
        ),
    )
    .unwrap();
    let alpha = Daemon::start(&w.a, OURS, &conf);
    let client = Daemon::start(&w.b, FASTD, &w.db.join("fastd.conf"));
    let logs = || format!("alpha:\n{}\nclient:\n{}", alpha.log(), client.log());
    assert!(w.b.ping_until("172.16.16.1", 50), "no tunnel; {}", logs());

    let slow = Daemon::start(&c, FASTD, &dc.join("fastd.conf"));
    alpha.wait_for("the slow verify to start", || {
        read(&w.da.join("verify.seen")).contains(SLOW_PUBLIC)
    });
    // Inside the script's 4 s: three pings of at most 1 s each all come back.
    let started = Instant::now();
    for i in 0..3 {
        assert!(
            w.b.ping("172.16.16.1"),
            "ping {i} during the verify; {}",
            logs()
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the pings did not fit inside the verify"
    );
    alpha.wait_for("the slow verdict", || {
        alpha
            .log()
            .contains("DEBUG: verify command exited with status 1")
    });
    assert!(!slow.log().contains("established"), "{}", slow.log());
    assert!(w.b.ping("172.16.16.1"), "{}", logs());
    drop(slow);
    drop(client);
    let (status, log) = alpha.stop();
    assert_stopped_by(status, libc::SIGTERM, &log);
}

/// The variables a hook script records: the names fastd v22 sets, in order, with values.
const RECORD_ENV: &str = "#!/bin/sh\n{ echo \"# hook=$1\"; env | grep -E \
     '^(INTERFACE|INTERFACE_MTU|PEER_KEY|PEER_NAME|PEER_ADDRESS|PEER_PORT|LOCAL_ADDRESS|\
     LOCAL_PORT|LOCAL_KEY|FASTD_PID)=' | sort; echo '# end'; } >> \"$1.env\"\n";

/// The variable names (sorted) of one recorded hook run.
fn env_names(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_owned()))
        .collect()
}

fn env_value(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .map(str::to_owned)
}

/// Tap mode: fastd admits an unknown key through `on verify` at once. The verify
/// request names the one tap device with its MTU, exactly fastd's variables (recorded in
/// the hook-env vectors: INTERFACE and INTERFACE_MTU, no PEER_NAME), and the policy admits it.
#[test]
fn verify_in_tap_mode_admits_the_peer_with_fastds_environment() {
    if !ready(&[FASTD, "ping"]) {
        return;
    }
    let (a, b, da, db, _dirs) = sides("tapalpha", "tapclient");
    std::fs::write(
        da.join("fastd.conf"),
        format!(
            "log level debug;\nmode tap;\ninterface \"tapalpha\";\nmethod \"salsa2012+umac\";\n\
             bind 192.0.2.1:10000;\nsecret \"{ALPHA_SECRET}\";\nmtu 1400;\n\
             on up \"ip addr add 172.16.16.1/24 dev $INTERFACE; ip link set up dev $INTERFACE\";\n\
             on verify \"./record verify\";\non establish \"./record establish\";\n\
             status socket \"{}\";\n",
            da.join("status.sock").display()
        ),
    )
    .unwrap();
    write_exec(&da.join("record"), RECORD_ENV);
    let settings = "mode tap;\ninterface \"tapclient\";\nmtu 1400;\n\
         on up \"ip addr add 172.16.16.2/24 dev $INTERFACE; ip link set up dev $INTERFACE\";\n";
    let conf = client_conf(settings, "alpha", "192.0.2.1:10000");
    std::fs::write(db.join("fastd.conf"), conf).unwrap();
    let alpha = Daemon::start(&a, OURS, &da.join("fastd.conf"));
    // Alpha listens before the client's first handshake, so the first one is answered.
    alpha.wait_for("alpha's socket", || {
        alpha.log().contains("bound to 192.0.2.1:10000")
    });
    let client = Daemon::start(&b, FASTD, &db.join("fastd.conf"));
    let logs = || format!("alpha:\n{}\nclient:\n{}", alpha.log(), client.log());

    // fastd retries a handshake only every ~20 s: the first must be admitted.
    assert!(b.ping_until("172.16.16.1", 50), "no tunnel; {}", logs());
    assert!(a.ping("172.16.16.2"), "alpha -> client; {}", logs());
    let ours = alpha.log();
    assert!(!ours.contains("on verify failed"), "{}", logs());
    assert!(!ours.contains("refused"), "{}", logs());
    assert!(
        ours.contains(&format!(
            "Info: connection with {} established.",
            dynamic_display()
        )),
        "{}",
        logs()
    );

    // fastd v22's verify in tap mode, as recorded in the hook-env vectors (tap-alpha/03-verify.env).
    let verify = read(&da.join("verify.env"));
    assert_eq!(verify.matches("# hook=").count(), 1, "{verify}\n{}", logs());
    assert_eq!(
        env_names(&verify),
        [
            "FASTD_PID",
            "INTERFACE",
            "INTERFACE_MTU",
            "LOCAL_ADDRESS",
            "LOCAL_KEY",
            "LOCAL_PORT",
            "PEER_ADDRESS",
            "PEER_KEY",
            "PEER_PORT"
        ],
        "{verify}"
    );
    for (name, want) in [
        ("INTERFACE", "tapalpha"),
        ("INTERFACE_MTU", "1400"),
        ("LOCAL_ADDRESS", "192.0.2.1"),
        ("LOCAL_PORT", "10000"),
        ("LOCAL_KEY", ALPHA_PUBLIC),
        ("PEER_ADDRESS", "192.0.2.2"),
        ("PEER_KEY", AR_PUBLIC),
    ] {
        assert_eq!(env_value(&verify, name).as_deref(), Some(want), "{verify}");
    }
    // `on establish` of the dynamic peer: the same device, no name.
    assert!(
        wait_until(Duration::from_secs(5), || read(&da.join("establish.env"))
            .contains("# end")),
        "{}",
        logs()
    );
    let est = read(&da.join("establish.env"));
    assert_eq!(env_value(&est, "INTERFACE").as_deref(), Some("tapalpha"));
    assert_eq!(env_value(&est, "INTERFACE_MTU").as_deref(), Some("1400"));
    assert_eq!(env_value(&est, "PEER_KEY").as_deref(), Some(AR_PUBLIC));
    assert_eq!(env_value(&est, "PEER_NAME"), None, "{est}");

    // The status document in tap mode has fastd's keys and types (top-level `interface`,
    // `mac_addresses`, the dynamic peer's `"name": null`).
    let fastd = status_doc::recorded("tap-two-peers-one-dynamic.json");
    for doc in status_doc::fetch_at_once(&a, &da.join("status.sock"), 2) {
        status_doc::assert_same_shape(&doc, &fastd);
        assert!(doc.contains(&format!("\"{AR_PUBLIC}\"")), "{doc}");
        assert!(doc.contains("\"interface\": \"tapalpha\""), "{doc}");
    }

    let (status, log) = alpha.stop();
    assert_stopped_by(status, libc::SIGTERM, &log);
    drop(client);
}
