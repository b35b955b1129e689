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
