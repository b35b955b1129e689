//! Throughput through the tunnel, fastd and ours in every pairing, measured with iperf3 in the
//! same run (`benches/netns-throughput.sh` runs it and prints the table). Ignored by default:
//! it measures, it does not judge.
//!
//! Node 0 (alpha, iperf3 server, receiver) and node 1 (anyremote, iperf3 client, sender) each
//! run on one CPU: the daemon and its iperf3 are pinned together. CPU time is the daemons'
//! own (utime + stime from /proc: fastd's process, our engine's thread).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod interop_support;

use std::process::{Child, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use interop_support::ours::Ours;
use interop_support::*;
use worker::engine::Timings;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Fastd,
    Ours,
}

/// What one iperf3 run through one pairing gave.
#[derive(Clone, Copy, Debug)]
struct Sample {
    mbps: f64,
    bytes: f64,
    /// Both daemons' CPU seconds during the iperf3 run.
    cpu: f64,
    first_ping: Duration,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn cpus() -> [usize; 2] {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    [0, 1 % n]
}

/// Pins a thread or process (`tid` as the kernel numbers it) to one CPU.
fn pin(tid: i32, cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside it; sched_setaffinity
    // reads it for the given size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// utime + stime of a /proc stat file, in seconds.
fn cpu_seconds(stat_path: &str) -> f64 {
    let text = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

/// iperf3 from `client` to a server in `server` at 172.16.16.1, each pinned to its node's
/// CPU; returns (Mbit/s received, bytes received).
fn iperf(server: &Netns, client: &Netns, secs: u32) -> (f64, f64) {
    let [c0, c1] = cpus();
    let _srv = Server(
        server
            .command("taskset")
            .args([
                "-c",
                &c0.to_string(),
                "iperf3",
                "-s",
                "-1",
                "-B",
                "172.16.16.1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let out = client
        .command("taskset")
        .args(["-c", &c1.to_string(), "iperf3", "-c", "172.16.16.1"])
        .args(["-t", &secs.to_string(), "-J"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text.find("\"sum_received\"").expect("iperf3 output");
    let rest = &text[at..];
    let field = |name: &str| -> f64 {
        let b = rest.find(name).unwrap();
        let num: String = rest[b + name.len()..]
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == '+')
            .collect();
        num.parse::<f64>().unwrap()
    };
    (field("\"bits_per_second\"") / 1e6, field("\"bytes\""))
}

fn configs(method: &str) -> (String, String) {
    let keys = keypairs();
    let mut a = ConfBuilder::new("tun", method, &keys[0].0, "172.16.16.1/24");
    a.bind = Some("198.51.100.1:10000".into());
    let a = a.peer("anyremote", &keys[1].1, None).render();
    let b = ConfBuilder::new("tun", method, &keys[1].0, "172.16.16.2/24")
        .peer("alpha", &keys[0].1, Some("198.51.100.1:10000"))
        .render();
    (
        a.replace("log level debug2", "log level info"),
        b.replace("log level debug2", "log level info"),
    )
}

/// A running daemon of either kind and where its CPU time is read.
enum Daemon {
    Fastd(Fastd),
    Ours(Ours),
}

impl Daemon {
    fn start(side: Side, ns: &Netns, dir: &TempDir, name: &str, conf: &str, cpu: usize) -> Self {
        match side {
            Side::Fastd => {
                let f = Fastd::start(ns, dir, name, conf);
                pin(f.pid().unwrap() as i32, cpu);
                Daemon::Fastd(f)
            }
            Side::Ours => {
                let o = Ours::start(ns, conf, Timings::default());
                pin(o.tid.load(Ordering::Relaxed), cpu);
                Daemon::Ours(o)
            }
        }
    }

    fn stat_path(&self) -> String {
        match self {
            Daemon::Fastd(f) => format!("/proc/{}/stat", f.pid().unwrap()),
            Daemon::Ours(o) => format!("/proc/self/task/{}/stat", o.tid.load(Ordering::Relaxed)),
        }
    }
}

/// One iperf3 run from `sender` (node 1) to `receiver` (node 0).
fn run_pair(method: &str, sender: Side, receiver: Side, secs: u32) -> Sample {
    let lan = Lan::new("tp", 2);
    let dir = TempDir::new("tp");
    let (a, b) = configs(method);
    let [c0, c1] = cpus();
    let t0 = Instant::now();
    let d0 = Daemon::start(receiver, &lan.nodes[0], &dir, "alpha", &a, c0);
    std::thread::sleep(Duration::from_millis(200));
    let d1 = Daemon::start(sender, &lan.nodes[1], &dir, "anyremote", &b, c1);
    assert!(
        ping(
            &lan.nodes[1],
            "172.16.16.1".parse().unwrap(),
            56,
            Duration::from_secs(10)
        )
        .is_some(),
        "no ping through {sender:?}->{receiver:?} with {method}"
    );
    let first_ping = t0.elapsed();
    let (p0, p1) = (d0.stat_path(), d1.stat_path());
    let before = cpu_seconds(&p0) + cpu_seconds(&p1);
    let (mbps, bytes) = iperf(&lan.nodes[0], &lan.nodes[1], secs);
    let cpu = cpu_seconds(&p0) + cpu_seconds(&p1) - before;
    drop((d1, d0));
    Sample {
        mbps,
        bytes,
        cpu,
        first_ping,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

const PAIRS: [(Side, Side, &str); 4] = [
    (Side::Fastd, Side::Fastd, "fastd<->fastd"),
    (Side::Ours, Side::Ours, "ours<->ours"),
    (Side::Ours, Side::Fastd, "ours->fastd"),
    (Side::Fastd, Side::Ours, "fastd->ours"),
];

#[test]
#[ignore = "measurement: run benches/netns-throughput.sh"]
fn throughput_ours_vs_fastd() {
    if !prerequisites() {
        return;
    }
    let secs: u32 = env_or("BENCH_SECONDS", 8);
    let runs: usize = env_or("BENCH_RUNS", 3).max(1);
    let methods: String = env_or(
        "BENCH_METHODS",
        "salsa2012+umac null salsa2012+poly1305 aes128-gcm".to_owned(),
    );
    // BENCH_PAIRS limits the pairings (e.g. "ours<->ours" for a profile); the table shows
    // 0 for the others.
    let only: String = env_or("BENCH_PAIRS", String::new());
    let wanted = |name: &str| only.is_empty() || only.split_whitespace().any(|p| p == name);
    let pairs_env = if only.is_empty() {
        String::new()
    } else {
        format!(" BENCH_PAIRS='{only}'")
    };
    println!(
        "BENCH command: BENCH_SECONDS={secs} BENCH_RUNS={runs} BENCH_METHODS='{methods}'{pairs_env} bash benches/netns-throughput.sh"
    );
    println!(
        "BENCH median of {runs} alternating runs of {secs} s, TCP (iperf3) from node 1 to node 0, Mbit/s; each node's daemon + iperf3 pinned to one CPU ({:?})",
        cpus()
    );
    println!(
        "BENCH {:<20} {:>14} {:>12} {:>12} {:>12} {:>6} {:>15} {:>14} {:>18}",
        "method",
        "fastd<->fastd",
        "ours<->ours",
        "ours->fastd",
        "fastd->ours",
        "ratio",
        "CPU s/GB fastd",
        "CPU s/GB ours",
        "first ping ms f/o"
    );
    for method in methods.split_whitespace() {
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); PAIRS.len()];
        for run in 0..runs {
            // Alternate the order so drift on a shared machine spreads over all pairings.
            for k in 0..PAIRS.len() {
                let i = if run % 2 == 0 { k } else { PAIRS.len() - 1 - k };
                let (s, r, name) = PAIRS[i];
                if !wanted(name) {
                    continue;
                }
                let x = run_pair(method, s, r, secs);
                println!(
                    "BENCH   run {run} {method} {name}: {:.0} Mbit/s, {:.2} CPU s/GB, first ping {} ms",
                    x.mbps,
                    x.cpu / (x.bytes / 1e9),
                    x.first_ping.as_millis()
                );
                samples[i].push(x);
            }
        }
        let mbps: Vec<f64> = samples
            .iter()
            .map(|s| median(s.iter().map(|x| x.mbps).collect()))
            .collect();
        let s_per_gb = |s: &[Sample]| {
            if s.is_empty() {
                return 0.0;
            }
            s.iter().map(|x| x.cpu).sum::<f64>() / (s.iter().map(|x| x.bytes).sum::<f64>() / 1e9)
        };
        let first =
            |s: &[Sample]| median(s.iter().map(|x| x.first_ping.as_millis() as f64).collect());
        println!(
            "BENCH {:<20} {:>14.0} {:>12.0} {:>12.0} {:>12.0} {:>6.2} {:>15.2} {:>14.2} {:>18}",
            method,
            mbps[0],
            mbps[1],
            mbps[2],
            mbps[3],
            mbps[1] / mbps[0],
            s_per_gb(&samples[0]),
            s_per_gb(&samples[1]),
            format!("{:.0}/{:.0}", first(&samples[0]), first(&samples[1]))
        );
    }
}
