//! The worker's only way to talk to the helper: one typed method per [`Request`], each
//! checking that the reply is the one that request expects (a wrong reply is
//! [`IpcError::Unexpected`]; `Refused`/`Failed` are errors already in the transport).
//! The helper's [`Notice`]s are queued and handed out by [`HelperClient::next_notice`].

use crate::config::ConfigSource;
use crate::ipc::Channel;
pub use crate::ipc::IpcError;
use policy::gateway::GatewayRequest;
use policy::{
    AbsPath, DirEntry, HookEnv, HookId, IfName, Manifest, Mode, Mtu, Notice, PeerId, PeerRef,
    Request, Response, MAX_FILE, MAX_FILE_TOTAL,
};
use std::cell::RefCell;
use std::ffi::OsString;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Most names a directory listing may give (the helper's own limit is lower).
const MAX_DIR_ENTRIES: usize = 1 << 21;

/// What the helper did with a (non-verify) hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookRun {
    /// Ran (synchronous: its exit status, None after a signal) or started (asynchronous).
    Done(Option<i32>),
    /// Not started: every asynchronous slot is taken; ask again after
    /// [`Notice::HooksFree`].
    Busy,
}

/// The answer to an `on verify` run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyRun {
    /// The verdict of a synchronous run (exit status 0 accepts).
    Verdict(bool),
    /// Started asynchronously; the verdict follows as [`Notice::VerifyDone`].
    Pending,
}

fn unexpected(what: &str, r: Response) -> IpcError {
    IpcError::Unexpected(format!("{r:?} in reply to {what}"))
}

fn with_fd(what: &str, fd: Option<OwnedFd>) -> Result<OwnedFd, IpcError> {
    fd.ok_or_else(|| IpcError::Unexpected(format!("reply to {what} without a descriptor")))
}

/// The helper socket (fd 3) with one method per request.
pub struct HelperClient {
    channel: Channel,
}

impl HelperClient {
    /// Takes over fd 3 as left by the helper.
    ///
    /// # Safety
    /// Must be called once, in the worker role, where fd 3 is the helper's socket and
    /// nothing else owns it.
    pub unsafe fn from_helper_fd() -> Self {
        // SAFETY: forwarded from the caller.
        Self::new(unsafe { Channel::from_helper_fd() })
    }

    pub(crate) fn new(channel: Channel) -> Self {
        Self { channel }
    }

    /// The socket, for the engine's poll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.channel.fd().as_fd()
    }

    /// The first message: the command line and the helper's working directory.
    pub fn start(&mut self) -> Result<(Vec<String>, AbsPath), IpcError> {
        match self.channel.recv_notice()? {
            Notice::Start { args, cwd } => Ok((args, cwd)),
            other => Err(IpcError::Unexpected(format!("{other:?} before Start"))),
        }
    }

    /// The next notice of this loop turn (see [`Channel::next_notice`]).
    pub fn next_notice(&mut self, readable: &mut bool) -> Result<Option<Notice>, IpcError> {
        self.channel.next_notice(readable)
    }

    /// A whole file, in as many `ReadFile`/`ReadFileFrom` pieces as it takes.
    pub fn read_file(&mut self, path: &AbsPath) -> Result<Vec<u8>, IpcError> {
        let mut bytes = Vec::new();
        let mut expected = None;
        // Every piece but the last is non-empty and the size may not change, so this
        // ends after at most MAX_FILE_TOTAL / MAX_FILE + 1 pieces.
        for _ in 0..=MAX_FILE_TOTAL / MAX_FILE + 1 {
            let req = match bytes.len() {
                0 => Request::ReadFile { path: path.clone() },
                n => Request::ReadFileFrom {
                    path: path.clone(),
                    offset: n as u64,
                },
            };
            match self.channel.call(&req)?.0 {
                Response::File { bytes: last } => {
                    bytes.extend_from_slice(&last);
                    return Ok(bytes);
                }
                Response::FilePart { bytes: part, size }
                    if !part.is_empty() && *expected.get_or_insert(size) == size =>
                {
                    bytes.extend_from_slice(&part);
                }
                Response::FilePart { .. } => {
                    return Err(IpcError::Pieces("file changed while it was read"))
                }
                other => return Err(unexpected("ReadFile", other)),
            }
        }
        Err(IpcError::Pieces("file too large"))
    }

    /// A whole directory listing, in as many `ReadDir`/`ReadDirFrom` pieces as it takes.
    pub fn read_dir(&mut self, path: &AbsPath) -> Result<Vec<DirEntry>, IpcError> {
        let mut all: Vec<DirEntry> = Vec::new();
        let mut after: Option<String> = None;
        // Every piece but the last is non-empty and goes on after the last name, so the
        // loop ends; the bound is the helper's limit on entries.
        loop {
            let req = match after.take() {
                None => Request::ReadDir { path: path.clone() },
                Some(after) => Request::ReadDirFrom {
                    path: path.clone(),
                    after,
                },
            };
            let (entries, last) = match self.channel.call(&req)?.0 {
                Response::Dir { entries } => (entries, true),
                Response::DirPart { entries } if !entries.is_empty() => (entries, false),
                other => return Err(unexpected("ReadDir", other)),
            };
            after = entries.last().map(|e| e.name.clone());
            all.extend(entries);
            if last {
                return Ok(all);
            }
            if all.len() > MAX_DIR_ENTRIES {
                return Err(IpcError::Pieces("too many directory entries"));
            }
        }
    }

    /// The physical path of a directory.
    pub fn resolve_dir(&mut self, path: AbsPath) -> Result<AbsPath, IpcError> {
        match self.channel.call(&Request::ResolveDir { path })?.0 {
            Response::Path { path } => Ok(path),
            other => Err(unexpected("ResolveDir", other)),
        }
    }

    /// Sends the manifest, which the helper seals: in one message, or in pieces when
    /// thousands of peers make it larger.
    pub fn seal(&mut self, m: &Manifest) -> Result<(), IpcError> {
        let req = Request::Manifest(Box::new(m.clone()));
        if policy::encode(&req).is_ok() {
            return match self.channel.call(&req)?.0 {
                Response::Sealed => Ok(()),
                other => Err(unexpected("Manifest", other)),
            };
        }
        let bytes = policy::encode_manifest(m)?;
        let mut pieces = bytes.chunks(MAX_FILE).peekable();
        while let Some(piece) = pieces.next() {
            let last = pieces.peek().is_none();
            let req = Request::ManifestPart {
                bytes: piece.to_vec(),
                last,
            };
            match (self.channel.call(&req)?.0, last) {
                (Response::PartStored, false) | (Response::Sealed, true) => {}
                (other, _) => return Err(unexpected("ManifestPart", other)),
            }
        }
        Ok(())
    }

    /// Opens a TUN/TAP device; returns it with the kernel's final name and the offloads the
    /// helper set (virtio-net header on), as in [`Response::Tun`].
    pub fn open_tun(
        &mut self,
        name: Option<IfName>,
        mode: Mode,
        mtu: Mtu,
        owner: Option<PeerRef>,
    ) -> Result<(OwnedFd, IfName, Option<u32>), IpcError> {
        let req = Request::OpenTun {
            offload: crate::manifest::offload_for(mode),
            name,
            mode,
            mtu,
            owner,
        };
        match self.channel.call(&req)? {
            (Response::Tun { name, offload }, fd) => Ok((with_fd("OpenTun", fd)?, name, offload)),
            (other, _) => Err(unexpected("OpenTun", other)),
        }
    }

    /// Closes a device the helper opened (a peer's non-persistent interface).
    pub fn close_tun(&mut self, name: IfName) -> Result<(), IpcError> {
        match self.channel.call(&Request::CloseTun { name })?.0 {
            Response::TunClosed => Ok(()),
            other => Err(unexpected("CloseTun", other)),
        }
    }

    /// A bound UDP socket with its local address; `peer` asks for a per-connection one.
    pub fn bind_udp(
        &mut self,
        addr: SocketAddr,
        interface: Option<IfName>,
        mark: Option<u32>,
        peer: Option<PeerId>,
    ) -> Result<(OwnedFd, SocketAddr), IpcError> {
        let req = Request::BindUdp {
            addr,
            interface,
            mark,
            peer,
        };
        match self.channel.call(&req)? {
            (Response::Udp { local }, fd) => Ok((with_fd("BindUdp", fd)?, local)),
            (other, _) => Err(unexpected("BindUdp", other)),
        }
    }

    /// The listening status socket at the sealed path.
    pub fn status_socket(&mut self) -> Result<OwnedFd, IpcError> {
        match self.channel.call(&Request::StatusSocket)? {
            (Response::StatusSocket, fd) => with_fd("StatusSocket", fd),
            (other, _) => Err(unexpected("StatusSocket", other)),
        }
    }

    /// A datagram socket connected to `/dev/log`.
    pub fn open_syslog(&mut self) -> Result<UnixDatagram, IpcError> {
        match self.channel.call(&Request::OpenSyslog)? {
            (Response::Syslog, fd) => Ok(UnixDatagram::from(with_fd("OpenSyslog", fd)?)),
            (other, _) => Err(unexpected("OpenSyslog", other)),
        }
    }

    /// Runs a sealed hook other than `on verify`.
    pub fn run_hook(&mut self, hook: HookId, env: HookEnv) -> Result<HookRun, IpcError> {
        match self.channel.call(&Request::RunHook { hook, env })?.0 {
            Response::HookDone { status } => Ok(HookRun::Done(status)),
            Response::Busy => Ok(HookRun::Busy),
            other => Err(unexpected("RunHook", other)),
        }
    }

    /// Runs the sealed `on verify` hook.
    pub fn verify(&mut self, hook: HookId, env: HookEnv) -> Result<VerifyRun, IpcError> {
        match self.channel.call(&Request::RunHook { hook, env })?.0 {
            Response::Verdict(accepted) => Ok(VerifyRun::Verdict(accepted)),
            Response::VerifyPending => Ok(VerifyRun::Pending),
            other => Err(unexpected("RunHook (verify)", other)),
        }
    }

    /// Start-up is over.
    pub fn ready(&mut self) -> Result<(), IpcError> {
        match self.channel.call(&Request::Ready)?.0 {
            Response::Done => Ok(()),
            other => Err(unexpected("Ready", other)),
        }
    }

    /// A gateway operation (one [`GatewayRequest`] variant each: addresses, masquerade,
    /// host-route pin, redirect, unredirect), checked by the sealed gateway policy.
    pub fn gateway(&mut self, req: GatewayRequest) -> Result<(), IpcError> {
        match self.channel.call(&Request::Gateway(req))?.0 {
            Response::Done => Ok(()),
            other => Err(unexpected("Gateway", other)),
        }
    }
}

fn to_io(e: IpcError) -> io::Error {
    match e {
        IpcError::Failed(_, Some(errno)) => io::Error::from_raw_os_error(errno),
        other => io::Error::other(other.to_string()),
    }
}

/// Config files through the helper: the worker never opens a file itself.
pub struct HelperSource<'c> {
    client: RefCell<&'c mut HelperClient>,
    cwd: PathBuf,
}

impl<'c> HelperSource<'c> {
    /// File access through the helper; relative paths are taken from `cwd`.
    pub fn new(client: &'c mut HelperClient, cwd: PathBuf) -> Self {
        HelperSource {
            client: RefCell::new(client),
            cwd,
        }
    }

    fn abs(&self, path: &Path) -> io::Result<AbsPath> {
        let p = self.cwd.join(path);
        p.to_str()
            .and_then(|s| AbsPath::new(s).ok())
            .ok_or_else(|| io::Error::other("unusable path"))
    }
}

impl ConfigSource for HelperSource<'_> {
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let path = self.abs(path)?;
        self.client.borrow_mut().read_file(&path).map_err(to_io)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let path = self.abs(path)?;
        let entries = self.client.borrow_mut().read_dir(&path).map_err(to_io)?;
        Ok(entries
            .into_iter()
            .map(|e| OsString::from(e.name))
            .collect())
    }

    fn canonicalize_dir(&self, path: &Path) -> io::Result<PathBuf> {
        let path = self.abs(path)?;
        let path = self.client.borrow_mut().resolve_dir(path).map_err(to_io)?;
        Ok(PathBuf::from(path.as_str()))
    }

    fn current_dir(&self) -> io::Result<PathBuf> {
        Ok(self.cwd.clone())
    }

    fn read_stdin(&self) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        io::Read::read_to_end(&mut io::stdin().lock(), &mut v)?;
        Ok(v)
    }
}
