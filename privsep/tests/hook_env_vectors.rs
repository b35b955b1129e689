#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The helper renders exactly the environment fastd v22 gave its hooks
//! (testdata/hook-env, docs/config.md 4.3).

use policy::{HookEnv, HookKind, IfName, Mode, Mtu, PeerName, PublicKey};
use privsep::hooks::{render, EnvDelta, HOOK_VARS};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/hook-env");

fn key(hex: &str) -> PublicKey {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    PublicKey(k)
}

fn kind(name: &str) -> HookKind {
    match name {
        "pre-up" => HookKind::PreUp,
        "up" => HookKind::Up,
        "down" => HookKind::Down,
        "post-down" => HookKind::PostDown,
        "connect" => HookKind::Connect,
        "establish" => HookKind::Establish,
        "disestablish" => HookKind::Disestablish,
        "verify" => HookKind::Verify,
        other => panic!("unknown hook {other}"),
    }
}

fn apply(base: &BTreeMap<String, String>, d: &EnvDelta) -> BTreeMap<String, String> {
    let mut env = base.clone();
    for r in &d.remove {
        env.remove(*r);
    }
    for (k, v) in &d.set {
        env.insert((*k).to_owned(), v.clone());
    }
    env
}

fn addr(vars: &BTreeMap<String, String>, a: &str, p: &str) -> Option<SocketAddr> {
    let ip: IpAddr = vars.get(a)?.parse().unwrap();
    Some(SocketAddr::new(ip, vars.get(p)?.parse().unwrap()))
}

#[test]
fn every_recorded_hook_env_is_reproduced() {
    let mut checked = 0;
    for scenario in ["tun-alpha", "tun-anyremote", "tap-alpha"] {
        let mode = if scenario.starts_with("tap") {
            Mode::Tap
        } else {
            Mode::Tun
        };
        let mut files: Vec<_> = std::fs::read_dir(format!("{DIR}/{scenario}"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        // LOCAL_KEY of the scenario, from any hook that has it.
        let mut local_key = None;
        let mut cases = Vec::new();
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            let hook = text
                .lines()
                .find_map(|l| l.strip_prefix("# hook="))
                .unwrap()
                .to_owned();
            let vars: BTreeMap<String, String> = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            if let Some(k) = vars.get("LOCAL_KEY") {
                local_key = Some(key(k));
            }
            cases.push((hook, vars));
        }
        let local_key = local_key.unwrap();
        for (hook, vars) in cases {
            let env = HookEnv {
                interface: vars.get("INTERFACE").map(|s| IfName::new(s).unwrap()),
                interface_mtu: vars
                    .get("INTERFACE_MTU")
                    .map(|s| Mtu::new(s.parse().unwrap()).unwrap()),
                peer_key: vars.get("PEER_KEY").map(|s| key(s)),
                peer_name: vars.get("PEER_NAME").map(|s| PeerName::new(s).unwrap()),
                local: addr(&vars, "LOCAL_ADDRESS", "LOCAL_PORT"),
                peer: addr(&vars, "PEER_ADDRESS", "PEER_PORT"),
            };
            let pid: u32 = vars["FASTD_PID"].parse().unwrap();
            let base: BTreeMap<String, String> =
                [("MARKER".to_owned(), "inherited-from-fastd-env".to_owned())].into();
            let got = apply(&base, &render(kind(&hook), mode, pid, &local_key, &env));
            assert_eq!(got, vars, "{scenario} {hook}");
            checked += 1;
        }
    }
    assert_eq!(checked, 22, "all recorded hook runs");
}

#[test]
fn stale_values_are_removed_where_fastd_removes_them() {
    let base: BTreeMap<String, String> = HOOK_VARS
        .iter()
        .map(|v| ((*v).to_owned(), "stale".to_owned()))
        .collect();
    let k = PublicKey([7; 32]);
    let env = HookEnv {
        interface: Some(IfName::new("tun0").unwrap()),
        interface_mtu: Some(Mtu::new(1400).unwrap()),
        peer_key: Some(k),
        ..HookEnv::default()
    };
    // TUN up of an unnamed peer: PEER_NAME and the addresses are removed.
    let up = apply(&base, &render(HookKind::Up, Mode::Tun, 1, &k, &env));
    assert!(!up.contains_key("PEER_NAME") && !up.contains_key("PEER_ADDRESS"));
    // pre-up leaves the inherited values alone.
    let pre = apply(
        &base,
        &render(HookKind::PreUp, Mode::Tun, 1, &k, &HookEnv::default()),
    );
    assert_eq!(pre["PEER_NAME"], "stale");
    assert_eq!(pre["FASTD_PID"], "1");
}
