//! The undo journal: plain data naming exactly what the gateway changed, so
//! that stop, disestablish or worker death remove those things and nothing else.

use policy::gateway::{Family, IpNet};

use super::route::RouteSpec;

/// Why a route exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteOwner {
    /// The peer's underlay address pinned to its original path.
    Pin { peer: String },
    /// One half of the peer's default redirect, through `ifname`.
    Redirect { peer: String, ifname: String },
}

impl RouteOwner {
    pub fn peer(&self) -> &str {
        match self {
            RouteOwner::Pin { peer } | RouteOwner::Redirect { peer, .. } => peer,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Undo {
    Address {
        ifname: String,
        ifindex: u32,
        addr: IpNet,
    },
    Route {
        owner: RouteOwner,
        spec: RouteSpec,
    },
    /// Forwarding was `old` before we set it to 1.
    Forwarding {
        family: Family,
        old: String,
    },
    NftTable {
        name: String,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Journal {
    entries: Vec<Undo>,
}

impl Journal {
    pub fn entries(&self) -> &[Undo] {
        &self.entries
    }

    pub fn record(&mut self, undo: Undo) {
        if !self.entries.contains(&undo) {
            self.entries.push(undo);
        }
    }

    pub fn contains(&self, undo: &Undo) -> bool {
        self.entries.contains(undo)
    }

    /// Take the matching entries out, newest first (the order to undo them in).
    pub fn take(&mut self, mut pred: impl FnMut(&Undo) -> bool) -> Vec<Undo> {
        let (mut taken, kept): (Vec<Undo>, Vec<Undo>) =
            self.entries.drain(..).partition(|u| pred(u));
        self.entries = kept;
        taken.reverse();
        taken
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The journal as text for the state file, one entry per line, so that a
/// helper started after a crash (SIGKILL leaves no chance to undo) can take
/// back what the dead one left: pinned routes and forwarding survive it.
/// Peer names are not written: a recovered entry is only ever undone.
impl Journal {
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for undo in &self.entries {
            let line = match undo {
                Undo::Address {
                    ifname,
                    ifindex,
                    addr,
                } => format!("address {ifname} {ifindex} {addr}"),
                Undo::Route { owner, spec } => {
                    let (kind, ifname) = match owner {
                        RouteOwner::Pin { .. } => ("pin", "-"),
                        RouteOwner::Redirect { ifname, .. } => ("redirect", ifname.as_str()),
                    };
                    let gw = spec.gateway.map_or("-".to_owned(), |g| g.to_string());
                    format!(
                        "route {kind} {ifname} {} {gw} {} {}",
                        spec.dest, spec.oif, spec.table
                    )
                }
                Undo::Forwarding { family, old } => {
                    let f = match family {
                        Family::V4 => "v4",
                        Family::V6 => "v6",
                    };
                    format!("forwarding {f} {old}")
                }
                Undo::NftTable { name } => format!("nft {name}"),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// Parse a state file; lines that do not parse are skipped (they name
    /// nothing we could safely undo).
    pub fn from_text(text: &str) -> Journal {
        let entries = text.lines().filter_map(parse_line).collect();
        Journal { entries }
    }
}

fn parse_line(line: &str) -> Option<Undo> {
    let words: Vec<&str> = line.split(' ').collect();
    match words.as_slice() {
        ["address", ifname, ifindex, addr] => Some(Undo::Address {
            ifname: (*ifname).to_owned(),
            ifindex: ifindex.parse().ok()?,
            addr: addr.parse().ok()?,
        }),
        ["route", kind, ifname, dest, gw, oif, table] => {
            let owner = match *kind {
                "pin" => RouteOwner::Pin {
                    peer: String::new(),
                },
                "redirect" => RouteOwner::Redirect {
                    peer: String::new(),
                    ifname: (*ifname).to_owned(),
                },
                _ => return None,
            };
            let gateway = match *gw {
                "-" => None,
                g => Some(g.parse().ok()?),
            };
            Some(Undo::Route {
                owner,
                spec: RouteSpec {
                    dest: dest.parse().ok()?,
                    gateway,
                    oif: oif.parse().ok()?,
                    table: table.parse().ok()?,
                },
            })
        }
        ["forwarding", family, old] => Some(Undo::Forwarding {
            family: match *family {
                "v4" => Family::V4,
                "v6" => Family::V6,
                _ => return None,
            },
            old: (*old).to_owned(),
        }),
        ["nft", name] => Some(Undo::NftTable {
            name: (*name).to_owned(),
        }),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn state_text_round_trips() {
        let mut j = Journal::default();
        j.record(Undo::Address {
            ifname: "tun0".into(),
            ifindex: 7,
            addr: "172.16.16.2/24".parse().unwrap(),
        });
        j.record(Undo::Route {
            owner: RouteOwner::Pin {
                peer: String::new(),
            },
            spec: RouteSpec {
                dest: "198.51.100.1/32".parse().unwrap(),
                gateway: Some("192.0.2.1".parse().unwrap()),
                oif: 2,
                table: 254,
            },
        });
        j.record(Undo::Route {
            owner: RouteOwner::Redirect {
                peer: String::new(),
                ifname: "tun0".into(),
            },
            spec: RouteSpec {
                dest: "::/1".parse().unwrap(),
                gateway: None,
                oif: 7,
                table: 254,
            },
        });
        j.record(Undo::Forwarding {
            family: Family::V6,
            old: "0".into(),
        });
        j.record(Undo::NftTable {
            name: "fastd_privsep_t1".into(),
        });
        assert_eq!(Journal::from_text(&j.to_text()), j);
        assert!(Journal::from_text("route pin - nonsense\nforwarding v9 0\n").is_empty());
    }
}
