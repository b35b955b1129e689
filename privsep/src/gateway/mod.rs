//! The gateway operations (interface addresses, redirect, masquerade), carried out by the helper after
//! `policy::gateway::GatewayPolicy::check` accepted a request: interface
//! addresses, the pinned underlay route plus the redirect halves, and the
//! masquerade table with IP forwarding. Everything goes through netlink
//! (no `ip`, no `nft`, no shell) and every change is journaled so that
//! [`Gateway::undo_all`] takes back exactly what was done.
//!
//! How the helper's request loop uses it:
//! - at seal: `GatewayPolicy::seal(manifest.gateway)` and
//!   [`Gateway::with_state`] (`<instance>.gateway` in `gateway_wiring::state_dir`);
//!   log the returned clean-up errors of a killed predecessor;
//! - after a successful OpenTun: `policy.register_interface(name, owner)`;
//!   after CloseTun: [`Gateway::forget_interface`] and `unregister_interface`;
//! - for each `GatewayRequest`: `policy.check(&req)` (refuse on `Err`), then
//!   [`Gateway::apply`], then `policy.applied(&req)` when it succeeded;
//! - on stop and on worker death: [`Gateway::undo_all`] and log its errors.
//!
//! The worker sends: AddAddress per `interface address` after the link is
//! up and before `on up`; on establish PinHostRoute (peer's address /32 or
//! /128) then RedirectGateway per family; PinHostRoute again when the peer
//! floats; Unredirect on disestablish; Masquerade once after sealing.

mod addr;
mod forwarding;
pub mod journal;
mod nft;
pub mod route;
pub(crate) mod rtnl;

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use policy::gateway::{Family, GatewayRequest, IpNet};
use thiserror::Error;

use journal::{Journal, RouteOwner, Undo};
use route::{NextHop, RouteSpec, RT_TABLE_MAIN};

pub use forwarding::sysctl_path as forwarding_sysctl_path;
pub use nft::NFT_TABLE_F_OWNER;

#[derive(Debug, Error)]
pub enum GatewayError {
    #[error("netlink socket: {0}")]
    Socket(io::Error),
    #[error("nftables is not usable (kernel without nf_tables, nat or masquerade support?): {0}")]
    Nftables(io::Error),
    #[error("{op}: {}", io::Error::from_raw_os_error(*errno))]
    Kernel { op: &'static str, errno: i32 },
    #[error("{0}: undecodable netlink answer")]
    Decode(&'static str),
    #[error("no usable unicast route to {0}")]
    NoRoute(IpAddr),
    #[error("no interface {0:?}")]
    NoInterface(String),
    #[error("route {0} already exists and is not ours")]
    RouteExists(IpNet),
    #[error("{0}: {1}")]
    Sysctl(&'static str, io::Error),
    #[error("gateway state file: {0}")]
    State(io::Error),
}

impl GatewayError {
    /// The kernel's errno for a refused netlink request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            GatewayError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// Netlink messages and attributes are padded to four bytes.
pub(crate) fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

fn ifindex(ifname: &str) -> Result<u32, GatewayError> {
    nix::net::if_::if_nametoindex(ifname).map_err(|_| GatewayError::NoInterface(ifname.to_owned()))
}

fn host(addr: IpAddr) -> IpNet {
    IpNet::from(addr)
}

/// The helper's gateway state: one rtnetlink socket, the nftables owner
/// socket (while a masquerade table exists) and the undo journal.
pub struct Gateway {
    rt: rtnl::Rtnl,
    nft: Option<nft::NftOwner>,
    journal: Journal,
    /// The last underlay next hop seen outside the tunnel, per family: a
    /// peer that floats while the redirect is active would otherwise be
    /// looked up through the tunnel itself.
    underlay: BTreeMap<Family, NextHop>,
    /// Where the journal is mirrored for recovery after a crash.
    state: Option<PathBuf>,
}

impl Gateway {
    /// Open the rtnetlink socket in the caller's network namespace.
    pub fn new() -> Result<Gateway, GatewayError> {
        Ok(Gateway {
            rt: rtnl::Rtnl::open()?,
            nft: None,
            journal: Journal::default(),
            underlay: BTreeMap::new(),
            state: None,
        })
    }

    /// Like [`Gateway::new`], mirroring the journal to `state` (e.g.
    /// `/run/fastd-privsep/<instance>.gateway`, on a root-only tmpfs). What a
    /// killed predecessor left there is undone first; the errors of that
    /// clean-up are returned for the log, they do not stop the start.
    pub fn with_state(state: &Path) -> Result<(Gateway, Vec<GatewayError>), GatewayError> {
        let mut gw = Gateway::new()?;
        let mut errors = Vec::new();
        if let Some(dir) = state.parent() {
            use std::os::unix::fs::DirBuilderExt;
            // Root-only: the file says which routes the helper may remove.
            if let Err(e) = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
            {
                errors.push(GatewayError::State(e));
            }
        }
        match std::fs::read_to_string(state) {
            Ok(text) => {
                let mut stale = Journal::from_text(&text);
                let entries = stale.take(|_| true);
                errors = gw.undo_each(entries);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => errors.push(GatewayError::State(e)),
        }
        gw.state = Some(state.to_owned());
        if let Err(e) = gw.save() {
            errors.push(e);
        }
        Ok((gw, errors))
    }

    /// What is currently set up and will be undone.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Carry out a request the policy has accepted.
    pub fn apply(&mut self, req: &GatewayRequest) -> Result<(), GatewayError> {
        match req {
            GatewayRequest::AddAddress(op) => self.add_address(op.ifname.as_str(), op.addr),
            GatewayRequest::RemoveAddress(op) => self.remove_address(op.ifname.as_str(), op.addr),
            GatewayRequest::PinHostRoute(pin) => self.pin_host_route(&pin.peer, pin.dest.addr()),
            GatewayRequest::RedirectGateway(r) => {
                self.redirect_gateway(&r.peer, r.ifname.as_str(), r.via, r.family)
            }
            GatewayRequest::Unredirect { peer } => self.unredirect(peer),
            GatewayRequest::Masquerade(m) => self.masquerade(&m.table, &m.prefixes, &m.out_ifname),
        }
    }

    fn add_address_now(&mut self, ifname: &str, addr: IpNet) -> Result<(), GatewayError> {
        let index = ifindex(ifname)?;
        if addr::add(&mut self.rt, index, &addr)? {
            self.journal.record(Undo::Address {
                ifname: ifname.to_owned(),
                ifindex: index,
                addr,
            });
        }
        Ok(())
    }

    fn remove_address_now(&mut self, ifname: &str, addr: IpNet) -> Result<(), GatewayError> {
        let taken = self.journal.take(
            |u| matches!(u, Undo::Address { ifname: n, addr: a, .. } if n == ifname && *a == addr),
        );
        self.undo_each(taken).into_iter().next().map_or(Ok(()), Err)
    }

    fn pin_host_route_now(&mut self, peer: &str, addr: IpAddr) -> Result<(), GatewayError> {
        let dest = host(addr);
        let is_pin_of = |u: &Undo| matches!(u, Undo::Route { owner: RouteOwner::Pin { peer: p }, .. } if p == peer);
        let same =
            self.journal.entries().iter().any(|u| {
                is_pin_of(u) && matches!(u, Undo::Route { spec, .. } if spec.dest == dest)
            });
        if same {
            return Ok(());
        }
        let family = Family::of(&addr);
        let mut hop = route::lookup(&mut self.rt, addr)?;
        if self.redirected_oifs().contains(&hop.oif) {
            hop = self
                .underlay
                .get(&family)
                .cloned()
                .ok_or(GatewayError::NoRoute(addr))?;
        } else {
            self.underlay.insert(family, hop.clone());
        }
        let spec = RouteSpec {
            dest,
            gateway: hop.gateway,
            oif: hop.oif,
            table: hop.table,
        };
        let old = self
            .journal
            .take(|u| is_pin_of(u) && !matches!(u, Undo::Route { spec: s, .. } if s.dest == dest));
        // A host route that already exists already pins the address.
        if route::add(&mut self.rt, &spec)? {
            self.journal.record(Undo::Route {
                owner: RouteOwner::Pin {
                    peer: peer.to_owned(),
                },
                spec,
            });
        }
        self.undo_each(old).into_iter().next().map_or(Ok(()), Err)
    }

    fn redirect_gateway_now(
        &mut self,
        peer: &str,
        ifname: &str,
        via: Option<IpAddr>,
        family: Family,
    ) -> Result<(), GatewayError> {
        let oif = ifindex(ifname)?;
        for half in family.redirect_halves() {
            let undo = Undo::Route {
                owner: RouteOwner::Redirect {
                    peer: peer.to_owned(),
                    ifname: ifname.to_owned(),
                },
                spec: RouteSpec {
                    dest: half,
                    gateway: via,
                    oif,
                    table: RT_TABLE_MAIN,
                },
            };
            if self.journal.contains(&undo) {
                continue;
            }
            let Undo::Route { spec, .. } = &undo else {
                continue;
            };
            if !route::add(&mut self.rt, spec)? {
                return Err(GatewayError::RouteExists(half));
            }
            self.journal.record(undo);
        }
        Ok(())
    }

    fn unredirect_now(&mut self, peer: &str) -> Result<(), GatewayError> {
        let taken = self
            .journal
            .take(|u| matches!(u, Undo::Route { owner, .. } if owner.peer() == peer));
        // `take` returns newest first: the redirect halves, then the pin.
        self.undo_each(taken).into_iter().next().map_or(Ok(()), Err)
    }

    fn masquerade_now(
        &mut self,
        table: &str,
        prefixes: &[IpNet],
        out_ifname: &str,
    ) -> Result<(), GatewayError> {
        let nft = match &mut self.nft {
            Some(n) => n,
            None => self.nft.insert(nft::NftOwner::open()?),
        };
        nft.replace(table, prefixes, out_ifname)?;
        self.journal.record(Undo::NftTable {
            name: table.to_owned(),
        });
        for family in [Family::V4, Family::V6] {
            let wanted = prefixes.iter().any(|p| match p {
                IpNet::V4(_) => family == Family::V4,
                IpNet::V6(_) => family == Family::V6,
            });
            let journaled = self
                .journal
                .entries()
                .iter()
                .any(|u| matches!(u, Undo::Forwarding { family: f, .. } if *f == family));
            if wanted && !journaled {
                if let Some(old) = forwarding::enable(family)? {
                    self.journal.record(Undo::Forwarding { family, old });
                }
            }
        }
        Ok(())
    }

    /// Put an address on an interface. An address that was already there
    /// is left alone and not journaled.
    pub fn add_address(&mut self, ifname: &str, addr: IpNet) -> Result<(), GatewayError> {
        let result = self.add_address_now(ifname, addr);
        self.saved(result)
    }

    /// Remove an address this gateway added; any other address is not ours.
    pub fn remove_address(&mut self, ifname: &str, addr: IpNet) -> Result<(), GatewayError> {
        let result = self.remove_address_now(ifname, addr);
        self.saved(result)
    }

    /// Pin `addr` (the peer's current underlay address) as a host route
    /// through the next hop the kernel reports for exactly that address.
    /// A second pin for the same peer (it floated) replaces the first one,
    /// adding the new route before removing the old.
    pub fn pin_host_route(&mut self, peer: &str, addr: IpAddr) -> Result<(), GatewayError> {
        let result = self.pin_host_route_now(peer, addr);
        self.saved(result)
    }

    /// Add the two halves of `family`'s address space through `ifname`.
    pub fn redirect_gateway(
        &mut self,
        peer: &str,
        ifname: &str,
        via: Option<IpAddr>,
        family: Family,
    ) -> Result<(), GatewayError> {
        let result = self.redirect_gateway_now(peer, ifname, via, family);
        self.saved(result)
    }

    /// Disestablish: remove the peer's redirect halves, then its pin.
    pub fn unredirect(&mut self, peer: &str) -> Result<(), GatewayError> {
        let result = self.unredirect_now(peer);
        self.saved(result)
    }

    /// Create (or replace whole) the masquerade table and turn forwarding on
    /// for the families of `prefixes`.
    pub fn masquerade(
        &mut self,
        table: &str,
        prefixes: &[IpNet],
        out_ifname: &str,
    ) -> Result<(), GatewayError> {
        let result = self.masquerade_now(table, prefixes, out_ifname);
        self.saved(result)
    }

    /// The in-memory journal is authoritative; a state file that cannot be
    /// written only weakens crash recovery, so the operation's result stands.
    fn saved(&mut self, result: Result<(), GatewayError>) -> Result<(), GatewayError> {
        let _ = self.save();
        result
    }

    /// The interface went away; the kernel removed its addresses and routes.
    pub fn forget_interface(&mut self, ifname: &str) {
        self.journal.take(|u| match u {
            Undo::Address { ifname: n, .. } => n == ifname,
            Undo::Route {
                owner: RouteOwner::Redirect { ifname: n, .. },
                ..
            } => n == ifname,
            _ => false,
        });
        let _ = self.save();
    }

    /// Stop or worker death: undo everything, newest first. Returns what
    /// could not be undone (the journal is empty afterwards either way).
    pub fn undo_all(&mut self) -> Vec<GatewayError> {
        let all = self.journal.take(|_| true);
        let mut errors = self.undo_each(all);
        self.nft = None;
        if let Some(state) = &self.state {
            match std::fs::remove_file(state) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    errors.push(GatewayError::State(e))
                }
                _ => {}
            }
        }
        errors
    }

    /// Mirror the journal to the state file (write, then rename over).
    fn save(&self) -> Result<(), GatewayError> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        let tmp = state.with_extension("tmp");
        std::fs::write(&tmp, self.journal.to_text()).map_err(GatewayError::State)?;
        std::fs::rename(&tmp, state).map_err(GatewayError::State)
    }

    fn redirected_oifs(&self) -> Vec<u32> {
        self.journal
            .entries()
            .iter()
            .filter_map(|u| match u {
                Undo::Route {
                    owner: RouteOwner::Redirect { .. },
                    spec,
                } => Some(spec.oif),
                _ => None,
            })
            .collect()
    }

    fn undo_each(&mut self, entries: Vec<Undo>) -> Vec<GatewayError> {
        let mut errors = Vec::new();
        for undo in entries {
            let result = match &undo {
                Undo::Address { ifindex, addr, .. } => addr::remove(&mut self.rt, *ifindex, addr),
                Undo::Route { spec, .. } => route::remove(&mut self.rt, spec),
                Undo::Forwarding { family, old } => forwarding::restore(*family, old),
                Undo::NftTable { .. } => match &mut self.nft {
                    Some(nft) => nft.delete(),
                    None => Ok(()),
                },
            };
            if let Err(e) = result {
                errors.push(e);
            }
        }
        errors
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // Errors here have nowhere to go; the integrator calls `undo_all`
        // itself on every orderly path and logs what it returns.
        let _ = self.undo_all();
    }
}
