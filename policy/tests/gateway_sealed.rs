//! `Request::Gateway` goes through the same one check as every other request: refused
//! without a gateway part, and otherwise only what the sealed `GatewayPolicy` allows,
//! given what the helper recorded (interfaces it opened, pins it applied).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use policy::gateway::*;
use policy::{IfName, Policy, Request};
use std::collections::BTreeMap;

fn gateway_manifest() -> GatewayManifest {
    let mut peers = BTreeMap::new();
    peers.insert(
        "anyremote".to_owned(),
        PeerGateway {
            addresses: vec![],
            redirect: Some(RedirectManifest {
                via: Some("172.16.16.1".parse().unwrap()),
            }),
            remotes: Some(vec!["198.51.100.1".parse().unwrap()]),
        },
    );
    GatewayManifest {
        instance: "i0123".to_owned(),
        interface_addresses: vec!["172.16.16.2/24".parse().unwrap()],
        peers,
        default_peer: PeerGateway::default(),
        masquerade: Some(MasqueradeManifest {
            prefixes: vec!["172.16.16.0/24".parse().unwrap()],
            out_ifname: "uplink".to_owned(),
        }),
    }
}

fn gw(r: GatewayRequest) -> Request {
    Request::Gateway(r)
}

fn add_addr(ifname: &str, addr: &str) -> Request {
    gw(GatewayRequest::AddAddress(AddressOp {
        ifname: IfName::new(ifname).unwrap(),
        addr: addr.parse().unwrap(),
    }))
}

#[test]
fn without_a_gateway_part_every_gateway_request_is_refused() {
    let p = Policy::seal(common::manifest()).unwrap();
    let r = p.check(&add_addr("vpngateway", "172.16.16.2/24"));
    assert!(r.unwrap_err().0.contains("no gateway"));
}

#[test]
fn invalid_gateway_parts_are_not_sealed() {
    let mut m = common::manifest();
    let mut g = gateway_manifest();
    g.instance = "bad name".to_owned();
    m.gateway = Some(g);
    assert!(Policy::seal(m).is_err());
}

#[test]
fn only_configured_operations_on_helper_interfaces_pass() {
    let mut m = common::manifest();
    m.gateway = Some(gateway_manifest());
    let mut p = Policy::seal(m).unwrap();
    // Not opened by the helper yet.
    assert!(p.check(&add_addr("vpngateway", "172.16.16.2/24")).is_err());
    p.gateway_mut()
        .unwrap()
        .register_interface("vpngateway", IfaceOwner::Peer("anyremote".to_owned()));
    assert!(p.check(&add_addr("vpngateway", "172.16.16.2/24")).is_ok());
    assert!(p.check(&add_addr("vpngateway", "10.0.0.1/8")).is_err());
    assert!(p.check(&add_addr("eth0", "172.16.16.2/24")).is_err());

    let redirect = gw(GatewayRequest::RedirectGateway(RedirectGateway {
        peer: "anyremote".to_owned(),
        ifname: IfName::new("vpngateway").unwrap(),
        via: Some("172.16.16.1".parse().unwrap()),
        family: Family::V4,
    }));
    // No pin yet: the redirect would hide the route to the peer.
    assert!(p.check(&redirect).is_err());
    let pin_other = gw(GatewayRequest::PinHostRoute(PinHostRoute {
        peer: "anyremote".to_owned(),
        dest: "203.0.113.7/32".parse().unwrap(),
    }));
    assert!(p.check(&pin_other).is_err(), "not the peer's remote");
    let pin = GatewayRequest::PinHostRoute(PinHostRoute {
        peer: "anyremote".to_owned(),
        dest: "198.51.100.1/32".parse().unwrap(),
    });
    assert!(p.check(&gw(pin.clone())).is_ok());
    p.gateway_mut().unwrap().applied(&pin);
    assert!(p.check(&redirect).is_ok());

    let masq = |table: String, out: &str| {
        gw(GatewayRequest::Masquerade(Masquerade {
            table,
            prefixes: vec!["172.16.16.0/24".parse().unwrap()],
            out_ifname: out.to_owned(),
        }))
    };
    assert!(p.check(&masq(nft_table_name("i0123"), "uplink")).is_ok());
    assert!(p.check(&masq(nft_table_name("other"), "uplink")).is_err());
    assert!(p.check(&masq(nft_table_name("i0123"), "eth0")).is_err());
}
