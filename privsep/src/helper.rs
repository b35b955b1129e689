//! The request handler: decode, check against the policy (policy::check_unsealed before
//! the manifest, Policy::check after), then do exactly what was asked. It holds what
//! must be undone at the end: the devices, the status socket, the down hooks' env.

use crate::{files, gateway_wiring, hooks, netlink, status, tun, udp};
use policy::{
    decide_unsealed, decode_manifest, AbsPath, Decision, HookEnv, HookKind, HookSpec, IfName, Mode,
    Mtu, Notice, PeerRef, Policy, PublicKey, Request, Response, MAX_MANIFEST,
};
use std::ffi::OsString;
use std::os::fd::OwnedFd;

type Reply = (Response, Option<OwnedFd>);

/// Asynchronous hooks running at once. fastd caps its verify threads at 32; the helper
/// caps every asynchronous hook, so a compromised worker cannot fork-bomb through it.
pub const MAX_ASYNC_HOOKS: usize = 64;
/// Asynchronous `on verify` runs at once, as fastd.
pub const MAX_ASYNC_VERIFY: usize = 32;

struct OpenDevice {
    dev: tun::Device,
    /// The environment of its `on down` (docs/config.md 4.3: as `up`, without addresses).
    down_env: HookEnv,
    /// The worker ran `on down` for it already (and no `on up` since).
    down_ran: bool,
}

pub struct Helper {
    policy: Option<Policy>,
    devices: Vec<OpenDevice>,
    status: Option<(String, status::StatusSocket)>,
    base_env: Vec<(OsString, OsString)>,
    pid: u32,
    gateway: Option<crate::gateway::Gateway>,
    readiness: crate::ready::Readiness,
    /// Asynchronous hooks not yet reaped: pid, and the key an `on verify` asks about.
    async_hooks: Vec<(u32, Option<PublicKey>)>,
    /// The worker was told `Busy` and waits for `HooksFree`.
    worker_waits: bool,
    /// The [`Request::ManifestPart`]s so far (before sealing only).
    manifest_parts: Vec<u8>,
}

fn failed(what: &str, e: impl std::fmt::Display) -> Reply {
    crate::log::error(&format!("{what}: {e}"));
    let reason = format!("{what}: {e}");
    (
        Response::Failed {
            reason,
            errno: None,
        },
        None,
    )
}

/// A failed file operation: the worker gets the errno to report it as fastd would.
fn failed_io(what: &str, e: &std::io::Error) -> Reply {
    crate::log::verbose(&format!("{what}: {e}"));
    let reason = format!("{what}: {e}");
    (
        Response::Failed {
            reason,
            errno: e.raw_os_error(),
        },
        None,
    )
}

impl Helper {
    /// `base_env` is what hooks inherit (see [`hooks::base_env`]); `pid` is FASTD_PID.
    pub fn new(base_env: Vec<(OsString, OsString)>, pid: u32) -> Self {
        Self {
            policy: None,
            devices: Vec::new(),
            status: None,
            base_env,
            pid,
            gateway: None,
            readiness: crate::ready::Readiness::default(),
            async_hooks: Vec::new(),
            worker_waits: false,
            manifest_parts: Vec::new(),
        }
    }

    /// What the command line asked for at the ready point (pid file, `--daemon`).
    pub fn with_readiness(mut self, readiness: crate::ready::Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// A child was reaped (`code`/`signal` as from waitpid). If it was an asynchronous
    /// hook its slot is free again; an asynchronous verify's verdict is returned for
    /// the worker.
    pub fn child_finished(
        &mut self,
        pid: u32,
        code: Option<i32>,
        signal: Option<i32>,
    ) -> Option<Notice> {
        let i = self.async_hooks.iter().position(|(p, _)| *p == pid)?;
        let (_, key) = self.async_hooks.swap_remove(i);
        let Some(key) = key else {
            // A slot is free: a worker holding hooks back may start the next one.
            return std::mem::take(&mut self.worker_waits).then_some(Notice::HooksFree);
        };
        // A verdict frees a slot as well; the worker takes it as `HooksFree` too.
        self.worker_waits = false;
        hooks::report(HookKind::Verify, code, signal);
        Some(Notice::VerifyDone {
            key,
            accepted: code == Some(0),
        })
    }

    fn async_verifies(&self) -> usize {
        self.async_hooks.iter().filter(|(_, k)| k.is_some()).count()
    }

    pub fn is_sealed(&self) -> bool {
        self.policy.is_some()
    }

    /// Handle one datagram from the worker. Never fails: anything wrong becomes
    /// `Refused` (logged) or `Failed`, and the helper's state stays as it was.
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> Reply {
        let decision = match &self.policy {
            None => decide_unsealed(bytes),
            Some(p) => p.decide(bytes),
        };
        match decision {
            Decision::Execute(req) => self.execute(req),
            Decision::Refuse(r) => self.refuse(&r.0),
        }
    }

    fn refuse(&self, reason: &str) -> Reply {
        crate::log::refused(reason);
        let reason = reason.chars().take(512).collect();
        (Response::Refused { reason }, None)
    }

    fn execute(&mut self, req: Request) -> Reply {
        match req {
            Request::ReadFile { path } => self.read_file(&path, 0),
            Request::ReadFileFrom { path, offset } => self.read_file(&path, offset),
            Request::ReadDir { path } => self.read_dir(&path, None),
            Request::ReadDirFrom { path, after } => self.read_dir(&path, Some(&after)),
            Request::ResolveDir { path } => match files::resolve_dir(path.as_str()) {
                Ok(path) => (Response::Path { path }, None),
                Err(e) => failed_io(&format!("unable to enter `{}'", path.as_str()), &e),
            },
            Request::Manifest(m) => self.seal(*m),
            Request::ManifestPart { bytes, last } => {
                if self.manifest_parts.len() + bytes.len() > MAX_MANIFEST {
                    self.manifest_parts = Vec::new();
                    return self.refuse("manifest larger than the limit");
                }
                self.manifest_parts.extend_from_slice(&bytes);
                if !last {
                    return (Response::PartStored, None);
                }
                let whole = std::mem::take(&mut self.manifest_parts);
                match decode_manifest(&whole) {
                    Ok(m) => self.seal(m),
                    Err(e) => self.refuse(&format!("undecodable manifest ({e})")),
                }
            }
            Request::OpenTun {
                name,
                mode,
                mtu,
                owner,
                offload,
            } => self.open_tun(name.as_ref(), mode, mtu, owner, offload),
            Request::CloseTun { name } => {
                self.close_device(&name);
                (Response::TunClosed, None)
            }
            Request::BindUdp {
                addr,
                interface,
                mark,
                peer,
            } => {
                let dual = peer.is_none()
                    && self
                        .manifest_binds()
                        .any(|b| b.addr == addr && b.dual_stack && b.interface == interface);
                match udp::bind_udp(addr, dual, interface.as_ref().map(IfName::as_str), mark) {
                    Ok((fd, local)) => (Response::Udp { local }, Some(fd)),
                    Err(e) => failed(&format!("unable to bind to {addr}"), e),
                }
            }
            Request::StatusSocket => self.status_socket(),
            Request::OpenSyslog => match open_syslog() {
                Ok(fd) => (Response::Syslog, Some(fd)),
                Err(e) => failed("unable to connect to /dev/log", e),
            },
            Request::Ready => {
                if let Some(p) = &mut self.policy {
                    p.note_ready();
                }
                self.readiness.announce();
                (Response::Done, None)
            }
            Request::RunHook { hook, env } => {
                let Some(spec) = self
                    .policy
                    .as_ref()
                    .and_then(|p| p.manifest().hook(hook))
                    .cloned()
                else {
                    return self.refuse("no such hook");
                };
                self.run_hook(&spec, env)
            }
            Request::Gateway(g) => match &mut self.policy {
                Some(p) => (gateway_wiring::apply(p, self.gateway.as_mut(), &g), None),
                None => self.refuse("not sealed"),
            },
        }
    }

    fn seal(&mut self, m: policy::Manifest) -> Reply {
        match Policy::seal(m) {
            Ok(p) => {
                match gateway_wiring::open(&p) {
                    Ok(gw) => self.gateway = gw,
                    Err(e) => return failed("gateway", e),
                }
                crate::log::apply(&p.manifest().log);
                crate::log::info("fastd v22 starting");
                crate::log::verbose("policy sealed");
                self.policy = Some(p);
                (Response::Sealed, None)
            }
            Err(e) => self.refuse(&format!("manifest: {e}")),
        }
    }

    /// A file piece by piece: the last (often the only) one as `File`.
    fn read_file(&self, path: &AbsPath, offset: u64) -> Reply {
        match files::read_file(path.as_str(), offset, self.is_sealed()) {
            Ok(p) if p.is_last(offset) => (Response::File { bytes: p.bytes }, None),
            Ok(p) => (
                Response::FilePart {
                    bytes: p.bytes,
                    size: p.size,
                },
                None,
            ),
            Err(e) => failed_io(&format!("unable to read `{}'", path.as_str()), &e),
        }
    }

    /// A listing piece by piece: the last (often the only) one as `Dir`.
    fn read_dir(&self, path: &AbsPath, after: Option<&str>) -> Reply {
        match files::read_dir(path.as_str(), after) {
            Ok((entries, true)) => (Response::Dir { entries }, None),
            Ok((entries, false)) => (Response::DirPart { entries }, None),
            Err(e) => failed_io(&format!("unable to read directory `{}'", path.as_str()), &e),
        }
    }

    fn manifest_binds(&self) -> impl Iterator<Item = &policy::BindSpec> {
        self.policy.iter().flat_map(|p| p.manifest().binds.iter())
    }

    fn open_tun(
        &mut self,
        name: Option<&IfName>,
        mode: Mode,
        mtu: Mtu,
        owner: Option<PeerRef>,
        offload: bool,
    ) -> Reply {
        let dev = match tun::open(name, mode, offload) {
            Ok(d) => d,
            Err(e) => return failed("unable to open TUN/TAP interface", e),
        };
        if let Err(e) = netlink::set_mtu_up(dev.name.as_str(), mtu.get()) {
            remove_device(dev);
            return failed("failed to set TUN/TAP interface MTU", e);
        }
        let copy = match dev.fd.try_clone() {
            Ok(c) => c,
            Err(e) => {
                remove_device(dev);
                return failed("dup", e);
            }
        };
        let name = dev.name.clone();
        let offload = dev.offload;
        crate::log::info(&format!("opened TUN/TAP interface `{name}'"));
        if let Some(p) = &mut self.policy {
            p.note_opened(name.clone(), mtu);
            gateway_wiring::opened(p, &name, owner.as_ref());
        }
        let down_env = HookEnv {
            interface: Some(name.clone()),
            interface_mtu: Some(mtu),
            peer_key: owner.as_ref().map(|o| o.key),
            peer_name: owner.and_then(|o| o.name),
            ..HookEnv::default()
        };
        self.devices.push(OpenDevice {
            dev,
            down_env,
            down_ran: false,
        });
        (Response::Tun { name, offload }, Some(copy))
    }

    fn close_device(&mut self, name: &IfName) {
        if let Some(i) = self.devices.iter().position(|d| d.dev.name == *name) {
            let d = self.devices.remove(i);
            remove_device(d.dev);
        }
        if let Some(p) = &mut self.policy {
            p.note_closed(name);
            gateway_wiring::closed(p, self.gateway.as_mut(), name);
        }
    }

    fn status_socket(&mut self) -> Reply {
        let Some(p) = &mut self.policy else {
            return self.refuse("not sealed");
        };
        let m = p.manifest();
        let Some(path) = m.status_socket.as_ref().map(|a| a.as_str().to_owned()) else {
            return self.refuse("no status socket configured");
        };
        match status::create(&path, m.status_owner) {
            Ok(s) => {
                p.note_status_socket();
                let fd = s.listener.try_clone();
                self.status = Some((path, s));
                match fd {
                    Ok(fd) => (Response::StatusSocket, Some(fd)),
                    Err(e) => failed("dup", e),
                }
            }
            Err(e) => failed("unable to create status socket", e),
        }
    }

    fn run_hook(&mut self, spec: &HookSpec, env: HookEnv) -> Reply {
        let Some(p) = &mut self.policy else {
            return self.refuse("not sealed");
        };
        p.note_hook(spec.kind, &env);
        let m = p.manifest();
        let delta = hooks::render(spec.kind, m.mode, self.pid, &m.local_key, &env);
        // fastd runs pre-up, post-down and the up/down of interfaces it sets up at start
        // synchronously; verify waits here so that the verdict can be returned.
        let wait = spec.sync
            || matches!(
                spec.kind,
                HookKind::PreUp | HookKind::PostDown | HookKind::Up | HookKind::Down
            );
        let verify = spec.kind == HookKind::Verify;
        if let Some(iface) = &env.interface {
            if let Some(d) = self.devices.iter_mut().find(|d| d.dev.name == *iface) {
                match spec.kind {
                    HookKind::Up => d.down_ran = false,
                    HookKind::Down => d.down_ran = true,
                    _ => {}
                }
            }
        }
        if !wait && self.async_hooks.len() >= MAX_ASYNC_HOOKS {
            // Not a policy violation: the worker queues the hook and asks again when told.
            crate::log::debug(&format!(
                "{MAX_ASYNC_HOOKS} asynchronous hooks are still running"
            ));
            self.worker_waits = true;
            return (Response::Busy, None);
        }
        if !wait && verify && self.async_verifies() >= MAX_ASYNC_VERIFY {
            // fastd drops the handshake with this line; routine under a handshake flood.
            let reason = "maximum number of verification processes reached".to_owned();
            crate::log::debug(&reason);
            return (Response::Refused { reason }, None);
        }
        let child = match hooks::spawn(
            spec.command.as_str(),
            spec.cwd.as_str(),
            &self.base_env,
            &delta,
        ) {
            Ok(c) => c,
            Err(e) => return failed("unable to run hook", e),
        };
        if !wait {
            // Reaped by the helper's SIGCHLD handling (child_finished).
            self.async_hooks
                .push((child.id(), env.peer_key.filter(|_| verify)));
            if verify {
                return (Response::VerifyPending, None);
            }
            return (Response::HookDone { status: None }, None);
        }
        match hooks::wait(child, spec.kind) {
            Ok(status) if spec.kind == HookKind::Verify => {
                (Response::Verdict(status == Some(0)), None)
            }
            Ok(status) => (Response::HookDone { status }, None),
            Err(e) => failed("waiting for hook", e),
        }
    }

    /// Undo everything: `on down` for each device (newest first) unless the worker ran it, remove
    /// the devices we created, unlink the status socket, then `on post-down`.
    pub fn teardown(&mut self) {
        // Routes through the tunnel, masquerade and forwarding go first, while the
        // devices still exist (their addresses go with them).
        gateway_wiring::undo(self.gateway.take());
        let Some(p) = self.policy.take() else {
            return;
        };
        let m = p.manifest();
        while let Some(d) = self.devices.pop() {
            if !d.down_ran {
                let env = &d.down_env;
                let down = match (m.mode, &env.peer_key) {
                    (Mode::Tap, _) | (_, None) => m.root_down,
                    (_, Some(k)) => m.peer_by_key(k).map_or(m.root_down, |peer| peer.down),
                };
                if let Some(spec) = down.and_then(|id| m.hook(id)) {
                    self.run_sync(m.mode, &m.local_key, spec, env);
                }
            }
            remove_device(d.dev);
        }
        if let Some((path, s)) = self.status.take() {
            drop(s.listener);
            if let Err(e) = status::remove(&path, m.status_owner) {
                crate::log::warn(&format!("unable to remove status socket: {e}"));
            }
            // The lock file stays, as with fastd; the lock goes with the descriptor.
            drop(s.lock);
        }
        if let Some(spec) = m.hook_of_kind(HookKind::PostDown).and_then(|id| m.hook(id)) {
            self.run_sync(m.mode, &m.local_key, spec, &HookEnv::default());
        }
    }

    fn run_sync(&self, mode: Mode, key: &policy::PublicKey, spec: &HookSpec, env: &HookEnv) {
        let delta = hooks::render(spec.kind, mode, self.pid, key, env);
        match hooks::spawn(
            spec.command.as_str(),
            spec.cwd.as_str(),
            &self.base_env,
            &delta,
        ) {
            Ok(child) => {
                let _ = hooks::wait(child, spec.kind);
            }
            Err(e) => crate::log::error(&format!(
                "unable to run `on {}' hook: {e}",
                spec.kind.name()
            )),
        }
    }
}

/// The worker's syslog socket: non-blocking (the flag lives in the shared open file
/// description), so a stalled journal drops log lines instead of stalling the packet loop.
fn open_syslog() -> std::io::Result<OwnedFd> {
    let sock = std::os::unix::net::UnixDatagram::unbound()?;
    sock.connect("/dev/log")?;
    sock.set_nonblocking(true)?;
    Ok(OwnedFd::from(sock))
}

/// Close our descriptor and delete the link (always ours: `tun::open` only creates).
/// The link goes first, while our descriptor still keeps the name ours.
fn remove_device(dev: tun::Device) {
    let name = dev.name.as_str();
    if let Err(e) = netlink::delete(name) {
        crate::log::warn(&format!("unable to remove interface `{name}': {e}"));
    }
    drop(dev.fd);
}
