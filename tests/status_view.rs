//! `fastd-privsep --status` against a running daemon's status socket, ours and the real
//! fastd v22 at once: ours is the tutorial's alpha (named peer), /usr/bin/fastd is anyremote
//! (peer included without a name), both with a status socket. The view reads each socket as
//! a client, by path and through `-c fastd.conf`, as root and as an unprivileged user.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use support::*;

const METHOD: &str = "salsa2012+umac";
const NOBODY: u32 = 65534;

/// One side of the tutorial in `dir` with a status socket `dir/status.sock`; `peer` is
/// the peer's block or include line.
fn side(dir: &Path, secret: &str, addr: &str, bind: &str, peer: &str) {
    let sock = dir.join("status.sock");
    let conf = format!(
        "log level verbose;\nmode tun;\ninterface \"vpngateway\";\nmethod \"{METHOD}\";\n{bind}\
         secret \"{secret}\";\nmtu 1448;\nstatus socket \"{}\";\n\
         on up \"ip link set $INTERFACE up; ip addr add {addr} dev $INTERFACE\";\n{peer}",
        sock.display()
    );
    std::fs::write(dir.join("fastd.conf"), conf).unwrap();
}

fn status(args: &[&str], uid: Option<u32>) -> Output {
    let mut cmd = Command::new(OURS);
    cmd.args(args).current_dir("/");
    if let Some(u) = uid {
        cmd.uid(u).gid(u);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    assert!(
        o.status.success(),
        "--status failed: {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// The one peer row of a table: `label address interface method <n> <unit> ago ...`.
fn assert_row(table: &str, label: &str, address: &str) {
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("{label} ")))
        .unwrap_or_else(|| panic!("no row for {label}:\n{table}"));
    let cols: Vec<&str> = row.split("  ").filter(|c| !c.is_empty()).collect();
    assert_eq!(cols.first().map(|c| c.trim()), Some(label), "{row}");
    assert_eq!(cols.get(1).map(|c| c.trim()), Some(address), "{row}");
    assert_eq!(cols.get(2).map(|c| c.trim()), Some("vpngateway"), "{row}");
    assert_eq!(cols.get(3).map(|c| c.trim()), Some(METHOD), "{row}");
    let since = cols.get(4).unwrap().trim();
    assert!(since.ends_with(" ago"), "{row}");
    let received = cols.get(5).unwrap().trim();
    assert!(
        received != "0 B" && received.contains('B'),
        "nothing received: {row}"
    );
    assert!(
        table.starts_with("up ") && table.contains(", 1 of 1 peers established, "),
        "{table}"
    );
}

/// The machine-readable line: key, name, address, interface, method, ms, rx/tx counters.
fn assert_line(lines: &str, key: &str, name: &str, address: &str) {
    let l: Vec<&str> = lines.lines().collect();
    assert_eq!(l.len(), 1, "{lines}");
    let f: Vec<&str> = l[0].split('\t').collect();
    assert_eq!(f.len(), 11, "{lines}");
    assert_eq!(
        &f[..5],
        [key, name, address, "vpngateway", METHOD],
        "{lines}"
    );
    assert!(f[5].parse::<u64>().is_ok(), "{lines}");
    let rx_bytes: u64 = f[7].parse().unwrap();
    assert!(rx_bytes > 0, "{lines}");
    assert_eq!(f[10], "-", "tun mode has no MAC count: {lines}");
}

#[test]
fn status_view_reads_ours_and_real_fastds_socket() {
    if !ready(&[FASTD, "ping"]) {
        return;
    }
    let (a, b, da, db, _dirs) = sides("alpha", "anyremote");
    side(
        &da,
        ALPHA_SECRET,
        "172.16.16.1/24",
        "bind 192.0.2.1:10000;\n",
        &format!("peer \"anyremote\" {{ key \"{AR_PUBLIC}\"; }}\n"),
    );
    std::fs::write(
        db.join("alpha"),
        format!("key \"{ALPHA_PUBLIC}\";\nremote 192.0.2.1:10000;\n"),
    )
    .unwrap();
    side(
        &db,
        AR_SECRET,
        "172.16.16.2/24",
        "",
        "include peer \"alpha\";\n",
    );

    let alpha = Daemon::start(&a, OURS, &da.join("fastd.conf"));
    let anyremote = Daemon::start(&b, FASTD, &db.join("fastd.conf"));
    let logs = || format!("alpha:\n{}\nanyremote:\n{}", alpha.log(), anyremote.log());
    assert!(b.ping_until("172.16.16.1", 50), "no tunnel; {}", logs());

    let ours_sock = da.join("status.sock");
    let theirs_sock = db.join("status.sock");
    let ours_s = ours_sock.to_str().unwrap();
    let theirs_s = theirs_sock.to_str().unwrap();

    // Ours (alpha): a named peer, connected from anyremote's ephemeral port.
    let t = text(&status(&["--status", ours_s], None));
    let row = t
        .lines()
        .find(|l| l.starts_with("anyremote "))
        .unwrap_or("");
    let addr = row.split_whitespace().nth(1).unwrap_or("").to_owned();
    assert!(addr.starts_with("192.0.2.2:"), "{t}");
    assert_row(&t, "anyremote", &addr);
    let m = text(&status(&["--status", ours_s, "--machine-readable"], None));
    assert_line(&m, AR_PUBLIC, "anyremote", &addr);

    // The real fastd (anyremote): an unnamed peer shows as its short key; found via -c.
    let conf_b = db.join("fastd.conf");
    let conf_b = conf_b.to_str().unwrap();
    let t = text(&status(&["--status", "-c", conf_b], None));
    assert_row(&t, &ALPHA_PUBLIC[..16], "192.0.2.1:10000");
    let m = text(&status(
        &["-c", conf_b, "--status", "--machine-readable"],
        None,
    ));
    assert_line(&m, ALPHA_PUBLIC, "-", "192.0.2.1:10000");

    // No root needed beyond the socket's permission: both sockets opened to everyone.
    for (dir, sock) in [(&da, ours_s), (&db, theirs_s)] {
        sh_ok("chmod", &["755", dir.to_str().unwrap()]);
        let denied = status(&["--status", sock], Some(NOBODY));
        assert_eq!(denied.status.code(), Some(1), "{denied:?}");
        assert!(
            String::from_utf8_lossy(&denied.stderr).contains("Permission denied"),
            "{denied:?}"
        );
        sh_ok("chmod", &["666", sock]);
        let m = text(&status(
            &["--status", sock, "--machine-readable"],
            Some(NOBODY),
        ));
        assert_eq!(m.lines().count(), 1, "{m}");
    }

    let (st, log) = alpha.stop();
    assert_stopped_by(st, libc::SIGTERM, &log);
    drop(anyremote);
    // The daemon is gone: the view says so and fails; it starts nothing in its place.
    let gone = status(&["--status", ours_s], None);
    assert_eq!(gone.status.code(), Some(1), "{gone:?}");
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("unable to read status socket"),
        "{gone:?}"
    );
    assert!(!ours_sock.exists(), "--status created the socket");
}

#[test]
fn status_without_a_socket_is_an_error_and_help_does_not_change() {
    let (_t, d) = tempdir();
    let conf = d.join("fastd.conf");
    std::fs::write(&conf, "mode tun;\nmethod \"null\";\n").unwrap();
    let o = status(&["--status", "-c", conf.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Error: no status socket configured"),
        "{o:?}"
    );
    let o = status(&["--status", "/nonexistent/x.sock", "-c", "x"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("takes no option"),
        "{o:?}"
    );
    // The option is ours and stays out of fastd's --help.
    let help = status(&["--help"], None);
    assert!(!String::from_utf8_lossy(&help.stdout).contains("--status "));
}
