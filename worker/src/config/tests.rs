//! Parser tests on in-memory files.

use super::*;
use std::path::Path;

const K1: &str = "2598c5d7e72f171731658ce35734ff7599e1840367422e1a9c5943c327ab5ea9";
const K2: &str = "d28585393d7710566024f72c5dcec2cb004ba59a4547ad00ef7a307bab0593be";

fn load(src: &MemSource, file: &str) -> Result<Config, (ConfigError, Vec<Diagnostic>)> {
    let mut l = Loader::new(src);
    match l.load_file(Path::new(file)) {
        Ok(()) => Ok(l.finish().0),
        Err(e) => Err((e, l.take_diagnostics())),
    }
}

fn one(text: &str) -> Result<Config, ConfigError> {
    let src = MemSource::new().with_file("t.conf", text);
    load(&src, "t.conf").map_err(|e| e.0)
}

fn err_at(text: &str) -> (String, u32, u32) {
    match one(text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => {
            let l = e.location().expect("located").clone();
            (l.kind.as_str().to_owned(), l.pos.line, l.pos.col)
        }
    }
}

#[test]
fn global_statements() {
    let c = one(&format!(
        "user \"nobody\"; group \"nogroup\"; drop capabilities early; mode multitap; \
         persist interface no; offload l2tp yes; mtu 0x5a8; packet mark 4294967297; \
         forward yes; hide ip addresses yes; status socket \"/run/s\"; pmtu auto; \
         bind 0.0.0.0:10000 default ipv4; bind any port 0 interface \"lo\"; \
         bind [fe80::1%lo]:5 default; secret \"abc\"; \
         log to syslog as \"x\" level debug; log level warn; \
         peer \"p\" {{ key \"{K1}\"; remote [::ffff:c000:201]:1; remote ipv4 \"h\" port 2; \
         remote [fe80::1%eth0]:3; float yes; interface \"p%k\"; mtu 1400; }}"
    ))
    .unwrap();
    assert_eq!(c.user.as_deref(), Some(std::ffi::OsStr::new("nobody")));
    assert_eq!(c.drop_capabilities, DropCapabilities::Early);
    assert_eq!(c.mode, Mode::Multitap);
    assert!(!c.persist_interface && c.offload_l2tp && c.forward && c.hide_ip_addresses);
    assert_eq!(c.mtu, 1448);
    assert_eq!(c.packet_mark, 1);
    assert_eq!(c.binds.len(), 3);
    assert_eq!(c.binds[0].port, Some(10000));
    assert!(c.binds[0].default_ipv4 && !c.binds[0].default_ipv6);
    assert_eq!(c.binds[1].address, BindAddress::Any);
    assert_eq!(c.binds[1].port, Some(0));
    assert!(c.binds[2].default_ipv4 && c.binds[2].default_ipv6);
    assert_eq!(c.log.syslog_level, Some(LogLevel::Warn));
    assert_eq!(c.log.stderr_level, None);
    assert_eq!(c.log.syslog_ident, "x");
    let p = &c.peers[0];
    assert_eq!(
        p.remotes[0],
        Remote::Address("192.0.2.1:1".parse().unwrap())
    );
    assert_eq!(
        p.remotes[1],
        Remote::Host {
            name: "h".into(),
            port: 2,
            family: AddressFamily::Ipv4
        }
    );
    assert_eq!(
        p.remotes[2],
        Remote::Host {
            name: "fe80::1%eth0".into(),
            port: 3,
            family: AddressFamily::Ipv6
        }
    );
    assert!(p.float && p.is_floating());
    assert_eq!(p.mtu, Some(1400));
}

#[test]
fn log_level_order_matters() {
    let c = one("log level warn; log to syslog level debug;").unwrap();
    assert_eq!(c.log.stderr_level, Some(LogLevel::Warn));
    assert_eq!(c.log.syslog_level, Some(LogLevel::Debug));
    let c = one("log to syslog level debug; log level warn;").unwrap();
    assert_eq!(c.log.stderr_level, None);
    assert_eq!(c.log.syslog_level, Some(LogLevel::Warn));
    let c = one("").unwrap();
    assert_eq!(c.log.stderr_level, Some(LogLevel::Verbose));
}

#[test]
fn groups_hooks_and_inheritance() {
    let c = one(&format!(
        "on up \"u\"; on establish sync \"e\"; method \"null\"; peer limit 5;\n\
         peer group \"g\" {{ peer limit 2; on verify \"v\"; on up async \"gu\";\n\
           peer group \"n\" {{ method \"salsa2012+umac\"; peer \"x\" {{ key \"{K1}\"; }} }} }}"
    ))
    .unwrap();
    assert_eq!(c.groups.len(), 3);
    let n = GroupId(2);
    assert_eq!(c.groups[2].parent, Some(GroupId(1)));
    assert_eq!(c.groups[0].children, vec![GroupId(1)]);
    assert_eq!(c.peers[0].group, n);
    assert_eq!(c.hook_for(n, HookKind::Up).unwrap().command, "gu");
    let e = c.hook_for(n, HookKind::Establish).unwrap();
    assert!(e.sync);
    assert_eq!(e.cwd, Path::new("/"));
    assert_eq!(c.methods_for(n), ["salsa2012+umac".to_string()]);
    assert_eq!(c.methods_for(GroupId(1)), ["null".to_string()]);
    assert_eq!(c.on_verify.as_ref().unwrap().1, GroupId(1));
    assert!(!c.on_verify.as_ref().unwrap().0.sync);
    assert_eq!(c.groups[1].peer_limit, Some(2));
    assert_eq!(c.groups[0].peer_limit, Some(5));
    assert!(!c.groups[0].hooks.up.as_ref().unwrap().sync);
}

#[test]
fn errors_at_fastd_positions() {
    let s = |k: &str, l, c| (k.to_string(), l, c);
    assert_eq!(
        err_at("mode tun\ninterface \"x\";"),
        s("syntax error", 2, 1)
    );
    assert_eq!(err_at("mtu 1448\n"), s("syntax error", 1, 9));
    assert_eq!(err_at("mtu 1448"), s("syntax error", 1, 5));
    assert_eq!(err_at("mtu 100;"), s("invalid MTU", 1, 5));
    assert_eq!(err_at("mtu 18446744073709551616;"), s("invalid MTU", 1, 5));
    assert_eq!(err_at("bind 0.0.0.0:70000;"), s("invalid port", 1, 13));
    assert_eq!(
        err_at("peer limit 2147483648;"),
        s("invalid peer limit", 1, 12)
    );
    assert_eq!(
        err_at("interface \"a/b\";"),
        s("invalid interface name", 1, 11)
    );
    assert_eq!(
        err_at("interface \"%x\";"),
        s("invalid interface name", 1, 11)
    );
    assert_eq!(err_at("on pre-up sync \"x\";"), s("syntax error", 1, 11));
    assert_eq!(
        err_at("peer group \"g\" { mtu 1400; }"),
        s("syntax error", 1, 18)
    );
    assert_eq!(
        err_at("peer group \"g\" { interface \"a\"; }"),
        s("syntax error", 1, 18)
    );
    assert_eq!(
        err_at(&format!("peer \"x\" {{ key \"{K1}\"; }};")),
        s("syntax error", 1, 85)
    );
    assert_eq!(err_at(";"), s("syntax error", 1, 1));
    assert_eq!(err_at("remote ipv6 1.2.3.4:5;"), s("syntax error", 1, 1));
    assert_eq!(
        err_at("peer \"x\" { key \"k\";\n  remote ipv6 1.2.3.4:5; }"),
        s("syntax error", 2, 15)
    );
    assert_eq!(
        err_at("peer \"x\" { remote ipv4 [::1]:5; }"),
        s("syntax error", 1, 24)
    );
    assert_eq!(
        err_at("peer \"x\" { remote 1.2.3.4:0; }"),
        s("invalid port", 1, 26)
    );
    assert_eq!(
        err_at("peer \"x\" {\n}"),
        s("invalid peer definition", 2, 1)
    );
    assert_eq!(
        err_at("bind [fe80::1%lo] interface \"x\";"),
        s("syntax error", 1, 19)
    );
}

#[test]
fn peer_definitions() {
    let src = MemSource::new()
        .with_file(
            "a.conf",
            "include peer \"p/x\";\ninclude peer \"p/x\" as \"y\";\n",
        )
        .with_file("p/x", &format!("key \"{K1}\";\n"));
    let (e, d) = load(&src, "a.conf").unwrap_err();
    assert_eq!(
        e.to_string(),
        "config error: invalid peer definition at a.conf:2:9"
    );
    assert_eq!(
        d[0].message,
        "duplicate key used by peers <y> and {2598c5d7e72f1717}, disabling both"
    );
    let c = one(&format!(
        "peer \"a\" {{ key \"{K1}\"; }} peer \"a\" {{ key \"{}\"; }}",
        K2.to_uppercase()
    ))
    .unwrap();
    assert_eq!(c.peers.len(), 2);
    assert_eq!(c.peers[1].key[0], 0xd2);
    let e = one(&format!("peer \"x\" {{ key \"{K1}\"; key \"zz\"; }}")).unwrap_err();
    assert_eq!(
        e.location().unwrap().kind,
        LocatedKind::InvalidPeerDefinition
    );
}

#[test]
fn includes_are_relative_to_the_including_file() {
    let src = MemSource::new()
        .with_file("etc/main.conf", "include \"sub/a.conf\";\n")
        .with_file(
            "etc/sub/a.conf",
            "include \"deeper/x.conf\";\non up \"./up\";\n",
        )
        .with_file("etc/sub/deeper/x.conf", "mtu 1400;\n");
    let c = load(&src, "etc/main.conf").unwrap();
    assert_eq!(c.mtu, 1400);
    assert_eq!(
        c.groups[0].hooks.up.as_ref().unwrap().cwd,
        Path::new("/etc/sub")
    );
}

#[test]
fn include_errors() {
    let src = MemSource::new()
        .with_file("loop.conf", "include \"loop.conf\";")
        .with_file("nine.conf", "include \"missing.conf\";")
        .with_file("g.conf", "peer group \"g\" { include \"part\"; }")
        .with_file("part", "method \"null\";\nmtu 1400;\n");
    assert!(matches!(
        load(&src, "loop.conf"),
        Err((ConfigError::IncludeDepth, _))
    ));
    let e = load(&src, "nine.conf").unwrap_err().0;
    assert_eq!(
        e.to_string(),
        "can't open config file `missing.conf': No such file or directory"
    );
    let e = load(&src, "g.conf").unwrap_err().0;
    assert_eq!(e.to_string(), "config error: syntax error at part:2:1");
    let e = load(&src, "nope").unwrap_err().0;
    assert!(matches!(e, ConfigError::CantOpen { .. }));
}

#[test]
fn extensions() {
    let c = one(&format!(
        "interface address 10.0.0.1/24; interface address [fd00::1]/64;\n\
         redirect gateway via 10.0.0.2; masquerade from 10.0.0.0/24 out \"eth0\"; masquerade out \"eth1\";\n\
         peer group \"g\" {{ interface address 10.1.0.1/16; redirect gateway; }}\n\
         peer \"p\" {{ key \"{K1}\"; interface address 10.9.0.1/32; redirect gateway via [fd00::2]; }}"
    ))
    .unwrap();
    assert_eq!(c.groups[0].interface_addresses.len(), 2);
    assert_eq!(c.groups[0].interface_addresses[1].len, 64);
    assert_eq!(
        c.groups[0].redirect_gateway.unwrap().via,
        Some("10.0.0.2".parse().unwrap())
    );
    assert_eq!(c.masquerade.len(), 2);
    assert_eq!(c.masquerade[0].from.unwrap().len, 24);
    assert_eq!(c.masquerade[1].from, None);
    assert_eq!(
        c.groups[1].redirect_gateway,
        Some(RedirectGateway { via: None })
    );
    assert_eq!(c.peers[0].interface_addresses[0].len, 32);
    assert!(c.peers[0].redirect_gateway.unwrap().via.unwrap().is_ipv6());
    assert_eq!(
        err_at("interface address 10.0.0.1/33;"),
        ("invalid prefix length".into(), 1, 19)
    );
    assert_eq!(
        err_at("peer group \"g\" { masquerade out \"x\"; }"),
        ("syntax error".into(), 1, 18)
    );
}

#[test]
fn verify_checks() {
    let c = one("method \"foo\"; offload l2tp yes;").unwrap();
    assert_eq!(
        c.verify().unwrap_err().to_string(),
        "L2TP offload is available in multi-TAP mode only"
    );
    let c = one("method \"foo\"; offload l2tp yes; mode multitap;").unwrap();
    assert_eq!(
        c.verify().unwrap_err().to_string(),
        "`persist iface' must be set to `no' for L2TP offload"
    );
    let c = one("method \"salsa2012+umac\";\nmethod \"salsa2012+foo\";").unwrap();
    assert_eq!(
        c.verify().unwrap_err().to_string(),
        "config error: method `salsa2012+foo' not supported"
    );
    let mut c = one("").unwrap();
    assert!(matches!(c.check_start(), Err(ConfigError::NoPeers)));
    assert!(matches!(c.secret_key_bytes(), Err(ConfigError::NoSecret)));
}

#[test]
fn peer_key_must_be_a_curve_point() {
    let bad = (0u8..=255)
        .map(|i| {
            let mut k = [0u8; 32];
            k[0] = i;
            k[1] = 1;
            k
        })
        .find(|k| crate::keys::PublicKey::from_bytes(k).is_err())
        .expect("some 32-byte string is not a point");
    let hex: String = bad.iter().map(|b| format!("{b:02x}")).collect();
    let (e, d) = {
        let src = MemSource::new().with_file("t.conf", &format!("peer \"x\" {{ key \"{hex}\"; }}"));
        load(&src, "t.conf").unwrap_err()
    };
    assert_eq!(
        e.location().unwrap().kind,
        LocatedKind::InvalidPeerDefinition
    );
    assert_eq!(d[0].message, "no valid key configured for peer <x>");
}

#[test]
fn empty_include_name_cannot_be_opened() {
    let e = one("include \"\";").unwrap_err();
    assert_eq!(
        e.to_string(),
        "can't open config file `': No such file or directory"
    );
}

#[test]
fn peer_dir_files() {
    let src = MemSource::new()
        .with_file("d/good", &format!("key \"{K1}\";\nremote \"h\":1;\n"))
        .with_file("d/nokey", "float yes;\n")
        .with_file("d/broken", "garbage in a peer file\n");
    let mut l = Loader::new(&src);
    let dir = Path::new("/d");
    let p = l
        .parse_peer_dir_file(dir, "good".as_ref(), GroupId::ROOT)
        .unwrap()
        .unwrap();
    assert_eq!(p.name.as_deref(), Some(&b"good"[..]));
    assert_eq!(p.remotes.len(), 1);
    assert!(l
        .parse_peer_dir_file(dir, "nokey".as_ref(), GroupId::ROOT)
        .unwrap()
        .is_none());
    assert_eq!(
        l.take_diagnostics()[0].message,
        "no valid key configured for peer <nokey>"
    );
    let e = l
        .parse_peer_dir_file(dir, "broken".as_ref(), GroupId::ROOT)
        .unwrap_err();
    assert_eq!(e.to_string(), "config error: syntax error at broken:1:1");
}

#[test]
fn stdin_is_named_null() {
    let mut src = MemSource::new();
    src.stdin = b"mtu 1400".to_vec();
    let mut l = Loader::new(&src);
    let e = l.load_stdin().unwrap_err();
    assert_eq!(e.to_string(), "config error: syntax error at (null):1:5");
}

#[test]
fn config_peer_has_no_name() {
    let src = MemSource::new()
        .with_file("p", &format!("key \"{K1}\";"))
        .with_file("empty", "");
    let mut l = Loader::new(&src);
    l.load_peer_file(Path::new("p")).unwrap();
    assert_eq!(l.config().peers[0].name, None);
    assert!(matches!(
        l.load_peer_file(Path::new("p")),
        Err(ConfigError::InvalidPeerDefinition)
    ));
    assert!(matches!(
        l.load_peer_file(Path::new("empty")),
        Err(ConfigError::InvalidPeerDefinition)
    ));
    let d: Vec<String> = l
        .take_diagnostics()
        .into_iter()
        .map(|d| d.message)
        .collect();
    assert_eq!(
        d,
        [
            "duplicate key used by peers {2598c5d7e72f1717} and {2598c5d7e72f1717}, disabling both",
            "no valid key configured for peer (null)"
        ]
    );
}
