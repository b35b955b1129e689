//! The status socket (docs/config.md §6.8): its listener and connections in a mio poll
//! whose descriptor the engine watches, and the snapshot of the engine's peers it serves.

use crate::config::{Config, LogLevel};
use crate::engine::{Logger, PeerStatus, Traffic};
use crate::status::{
    ConnectionStatus, Counter, MacAddress, ModeStatus, PeerAddress, PeerStatus as StatusPeer,
    Statistics, StatusServer, StatusSnapshot,
};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// Token of the status socket in its own mio poll.
const STATUS_TOKEN: mio::Token = mio::Token(1000);

/// The status socket in its own mio poll, whose descriptor the engine watches.
pub(super) struct StatusLoop {
    poll: mio::Poll,
    events: mio::Events,
    server: StatusServer,
}

impl StatusLoop {
    pub(super) fn new(listener: OwnedFd) -> io::Result<Self> {
        let poll = mio::Poll::new()?;
        let mut server = StatusServer::new(listener, STATUS_TOKEN)?;
        server.register(poll.registry())?;
        Ok(Self {
            poll,
            events: mio::Events::with_capacity(16),
            server,
        })
    }

    pub(super) fn fd(&self) -> RawFd {
        self.poll.as_raw_fd()
    }

    pub(super) fn handle(&mut self, snapshot: &dyn Fn() -> StatusSnapshot, log: &Logger) {
        if let Err(e) = self.poll.poll(&mut self.events, Some(Duration::ZERO)) {
            log.log(LogLevel::Warn, || format!("status socket: {e}"));
            return;
        }
        for ev in self.events.iter() {
            if self.server.owns(ev.token()) {
                for n in self
                    .server
                    .handle(self.poll.registry(), ev.token(), snapshot)
                {
                    log.log(LogLevel::Debug, || format!("status socket: {n}"));
                }
            }
        }
    }
}

fn counter(packets: u64, bytes: u64) -> Counter {
    Counter { packets, bytes }
}

pub(super) fn snapshot(
    config: &Config,
    peers: &[PeerStatus],
    total: &Traffic,
    shared_iface: Option<&str>,
    started: Instant,
) -> StatusSnapshot {
    let now = Instant::now();
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mode = match config.mode {
        crate::config::Mode::Tap => ModeStatus::Tap {
            interface: shared_iface.unwrap_or_default().to_owned(),
        },
        crate::config::Mode::Tun => ModeStatus::Tun,
        crate::config::Mode::Multitap => ModeStatus::Multitap,
    };
    let statistics = |t: &Traffic| Statistics {
        rx: counter(t.rx_packets, t.rx_bytes),
        rx_reordered: counter(t.rx_reordered_packets, t.rx_reordered_bytes),
        tx: counter(t.tx_packets, t.tx_bytes),
        tx_dropped: counter(t.tx_dropped_packets, t.tx_dropped_bytes),
        tx_error: counter(t.tx_error_packets, t.tx_error_bytes),
    };
    // Every peer the engine has, dynamic (`on verify`) ones included: the key comes from
    // the engine, not from the config's list.
    let list = peers
        .iter()
        .map(|p| {
            let stats = statistics(&p.traffic);
            let connection = p.established.then(|| ConnectionStatus {
                established_ms: p
                    .connected_since
                    .map_or(0, |t| ms(now.saturating_duration_since(t))),
                method: p.method.clone(),
                statistics: stats,
                mac_addresses: p.macs.iter().copied().map(MacAddress).collect(),
            });
            StatusPeer {
                key: p.key,
                name: p.name.clone(),
                address: p.addr.map_or(PeerAddress::Any, PeerAddress::from),
                interface: p.iface.clone(),
                connection,
            }
        })
        .collect();
    StatusSnapshot {
        uptime_ms: ms(now.saturating_duration_since(started)),
        mode,
        statistics: statistics(total),
        peers: list,
    }
}
