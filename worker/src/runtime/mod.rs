//! The worker after start-up: the packet engine with its privileged side over the helper
//! socket. [`run`] is the loop: it drives the engine, handles the helper's notices
//! (`Stop`, `Reload`, `ResetAll`, verdicts), serves the status socket ([`status`]) and
//! keeps the gateway routes in step with the peers ([`gateway`]). The engine's requests
//! (interfaces, per-connection sockets, hooks) go through [`provider::IpcProvider`];
//! host names were resolved before the sandbox ([`resolve`]).
//!
//! The engine reports each session going up or down to the provider
//! ([`crate::engine::Provider::peer_up`]), which keeps the gateway routes in step; the
//! peer table is read only when a status client asks.

pub mod gateway;
pub mod provider;
pub mod resolve;
pub mod status;

use crate::bootstrap::Started;
use crate::config::{Config, LogLevel};
use crate::engine::{BoundSocket, Descriptors, Engine, Iface, Logger, Timings};
use crate::helper_client::{HelperClient, HelperSource};
use gateway::GatewayDriver;
use policy::{Mode, Notice};
use provider::IpcProvider;
use status::{snapshot, StatusLoop};
use std::cell::RefCell;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The longest the loop waits before looking at notices and timers again.
const MAX_WAIT: Duration = Duration::from_millis(500);
/// Bound on helper notices handled in one loop turn (the helper has at most 64
/// asynchronous hooks out, so a turn normally drains them all).
const MAX_NOTICES_PER_TURN: usize = 256;

/// The helper client, shared by the loop, the provider and the gateway driver.
type Shared = Rc<RefCell<HelperClient>>;

/// SIGHUP (docs/config.md §6.3): the peer directories again, through the helper, which after
/// sealing reads only files directly inside the sealed directories. `None` without any,
/// and when a listing could not be had at all (the running peers stay).
fn reread_peer_dirs(config: &Config, channel: &Shared, log: &Logger) -> Option<Config> {
    if config.peer_dirs().is_empty() {
        return None;
    }
    let mut fresh = config.clone();
    let result = {
        let mut ch = channel.borrow_mut();
        let source = HelperSource::new(&mut ch, std::path::PathBuf::from("/"));
        crate::config::load_peer_dirs(&mut fresh, &source)
    };
    let (diags, fresh) = match result {
        Ok(diags) => (diags, Some(fresh)),
        Err(diags) => (diags, None),
    };
    for d in diags {
        log.log(d.level, || d.message.clone());
    }
    fresh
}

/// Reading thousands of peer files leaves the heap full of freed parser memory; glibc
/// keeps it unless asked to give it back (madvise/brk, both in the seccomp allow-list).
fn release_free_memory() {
    // SAFETY: malloc_trim only walks and trims the allocator's own free lists.
    unsafe { libc::malloc_trim(0) };
}

/// Runs the engine until the helper says `Stop` (0) or goes away (1).
pub fn run(started: Started) -> i32 {
    let t0 = Instant::now();
    let Started {
        helper: channel,
        mut config,
        manifest,
        devices,
        sockets,
        status,
        hooks,
        secret: _,
        log,
    } = started;
    let channel: Shared = Rc::new(RefCell::new(channel));
    let mut manifest = manifest;
    // After start-up the worker needs the configured peers' part of the manifest only to
    // find their gateway settings; without any, thousands of entries would only cost memory.
    if manifest.gateway.is_none() {
        manifest.peers = Vec::new();
    }
    let manifest = Rc::new(manifest);
    let mut tap = None;
    let mut pre_opened = Vec::new();
    for d in devices {
        match d.peer {
            Some(_) => pre_opened.push(d),
            None => {
                tap = Some(Iface {
                    fd: d.fd,
                    name: d.name.as_str().to_owned(),
                    offload: d.offload,
                })
            }
        }
    }
    let desc = Descriptors {
        sockets: sockets
            .into_iter()
            .map(|(fd, addr)| BoundSocket { fd, addr })
            .collect(),
        tap,
    };
    let provider = IpcProvider {
        channel: Rc::clone(&channel),
        manifest: Rc::clone(&manifest),
        hooks,
        pre_opened,
        up_ran: Vec::new(),
        log: log.clone(),
        gateway: GatewayDriver::new(&manifest),
    };
    let mut engine = match Engine::new(&config, desc, provider, log.clone(), Timings::default()) {
        Ok(e) => e,
        Err(e) => {
            log.log(LogLevel::Error, || e.to_string());
            return 1;
        }
    };
    release_free_memory();
    let chan_fd = channel.borrow().fd().as_raw_fd();
    if let Err(e) = engine.watch(channel.borrow().fd()) {
        log.log(LogLevel::Error, || e.to_string());
        return 1;
    }
    let mut status = match status.map(StatusLoop::new).transpose() {
        Ok(s) => s,
        Err(e) => {
            log.log(LogLevel::Error, || format!("status socket: {e}"));
            return 1;
        }
    };
    if let Some(s) = &status {
        // SAFETY: the mio poll outlives the engine's use of its descriptor: both live
        // until this function returns, and the engine only waits on it.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(s.fd()) };
        if let Err(e) = engine.watch(fd) {
            log.log(LogLevel::Error, || e.to_string());
            return 1;
        }
    }
    let shared_iface = (manifest.mode == Mode::Tap)
        .then(|| engine.interface_names().into_iter().next())
        .flatten();
    gateway::masquerade(&channel, manifest.gateway.as_ref(), &log);
    log.log(LogLevel::Verbose, || {
        format!(
            "worker running ({} ms after start)",
            t0.elapsed().as_millis()
        )
    });
    // The pid file, systemd and a --daemon parent learn now that start-up is over.
    if let Err(e) = channel.borrow_mut().ready() {
        log.log(LogLevel::Warn, || {
            format!("unable to announce readiness: {e}")
        });
    }
    let code = loop {
        let polled = match engine.poll_once(MAX_WAIT) {
            Ok(p) => p,
            Err(e) => {
                log.log(LogLevel::Error, || e.to_string());
                break 1;
            }
        };
        // Every notice waiting is handled in this turn: verdicts queued during calls
        // (each `on verify` started is a call) would otherwise wait a turn each, up to
        // MAX_WAIT, while their handshakes hold the handshake machine's verify slots;
        // new handshakes then find the slots full and only get in on their retry.
        let mut readable = polled.external.contains(&chan_fd);
        let mut stop = None;
        for _ in 0..MAX_NOTICES_PER_TURN {
            let notice = match channel.borrow_mut().next_notice(&mut readable) {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => {
                    log.log(LogLevel::Error, || e.to_string());
                    stop = Some(1);
                    break;
                }
            };
            match notice {
                Notice::Stop => {
                    stop = Some(0);
                    break;
                }
                Notice::ResetAll => engine.reset_all(),
                Notice::VerifyDone { key, accepted } => {
                    engine.verify_done(&key.0, accepted);
                    engine.hooks_free();
                }
                Notice::HooksFree => engine.hooks_free(),
                Notice::Reload => {
                    log.log(LogLevel::Info, || "reconfigure triggered".to_owned());
                    if let Some(fresh) = reread_peer_dirs(&config, &channel, &log) {
                        match engine.reload(&fresh) {
                            Ok(()) => config = fresh,
                            Err(e) => log.log(LogLevel::Error, || e.to_string()),
                        }
                    }
                    release_free_memory();
                }
                Notice::Start { .. } => log.log(LogLevel::Warn, || {
                    "unexpected Start from the helper".to_owned()
                }),
            }
        }
        if let Some(code) = stop {
            break code;
        }
        if let Some(s) = status
            .as_mut()
            .filter(|s| polled.external.contains(&s.fd()))
        {
            let peers = engine.peer_status();
            let snap = || {
                snapshot(
                    &config,
                    &peers,
                    &engine.total_traffic(),
                    shared_iface.as_deref(),
                    t0,
                )
            };
            s.handle(&snap, &log);
        }
    };
    if code == 0 {
        // Every session ends here; the engine reports each to the provider, whose
        // gateway driver takes the redirects down.
        engine.shutdown();
    }
    code
}
