//! The binary's command line against the vectors recorded from fastd v22.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_fastd-privsep");
const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");

fn testdata(p: &str) -> PathBuf {
    Path::new(TESTDATA).join(p)
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// Removes and checks the `YYYY-MM-DD HH:MM:SS +ZZZZ --- ` prefix of every stderr line.
fn strip_ts(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(|l| {
            let b = l.as_bytes();
            assert!(b.len() > 30, "short log line {l:?}");
            let ts = &l[..25];
            for (i, c) in ts.bytes().enumerate() {
                let ok = match i {
                    4 | 7 => c == b'-',
                    10 | 19 => c == b' ',
                    13 | 16 => c == b':',
                    20 => c == b'+' || c == b'-',
                    _ => c.is_ascii_digit(),
                };
                assert!(ok, "bad timestamp in {l:?}");
            }
            assert_eq!(&l[25..30], " --- ", "{l:?}");
            l[30..].to_owned()
        })
        .collect()
}

/// Our stderr without the extra `Info: file:line:col: ...` line that follows a located
/// config error (fastd prints only the `Error:` line).
fn fastd_lines(stderr: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in strip_ts(stderr) {
        let after_located = out
            .last()
            .is_some_and(|p| p.starts_with("Error: config error: ") && p.contains(" at "));
        if after_located && l.starts_with("Info: ") {
            continue;
        }
        out.push(l);
    }
    out
}

#[test]
fn help_and_version_are_byte_exact() {
    let cwd = std::env::temp_dir();
    for a in ["--help", "-h"] {
        let o = run_in(&cwd, &[a]);
        assert_eq!(o.status.code(), Some(0));
        assert_eq!(
            o.stdout,
            std::fs::read(testdata("cli/help.stdout")).unwrap()
        );
        assert!(o.stderr.is_empty());
    }
    // fastd's `fastd v22` (the first two words, which tools parse), then which daemon runs.
    let fastd = String::from_utf8(std::fs::read(testdata("cli/version.stdout")).unwrap()).unwrap();
    let fastd_words: Vec<&str> = fastd.split_whitespace().collect();
    assert_eq!(fastd_words, ["fastd", "v22"]);
    for a in ["--version", "-v"] {
        let o = run_in(&cwd, &[a]);
        assert_eq!(o.status.code(), Some(0));
        let out = String::from_utf8(o.stdout).unwrap();
        assert_eq!(
            out,
            format!("fastd v22 (fastd-privsep {})\n", env!("CARGO_PKG_VERSION"))
        );
        let words: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(words[..2], fastd_words[..]);
        assert!(o.stderr.is_empty());
    }
}

#[test]
fn every_error_in_errors_tsv() {
    let cwd = std::fs::canonicalize(std::env::temp_dir()).unwrap();
    let tsv = std::fs::read_to_string(testdata("cli/errors.tsv")).unwrap();
    let mut n = 0;
    for line in tsv.lines().skip(1) {
        let mut f = line.split('\t');
        let (args, code, err) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let args: Vec<&str> = args.split(' ').collect();
        let o = run_in(&cwd, &args);
        assert_eq!(o.status.code(), Some(code.parse().unwrap()), "{args:?}");
        let want = err.replace("<cwd>", &cwd.to_string_lossy());
        assert_eq!(fastd_lines(&o.stderr), vec![want], "{args:?}");
        assert!(o.stdout.is_empty());
        n += 1;
    }
    assert_eq!(n, 18);
}

#[test]
fn options_act_when_reached() {
    let dir = testdata("configs");
    let o = run_in(&dir, &["-h", "-c", "seed-alpha.conf"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(!o.stdout.is_empty());
    let o = run_in(&dir, &["-c", "seed-alpha.conf", "-h"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    // A later option still fails after a good file; an earlier bad one wins.
    let o = run_in(&dir, &["--mtu", "100", "-c", "seed-alpha.conf"]);
    assert_eq!(fastd_lines(&o.stderr), vec!["Error: invalid mtu `100'"]);
    // --generate-key parses the config too.
    let o = run_in(&dir, &["--generate-key", "-c", "seed-alpha.conf"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn seed_alpha_error_has_position_and_detail() {
    let o = run_in(
        &testdata("configs"),
        &["--verify-config", "-c", "seed-alpha.conf"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let lines = strip_ts(&o.stderr);
    assert_eq!(
        lines[0],
        "Error: config error: syntax error at seed-alpha.conf:8:9"
    );
    assert!(
        lines[1].starts_with("Info: seed-alpha.conf:8:9: syntax error: unknown word `falls'"),
        "{lines:?}"
    );
}

/// `--daemon` and `--pid-file` act only after the config checks: a bad config ends in the
/// started process, with fastd's error, and no daemon, fork or pid file. (A real
/// `--daemon` start runs in a namespace, in tests/process_e2e.rs.)
#[test]
fn daemon_options_with_a_bad_config_start_nothing() {
    let dir = testdata("configs");
    let tmp = tempfile::tempdir().unwrap();
    let pid_file = tmp.path().join("x.pid");
    let pid_file = pid_file.to_str().unwrap();
    for extra in [&["--daemon"][..], &["--daemon", "--pid-file", pid_file][..]] {
        let mut args = vec!["-c", "bad-mtu.conf"];
        args.extend_from_slice(extra);
        let o = run_in(&dir, &args);
        assert_eq!(o.status.code(), Some(1));
        let l = fastd_lines(&o.stderr);
        assert_eq!(
            l.first().map(String::as_str),
            Some("Error: config error: invalid MTU at bad-mtu.conf:3:5"),
            "{l:?}"
        );
        assert!(!Path::new(pid_file).exists());
    }
}

/// Every config vector through the binary with fastd's command line.
#[test]
fn every_config_vector_through_the_binary() {
    let dir = std::fs::canonicalize(testdata("configs")).unwrap();
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let Some(name) = name.strip_suffix(".expected") else {
            continue;
        };
        let exp = std::fs::read_to_string(dir.join(format!("{name}.expected"))).unwrap();
        let get = |k: &str| {
            exp.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap()
                .to_owned()
        };
        let cmd = get("command");
        let args: Vec<&str> = cmd.split(' ').skip(1).collect();
        let o = run_in(&dir, &args);
        let code: i32 = get("exit_code").parse().unwrap();
        assert_eq!(
            o.status.code(),
            Some(code),
            "{name}: {:?}",
            strip_ts(&o.stderr)
        );
        let want_err = std::fs::read_to_string(dir.join(format!("{name}.stderr")))
            .unwrap_or_default()
            .replace("{CONFIG_DIR}", &dir.to_string_lossy());
        let want_out = std::fs::read(dir.join(format!("{name}.stdout"))).unwrap_or_default();
        assert_eq!(o.stdout, want_out, "{name}: stdout");
        let ours = fastd_lines(&o.stderr);
        // unknown-user-runtime is a real start: the sandboxed worker fails the user
        // lookup and reports it exactly as fastd does.
        assert_eq!(ours, want_err.lines().collect::<Vec<_>>(), "{name}: stderr");
        n += 1;
    }
    assert_eq!(n, 47);
}

fn temp_conf(tag: &str, body: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "fastd-privsep-cli-{tag}-{}.conf",
        std::process::id()
    ));
    std::fs::write(&p, body).unwrap();
    p
}

fn show_key(bin: &str, secret: &str, tag: &str) -> Output {
    let conf = temp_conf(tag, &format!("secret \"{secret}\";\n"));
    let o = Command::new(bin)
        .args(["--show-key", "--machine-readable", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    std::fs::remove_file(&conf).unwrap();
    o
}

#[test]
fn show_key_every_pair_in_keys_txt() {
    let text = std::fs::read_to_string(testdata("keys.txt")).unwrap();
    let mut n = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (secret, public) = line.split_once(' ').unwrap();
        let o = show_key(BIN, secret, "pair");
        assert_eq!(o.status.code(), Some(0), "{secret}");
        assert_eq!(String::from_utf8(o.stdout).unwrap(), format!("{public}\n"));
        assert!(o.stderr.is_empty());
        n += 1;
    }
    assert_eq!(n, 16);
}

#[test]
fn malformed_secrets_give_fastds_error() {
    let good = "5035de5b4ea448b74e9a373765207095057a9485fd9dca5fadb9c1b86347bd75";
    for bad in [
        &good[..63],
        &format!("{good}0")[..],
        &format!("{}g", &good[..63])[..],
        &format!("51{}", &good[2..])[..],
        &format!("07{}", &good[2..])[..],
        "supersecretkey",
        "",
    ] {
        let o = show_key(BIN, bad, "bad");
        assert_eq!(o.status.code(), Some(1), "{bad}");
        assert_eq!(
            fastd_lines(&o.stderr),
            vec!["Error: invalid secret key"],
            "{bad}"
        );
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn generate_key_output_shape() {
    let cwd = std::env::temp_dir();
    let o = run_in(&cwd, &["--generate-key"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        strip_ts(&o.stderr),
        vec!["Info: Reading 32 bytes from /dev/random..."]
    );
    let out = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    let secret = lines[0].strip_prefix("Secret: ").unwrap();
    let public = lines[1].strip_prefix("Public: ").unwrap();
    assert!(out.ends_with('\n'));
    check_sanitized(secret);
    let shown = show_key(BIN, secret, "gen");
    assert_eq!(
        String::from_utf8(shown.stdout).unwrap(),
        format!("{public}\n")
    );

    let o = run_in(
        &cwd,
        &["--show-key", "--generate-key", "--machine-readable"],
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stderr.is_empty());
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.len(), 65);
    check_sanitized(out.trim_end());
    // --verify-config wins over the key tools.
    let o = run_in(&cwd, &["--generate-key", "--verify-config"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
}

fn check_sanitized(secret: &str) {
    assert_eq!(secret.len(), 64);
    assert!(secret
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    let first = u8::from_str_radix(&secret[..2], 16).unwrap();
    let last = u8::from_str_radix(&secret[62..], 16).unwrap();
    assert_eq!(first & 7, 0);
    assert_eq!(last & 0xc0, 0x40);
}

/// The real fastd, or None (a failure when CI=true: the cross-check must run there).
fn real_fastd() -> Option<&'static str> {
    test_support::have_tools(&[test_support::FASTD]).then_some(test_support::FASTD)
}

#[test]
fn keys_cross_check_with_real_fastd() {
    let Some(fastd) = real_fastd() else { return };
    for _ in 0..3 {
        // Ours generated, fastd shows.
        let o = run_in(&std::env::temp_dir(), &["--generate-key"]);
        let out = String::from_utf8(o.stdout).unwrap();
        let mut l = out.lines();
        let secret = l
            .next()
            .unwrap()
            .strip_prefix("Secret: ")
            .unwrap()
            .to_owned();
        let public = l
            .next()
            .unwrap()
            .strip_prefix("Public: ")
            .unwrap()
            .to_owned();
        let theirs = show_key(fastd, &secret, "x1");
        assert_eq!(theirs.status.code(), Some(0));
        assert_eq!(
            String::from_utf8(theirs.stdout).unwrap(),
            format!("{public}\n")
        );
        // fastd generated, we show.
        let g = Command::new(fastd)
            .args(["--generate-key", "--machine-readable"])
            .output()
            .unwrap();
        let secret = String::from_utf8(g.stdout).unwrap().trim_end().to_owned();
        let theirs = show_key(fastd, &secret, "x2");
        let ours = show_key(BIN, &secret, "x3");
        assert_eq!(ours.status.code(), Some(0));
        assert_eq!(ours.stdout, theirs.stdout);
    }
}

/// Config snippets (one file each) whose verdict and messages must equal the real fastd's.
const SNIPPETS: &[&str] = &[
    "mtu 1400;# x",
    "\"a\"/*x*/",
    "interface \"a\"\"b\";",
    "mtu 0x;",
    "mtu 0X5A8;",
    "mtu 1400abc;",
    "mtu 1.;",
    "mtu 1400 /* x */",
    "mtu 1400 # abc\n",
    "mtu 1400 /* x */\n",
    "mtu 1400 #\n#c\n",
    "mtu 1400\t\r\n",
    "packet mark 4294967296;",
    "bind any default ipv6 interface \"x\";",
    "bind 1.2.3.4 port 0;",
    "bind [fe80::1%eth0] interface \"x\";",
    "bind [::1%a\\]b]:5;",
    "bind [1:2:3:4:5:6:7:8:9]:5;",
    "bind 1.2.3.4:5x;",
    "peer \"a\" { remote 1.2.3.4:65536; key \"K\"; }",
    "peer \"a\" { remote \"host\" port 0; key \"K\"; }",
    "peer \"a\" { remote ipv4 \"h\":1; remote ipv6 [::1]:3; key \"K\"; float no; }",
    "peer \"a\" { key \"K\"; mtu 575; }",
    "peer \"a\" { key \"K\"; interface \"x%n%\"; }",
    "peer \"a\" { key \"K\" }",
    "peer \"x\"{key\"K\";}",
    "peer \"a\" { key \"K\"; }\npeer group \"g\" { peer \"b\" { key \"K\"; } }",
    "peer group \"g\" { peer limit 0; method \"null\"; on verify sync \"x\"; }",
    "peer group \"g\" { secret \"x\"; }",
    "peer group \"g\" { on pre-up \"x\"; }",
    "peer group \"g\" { peer group \"h\" { } };",
    "log to syslog level fatal as \"x\";",
    "drop capabilities maybe;",
    "on up sync async \"x\";",
    "on connect \"x\" \"y\";",
    "cipher \"salsa2012\" use \"openssl\";",
    "mac \"uhash\" use \"nacl\";",
    "pmtu maybe;",
    "secure handshakes no; secure handshakes yes;",
    "include \"\";",
    "method \"null\"; method \"null\";",
    "method \"null+aes128-ctr+gmac\";",
    "method \"salsa20+salsa2012+gmac\";",
    "method \"null+poly1305\";",
    "method \"null@l2tp\"; offload l2tp yes; mode multitap; persist interface no;",
    "interface \"%k%n\";",
    "mtu 65536;",
    "peer limit 4294967296;",
    "remote [::1]:1;",
    "\u{feff}mtu 1400;",
    "mtu 1400; \u{feff}",
    "peer \"a\" {",
    "a-",
    "é",
];

#[test]
fn config_snippets_match_real_fastd() {
    let Some(fastd) = real_fastd() else { return };
    let key = "2598c5d7e72f171731658ce35734ff7599e1840367422e1a9c5943c327ab5ea9";
    let dir = std::env::temp_dir().join(format!("fastd-privsep-snippets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, s) in SNIPPETS.iter().enumerate() {
        let name = format!("s{i}.conf");
        std::fs::write(dir.join(&name), s.replace("\"K\"", &format!("\"{key}\""))).unwrap();
        let run = |bin: &str| {
            Command::new(bin)
                .args(["--verify-config", "-c", &name])
                .current_dir(&dir)
                .output()
                .unwrap()
        };
        let (theirs, ours) = (run(fastd), run(BIN));
        assert_eq!(ours.status.code(), theirs.status.code(), "{s:?}");
        assert_eq!(fastd_lines(&ours.stderr), strip_ts(&theirs.stderr), "{s:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
