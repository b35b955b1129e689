//! A community gateway's world: a Gluon-style gateway (`mode tap`, one device in a Linux bridge,
//! peer directory, `on verify`, `peer limit`, status socket, `user`/`group`, salsa2012+umac
//! and null@l2tp, MTU 1406) with 64 clients, run twice by the same driver: first with the
//! real fastd v22 as the gateway (the reference), then with fastd-privsep. The status
//! documents both gateways give at the same points of the scenario are compared field by
//! field.
//!
//! ```text
//!  client ns c0..c65 (one per client: tap "vpn" 172.16.16.10+i, u0 198.51.100.10+i / 2001:db8::10xx)
//!       │ veth u0 ─ u<i>                                   lan ns: eth0 172.16.16.1
//!       └──────────── bridge "ul" 198.51.100.1, 2001:db8::1 ─ gw ns ─ bridge "br0" ─ veth
//!                                  gateway fastd :10000 ── tap "gw0" ─┘
//! ```
//!
//! Counters are comparable because the tunnel network is silent except for the test's pings:
//! IPv6 is off on the taps, the bridge and the lan host, every neighbour entry is static, and
//! the bridge does no multicast snooping (a snooping bridge joins 224.0.0.106 and reports it
//! with IGMP through every port, to whichever peers happen to be connected by then).
//!
//! Figures (time to establish, RSS, status socket answer time) are printed, not asserted:
//! `cargo test --profile ci --test gateway_scale -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Clients 0..64 are the gateway's population; 64 is refused by `on verify`; 65 gets its
/// peer file only at the SIGHUP.
const CLIENTS: usize = 64;
const REFUSED: usize = 64;
const LATE: usize = 65;
const ALL: usize = 66;
/// Two clients that reach each other through the gateway (`forward yes`).
const PARTNERS: (usize, usize) = (0, 2);
/// Clients whose underlay address changes mid-session (real fastd, real fastd with a peer
/// file, ours).
const FLOATERS: [usize; 3] = [1, 9, 13];
/// Clients restarted with a new port (real fastd with a peer file, ours without).
const RESTARTED: [usize; 2] = [3, 29];
/// The client whose peer file is deleted before the SIGHUP.
const DELETED: usize = 6;

const LAN_MAC: &str = "02:00:00:00:01:01";
const GW_PORT: u16 = 10000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Gw {
    Fastd,
    Ours,
}

impl Gw {
    fn bin(self) -> &'static str {
        match self {
            Gw::Fastd => FASTD,
            Gw::Ours => OURS,
        }
    }
}

/// Key pairs (secret public), line 0 the gateway's, line 1 + i client i's.
fn keys() -> Vec<(String, String)> {
    include_str!("../testdata/gateway_scale/keys")
        .lines()
        .map(|l| {
            let (s, p) = l.split_once(' ').unwrap();
            (s.to_owned(), p.to_owned())
        })
        .collect()
}

/// What client i is.
struct Spec {
    /// Known from the gateway's peer directory (else admitted by `on verify`).
    known: bool,
    /// fastd-privsep instead of the real fastd.
    ours: bool,
    /// Reaches the gateway over IPv6.
    v6: bool,
    methods: &'static [&'static str],
}

fn spec(i: usize) -> Spec {
    Spec {
        known: i < CLIENTS && i.is_multiple_of(3),
        ours: i % 8 == 5,
        v6: i % 4 == 2,
        methods: match i % 5 {
            1 => &["null@l2tp"],
            3 => &["salsa2012+umac"],
            // Gluon's order.
            _ => &["salsa2012+umac", "null@l2tp"],
        },
    }
}

fn tunnel_ip(i: usize) -> String {
    format!("172.16.16.{}", 10 + i)
}
fn client_mac(i: usize) -> String {
    format!("02:00:00:10:00:{i:02x}")
}
fn underlay4(i: usize) -> String {
    format!("198.51.100.{}", 10 + i)
}
fn floated4(i: usize) -> String {
    format!("198.51.100.{}", 100 + i)
}
fn underlay6(i: usize) -> String {
    format!("2001:db8::{:x}", 0x1000 + i)
}
fn port(i: usize, restarted: bool) -> u16 {
    (if restarted { 30000 } else { 20000 }) + i as u16
}
/// The client's address as the gateway's status socket shows it.
fn status_address(i: usize, floated: bool, restarted: bool) -> String {
    let p = port(i, restarted);
    if spec(i).v6 {
        format!("[{}]:{p}", underlay6(i))
    } else if floated {
        format!("{}:{p}", floated4(i))
    } else {
        format!("{}:{p}", underlay4(i))
    }
}

/// `ip -batch -` (in `ns` when given): one process for many commands.
fn ip_batch(ns: Option<&str>, lines: &str) {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), lines.as_bytes()).unwrap();
    assert!(
        child.wait().unwrap().success(),
        "ip -batch failed:\n{lines}"
    );
}

/// Runs `f` for every index on its own thread; results in index order.
fn par<T: Send>(idx: &[usize], f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let f = &f;
    std::thread::scope(|s| {
        let hs: Vec<_> = idx.iter().map(|&i| s.spawn(move || f(i))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// A status document in member order (serde_json's own Value sorts object keys).
#[derive(Clone, Debug, PartialEq)]
enum J {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl<'de> Deserialize<'de> for J {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<J, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = J;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a status document")
            }
            fn visit_unit<E>(self) -> Result<J, E> {
                Ok(J::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<J, E> {
                Ok(J::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<J, E> {
                Ok(J::Int(n))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<J, E> {
                i64::try_from(n).map(J::Int).map_err(E::custom)
            }
            fn visit_str<E>(self, s: &str) -> Result<J, E> {
                Ok(J::Str(s.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<J, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = a.next_element()? {
                    v.push(e);
                }
                Ok(J::Arr(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<J, A::Error> {
                let mut v = Vec::new();
                while let Some(kv) = a.next_entry()? {
                    v.push(kv);
                }
                Ok(J::Obj(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl J {
    fn get(&self, key: &str) -> Option<&J> {
        match self {
            J::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    fn at(&self, path: &[&str]) -> Option<&J> {
        path.iter().try_fold(self, |j, k| j.get(k))
    }
    fn int(&self) -> Option<i64> {
        match self {
            J::Int(n) => Some(*n),
            _ => None,
        }
    }
    fn str(&self) -> Option<&str> {
        match self {
            J::Str(s) => Some(s),
            _ => None,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            J::Null => "null",
            J::Bool(_) => "bool",
            J::Int(_) => "int",
            J::Str(_) => "string",
            J::Arr(_) => "array",
            J::Obj(_) => "object",
        }
    }

    /// json-c's "spaced" form (docs/config.md §5.3), to check a document's formatting.
    fn spaced(&self, out: &mut String) {
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => write!(out, "{b}").unwrap(),
            J::Int(n) => write!(out, "{n}").unwrap(),
            J::Str(s) => {
                out.push('"');
                for c in s.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '/' => out.push_str("\\/"),
                        '\n' => out.push_str("\\n"),
                        '\t' => out.push_str("\\t"),
                        '\r' => out.push_str("\\r"),
                        c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            J::Arr(v) if v.is_empty() => out.push_str("[ ]"),
            J::Obj(m) if m.is_empty() => out.push_str("{ }"),
            J::Arr(v) => {
                out.push_str("[ ");
                for (n, e) in v.iter().enumerate() {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    e.spaced(out);
                }
                out.push_str(" ]");
            }
            J::Obj(m) => {
                out.push_str("{ ");
                for (n, (k, v)) in m.iter().enumerate() {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    J::Str(k.clone()).spaced(out);
                    out.push_str(": ");
                    v.spaced(out);
                }
                out.push_str(" }");
            }
        }
    }
}

/// One status document: the raw text and its parse.
#[derive(Clone)]
struct Doc {
    raw: String,
    j: J,
}

impl Doc {
    fn parse(raw: String) -> Result<Doc, String> {
        let j: J = serde_json::from_str(&raw).map_err(|e| format!("{e}: {raw}"))?;
        Ok(Doc { raw, j })
    }
    fn peer(&self, key: &str) -> Option<&J> {
        self.j.at(&["peers", key])
    }
    fn established(&self, key: &str) -> Option<i64> {
        self.peer(key)?.at(&["connection", "established"])?.int()
    }
    fn address(&self, key: &str) -> Option<&str> {
        self.peer(key)?.get("address")?.str()
    }
}

/// Reads one document from the status socket (the client sends nothing and reads to EOF).
fn read_status(path: &Path) -> Result<Doc, String> {
    let mut s = UnixStream::connect(path).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw)
        .map_err(|e| format!("read: {e} after {raw:?}"))?;
    Doc::parse(raw)
}

fn rss_kib(pid: i32) -> u64 {
    status_field(pid, "VmRSS")
        .trim_end_matches(" kB")
        .parse()
        .unwrap()
}

/// The world: namespaces, configs and the processes in them. Drop stops every process
/// (all signalled at once, then reaped) before the namespaces go.
struct World {
    gw: Gw,
    keys: Vec<(String, String)>,
    clients: Vec<Option<Daemon>>,
    gateway: Option<Daemon>,
    cns: Vec<Netns>,
    gwns: Netns,
    lan: Netns,
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        let all: Vec<&Daemon> = self.clients.iter().flatten().chain(&self.gateway).collect();
        for d in &all {
            d.signal(libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for slot in self
            .clients
            .iter_mut()
            .chain(std::iter::once(&mut self.gateway))
        {
            if let Some(d) = slot.as_mut() {
                while matches!(d.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            // Daemon's own Drop kills what is left.
            *slot = None;
        }
    }
}

impl World {
    fn build(gw: Gw) -> World {
        let keys = keys();
        let (tmp, dir) = tempdir();
        let lan = Netns::new("lan");
        let gwns = Netns::new("gw");
        let cns: Vec<Netns> = (0..ALL).map(|i| Netns::new(&format!("c{i}"))).collect();
        // The tunnel network stays silent: no IPv6 (no MLD, RS, DAD) behind the gateway.
        lan.run(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        lan.run(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        let mut host = format!(
            "link add eth0 netns {} type veth peer name lan0 netns {}\n",
            lan.0, gwns.0
        );
        for (i, ns) in cns.iter().enumerate() {
            writeln!(
                host,
                "link add u0 netns {} type veth peer name u{i} netns {}",
                ns.0, gwns.0
            )
            .unwrap();
        }
        ip_batch(None, &host);
        let mut g = String::from(
            "link add ul type bridge\nlink set ul up\naddr add 198.51.100.1/24 dev ul\n\
             addr add 2001:db8::1/64 dev ul nodad\nlink add br0 type bridge mcast_snooping 0\n",
        );
        for i in 0..ALL {
            writeln!(g, "link set u{i} master ul up").unwrap();
        }
        ip_batch(Some(&gwns.0), &g);
        gwns.run(&["sysctl", "-qw", "net.ipv6.conf.br0.disable_ipv6=1"]);
        ip_batch(
            Some(&gwns.0),
            "link set lan0 master br0 up\nlink set br0 up\n",
        );
        let mut l = format!(
            "link set eth0 address {LAN_MAC}\naddr add 172.16.16.1/24 dev eth0\nlink set eth0 up\n"
        );
        for i in 0..ALL {
            writeln!(
                l,
                "neigh replace {} lladdr {} dev eth0 nud permanent",
                tunnel_ip(i),
                client_mac(i)
            )
            .unwrap();
        }
        ip_batch(Some(&lan.0), &l);
        par(&(0..ALL).collect::<Vec<_>>(), |i| {
            ip_batch(
                Some(&cns[i].0),
                &format!(
                    "addr add {}/24 dev u0\naddr add {}/64 dev u0 nodad\nlink set u0 up\n",
                    underlay4(i),
                    underlay6(i)
                ),
            )
        });

        let w = World {
            gw,
            keys,
            clients: (0..ALL).map(|_| None).collect(),
            gateway: None,
            cns,
            gwns,
            lan,
            _tmp: tmp,
            dir,
        };
        w.write_gateway();
        for i in 0..ALL {
            w.write_client(i, false);
        }
        w
    }

    fn gw_dir(&self) -> PathBuf {
        self.dir.join("gw")
    }
    fn status_path(&self) -> PathBuf {
        self.gw_dir().join("run/status.sock")
    }
    fn public(&self, i: usize) -> &str {
        &self.keys[1 + i].1
    }

    fn write_gateway(&self) {
        let d = self.gw_dir();
        std::fs::create_dir_all(d.join("peers")).unwrap();
        std::fs::create_dir_all(d.join("run")).unwrap();
        // fastd creates the status socket and runs `on verify` as `user`.
        sh_ok(
            "chmod",
            &["755", self.dir.to_str().unwrap(), d.to_str().unwrap()],
        );
        sh_ok(
            "chown",
            &["nobody:nogroup", d.join("run").to_str().unwrap()],
        );
        std::fs::write(
            d.join("fastd.conf"),
            format!(
                "log level verbose;\nmode tap;\ninterface \"gw0\";\nmtu 1406;\n\
                 bind 198.51.100.1:{GW_PORT};\nbind [2001:db8::1]:{GW_PORT};\n\
                 secret \"{}\";\nmethod \"salsa2012+umac\";\nmethod \"null@l2tp\";\n\
                 user \"nobody\";\ngroup \"nogroup\";\npeer limit 70;\nforward yes;\n\
                 status socket \"{}\";\n\
                 on up \"echo 1 > /proc/sys/net/ipv6/conf/$INTERFACE/disable_ipv6; \
                 ip link set $INTERFACE master br0 && ip link set $INTERFACE up\";\n\
                 on verify \"{}\";\ninclude peers from \"peers\";\n",
                self.keys[0].0,
                self.status_path().display(),
                d.join("verify").display(),
            ),
        )
        .unwrap();
        write_exec(
            &d.join("verify"),
            &format!(
                "#!/bin/sh\necho \"$PEER_KEY\" >> {run}/verify.seen\n\
                 exec grep -qx \"$PEER_KEY\" {dir}/allowed\n",
                run = d.join("run").display(),
                dir = d.display()
            ),
        );
        let mut allowed = String::new();
        for i in 0..CLIENTS {
            if spec(i).known {
                self.add_peer_file(i);
            } else {
                writeln!(allowed, "{}", self.public(i)).unwrap();
            }
        }
        std::fs::write(d.join("allowed"), allowed).unwrap();
    }

    fn add_peer_file(&self, i: usize) {
        std::fs::write(
            self.gw_dir().join(format!("peers/c{i}")),
            format!("key \"{}\";\n", self.public(i)),
        )
        .unwrap();
    }

    fn write_client(&self, i: usize, restarted: bool) {
        let d = self.dir.join(format!("c{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let s = spec(i);
        let methods: String = s
            .methods
            .iter()
            .map(|m| format!("method \"{m}\";\n"))
            .collect();
        let remote = if s.v6 {
            format!("[2001:db8::1]:{GW_PORT}")
        } else {
            format!("198.51.100.1:{GW_PORT}")
        };
        let (pa, pb) = PARTNERS;
        let partner = match i {
            _ if i == pa => Some(pb),
            _ if i == pb => Some(pa),
            _ => None,
        }
        .map(|p| {
            format!(
                " && ip neigh replace {} lladdr {} dev $INTERFACE nud permanent",
                tunnel_ip(p),
                client_mac(p)
            )
        })
        .unwrap_or_default();
        std::fs::write(
            d.join("fastd.conf"),
            format!(
                "log level verbose;\nmode tap;\ninterface \"vpn\";\nmtu 1406;\n\
                 bind any:{};\nsecret \"{}\";\n{methods}\
                 on up \"echo 1 > /proc/sys/net/ipv6/conf/$INTERFACE/disable_ipv6; \
                 ip link set $INTERFACE address {} && ip addr add {}/24 dev $INTERFACE && \
                 ip link set $INTERFACE up && \
                 ip neigh replace 172.16.16.1 lladdr {LAN_MAC} dev $INTERFACE nud permanent{partner}\";\n\
                 peer \"gw\" {{ key \"{}\"; remote {remote}; }}\n",
                port(i, restarted),
                self.keys[1 + i].0,
                client_mac(i),
                tunnel_ip(i),
                self.keys[0].1,
            ),
        )
        .unwrap();
    }

    fn start_gateway(&mut self) {
        let d = Daemon::start(&self.gwns, self.gw.bin(), &self.gw_dir().join("fastd.conf"));
        self.gateway = Some(d);
        let path = self.status_path();
        self.wait("the status socket", Duration::from_secs(20), || {
            read_status(&path).is_ok()
        });
    }

    fn start_client(&mut self, i: usize) {
        let bin = if spec(i).ours { OURS } else { FASTD };
        let conf = self.dir.join(format!("c{i}/fastd.conf"));
        self.clients[i] = Some(Daemon::start(&self.cns[i], bin, &conf));
    }

    fn gateway(&self) -> &Daemon {
        self.gateway.as_ref().unwrap()
    }

    /// The gateway's log (its end: it is long) and the given clients' logs.
    fn logs(&self, clients: &[usize]) -> String {
        let g = self.gateway.as_ref().map(|d| d.log()).unwrap_or_default();
        let tail = &g[g.len().saturating_sub(6000)..];
        let mut s = format!("{:?} gateway log (end):\n{tail}\n", self.gw);
        for &i in clients {
            if let Some(c) = &self.clients[i] {
                let l = c.log();
                writeln!(
                    s,
                    "client {i} log (end):\n{}",
                    &l[l.len().saturating_sub(2000)..]
                )
                .unwrap();
            }
        }
        s
    }

    fn status(&self) -> Doc {
        read_status(&self.status_path())
            .unwrap_or_else(|e| panic!("status socket: {e}\n{}", self.logs(&[])))
    }

    /// Polls `cond` for at most `limit`; panics with the gateway's log otherwise.
    fn wait(&self, what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
        let end = Instant::now() + limit;
        while !cond() {
            assert!(
                Instant::now() < end,
                "{:?}: timed out waiting for {what}\n{}",
                self.gw,
                self.logs(&[])
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every client in `idx` has an established session on the gateway; also
    /// returns when each was first seen established (ms after the call).
    fn wait_established(&self, idx: &[usize], limit: Duration) -> (Doc, BTreeMap<usize, u128>) {
        let t = Instant::now();
        let mut last = None;
        let mut seen = BTreeMap::new();
        self.wait(&format!("sessions of {idx:?}"), limit, || {
            let Ok(doc) = read_status(&self.status_path()) else {
                return false;
            };
            for &i in idx {
                if doc.established(self.public(i)).is_some() {
                    seen.entry(i).or_insert_with(|| t.elapsed().as_millis());
                }
            }
            last = Some(doc);
            seen.len() == idx.len()
        });
        (last.unwrap(), seen)
    }

    /// The gateway's RSS in KiB: (fastd, or our helper; our worker).
    fn rss(&self) -> (u64, Option<u64>) {
        let g = self.gateway();
        (rss_kib(g.pid()), g.worker().map(rss_kib))
    }

    /// n echo requests, one after the other, from client i to `to`; each answer must come
    /// back within 5 s. Exactly n requests, so the gateway's counters are known. (`ping -c n`
    /// waits only two round trips for the rest once one answer came back, and `-w` sends
    /// more than n.)
    fn ping(&self, i: usize, to: &str, n: usize) -> Result<(), String> {
        self.ping_within(i, to, n, 5)
    }

    fn ping_within(&self, i: usize, to: &str, n: usize, secs: u32) -> Result<(), String> {
        let w = secs.to_string();
        for _ in 0..n {
            let (_, out) = self.cns[i].exec(&["ping", "-n", "-c", "1", "-W", &w, to]);
            if !out.contains(" 1 received") {
                return Err(format!("client {i} -> {to}: {out}"));
            }
        }
        Ok(())
    }
}

/// What one run of the scenario leaves for the comparison.
struct Outcome {
    /// After every client pinged (counters deterministic).
    traffic: Doc,
    /// At the end, after the SIGHUP, floats, restarts and the SIGUSR2.
    end: Doc,
}

fn scenario(gw: Gw) -> Outcome {
    let t0 = Instant::now();
    let mut w = World::build(gw);
    eprintln!("[{gw:?}] world built in {:?}", t0.elapsed());
    w.start_gateway();

    // One peer: the gateway's footprint at 1.
    w.start_client(0);
    w.wait_established(&[0], Duration::from_secs(30));
    let rss1 = w.rss();

    // The other 63 and the one `on verify` refuses.
    let t = Instant::now();
    for i in (1..CLIENTS).chain([REFUSED]) {
        w.start_client(i);
    }
    let population: Vec<usize> = (0..CLIENTS).collect();
    let (_, times) = w.wait_established(&population, Duration::from_secs(90));
    let to_establish = t.elapsed();
    // The slowest peer-directory client and the slowest one `on verify` admitted.
    let slowest = |known: bool| {
        times
            .iter()
            .filter(|(&i, _)| i > 0 && spec(i).known == known)
            .map(|(_, &t)| t)
            .max()
    };
    let rss64 = w.rss();
    let t = Instant::now();
    let doc = w.status();
    let answer = t.elapsed();
    eprintln!(
        "[{gw:?}] 63 clients established in {to_establish:?} (slowest known {:?} ms, slowest \
         verified {:?} ms); gateway RSS (KiB) at 1 peer {rss1:?}, \
         at 64 peers {rss64:?} (fastd | helper, worker); status answer at 64 peers {answer:?} \
         ({} bytes)",
        slowest(true),
        slowest(false),
        doc.raw.len()
    );

    eprintln!("[{gw:?}] established done at {:?}", t0.elapsed());
    // One broadcast from the host behind the bridge (every peer gets it, no client answers a
    // broadcast ping): from then on the gateway knows that host's MAC as local, so the
    // clients' unicast frames to it are not flooded to the other peers under `forward yes`.
    w.lan
        .exec(&["ping", "-b", "-c", "1", "-W", "1", "172.16.16.255"]);
    // Every client pings the host behind the bridge; two clients reach each other.
    let errs: Vec<(usize, String)> = par(&population, |i| (i, w.ping(i, "172.16.16.1", 2)))
        .into_iter()
        .filter_map(|(i, r)| r.err().map(|e| (i, e)))
        .collect();
    if !errs.is_empty() {
        let failed: Vec<usize> = errs.iter().map(|(i, _)| *i).collect();
        let d = w.status();
        let entries: Vec<String> = failed
            .iter()
            .map(|&i| format!("{i}: {:?}", d.peer(w.public(i))))
            .collect();
        panic!(
            "{gw:?}: {errs:#?}\ngateway's view: {entries:#?}\n{}",
            w.logs(&failed)
        );
    }
    let (a, b) = PARTNERS;
    w.ping(a, &tunnel_ip(b), 2)
        .and_then(|_| w.ping(b, &tunnel_ip(a), 2))
        .unwrap_or_else(|e| panic!("{gw:?}: {e}\n{}", w.logs(&[a, b])));

    // The refused client: verify ran for it, it has no session and no tunnel.
    let seen = std::fs::read_to_string(w.gw_dir().join("run/verify.seen")).unwrap_or_default();
    assert!(
        seen.contains(w.public(REFUSED)),
        "{gw:?}: verify never ran for the refused key"
    );
    let doc = w.status();
    assert!(
        doc.established(w.public(REFUSED)).is_none(),
        "{gw:?}: refused peer established"
    );
    assert!(
        w.ping_within(REFUSED, "172.16.16.1", 1, 2).is_err(),
        "{gw:?}: refused peer has a tunnel"
    );

    let traffic = w.wait_counters_settled();

    eprintln!("[{gw:?}] pings done at {:?}", t0.elapsed());
    // 32 readers at once: every document complete and parseable, all with 64 sessions.
    let path = w.status_path();
    let barrier = std::sync::Barrier::new(32);
    let docs = par(&(0..32).collect::<Vec<_>>(), |_| {
        barrier.wait();
        read_status(&path)
    });
    for d in &docs {
        let d = d
            .as_ref()
            .unwrap_or_else(|e| panic!("{gw:?}: concurrent read: {e}"));
        let n = population
            .iter()
            .filter(|&&i| d.established(w.public(i)).is_some())
            .count();
        assert_eq!(n, CLIENTS, "{gw:?}: {}", d.raw);
    }

    eprintln!("[{gw:?}] status readers done at {:?}", t0.elapsed());
    // Float: the underlay address changes mid-session, the traffic goes on.
    for &i in &FLOATERS {
        let ns = &w.cns[i].0;
        ip_batch(
            Some(ns),
            &format!(
                // Deleting a primary address takes its secondaries along.
                "addr del {}/24 dev u0\naddr add {}/24 dev u0\n",
                underlay4(i),
                floated4(i)
            ),
        );
    }
    let moved = par(&FLOATERS, |i| {
        let want = status_address(i, true, false);
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if w.ping_within(i, "172.16.16.1", 1, 1).is_ok()
                && w.status().address(w.public(i)) == Some(want.as_str())
            {
                return Ok(());
            }
        }
        Err(format!(
            "client {i} silent after its address changed (want {want})"
        ))
    });
    for m in moved {
        m.unwrap_or_else(|e| panic!("{gw:?}: {e}\n{}", w.logs(&FLOATERS)));
    }

    eprintln!("[{gw:?}] float done at {:?}", t0.elapsed());
    // A client restarted with a new port.
    for &i in &RESTARTED {
        let _ = w.clients[i].take().unwrap().stop();
        w.write_client(i, true);
        w.start_client(i);
    }
    w.wait(
        "restarted clients at their new ports",
        Duration::from_secs(40),
        || {
            let d = w.status();
            RESTARTED.iter().all(|&i| {
                d.established(w.public(i)).is_some()
                    && d.address(w.public(i)) == Some(status_address(i, false, true).as_str())
            })
        },
    );
    for &i in &RESTARTED {
        w.ping(i, "172.16.16.1", 1)
            .unwrap_or_else(|e| panic!("{gw:?}: {e}\n{}", w.logs(&[i])));
    }

    eprintln!("[{gw:?}] restart done at {:?}", t0.elapsed());
    // SIGHUP after adding one peer file and deleting another: only that one session ends.
    let before = w.status();
    std::fs::remove_file(w.gw_dir().join(format!("peers/c{DELETED}"))).unwrap();
    w.add_peer_file(LATE);
    w.gateway().signal(libc::SIGHUP);
    w.start_client(LATE);
    let kept: Vec<usize> = population
        .iter()
        .copied()
        .filter(|&i| i != DELETED)
        .collect();
    w.wait(
        "the late peer's session and the deleted peer gone",
        Duration::from_secs(40),
        || {
            let d = w.status();
            d.established(w.public(LATE)).is_some() && d.peer(w.public(DELETED)).is_none()
        },
    );
    let after = w.status();
    for &i in &kept {
        let (old, new) = (
            before.established(w.public(i)),
            after.established(w.public(i)),
        );
        assert!(
            matches!((old, new), (Some(o), Some(n)) if n >= o),
            "{gw:?}: client {i}'s session dropped at the SIGHUP ({old:?} -> {new:?})\n{}",
            w.logs(&[i])
        );
    }
    w.ping(LATE, "172.16.16.1", 1)
        .unwrap_or_else(|e| panic!("{gw:?}: {e}\n{}", w.logs(&[LATE])));
    assert!(
        w.ping_within(DELETED, "172.16.16.1", 1, 2).is_err(),
        "{gw:?}: deleted peer still has a tunnel"
    );
    // `on verify` would admit the deleted peer's key again as a dynamic peer on its next
    // retry, at a moment that differs from run to run: the node goes, as its file did, so
    // that the final documents of both gateways are comparable.
    if let Some(c) = w.clients[DELETED].take() {
        let _ = c.stop();
    }

    eprintln!("[{gw:?}] SIGHUP done at {:?}", t0.elapsed());
    // SIGUSR2 resets every connection: all sessions come back and carry traffic.
    w.gateway().signal(libc::SIGUSR2);
    let expected: Vec<usize> = kept.iter().copied().chain([LATE]).collect();
    // Every session is new: established later than the signal.
    let t = Instant::now();
    w.wait("sessions after SIGUSR2", Duration::from_secs(60), || {
        let d = w.status();
        let since = t.elapsed().as_millis() as i64;
        expected
            .iter()
            .all(|&i| d.established(w.public(i)).is_some_and(|e| e <= since))
    });
    let errs: Vec<String> = par(&expected, |i| {
        (0..10)
            .find_map(|_| w.ping_within(i, "172.16.16.1", 1, 2).ok())
            .ok_or_else(|| format!("client {i}: no traffic after SIGUSR2"))
    })
    .into_iter()
    .filter_map(Result::err)
    .collect();
    assert!(errs.is_empty(), "{gw:?}: {errs:#?}\n{}", w.logs(&[]));
    let end = w.status();

    eprintln!("[{gw:?}] SIGUSR2 done at {:?}", t0.elapsed());
    // Stop: everything the gateway made goes with it.
    let g = w.gateway.take().unwrap();
    let (status, log) = g.stop();
    if gw == Gw::Ours {
        assert_stopped_by(status, libc::SIGTERM, &log);
    }
    assert!(!w.gwns.has_link("gw0"), "{gw:?}: gw0 left behind");
    eprintln!("[{gw:?}] scenario took {:?}", t0.elapsed());
    Outcome { traffic, end }
}

impl World {
    /// The status after the pings, once no counter moves any more (a reply may still be
    /// on its way when ping has returned).
    fn wait_counters_settled(&self) -> Doc {
        let mut prev = self.status();
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(300));
            let d = self.status();
            if d.j.get("statistics") == prev.j.get("statistics") {
                return d;
            }
            prev = d;
        }
        panic!("{:?}: counters never settled", self.gw);
    }
}

/// The members to compare for equality at `path`; the rest (times) only by type.
fn equal_required(path: &str, counters: bool) -> bool {
    let timing = path.ends_with("/uptime") || path.ends_with("/established");
    let counter = path.contains("/statistics");
    !timing && (counters || !counter)
}

/// Compares two documents: same member names in the same order (the peers as a set: their
/// order is the order of arrival), same types, and equal values except times (and counters
/// unless `counters`).
fn compare(path: &str, a: &J, b: &J, counters: bool, diffs: &mut Vec<String>) {
    if a.kind() != b.kind() {
        diffs.push(format!("{path}: fastd {} vs ours {}", a.kind(), b.kind()));
        return;
    }
    match (a, b) {
        (J::Obj(ma), J::Obj(mb)) => {
            let ka: Vec<&str> = ma.iter().map(|(k, _)| k.as_str()).collect();
            let kb: Vec<&str> = mb.iter().map(|(k, _)| k.as_str()).collect();
            if path.ends_with("/peers") {
                let (sa, sb): (BTreeSet<_>, BTreeSet<_>) =
                    (ka.iter().collect(), kb.iter().collect());
                if sa != sb {
                    diffs.push(format!(
                        "{path}: only fastd {:?}, only ours {:?}",
                        sa.difference(&sb).collect::<Vec<_>>(),
                        sb.difference(&sa).collect::<Vec<_>>()
                    ));
                }
            } else if ka != kb {
                diffs.push(format!("{path}: members fastd {ka:?} vs ours {kb:?}"));
            }
            let mb: BTreeMap<&str, &J> = mb.iter().map(|(k, v)| (k.as_str(), v)).collect();
            for (k, va) in ma {
                if let Some(vb) = mb.get(k.as_str()) {
                    compare(&format!("{path}/{k}"), va, vb, counters, diffs);
                }
            }
        }
        (J::Arr(va), J::Arr(vb)) if va != vb => {
            diffs.push(format!("{path}: fastd {va:?} vs ours {vb:?}"));
        }
        (J::Arr(_), J::Arr(_)) => {}
        _ if equal_required(path, counters) && a != b => {
            diffs.push(format!("{path}: fastd {a:?} vs ours {b:?}"));
        }
        _ => {}
    }
}

/// The document without the peer `key`.
fn without_peer(j: &J, key: &str) -> J {
    let mut j = j.clone();
    if let J::Obj(top) = &mut j {
        for (k, v) in top.iter_mut() {
            if let (true, J::Obj(peers)) = (k == "peers", v) {
                peers.retain(|(pk, _)| pk != key);
            }
        }
    }
    j
}

/// json-c's formatting, byte for byte.
fn assert_spaced(gw: Gw, d: &Doc) {
    let mut s = String::new();
    d.j.spaced(&mut s);
    assert_eq!(s, d.raw, "{gw:?}: not json-c's spaced format");
}

#[test]
fn sixty_four_clients_fastd_as_reference_then_ours() {
    if !ready(&[FASTD, "ping", "sysctl"]) {
        return;
    }
    // For working on one side only; the comparison needs both.
    match std::env::var("GATEWAY_SCALE_ONLY").as_deref() {
        Ok("fastd") => return drop(scenario(Gw::Fastd)),
        Ok("ours") => return drop(scenario(Gw::Ours)),
        _ => {}
    }
    let fastd = scenario(Gw::Fastd);
    let ours = scenario(Gw::Ours);
    let mut diffs = Vec::new();
    let refused = keys()[1 + REFUSED].1.clone();
    for (name, f, o, counters) in [
        ("after traffic", &fastd.traffic, &ours.traffic, true),
        ("at the end", &fastd.end, &ours.end, false),
    ] {
        assert_spaced(Gw::Fastd, f);
        assert_spaced(Gw::Ours, o);
        // fastd lists the refused key, unconnected, for ten seconds after each of its
        // handshakes (its temporary peer); ours never does. Not comparable by time.
        let (f, o) = (without_peer(&f.j, &refused), without_peer(&o.j, &refused));
        let mut d = Vec::new();
        compare("", &f, &o, counters, &mut d);
        diffs.extend(d.into_iter().map(|x| format!("{name}: {x}")));
    }
    assert!(
        diffs.is_empty(),
        "status documents differ:\n{}\nfastd: {}\nours: {}",
        diffs.join("\n"),
        fastd.traffic.raw,
        ours.traffic.raw
    );
}
