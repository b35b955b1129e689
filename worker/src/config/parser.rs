//! The config parser: tokens to changes of the [`Config`] being built, statement by
//! statement, with fastd v22's contexts (docs/config.md §1.4, §1.5). Statements act as soon as
//! their `;` (or closing `}`) is read, like fastd's: an `include` is processed before a
//! scanner error later in the same file is seen.

use super::error::{ConfigError, LocatedKind, Pos};
use super::lexer::{LexError, Tok, Token};
use super::loader::{FileCtx, Loader, PeerBuilder};
use super::types::{
    AddressFamily, Bind, BindAddress, DropCapabilities, GroupId, Hook, HookKind, InterfaceName,
    IpPrefix, LogLevel, Masquerade, Mode, PeerGroup, Pmtu, RedirectGateway, Remote,
};
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

type PResult<T> = Result<T, ConfigError>;

/// Bytes to an `OsString` (config strings are byte strings).
pub(crate) fn os(b: Vec<u8>) -> OsString {
    OsString::from_vec(b)
}

/// Parses one file's tokens.
pub(crate) struct Parser<'l, 's> {
    pub(crate) loader: &'l mut Loader<'s>,
    /// The file name as given (for error messages).
    pub(crate) file: String,
    /// The file's directory (absolute, physical): base of relative paths and hook cwd.
    pub(crate) dir: PathBuf,
    pub(crate) depth: usize,
    pub(crate) toks: Vec<Token>,
    pub(crate) lex_err: Option<LexError>,
    pub(crate) i: usize,
}

impl Parser<'_, '_> {
    fn peek(&self) -> PResult<&Token> {
        match self.toks.get(self.i) {
            Some(t) => Ok(t),
            None => Err(self.lex_error()),
        }
    }

    fn lex_error(&self) -> ConfigError {
        match &self.lex_err {
            Some(e) => ConfigError::located(&self.file, e.pos, e.kind, Some(e.detail.clone())),
            // Unreachable by construction (the token list ends in Eof or an error).
            None => ConfigError::located(&self.file, Pos::default(), LocatedKind::Syntax, None),
        }
    }

    fn next(&mut self) -> PResult<Token> {
        let t = self.peek()?.clone();
        if t.tok != Tok::Eof {
            self.i += 1;
        }
        Ok(t)
    }

    fn syntax(&self, t: &Token, expected: &str) -> ConfigError {
        ConfigError::located(
            &self.file,
            t.pos,
            LocatedKind::Syntax,
            Some(format!("expected {expected}, found {}", t.tok.describe())),
        )
    }

    fn at(&self, pos: Pos, kind: LocatedKind, detail: String) -> ConfigError {
        ConfigError::located(&self.file, pos, kind, Some(detail))
    }

    fn keyword(&mut self, kw: &'static str) -> PResult<Token> {
        let t = self.next()?;
        if t.tok == Tok::Keyword(kw) {
            Ok(t)
        } else {
            Err(self.syntax(&t, &format!("`{kw}'")))
        }
    }

    fn semicolon(&mut self) -> PResult<()> {
        let t = self.next()?;
        if t.tok == Tok::Semicolon {
            Ok(())
        } else {
            Err(self.syntax(&t, "`;' at the end of the statement"))
        }
    }

    fn string(&mut self) -> PResult<(Vec<u8>, Pos)> {
        let t = self.next()?;
        match t.tok {
            Tok::Str(s) => Ok((s, t.pos)),
            _ => Err(self.syntax(&t, "a string in double quotes")),
        }
    }

    fn utf8_string(&mut self) -> PResult<String> {
        let (s, _) = self.string()?;
        Ok(String::from_utf8_lossy(&s).into_owned())
    }

    fn uint(&mut self) -> PResult<(u64, Pos)> {
        let t = self.next()?;
        match t.tok {
            Tok::Uint(v) => Ok((v, t.pos)),
            _ => Err(self.syntax(&t, "a number")),
        }
    }

    /// Peeks for an optional keyword and consumes it if present.
    fn opt_keyword(&mut self, kw: &'static str) -> PResult<bool> {
        if self.peek()?.tok == Tok::Keyword(kw) {
            self.i += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn boolean(&mut self) -> PResult<bool> {
        let t = self.next()?;
        match t.tok {
            Tok::Keyword("yes") => Ok(true),
            Tok::Keyword("no") => Ok(false),
            _ => Err(self.syntax(&t, "`yes' or `no'")),
        }
    }

    fn log_level(&mut self) -> PResult<LogLevel> {
        let t = self.next()?;
        match &t.tok {
            Tok::Keyword(k) => LogLevel::from_name(k).ok_or_else(|| {
                self.syntax(
                    &t,
                    "a log level (fatal, error, warn, info, verbose, debug, debug2)",
                )
            }),
            _ => Err(self.syntax(
                &t,
                "a log level (fatal, error, warn, info, verbose, debug, debug2)",
            )),
        }
    }

    fn interface_name(&mut self) -> PResult<InterfaceName> {
        let (s, pos) = self.string()?;
        InterfaceName::parse(&s).ok_or_else(|| {
            self.at(
                pos,
                LocatedKind::InvalidInterfaceName,
                "an interface name must not contain `/' and may contain one `%n' or `%k'".into(),
            )
        })
    }

    /// `(":" | "port") UINT` with the allowed range.
    fn port(&mut self, min: u64) -> PResult<u16> {
        let t = self.next()?;
        if !matches!(t.tok, Tok::Colon | Tok::Keyword("port")) {
            return Err(self.syntax(&t, "`:' or `port' and a port number"));
        }
        let (v, _) = self.uint()?;
        if v < min || v > 65535 {
            return Err(self.at(
                t.pos,
                LocatedKind::InvalidPort,
                format!("port {v} is not in {min}..65535"),
            ));
        }
        u16::try_from(v).map_err(|_| self.at(t.pos, LocatedKind::InvalidPort, String::new()))
    }

    fn has_port(&self) -> PResult<bool> {
        Ok(matches!(
            self.peek()?.tok,
            Tok::Colon | Tok::Keyword("port")
        ))
    }

    fn prefix(&mut self) -> PResult<IpPrefix> {
        let t = self.next()?;
        match t.tok {
            Tok::Prefix(addr, len) => {
                let max = if addr.is_ipv4() { 32 } else { 128 };
                match u8::try_from(len) {
                    Ok(l) if u64::from(l) <= max => Ok(IpPrefix { addr, len: l }),
                    _ => Err(self.at(
                        t.pos,
                        LocatedKind::InvalidPrefixLength,
                        format!("prefix length {len} is more than {max}"),
                    )),
                }
            }
            _ => Err(self.syntax(
                &t,
                "an address with prefix length like 10.0.0.1/24 or [fd00::1]/64",
            )),
        }
    }

    fn hook(&self, command: Vec<u8>, sync: bool) -> Hook {
        Hook {
            command: os(command),
            sync,
            cwd: self.dir.clone(),
        }
    }

    /// Parses the whole file in its context.
    pub(crate) fn run(&mut self, ctx: &mut FileCtx<'_>) -> PResult<()> {
        loop {
            let t = self.peek()?.clone();
            if t.tok == Tok::Eof {
                return Ok(());
            }
            match ctx {
                FileCtx::Main(g) => {
                    let g = *g;
                    self.group_or_global(g, true)?;
                }
                FileCtx::Group(g) => {
                    let g = *g;
                    self.group_or_global(g, false)?;
                }
                FileCtx::Peer(p) => self.peer_stmt(p)?,
            }
        }
    }

    /// One statement in main (`global` true) or group context.
    fn group_or_global(&mut self, group: GroupId, global: bool) -> PResult<()> {
        let t = self.next()?;
        let Tok::Keyword(kw) = t.tok else {
            return Err(self.syntax(&t, "a statement"));
        };
        match kw {
            "peer" => return self.peer_or_group(group),
            "method" => {
                let name = self.utf8_string()?;
                self.semicolon()?;
                self.loader.add_method(group, name);
                return Ok(());
            }
            "on" => return self.on(group, global),
            "include" => return self.include(group, global),
            "redirect" => {
                let r = self.redirect()?;
                if let Some(g) = self.loader.config.groups.get_mut(group.0) {
                    g.redirect_gateway = Some(r);
                }
                return Ok(());
            }
            "interface" if !global => {
                if self.peek()?.tok != Tok::Keyword("address") {
                    return Err(self.at(
                        t.pos,
                        LocatedKind::Syntax,
                        "`interface' is a global statement and not allowed inside `peer group'"
                            .into(),
                    ));
                }
                self.i += 1;
                let p = self.prefix()?;
                self.semicolon()?;
                if let Some(g) = self.loader.config.groups.get_mut(group.0) {
                    g.interface_addresses.push(p);
                }
                return Ok(());
            }
            _ => {}
        }
        if !global {
            return Err(self.at(
                t.pos,
                LocatedKind::Syntax,
                format!("`{kw}' is not allowed inside `peer group' (only peer, method, on, include, peer limit)"),
            ));
        }
        self.global(kw, &t)
    }

    fn global(&mut self, kw: &'static str, t: &Token) -> PResult<()> {
        match kw {
            "user" => {
                let (s, _) = self.string()?;
                self.semicolon()?;
                self.loader.config.user = Some(os(s));
            }
            "group" => {
                let (s, _) = self.string()?;
                self.semicolon()?;
                self.loader.config.group = Some(os(s));
            }
            "drop" => {
                self.keyword("capabilities")?;
                let v = self.next()?;
                let d = match v.tok {
                    Tok::Keyword("yes") => DropCapabilities::Yes,
                    Tok::Keyword("no") => DropCapabilities::No,
                    Tok::Keyword("early") => DropCapabilities::Early,
                    Tok::Keyword("force") => DropCapabilities::Force,
                    _ => return Err(self.syntax(&v, "`yes', `no', `early' or `force'")),
                };
                self.semicolon()?;
                self.loader.config.drop_capabilities = d;
            }
            "secure" => {
                self.keyword("handshakes")?;
                let b = self.boolean()?;
                self.semicolon()?;
                self.loader.config.secure_handshakes = Some(b);
                self.loader.warn("'secure handshakes' configuration is deprecated, insecure handshakes are not supported anymore".into());
            }
            "cipher" | "mac" => {
                let name = self.utf8_string()?;
                self.keyword("use")?;
                let imp = self.utf8_string()?;
                self.semicolon()?;
                if kw == "cipher" {
                    self.loader.set_cipher_implementation(name, imp)?;
                } else {
                    self.loader.set_mac_implementation(name, imp)?;
                }
            }
            "log" => self.log()?,
            "hide" => {
                let w = self.next()?;
                let ip = match w.tok {
                    Tok::Keyword("ip") => true,
                    Tok::Keyword("mac") => false,
                    _ => return Err(self.syntax(&w, "`ip' or `mac'")),
                };
                self.keyword("addresses")?;
                let b = self.boolean()?;
                self.semicolon()?;
                if ip {
                    self.loader.config.hide_ip_addresses = b;
                } else {
                    self.loader.config.hide_mac_addresses = b;
                }
            }
            "interface" => {
                if self.opt_keyword("address")? {
                    let p = self.prefix()?;
                    self.semicolon()?;
                    if let Some(g) = self.loader.config.groups.first_mut() {
                        g.interface_addresses.push(p);
                    }
                } else {
                    let n = self.interface_name()?;
                    self.semicolon()?;
                    self.loader.config.interface = Some(n);
                }
            }
            "bind" => {
                let b = self.bind()?;
                self.semicolon()?;
                self.loader.config.binds.push(b);
            }
            "packet" => {
                self.keyword("mark")?;
                let (v, _) = self.uint()?;
                self.semicolon()?;
                // fastd stores it in 32 bits: bigger values wrap.
                self.loader.config.packet_mark = (v & 0xffff_ffff) as u32;
            }
            "mtu" => {
                let m = self.mtu()?;
                self.semicolon()?;
                self.loader.config.mtu = m;
            }
            "pmtu" => {
                let v = self.next()?;
                let p = match v.tok {
                    Tok::Keyword("auto") => Pmtu::Auto,
                    Tok::Keyword("yes") => Pmtu::Yes,
                    Tok::Keyword("no") => Pmtu::No,
                    _ => return Err(self.syntax(&v, "`auto', `yes' or `no'")),
                };
                self.semicolon()?;
                self.loader.config.pmtu = Some(p);
            }
            "mode" => {
                let v = self.next()?;
                let m = match v.tok {
                    Tok::Keyword("tap") => Mode::Tap,
                    Tok::Keyword("multitap") => Mode::Multitap,
                    Tok::Keyword("tun") => Mode::Tun,
                    _ => return Err(self.syntax(&v, "`tap', `multitap' or `tun'")),
                };
                self.semicolon()?;
                self.loader.config.mode = m;
            }
            "persist" => {
                self.keyword("interface")?;
                let b = self.boolean()?;
                self.semicolon()?;
                self.loader.config.persist_interface = b;
            }
            "offload" => {
                self.keyword("l2tp")?;
                let b = self.boolean()?;
                self.semicolon()?;
                self.loader.config.offload_l2tp = b;
            }
            "protocol" => {
                let p = self.utf8_string()?;
                self.semicolon()?;
                self.loader.set_protocol(&p)?;
            }
            "secret" => {
                let (s, _) = self.string()?;
                self.semicolon()?;
                self.loader.config.secret = Some(String::from_utf8_lossy(&s).into_owned());
            }
            "status" => {
                self.keyword("socket")?;
                let (s, _) = self.string()?;
                self.semicolon()?;
                self.loader.config.status_socket = Some(PathBuf::from(os(s)));
            }
            "forward" => {
                let b = self.boolean()?;
                self.semicolon()?;
                self.loader.config.forward = b;
            }
            "masquerade" => {
                let from = if self.opt_keyword("from")? {
                    Some(self.prefix()?)
                } else {
                    None
                };
                self.keyword("out")?;
                let (s, _) = self.string()?;
                self.semicolon()?;
                self.loader
                    .config
                    .masquerade
                    .push(Masquerade { from, out: os(s) });
            }
            _ => return Err(self.syntax(t, "a statement")),
        }
        Ok(())
    }

    fn mtu(&mut self) -> PResult<u16> {
        let (v, pos) = self.uint()?;
        if !(576..=65535).contains(&v) {
            return Err(self.at(
                pos,
                LocatedKind::InvalidMtu,
                format!("MTU {v} is not in 576..65535"),
            ));
        }
        u16::try_from(v).map_err(|_| self.at(pos, LocatedKind::InvalidMtu, String::new()))
    }

    fn log(&mut self) -> PResult<()> {
        let t = self.next()?;
        match t.tok {
            Tok::Keyword("level") => {
                let l = self.log_level()?;
                self.semicolon()?;
                self.loader.config.log.set_level(l);
            }
            Tok::Keyword("to") => {
                let d = self.next()?;
                match d.tok {
                    Tok::Keyword("stderr") => {
                        let l = if self.opt_keyword("level")? {
                            self.log_level()?
                        } else {
                            LogLevel::Verbose
                        };
                        self.semicolon()?;
                        self.loader.config.log.stderr_level = Some(l);
                    }
                    Tok::Keyword("syslog") => {
                        let ident = if self.opt_keyword("as")? {
                            Some(self.utf8_string()?)
                        } else {
                            None
                        };
                        let l = if self.opt_keyword("level")? {
                            self.log_level()?
                        } else {
                            LogLevel::Verbose
                        };
                        self.semicolon()?;
                        if let Some(i) = ident {
                            self.loader.config.log.syslog_ident = i;
                        }
                        self.loader.config.log.syslog_level = Some(l);
                    }
                    _ => return Err(self.syntax(&d, "`stderr' or `syslog'")),
                }
            }
            _ => return Err(self.syntax(&t, "`level' or `to'")),
        }
        Ok(())
    }

    fn bind(&mut self) -> PResult<Bind> {
        let t = self.next()?;
        let (address, scoped) = match t.tok {
            Tok::Keyword("any") => (BindAddress::Any, false),
            Tok::Addr4(a) => (BindAddress::V4(a), false),
            Tok::Addr6(a) => (
                BindAddress::V6 {
                    addr: a,
                    scope: None,
                },
                false,
            ),
            Tok::Addr6Scoped(a, ifname) => (
                BindAddress::V6 {
                    addr: a,
                    scope: Some(os(ifname)),
                },
                true,
            ),
            _ => return Err(self.syntax(&t, "an IPv4 address, an [IPv6] address or `any'")),
        };
        let port = if self.has_port()? {
            Some(self.port(0)?)
        } else {
            None
        };
        let interface = if !scoped && self.opt_keyword("interface")? {
            let (s, _) = self.string()?;
            Some(os(s))
        } else {
            None
        };
        let (mut v4, mut v6) = (false, false);
        if self.opt_keyword("default")? {
            if self.opt_keyword("ipv4")? {
                v4 = true;
            } else if self.opt_keyword("ipv6")? {
                v6 = true;
            } else {
                v4 = true;
                v6 = true;
            }
        }
        Ok(Bind {
            address,
            port,
            interface,
            default_ipv4: v4,
            default_ipv6: v6,
        })
    }

    fn redirect(&mut self) -> PResult<RedirectGateway> {
        self.keyword("gateway")?;
        let via = if self.opt_keyword("via")? {
            let t = self.next()?;
            match t.tok {
                Tok::Addr4(a) => Some(IpAddr::V4(a)),
                Tok::Addr6(a) => Some(IpAddr::V6(a)),
                _ => return Err(self.syntax(&t, "an IPv4 or [IPv6] gateway address")),
            }
        } else {
            None
        };
        self.semicolon()?;
        Ok(RedirectGateway { via })
    }

    fn on(&mut self, group: GroupId, global: bool) -> PResult<()> {
        let t = self.next()?;
        let kind = match t.tok {
            Tok::Keyword(k @ ("pre-up" | "post-down")) if global => {
                let (cmd, _) = self.string()?;
                self.semicolon()?;
                let h = Some(self.hook(cmd, true));
                if k == "pre-up" {
                    self.loader.config.on_pre_up = h;
                } else {
                    self.loader.config.on_post_down = h;
                }
                return Ok(());
            }
            Tok::Keyword("up") => Some(HookKind::Up),
            Tok::Keyword("down") => Some(HookKind::Down),
            Tok::Keyword("connect") => Some(HookKind::Connect),
            Tok::Keyword("establish") => Some(HookKind::Establish),
            Tok::Keyword("disestablish") => Some(HookKind::Disestablish),
            Tok::Keyword("verify") => None,
            _ => {
                return Err(self.syntax(
                    &t,
                    if global {
                        "a hook: pre-up, up, down, post-down, connect, establish, disestablish or verify"
                    } else {
                        "a group hook: up, down, connect, establish, disestablish or verify"
                    },
                ))
            }
        };
        let sync = if self.opt_keyword("sync")? {
            true
        } else {
            self.opt_keyword("async")?;
            false
        };
        let (cmd, _) = self.string()?;
        self.semicolon()?;
        let hook = self.hook(cmd, sync);
        match kind {
            Some(k) => {
                if let Some(g) = self.loader.config.groups.get_mut(group.0) {
                    *g.hooks.slot(k) = Some(hook);
                }
            }
            None => self.loader.config.on_verify = Some((hook, group)),
        }
        Ok(())
    }

    fn include(&mut self, group: GroupId, global: bool) -> PResult<()> {
        let t = self.next()?;
        match t.tok {
            Tok::Str(path) => {
                self.semicolon()?;
                let ctx = if global {
                    FileCtx::Main(group)
                } else {
                    FileCtx::Group(group)
                };
                self.loader
                    .read_config(&path, &self.dir.clone(), ctx, self.depth + 1)
            }
            Tok::Keyword("peer") => {
                let (path, _) = self.string()?;
                let name = if self.opt_keyword("as")? {
                    Some(self.string()?.0)
                } else {
                    None
                };
                self.semicolon()?;
                let mut peer = PeerBuilder::new(name, group);
                self.loader.read_config(
                    &path,
                    &self.dir.clone(),
                    FileCtx::Peer(&mut peer),
                    self.depth + 1,
                )?;
                self.loader
                    .add_peer(peer)
                    .map_err(|d| self.at(t.pos, LocatedKind::InvalidPeerDefinition, d))
            }
            Tok::Keyword("peers") => {
                self.keyword("from")?;
                let (dir, _) = self.string()?;
                self.semicolon()?;
                let base = self.dir.clone();
                self.loader.add_peer_dir(group, &base, &dir);
                Ok(())
            }
            _ => Err(self.syntax(&t, "a file name string, `peer' or `peers from'")),
        }
    }

    fn peer_or_group(&mut self, group: GroupId) -> PResult<()> {
        let t = self.next()?;
        match t.tok {
            Tok::Str(name) => {
                self.lbrace()?;
                let mut peer = PeerBuilder::new(Some(name), group);
                loop {
                    if self.peek()?.tok == Tok::RBrace {
                        break;
                    }
                    self.peer_stmt(&mut peer)?;
                }
                let close = self.next()?;
                self.loader
                    .add_peer(peer)
                    .map_err(|d| self.at(close.pos, LocatedKind::InvalidPeerDefinition, d))
            }
            Tok::Keyword("group") => {
                let (name, _) = self.string()?;
                self.lbrace()?;
                let id = GroupId(self.loader.config.groups.len());
                self.loader
                    .config
                    .groups
                    .push(PeerGroup::new(name, Some(group)));
                if let Some(g) = self.loader.config.groups.get_mut(group.0) {
                    g.children.push(id);
                }
                loop {
                    if self.peek()?.tok == Tok::RBrace {
                        self.i += 1;
                        return Ok(());
                    }
                    self.group_or_global(id, false)?;
                }
            }
            Tok::Keyword("limit") => {
                let (v, pos) = self.uint()?;
                if v > i32::MAX as u64 {
                    return Err(self.at(
                        pos,
                        LocatedKind::InvalidPeerLimit,
                        format!("peer limit {v} is more than 2147483647"),
                    ));
                }
                self.semicolon()?;
                if let Some(g) = self.loader.config.groups.get_mut(group.0) {
                    g.peer_limit = u32::try_from(v).ok();
                }
                Ok(())
            }
            _ => Err(self.syntax(&t, "a peer name string, `group' or `limit'")),
        }
    }

    fn lbrace(&mut self) -> PResult<()> {
        let t = self.next()?;
        if t.tok == Tok::LBrace {
            Ok(())
        } else {
            Err(self.syntax(&t, "`{'"))
        }
    }

    /// One statement in peer context.
    pub(crate) fn peer_stmt(&mut self, peer: &mut PeerBuilder) -> PResult<()> {
        let t = self.next()?;
        match t.tok {
            Tok::Keyword("remote") => {
                let r = self.remote()?;
                self.semicolon()?;
                peer.remotes.push(r);
            }
            Tok::Keyword("float") => {
                let b = self.boolean()?;
                self.semicolon()?;
                peer.float = b;
            }
            Tok::Keyword("key") => {
                let (s, _) = self.string()?;
                self.semicolon()?;
                peer.key = self.loader.parse_peer_key(&s);
            }
            Tok::Keyword("interface") => {
                if self.opt_keyword("address")? {
                    let p = self.prefix()?;
                    self.semicolon()?;
                    peer.interface_addresses.push(p);
                } else {
                    let n = self.interface_name()?;
                    self.semicolon()?;
                    peer.interface = Some(n);
                }
            }
            Tok::Keyword("mtu") => {
                let m = self.mtu()?;
                self.semicolon()?;
                peer.mtu = Some(m);
            }
            Tok::Keyword("redirect") => {
                peer.redirect_gateway = Some(self.redirect()?);
            }
            Tok::Keyword("include") => {
                let (path, _) = self.string()?;
                self.semicolon()?;
                self.loader.read_config(
                    &path,
                    &self.dir.clone(),
                    FileCtx::Peer(peer),
                    self.depth + 1,
                )?;
            }
            _ => {
                return Err(self.syntax(
                    &t,
                    "a peer statement (key, remote, float, interface, mtu, include)",
                ))
            }
        }
        Ok(())
    }

    fn remote(&mut self) -> PResult<Remote> {
        let mut family = AddressFamily::Any;
        if self.opt_keyword("ipv4")? {
            family = AddressFamily::Ipv4;
        } else if self.opt_keyword("ipv6")? {
            family = AddressFamily::Ipv6;
        }
        let t = self.next()?;
        match (t.tok, family) {
            (Tok::Addr4(a), AddressFamily::Any | AddressFamily::Ipv4) => {
                let port = self.port(1)?;
                Ok(Remote::Address(SocketAddr::new(IpAddr::V4(a), port)))
            }
            (Tok::Addr6(a), AddressFamily::Any | AddressFamily::Ipv6) => {
                let port = self.port(1)?;
                let addr = match a.to_ipv4_mapped() {
                    Some(v4) => SocketAddr::new(IpAddr::V4(v4), port),
                    None => SocketAddr::V6(SocketAddrV6::new(a, port, 0, 0)),
                };
                Ok(Remote::Address(addr))
            }
            (Tok::Addr6Scoped(a, ifname), AddressFamily::Any | AddressFamily::Ipv6) => {
                let port = self.port(1)?;
                let mut name = a.to_string().into_bytes();
                name.push(b'%');
                name.extend_from_slice(&ifname);
                Ok(Remote::Host {
                    name: os(name),
                    port,
                    family: AddressFamily::Ipv6,
                })
            }
            (Tok::Str(host), family) => {
                let port = self.port(1)?;
                Ok(Remote::Host {
                    name: os(host),
                    port,
                    family,
                })
            }
            (tok, family) => {
                let expected = match family {
                    AddressFamily::Any => "an address or a hostname string",
                    AddressFamily::Ipv4 => "an IPv4 address or a hostname string after `ipv4'",
                    AddressFamily::Ipv6 => "an [IPv6] address or a hostname string after `ipv6'",
                };
                Err(self.syntax(&Token { tok, pos: t.pos }, expected))
            }
        }
    }
}
