//! The messages. One variant per operation; one message per SEQPACKET datagram.
//! Replies come in request order (the helper serves one request at a time), so no ids.

use crate::manifest::Manifest;
use crate::types::{AbsPath, HookId, IfName, Mode, Mtu, PeerId, PeerName, PublicKey};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Worker to helper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// The bytes of a regular file (at most [`crate::MAX_FILE_TOTAL`], in pieces of at
    /// most [`crate::MAX_FILE`], see [`Response::FilePart`]). Before sealing: any
    /// absolute path (config files, includes). After: only plain names directly inside a
    /// sealed `include peers from` directory (reload).
    ReadFile {
        /// The file.
        path: AbsPath,
    },
    /// The entries of a directory (names and kinds, sorted by name so that a listing
    /// too large for one message can go on from a name, see [`Response::DirPart`]).
    /// After sealing: only the sealed peer directories.
    ReadDir {
        /// The directory.
        path: AbsPath,
    },
    /// The absolute physical path of a directory (symlinks resolved), as `chdir` +
    /// `getcwd` would give it: `include peers from` and hook directories. Pre-seal only.
    ResolveDir {
        /// The directory.
        path: AbsPath,
    },
    /// Everything the worker will ever ask for. Seals the policy; allowed once.
    Manifest(Box<Manifest>),
    /// Open a TUN/TAP device: `name` None lets the kernel choose (`tunN`/`tapN`).
    /// `owner` is the peer of a tun/multitap interface (None for the TAP interface); the
    /// helper keeps it for the `on down` it runs at teardown.
    /// Answered by [`Response::Tun`] plus the descriptor.
    OpenTun {
        /// The name to ask for; None lets the kernel choose.
        name: Option<IfName>,
        /// tun or tap, as sealed.
        mode: Mode,
        /// The device's MTU.
        mtu: Mtu,
        /// The peer the device is for.
        owner: Option<PeerRef>,
        /// Open it with IFF_VNET_HDR and the offloads the kernel accepts (only if the
        /// manifest's `offload` is set).
        offload: bool,
    },
    /// Close a device the helper opened (non-persistent interface of a peer that went
    /// away): the helper drops its copy of the descriptor and removes the device.
    CloseTun {
        /// The device.
        name: IfName,
    },
    /// A UDP socket bound to `addr`. `peer` asks for a per-connection socket (random
    /// port) for that configured peer (docs/config.md 6.9). Answered by [`Response::Udp`]
    /// plus the descriptor.
    BindUdp {
        /// The local address (port 0 for a random one).
        addr: SocketAddr,
        /// `bind ... interface`: SO_BINDTODEVICE.
        interface: Option<IfName>,
        /// `packet mark`: SO_MARK.
        mark: Option<u32>,
        /// The configured peer a per-connection socket is for.
        peer: Option<PeerId>,
    },
    /// The listening status socket at the sealed path. Answered by
    /// [`Response::StatusSocket`] plus the descriptor.
    StatusSocket,
    /// Run the sealed hook `hook` with fastd's environment built from `env`.
    RunHook {
        /// The sealed hook.
        hook: HookId,
        /// Its environment.
        env: HookEnv,
    },
    /// A socket connected to `/dev/log` (the helper picks the path), when the sealed
    /// log settings include syslog. Answered by [`Response::Syslog`] plus the descriptor.
    OpenSyslog,
    /// Start-up is over (devices open, `on up` run, packet loop entered): the helper
    /// writes the pid file, tells systemd and releases a `--daemon` parent. Allowed once.
    Ready,
    /// A gateway operation, checked by the sealed
    /// [`crate::gateway::GatewayPolicy`]. Answered by [`Response::Done`].
    Gateway(crate::gateway::GatewayRequest),
    /// The rest of a file after [`Response::FilePart`]: its bytes from `offset` on.
    /// Allowed where `ReadFile` of the same path is.
    ReadFileFrom {
        /// The file.
        path: AbsPath,
        /// Where to go on.
        offset: u64,
    },
    /// The rest of a listing after [`Response::DirPart`]: the entries whose names sort
    /// after `after`. Allowed where `ReadDir` of the same path is.
    ReadDirFrom {
        /// The directory.
        path: AbsPath,
        /// The last name of the previous piece.
        after: String,
    },
    /// One piece of a manifest too large for one message (thousands of peers): the
    /// helper collects the pieces, up to [`crate::MAX_MANIFEST`] bytes, and the `last`
    /// one is decoded and handled exactly as [`Request::Manifest`]. Pre-seal only.
    ManifestPart {
        /// The next bytes of the encoded manifest.
        bytes: Vec<u8>,
        /// This is the last piece.
        last: bool,
    },
}

/// Helper to worker, in answer to a [`Request`]: exactly one per request, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The bytes of a whole file, or the last piece of one (`ReadFile`/`ReadFileFrom`).
    File {
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// A whole directory listing, or its last piece (`ReadDir`/`ReadDirFrom`).
    Dir {
        /// The entries, sorted by name.
        entries: Vec<DirEntry>,
    },
    /// The resolved directory of a `ResolveDir`.
    Path {
        /// The physical path.
        path: AbsPath,
    },
    /// The manifest is sealed (`Manifest`, or the last `ManifestPart`).
    Sealed,
    /// Carries the TUN/TAP descriptor.
    Tun {
        /// The kernel's final name.
        name: IfName,
        /// The device carries virtio-net headers, with these TUNSETOFFLOAD flags accepted
        /// (None: plain packets, because none were asked for or the kernel refused
        /// IFF_VNET_HDR).
        offload: Option<u32>,
    },
    /// Carries the UDP socket; `local` is the bound address (with the chosen port).
    Udp {
        /// The bound address, with the chosen port.
        local: SocketAddr,
    },
    /// Carries the listening status socket.
    StatusSocket,
    /// Carries a non-blocking datagram socket connected to `/dev/log`.
    Syslog,
    /// The device is closed (`CloseTun`).
    TunClosed,
    /// A synchronous hook finished (`status` as from waitpid: exit code, or None if it
    /// died by a signal), or an asynchronous one was started (`status` None).
    HookDone {
        /// The exit code; None after a signal or for an asynchronous start.
        status: Option<i32>,
    },
    /// The `on verify` verdict: exit status 0 accepts.
    Verdict(bool),
    /// An asynchronous `on verify` was started; its verdict follows as
    /// [`Notice::VerifyDone`] when the command ends.
    VerifyPending,
    /// A gateway operation was carried out.
    Done,
    /// An asynchronous hook was not started: all of the helper's slots for them are
    /// taken. Nothing ran; the worker keeps the hook and asks again after
    /// [`Notice::HooksFree`].
    Busy,
    /// The request is outside the sealed policy (or malformed). The helper goes on.
    Refused {
        /// Why.
        reason: String,
    },
    /// The request was allowed but the system call failed (`errno` when there is one).
    Failed {
        /// What failed.
        reason: String,
        /// The errno, when there is one.
        errno: Option<i32>,
    },
    /// The first bytes of a file that does not fit one message; `size` is its length
    /// when read. The worker asks on with [`Request::ReadFileFrom`]; the last piece comes
    /// as [`Response::File`].
    FilePart {
        /// The bytes so far.
        bytes: Vec<u8>,
        /// The file's size when read.
        size: u64,
    },
    /// The entries of a listing that does not fit one message, sorted by name; the
    /// worker asks on with [`Request::ReadDirFrom`] after the last name; the last piece
    /// comes as [`Response::Dir`].
    DirPart {
        /// The entries so far.
        entries: Vec<DirEntry>,
    },
    /// A piece of the manifest was stored ([`Request::ManifestPart`]).
    PartStored,
}

/// Helper to worker, unsolicited: signals, and the ends of asynchronous hooks. They may
/// arrive between a request and its reply; the worker queues them for its loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notice {
    /// First message on the socket: the command line (argv without argv\[0\]) and the
    /// directory the helper was started in (relative config paths and command-line
    /// hooks use it).
    Start {
        /// argv without argv\[0\].
        args: Vec<String>,
        /// The helper's working directory at start.
        cwd: AbsPath,
    },
    /// SIGHUP: re-read the peer directories.
    Reload,
    /// SIGUSR2: reset every connection, delete dynamic peers.
    ResetAll,
    /// SIGTERM/SIGINT: stop (run disestablish hooks, then exit).
    Stop,
    /// The asynchronous `on verify` for `key` ended (exit status 0 accepts).
    VerifyDone {
        /// The key `on verify` was asked about.
        key: PublicKey,
        /// Exit status 0.
        accepted: bool,
    },
    /// After a [`Response::Busy`]: an asynchronous hook ended, a slot is free.
    HooksFree,
}

/// One datagram from the helper to the worker: a reply or a notice, told apart by type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromHelper {
    /// The answer to the request the worker sent last.
    Reply(Response),
    /// Unsolicited.
    Notice(Notice),
}

impl From<Response> for FromHelper {
    fn from(r: Response) -> Self {
        FromHelper::Reply(r)
    }
}

impl From<Notice> for FromHelper {
    fn from(n: Notice) -> Self {
        FromHelper::Notice(n)
    }
}

/// A peer as it appears in hooks: its key, and its name if it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRef {
    /// The peer's key.
    pub key: PublicKey,
    /// The peer's name, if it has one.
    pub name: Option<PeerName>,
}

/// A directory entry as the helper saw it with `stat` (following symlinks, as fastd).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// The entry's name (directly inside the directory).
    pub name: String,
    /// What `stat` says it is.
    pub kind: EntryKind,
}

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// Anything else.
    Other,
    /// `stat` failed (fastd logs a warning and skips the file).
    Unreadable,
}

/// The typed values behind a hook's environment (docs/config.md 4.3). The helper renders
/// the strings itself; `LOCAL_KEY` and `FASTD_PID` come from the helper's own state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookEnv {
    /// `INTERFACE`; must be a device the helper has open.
    pub interface: Option<IfName>,
    /// `INTERFACE_MTU`.
    pub interface_mtu: Option<Mtu>,
    /// `PEER_KEY`.
    pub peer_key: Option<PublicKey>,
    /// `PEER_NAME`.
    pub peer_name: Option<PeerName>,
    /// `LOCAL_ADDRESS` + `LOCAL_PORT`.
    pub local: Option<SocketAddr>,
    /// `PEER_ADDRESS` + `PEER_PORT`.
    pub peer: Option<SocketAddr>,
}
