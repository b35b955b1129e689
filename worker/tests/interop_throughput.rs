//! Throughput through the tunnel, ours<->ours against fastd<->fastd, measured with iperf3 in
//! the same run (`benches/netns-throughput.sh` runs it in release mode). Ignored by default:
//! it measures, it does not judge.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod interop_support;

use std::process::{Child, Stdio};
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

/// iperf3 from `client` to a server in `server` at 172.16.16.1; returns Mbit/s received.
fn iperf(server: &Netns, client: &Netns, secs: u32) -> f64 {
    let _srv = Server(
        server
            .command("iperf3")
            .args(["-s", "-1", "-B", "172.16.16.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let out = client
        .command("iperf3")
        .args(["-c", "172.16.16.1", "-t", &secs.to_string(), "-J"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // "sum_received": { ... "bits_per_second": N ... }
    let at = text.find("\"sum_received\"").expect("iperf3 output");
    let rest = &text[at..];
    let b = rest.find("\"bits_per_second\"").unwrap();
    let num: String = rest[b + 18..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == '+')
        .collect();
    num.parse::<f64>().unwrap() / 1e6
}

fn configs(method: &str) -> (String, String) {
    let keys = keypairs();
    let mut a = ConfBuilder::new("tun", method, &keys[0].0, "172.16.16.1/24");
    a.bind = Some("198.51.100.1:10000".into());
    let a = a.peer("anyremote", &keys[1].1, None).render();
    let b = ConfBuilder::new("tun", method, &keys[1].0, "172.16.16.2/24")
        .peer("alpha", &keys[0].1, Some("198.51.100.1:10000"))
        .render();
    (a, b)
}

fn fastd_pair(method: &str, secs: u32) -> (f64, Duration) {
    let lan = Lan::new("pf", 2);
    let dir = TempDir::new("pf");
    let (a, b) = configs(method);
    let t0 = Instant::now();
    let fa = Fastd::start(
        &lan.nodes[0],
        &dir,
        "alpha",
        &a.replace("log level debug2", "log level info"),
    );
    let fb = Fastd::start(
        &lan.nodes[1],
        &dir,
        "anyremote",
        &b.replace("log level debug2", "log level info"),
    );
    assert!(ping(
        &lan.nodes[1],
        "172.16.16.1".parse().unwrap(),
        56,
        Duration::from_secs(10)
    )
    .is_some());
    let first = t0.elapsed();
    assert!(fb.wait_log(
        "connection with <alpha> established",
        Duration::from_secs(10)
    ));
    let r = iperf(&lan.nodes[0], &lan.nodes[1], secs);
    drop(fa);
    (r, first)
}

fn ours_pair(method: &str, secs: u32) -> (f64, Duration) {
    let lan = Lan::new("po", 2);
    let (a, b) = configs(method);
    let t0 = Instant::now();
    let _oa = Ours::start(&lan.nodes[0], &a, Timings::default());
    let _ob = Ours::start(&lan.nodes[1], &b, Timings::default());
    let first = ping(
        &lan.nodes[1],
        "172.16.16.1".parse().unwrap(),
        56,
        Duration::from_secs(10),
    );
    assert!(first.is_some());
    let to_first_ping = t0.elapsed();
    (iperf(&lan.nodes[0], &lan.nodes[1], secs), to_first_ping)
}

#[test]
#[ignore = "measurement: run benches/netns-throughput.sh"]
fn throughput_ours_vs_fastd() {
    if !prerequisites() {
        return;
    }
    let secs: u32 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    for method in ["salsa2012+umac", "null"] {
        let (f, f_first) = fastd_pair(method, secs);
        let (o, first) = ours_pair(method, secs);
        println!(
            "RESULT method={method} fastd<->fastd={f:.0} Mbit/s ours<->ours={o:.0} Mbit/s ratio={:.2} start_to_first_ping: fastd={} ms ours={} ms",
            o / f,
            f_first.as_millis(),
            first.as_millis()
        );
    }
}
