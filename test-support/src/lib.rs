//! What the tests of fastd-privsep share, so that each test file says only what it checks:
//!
//! - [`gate`]: one "needs root / needs a tool" gate (fails under `CI=true`, skips otherwise);
//! - [`netns`]: network namespaces, veth links and a bridged LAN, deleted on drop (also when
//!   the test panics), with unique names;
//! - [`daemon`]: ours or the real fastd as a process in a namespace, stopped on drop;
//! - [`keys`] and [`conf`]: recorded key pairs and a fastd config builder;
//! - [`manifest`] and [`ipc`]: a sealed-manifest skeleton and a seqpacket pair, for tests
//!   that play the worker against the helper;
//! - [`traffic`]: ICMP and TCP through a tunnel, and [`traffic::assert_tunnel`];
//! - [`wait`]: bounded waits.
//!
//! Everything sends traffic only inside namespaces the test creates.
// A test helper's job is to panic with a message when the world is not as the test needs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod conf;
pub mod daemon;
pub mod fs;
pub mod gate;
pub mod ipc;
pub mod keys;
pub mod manifest;
pub mod netns;
pub mod traffic;
pub mod wait;

pub use conf::{client_conf, ConfBuilder, GATEWAY};
pub use daemon::{assert_stopped_by, pid_gone, spawn_logged, status_field, Daemon, Fastd};
pub use fs::{tempdir, write_exec, TempDir};
pub use gate::{have_tools, prerequisites, ready};
pub use ipc::seqpacket_pair;
pub use keys::*;
pub use netns::{enter_netns, link, sh_ok, sides, unique, veth_pair, Lan, Netns};
pub use traffic::{
    assert_transfer, assert_tunnel, assert_tunnel_or, packet_errors, ping, tcp_echo, tunnel_within,
};
pub use wait::wait_until;

/// The real fastd v22.
pub const FASTD: &str = "/usr/bin/fastd";
