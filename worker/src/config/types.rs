//! The typed result of config parsing.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

/// Log levels, quietest first (`fatal` < ... < `debug2`). One type for both processes:
/// the worker declares its log settings in the manifest.
pub use policy::log::LogLevel;

/// Where log lines go (docs/config.md §6.1). `None` = that destination is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// stderr level.
    pub stderr_level: Option<LogLevel>,
    /// syslog level.
    pub syslog_level: Option<LogLevel>,
    /// syslog ident (default `fastd`).
    pub syslog_ident: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            stderr_level: None,
            syslog_level: None,
            syslog_ident: "fastd".into(),
        }
    }
}

impl LogConfig {
    /// `log level L;`: syslog if set, stderr if set or if syslog is unset.
    pub fn set_level(&mut self, l: LogLevel) {
        if self.syslog_level.is_some() {
            self.syslog_level = Some(l);
        }
        if self.stderr_level.is_some() || self.syslog_level.is_none() {
            self.stderr_level = Some(l);
        }
    }
}

/// `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// One TAP interface for all peers (default).
    #[default]
    Tap,
    /// One TAP interface per peer.
    Multitap,
    /// One TUN interface per peer.
    Tun,
}

/// `drop capabilities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DropCapabilities {
    /// `yes` (default): after the initial `up` hooks.
    #[default]
    Yes,
    /// `no`: switch user only.
    No,
    /// `early`: before the initial `up` hooks.
    Early,
    /// `force`: like early, without CAP_NET_ADMIN for run-time interfaces.
    Force,
}

/// `pmtu auto|yes|no;` (accepted and ignored by fastd v22).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pmtu {
    /// `auto`
    Auto,
    /// `yes`
    Yes,
    /// `no`
    No,
}

/// A hook command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// The command string for `/bin/sh -c` (bytes as written, no substitution).
    pub command: OsString,
    /// The sync flag (docs/config.md §4.2).
    pub sync: bool,
    /// The working directory to run it in: the directory of the file that holds the
    /// statement (physical path), or the starting directory for command-line hooks.
    pub cwd: PathBuf,
}

/// Which hook (for group hooks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// `on up`
    Up,
    /// `on down`
    Down,
    /// `on connect`
    Connect,
    /// `on establish`
    Establish,
    /// `on disestablish`
    Disestablish,
}

/// The per-group hooks (the last statement in a group wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupHooks {
    /// `on up`
    pub up: Option<Hook>,
    /// `on down`
    pub down: Option<Hook>,
    /// `on connect`
    pub connect: Option<Hook>,
    /// `on establish`
    pub establish: Option<Hook>,
    /// `on disestablish`
    pub disestablish: Option<Hook>,
}

impl GroupHooks {
    /// The hook of one kind.
    pub fn get(&self, k: HookKind) -> Option<&Hook> {
        match k {
            HookKind::Up => self.up.as_ref(),
            HookKind::Down => self.down.as_ref(),
            HookKind::Connect => self.connect.as_ref(),
            HookKind::Establish => self.establish.as_ref(),
            HookKind::Disestablish => self.disestablish.as_ref(),
        }
    }

    pub(crate) fn slot(&mut self, k: HookKind) -> &mut Option<Hook> {
        match k {
            HookKind::Up => &mut self.up,
            HookKind::Down => &mut self.down,
            HookKind::Connect => &mut self.connect,
            HookKind::Establish => &mut self.establish,
            HookKind::Disestablish => &mut self.disestablish,
        }
    }
}

/// An interface name or pattern (bytes; `%n`/`%k` allowed once; checked, at most one `%`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceName(pub Vec<u8>);

impl InterfaceName {
    /// fastd's check: no `/`, at most one `%`, and a `%` must be followed by `n` or `k`.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        if raw.contains(&b'/') {
            return None;
        }
        let percents: Vec<usize> = raw
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'%')
            .map(|(i, _)| i)
            .collect();
        match percents.as_slice() {
            [] => {}
            [i] => {
                if !matches!(raw.get(i + 1), Some(b'n' | b'k')) {
                    return None;
                }
            }
            _ => return None,
        }
        Some(InterfaceName(raw.to_vec()))
    }

    /// Whether it contains `%n` or `%k`.
    pub fn is_pattern(&self) -> bool {
        self.0.contains(&b'%')
    }
}

/// The address part of a `bind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindAddress {
    /// `any`: one dual-stack socket.
    Any,
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address; `scope` from `[addr%if]`.
    V6 {
        /// The address.
        addr: Ipv6Addr,
        /// The interface after `%`, if written.
        scope: Option<OsString>,
    },
}

/// One `bind` statement or `--bind` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// The address.
    pub address: BindAddress,
    /// The port; `None` = no port given: per-connection sockets with random ports.
    pub port: Option<u16>,
    /// `interface "<if>"` (SO_BINDTODEVICE).
    pub interface: Option<OsString>,
    /// Marked `default` or `default ipv4`.
    pub default_ipv4: bool,
    /// Marked `default` or `default ipv6`.
    pub default_ipv6: bool,
}

/// Address family restriction of a hostname remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressFamily {
    /// Either.
    #[default]
    Any,
    /// `ipv4`
    Ipv4,
    /// `ipv6`
    Ipv6,
}

/// A `remote` of a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// A literal address (IPv4-mapped IPv6 already turned into IPv4).
    Address(SocketAddr),
    /// A hostname to resolve at run time (also a scoped IPv6 literal, `fe80::1%eth0`).
    Host {
        /// The name as written.
        name: OsString,
        /// The port.
        port: u16,
        /// The family restriction.
        family: AddressFamily,
    },
}

/// An address with a prefix length (`10.0.0.1/24`), for the extension statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefix {
    /// The address (host bits may be set: it is an interface address).
    pub addr: IpAddr,
    /// Prefix length (<= 32 for IPv4, <= 128 for IPv6).
    pub len: u8,
}

/// Extension `redirect gateway [via <addr>];`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedirectGateway {
    /// The gateway address, or `None` for "the peer's end of the tunnel".
    pub via: Option<IpAddr>,
}

/// Extension `masquerade [from <prefix>] out "<ifname>";`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masquerade {
    /// Source prefix, or `None` for "the tunnel's addresses".
    pub from: Option<IpPrefix>,
    /// Outgoing interface.
    pub out: OsString,
}

/// Index of a peer group in [`Config::groups`]; 0 is the root group `default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub usize);

impl GroupId {
    /// The root group.
    pub const ROOT: GroupId = GroupId(0);
}

/// A peer group (the root group is `default`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerGroup {
    /// Its name (need not be unique).
    pub name: Vec<u8>,
    /// The enclosing group (`None` for the root).
    pub parent: Option<GroupId>,
    /// Child groups, in order.
    pub children: Vec<GroupId>,
    /// Ordered method list of this group (earlier = preferred); empty = inherit.
    pub methods: Vec<String>,
    /// `peer limit` (not inherited, enforced at every level).
    pub peer_limit: Option<u32>,
    /// Hooks set in this group (inherited by walking up).
    pub hooks: GroupHooks,
    /// Peer directories (absolute physical paths).
    pub peer_dirs: Vec<PathBuf>,
    /// Extension `interface address` statements of this group.
    pub interface_addresses: Vec<IpPrefix>,
    /// Extension `redirect gateway` of this group.
    pub redirect_gateway: Option<RedirectGateway>,
}

impl PeerGroup {
    pub(crate) fn new(name: Vec<u8>, parent: Option<GroupId>) -> Self {
        PeerGroup {
            name,
            parent,
            children: Vec::new(),
            methods: Vec::new(),
            peer_limit: None,
            hooks: GroupHooks::default(),
            peer_dirs: Vec::new(),
            interface_addresses: Vec::new(),
            redirect_gateway: None,
        }
    }
}

/// A static peer (inline, `include peer`, `--config-peer`; peer-directory files too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The name; `None` for `include peer` without `as` and `--config-peer`.
    pub name: Option<Vec<u8>>,
    /// The public key (32 bytes, fastd's legacy encoding; validated as a point if a
    /// validator was given to the loader).
    pub key: [u8; 32],
    /// The group it belongs to.
    pub group: GroupId,
    /// Remotes, in order.
    pub remotes: Vec<Remote>,
    /// `float yes`.
    pub float: bool,
    /// Its own interface name (tun/multitap).
    pub interface: Option<InterfaceName>,
    /// Its own MTU (tun/multitap).
    pub mtu: Option<u16>,
    /// Extension `interface address` statements in the peer block.
    pub interface_addresses: Vec<IpPrefix>,
    /// Extension `redirect gateway` in the peer block.
    pub redirect_gateway: Option<RedirectGateway>,
}

impl PeerConfig {
    /// Floating: no remote at all or `float yes`.
    pub fn is_floating(&self) -> bool {
        self.float || self.remotes.is_empty()
    }

    /// fastd's log form: `<name>`, or `{16 hex}` for an unnamed peer.
    pub fn display_name(&self) -> String {
        display_peer(self.name.as_deref(), Some(&self.key))
    }
}

pub(crate) fn display_peer(name: Option<&[u8]>, key: Option<&[u8; 32]>) -> String {
    match (name, key) {
        (Some(n), _) => format!("<{}>", String::from_utf8_lossy(n)),
        (None, Some(k)) => {
            let hex: String = k.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!("{{{hex}}}")
        }
        (None, None) => "(null)".into(),
    }
}

/// The whole configuration, after config files and command-line options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `user`
    pub user: Option<OsString>,
    /// `group`
    pub group: Option<OsString>,
    /// `drop capabilities`
    pub drop_capabilities: DropCapabilities,
    /// `secure handshakes` as written (deprecated, no effect).
    pub secure_handshakes: Option<bool>,
    /// `cipher "c" use "impl";` in order.
    pub cipher_implementations: Vec<(String, String)>,
    /// `mac "m" use "impl";` in order.
    pub mac_implementations: Vec<(String, String)>,
    /// Logging.
    pub log: LogConfig,
    /// `hide ip addresses`
    pub hide_ip_addresses: bool,
    /// `hide mac addresses`
    pub hide_mac_addresses: bool,
    /// Global `interface` (None or empty = kernel-chosen).
    pub interface: Option<InterfaceName>,
    /// `bind` statements and `--bind` options, in order.
    pub binds: Vec<Bind>,
    /// `packet mark` (0 = off).
    pub packet_mark: u32,
    /// `mtu` (default 1500).
    pub mtu: u16,
    /// `pmtu` (ignored).
    pub pmtu: Option<Pmtu>,
    /// `mode`
    pub mode: Mode,
    /// `persist interface` (default yes).
    pub persist_interface: bool,
    /// `offload l2tp`
    pub offload_l2tp: bool,
    /// `secret` as written (checked by [`Config::secret_key_bytes`] only when needed).
    pub secret: Option<String>,
    /// `on pre-up` (always sync).
    pub on_pre_up: Option<Hook>,
    /// `on post-down` (always sync).
    pub on_post_down: Option<Hook>,
    /// `on verify`: the single verify hook, and the group dynamic peers join.
    pub on_verify: Option<(Hook, GroupId)>,
    /// `status socket` / `--status-socket` (relative to `/` at run time).
    pub status_socket: Option<PathBuf>,
    /// `forward`
    pub forward: bool,
    /// Peer groups; index 0 is the root group `default`.
    pub groups: Vec<PeerGroup>,
    /// Static peers in the order they were added, then the peers read from peer directories.
    pub peers: Vec<PeerConfig>,
    /// How many of `peers`, at the end, were read from peer directories (`load_peer_dirs`).
    pub dir_peers: usize,
    /// Extension `masquerade` statements (top level only).
    pub masquerade: Vec<Masquerade>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            dir_peers: 0,
            user: None,
            group: None,
            drop_capabilities: DropCapabilities::Yes,
            secure_handshakes: None,
            cipher_implementations: Vec::new(),
            mac_implementations: Vec::new(),
            log: LogConfig::default(),
            hide_ip_addresses: false,
            hide_mac_addresses: false,
            interface: None,
            binds: Vec::new(),
            packet_mark: 0,
            mtu: 1500,
            pmtu: None,
            mode: Mode::Tap,
            persist_interface: true,
            offload_l2tp: false,
            secret: None,
            on_pre_up: None,
            on_post_down: None,
            on_verify: None,
            status_socket: None,
            forward: false,
            groups: vec![PeerGroup::new(b"default".to_vec(), None)],
            peers: Vec::new(),
            masquerade: Vec::new(),
        }
    }
}

impl Config {
    /// A group by id.
    pub fn group(&self, id: GroupId) -> Option<&PeerGroup> {
        self.groups.get(id.0)
    }

    /// The group and its ancestors, nearest first.
    pub fn ancestry(&self, id: GroupId) -> Vec<GroupId> {
        let mut out = Vec::new();
        let mut cur = Some(id);
        while let Some(g) = cur {
            if out.contains(&g) {
                break;
            }
            out.push(g);
            cur = self.group(g).and_then(|g| g.parent);
        }
        out
    }

    /// The hook a peer of group `id` uses: the nearest group (walking up) that sets it.
    pub fn hook_for(&self, id: GroupId, kind: HookKind) -> Option<&Hook> {
        self.ancestry(id)
            .into_iter()
            .find_map(|g| self.group(g).and_then(|g| g.hooks.get(kind)))
    }

    /// The method list of group `id`: that of the nearest group with at least one method.
    pub fn methods_for(&self, id: GroupId) -> &[String] {
        self.ancestry(id)
            .into_iter()
            .filter_map(|g| self.group(g))
            .map(|g| g.methods.as_slice())
            .find(|m| !m.is_empty())
            .unwrap_or(&[])
    }

    /// All peer directories with their groups.
    pub fn peer_dirs(&self) -> Vec<(GroupId, PathBuf)> {
        self.groups
            .iter()
            .enumerate()
            .flat_map(|(i, g)| g.peer_dirs.iter().map(move |d| (GroupId(i), d.clone())))
            .collect()
    }
}
