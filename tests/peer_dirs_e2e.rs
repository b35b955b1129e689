//! Peer directories as large community gateways have them: ten thousand peer
//! files loaded at start, a SIGHUP that adds 100 and removes 100 while a peer passes
//! traffic (its session stays), and file names such as `node one`, `Müller`, `node(1)` or
//! longer than 64 characters, which fastd takes as peer names, at start and after SIGHUP.
//! Speed and memory figures are `benches/peer-dir-scale.sh`'s job; this asserts behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use support::*;
use worker::keys::SecretKey;

/// A public key of its own for every index (away from the bits the clamping clears).
fn public_hex(i: u32) -> String {
    let mut seed = [0x5au8; 32];
    seed[4..8].copy_from_slice(&i.to_le_bytes());
    SecretKey::from_random_bytes(seed).public().to_hex()
}

/// A Freifunk-style peer file: a comment line and the key.
fn write_peer(dir: &Path, name: &str, key: &str) {
    std::fs::write(
        dir.join(name),
        format!("# {name}, contact: admin@example.org\nkey \"{key}\";\n"),
    )
    .unwrap();
}

/// The gateway: TAP (the usual Freifunk setup), one peer directory, an establish hook
/// that writes down the exact `PEER_NAME`.
fn write_gateway(dir: &Path) {
    std::fs::create_dir_all(dir.join("peers")).unwrap();
    std::fs::write(
        dir.join("fastd.conf"),
        format!(
            "log level verbose;\nmode tap;\ninterface \"fpsgw\";\nmethod \"salsa2012+umac\";\n\
             bind 192.0.2.1:10000;\nsecret \"{ALPHA_SECRET}\";\nmtu 1406;\n\
             interface address 172.16.16.1/24;\nstatus socket \"{}\";\n\
             on establish \"./established\";\ninclude peers from \"peers\";\n",
            dir.join("status.sock").display()
        ),
    )
    .unwrap();
    write_exec(
        &dir.join("established"),
        "#!/bin/sh\nprintf '%s\\n' \"$PEER_NAME\" >> established.seen\n",
    );
}

/// The client (ours), which knows the gateway as `gw`.
fn write_client(dir: &Path) {
    let settings =
        "mode tap;\ninterface \"fpsnode\";\nmtu 1406;\ninterface address 172.16.16.2/24;\n";
    let conf = client_conf(settings, "gw", "192.0.2.1:10000");
    std::fs::write(dir.join("fastd.conf"), conf).unwrap();
}

fn worlds(tag: &str) -> (Netns, Netns) {
    veth_pair(&format!("{tag}-gw"), &format!("{tag}-node"))
}

/// The status socket's document.
fn status_doc(ns: &Netns, dir: &Path) -> String {
    let sock = dir.join("status.sock");
    let (_, out) = ns.exec(&[
        "socat",
        "-T",
        "5",
        "-",
        &format!("UNIX-CONNECT:{}", sock.display()),
    ]);
    out
}

fn seen(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("established.seen")).unwrap_or_default()
}

#[test]
fn ten_thousand_peer_files_and_a_reload_that_keeps_a_live_session() {
    if !ready(&["ping", "socat"]) {
        return;
    }
    const N: u32 = 10_000;
    let (a, b) = worlds("scale");
    let (_tg, dg) = tempdir();
    let (_tc, dc) = tempdir();
    write_gateway(&dg);
    write_client(&dc);
    let peers = dg.join("peers");
    for i in 0..N {
        write_peer(&peers, &format!("node-{i:05}"), &public_hex(i));
    }
    write_peer(&peers, "the client", AR_PUBLIC);

    let gw = Daemon::start(&a, OURS, &dg.join("fastd.conf"));
    gw.wait_for("the gateway to run", || gw.log().contains("worker running"));
    let node = Daemon::start(&b, OURS, &dc.join("fastd.conf"));
    let logs = || format!("gateway:\n{}\nclient:\n{}", gw.log(), node.log());
    assert!(b.ping_until("172.16.16.1", 100), "no tunnel; {}", logs());
    // All of them are configured: the status socket lists every peer.
    let doc = status_doc(&a, &dg);
    assert_eq!(doc.matches("\"node-").count(), N as usize, "{}", logs());
    assert!(doc.contains("\"the client\""), "{doc}");

    // The repository pull: 100 files go, 100 come, then the cron job's SIGHUP.
    for i in 0..100 {
        std::fs::remove_file(peers.join(format!("node-{:05}", i * 7))).unwrap();
        write_peer(&peers, &format!("new-{i:03}"), &public_hex(N + i));
    }
    gw.signal(libc::SIGHUP);
    gw.wait_for("the reload", || {
        let log = gw.log();
        log.matches("deleting peer <node-").count() == 100
            && log.matches("adding peer <new-").count() == 100
    });
    assert!(
        b.ping("172.16.16.1"),
        "tunnel gone after the reload; {}",
        logs()
    );
    let log = gw.log();
    assert!(log.contains("peer <the client> is unchanged"), "{}", logs());
    assert!(
        !log.contains("connection with <the client> disestablished"),
        "{}",
        logs()
    );
    assert_eq!(
        log.matches("connection with <the client> established")
            .count(),
        1
    );
    assert_eq!(seen(&dg), "the client\n");
    let doc = status_doc(&a, &dg);
    assert_eq!(doc.matches("\"node-").count(), N as usize - 100, "{doc}");
    assert_eq!(doc.matches("\"new-").count(), 100, "{doc}");
    assert!(!log.contains("refused"), "{log}");

    let (status, log) = gw.stop();
    assert_stopped_by(status, libc::SIGTERM, &log);
}

/// Names fastd takes as peer names that the old checks refused.
const ODD_NAMES: [&str; 3] = ["node one", "Müller", "node(1)"];

fn long_name() -> String {
    format!("Freifunk Nord node {}", "x".repeat(60))
}

/// The names as the status socket shows them (JSON, non-ASCII either raw or escaped).
fn status_has(doc: &str, name: &str) -> bool {
    let escaped: String = name
        .chars()
        .map(|c| match c {
            c if c.is_ascii() => c.to_string(),
            c => format!("\\u{:04x}", c as u32),
        })
        .collect();
    doc.contains(&format!("\"{name}\"")) || doc.contains(&format!("\"{escaped}\""))
}

/// Starts the client (in `b`, config in `dc`) against the running gateway `gw` (in `a`,
/// config in `dg`): the tunnel works, every one of `names` is in the gateway's status and the
/// establish hook ran for the peer named `client` (the file with the client's key).
fn client_is_listed(
    a: &Netns,
    b: &Netns,
    dg: &Path,
    dc: &Path,
    gw: &Daemon,
    names: &[&str],
    client: &str,
) -> Daemon {
    let node = Daemon::start(b, OURS, &dc.join("fastd.conf"));
    let logs = || format!("gateway:\n{}\nclient:\n{}", gw.log(), node.log());
    assert!(b.ping_until("172.16.16.1", 100), "no tunnel; {}", logs());
    let doc = status_doc(a, dg);
    for name in names {
        assert!(
            status_has(&doc, name),
            "{name:?} missing: {doc}; {}",
            logs()
        );
    }
    gw.wait_for("the establish hook", || !seen(dg).is_empty());
    assert_eq!(seen(dg), format!("{client}\n"), "{}", logs());
    node
}

#[test]
fn file_names_fastd_accepts_are_peer_names_at_start_and_after_sighup() {
    if !ready(&["ping", "socat"]) {
        return;
    }
    let (a, b) = worlds("names");
    let (_tc, dc) = tempdir();
    write_client(&dc);
    let long = long_name();
    let mut names: Vec<&str> = ODD_NAMES.to_vec();
    names.push(&long);

    // At start: the client's key is in `node one`.
    let (_tg, dg) = tempdir();
    write_gateway(&dg);
    for (i, name) in names.iter().enumerate() {
        let key = if i == 0 {
            AR_PUBLIC.to_owned()
        } else {
            public_hex(i as u32)
        };
        write_peer(&dg.join("peers"), name, &key);
    }
    let gw = Daemon::start(&a, OURS, &dg.join("fastd.conf"));
    gw.wait_for("the gateway to run", || gw.log().contains("worker running"));
    let node = client_is_listed(&a, &b, &dg, &dc, &gw, &names, "node one");
    drop(node);
    let (status, log) = gw.stop();
    assert_stopped_by(status, libc::SIGTERM, &log);

    // After SIGHUP: the gateway starts with one plain peer; the four names come with the
    // reload, the client's key now in `Müller`.
    let (_tg, dg) = tempdir();
    write_gateway(&dg);
    write_peer(&dg.join("peers"), "plain", &public_hex(100));
    let gw = Daemon::start(&a, OURS, &dg.join("fastd.conf"));
    gw.wait_for("the gateway to run", || gw.log().contains("worker running"));
    for (i, name) in names.iter().enumerate() {
        let key = if i == 1 {
            AR_PUBLIC.to_owned()
        } else {
            public_hex(i as u32)
        };
        write_peer(&dg.join("peers"), name, &key);
    }
    gw.signal(libc::SIGHUP);
    gw.wait_for("the reload", || {
        gw.log().matches("adding peer <").count() == names.len()
    });
    let node = client_is_listed(&a, &b, &dg, &dc, &gw, &names, "Müller");
    let logs = || format!("gateway:\n{}\nclient:\n{}", gw.log(), node.log());
    assert!(!gw.log().contains("refused"), "{}", logs());
}

/// `VmRSS` of a process in kB.
fn rss_kb(pid: i32) -> u64 {
    status_field(pid, "VmRSS")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The daemon's resident memory: ours is the helper plus the worker.
fn daemon_rss(d: &Daemon) -> (u64, u64) {
    (rss_kb(d.pid()), d.worker().map_or(0, rss_kb))
}

/// CPU time (user + system, in clock ticks) of a process.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// CPU share (percent of one core) of the daemon while it sits idle for 5 s.
fn idle_cpu(d: &Daemon) -> f64 {
    let pids: Vec<i32> = std::iter::once(d.pid()).chain(d.worker()).collect();
    let before: u64 = pids.iter().map(|p| cpu_ticks(*p)).sum();
    std::thread::sleep(std::time::Duration::from_secs(5));
    let after: u64 = pids.iter().map(|p| cpu_ticks(*p)).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (after - before) as f64 / hz / 5.0 * 100.0
}

/// Waits (bounded) until the status socket lists `node` peers named `node-*` and
/// `new` named `new-*`; the time it took.
fn until_listed(ns: &Netns, dir: &Path, node: usize, new: usize) -> std::time::Duration {
    let t0 = std::time::Instant::now();
    for _ in 0..6000 {
        let doc = status_doc(ns, dir);
        if doc.matches("\"node-").count() == node && doc.matches("\"new-").count() == new {
            return t0.elapsed();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("the status socket never listed {node} + {new} peers");
}

/// One implementation with `n` peer files: start-up time, reload time (100 added, 100
/// removed) and resident memory, next to the same with an empty directory.
fn measure(bin: &str, n: u32) -> (f64, f64, (u64, u64), (u64, u64), f64) {
    let ns = Netns::new("bench");
    let (_t, dir) = tempdir();
    let peers = dir.join("peers");
    std::fs::create_dir_all(&peers).unwrap();
    std::fs::write(
        dir.join("fastd.conf"),
        format!(
            "log level warn;\nmode tap;\ninterface \"fpsbench\";\nmethod \"salsa2012+umac\";\n\
             bind 127.0.0.1:10000;\nsecret \"{ALPHA_SECRET}\";\nstatus socket \"{}\";\n\
             include peers from \"peers\";\n",
            dir.join("status.sock").display()
        ),
    )
    .unwrap();
    let settle = || std::thread::sleep(std::time::Duration::from_secs(1));
    let d = Daemon::start(&ns, bin, &dir.join("fastd.conf"));
    until_listed(&ns, &dir, 0, 0);
    settle();
    let empty = daemon_rss(&d);
    let (status, log) = d.stop();
    assert!(status.code().is_none() || status.success(), "{log}");
    for i in 0..n {
        write_peer(&peers, &format!("node-{i:05}"), &public_hex(i));
    }
    let d = Daemon::start(&ns, bin, &dir.join("fastd.conf"));
    let start = until_listed(&ns, &dir, n as usize, 0);
    settle();
    let full = daemon_rss(&d);
    let cpu = idle_cpu(&d);
    for i in 0..100 {
        std::fs::remove_file(peers.join(format!("node-{:05}", i * 7))).unwrap();
        write_peer(&peers, &format!("new-{i:03}"), &public_hex(n + i));
    }
    d.signal(libc::SIGHUP);
    let reload = until_listed(&ns, &dir, n as usize - 100, 100);
    drop(d);
    (start.as_secs_f64(), reload.as_secs_f64(), empty, full, cpu)
}

/// `benches/peer-dir-scale.sh`: ours and fastd v22 with the same directory.
#[test]
#[ignore = "benchmark, run by benches/peer-dir-scale.sh"]
fn bench_peer_dir_scale() {
    assert!(ready(&["socat"]) && Path::new(FASTD).exists());
    let n: u32 = std::env::var("BENCH_PEERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    println!("RESULT | daemon        | peers | start-up s | reload s | RSS empty kB | RSS full kB | per peer B | of which worker B | idle CPU %");
    for (label, bin) in [("fastd-privsep", OURS), ("fastd v22", FASTD)] {
        if !only.is_empty() && only != label {
            continue;
        }
        let (start, reload, empty, full, cpu) = measure(bin, n);
        let per_peer = |e: u64, f: u64| f.saturating_sub(e) * 1024 / u64::from(n);
        let total = per_peer(empty.0 + empty.1, full.0 + full.1);
        let worker = per_peer(empty.1, full.1);
        println!(
            "RESULT | {label:<13} | {n:>5} | {start:>10.2} | {reload:>8.2} | {:>12} | {:>11} | {total:>10} | {worker:>17} | {cpu:>10.1}",
            empty.0 + empty.1,
            full.0 + full.1,
        );
    }
}
