//! Gateway operations against a real kernel, each in a network namespace the
//! test creates and always deletes, plus the policy's refusals.
//!
//! Root tests fail (never skip) when CI=true and we are not root; elsewhere
//! they skip without root. `ip`/`nft` are used only to set up and observe.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Command, Stdio};

use policy::gateway::{
    AddressOp, Family, GatewayManifest, GatewayPolicy, GatewayRefusal, GatewayRequest, IfaceOwner,
    IpNet, ManifestError, Masquerade, MasqueradeManifest, PeerGateway, PinHostRoute,
    RedirectGateway, RedirectManifest,
};
use policy::IfName;
use privsep::gateway::{forwarding_sysctl_path, Gateway};
use test_support::{ready, Netns};

fn root() -> bool {
    ready(&[])
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What these tests ask of a namespace beyond test-support's.
trait GatewayNs {
    /// `ip -n NS ARGS` (split at white space), which must succeed; its output.
    fn ip_out(&self, args: &str) -> String;
    fn nft(&self, args: &str) -> String;
    /// Every route of every table, both families.
    fn all_routes(&self) -> String;
    fn sysctl(&self, family: Family) -> String;
    fn set_sysctl(&self, family: Family, value: &str);
}

impl GatewayNs for Netns {
    fn ip_out(&self, args: &str) -> String {
        run(Command::new("ip")
            .args(["-n", &self.0])
            .args(args.split_whitespace()))
    }

    fn nft(&self, args: &str) -> String {
        run(Command::new("ip")
            .args(["netns", "exec", &self.0, "nft"])
            .args(args.split_whitespace()))
    }

    fn all_routes(&self) -> String {
        self.ip_out("-4 route show table all") + &self.ip_out("-6 route show table all")
    }

    fn sysctl(&self, family: Family) -> String {
        self.enter(|| std::fs::read_to_string(forwarding_sysctl_path(family)).unwrap())
            .trim()
            .to_owned()
    }

    fn set_sysctl(&self, family: Family, value: &str) {
        self.enter(|| std::fs::write(forwarding_sysctl_path(family), value).unwrap());
    }
}

/// A namespace for one test, or None where the test cannot run (see [`root`]).
fn namespace(tag: &str) -> Option<Netns> {
    root().then(|| Netns::new(tag))
}

/// [`namespace`] with the [`underlay`], and its routes before the test.
fn routed(tag: &str) -> Option<(Netns, String)> {
    let ns = namespace(tag)?;
    underlay(&ns);
    let before = ns.all_routes();
    Some((ns, before))
}

/// [`namespace`] with a veth `v0` (its peer `v1` beside it).
fn with_veth(tag: &str) -> Option<Netns> {
    let ns = namespace(tag)?;
    ns.ip_out("link add v0 type veth peer name v1");
    Some(ns)
}

/// Alpha's underlay address 198.51.100.1 pinned, its default route through `tun0` to
/// 172.16.16.1.
fn redirect_alpha(gw: &mut Gateway) {
    gw.pin_host_route("alpha", ip("198.51.100.1")).unwrap();
    gw.redirect_gateway("alpha", "tun0", Some(ip("172.16.16.1")), Family::V4)
        .unwrap();
}

/// Masquerading of the tunnel network 172.16.16.0/24 out of `v0`, in nft table `table`.
fn masquerade_tunnel(gw: &mut Gateway, table: &str) {
    gw.masquerade(table, &[net("172.16.16.0/24")], "v0")
        .unwrap();
}

/// The one nft table `table` in `ns`, which its owner's socket owns; its listing.
fn owned_table(ns: &Netns, table: &str) -> String {
    assert_eq!(tables(ns, table), 1);
    let listed = ns.nft(&format!("list table inet {table}"));
    assert!(listed.contains("flags owner"), "{listed}");
    listed
}

/// An underlay veth `v0` (peer end `v1` in the same namespace) with a
/// default route through 192.0.2.1 / 2001:db8:1::1, and a TUN `tun0`.
fn underlay(ns: &Netns) {
    ns.ip_out("link add v0 type veth peer name v1");
    ns.ip_out("link set v0 up");
    ns.ip_out("link set v1 up");
    ns.ip_out("addr add 192.0.2.2/24 dev v0");
    ns.ip_out("addr add 2001:db8:1::2/64 dev v0 nodad");
    ns.ip_out("route add default via 192.0.2.1 dev v0");
    // Realistic IPv6: the router is known by its link-local address.
    ns.ip_out("-6 route add default via fe80::1 dev v0");
    ns.ip_out("tuntap add mode tun name tun0");
    ns.ip_out("link set tun0 up");
    ns.ip_out("addr add 172.16.16.2/24 dev tun0");
}

#[test]
fn addresses_added_and_removed_exactly() {
    let Some(ns) = with_veth("addr") else {
        return;
    };
    // Somebody else's address: never journaled, never removed.
    ns.ip_out("addr add 192.0.2.5/24 dev v0");
    let before = ns.ip_out("addr show dev v0");

    ns.enter(|| {
        let mut gw = Gateway::new().unwrap();
        gw.add_address("v0", net("172.16.16.1/24")).unwrap();
        gw.add_address("v0", net("2001:db8:16::1/64")).unwrap();
        gw.add_address("v0", net("192.0.2.5/24")).unwrap();
        assert_eq!(gw.journal().entries().len(), 2);
        let shown = ns.ip_out("addr show dev v0");
        assert!(shown.contains("inet 172.16.16.1/24"), "{shown}");
        assert!(shown.contains("inet6 2001:db8:16::1/64"), "{shown}");

        gw.remove_address("v0", net("172.16.16.1/24")).unwrap();
        // Not ours: stays.
        gw.remove_address("v0", net("192.0.2.5/24")).unwrap();
        let shown = ns.ip_out("addr show dev v0");
        assert!(!shown.contains("172.16.16.1/24"), "{shown}");
        assert!(shown.contains("192.0.2.5/24"), "{shown}");

        assert!(gw.add_address("nosuch0", net("172.16.16.1/24")).is_err());
        assert!(gw.undo_all().is_empty());
    });
    assert_eq!(ns.ip_out("addr show dev v0"), before);
}

#[test]
fn pin_and_redirect_leave_the_routing_table_as_it_was() {
    let Some((ns, before)) = routed("route") else {
        return;
    };

    ns.enter(|| {
        let mut gw = Gateway::new().unwrap();
        redirect_alpha(&mut gw);
        // One peer has one underlay address; an IPv6 peer of its own.
        gw.pin_host_route("beta", ip("2001:db8:2::1")).unwrap();
        gw.redirect_gateway("beta", "tun0", None, Family::V6)
            .unwrap();

        let routes = ns.all_routes();
        for want in [
            "198.51.100.1 via 192.0.2.1 dev v0 proto static",
            "0.0.0.0/1 via 172.16.16.1 dev tun0 proto static",
            "128.0.0.0/1 via 172.16.16.1 dev tun0 proto static",
            "2001:db8:2::1 via fe80::1 dev v0 proto static",
            "::/1 dev tun0 proto static",
            "8000::/1 dev tun0 proto static",
        ] {
            assert!(routes.contains(want), "missing {want:?} in\n{routes}");
        }
        assert!(ns.ip_out("route get 203.0.113.10").contains("dev tun0"));
        assert!(ns
            .ip_out("route get 198.51.100.1")
            .contains("via 192.0.2.1 dev v0"));

        // The peer floats: the pin follows it through the underlay, not
        // through the tunnel the new address would now be routed into.
        gw.pin_host_route("alpha", ip("198.51.100.2")).unwrap();
        let routes = ns.all_routes();
        assert!(
            routes.contains("198.51.100.2 via 192.0.2.1 dev v0 proto static"),
            "{routes}"
        );
        assert!(!routes.contains("198.51.100.1 via"), "{routes}");

        // Disestablish.
        gw.unredirect("alpha").unwrap();
        let routes = ns.all_routes();
        assert!(!routes.contains("0.0.0.0/1"), "{routes}");
        assert!(routes.contains("::/1 dev tun0"), "{routes}");
        gw.unredirect("beta").unwrap();
        assert!(gw.journal().is_empty());
    });
    assert_eq!(ns.all_routes(), before);
}

#[test]
fn undo_all_after_stop_removes_routes_and_a_second_redirect_is_not_duplicated() {
    let Some((ns, before)) = routed("stop") else {
        return;
    };
    ns.enter(|| {
        let mut gw = Gateway::new().unwrap();
        redirect_alpha(&mut gw);
        gw.redirect_gateway("alpha", "tun0", Some(ip("172.16.16.1")), Family::V4)
            .unwrap();
        assert_eq!(ns.all_routes().matches("0.0.0.0/1").count(), 1);
        assert!(gw.undo_all().is_empty());
    });
    assert_eq!(ns.all_routes(), before);

    // A stop without undo_all (the helper unwinding) cleans up through Drop.
    ns.enter(|| {
        let mut gw = Gateway::new().unwrap();
        gw.pin_host_route("alpha", ip("198.51.100.1")).unwrap();
        gw.redirect_gateway("alpha", "tun0", None, Family::V4)
            .unwrap();
    });
    assert_eq!(ns.all_routes(), before);
}

fn tables(ns: &Netns, name: &str) -> usize {
    ns.nft("list tables")
        .lines()
        .filter(|l| l.trim() == format!("table inet {name}"))
        .count()
}

#[test]
fn masquerade_table_replaced_whole_and_forwarding_restored() {
    let Some(ns) = with_veth("masq") else {
        return;
    };
    ns.set_sysctl(Family::V4, "0");
    ns.set_sysctl(Family::V6, "0");
    let table = "fastd_privsep_t1";

    ns.enter(|| {
        let mut gw = Gateway::new().unwrap();
        masquerade_tunnel(&mut gw, table);
        let listed = owned_table(&ns, table);
        assert!(
            listed.contains("ip saddr 172.16.16.0/24 oifname \"v0\" masquerade"),
            "{listed}"
        );
        assert_eq!(ns.sysctl(Family::V4), "1");
        assert_eq!(ns.sysctl(Family::V6), "0");

        // Start again (reload): the table is replaced whole, no duplicates.
        gw.masquerade(
            table,
            &[net("172.16.16.0/24"), net("2001:db8:16::/64")],
            "v0",
        )
        .unwrap();
        assert_eq!(tables(&ns, table), 1);
        let listed = ns.nft(&format!("list table inet {table}"));
        assert_eq!(listed.matches("masquerade").count(), 2, "{listed}");
        assert!(
            listed.contains("ip6 saddr 2001:db8:16::/64 oifname \"v0\" masquerade"),
            "{listed}"
        );
        assert_eq!(ns.sysctl(Family::V6), "1");

        assert!(gw.undo_all().is_empty());
        assert_eq!(tables(&ns, table), 0);
    });
    assert_eq!(ns.sysctl(Family::V4), "0");
    assert_eq!(ns.sysctl(Family::V6), "0");

    // Forwarding that was on stays on: we did not change it.
    ns.set_sysctl(Family::V4, "1");
    ns.enter(|| {
        let mut gw = Gateway::new().unwrap();
        masquerade_tunnel(&mut gw, table);
        assert!(gw.undo_all().is_empty());
    });
    assert_eq!(ns.sysctl(Family::V4), "1");
}

#[test]
fn masquerade_rewrites_forwarded_traffic() {
    if !root() {
        return;
    }
    // client 172.16.16.2 -- 172.16.16.1 gw 203.0.113.1 -- 203.0.113.10 inet;
    // inet has no route back to 172.16.16.0/24, so only a masqueraded
    // datagram can be answered.
    let client = Netns::new("mclient");
    let gw = Netns::new("mgw");
    let inet = Netns::new("minet");
    client.ip_out(&format!(
        "link add c0 type veth peer name g0 netns {}",
        gw.0
    ));
    gw.ip_out(&format!(
        "link add g1 type veth peer name i0 netns {}",
        inet.0
    ));
    client.ip_out("addr add 172.16.16.2/24 dev c0");
    client.ip_out("link set c0 up");
    client.ip_out("route add default via 172.16.16.1");
    gw.ip_out("addr add 172.16.16.1/24 dev g0");
    gw.ip_out("addr add 203.0.113.1/24 dev g1");
    gw.ip_out("link set g0 up");
    gw.ip_out("link set g1 up");
    inet.ip_out("addr add 203.0.113.10/24 dev i0");
    inet.ip_out("link set i0 up");
    gw.set_sysctl(Family::V4, "0");

    let seen = gw.enter(|| {
        let mut gateway = Gateway::new().unwrap();
        gateway
            .masquerade("fastd_privsep_t6", &[net("172.16.16.0/24")], "g1")
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let seen = std::thread::scope(|s| {
            let server = s.spawn(|| {
                inet.join_here();
                let sock = std::net::UdpSocket::bind("203.0.113.10:7777").unwrap();
                // Bounds a failure (nothing arrives); never reached on success.
                sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                    .unwrap();
                tx.send(()).unwrap();
                let mut buf = [0u8; 64];
                let (_, from) = sock.recv_from(&mut buf).unwrap();
                sock.send_to(from.ip().to_string().as_bytes(), from)
                    .unwrap();
            });
            rx.recv().unwrap();
            let seen = s
                .spawn(|| {
                    client.join_here();
                    let sock = std::net::UdpSocket::bind("172.16.16.2:0").unwrap();
                    // Only bounds a failure; success never waits for it.
                    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                        .unwrap();
                    sock.send_to(b"who am i", "203.0.113.10:7777").unwrap();
                    let mut buf = [0u8; 64];
                    let n = sock.recv(&mut buf).expect("no answer: not masqueraded");
                    String::from_utf8_lossy(&buf[..n]).into_owned()
                })
                .join()
                .unwrap();
            server.join().unwrap();
            seen
        });
        assert!(gateway.undo_all().is_empty());
        seen
    });
    assert_eq!(seen, "203.0.113.1");
    assert_eq!(gw.sysctl(Family::V4), "0");
}

/// Not a test by itself: the child process of
/// `owner_table_vanishes_when_the_owner_is_killed`, run inside its namespace.
#[test]
#[ignore]
fn owner_child() {
    let Ok(table) = std::env::var("GATEWAY_OWNER_CHILD") else {
        return;
    };
    let mut gw = Gateway::new().unwrap();
    masquerade_tunnel(&mut gw, &table);
    println!("READY");
    loop {
        std::thread::park();
    }
}

#[test]
fn owner_table_vanishes_when_the_owner_is_killed() {
    let Some(ns) = with_veth("owner") else {
        return;
    };
    let table = "fastd_privsep_t2";
    let mut child = spawn_child(&ns, "owner_child", ("GATEWAY_OWNER_CHILD", table));
    owned_table(&ns, table);

    child.0.kill().unwrap();
    child.0.wait().unwrap();
    // kill -9 gives no chance to clean up: the kernel did it.
    assert_eq!(tables(&ns, table), 0);
}

/// Start this test binary's ignored test `name` inside `ns` with `env`, and
/// wait until it printed READY. The child is SIGKILLed when the guard drops.
fn spawn_child(ns: &Netns, name: &str, env: (&str, &str)) -> KillOnDrop {
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--ignored", "--nocapture"])
        .env(env.0, env.1)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed on every path, also when an assertion fails.
    let mut child = KillOnDrop(child);
    // `ip netns exec` execs the test binary in place: the pid is the child's.
    let stdout = child.0.stdout.take().unwrap();
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.trim() == "READY");
    assert!(ready, "child {name} did not get ready");
    child
}

/// Not a test by itself: the helper that gets killed in
/// `a_restarted_helper_undoes_what_a_killed_one_left`.
#[test]
#[ignore]
fn crash_child() {
    let Ok(state) = std::env::var("GATEWAY_CRASH_CHILD") else {
        return;
    };
    let (mut gw, errors) = Gateway::with_state(std::path::Path::new(&state)).unwrap();
    assert!(errors.is_empty());
    redirect_alpha(&mut gw);
    masquerade_tunnel(&mut gw, "fastd_privsep_t5");
    println!("READY");
    loop {
        std::thread::park();
    }
}

#[test]
fn a_restarted_helper_undoes_what_a_killed_one_left() {
    let Some(ns) = namespace("crash") else {
        return;
    };
    underlay(&ns);
    ns.set_sysctl(Family::V4, "0");
    let before = ns.all_routes();
    let state = std::env::temp_dir().join(format!("{}.gateway", ns.0));
    let _ = std::fs::remove_file(&state);

    let mut child = spawn_child(
        &ns,
        "crash_child",
        ("GATEWAY_CRASH_CHILD", state.to_str().unwrap()),
    );
    assert!(ns
        .all_routes()
        .contains("198.51.100.1 via 192.0.2.1 dev v0 proto static"));
    assert_eq!(ns.sysctl(Family::V4), "1");
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    // tun0 is a persistent device here, so even the redirect survived.
    assert_ne!(ns.all_routes(), before);
    assert_eq!(tables(&ns, "fastd_privsep_t5"), 0);

    ns.enter(|| {
        let (mut gw, errors) = Gateway::with_state(&state).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(ns.all_routes(), before);
        assert_eq!(ns.sysctl(Family::V4), "0");
        // The new run works as usual and cleans up after itself.
        gw.pin_host_route("alpha", ip("198.51.100.1")).unwrap();
        assert!(gw.undo_all().is_empty());
    });
    assert_eq!(ns.all_routes(), before);
    assert!(!state.exists());
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_table_left_by_another_tool_is_replaced_whole() {
    let Some(ns) = with_veth("stale") else {
        return;
    };
    let table = "fastd_privsep_t4";
    ns.nft(&format!("add table inet {table}"));
    ns.nft(&format!("add chain inet {table} stale"));
    ns.enter(|| {
        let mut gw = Gateway::new().unwrap();
        masquerade_tunnel(&mut gw, table);
        assert_eq!(tables(&ns, table), 1);
        let listed = ns.nft(&format!("list table inet {table}"));
        assert!(!listed.contains("stale"), "{listed}");
        assert!(listed.contains("flags owner"), "{listed}");
        assert_eq!(listed.matches("masquerade").count(), 1, "{listed}");
        assert!(gw.undo_all().is_empty());
    });
    assert_eq!(tables(&ns, table), 0);
}

#[test]
fn a_live_owner_table_cannot_be_taken_over() {
    let Some(ns) = with_veth("twice") else {
        return;
    };
    let table = "fastd_privsep_t3";
    ns.enter(|| {
        let mut first = Gateway::new().unwrap();
        first
            .masquerade(table, &[net("172.16.16.0/24")], "v0")
            .unwrap();
        let mut second = Gateway::new().unwrap();
        let err = second
            .masquerade(table, &[net("172.16.16.0/24")], "v0")
            .unwrap_err();
        assert_eq!(err.errno(), Some(libc::EPERM), "{err}");
        assert_eq!(tables(&ns, table), 1);
        assert!(second.undo_all().is_empty());
        assert_eq!(tables(&ns, table), 1, "the second one must not remove it");
        assert!(first.undo_all().is_empty());
        assert_eq!(tables(&ns, table), 0);
    });
}

// ---- policy ----

fn manifest() -> GatewayManifest {
    let mut peers = BTreeMap::new();
    peers.insert(
        "alpha".to_owned(),
        PeerGateway {
            addresses: vec![net("172.16.16.2/24")],
            redirect: Some(RedirectManifest {
                via: Some(ip("172.16.16.1")),
            }),
            remotes: Some(vec![ip("198.51.100.1")]),
        },
    );
    peers.insert(
        "floater".to_owned(),
        PeerGateway {
            addresses: vec![],
            redirect: Some(RedirectManifest { via: None }),
            remotes: None,
        },
    );
    GatewayManifest {
        instance: "t1".to_owned(),
        interface_addresses: vec![net("172.16.16.1/24")],
        peers,
        default_peer: PeerGateway::default(),
        masquerade: Some(MasqueradeManifest {
            prefixes: vec![net("172.16.16.0/24")],
            out_ifname: "eth0".to_owned(),
        }),
    }
}

fn sealed() -> GatewayPolicy {
    let mut p = GatewayPolicy::seal(manifest()).unwrap();
    p.listed_peers(["alpha", "floater", "bob"].map(str::to_owned).into());
    p.register_interface("vpngateway", IfaceOwner::Shared);
    p.register_interface("tun-alpha", IfaceOwner::Peer("alpha".to_owned()));
    p.register_interface("tun-other", IfaceOwner::Peer("other".to_owned()));
    p
}

fn addr_op(ifname: &str, addr: &str) -> GatewayRequest {
    GatewayRequest::AddAddress(AddressOp {
        ifname: IfName::new(ifname).unwrap(),
        addr: net(addr),
    })
}

fn pin(peer: &str, dest: &str) -> GatewayRequest {
    GatewayRequest::PinHostRoute(PinHostRoute {
        peer: peer.to_owned(),
        dest: net(dest),
    })
}

fn redirect(peer: &str, ifname: &str, via: Option<&str>, family: Family) -> GatewayRequest {
    GatewayRequest::RedirectGateway(RedirectGateway {
        peer: peer.to_owned(),
        ifname: IfName::new(ifname).unwrap(),
        via: via.map(ip),
        family,
    })
}

fn masq(table: &str, prefixes: &[&str], out: &str) -> GatewayRequest {
    GatewayRequest::Masquerade(Masquerade {
        table: table.to_owned(),
        prefixes: prefixes.iter().map(|p| net(p)).collect(),
        out_ifname: out.to_owned(),
    })
}

#[test]
fn policy_allows_only_configured_addresses_on_helper_interfaces() {
    let p = sealed();
    assert_eq!(p.check(&addr_op("vpngateway", "172.16.16.1/24")), Ok(()));
    assert_eq!(p.check(&addr_op("tun-alpha", "172.16.16.2/24")), Ok(()));
    // Another prefix length, another address, another peer's address.
    for (ifname, addr) in [
        ("vpngateway", "172.16.16.1/16"),
        ("vpngateway", "172.16.16.9/24"),
        ("vpngateway", "172.16.16.2/24"),
        ("tun-alpha", "172.16.16.1/24"),
    ] {
        assert!(
            matches!(
                p.check(&addr_op(ifname, addr)),
                Err(GatewayRefusal::Address { .. })
            ),
            "{ifname} {addr}"
        );
    }
    // A tun-mode peer without statements of its own inherits the top level.
    let mut p = p;
    p.register_interface("tun-floater", IfaceOwner::Peer("floater".to_owned()));
    assert_eq!(p.check(&addr_op("tun-floater", "172.16.16.1/24")), Ok(()));
    assert!(p.check(&addr_op("tun-floater", "172.16.16.2/24")).is_err());
    // An interface the helper did not create.
    assert_eq!(
        p.check(&addr_op("eth0", "172.16.16.1/24")),
        Err(GatewayRefusal::UnknownInterface("eth0".to_owned()))
    );
    let remove = GatewayRequest::RemoveAddress(AddressOp {
        ifname: IfName::new("lo").unwrap(),
        addr: net("127.0.0.1/8"),
    });
    assert!(p.check(&remove).is_err());
}

#[test]
fn policy_pins_only_host_routes_to_current_peer_addresses() {
    let mut p = sealed();
    assert_eq!(p.check(&pin("alpha", "198.51.100.1/32")), Ok(()));
    assert_eq!(
        p.check(&pin("alpha", "198.51.100.0/24")),
        Err(GatewayRefusal::NotHostRoute(net("198.51.100.0/24")))
    );
    assert_eq!(
        p.check(&pin("alpha", "0.0.0.0/0")),
        Err(GatewayRefusal::NotHostRoute(net("0.0.0.0/0")))
    );
    assert!(matches!(
        p.check(&pin("alpha", "198.51.100.2/32")),
        Err(GatewayRefusal::NotPeerAddress { .. })
    ));
    // A floating peer may be anywhere, but only at a unicast host address.
    assert_eq!(p.check(&pin("floater", "203.0.113.7/32")), Ok(()));
    assert_eq!(p.check(&pin("floater", "2001:db8::7/128")), Ok(()));
    assert!(p.check(&pin("floater", "2001:db8::/64")).is_err());
    assert!(p.check(&pin("floater", "224.0.0.1/32")).is_err());
    assert!(p.check(&pin("floater", "127.0.0.1/32")).is_err());
    assert_eq!(
        p.check(&pin("floater", "172.16.16.9/32")),
        Err(GatewayRefusal::PinInsideTunnel(ip("172.16.16.9")))
    );
    // A peer without `redirect gateway`.
    assert_eq!(
        p.check(&pin("bob", "198.51.100.1/32")),
        Err(GatewayRefusal::NoRedirect("bob".to_owned()))
    );
    // A peer the manifest does not list (the default settings have a redirect): only
    // while the helper knows of its session.
    assert_eq!(
        p.check(&pin("mallory", "203.0.113.9/32")),
        Err(GatewayRefusal::UnknownPeer("mallory".to_owned()))
    );
    p.session("mallory".to_owned(), true);
    assert_eq!(
        p.check(&pin("mallory", "203.0.113.9/32")),
        Err(GatewayRefusal::NoRedirect("mallory".to_owned())),
        "known now; the default settings decide"
    );
    p.session("mallory".to_owned(), false);
    assert_eq!(
        p.check(&pin("mallory", "203.0.113.9/32")),
        Err(GatewayRefusal::UnknownPeer("mallory".to_owned()))
    );

    // Redirect only after the pin, through the peer's (or the shared)
    // interface and via exactly the configured address.
    let ok = redirect("alpha", "tun-alpha", Some("172.16.16.1"), Family::V4);
    assert_eq!(
        p.check(&ok),
        Err(GatewayRefusal::NotPinned("alpha".to_owned()))
    );
    p.applied(&pin("alpha", "198.51.100.1/32"));
    assert_eq!(p.pinned("alpha"), Some(ip("198.51.100.1")));
    assert_eq!(p.check(&ok), Ok(()));
    assert_eq!(
        p.check(&redirect(
            "alpha",
            "vpngateway",
            Some("172.16.16.1"),
            Family::V4
        )),
        Ok(())
    );
    assert_eq!(
        p.check(&redirect("alpha", "tun-alpha", None, Family::V6)),
        Ok(())
    );
    assert!(matches!(
        p.check(&redirect(
            "alpha",
            "tun-other",
            Some("172.16.16.1"),
            Family::V4
        )),
        Err(GatewayRefusal::WrongInterface { .. })
    ));
    assert!(matches!(
        p.check(&redirect("alpha", "eth0", Some("172.16.16.1"), Family::V4)),
        Err(GatewayRefusal::UnknownInterface(_))
    ));
    assert!(matches!(
        p.check(&redirect(
            "alpha",
            "tun-alpha",
            Some("172.16.16.9"),
            Family::V4
        )),
        Err(GatewayRefusal::Via { .. })
    ));
    assert!(matches!(
        p.check(&redirect("alpha", "tun-alpha", None, Family::V4)),
        Err(GatewayRefusal::Via { .. })
    ));

    let unredirect = GatewayRequest::Unredirect {
        peer: "alpha".to_owned(),
    };
    assert_eq!(p.check(&unredirect), Ok(()));
    p.applied(&unredirect);
    assert_eq!(p.pinned("alpha"), None);
    assert!(p.check(&ok).is_err());
    assert!(p
        .check(&GatewayRequest::Unredirect {
            peer: "bob".to_owned()
        })
        .is_err());
}

#[test]
fn policy_allows_only_the_daemons_masquerade_table() {
    let p = sealed();
    assert_eq!(p.nft_table(), "fastd_privsep_t1");
    assert_eq!(
        p.check(&masq("fastd_privsep_t1", &["172.16.16.0/24"], "eth0")),
        Ok(())
    );
    // Host bits in the prefix do not change the network it names.
    assert_eq!(
        p.check(&masq("fastd_privsep_t1", &["172.16.16.7/24"], "eth0")),
        Ok(())
    );
    assert_eq!(
        p.check(&masq("nat", &["172.16.16.0/24"], "eth0")),
        Err(GatewayRefusal::Table("nat".to_owned()))
    );
    assert_eq!(
        p.check(&masq("fastd_privsep_t2", &["172.16.16.0/24"], "eth0")),
        Err(GatewayRefusal::Table("fastd_privsep_t2".to_owned()))
    );
    for prefixes in [
        &["192.0.2.0/24"][..],
        &["172.16.16.0/23"],
        &["172.16.16.0/24", "198.51.100.0/24"],
        &[],
    ] {
        assert_eq!(
            p.check(&masq("fastd_privsep_t1", prefixes, "eth0")),
            Err(GatewayRefusal::MasqueradePrefixes),
            "{prefixes:?}"
        );
    }
    assert_eq!(
        p.check(&masq("fastd_privsep_t1", &["172.16.16.0/24"], "v1")),
        Err(GatewayRefusal::MasqueradeInterface("v1".to_owned()))
    );

    let mut none = manifest();
    none.masquerade = None;
    let p = GatewayPolicy::seal(none).unwrap();
    assert_eq!(
        p.check(&masq("fastd_privsep_t1", &["172.16.16.0/24"], "eth0")),
        Err(GatewayRefusal::NoMasquerade)
    );
}

#[test]
fn seal_rejects_bad_manifests() {
    let mut m = manifest();
    m.instance = "a b".to_owned();
    assert!(matches!(
        GatewayPolicy::seal(m),
        Err(ManifestError::Instance(_))
    ));
    let mut m = manifest();
    m.masquerade = Some(MasqueradeManifest {
        prefixes: vec![net("172.16.16.0/24")],
        out_ifname: "much-too-long-ifname".to_owned(),
    });
    assert!(matches!(
        GatewayPolicy::seal(m),
        Err(ManifestError::IfName(_))
    ));
    let mut m = manifest();
    m.interface_addresses.push(net("224.0.0.1/24"));
    assert!(matches!(
        GatewayPolicy::seal(m),
        Err(ManifestError::Address(_))
    ));
}
